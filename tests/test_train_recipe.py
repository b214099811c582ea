"""Training-recipe options of the engine (configs/train/synthetic-tiny.yaml): the "late" frame-level
warm-up, the switch to a frozen image tower with its own optimiser, BatchNorm recalibration,
temporal init, and the synthetic data's render sizes and codec augmentation. Tiny and fast."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import emoclip
from emoclip.faces import center_crop
from emoclip.model.preprocess import to_tensor
from emoclip.train import synthetic as syn
from emoclip.train.augment import codec_augment
from emoclip.train.data_config import DataConfig
from emoclip.train.distributed import DistInfo
from emoclip.train.engine import Trainer, train
from emoclip.train.loading import build_dataset
from emoclip.train.model_setup import build_model, model_config
from emoclip.train.recipe import ConfigError, load_config
from emoclip.train.sampling import LateFrameDataset

# The real tiny synthetic architecture (a BatchNorm CNN image tower), small batches, 4 frames.
BN_TINY = [
    "model.name=emoclip-synthetic-tiny",
    "model.pretrained_backbone=false",
    "model.num_frames=4",
    "data.dataset=synthetic",
    "data.synthetic_clips=48",
    "data.synthetic_eval_clips=8",
    "train.batch_size=8",
    "train.num_workers=0",
    "log.every=1",
    "log.tensorboard=false",
    "optim.name=adamw",
    "optim.schedule=cosine",
    "optim.no_decay_1d=true",
]
PHASES = [
    "train.max_steps=5",
    "train.warmup_frame_steps=3",
    "train.warmup_frame_pick=late",
    "train.warmup_num_frames=3",
    "train.freeze_visual_after_warmup=true",
    "train.bn_recalibrate_batches=2",
    "optim.warmup_steps=1",
    "optim.video_warmup_steps=1",
    "optim.video_weight_decay=0.05",
    "optim.video_text_lr_scale=0.1",
    "model.temporal_init=zero_cls",
]


def bn_config(out, *extra):
    return load_config(None, [*BN_TINY, f"out.dir={out}", *extra])


def visual_state(model):
    return {k: v.detach().clone() for k, v in model.backbone.visual.state_dict().items()}


# ---- config ---------------------------------------------------------------------------------------


def test_recipe_options_are_typed_and_checked():
    cfg = load_config(
        None,
        [
            "train.warmup_frame_steps=2",
            "train.freeze_visual_after_warmup=true",
            "train.max_steps=3",
            "data.synthetic_render_sizes=[64,128]",
            "data.synthetic_codec_aug=true",
            "optim.video_text_lr_scale=0.1",
        ],
    )
    assert cfg.data.synthetic_render_sizes == [64, 128] and cfg.data.synthetic_codec_aug
    defaults = load_config(None, [])
    assert defaults.model.temporal_init == "randn" and defaults.train.warmup_frame_pick == "mean"
    assert not defaults.train.freeze_visual_after_warmup and defaults.data.spatial_augment
    for bad in (
        ["train.freeze_visual_after_warmup=true"],  # no warm-up to end
        [
            "train.freeze_visual_after_warmup=true",
            "train.warmup_frame_steps=5",
            "train.max_steps=5",
        ],
        ["train.warmup_frame_pick=first"],
        ["model.temporal_init=zeros"],
    ):
        with pytest.raises(ConfigError):
            load_config(None, bad)
    with pytest.raises(ValueError, match="synthetic_render_sizes"):
        DataConfig(dataset="synthetic", synthetic_render_sizes=[0]).validate()


def test_temporal_init_zero_cls_and_the_authors_default():
    torch.manual_seed(0)
    authors, _ = build_model(load_config(None, ["model.name=test-emoclip-tiny"]))
    assert authors.temporal.cls_token.abs().mean() > 0.5  # randn
    small, _ = build_model(
        load_config(None, ["model.name=test-emoclip-tiny", "model.temporal_init=zero_cls"])
    )
    assert torch.count_nonzero(small.temporal.cls_token) == 0
    assert 0.01 < float(small.temporal.pos_embedding.detach().std()) < 0.03


# ---- data -----------------------------------------------------------------------------------------


def test_codec_augment_keeps_shape_and_is_seeded():
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    a = codec_augment(frame, np.random.default_rng(1))
    b = codec_augment(frame, np.random.default_rng(1))
    assert a.shape == frame.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    changed = [
        not np.array_equal(codec_augment(frame, np.random.default_rng(s)), frame) for s in range(10)
    ]
    assert sum(changed) >= 8  # unchanged only with probability 0.2 x 0.3


def test_synthetic_render_sizes_draw_large_then_centre_crop(monkeypatch):
    asked = []
    real_sample = syn.sample

    def spy(rng, *, split, num_frames, size):
        asked.append(size)
        return real_sample(rng, split=split, num_frames=num_frames, size=size)

    monkeypatch.setattr(syn, "sample", spy)
    pre = model_config("test-emoclip-tiny", 2).preprocess  # 32 px
    cfg = DataConfig(
        dataset="synthetic",
        synthetic_clips=16,
        synthetic_render_sizes=[48, 96],
        synthetic_codec_aug=True,
        spatial_augment=False,
    )
    train_set = build_dataset(cfg, "train", pre, train=True)
    items = [train_set[i] for i in range(16)]
    assert set(asked) == {48, 96} and all(it["frames"].shape == (2, 3, 32, 32) for it in items)
    asked.clear()
    build_dataset(cfg, "test", pre, seed=0)[0]  # evaluation draws at S, without augmentation
    assert asked == [32]
    assert (
        len(build_dataset(DataConfig(dataset="synthetic", synthetic_eval_clips=5), "test", pre))
        == 5
    )

    # the crop is the predictor's: drawing at 96 then centre_crop(., 32), frame for frame
    frames = real_sample(np.random.default_rng(3), split="train", num_frames=2, size=96)[0]
    monkeypatch.setattr(syn, "sample", lambda rng, **kw: (frames, "a smile", None))
    plain = build_dataset(
        DataConfig(
            dataset="synthetic",
            synthetic_clips=4,
            synthetic_render_sizes=[96],
            spatial_augment=False,
        ),
        "train",
        pre,
        train=True,
    )
    expected = to_tensor(np.stack([center_crop(f, 32) for f in frames]), pre)
    torch.testing.assert_close(plain[0]["frames"], expected)


def test_late_frame_pick_takes_one_frame_of_the_second_half():
    clip = torch.arange(3).view(3, 1, 1, 1).float().expand(3, 3, 2, 2)

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return {"frames": clip, "text": "x"}

    late = LateFrameDataset(Clips())
    picks = {int(late[0]["frames"][0, 0, 0, 0]) for _ in range(40)}
    assert picks == {1, 2}  # t = 0.5 or 1 of a 3-frame clip
    assert late[0]["frames"].shape == (1, 3, 2, 2)


# ---- the three phases -----------------------------------------------------------------------------


def test_warmup_trains_the_image_tower_then_the_switch_freezes_it(tmp_path):
    trainer = Trainer(bn_config(tmp_path, *PHASES), DistInfo(), tmp_path)
    assert trainer.warmup_set[0]["frames"].shape[0] == 1  # the late pick: one frame per clip
    assert trainer.train_set[0]["frames"].shape[0] == 4
    start = visual_state(trainer.model)
    result = trainer.fit()
    assert result.step == 5 and trainer.in_video_phase
    after = visual_state(trainer.model)
    conv = [k for k in start if k.endswith("weight") and start[k].ndim == 4]
    assert conv and all(not torch.equal(start[k], after[k]) for k in conv)  # trained in the warm-up
    assert not any(p.requires_grad for p in trainer.model.backbone.visual.parameters())
    assert not trainer.model.backbone.visual.training  # frozen in eval mode
    groups = trainer.optimizer.param_groups
    temporal = {id(p) for p in trainer.model.temporal.parameters()}
    lrs = {
        ("temporal" if id(g["params"][0]) in temporal else "text"): g["initial_lr"] for g in groups
    }
    assert lrs == {"temporal": pytest.approx(1e-3), "text": pytest.approx(1e-4)}
    assert {g["weight_decay"] for g in groups} == {0.05, 0.0}
    loaded = emoclip.load_model(result.weights)
    frames = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():  # BatchNorm statistics are exported as the video phase used them
        torch.testing.assert_close(
            loaded.float().encode_video(frames),
            result.model.eval().encode_video(frames),
            atol=2e-2,
            rtol=0,
        )


@pytest.mark.slow
def test_video_phase_keeps_the_recalibrated_statistics(tmp_path):
    trainer = Trainer(bn_config(tmp_path, *PHASES, "train.max_steps=6"), DistInfo(), tmp_path)
    trainer.set_train_mode()
    seen = []
    real = trainer.enter_video_phase

    def spy(**kw):
        real(**kw)
        seen.append(visual_state(trainer.model))

    trainer.enter_video_phase = spy
    trainer.fit()
    assert len(seen) == 1
    final = visual_state(trainer.model)
    assert all(
        torch.equal(seen[0][k], final[k]) for k in final
    )  # no update, no recalibration at export
    norms = [
        m for m in trainer.model.backbone.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert norms and all(int(m.num_batches_tracked) == 2 for m in norms)  # 2 recalibration batches


@pytest.mark.slow
def test_resume_across_the_switch_equals_an_uninterrupted_run(tmp_path):
    full = train(bn_config(tmp_path / "full", *PHASES))
    first = train(bn_config(tmp_path / "cut", *PHASES, "train.stop_at_step=3"))  # at the switch
    assert first.interrupted and first.step == 3
    second = train(bn_config(tmp_path / "cut", *PHASES), resume="auto")
    assert dict(second.losses) == pytest.approx({s: v for s, v in full.losses if s > 3}, rel=1e-5)
    a = emoclip.load_model(full.weights).state_dict()
    b = emoclip.load_model(second.weights).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_config_is_the_shipped_models(repo_root):
    cfg = load_config(repo_root / "configs/train/synthetic-tiny.yaml")
    assert cfg.model.name == "emoclip-synthetic-tiny" and not cfg.model.pretrained_backbone
    assert (
        cfg.train.freeze_visual_after_warmup
        and 0 < cfg.train.warmup_frame_steps < cfg.train.max_steps
    )
    assert (
        cfg.data.synthetic_clips >= cfg.train.max_steps * cfg.train.batch_size
    )  # one epoch of fresh clips
    assert cfg.out.export_dtype == "float16" and cfg.train.device == "cpu"
    # three-way split: validation classes during the run, test classes only at the end
    assert cfg.eval.split == "validation" and cfg.eval.test_split == "test"
    assert cfg.data.synthetic_heldout and cfg.eval.classes == "synthetic-all"


# ---- the shipped recipes against the authors' scripts ---------------------------------------------

# Written from reference.md §3 (table rows "Temporal sampling", "Frames per clip", "Batch size",
# "Epochs", "LR", "Schedule", "Optimiser", "Optional fine-tuning") and §8, one row per shipped recipe:
# (authors' script, temporal stride k, frames T, batch per process, epochs, lr, backbone lr scale,
#  schedule, milestones, gamma, optimiser, momentum, weight decay). Every value cites the file and
# line of the authors' repository (NickyFot/EmoCLIP at commit 6b4decfb12a8c8b9cfd152a6ce70bdd20e021aa1,
# 2024-07-25) it comes from: the launch script's variable, or the Python line that the script
# leaves at its default. experiments/ holds the scripts; config.py the argparse defaults.
AUTHORS_RECIPES = {
    # The code's reading (CLIP frozen: no --finetune flag), the default; see the YAML's header.
    "mafw-emoclip.yaml": dict(
        script="MAFW_train_hpc.sh",
        stride=2,
        frames=32,
        batch=64,
        epochs=30,
        lr=1e-3,
        backbone_lr_scale=None,
        schedule="multistep",
        milestones=[15, 35, 50],
        gamma=0.1,
        optim="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        cites=dict(
            stride="experiments/MAFW_train_hpc.sh:22 downsample=2",
            frames="experiments/MAFW_train_hpc.sh:23 clip_len=32",
            batch="experiments/MAFW_train_hpc.sh:17 batch_size=64 (per process; num_gpus=2 at :29)",
            epochs="experiments/MAFW_train_hpc.sh:18 num_epochs=30",
            lr="experiments/MAFW_train_hpc.sh:19 lr=0.001",
            backbone_lr_scale="experiments/MAFW_train_hpc.sh:34-47 pass no --finetune "
            "(config.py:20-21 default False): every CLIP weight frozen",
            schedule="train.py:161 lr_scheduler.MultiStepLR",
            milestones="train.py:161 milestones=[15, 35, 50]",
            gamma="train.py:161 gamma=0.1",
            optim='experiments/MAFW_train_hpc.sh:24 optim="SGD"',
            momentum="train.py:149 momentum=0.9",
            weight_decay="config.py:38 --wd default 0.0005 (the script passes none)",
        ),
    ),
    # The paper's reading (section 3.1: the encoders fine-tuned on the FER domain).
    "mafw-finetune.yaml": dict(
        script="MAFW_finetune_hpc.sh",
        stride=4,
        frames=32,
        batch=128,
        epochs=30,
        lr=1e-3,
        backbone_lr_scale=1e-3,
        schedule="multistep",
        milestones=[15, 35, 50],
        gamma=0.1,
        optim="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        cites=dict(
            stride="experiments/MAFW_finetune_hpc.sh:23 downsample=4",
            frames="experiments/MAFW_finetune_hpc.sh:24 clip_len=32",
            batch="experiments/MAFW_finetune_hpc.sh:18 batch_size=128 (num_gpus=2 at :30)",
            epochs="experiments/MAFW_finetune_hpc.sh:19 num_epochs=30",
            lr="experiments/MAFW_finetune_hpc.sh:20 lr=0.001",
            backbone_lr_scale="experiments/MAFW_finetune_hpc.sh:49-51 --finetune --text --visual; "
            "train.py:128-133 unfreeze them, train.py:140 their group at cnf.lr * 0.001",
            schedule="train.py:161 lr_scheduler.MultiStepLR",
            milestones="train.py:161 milestones=[15, 35, 50]",
            gamma="train.py:161 gamma=0.1",
            optim='experiments/MAFW_finetune_hpc.sh:25 optim="SGD"',
            momentum="train.py:149 momentum=0.9",
            weight_decay="config.py:38 --wd default 0.0005 (the script passes none)",
        ),
    ),
    "dfew-supervised.yaml": dict(
        script="DFEW_trainsupervised_hpc.sh",
        stride=4,
        frames=32,
        batch=128,
        epochs=50,
        lr=1e-3,
        backbone_lr_scale=None,
        schedule="multistep",
        milestones=[25, 50],
        gamma=0.1,
        optim="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        cites=dict(
            stride="experiments/DFEW_trainsupervised_hpc.sh:22 downsample=4",
            frames="experiments/DFEW_trainsupervised_hpc.sh:23 clip_len=32",
            batch="experiments/DFEW_trainsupervised_hpc.sh:17 batch_size=128 (num_gpus=2 at :29)",
            epochs="experiments/DFEW_trainsupervised_hpc.sh:18 num_epochs=50",
            lr="experiments/DFEW_trainsupervised_hpc.sh:19 lr=0.001",
            backbone_lr_scale="experiments/DFEW_trainsupervised_hpc.sh:33-45 pass no --finetune "
            "(config.py:20-21 default False)",
            schedule="train_supervised.py:163 lr_scheduler.MultiStepLR",
            milestones="train_supervised.py:163 milestones=[25, 50]",
            gamma="train_supervised.py:163 gamma=0.1",
            optim='experiments/DFEW_trainsupervised_hpc.sh:24 optim="SGD"',
            momentum="train_supervised.py:151 momentum=0.9",
            weight_decay="config.py:38 --wd default 0.0005 (the script passes none)",
        ),
    ),
}
_CITED = re.compile(r"^(experiments/\w+\.sh|\w+\.py):\d+(-\d+)? ")


def test_every_authors_value_cites_its_script_and_line():
    for name, row in AUTHORS_RECIPES.items():
        values = set(row) - {"script", "cites"}
        assert set(row["cites"]) == values, name  # every value, nothing else
        for key, cite in row["cites"].items():
            assert _CITED.match(cite), (name, key, cite)
        launch = [c for c in row["cites"].values() if c.startswith("experiments/")]
        assert all(c.startswith(f"experiments/{row['script']}:") for c in launch), name


# Ours, not the authors' (README "The offline model"): checked against its own row so that a change
# to it is deliberate. Synthetic clips are rendered with T frames, so there is no temporal stride.
OUR_RECIPES = {
    "synthetic-tiny.yaml": dict(
        script=None,
        stride=None,
        frames=8,
        batch=128,
        epochs=None,
        max_steps=1000,
        lr=1e-3,
        backbone_lr_scale=None,
        schedule="cosine",
        milestones=None,
        gamma=None,
        optim="adamw",
        momentum=None,
        weight_decay=0.1,
    ),
}


def test_every_shipped_recipe_has_a_row(repo_root):
    shipped = {p.name for p in (repo_root / "configs/train").glob("*.yaml")}
    assert shipped == set(AUTHORS_RECIPES) | set(OUR_RECIPES)


@pytest.mark.parametrize("name", sorted(AUTHORS_RECIPES) + sorted(OUR_RECIPES))
def test_shipped_recipe_matches_its_row(repo_root, name):
    row = {**AUTHORS_RECIPES, **OUR_RECIPES}[name]
    cfg = load_config(repo_root / "configs/train" / name)
    frames = model_config(cfg.model.name, cfg.model.num_frames).preprocess.num_frames
    got = dict(
        stride=cfg.data.temporal_stride if cfg.data.dataset != "synthetic" else None,
        frames=frames,
        batch=cfg.train.batch_size,
        lr=cfg.optim.lr,
        schedule=cfg.optim.schedule,
        optim=cfg.optim.name,
        weight_decay=cfg.optim.weight_decay,
    )
    want = {k: row[k] for k in got}
    assert got == pytest.approx(want), f"{name} differs from {row['script'] or 'its own row'}"
    if row["epochs"] is not None:
        assert cfg.train.epochs == row["epochs"] and cfg.train.max_steps is None
    else:
        assert cfg.train.max_steps == row["max_steps"]
    if row["schedule"] == "multistep":
        assert cfg.optim.milestones == row["milestones"] and cfg.optim.gamma == pytest.approx(
            row["gamma"]
        )
    if row["optim"] == "sgd":
        assert cfg.optim.momentum == pytest.approx(row["momentum"])
    finetunes = cfg.model.finetune_visual or cfg.model.finetune_text
    assert finetunes == (row["backbone_lr_scale"] is not None)
    if finetunes:
        assert cfg.optim.backbone_lr_scale == pytest.approx(row["backbone_lr_scale"])


def test_mafw_recipe_keeps_every_second_frame(repo_root, tmp_path):
    """The MAFW recipe's stride reaches the frame sampler: 32 consecutive frames of every 2nd."""
    from emoclip.train.augment import temporal_indices

    cfg = load_config(repo_root / "configs/train/mafw-emoclip.yaml")
    picks = temporal_indices(200, 32, stride=cfg.data.temporal_stride, rng=np.random.default_rng(0))
    assert len(picks) == 32 and all(p % 2 == 0 for p in picks)
    steps = np.diff(picks)
    assert set(steps[steps > 0].tolist()) == {
        2
    }  # consecutive kept frames (a wrap may step back once)
