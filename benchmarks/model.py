"""The model under test: loading it, saving a random-weight test model once as a checkpoint file
(so a child process loads it as a real model loads), the benchmark's predictor, and a normalised
input batch for the image tower."""

from __future__ import annotations

from pathlib import Path


def load(model_name: str):
    """The model registered as `model_name` (or a weights file), as `emoclip.load_model` gives it,
    looked for where the environment says as the CLI does (`ModelLocations.from_env`)."""
    import emoclip
    from emoclip.settings import ModelLocations

    return emoclip.load_model(model_name, locations=ModelLocations.from_env())


def weights_file(model_name: str, folder: Path) -> str:
    """A test model of the registry (random weights) as a checkpoint file in `folder`, saved once
    with seed 0, so that a child loads it the way a real model loads (a memory-mapped safetensors
    file); any other name or path is returned as it is."""
    from emoclip.weights.registry import get_spec

    try:
        spec = get_spec(model_name)
    except KeyError:
        return model_name
    if not spec.random_init:
        return model_name
    path = folder / f"{model_name}-seed0.safetensors"
    if not path.exists():
        import torch

        from emoclip.weights.files import save_checkpoint

        torch.manual_seed(0)
        model = load(model_name)
        save_checkpoint(
            model.state_dict(), model.config, path
        )  # the sidecar's sha256 catches a torn write
    return str(path)


def make_predictor(model, **kwargs):
    """An `EmotionPredictor` as the app makes one (precision "auto", default batch, prefetch), but
    keeping no encoded video (``video_cache_size=0``): the benchmark times the analysis, never the
    predictor's cache, so every `predict` decodes, detects and encodes again. Texts stay cached
    (the app keeps them too). Settings come from the environment as the app reads them
    (`AnalysisSettings.from_env`: ``EMOCLIP_PRECISION`` etc.); `kwargs` override them."""
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.settings import AnalysisSettings

    settings = AnalysisSettings.from_env()
    return EmotionPredictor(model, settings, **({"video_cache_size": 0} | kwargs))


def normalised_batch(model, n: int):
    """(n, 3, S, S) float32 random frames (seed 0), normalised as the model's preprocessing does."""
    import torch

    cfg = model.config.preprocess
    x = torch.rand(n, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    return (x - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
