"""Inference: `EmotionPredictor` and what runs under it.

- `predictor`: the facade (`EmotionPredictor`).
- `inputs`: what the predictor accepts (`VideoLimits`, `iter_inputs`) and how a path or array
  becomes a still image or sampled frames, checked against the limits first.
- `cache`: the predictor's video cache (`EncodingCache`) and the content keys of its inputs.
- `settings`: ``EMOCLIP_*`` environment settings (numbers, bounded floats, flags).
- `pipeline`: one video through decode, face crops and batched encoding into a `VideoEncoding`
  (it sees the predictor only through its `Encoder` protocol: imports go predictor -> pipeline).
- `prefetch`: an iterator run in a background thread ahead of its consumer (decode + detection).
- `photo`: a still image's faces, each a one-frame clip.
- `precision`: fp32 or a checked bf16 image tower per model, the folded temporal model, and
  data-parallel encoding.
- `fast_paths`: the CPU fast paths themselves (oneDNN bf16 image tower, folded temporal
  transformer, ``/proc/cpuinfo`` probing, FLOP estimates).
- `memory`: giving back the resident pages of file-mapped weights the fast paths replaced.

Nothing is imported here: ``import emoclip.inference`` stays free of torch.
"""
