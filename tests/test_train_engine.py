"""Training engine on one CPU process: runs, export, trainable parts, AMP, accumulation, resume,
config overrides, evaluation command and Hub/wandb guards. Tiny model, synthetic data, few steps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import emoclip
from emoclip.train import checkpoint as ckpt
from emoclip.train.distributed import DistInfo
from emoclip.train.engine import Trainer, train
from emoclip.train.loading import collate
from emoclip.train.recipe import ConfigError, TrainConfig, load_config

TINY = [
    "model.name=test-emoclip-tiny",
    "model.num_frames=4",
    "data.dataset=synthetic",
    "data.synthetic_clips=32",
    "train.batch_size=8",
    "train.num_workers=0",
    "log.every=1",
]


def tiny_config(out: Path, *extra: str) -> TrainConfig:
    return load_config(None, [*TINY, f"out.dir={out}", *extra])


def fixed_batch(trainer: Trainer, start: int = 0, n: int = 8) -> dict:
    items = [
        trainer.train_set[i] for i in range(start, start + n)
    ]  # seeded by (seed, epoch, index)
    return collate(items, trainer.model.context_length)


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


# ---- a whole run ----------------------------------------------------------------------------------


def test_run_writes_config_logs_state_and_loadable_export(tmp_path):
    cfg = tiny_config(tmp_path / "run", "train.max_steps=3")
    result = train(cfg)
    run = result.run_dir
    assert result.step == 3 and not result.interrupted and len(result.losses) == 3
    assert (
        load_config(run / "config.yaml").to_dict() == cfg.to_dict()
    )  # the resolved config reloads as is
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]
    state = ckpt.load_state(run / "state.pt")  # weights_only=True
    assert state["step"] == 3 and state["world_size"] == 1 and "torch" in state["rng"][0]
    assert result.weights == run / "test-emoclip-tiny.safetensors"
    loaded = emoclip.load_model(result.weights)
    trained = result.model.eval()
    frames = torch.randn(2, 4, 3, 32, 32)
    tokens = emoclip.tokenize(["a smile", "a frown"])
    with torch.no_grad():
        assert torch.equal(loaded.encode_video(frames), trained.encode_video(frames))
        assert torch.equal(loaded.encode_text(tokens), trained.encode_text(tokens))
        assert torch.equal(loaded.logit_scale, trained.logit_scale)
    assert loaded.config.preprocess.num_frames == 4
    prov = loaded.config.provenance["training"]
    assert prov["steps"] == 3 and prov["data"]["dataset"] == "synthetic"
    assert loaded.config.classes is not None  # the synthetic class set travels with the weights


def test_loss_decreases_when_overfitting_a_fixed_batch(tmp_path):
    cfg = tiny_config(
        tmp_path, "optim.name=adamw", "optim.schedule=constant", "optim.weight_decay=0"
    )
    trainer = Trainer(cfg, DistInfo(), tmp_path)
    trainer.set_train_mode()
    batch = fixed_batch(trainer, 0, 4)
    losses = [trainer.train_step([batch]) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses
    assert min(losses[-5:]) < min(losses[:5])


def test_frozen_backbone_stays_while_temporal_trains(tmp_path):
    cfg = tiny_config(tmp_path, "model.freeze_backbone=true", "optim.lr=0.1")
    trainer = Trainer(cfg, DistInfo(), tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.set_train_mode()
    for start in (0, 8):
        trainer.train_step([fixed_batch(trainer, start)])
    after = trainer.model.state_dict()
    backbone = [k for k in before if k.startswith("backbone.")]
    temporal = [k for k in before if k.startswith("temporal.")]
    assert all(torch.equal(before[k], after[k]) for k in backbone)
    assert sum(not torch.equal(before[k], after[k]) for k in temporal) >= len(temporal) - 2
    assert not torch.equal(before["logit_scale"], after["logit_scale"])
    assert len(trainer.optimizer.param_groups) == 1
    state = ckpt.trained_state(trainer.model, trainer.frozen)
    assert set(state) == {"logit_scale", *temporal}  # the training state holds only trained tensors


def test_finetune_options_add_a_backbone_group_at_lr_x_0001(tmp_path):
    cfg = tiny_config(
        tmp_path,
        "model.freeze_backbone=true",
        "model.finetune_visual=true",
        "model.finetune_text=true",
        "optim.lr=0.01",
    )
    trainer = Trainer(cfg, DistInfo(), tmp_path)
    main, tuned = trainer.optimizer.param_groups
    assert main["lr"] == pytest.approx(0.01) and tuned["lr"] == pytest.approx(0.01 * 0.001)
    bb = trainer.model.backbone
    expected = {id(p) for p in bb.visual.parameters()} | {
        id(p) for p in bb.transformer.parameters()
    }
    assert {id(p) for p in tuned["params"]} == expected
    # text = the transformer blocks only, as the authors
    for p in (
        bb.token_embedding.weight,
        bb.positional_embedding,
        bb.ln_final.weight,
        bb.text_projection,
    ):
        assert not p.requires_grad
    only_text = Trainer(
        tiny_config(tmp_path / "t", "model.freeze_backbone=true", "model.finetune_text=true"),
        DistInfo(),
        tmp_path / "t",
    )
    assert {id(p) for p in only_text.optimizer.param_groups[1]["params"]} == {
        id(p) for p in only_text.model.backbone.transformer.parameters()
    }


def test_fp16_uses_the_grad_scaler(tmp_path):
    cfg = tiny_config(tmp_path, "train.precision=fp16")
    trainer = Trainer(cfg, DistInfo(), tmp_path)
    scaler = trainer.scaler
    assert scaler.is_enabled()
    calls = {"scale": 0, "step": 0, "update": 0}
    for name in calls:
        original = getattr(scaler, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        setattr(scaler, name, spy)
    trainer.set_train_mode()
    for start in (0, 8):
        trainer.train_step([fixed_batch(trainer, start)])
    assert calls == {"scale": 2, "step": 2, "update": 2}
    assert scaler.is_enabled() and scaler.get_scale() > 0
    trainer.save_state()
    assert ckpt.load_state(tmp_path / "state.pt")["scaler"]["scale"] == scaler.get_scale()


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    cfg = tiny_config(tmp_path, "train.batch_size=4")
    trainer = Trainer(cfg, DistInfo(), tmp_path)
    trainer.set_train_mode()
    big = fixed_batch(trainer, 0, 8)
    halves = [fixed_batch(trainer, 0, 4), fixed_batch(trainer, 4, 4)]
    loss_big = trainer.compute_gradients([big])
    g_big = grads(trainer.model)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss_acc = trainer.compute_gradients(halves)
    g_acc = grads(trainer.model)
    assert loss_acc == pytest.approx(loss_big, rel=1e-5)
    assert g_big.keys() == g_acc.keys() and len(g_big) > 10
    for name in g_big:
        torch.testing.assert_close(g_acc[name], g_big[name], rtol=1e-4, atol=1e-6, msg=name)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    common = [
        "data.synthetic_clips=12",
        "train.batch_size=4",
        "train.max_steps=6",
        "optim.name=adamw",
        "optim.schedule=cosine",
        "optim.warmup_steps=2",
    ]  # 3 steps per epoch
    full = train(tiny_config(tmp_path / "full", *common))
    first = train(tiny_config(tmp_path / "cut", *common, "train.stop_at_step=2"))  # mid-epoch
    assert first.interrupted and first.step == 2 and first.weights is None
    second = train(tiny_config(tmp_path / "cut", *common), resume="auto")
    assert second.losses[0][0] == 3
    assert dict(second.losses) == {
        s: v for s, v in full.losses if s > 2
    }  # identical next-step losses
    a = emoclip.load_model(full.weights).state_dict()
    b = emoclip.load_model(second.weights).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_trained_only_export_when_the_backbone_is_pretrained_and_frozen(tmp_path):
    from safetensors.torch import load_file, save_file

    donor = emoclip.load_model("test-emoclip-tiny")
    backbone_file = tmp_path / "backbone.safetensors"
    save_file(
        {k: v.contiguous() for k, v in donor.backbone.state_dict().items()}, str(backbone_file)
    )
    config = donor.config.replace(name="tiny-pretrained")
    config = config.replace(model=replace(config.model, backbone_pretrained=str(backbone_file)))
    config_file = tmp_path / "tiny-pretrained.json"
    config.save(config_file)
    result = train(tiny_config(tmp_path / "run", f"model.name={config_file}", "train.max_steps=2"))
    stored = load_file(str(result.weights))
    assert stored and not any(k.startswith("backbone.") for k in stored)
    loaded = emoclip.load_model(result.weights)  # the backbone is filled from the pretrained file
    frames = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.encode_video(frames), result.model.eval().encode_video(frames)
        )
    assert "frozen" in loaded.config.provenance["training"]["backbone"]


def test_validation_selects_and_records_metrics(tmp_path):
    cfg = tiny_config(
        tmp_path / "run",
        "data.synthetic_clips=16",
        "train.max_steps=4",
        "eval.split=test",
        "eval.batch_size=16",
    )
    result = train(cfg)
    assert result.best is not None and result.best["metrics"]["split"] == "test"
    record = emoclip.load_model(result.weights).config.provenance
    assert set(record["metrics"]["val"]) >= {"war", "uar", "num_samples"}
    assert record["training"]["selection"].startswith("best WAR")
    events = [
        json.loads(x)
        for x in (result.run_dir / "log.jsonl").read_text().splitlines()
        if '"eval"' in x
    ]
    assert [e["step"] for e in events] == [2, 4]  # every epoch (2 steps each)
    assert all(
        e["eval_sampling"] == "rendered" for e in events
    )  # synthetic clips: no frame sampling
    assert all(
        e["distributed_padding"] == {"mode": "authors", "world_size": 1, "padded_duplicates": 0}
        for e in events
    )


# ---- configuration ------------------------------------------------------------------------------


def test_defaults_are_the_authors_recipe():
    cfg = TrainConfig()
    assert (
        cfg.model.name,
        cfg.optim.name,
        cfg.optim.lr,
        cfg.optim.momentum,
        cfg.optim.weight_decay,
    ) == ("emoclip-vitb32", "sgd", 1e-3, 0.9, 5e-4)
    assert (
        cfg.optim.milestones == [15, 35, 50]
        and cfg.optim.gamma == 0.1
        and cfg.optim.schedule == "multistep"
    )
    assert (
        cfg.model.pretrained_backbone
        and not cfg.model.finetune_text
        and not cfg.train.gather_features
    )
    assert cfg.data.eval_sampling == "consecutive" and cfg.eval.distributed_padding == "authors"
    assert cfg.optim.backbone_lr_scale == 1e-3


def test_overrides_are_typed_and_bad_keys_are_explained(tmp_path):
    cfg = load_config(
        None,
        [
            "optim.lr=1e-4",
            "data.fold=2",
            "train.gather_features=true",
            "optim.milestones=[10,20]",
            "train.max_steps=null",
            "optim.betas=0.9,0.95",
            "data.root=/data/0123",
            "eval.split=val",
        ],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.data.fold == 2 and cfg.train.gather_features is True
    assert cfg.optim.milestones == [10, 20] and cfg.optim.betas == (0.9, 0.95)
    assert cfg.train.max_steps is None and cfg.data.root == "/data/0123" and cfg.eval.split == "val"
    assert load_config(None, ["optim.milestones=5,7"]).optim.milestones == [5, 7]
    with pytest.raises(ConfigError, match=r"optim\.lrr.*did you mean 'optim\.lr'"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="unknown config key 'optm.lr'.*sections"):
        load_config(None, ["optm.lr=1"])
    with pytest.raises(ConfigError, match="data.fold.*integer"):
        load_config(None, ["data.fold=two"])
    with pytest.raises(ConfigError, match="train.gather_features.*true or false"):
        load_config(None, ["train.gather_features=maybe"])
    with pytest.raises(ConfigError, match="optim.name must be one of"):
        load_config(None, ["optim.name=lion"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["optim.lr"])
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("optim:\n  lr: 1e-3\n  milestones: [1, 2]\ntrain:\n  epochs: 3\n")
    assert load_config(yaml_file, ["train.epochs=4"]).optim.lr == 1e-3  # PyYAML's "1e-3" string
    yaml_file.write_text("optim:\n  lr: 0.1\n  nesterov: true\n")
    with pytest.raises(ConfigError, match="optim.nesterov"):
        load_config(yaml_file)


def test_command_line_forms_and_exit_code(tmp_path, capsys):
    from emoclip.train.__main__ import main, split_overrides

    rest, over = split_overrides(
        ["--config", "x.yaml", "--optim.lr", "0.1", "--data.fold=3", "train.seed=2"]
    )
    assert rest == ["--config", "x.yaml", "train.seed=2"] and over == [
        "optim.lr=0.1",
        "data.fold=3",
    ]
    assert main(["optim.lrr=1"]) == 2
    assert "did you mean 'optim.lr'" in capsys.readouterr().err
    assert main(["--print-config", "--optim.lr", "0.5"]) == 0
    assert "lr: 0.5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name", ["mafw-emoclip", "mafw-finetune", "dfew-supervised", "synthetic-tiny"]
)
def test_shipped_configs_load(repo_root, name):
    cfg = load_config(repo_root / "configs" / "train" / f"{name}.yaml")
    if name == "mafw-emoclip":
        assert cfg.to_dict()["optim"] == TrainConfig().to_dict()["optim"]
        assert cfg.model.name == "emoclip-vitb32" and cfg.data.mode == "caption"
    if name == "synthetic-tiny":
        assert cfg.model.name == "emoclip-synthetic-tiny" and cfg.model.pretrained_backbone is False


# ---- guards ---------------------------------------------------------------------------------------


def test_offline_pretrained_backbone_fails_with_a_clear_message(tmp_path, monkeypatch):
    from emoclip.weights import hub

    monkeypatch.setattr(hub, "cached_open_clip_file", lambda *a, **k: None)
    cfg = load_config(
        None, ["model.name=clip-vitb32", f"out.dir={tmp_path}", "data.dataset=synthetic"]
    )
    with pytest.raises(
        RuntimeError, match="cannot load the pretrained backbone.*pretrained_backbone=false"
    ):
        train(cfg)


def test_push_to_hub_fails_fast_offline(tmp_path, monkeypatch):
    from emoclip.train import hub_publish as train_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(train_hub.HubUnavailableError, match="HF_HUB_OFFLINE"):
        train(tiny_config(tmp_path, "out.push_to_hub=someone/tiny", "train.max_steps=1"))
    assert not (tmp_path / "state.pt").exists()  # failed before training


def test_model_card_mentions_data_licence_and_metrics():
    from emoclip.train.hub_publish import model_card

    config = emoclip.EmoCLIPConfig(
        name="m",
        provenance={
            "training": {"data": {"dataset": "mafw", "mode": "caption", "fold": 1}, "steps": 10},
            "metrics": {"val": {"war": 0.5, "uar": 0.25, "num_samples": 8, "classes": "mafw-11"}},
        },
    )
    card = model_card(config, "someone/m")
    assert (
        "license: other" in card
        and "MAFW" in card
        and "| val | mafw-11 | 8 | 50.00 | 25.00 |" in card
    )


def test_wandb_is_optional_with_a_clear_error(tmp_path):
    try:
        import wandb  # noqa: F401

        pytest.skip("wandb is installed")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="pip install wandb"):
        train(tiny_config(tmp_path, "log.wandb=true", "train.max_steps=1"))


# ---- evaluation command -------------------------------------------------------------------------


def _frame_folder(folder: Path, n: int = 4) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((40, 40, 3), 40 * i, np.uint8))


def test_evaluate_command_writes_json_and_plot_and_matches_compounds(tmp_path):
    from emoclip.train.evaluate import main

    for name in ("a", "b", "c"):
        _frame_folder(tmp_path / "clips" / name)
    (tmp_path / "m.csv").write_text(
        "path,caption,label\nclips/a,,happiness\nclips/b,,happiness_surprise\nclips/c,,contempt\n"
    )
    out = tmp_path / "eval"
    code = main(
        [
            "--model",
            "test-emoclip-tiny",
            "--data.dataset",
            "manifest",
            f"--data.manifest={tmp_path / 'm.csv'}",
            "--data.classes",
            "mafw-11",
            "--classes",
            "basic-7+compounds",
            "--num-frames",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "manifest-test.json").read_text())
    metrics = report["metrics"]
    assert metrics["class_names"][:7] == [
        c.name for c in emoclip.preset("basic-7+compounds").classes
    ]
    assert metrics["num_samples"] == 2 and metrics["unmatched"] == 1  # contempt is not scored
    assert metrics["support"]["happiness"] == 1 and metrics["support"]["happily surprised"] == 1
    assert (out / "manifest-test-confusion.png").stat().st_size > 0
    assert (out / "manifest-test-predictions.csv").read_text().count("\n") == 4


def test_evaluate_synthetic_is_deterministic_and_rejects_unknown_options(tmp_path):
    from emoclip.train.evaluate import main

    args = [
        "--model",
        "test-emoclip-tiny",
        "--data.dataset",
        "synthetic",
        "--data.synthetic_clips",
        "8",
        "--num-frames",
        "2",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "synthetic-test.json").read_text())["metrics"]
    b = json.loads((tmp_path / "b" / "synthetic-test.json").read_text())["metrics"]
    assert a["confusion"] == b["confusion"] and a["num_samples"] == 8
    assert main([*args, "--out", str(tmp_path), "--data.bogus", "1"]) == 2


def test_evaluate_writes_one_json_per_fold_and_a_summary(tmp_path):
    from emoclip.train.evaluate import main

    root = tmp_path / "DFEW"
    for clip in ("00001", "00002"):
        _frame_folder(root / "DFEW_Frame_Face" / clip)
    for fold in (1, 2):  # labels are 0-based DFEW indices: 0 happiness, 4 surprise
        (root / f"DFEW_set_{fold}_test.txt").write_text("x/00001 4 0\nx/00002 4 4\n")
    out = tmp_path / "eval"
    assert (
        main(
            [
                "--model",
                "test-emoclip-tiny",
                "--data.dataset=dfew",
                f"--data.root={root}",
                "--data.fold",
                "1,2",
                "--num-frames",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for fold in (1, 2):
        report = json.loads((out / f"dfew-fold{fold}-test.json").read_text())
        assert report["fold"] == fold and report["metrics"]["num_samples"] == 2
        assert report["metrics"]["support"] == {
            "happiness": 1,
            "sadness": 0,
            "neutral": 0,
            "anger": 0,
            "surprise": 1,
            "disgust": 0,
            "fear": 0,
        }
    summary = json.loads((out / "dfew-test-summary.json").read_text())
    assert summary["folds"] == [1, 2] and set(summary["metrics"]) >= {"war", "uar"}
    # every report states the frame sampling (default: the authors' consecutive) and the padding
    assert summary["eval_sampling"] == "consecutive" and summary["distributed_padding"] == "authors"
    report = json.loads((out / "dfew-fold1-test.json").read_text())
    assert report["eval_sampling"] == report["metrics"]["eval_sampling"] == "consecutive"
    assert report["distributed_padding"] == {
        "mode": "authors",
        "world_size": 1,
        "padded_duplicates": 0,
    }


def test_evaluate_eval_sampling_option_is_used_and_reported(tmp_path, capsys):
    from emoclip.media import sample_indices
    from emoclip.train import evaluate, scoring
    from emoclip.train.augment import eval_rng

    root = tmp_path / "DFEW"
    folder = root / "DFEW_Frame_Face" / "00001"
    folder.mkdir(parents=True)
    for i in range(12):  # frame i has grey level 20 i
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((40, 40, 3), 20 * i, np.uint8))
    (root / "DFEW_set_1_test.txt").write_text("x/00001 12 0\n")
    seen = []
    real = scoring.predict  # evaluate_dataset (re-exported by evaluate) calls it there

    def spy(model, dataset, *a, **kw):
        pre = model.config.preprocess
        grey = dataset[0]["frames"][:, 0, 0, 0] * pre.std[0] + pre.mean[0]
        seen.append([round(float(g) * 255 / 20) for g in grey])
        return real(model, dataset, *a, **kw)

    scoring.predict = spy
    try:
        for sampling in ("spread", "consecutive"):
            out = tmp_path / sampling
            assert (
                evaluate.main(
                    [
                        "--model",
                        "test-emoclip-tiny",
                        "--data.dataset=dfew",
                        f"--data.root={root}",
                        "--data.temporal_stride=1",
                        "--eval-sampling",
                        sampling,
                        "--num-frames",
                        "3",
                        "--seed",
                        "5",
                        "--out",
                        str(out),
                    ]
                )
                == 0
            )
            report = json.loads((out / "dfew-fold1-test.json").read_text())
            assert report["eval_sampling"] == report["data"]["eval_sampling"] == sampling
            assert f"sampling={sampling}" in capsys.readouterr().out
    finally:
        scoring.predict = real
    spread, consecutive = seen
    assert spread == sample_indices(12, 3).tolist()  # over the whole clip
    start = int(eval_rng(5, 0).integers(12))
    assert consecutive == [(start + j) % 12 for j in range(3)]  # 3 neighbours from the seeded start
