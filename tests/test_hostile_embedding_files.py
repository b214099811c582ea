"""Hostile embedding files for the latent explorer.

Entry point attacked: `emoclip.explore.load_embeddings` with the files of
`hostile_cases.EMBEDDING_FILES` (each refused with a plain `ValueError` that starts with the file
name; nothing written outside its folder), files whose labels are hostile (kept as text), and,
property-based, files of any bytes and ``.npy`` headers of any shape (checked before allocation).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hostile_cases import EMBEDDING_FILES, EMBEDDING_FILES_THAT_LOAD, PROPERTY
from hypothesis import given, strategies as st


@pytest.mark.parametrize("name", sorted(EMBEDDING_FILES))
def test_hostile_embedding_files(name, tmp_path):
    from emoclip.explore import load_embeddings

    path = tmp_path / name
    data = EMBEDDING_FILES[name]
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        load_embeddings(path)
    assert type(info.value) is ValueError and str(info.value).startswith(f"{name}: ")
    assert not (tmp_path.parent / "evil.npy").exists()


@pytest.mark.parametrize("name", sorted(EMBEDDING_FILES_THAT_LOAD))
def test_embedding_files_with_hostile_labels(name, tmp_path):
    from emoclip.explore import load_embeddings

    data, labels = EMBEDDING_FILES_THAT_LOAD[name]
    path = tmp_path / name
    path.write_bytes(data)
    assert [p.label for p in load_embeddings(path)] == labels


@PROPERTY
@given(st.binary(max_size=300), st.sampled_from([".npz", ".npy", ".csv", ".json"]))
def test_property_embedding_files_of_any_bytes(tmp_path_factory, data, suffix):
    from emoclip.explore import load_embeddings

    path = tmp_path_factory.mktemp("emb") / f"x{suffix}"
    path.write_bytes(data)
    try:
        points = load_embeddings(path, expected_dim=None)
    except ValueError as exc:
        assert str(exc).startswith("x")
        return
    assert points and all(np.isfinite(p.embedding).all() for p in points)


@PROPERTY
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=3), st.sampled_from(["<f4", "<f8", "|u1"])
)
def test_property_npy_headers_are_checked_before_allocation(tmp_path_factory, shape, dtype):
    from emoclip.explore import load_embeddings

    dims = ", ".join(map(str, shape))
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': ({dims},), }}"
    header += " " * (118 - len(header)) + "\n"
    path = tmp_path_factory.mktemp("npy") / "h.npy"
    magic = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    path.write_bytes(magic + header.encode() + b"\x00" * 64)
    try:
        load_embeddings(path)
    except ValueError:
        return
