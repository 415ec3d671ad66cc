"""Data sets for the network runner: the built-in digits, the user's ``.npz``, MNIST IDX files.

Every loader returns a :class:`Dataset`: ``images`` as float64 in the units the model was
trained on (the built-in digits are scaled to [0, 1]), ``labels`` as int64, and a name.

* :func:`digits` — scikit-learn's bundled 8×8 digits (1,797 images, 10 classes), shipped as
  ``app/models/digits.npz`` (a copy made by ``app/models/train.py``, so that no
  training library is needed at run time), with a fixed split: 1,257 training and 540 test
  images (the split indices are stored in the file, so every user sees the same split).
* :func:`load_npz` — the user's own ``.npz`` with arrays ``images`` (``[N, ...]``, any numeric
  dtype, used as is) and ``labels`` (``[N]`` integers).
* :func:`load_idx` — MNIST's IDX files (``train-images-idx3-ubyte`` and its labels file, plain
  or ``.gz``); the uint8 pixels are divided by ``scale`` (255 by default, the usual MNIST
  convention).

Errors in a user's file raise :class:`DataError` with a message naming the file and what is
wrong (the CLI turns it into one line and exit 2).  Every file is read through
:func:`ftaccel.files.read_input` (a regular file, size-capped, opened non-blocking: a FIFO or
a device is refused, never waited on); a gzip member is expanded to at most the same cap.
Labels are class numbers ``0 … 2**63 − 1`` checked on the values as stored (a ``uint64``
label above ``int64``'s range is refused, not wrapped); the caller checks them against the
model's classes (:func:`check_labels`).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ftaccel.files import FileProblem, parse_npz, read_input, read_npz

__all__ = ["Dataset", "DataError", "digits", "load_npz", "load_idx", "load_data",
           "check_labels"]


class DataError(ValueError):
    """A data file that cannot be used: missing, malformed, wrong shape or range."""


@dataclass(frozen=True)
class Dataset:
    """Images (float64, ``[N, ...]``) and their labels (int64, ``[N]``; None: unlabelled)."""

    images: np.ndarray
    labels: np.ndarray | None
    name: str

    def __len__(self) -> int:
        """The number of images."""
        return len(self.images)

    def head(self, n: int | None) -> Dataset:
        """The first ``n`` images (all of them for ``None``)."""
        if n is None:
            return self
        return Dataset(self.images[:n], None if self.labels is None else self.labels[:n],
                       self.name)


def _models_file(name: str):
    return resources.files("ftaccel.app").joinpath("models", name)


def digits(split: str = "test") -> Dataset:
    """The built-in digits: ``split`` is ``"train"`` (1,257), ``"test"`` (540) or ``"all"``.

    Pixels (0 … 16 in the original) are scaled to [0, 1].
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"invalid split = {split!r}: train, test or all")
    data = parse_npz(_models_file("digits.npz").read_bytes(), "built-in digits.npz")
    images = data["images"].astype(np.float64) / 16.0
    labels = data["labels"].astype(np.int64)
    idx = np.arange(len(labels)) if split == "all" else data[split]
    return Dataset(images[idx], labels[idx], f"digits-{split}")


def _check(images: np.ndarray, labels: np.ndarray, where: str) -> Dataset:
    if images.ndim < 2:
        raise DataError(f"{where}: images must be [N, ...] (one row per image), got shape "
                        f"{images.shape}")
    if images.dtype.kind not in "iuf" or images.dtype.kind == "b":
        raise DataError(f"{where}: images must be numbers, not dtype {images.dtype}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be a vector of integers, got shape "
                        f"{labels.shape} dtype {labels.dtype}")
    if len(labels) != len(images):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise DataError(f"{where}: no images")
    x = images.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: images contain NaN or infinite values")
    # the extremes as Python ints, before any conversion: uint64 2**64 − 1 must not wrap
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise DataError(f"{where}: labels must be class numbers ≥ 0, got {lo}")
    if hi > np.iinfo(np.int64).max:
        raise DataError(f"{where}: label {hi} is not a class number (at most 2**63 − 1)")
    return Dataset(x, labels.astype(np.int64), Path(where).name)


def check_labels(ds: Dataset, classes: int, model: str, what: str = "data") -> None:
    """Raise DataError unless every label of ``ds`` is a class of the model (``0 … classes−1``).

    A label the model cannot predict would count as a miss on every image (accuracy 0 with
    exit 0): the same check for ``infer``, ``nvf`` and ``campaign``.  Unlabelled data passes.
    """
    if ds.labels is None:
        return
    hi = int(ds.labels.max())
    if hi >= classes:
        raise DataError(f"{what}: label {hi} but model {model} has {classes} classes "
                        f"(labels 0 … {classes - 1})")


def load_npz(path: str | Path, *, labels: bool = True) -> Dataset:
    """The user's ``.npz`` of ``images`` and ``labels`` (see the module docstring).

    ``labels=False``: an ``.npz`` of ``images`` alone is accepted too (labels None), for
    what only predicts.
    """
    p = Path(path)
    try:
        data = read_npz(p, "data")
    except FileProblem as exc:
        raise DataError(str(exc)) from None
    if not labels and "images" in data and "labels" not in data:
        ds = _check(data["images"], np.zeros(len(data["images"]) if data["images"].ndim
                                             else 0, np.int64), str(p))
        return Dataset(ds.images, None, ds.name)
    missing = [k for k in ("images", "labels") if k not in data]
    if missing:
        raise DataError(f"{p}: missing array(s) {', '.join(missing)} (an .npz needs "
                        f"'images' and 'labels'; it has {', '.join(data) or 'none'})")
    return _check(data["images"], data["labels"], str(p))


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


#: Largest IDX file once expanded from gzip (bytes): MNIST's largest is 47 MB.
MAX_IDX_BYTES = 1 << 30


def _gunzip(raw: bytes, path: Path) -> bytes:
    """The data of a gzip file, expanded to at most :data:`MAX_IDX_BYTES` (a bomb stops)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, MAX_IDX_BYTES + 1)
    except zlib.error as exc:
        raise DataError(f"{path}: broken gzip data ({exc})") from None
    if len(out) > MAX_IDX_BYTES:
        raise DataError(f"{path}: expands to more than {MAX_IDX_BYTES:,} bytes")
    if not d.eof:
        raise DataError(f"{path}: broken gzip data (truncated)")
    return out


def _read_idx(path: Path) -> np.ndarray:
    try:
        raw = read_input(path, "data")
    except FileProblem as exc:
        raise DataError(str(exc)) from None
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if ndim == 0 or len(raw) < head:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = math.prod(shape) * dtype.itemsize  # Python ints: a header cannot overflow it
    if len(raw) - head != need:
        raise DataError(f"{path}: IDX header says shape {shape} ({need} bytes of data), the "
                        f"file holds {len(raw) - head}")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(shape)


def load_idx(images: str | Path, labels: str | Path, scale: float = 255.0) -> Dataset:
    """MNIST-style IDX files: images ``[N, H, W]`` divided by ``scale``, labels ``[N]``."""
    x = _read_idx(Path(images))
    y = _read_idx(Path(labels))
    ds = _check(x, y, str(images))
    return Dataset(ds.images / float(scale), ds.labels, ds.name)


def load_data(spec: str | Path, *, labels: bool = True) -> Dataset:
    """A data set named on the command line.

    ``digits`` / ``digits-test`` / ``digits-train``, ``FILE.npz``, or ``IMAGES,LABELS`` (two IDX
    files).  ``labels=False``: an ``.npz`` without labels is accepted (labels None).
    """
    text = str(spec)
    if text in ("digits", "digits-test"):
        return digits("test")
    if text == "digits-train":
        return digits("train")
    if "," in text:
        img, lab = text.split(",", 1)
        return load_idx(img, lab)
    p = Path(text)
    if p.suffix == ".npz":
        return load_npz(p, labels=labels)
    if "idx" in p.name:
        raise DataError(f"{p}: give IDX data as IMAGES,LABELS (two files, comma-separated)")
    raise DataError(f"{p}: unknown data format (use .npz with images and labels, or "
                    f"IMAGES,LABELS IDX files, or 'digits')")
