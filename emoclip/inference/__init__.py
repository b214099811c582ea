"""Inference: `EmotionPredictor` and what runs under it.

- `predictor`: the facade (`EmotionPredictor`, `VideoLimits`, `iter_inputs`) and its video cache.
- `pipeline`: one video through decode, face crops and batched encoding into a `VideoEncoding`
  (it sees the predictor only through its `Encoder` protocol: imports go predictor -> pipeline).
- `photo`: a still image's faces, each a one-frame clip.
- `precision`: fp32 or a checked bf16 image tower per model, the folded temporal model, and
  data-parallel encoding.
- `fast_paths`: the CPU fast paths themselves (oneDNN bf16 image tower, folded temporal
  transformer, ``/proc/cpuinfo`` probing, FLOP estimates).
- `memory`: giving back the resident pages of file-mapped weights the fast paths replaced.

Nothing is imported here: ``import emoclip.inference`` stays free of torch.
"""
