"""Weights: which models exist, where their weights come from, and reading them into a model.

- `registry`: the named models and their policy (`ModelSpec`, `ranked_models`, `best_available`,
  `resolve`); loads and downloads nothing.
- `factory`: `load_model` (a name, file or Hub id -> `EmoCLIP`).
- `files`: checkpoint files, ``NAME.safetensors`` + ``NAME.json`` (config, provenance, sha256), and
  pretrained CLIP backbone weights.
- `hub`: Hugging Face Hub access that never hangs (offline detection, cache, pinned revisions).
- `convert_keys` + `convert`: the authors' checkpoints -> our safetensors.

Nothing is imported here: ``import emoclip.weights.hub`` loads no torch.
"""
