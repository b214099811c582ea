"""Inference: `EmotionPredictor` and what runs under it.

- `predictor`: the facade (`EmotionPredictor`): resolves inputs (`emoclip.media.inputs`), builds
  its parts from its `emoclip.settings.AnalysisSettings`, hands them to the pipeline.
- `parts`: `FrameEncoder`, `Pooler`, `AnalysisParts` (what the pipeline and photo path run with).
- `cache`: the predictor's video cache (`EncodingCache`).
- `encoding`: what analysing a video produces (`VideoEncoding`, `NoFaceError`, `Progress`).
- `pipeline`: one resolved input through decode, face crops and batched encoding into a
  `VideoEncoding` (`encode_input`, `FrameCollector`); imports go predictor -> pipeline, never back.
- `tracks`: which face tracks are people, and which frames make up the subject and each person.
- `timeline`: clip duration, timeline windows and the frames each pools, spread thumbnails.
- `prefetch`: an iterator run in a background thread ahead of its consumer (decode + detection).
- `photo`: a still image's faces, each a one-frame clip.
- `detector`: the face detector a predictor shares between requests (made on first use, locked).
- `scoring`: an encoding scored against class embeddings into a `Prediction`.
- `precision`: the image tower a predictor runs (`TowerSelector`) and the folded temporal model.
- `autotune`: the candidate towers checked and timed on this machine, the fastest passing kept.
- `tower_cache`: the CPU, the choice's key and where choices are kept on disk.
- `parallel`: thread counts for small work and data-parallel encoding/pooling over a worker pool.
- `fast_paths`: the CPU fast paths themselves (re-laid fp32/bf16 image tower, folded temporal
  transformer, FLOP estimates); `vit_weights`: open_clip's ViT read as typed weights;
  `linear_ops`: public or oneDNN linear layers (`_onednn`: the only private torch operators).
- `memory`: giving back the resident pages of file-mapped weights the fast paths replaced.

Nothing is imported here: ``import emoclip.inference`` stays free of torch.
"""
