"""The independent integer reference of a quantised network, for the network tests.

Plain numpy loops, written apart from ``golden/network.py``: im2col by explicit patches,
pooling by windows (padding filled explicitly), the output stage's rounding and the Add /
Concat scale alignment written out, a graph walked through each node's ``inputs``.  It reads
only the model's integer parameters; the WS input units use their golden functions
(themselves held against the RTL in test_afd.py / test_median.py) on each streamed chunk.
"""

from __future__ import annotations

import numpy as np

from ftaccel.golden.afd import anomaly_suppression
from ftaccel.golden.median import median_filter
from ftaccel.golden.network import Model


def ref_requant(y: np.ndarray, shift: int, bits: int) -> np.ndarray:
    if shift:
        y = (y + (1 << (shift - 1))) >> shift  # round half up (arithmetic shift floors)
    return np.clip(y, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def ref_units(A: np.ndarray, cfg, units: dict) -> np.ndarray:
    """The WS input units on every streamed R-lane chunk (zero-padded), row by row."""
    if not (cfg.afd or cfg.median):
        return A
    out = A.copy()
    R = cfg.rows
    for m in range(A.shape[0]):
        for k0 in range(0, A.shape[1], R):
            n = min(R, A.shape[1] - k0)
            chunk = np.zeros(R, dtype=np.int64)
            chunk[:n] = A[m, k0:k0 + n]
            if cfg.afd:
                c = {"shift": 1, "gates": 1, "mode": 0, **units.get("afd", {})}
                chunk = anomaly_suppression(chunk, width=cfg.a_width, shift=c["shift"],
                                            gates=c["gates"], mode=c["mode"])
            if cfg.median:
                chunk = median_filter(chunk, window=cfg.median)
            out[m, k0:k0 + n] = chunk[:n]
    return out


def _patches(x: np.ndarray, kh: int, kw: int, stride, padding, fill=0) -> tuple:
    """Explicit patches ``[n, ho, wo, kh, kw, C]`` of ``x`` padded with ``fill``."""
    n, h, w, c = x.shape
    t, left, b, r = padding
    xp = np.full((n, h + t + b, w + left + r, c), fill, np.int64)
    xp[:, t:t + h, left:left + w] = x
    sy, sx = stride
    ho, wo = (xp.shape[1] - kh) // sy + 1, (xp.shape[2] - kw) // sx + 1
    out = np.zeros((n, ho, wo, kh, kw, c), np.int64)
    for y in range(ho):
        for xx in range(wo):
            out[:, y, xx] = xp[:, y * sy:y * sy + kh, xx * sx:xx * sx + kw, :]
    return out, ho, wo


def _avg(total: np.ndarray, n: int, bits: int) -> np.ndarray:
    if n & (n - 1) == 0:
        return ref_requant(total, n.bit_length() - 1, bits)
    return ref_requant(total * round(65536 / n), 16, bits)


def _shifted(q: np.ndarray, s: int) -> np.ndarray:
    if s > 0:
        return (q + (1 << (s - 1))) >> s
    return q * (1 << -s)


def _product(layer, x, n, cfg, units, bits):
    """A dense / conv / depthwise node: the products row by row, then the output stage."""
    if layer.kind == "dense":
        A = ref_units(x.reshape(n, -1), cfg, units) if cfg.dataflow == "ws" else x.reshape(n, -1)
        y = A @ layer.weights.astype(np.int64) + layer.bias.astype(np.int64)
        if layer.relu:
            y = np.maximum(y, 0)
        return ref_requant(y, layer.shift, bits)
    kh, kw = layer.weights.shape[:2]
    P, ho, wo = _patches(x, kh, kw, layer.stride, layer.padding)
    if layer.kind == "conv2d":
        A = P.reshape(n * ho * wo, -1)  # (dy, dx, c) order, channels fastest
        A = ref_units(A, cfg, units) if cfg.dataflow == "ws" else A
        y = A @ layer.weights.reshape(-1, layer.weights.shape[3]).astype(np.int64)
    else:  # dwconv: channel c's patches times its own kernel, one product each
        C = layer.weights.shape[2]
        y = np.zeros((n * ho * wo, C), np.int64)
        for c in range(C):
            A = P[..., c].reshape(n * ho * wo, kh * kw)
            A = ref_units(A, cfg, units) if cfg.dataflow == "ws" else A
            y[:, c] = A @ layer.weights[:, :, c].reshape(-1).astype(np.int64)
    y = y + layer.bias.astype(np.int64)
    if layer.relu:
        y = np.maximum(y, 0)
    return ref_requant(y, layer.shift, bits).reshape(n, ho, wo, -1)


def reference(model: Model, images: np.ndarray, cfg, units: dict | None = None) -> np.ndarray:
    """The logits of quantised ``model`` (a chain or a graph) on float ``images``."""
    units = units or {}
    bits = model.a_bits
    n = len(images)
    x = np.floor(np.asarray(images, np.float64) * 2.0 ** model.input_frac + 0.5)
    x = np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype(np.int64)
    vals = {-1: x.reshape((n,) + tuple(model.input_shape))}
    for i, layer in enumerate(model.layers):
        ins = [vals[j] for j in (tuple(getattr(layer, "inputs", ())) or (i - 1,))]
        x = ins[0]
        if layer.kind in ("dense", "conv2d", "dwconv"):
            y = _product(layer, x, n, cfg, units, bits)
        elif layer.kind == "maxpool":
            (ph, pw) = layer.size
            P, _, _ = _patches(x, ph, pw, layer.stride, getattr(layer, "padding", (0,) * 4),
                               fill=-(1 << (bits - 1)))
            y = P.max(axis=(3, 4))
        elif layer.kind == "avgpool":
            (ph, pw) = layer.size
            pad = getattr(layer, "padding", (0,) * 4)
            P, ho, wo = _patches(x, ph, pw, layer.stride, pad)
            ones, _, _ = _patches(np.ones(x.shape[:3] + (1,), np.int64), ph, pw, layer.stride,
                                  pad)
            y = np.zeros((n, ho, wo, x.shape[3]), np.int64)
            for a in range(ho):
                for b in range(wo):
                    cnt = ph * pw if getattr(layer, "count_pad", False) else \
                        int(ones[0, a, b].sum())
                    y[:, a, b] = _avg(P[:, a, b].sum(axis=(1, 2)), cnt, bits)
        elif layer.kind == "flatten":
            y = (x.transpose(0, 3, 1, 2) if layer.order == "chw" and x.ndim == 4 else
                 x).reshape(n, -1)
        elif layer.kind == "relu":
            y = np.maximum(x, 0)
        elif layer.kind == "clip":
            y = x
            if layer.qlo is not None:
                y = np.maximum(y, layer.qlo)
            if layer.qhi is not None:
                y = np.minimum(y, layer.qhi)
        elif layer.kind == "add":
            y = sum(_shifted(t, s) for t, s in zip(ins, layer.shifts, strict=True))
            y = np.clip(y, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        elif layer.kind == "concat":
            y = np.concatenate([np.clip(_shifted(t, s), -(1 << (bits - 1)),
                                        (1 << (bits - 1)) - 1)
                                for t, s in zip(ins, layer.shifts, strict=True)], axis=-1)
        else:
            raise AssertionError(layer.kind)
        vals[i] = y
    return vals[len(model.layers) - 1]
