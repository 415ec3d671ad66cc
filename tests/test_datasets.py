"""Data loaders: the built-in digits split, the user's .npz, MNIST IDX files (written here)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from ftaccel.app.datasets import DataError, digits, load_data, load_idx, load_npz


def write_idx(path, arr: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    """IDX as specified by LeCun et al.: magic 0,0,type,ndim; big-endian sizes; data."""
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    raw = head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_digits_split_is_fixed_and_disjoint():
    tr, te, al = digits("train"), digits("test"), digits("all")
    assert (len(tr), len(te), len(al)) == (1257, 540, 1797)
    assert tr.images.shape[1:] == (8, 8) and tr.images.min() >= 0 and tr.images.max() == 1.0
    # The two splits are disjoint and cover the whole set (compare as sets of image bytes).
    rows = {im.tobytes() + bytes([lab]) for im, lab in zip(al.images, al.labels, strict=True)}
    both = [im.tobytes() + bytes([lab]) for d in (tr, te)
            for im, lab in zip(d.images, d.labels, strict=True)]
    assert set(both) == rows
    assert np.bincount(te.labels).min() >= 50  # stratified: every class in the test split
    assert np.array_equal(digits("test").labels, te.labels)
    with pytest.raises(ValueError, match="train, test or all"):
        digits("val")


def test_npz_round_trip_and_errors(tmp_path, rng):
    images = rng.random((6, 8, 8))
    labels = rng.integers(0, 10, 6)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    ds = load_npz(tmp_path / "d.npz")
    assert np.array_equal(ds.images, images) and np.array_equal(ds.labels, labels)
    assert len(load_data(str(tmp_path / "d.npz")).head(4)) == 4
    np.savez(tmp_path / "nolabels.npz", images=images)
    with pytest.raises(DataError, match="missing array.*labels"):
        load_npz(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "count.npz", images=images, labels=labels[:5])
    with pytest.raises(DataError, match="6 images but 5 labels"):
        load_npz(tmp_path / "count.npz")
    np.savez(tmp_path / "nan.npz", images=np.full((2, 3), np.nan), labels=[0, 1])
    with pytest.raises(DataError, match="NaN"):
        load_npz(tmp_path / "nan.npz")
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "missing.npz")


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files(tmp_path, rng, compress):
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    write_idx(tmp_path / "img-idx3-ubyte", images, compress=compress)
    write_idx(tmp_path / "lab-idx1-ubyte", labels, compress=compress)
    ds = load_idx(tmp_path / "img-idx3-ubyte", tmp_path / "lab-idx1-ubyte")
    assert np.array_equal(ds.images, images / 255.0)
    assert np.array_equal(ds.labels, labels)
    spec = f"{tmp_path / 'img-idx3-ubyte'},{tmp_path / 'lab-idx1-ubyte'}"
    assert np.array_equal(load_data(spec).labels, labels)


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    write_idx(tmp_path / "lab", np.arange(3, dtype=np.uint8))
    with pytest.raises(DataError, match="bad magic"):
        load_idx(tmp_path / "bad", tmp_path / "lab")
    raw = bytes([0, 0, 8, 3]) + struct.pack(">III", 3, 4, 4) + bytes(10)
    (tmp_path / "short").write_bytes(raw)
    with pytest.raises(DataError, match=r"shape \(3, 4, 4\) \(48 bytes of data\)"):
        load_idx(tmp_path / "short", tmp_path / "lab")
    write_idx(tmp_path / "img", np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        load_idx(tmp_path / "img", tmp_path / "lab")
