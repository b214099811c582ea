"""Still images and folders of numbered frames (issue #10, sections 1 and 2).

The photographs are real: the astronaut (Eileen Collins, ``skimage.data.astronaut()``) and the
cameraman (``skimage.data.camera()``), both bundled with scikit-image; the cat
(``skimage.data.chelsea()``) has no human face. Formats, alpha, EXIF orientation and group photos
are generated from them; nothing is downloaded.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from emoclip.cli import main
from emoclip.faces.search import candidates, tiles
from emoclip.inference.encoding import NoFaceError
from emoclip.inference.predictor import EmotionPredictor
from emoclip.media import VideoDecodeError, probe_video
from emoclip.media.images import (
    ImageDecodeError,
    frame_folder,
    image_from_array,
    is_image_file,
    iter_frame_folder,
    read_image,
)
from emoclip.media.inputs import VideoLimits, iter_inputs
from emoclip.media.probe import LimitError
from emoclip.testing.media import face_patch, moving_face_frames, png_header_only, write_video
from emoclip.weights.files import save_checkpoint

ASTRONAUT_FACE = (177.0, 82.0, 95.0, 95.0)  # (x, y, w, h) in the 512x512 astronaut()
GROUP_SIDES = (420, 340, 280, 230, 190)  # face-patch sides in the group photo, largest first
FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WebP", ".bmp": "BMP", ".tif": "TIFF"}


def astronaut() -> np.ndarray:
    return skdata.astronaut()


def group_photo(size: tuple[int, int] = (1080, 1920)) -> np.ndarray:
    """A (H, W, 3) photo of five real faces (the astronaut's face at five sizes) on textured grey."""
    h, w = size
    canvas = np.random.default_rng(0).integers(90, 140, (h, w, 3)).astype(np.uint8)
    x = 40 * w // 1920
    for side in (s * w // 1920 for s in GROUP_SIDES):
        y = (h - side) // 2 + (side // 7 if side % 2 else -side // 9)
        canvas[y : y + side, x : x + side] = cv2.resize(
            face_patch(), (side, side), interpolation=cv2.INTER_AREA
        )
        x += side + 60 * w // 1920
    return canvas


def group_face_widths() -> list[float]:
    """Face widths in the group photo: the patch is 200 px, the face about 95 px of it."""
    return [side * 95 / 200 for side in GROUP_SIDES]


def save(path: Path, image: np.ndarray, **kwargs) -> Path:
    Image.fromarray(image).save(path, **kwargs)
    return path


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = EmotionPredictor(tiny_model, batch_size=8)
    yield p
    p.close()


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory) -> Path:
    return save_checkpoint(
        tiny_model.state_dict(),
        tiny_model.config,
        tmp_path_factory.mktemp("w") / "tiny.safetensors",
    )


# ----------------------------------------------------------------------------- reading images


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_every_format_reads_as_upright_rgb(ext, tmp_path):
    image = astronaut()
    path = save(
        tmp_path / f"a{ext}", image, **({"quality": 95} if ext in (".jpg", ".webp") else {})
    )
    still = read_image(path)
    assert still.format.upper() == FORMATS[ext].upper()
    assert still.image.shape == (512, 512, 3) and still.image.dtype == np.uint8
    lossless = ext in (".png", ".bmp", ".tif")
    err = np.abs(still.image.astype(int) - image).mean()
    assert err == 0 if lossless else err < 6


def test_png_alpha_is_composited_on_white(tmp_path):
    rgba = np.dstack([astronaut(), np.full((512, 512), 255, np.uint8)])
    rgba[:, :256, 3] = 0  # left half transparent
    still = read_image(save(tmp_path / "a.png", rgba))
    assert still.alpha
    assert (still.image[:, :256] == 255).all()
    assert np.array_equal(still.image[:, 256:], astronaut()[:, 256:])
    assert image_from_array(rgba).image[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode", ["L", "I;16", "CMYK", "P"])
def test_grey_16bit_cmyk_and_palette_become_rgb_uint8(mode, tmp_path):
    base = Image.fromarray(astronaut())
    if mode == "I;16":
        grey = np.asarray(base.convert("L"), dtype=np.uint16) * 257
        im = Image.fromarray(grey, "I;16")
        path = tmp_path / "a.png"
    else:
        im = base.convert(mode)
        path = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    im.save(path)
    still = read_image(path)
    assert still.image.shape == (512, 512, 3) and still.image.dtype == np.uint8
    reference = np.asarray(base.convert("L"), dtype=float)
    assert np.abs(still.image.astype(float).mean(2) - reference).mean() < 12  # the same picture


@pytest.mark.parametrize(
    "orientation, rotate",
    [(6, cv2.ROTATE_90_COUNTERCLOCKWISE), (8, cv2.ROTATE_90_CLOCKWISE), (3, cv2.ROTATE_180)],
)
def test_exif_orientation_is_applied_before_detection(orientation, rotate, tmp_path, predictor):
    # a phone stores the sensor's pixels sideways and says in EXIF how to turn them upright
    stored = cv2.rotate(astronaut(), rotate)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path / "phone.jpg", stored, exif=exif.tobytes(), quality=95)
    still = read_image(path)
    assert still.orientation == orientation and still.image.shape == (512, 512, 3)
    assert np.abs(still.image.astype(int) - astronaut()).mean() < 6
    pred = predictor.predict_image(path)
    assert pred.video["exif_orientation"] == orientation
    assert len(pred.tracks) == 1 and _iou(pred.tracks[0].box, ASTRONAUT_FACE) > 0.8
    # without applying EXIF the detector sees the face sideways (not where it is upright)
    assert not any(
        _iou(b.as_tuple(), ASTRONAUT_FACE) > 0.5
        for b in candidates(predictor.parts.faces.get(), stored)
    )


# ------------------------------------------------------------------------------- bad images


def _bad_images(tmp_path: Path) -> dict[str, tuple[Path, type, str]]:
    good = save(tmp_path / "good.jpg", astronaut())
    data = good.read_bytes()
    cases = {
        "empty.jpg": (b"", ImageDecodeError, "empty"),
        "truncated.jpg": (data[:200], ImageDecodeError, "truncated.jpg"),
        "garbage_after_signature.png": (
            b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
            ImageDecodeError,
            "garbage_after_signature.png",
        ),
        "text.jpg": (b"hello, not a picture\n" * 20, ImageDecodeError, "text.jpg"),
    }
    out = {}
    for name, (content, exc, match) in cases.items():
        (tmp_path / name).write_bytes(content)
        out[name] = (tmp_path / name, exc, match)
    out["wide_30000.png"] = (
        png_header_only(tmp_path / "wide_30000.png", 30000, 20),
        LimitError,
        "30000x20",
    )
    out["huge_30000x30000.png"] = (
        png_header_only(tmp_path / "huge_30000x30000.png", 30000, 30000),
        LimitError,
        "30000x30000",
    )
    zero = tmp_path / "zero_size.png"
    png_header_only(zero, 0, 0)
    out["zero_size.png"] = (zero, ImageDecodeError, "zero_size.png")
    gif = tmp_path / "anim.gif"
    Image.new("RGB", (8, 8)).save(gif)
    out["anim.gif"] = (gif, ImageDecodeError, "GIF")
    return out


def test_bad_images_get_clear_typed_errors(tmp_path, predictor, weights, capsys):
    for name, (path, exc, match) in _bad_images(tmp_path).items():
        with pytest.raises(exc, match=None) as info:
            read_image(path)
        assert match.lower() in str(info.value).lower(), (name, str(info.value))
        with pytest.raises(exc) as info:
            predictor.predict(path)
        assert match.lower() in str(info.value).lower(), (name, str(info.value))
        assert main(["predict", str(path), "--model", str(weights), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert f"emoclip: {path}: " in err and "Traceback" not in err, err


def test_size_limits_are_checked_from_the_header(tmp_path, tiny_model, monkeypatch):
    path = png_header_only(tmp_path / "big.png", 9000, 9000)  # 81 MP claimed, 100 bytes on disk
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    p = EmotionPredictor(tiny_model, limits=VideoLimits(max_pixels=8_300_000))
    with pytest.raises(LimitError, match="9000x9000"):
        p.predict(path)
    assert not decoded  # refused before a pixel was decoded
    with pytest.raises(LimitError, match="MB"):
        EmotionPredictor(tiny_model, limits=VideoLimits(max_bytes=10)).predict_image(path)


def test_the_video_decoder_still_refuses_images(tmp_path):
    path = save(tmp_path / "a.png", astronaut())
    with pytest.raises(VideoDecodeError, match="PNG image"):
        probe_video(path)
    assert (
        is_image_file(path)
        and not is_image_file(tmp_path)
        and not is_image_file(tmp_path / "missing.png")
    )


# --------------------------------------------------------------------------------- prediction


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_predict_image_in_every_format(ext, tmp_path, predictor):
    rgba = ext == ".png"
    image = np.dstack([astronaut(), np.full((512, 512), 255, np.uint8)]) if rgba else astronaut()
    path = save(tmp_path / f"a{ext}", image)
    pred = predictor.predict(path)  # predict routes images to predict_image
    assert pred.video["kind"] == "image" and pred.video["name"] == f"a{ext}"
    assert len(pred.tracks) == 1 and pred.tracks[0].primary
    assert _iou(pred.tracks[0].box, ASTRONAUT_FACE) > 0.8
    assert (
        len(pred.timeline) == 0
        and pred.faces.sampled_frames == 1
        and pred.faces.frames_with_face == 1
    )
    assert abs(sum(pred.probabilities.values()) - 1) < 1e-4 and not pred.warnings
    assert pred.probabilities == pytest.approx(pred.tracks[0].probabilities)
    assert pred.top_k(2)[0][0] == pred.top


def test_an_image_is_a_one_frame_clip_through_the_temporal_model(predictor):
    from emoclip.faces import FaceBox, crop_square

    image = astronaut()
    pred = predictor.predict_image(image)  # an (H, W, 3) array works too
    box = FaceBox(*pred.tracks[0].box)
    crop = crop_square(
        image,
        box,
        margin=predictor.parts.config.face_margin,
        size=predictor.parts.config.image_size,
    )
    frame = predictor.parts.encoder.encode(crop[None])  # (1, D)
    expected = predictor.parts.pooler.pool(frame[:, None, :])[0]  # (B=1, T=1, D) -> (D,)
    assert np.allclose(pred.embedding, expected.numpy(), atol=1e-5)
    assert predictor.model.temporal is not None  # the temporal model really ran, with T = 1


def test_the_clip_baseline_uses_the_frame_embedding():
    import emoclip

    baseline = EmotionPredictor(emoclip.load_model("test-clip-tiny"))
    assert baseline.model.temporal is None
    pred = baseline.predict_image(astronaut())
    from emoclip.faces import FaceBox, crop_square

    crop = crop_square(
        astronaut(),
        FaceBox(*pred.tracks[0].box),
        margin=baseline.parts.config.face_margin,
        size=baseline.parts.config.image_size,
    )
    frame = baseline.parts.encoder.encode(crop[None])[0].numpy()
    assert np.allclose(pred.embedding, frame / np.linalg.norm(frame), atol=1e-5)
    baseline.close()


def test_group_photo_reports_every_face_verified_then_largest_first(tmp_path, predictor):
    path = save(tmp_path / "group.jpg", group_photo(), quality=92)
    pred = predictor.predict_image(path)
    widths = [t.box[2] for t in pred.tracks]
    assert len(pred.tracks) == 5, widths
    assert widths == sorted(widths, reverse=True)
    for got, want in zip(widths, group_face_widths()):
        assert abs(got - want) < 0.25 * want
    assert [t.primary for t in pred.tracks] == [True, False, False, False, False]
    assert [t.track_id for t in pred.tracks] == [0, 1, 2, 3, 4]
    assert pred.probabilities == pytest.approx(pred.tracks[0].probabilities)
    assert pred.faces.tracks == 5 and len(pred.timeline) == 0 and pred.scope == "face"
    # boxes do not overlap: one per face
    assert all(
        _iou(a.box, b.box) == 0 for i, a in enumerate(pred.tracks) for b in pred.tracks[i + 1 :]
    )
    data = json.loads(pred.to_json())
    assert [t["box"] for t in data["tracks"]] == [
        [pytest.approx(v, abs=1e-3) for v in t.box] for t in pred.tracks
    ]
    rows = list(csv.DictReader(io.StringIO(pred.to_csv())))
    track_rows = [r for r in rows if r["scope"] == "track"]
    assert len(track_rows) == 5 * len(pred.classes)
    assert all(len(r["box"].split()) == 4 for r in track_rows)
    assert all(r["box"] == "" for r in rows if r["scope"] != "track")
    # evidence per face, no time axis: no moments, and each face's own margin and words
    e = pred.evidence
    assert e is not None and not e.moments and "photo has no moments" in e.no_moments
    assert len(e.faces) == 5 and all(not f.moments for f in e.faces)
    for face, track in zip(e.faces, pred.tracks):
        ranked = sorted(track.probabilities.values(), reverse=True)
        assert face.top == track.top and face.margin == pytest.approx(ranked[0] - ranked[1])
    assert len(data["evidence"]["faces"]) == 5


def test_the_default_max_faces_does_not_cap_a_photo(tmp_path, predictor):
    assert predictor.settings.max_faces < 5
    assert len(predictor.predict_image(group_photo()).tracks) == 5


def test_tiles_cover_the_image_at_every_scale():
    for w, h in [(1920, 1080), (1080, 1920), (800, 600), (4000, 3000)]:
        covered = {}
        for x, y, side in tiles(w, h):
            mask = covered.setdefault(side, np.zeros((h, w), bool))
            mask[y : y + side, x : x + side] = True
            assert x + min(side, w) <= w and y + min(side, h) <= h
        assert all(m.all() for m in covered.values())
    # a small image gets the 128 px tiles of the fine level only; one that size is searched whole
    assert {side for _, _, side in tiles(250, 200)} == {128}
    assert tiles(128, 96) == []


def test_a_photo_without_a_face(tmp_path, tiny_model, predictor):
    cat = save(tmp_path / "chelsea.png", skdata.chelsea())
    pred = predictor.predict_image(cat)
    assert pred.tracks == [] and any("no face" in w for w in pred.warnings)
    assert pred.scope == "whole image"
    assert pred.faces.frames_without_face == 1
    skip = EmotionPredictor(tiny_model, face_fallback="skip")
    with pytest.raises(NoFaceError, match="no face"):
        skip.predict_image(cat)
    skip.close()


def test_cameraman_is_found_too(predictor):
    camera = np.repeat(skdata.camera()[..., None], 3, axis=2)
    pred = predictor.predict_image(camera)
    assert len(pred.tracks) == 1 and 150 < pred.tracks[0].box[0] < 220


# ------------------------------------------------------------------------------ frame folders


def _frames(folder: Path, n: int, name: str = "{:d}.png") -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(moving_face_frames(n, size=(240, 320))):
        save(folder / name.format(i + 1), frame)
    return folder


def test_frame_folder_recognition(tmp_path):
    clip = frame_folder(_frames(tmp_path / "clip", 12))  # 1.png ... 12.png: sorted by number
    assert clip is not None and clip.numbers == tuple(range(1, 13))
    assert [p.name for p in clip.frames][:3] == ["1.png", "2.png", "3.png"] and clip.frames[
        -1
    ].name == "12.png"
    assert frame_folder(_frames(tmp_path / "dfew", 3, "{:05d}.jpg")).numbers == (1, 2, 3)
    assert frame_folder(_frames(tmp_path / "afew", 3, "frame_{:03d}.jpg")) is not None
    mixed = _frames(tmp_path / "mixed", 3)
    (mixed / "notes.txt").write_text("x")
    assert frame_folder(mixed) is None  # not all images
    two = _frames(tmp_path / "two", 3)
    save(two / "other_9.png", astronaut())
    assert frame_folder(two) is None  # two patterns
    (tmp_path / "hidden").mkdir()
    assert frame_folder(tmp_path / "hidden") is None
    single = _frames(tmp_path / "single", 1)
    assert frame_folder(single) is None


def test_frame_folder_is_one_clip_with_a_timeline(tmp_path, predictor):
    folder = _frames(tmp_path / "clip", 50)
    pred = predictor.predict(folder)
    assert (
        pred.video["kind"] == "frames" and pred.video["fps"] == 25.0 and pred.video["frames"] == 50
    )
    assert pred.video["duration"] == pytest.approx(2.0)
    assert len(pred.timeline) >= 1 and pred.faces.frames_with_face == pred.faces.sampled_frames
    rate = predictor.parts.config.sample_fps
    assert pred.faces.sampled_frames == int(np.ceil(2.0 * rate - 1e-9))  # 2 s at the model's rate
    slow = predictor.predict(folder, fps=5.0)
    assert slow.video["duration"] == pytest.approx(10.0)
    assert slow.faces.sampled_frames == (50 if rate >= 5 else int(np.ceil(10.0 * rate - 1e-9)))
    assert slow.timeline.ends[-1] == pytest.approx(10.0, abs=0.5)
    frames = list(iter_frame_folder(frame_folder(folder), 25.0, 7.5))
    assert [f.source_index for f in frames][:4] == [0, 4, 7, 10]  # first at or after k / 7.5 s


def test_a_folder_that_is_not_a_clip_is_a_clear_error(tmp_path, predictor):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("a")
    (junk / "b.pdf").write_bytes(b"%PDF")
    with pytest.raises(VideoDecodeError, match="not a clip"):
        predictor.predict(junk)


def test_iter_inputs_mixes_videos_images_and_frame_folders(tmp_path):
    root = tmp_path / "batch"
    root.mkdir()
    write_video(root / "v.webm", moving_face_frames(4, size=(240, 320)), 8)
    save(root / "p.jpg", astronaut())
    _frames(root / "clip", 4)
    (root / "readme.txt").write_text("x")
    kinds = {item.path.name: item.kind for item in iter_inputs([root])}
    assert kinds == {"v.webm": "video", "p.jpg": "image", "clip": "frames"}
    assert [i.kind for i in iter_inputs([root / "clip"])] == ["frames"]


# ------------------------------------------------------------------------------------ the CLI


def test_cli_images_videos_and_frame_folders(tmp_path, weights, capsys):
    root = tmp_path / "batch"
    root.mkdir()
    write_video(root / "v.webm", moving_face_frames(8, size=(240, 320)), 8)
    save(root / "group.png", group_photo((720, 1280)))
    _frames(root / "clip", 30)
    code = main(
        [
            "predict",
            str(root),
            "--model",
            str(weights),
            "--classes",
            "dfew-7",
            "--quiet",
            "--json",
            str(tmp_path / "o.json"),
            "--csv",
            str(tmp_path / "o.csv"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{root}: a batch of 1 video, 1 image, 1 frame folder (frame folders at 25 fps)" in err
    assert (
        f"{root / 'group.png'}: " in out
        and f"{root / 'v.webm'}: " in out
        and f"{root / 'clip'}: " in out
    )
    face_lines = [line for line in out.splitlines() if line.startswith("  face ")]
    assert len(face_lines) == 5 and face_lines[0].startswith("  face 1 at (")
    data = json.loads((tmp_path / "o.json").read_text())
    assert sorted(d["video"]["kind"] for d in data) == ["frames", "image", "video"]
    image = next(d for d in data if d["video"]["kind"] == "image")
    assert len(image["tracks"]) == 5 and "timeline" not in image
    assert (
        (tmp_path / "o.csv")
        .read_text()
        .startswith("video,scope,track,start,end,class,probability,box")
    )

    code = main(
        [
            "predict",
            str(root / "clip"),
            "--fps",
            "10",
            "--model",
            str(weights),
            "--quiet",
            "--json",
            str(tmp_path / "c.json"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{root / 'clip'}: 30 numbered frames -> one clip at 10 fps" in err
    clip = json.loads((tmp_path / "c.json").read_text())
    assert clip["video"]["duration"] == pytest.approx(3.0) and clip["timeline"]


def test_cli_folder_of_unrelated_files(tmp_path, weights, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("a")
    (junk / "b.csv").write_text("1,2")
    assert main(["predict", str(junk), "--model", str(weights), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no videos, images or frame folders found" in err and "Traceback" not in err
