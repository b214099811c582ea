"""Batch locations as URIs (issue #19, 7): every URI reaches pyarrow unchanged, and the URIs a
batch makes from one (listed files, manifest rows, results) keep its host or user part and its
query. HDFS needs Java, Hadoop and libhdfs, which no registry here provides: its URIs are checked
up to `pyarrow.fs.FileSystem.from_uri`, with a local filesystem standing in for the cluster."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest

from emoclip.batch import expand_inputs, store
from emoclip.batch.store import (
    ResultsStore,
    is_uri,
    join_uri,
    open_location,
    uri_of,
    uri_parent,
)


@pytest.mark.parametrize(
    "fs_path, like, uri",
    [
        ("media/clips/a.webm", "s3://media/clips/", "s3://media/clips/a.webm"),
        ("media/a.webm", "gs://anonymous@media/?scheme=http", "gs://anonymous@media/a.webm?scheme=http"),
        ("/data/a.webm", "hdfs://namenode:8020/data?replication=2", "hdfs://namenode:8020/data/a.webm?replication=2"),
        ("/data/a.webm", "viewfs://cluster/data", "viewfs://cluster/data/a.webm"),
        ("/tmp/x/a.webm", "file:///tmp/x", "file:///tmp/x/a.webm"),
    ],
)  # fmt: skip
def test_uris_made_from_a_uri_keep_its_host_user_and_query(fs_path, like, uri):
    assert uri_of(fs_path, like) == uri


def test_join_and_parent_keep_the_query():
    base = "gs://anonymous@media/out?endpoint_override=127.0.0.1%3A4443&scheme=http"
    assert join_uri(base, "results") == (
        "gs://anonymous@media/out/results?endpoint_override=127.0.0.1%3A4443&scheme=http"
    )
    assert uri_parent("hdfs://nn:8020/data/m.csv?x=1") == "hdfs://nn:8020/data?x=1"
    assert join_uri("/local/out", "results") == "/local/out/results"


def test_hdfs_uris_reach_pyarrow_unchanged(tmp_path, monkeypatch):
    """An hdfs:// input folder, manifest and results folder: pyarrow is handed each URI as
    given (a local filesystem answers for the cluster), and the rows name hdfs:// URIs."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.webm").write_bytes(b"x")
    (tmp_path / "data" / "m.csv").write_text("path\nb.webm\n")
    asked: list[str] = []
    cluster = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())

    def from_uri(uri: str):
        asked.append(uri)
        assert uri.startswith("hdfs://nn:8020/")
        return cluster, uri.split("?", 1)[0].removeprefix("hdfs://nn:8020/")

    class Pyarrow:  # pyarrow.fs with from_uri recorded (its types cannot be patched)
        FileSystem = SimpleNamespace(from_uri=from_uri)

        def __getattr__(self, name):
            return getattr(pafs, name)

    monkeypatch.setattr(store, "pafs", Pyarrow())
    folder = "hdfs://nn:8020/data/?replication=2"
    assert is_uri(folder) and open_location(folder) == (cluster, "data")
    assert asked == [folder]
    rows = {r["name"]: r for r in expand_inputs([folder, "hdfs://nn:8020/data/m.csv"]).to_pylist()}
    assert rows["a.webm"]["path"] == "hdfs://nn:8020/data/a.webm?replication=2"
    assert rows["b.webm"]["path"] == "hdfs://nn:8020/data/b.webm" and rows["b.webm"]["size"] == -1
    ResultsStore("hdfs://nn:8020/out").create()
    assert (tmp_path / "out" / "results").is_dir() and asked[-1] == "hdfs://nn:8020/out"


def test_hdfs_without_a_hadoop_install_is_pyarrows_error():
    """Here (no Java, no libhdfs) pyarrow itself refuses: the URI got to its HDFS filesystem."""
    with pytest.raises(OSError):
        open_location("hdfs://127.0.0.1:9/data")
