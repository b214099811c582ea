"""Parquet tables written by a batch run: one row per input (`results`) and one per window (`timeline`).

Columns of ``results/part-*.parquet`` (one row per input):

    path            string      absolute path or URI of the input (video file, image, or frame folder)
    name            string      its file or folder name
    kind            string      "video" | "image" | "frames"
    size, mtime_ns  int64       bytes and modification time when listed (a frame folder: sum / max)
    input_key       string      hash of (path, size, mtime_ns): the input's content key
    config_key      string      digest of the run's provenance (`emoclip.provenance`): the resume
                                key is (input_key, config_key)
    provenance      string      JSON of the run's `Provenance`: model reference, weights sha256,
                                source and Hub revision, class set and its content hash, package
                                version, settings
    model           string      model name
    class_set       string      class-set name
    classes         list<string>              score order of `probabilities`
    top             string                    most probable class (null on error)
    scope           string      what the answer describes (`Prediction.scope`): "face" (a photo's
                                first face), "faces" (a video's people), "whole image" or
                                "whole frames" (no face found, or a whole-frame model); null on error
    probabilities   list<float32>             clip probabilities (C,), sum 1 (null on error)
    embedding       fixed_size_list<float32>[D]  L2-normalised clip embedding (null on error)
    sampled_frames, frames_with_face, tracks   int32   face statistics
    track_results   string      JSON list of the tracks (a photo: its faces): track_id, primary,
                                num_frames, start, end, box [x, y, w, h] or null, probabilities
    face_fraction   float32     frames_with_face / sampled_frames
    duration        float64     seconds of video analysed
    warnings        list<string>
    error           string      null when the input was analysed; else the CLI's message
    seconds         float64     wall time of this input in the worker
    timings         string      JSON of seconds per stage (decode, detect, encode, ...)
    worker          string      "host:pid" of the worker process that analysed it
    evidence        string      JSON of the answer's evidence (`Prediction.to_dict()["evidence"]`:
                                key moments, best descriptions, margin); null on error
    ...             any extra manifest columns, carried through with their types

Columns of ``timeline/part-*.parquet`` (one row per window of each analysed input):

    path, input_key, config_key   as above
    window          int32       window index in the clip
    start, end      float64     seconds
    top             string
    probabilities   list<float32>  (C,) in the order of the input's `classes`
"""

from __future__ import annotations

import pyarrow as pa

RESULTS_DIR = "results"
TIMELINE_DIR = "timeline"
KEY_COLUMNS = ("input_key", "config_key")
INPUT_COLUMNS = ("path", "name", "kind", "size", "mtime_ns", "input_key")

WINDOW_TYPE = pa.list_(
    pa.struct(
        [("start", pa.float64()), ("end", pa.float64()), ("probabilities", pa.list_(pa.float32()))]
    )
)


def result_fields(dim: int) -> list[pa.Field]:
    """The fixed (non-manifest) result columns after the input columns, for embeddings of size `dim`."""
    return [
        pa.field("config_key", pa.string()),
        pa.field("provenance", pa.string()),
        pa.field("model", pa.string()),
        pa.field("class_set", pa.string()),
        pa.field("classes", pa.list_(pa.string())),
        pa.field("top", pa.string()),
        pa.field("scope", pa.string()),
        pa.field("probabilities", pa.list_(pa.float32())),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
        pa.field("sampled_frames", pa.int32()),
        pa.field("frames_with_face", pa.int32()),
        pa.field("tracks", pa.int32()),
        pa.field("track_results", pa.string()),
        pa.field("face_fraction", pa.float32()),
        pa.field("duration", pa.float64()),
        pa.field("warnings", pa.list_(pa.string())),
        pa.field("error", pa.string()),
        pa.field("seconds", pa.float64()),
        pa.field("timings", pa.string()),
        pa.field("worker", pa.string()),
        pa.field("evidence", pa.string()),
    ]


def input_schema() -> pa.Schema:
    """Columns every input row has before the manifest's extra columns."""
    return pa.schema(
        [
            pa.field("path", pa.string()),
            pa.field("name", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("mtime_ns", pa.int64()),
            pa.field("input_key", pa.string()),
        ]
    )


def timeline_schema() -> pa.Schema:
    """Schema of the timeline table (one row per window)."""
    return pa.schema(
        [
            pa.field("path", pa.string()),
            pa.field("input_key", pa.string()),
            pa.field("config_key", pa.string()),
            pa.field("window", pa.int32()),
            pa.field("start", pa.float64()),
            pa.field("end", pa.float64()),
            pa.field("top", pa.string()),
            pa.field("probabilities", pa.list_(pa.float32())),
        ]
    )
