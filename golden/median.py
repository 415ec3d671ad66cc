"""Golden model of median feature selection (Ozen 2023 §8.4.2 Eq. 8.3, §8.6.2).

Bit-exact reference for :mod:`rtl_gen.median`.  Pure numpy, no project imports.

* :func:`median3`, :func:`median5`: element-wise medians built from ``minimum``/``maximum``
  (the min/max formulation the seed uses in software, Ozen 2023 §8.7.2), not from sorting.
* :func:`median_filter`: Eq. 8.3 on the last axis: window ``w`` ∈ {3, 5}, stride 1, ``w // 2``
  zeros appended at both ends so the length is kept; with ``chunk=N`` the vector is cut into
  pieces of ``N`` elements (the array width) and each piece is padded and filtered on its own,
  as the hardware sees one array-width chunk per cycle (Ozen 2023 §8.7.2).  A short last chunk is
  padded on its own, which is what the hardware computes when the unused lanes carry zeros.
* :func:`median_array_stream`: the cycle behaviour of ``MedianArray`` (one register stage,
  ``enable`` low passes the vector through, reset state all zeros).

The medians of integers are integers (odd windows pick one element), so there is no rounding.
"""

from __future__ import annotations

import numpy as np

from ftaccel.errors import is_int

__all__ = ["WINDOWS", "median3", "median5", "median_filter", "median_array_stream",
           "WindowedMedianModel"]

WINDOWS = (3, 5)


def median3(a, b, c) -> np.ndarray:
    """Element-wise median of three: ``max(min(a, b), min(max(a, b), c))`` (Fig. 8.10-b)."""
    a, b, c = (np.asarray(v, dtype=np.int64) for v in (a, b, c))
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def median5(a, b, c, d, e) -> np.ndarray:
    """Element-wise median of five (Fig. 8.10-c).

    Drop the minimum and the maximum of ``{a, b, d, e}``, then the median of the remaining two and
    ``c``.
    """
    a, b, c, d, e = (np.asarray(v, dtype=np.int64) for v in (a, b, c, d, e))
    lo = np.maximum(np.minimum(a, e), np.minimum(b, d))
    hi = np.minimum(np.maximum(a, e), np.maximum(b, d))
    return median3(lo, c, hi)


def _check_window(window) -> int:
    if not is_int(window, numpy=True) \
            or int(window) not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, not {window!r}")
    return int(window)


def _filter_padded(x: np.ndarray, window: int) -> np.ndarray:
    """Eq. 8.3 on the last axis of ``x`` with ``window // 2`` zeros at both ends."""
    h = window // 2
    length = x.shape[-1]
    pad = [(0, 0)] * (x.ndim - 1) + [(h, h)]
    p = np.pad(x, pad)
    cols = [p[..., k:k + length] for k in range(window)]
    return median3(*cols) if window == 3 else median5(*cols)


def median_filter(x, window: int, chunk: int | None = None) -> np.ndarray:
    """Median feature selection of Eq. 8.3 along the last axis.

    Parameters
    ----------
    x : array_like of int
        Values, any shape ``[..., L]``; filtered along the last axis.
    window : int
        3 or 5.
    chunk : int or None
        Array width ``N``: the last axis is cut into chunks of ``N`` (the last one possibly
        shorter), each zero-padded and filtered on its own.  ``None``: one chunk.

    Returns
    -------
    numpy.ndarray of int64, the shape of ``x``.
    """
    window = _check_window(window)
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one axis")
    if x.dtype.kind not in "iub":
        raise ValueError(f"x must hold integers, not {x.dtype}")
    x = x.astype(np.int64)
    length = x.shape[-1]
    if chunk is None:
        chunk = max(length, 1)
    if not is_int(chunk, numpy=True) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer or None, not {chunk!r}")
    out = np.empty_like(x)
    for start in range(0, length, int(chunk)):
        stop = min(start + int(chunk), length)
        out[..., start:stop] = _filter_padded(x[..., start:stop], window)
    return out


def median_array_stream(data, valid, enable, window: int):
    """Cycle model of ``MedianArray``: what its registered outputs show, cycle by cycle.

    Parameters
    ----------
    data : array_like, shape ``[T, lanes]``
        The vector applied in each cycle (the unit's ``i.data``).
    valid, enable : array_like, shape ``[T]``
        0/1 per cycle (``i.valid``, ``ctl.enable``).
    window : int
        3 or 5.

    Returns
    -------
    (o_data, o_valid) : ``[T, lanes]`` and ``[T]`` int64 arrays.  Row ``t`` is the output
    during cycle ``t``: the result of input row ``t - 1`` (filtered when ``enable`` was 1,
    passed through when 0); row 0 is the reset state (zeros).
    """
    window = _check_window(window)
    data = np.asarray(data, dtype=np.int64)
    if data.ndim != 2:
        raise ValueError(f"data must be [T, lanes], not shape {data.shape}")
    cycles = data.shape[0]
    valid = np.asarray(valid, dtype=np.int64).reshape(cycles)
    enable = np.asarray(enable, dtype=np.int64).reshape(cycles)
    stage = np.where(enable[:, None] != 0, median_filter(data, window), data)
    o_data = np.zeros_like(data)
    o_valid = np.zeros(cycles, dtype=np.int64)
    o_data[1:] = stage[:-1]
    o_valid[1:] = valid[:-1] != 0
    return o_data, o_valid


# -- the unit's functions for the engines and the driver program (golden.units) ---------------
def filter_inputs(cfg, x, opts) -> np.ndarray:
    """The streamed chunks ``x`` (``[M, chunks, R]``) through the filter, if it is on."""
    return median_filter(x, window=cfg.median) if opts.enable else x


def stimulus(cfg, draft, opts) -> None:
    """``median__enable``, held for the whole program."""
    draft.constant("median__enable", int(bool(opts.enable)))


class WindowedMedianModel:
    """Cycle model of :class:`rtl_gen.median.WindowedMedian` (IS / OS), one :meth:`step` a cycle.

    Per lane a shift register of ``window − 1`` taps (tap 0 is the feature of this cycle); the
    window centred on tap ``window // 2`` is filtered with the taps outside the centre's chunk
    as zeros (two neighbouring taps are in different chunks when the older one carries
    ``last`` or the newer one ``first``), and the result registered with the centre's flags.
    Latency ``window // 2 + 1``; every register resets to zero.  Both RTL variants (plain and
    comparator-sharing) compute this (they are proven equal).

    Inputs of :meth:`step`: ``data``, ``first``, ``last`` (``[lanes]``), ``enable``; outputs
    :meth:`outputs`: ``data``, ``first``, ``last``.
    """

    def __init__(self, *, lanes: int, window: int):
        self.window = _check_window(window)
        self.lanes = lanes
        w = self.window
        self.v = np.zeros((w, lanes), dtype=np.int64)  # row k: tap k (row 0 unused)
        self.f = np.zeros((w, lanes), dtype=bool)
        self.last = np.zeros((w, lanes), dtype=bool)
        self.y = np.zeros(lanes, dtype=np.int64)
        self.y_first = np.zeros(lanes, dtype=bool)
        self.y_last = np.zeros(lanes, dtype=bool)

    def outputs(self) -> dict:
        """The registered outputs."""
        return {"data": self.y.copy(), "first": self.y_first.copy(),
                "last": self.y_last.copy()}

    def step(self, inputs: dict) -> None:
        """One clock cycle."""
        w, h = self.window, self.window // 2
        v, f, last = self.v.copy(), self.f.copy(), self.last.copy()
        v[0] = np.asarray(inputs["data"], dtype=np.int64)
        f[0] = np.asarray(inputs["first"], dtype=bool)
        last[0] = np.asarray(inputs["last"], dtype=bool)
        brk = last[1:] | f[:-1]  # brk[g]: tap g and tap g + 1 are in different chunks
        u = v.copy()
        for k in range(w):
            gaps = range(k, h) if k < h else range(h, k)
            for g in gaps:
                u[k] = np.where(brk[g], 0, u[k])
        med = median3(*u) if w == 3 else median5(*u)
        self.y = np.where(int(inputs["enable"]) != 0, med, v[h])
        self.y_first, self.y_last = f[h].copy(), last[h].copy()
        self.v[1:], self.f[1:], self.last[1:] = v[:-1], f[:-1], last[:-1]
