"""EmoCLIP performance benchmarks (issues #5, #10, #13): figures P1...P11, one module per job.

Run from the repository root: ``python -m benchmarks.run [--quick] [--json OUT]`` (or
``python -m benchmarks``); ``python -m benchmarks.memory`` measures a model load and first use.
Method and figures: benchmarks/README.md.
"""
