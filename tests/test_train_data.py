"""Training data: the authors' dataset layouts on tiny fake trees, manifests, synthetic clips,
temporal sampling, transforms, bad rows and batching."""

from __future__ import annotations

import itertools
import json
import logging
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emoclip.classes import preset
from emoclip.media import sample_indices
from emoclip.model.config import PreprocessConfig
from emoclip.model.preprocess import to_tensor
from emoclip.testing.media import moving_face_frames, write_video
from emoclip.train import synthetic as syn
from emoclip.train.augment import temporal_indices
from emoclip.train.data_config import DataConfig
from emoclip.train.datasets import SyntheticVideoDataset, VideoEmotionDataset
from emoclip.train.layouts import DFEW_CLASSES, MAFW_CLASSES
from emoclip.train.loading import build_dataset, class_set, collate

S, T = 32, 4
PRE = PreprocessConfig(image_size=S, num_frames=T)


# ---- fake trees --------------------------------------------------------------------------------


def _colour(k: int) -> tuple[int, int, int]:
    """RGB of frame k: the red channel encodes k, so sampled frames can be recovered."""
    return (20 + 10 * k, 100, 200 - 10 * k)


def write_frames(folder: Path, n: int, ext: str = ".png") -> Path:
    """`n` uniform 48x48 frames named so that lexicographic order is frame order."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        rgb = np.full((48, 48, 3), _colour(k), np.uint8)
        cv2.imwrite(str(folder / f"{k:05d}{ext}"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def frame_ids(frames: torch.Tensor) -> list[int]:
    """Recover the frame indices of an item from the centre pixels (rotation/flip-invariant)."""
    mean, std = torch.tensor(PRE.mean), torch.tensor(PRE.std)
    red = frames[:, 0, S // 2, S // 2] * std[0] + mean[0]
    return [round((float(r) * 255 - 20) / 10) for r in red]


MAFW_TRAIN = [
    "00001.mp4\tanger\t一个男人生气地说话，皱着眉头。\tA man speaks angrily with a frown.",
    "00002.mp4\thappiness\t她开心地笑了。\tShe smiles broadly.",
    "00003.mp4\tsadness\t文件夹不存在。\tThe folder of this clip is missing.",
    "00004.mp4\tboredom\t未知标签。\tUnknown label.",
    "00005.mp4\tneutral",
]


@pytest.fixture()
def mafw(tmp_path: Path) -> Path:
    root = tmp_path / "MAFW"
    sets = root / "Train_Test_Set"
    files = {
        sets / "single/with_caption_new/set_1/train.txt": MAFW_TRAIN,
        sets / "single/no_caption_new/set_1/test.txt": [
            "00006.mp4\tsurprise",
            "00007.mp4\tcontempt",
        ],
        sets / "compound/with_caption_new/set_2/train.txt": [
            "00008.mp4\tanger_disgust\t愤怒又厌恶。\tAn angry, disgusted grimace.",
            "00001.mp4\tanger\t生气。\tAngry.",
        ],
    }
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    for name, n in {
        "00001": 10,
        "00002": 7,
        "00004": 3,
        "00005": 5,
        "00006": 9,
        "00007": 4,
        "00008": 6,
    }.items():
        write_frames(root / "data" / "faces" / name, n, ".jpg" if name == "00002" else ".png")
    return root


@pytest.fixture()
def dfew(tmp_path: Path) -> Path:
    root = tmp_path / "DFEW"
    root.mkdir()
    (root / "DFEW_set_1_train.txt").write_text(
        "/data/DFEW/clips/00010 10 0\n"
        "/data/DFEW/clips/00011 8 3\n"
        "/data/DFEW/clips/00012/ 5 6\n"
        "/data/DFEW/clips/00099 5 1\n"  # no frame folder
        "/data/DFEW/clips/00013 5 7\n"  # label out of range
        "\n",
        encoding="utf-8",
    )
    (root / "DFEW_set_1_test.txt").write_text("/data/DFEW/clips/00014 6 2\n", encoding="utf-8")
    for name, n in {"00010": 10, "00011": 8, "00012": 5, "00013": 5, "00014": 6}.items():
        write_frames(root / "DFEW_Frame_Face" / name, n)
    return root


@pytest.fixture()
def ferv39k(tmp_path: Path) -> Path:
    root = tmp_path / "FERV39k"
    rows = {
        "train": ["Scene1/Happy/0001 5 0", "Scene2/Angry/0002 6 3", "Scene2/Angry/0003 4 3"],
        "test": ["/abs/2_ClipsforFaceCrop/Scene3/Sad/0004 5 1"],
    }
    for split, lines in rows.items():
        (root / f"{split}_image.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}_image.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for line in lines:
            write_frames(root.joinpath("2_ClipsforFaceCrop", *line.split()[0].split("/")[-3:]), 5)
    descriptions = {"Scene1_Happy_0001": "A woman laughs.", "Scene2_Angry_0002": "A man shouts."}
    (root / "train_descriptions.json").write_text(json.dumps(descriptions), encoding="utf-8")
    return root


@pytest.fixture()
def afew(tmp_path: Path) -> Path:
    root = tmp_path / "AFEW"
    for split, emotion, clip in [
        ("train", "Angry", "c1"),
        ("train", "Happiness", "c2"),
        ("train", "Sad", "c3"),
        ("train", "Bored", "c4"),
        ("train", "surprise", "c5"),
        ("validation", "Fear", "c6"),
    ]:
        write_frames(root / "AFEW_Face" / split / emotion / clip, 4)
    (root / "AFEW_Face" / "train" / "Happy" / "empty").mkdir(parents=True)
    return root


def build(split: str = "train", **kwargs):
    train = kwargs.pop("train", None)
    seed = kwargs.pop("seed", 0)
    return build_dataset(DataConfig(**kwargs), split, PRE, train=train, seed=seed)


def check_item(item: dict) -> None:
    assert item["frames"].shape == (T, 3, S, S)
    assert item["frames"].dtype == torch.float32
    assert isinstance(item["text"], str) and isinstance(item["id"], str)
    assert item["label"] == (item["labels"][0] if item["labels"] else -1)


# ---- layouts -----------------------------------------------------------------------------------


def test_mafw_single_train_and_test(mafw: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        ds = build(dataset="mafw", root=str(mafw))
    assert class_set(DataConfig(dataset="mafw")).names == list(MAFW_CLASSES)
    assert [s.id for s in ds.samples] == ["00001", "00002", "00005"]
    assert [s.caption for s in ds.samples] == [
        "A man speaks angrily with a frown.",
        "She smiles broadly.",
        "-",
    ]
    assert [s.labels for s in ds.samples] == [(0,), (3,), (4,)]
    assert ds.skipped == 2 and len(ds.problems) == 2
    assert "line 3" in ds.problems[0] and "not found" in ds.problems[0]
    assert "line 4" in ds.problems[1] and "boredom" in ds.problems[1]
    assert "line 3" in caplog.text and "line 4" in caplog.text
    item = ds[1]
    check_item(item)
    assert item["text"] == "She smiles broadly." and item["label"] == 3 and item["id"] == "00002"

    test = build("test", dataset="mafw", root=str(mafw), fold="1")  # string fold is accepted
    assert not test.train and test.skipped == 0
    assert [(s.id, s.caption, s.labels) for s in test.samples] == [
        ("00006", "-", (6,)),
        ("00007", "-", (7,)),
    ]


def test_mafw_compound_and_fold_checks(mafw: Path):
    ds = build(dataset="mafw", root=str(mafw), label_type="compound", fold=2)
    assert [s.labels for s in ds.samples] == [(0, 1), (0,)]
    batch = collate([ds[0], ds[1]])
    assert batch["labels"].tolist() == [0, 0]
    assert batch["label_sets"] == [[0, 1], [0]]
    assert batch["texts"][0] == "An angry, disgusted grimace."
    for bad in (0, 6, "x"):
        with pytest.raises(ValueError, match="fold"):
            build(dataset="mafw", root=str(mafw), fold=bad)
    with pytest.raises(FileNotFoundError, match="set_3"):
        build(dataset="mafw", root=str(mafw), fold=3)


def test_dfew_layout(dfew: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        ds = build(dataset="dfew", root=str(dfew))
    assert "every caption is blank" in caplog.text  # DFEW has no captions: use mode "class"
    assert class_set(DataConfig(dataset="dfew")).names == list(DFEW_CLASSES)
    assert [(s.id, s.labels, s.caption) for s in ds.samples] == [
        ("00010", (0,), " "),
        ("00011", (3,), " "),
        ("00012", (6,), " "),
    ]
    assert ds.skipped == 2
    assert "line 4" in ds.problems[0] and "line 5" in ds.problems[1] and "'7'" in ds.problems[1]
    check_item(ds[2])
    test = build("test", dataset="dfew", root=str(dfew), mode="class")
    item = test[0]
    assert item["label"] == 2 and item["text"] == preset("dfew-7").classes[2].descriptions[0]


def test_ferv39k_with_and_without_descriptions(ferv39k: Path, caplog: pytest.LogCaptureFixture):
    ds = build(dataset="ferv39k", root=str(ferv39k))
    assert [(s.id, s.labels, s.caption) for s in ds.samples] == [
        ("Scene1_Happy_0001", (0,), "A woman laughs."),
        ("Scene2_Angry_0002", (3,), "A man shouts."),
        ("Scene2_Angry_0003", (3,), " "),  # key missing from the JSON
    ]
    with caplog.at_level(logging.WARNING):
        test = build("test", dataset="ferv39k", root=str(ferv39k))
    assert "test_descriptions.json" in caplog.text
    assert [(s.id, s.labels, s.caption) for s in test.samples] == [("Scene3_Sad_0004", (1,), " ")]
    check_item(test[0])


def test_afew_both_naming_styles(afew: Path):
    ds = build(dataset="afew", root=str(afew), mode="class")
    assert class_set(DataConfig(dataset="afew")).names == list(DFEW_CLASSES)
    got = {s.id: s.labels for s in ds.samples}
    assert got == {"Angry/c1": (3,), "Happiness/c2": (0,), "Sad/c3": (1,), "surprise/c5": (4,)}
    assert ds.skipped == 2  # Bored (unknown emotion) and an empty clip folder
    assert any("Bored" in p for p in ds.problems)
    assert any("no image files" in p for p in ds.problems)
    for split in ("test", "validation"):
        test = build(split, dataset="afew", root=str(afew))
        assert [(s.id, s.labels) for s in test.samples] == [("Fear/c6", (6,))]
        assert test.split == "test"


def test_custom_class_set_maps_native_labels_by_name(dfew: Path, tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text("classes:\n  fear: scared face\n  happiness: happy face\n", encoding="utf-8")
    ds = build(dataset="dfew", root=str(dfew), classes=str(path), mode="class")
    assert class_set(DataConfig(dataset="dfew", classes=str(path))).names == ["fear", "happiness"]
    assert [(s.id, s.labels) for s in ds.samples] == [("00010", (1,)), ("00012", (0,))]
    assert ds.skipped == 3  # anger is not in the set, plus the two bad rows
    assert ds[1]["text"] == "scared face"


# ---- modes -------------------------------------------------------------------------------------


def test_mode_class_uses_class_descriptions(mafw: Path):
    ds = build(dataset="mafw", root=str(mafw), mode="class")
    descriptions = preset("mafw-11").classes
    assert [ds[i]["text"] for i in range(len(ds))] == [
        descriptions[k].descriptions[0] for k in (0, 3, 4)
    ]


def test_leave_one_out(mafw: Path):
    train = build(dataset="mafw", root=str(mafw), mode="loo", leave_out="Anger")
    assert [s.id for s in train.samples] == ["00002", "00005"]
    assert all(
        item["text"] == preset("mafw-11").classes[item["label"]].descriptions[0]
        for item in (train[0], train[1])
    )
    test = build("test", dataset="mafw", root=str(mafw), mode="loo", leave_out="surprise")
    assert [s.id for s in test.samples] == ["00006"]
    comp = build(
        dataset="mafw",
        root=str(mafw),
        label_type="compound",
        fold=2,
        mode="loo",
        leave_out="disgust",
    )
    assert [s.id for s in comp.samples] == ["00001"]  # drops every sample whose labels contain it
    with pytest.raises(ValueError, match="leave_out"):
        build(dataset="mafw", root=str(mafw), mode="loo")
    with pytest.raises(ValueError, match="boredom"):
        build(dataset="mafw", root=str(mafw), mode="loo", leave_out="boredom")


# ---- sampling and transforms ------------------------------------------------------------------


def test_temporal_indices_rules():
    kept = np.arange(0, 40, 4)
    assert temporal_indices(40, 4, stride=4).tolist() == kept[sample_indices(10, 4)].tolist()
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, stride = int(rng.integers(1, 60)), int(rng.integers(1, 5))
        kept = list(range(0, n, stride))
        got = temporal_indices(n, 8, stride=stride, rng=rng).tolist()
        assert len(got) == 8 and set(got) <= set(kept)
        if len(kept) >= 8:  # consecutive kept frames, wrapping once
            pos = [kept.index(g) for g in got]
            assert all((b - a) % len(kept) == 1 for a, b in itertools.pairwise(pos))

    # wrap once, then reflect-pad: 3 kept frames, start at the last one
    class Last:
        def integers(self, n):
            return n - 1

    assert temporal_indices(3, 8, rng=Last()).tolist() == [2, 0, 1, 2, 1, 0, 2, 0]
    assert temporal_indices(1, 5, rng=np.random.default_rng(0)).tolist() == [0] * 5
    assert temporal_indices(1, 5).tolist() == [0] * 5


def test_spread_eval_sampling_is_deterministic_and_uniform(dfew: Path):
    ds = build("test", dataset="dfew", root=str(dfew), temporal_stride=1, eval_sampling="spread")
    a, b = ds[0], ds[0]
    assert torch.equal(a["frames"], b["frames"])
    assert ds.frame_sampling == "spread"
    assert frame_ids(a["frames"]) == sample_indices(6, T).tolist()
    ds2 = build(
        dataset="dfew", root=str(dfew), train=False, eval_sampling="spread"
    )  # train split, eval
    assert frame_ids(ds2[0]["frames"]) == np.arange(0, 10, 4)[sample_indices(3, T)].tolist()
    assert frame_ids(ds2[0]["frames"]) == [0, 4, 4, 8]  # 3 kept frames for T=4: one repeated


def test_consecutive_eval_sampling_is_the_authors_random_start_seeded_per_clip(dfew: Path):
    from emoclip.train.augment import eval_rng

    ds = build("test", dataset="dfew", root=str(dfew), temporal_stride=1)  # the default
    assert DataConfig().eval_sampling == "consecutive" and ds.frame_sampling == "consecutive"
    start = int(eval_rng(0, 0).integers(6))  # clip 00014: 6 frames, T=4 consecutive, wrapping
    assert frame_ids(ds[0]["frames"]) == [(start + j) % 6 for j in range(T)]
    assert torch.equal(ds[0]["frames"], ds[0]["frames"])  # repeatable
    starts = {
        frame_ids(
            build("test", dataset="dfew", root=str(dfew), temporal_stride=1, seed=seed)[0]["frames"]
        )[0]
        for seed in range(12)
    }
    assert len(starts) > 1  # a random start per seed, as the authors' (unseeded) eval.py
    # stride 4 on 10 frames keeps 0, 4, 8: T=4 consecutive kept frames wrap to the start
    ds2 = build(dataset="dfew", root=str(dfew), train=False)
    s = int(eval_rng(0, 0).integers(3))
    assert frame_ids(ds2[0]["frames"]) == [[0, 4, 8][(s + j) % 3] for j in range(T)]
    with pytest.raises(ValueError, match="eval_sampling"):
        build("test", dataset="dfew", root=str(dfew), eval_sampling="uniform")


def test_training_sampling_differs_across_draws_and_is_seeded(mafw: Path):
    ds = build(dataset="mafw", root=str(mafw), temporal_stride=1)
    torch.manual_seed(0)
    draws = [ds[0]["frames"] for _ in range(6)]
    assert len({tuple(frame_ids(d)) for d in draws}) > 1  # random start
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    for d in draws:  # T consecutive frames of the 10 (wrapping)
        ids = frame_ids(d)
        assert all((b - a) % 10 == 1 for a, b in itertools.pairwise(ids))
    torch.manual_seed(0)
    again = [ds[0]["frames"] for _ in range(6)]
    assert all(torch.equal(x, y) for x, y in zip(draws, again))


def test_spatial_transforms(tmp_path: Path):
    folder = tmp_path / "clip"
    folder.mkdir()
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (255, 0, 0)  # left half red (the crop keeps x in [8, 56))
    img[:, 32:] = (0, 0, 255)
    for k in range(4):
        cv2.imwrite(str(folder / f"{k}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (tmp_path / "m.csv").write_text("path,caption,label\nclip,x,\n", encoding="utf-8")
    cfg = DataConfig(dataset="manifest", manifest=str(tmp_path / "m.csv"))
    evaluation = build_dataset(cfg, "test", PRE)[0]["frames"]
    square = cv2.resize(img[:, 8:56], (S, S), interpolation=cv2.INTER_AREA)
    expected = to_tensor(np.stack([square] * T), PRE)
    assert torch.allclose(evaluation, expected)
    train = build_dataset(cfg, "train", PRE)
    torch.manual_seed(1)
    flips, filled = set(), 0
    for _ in range(12):
        x = train[0]["frames"]
        assert all(torch.equal(x[0], f) for f in x[1:])  # one draw for every frame of the clip
        flips.add(bool(x[0, 0, S // 2, 2] < x[0, 0, S // 2, S - 3]))  # red on the right: flipped
        # corners rotated in are the mean colour (~0 once normalised), as the authors'
        corners = x[0, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # (3, 4)
        filled += bool((corners.abs() < 0.02).all(dim=0).any())
    assert flips == {True, False}
    assert filled > 0


# ---- manifests ---------------------------------------------------------------------------------


@pytest.fixture()
def manifest_tree(tmp_path: Path) -> Path:
    (tmp_path / "clips").mkdir()
    write_video(
        tmp_path / "clips" / "a.webm",
        (np.full((48, 64, 3), _colour(k), np.uint8) for k in range(12)),
        fps=10,
    )
    write_frames(tmp_path / "frames" / "b", 6)
    (tmp_path / "clips" / "broken.webm").write_bytes(b"not a video at all" * 10)
    return tmp_path


def test_manifest_csv(manifest_tree: Path, caplog: pytest.LogCaptureFixture):
    (manifest_tree / "m.csv").write_text(
        "path,caption,label\n"
        'clips/a.webm,"A man smiles, then frowns.",happiness\n'
        "frames/b,Someone looks sad.,sadness\n"
        "clips/missing.webm,gone,anger\n"
        "frames/b,no label here,\n"
        "frames/b,odd label,ennui\n",
        encoding="utf-8",
    )
    cfg = DataConfig(dataset="manifest", manifest=str(manifest_tree / "m.csv"), classes="dfew-7")
    ds = build_dataset(cfg, "test", PRE)
    assert [(s.id, s.is_video, s.labels) for s in ds.samples] == [
        ("clips/a.webm", True, (0,)),
        ("frames/b", False, (1,)),
        ("frames/b", False, ()),
        ("frames/b", False, ()),
    ]
    assert ds.skipped == 1 and len(ds.problems) == 2  # missing file skipped; 'ennui' kept as -1
    assert "line 4" in ds.problems[0] and "line 6" in ds.problems[1]
    video = ds[0]
    check_item(video)
    assert video["text"] == "A man smiles, then frowns." and video["label"] == 0
    assert all(0 <= k < 12 for k in frame_ids(video["frames"]))
    assert ds[3]["label"] == -1 and ds[3]["labels"] == []
    supervised = build_dataset(DataConfig(**{**cfg.__dict__, "mode": "class"}), "test", PRE)
    assert len(supervised) == 2 and supervised.skipped == 3


def test_manifest_jsonl_split_column_and_broken_video(manifest_tree: Path):
    rows = [
        {"path": "clips/a.webm", "caption": "smiling", "label": "happiness", "split": "train"},
        {
            "path": "clips/broken.webm",
            "caption": "broken",
            "label": ["anger", "fear"],
            "split": "train",
        },
        {"path": "frames/b", "caption": "frowning", "label": 1, "id": "clip-b", "split": "test"},
        {"path": "frames/b", "caption": "both", "label": None},
    ]
    lines = [json.dumps(r) for r in rows] + ["{not json"]
    (manifest_tree / "m.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = DataConfig(
        dataset="manifest",
        manifest=str(manifest_tree / "m.jsonl"),
        classes="dfew-7",
        root=str(manifest_tree),
    )
    train = build_dataset(cfg, "train", PRE, train=False)
    assert [(s.caption, s.labels) for s in train.samples] == [
        ("smiling", (0,)),
        ("broken", (3, 6)),
        ("both", ()),
    ]
    assert train.skipped == 1 and "line 5" in train.problems[0]
    item = train[1]  # the broken video is reported and replaced by the next clip
    assert item["text"] == "both" and train.skipped == 2 and "broken.webm" in train.problems[-1]
    assert train[1]["text"] == "both"  # remembered: not decoded again
    assert train.skipped == 2
    test = build_dataset(cfg, "test", PRE)
    assert [(s.id, s.labels) for s in test.samples] == [("clip-b", (1,)), ("frames/b", ())]


def test_manifest_class_file_beside_manifest(tmp_path: Path):
    (tmp_path / "classes_all.yaml").write_text("classes:\n  calm: a calm face\n", encoding="utf-8")
    (tmp_path / "m.csv").write_text("path,caption,label\n", encoding="utf-8")
    cfg = DataConfig(dataset="manifest", manifest=str(tmp_path / "m.csv"))
    assert class_set(cfg).names == ["calm"]
    elsewhere = DataConfig(dataset="manifest", manifest=str(tmp_path / "x" / "m.csv"))
    assert class_set(elsewhere).name == "mafw-11"


def test_face_crop_on_video(tmp_path: Path):
    write_video(tmp_path / "face.webm", moving_face_frames(10, size=(240, 320)), fps=10)
    (tmp_path / "m.csv").write_text("path,caption,label\nface.webm,a face,\n", encoding="utf-8")
    pre = PreprocessConfig(image_size=64, num_frames=4)
    spread = {}
    for face_crop in (False, True):
        cfg = DataConfig(dataset="manifest", manifest=str(tmp_path / "m.csv"), face_crop=face_crop)
        ds = build_dataset(cfg, "test", pre)
        x = ds[0]["frames"]
        assert x.shape == (4, 3, 64, 64)
        spread[face_crop] = float((x[0] - x[-1]).abs().mean())
        ds.close()
    # The face moves across the frame: centre crops change a lot, face crops follow it.
    assert spread[True] < 0.5 * spread[False]


# ---- synthetic ---------------------------------------------------------------------------------


def test_synthetic_train_and_test(tmp_path: Path):
    cfg = DataConfig(dataset="synthetic", synthetic_clips=6)
    assert class_set(cfg).names == list(syn.CLASSES)
    train = build_dataset(cfg, "train", PRE, seed=3)
    assert isinstance(train, SyntheticVideoDataset) and len(train) == 6
    torch.manual_seed(0)
    a, b = train[0], train[0]
    check_item(a)
    assert a["text"] != b["text"] or not torch.equal(a["frames"], b["frames"])  # fresh draws
    test = build_dataset(cfg, "test", PRE, seed=3)
    items = [test[i] for i in range(6)]
    assert all(list(syn.CLASSES)[it["label"]] in syn.TEST for it in items)
    assert torch.equal(items[2]["frames"], build_dataset(cfg, "test", PRE, seed=3)[2]["frames"])
    # identical to what synthetic.sample draws (and write_dataset writes) for clip i
    rng = np.random.default_rng(np.random.SeedSequence(3).spawn(6)[2])
    frames, text, label = syn.sample(rng, split="test", num_frames=T, size=S)
    assert items[2]["text"] == text and list(syn.CLASSES)[items[2]["label"]] == label
    assert torch.equal(items[2]["frames"], to_tensor(frames, PRE))


def test_synthetic_class_mode_and_loo():
    cfg = DataConfig(dataset="synthetic", synthetic_clips=8, mode="class")
    names = list(syn.CLASSES)
    descriptions = syn.class_descriptions("all")
    train = build_dataset(cfg, "train", PRE)
    for i in range(4):
        item = train[i]
        assert names[item["label"]] not in syn.HELDOUT
        assert item["text"] == descriptions[names[item["label"]]]
    loo = DataConfig(dataset="synthetic", synthetic_clips=8, mode="loo", leave_out="happiness")
    assert all(names[build_dataset(loo, "train", PRE)[i]["label"]] != "happiness" for i in range(8))
    assert {names[build_dataset(loo, "test", PRE)[i]["label"]] for i in range(3)} == {"happiness"}
    small = DataConfig(dataset="synthetic", synthetic_clips=4, classes="synthetic-heldout")
    test = build_dataset(small, "test", PRE)
    assert class_set(small).names == list(syn.class_descriptions("heldout"))
    assert class_set(small).names[test[0]["label"]] in syn.TEST


def test_synthetic_three_way_split():
    """Training never draws a validation or test class's cues; validation and test draw only
    their own classes, from clips that share no nuisance draws."""
    names = list(syn.CLASSES)
    cfg = DataConfig(dataset="synthetic", synthetic_clips=16, synthetic_eval_clips=16)
    train = build_dataset(cfg, "train", PRE)
    held = {syn.CLASSES[n] for n in syn.HELDOUT}
    assert (
        set(train.expressions) == set(syn.training_expressions())
        and not set(train.expressions) & held
    )
    val, test = build_dataset(cfg, "validation", PRE), build_dataset(cfg, "test", PRE)
    assert {names[val[i]["label"]] for i in range(16)} <= set(syn.VALIDATION)
    assert {names[test[i]["label"]] for i in range(16)} <= set(syn.TEST)
    assert set(val.expressions) == {syn.CLASSES[n] for n in syn.VALIDATION}
    assert not torch.equal(val[0]["frames"], test[0]["frames"])
    for mode in ("class", "loo"):
        extra = {"leave_out": "happiness"} if mode == "loo" else {}
        pool = build_dataset(
            DataConfig(dataset="synthetic", mode=mode, **extra), "train", PRE
        ).expressions
        assert pool and not set(pool) & held
    assert class_set(DataConfig(dataset="synthetic", classes="synthetic-test")).names == [
        n for n in names if n in syn.TEST
    ]
    para = class_set(DataConfig(dataset="synthetic", classes="synthetic-all-paraphrased"))
    assert para.names == names and para.name == "synthetic-all-paraphrased"


# ---- batching ----------------------------------------------------------------------------------


def test_collate_and_dataloader(dfew: Path):
    ds = build(dataset="dfew", root=str(dfew), mode="class")
    assert isinstance(ds, VideoEmotionDataset)
    ds = pickle.loads(pickle.dumps(ds))  # what DataLoader workers receive
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["frames"].shape == (2, T, 3, S, S) and batch["frames"].dtype == torch.float32
    assert batch["tokens"].shape == (2, 77) and batch["tokens"].dtype == torch.int64
    assert batch["labels"].dtype == torch.int64 and batch["labels"].tolist() == [0, 3]
    assert batch["ids"] == ["00010", "00011"] and batch["label_sets"] == [[0], [3]]
    assert collate([ds[0]], context_length=16)["tokens"].shape == (1, 16)


def test_config_errors(tmp_path: Path):
    for kwargs, match in [
        ({"dataset": "kinetics"}, "dataset"),
        ({"dataset": "dfew", "root": str(tmp_path), "mode": "captions"}, "mode"),
        ({"dataset": "mafw", "root": str(tmp_path), "label_type": "multi"}, "label_type"),
        ({"dataset": "dfew"}, "root"),
        ({"dataset": "manifest"}, "manifest"),
        ({"dataset": "dfew", "root": str(tmp_path), "temporal_stride": 0}, "temporal_stride"),
    ]:
        with pytest.raises(ValueError, match=match):
            build("train", **kwargs)
    with pytest.raises(ValueError, match="split"):
        build("val", dataset="dfew", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="DFEW_set_1_train.txt"):
        build("train", dataset="dfew", root=str(tmp_path))
