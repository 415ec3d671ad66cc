"""The independent integer reference of a quantised network, for the network tests.

Plain numpy loops, written apart from ``golden/network.py``: im2col by explicit patches,
pooling by windows, the output stage's rounding written out.  It reads only the model's
integer parameters; the WS input units use their golden functions (themselves held against
the RTL in test_afd.py / test_median.py) on each streamed chunk.
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


def reference(model: Model, images: np.ndarray, cfg, units: dict | None = None) -> np.ndarray:
    units = units or {}
    bits = model.a_bits
    n = len(images)
    x = np.floor(np.asarray(images, np.float64) * 2.0 ** model.input_frac + 0.5)
    x = np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype(np.int64)
    x = x.reshape((n,) + tuple(model.input_shape))
    for layer in model.layers:
        if layer.kind == "dense":
            A = x.reshape(n, -1)
            W = layer.weights.astype(np.int64)
        elif layer.kind == "conv2d":
            kh, kw, ci, co = layer.weights.shape
            t, left, b, r = layer.padding
            xp = np.zeros((n, x.shape[1] + t + b, x.shape[2] + left + r, ci), np.int64)
            xp[:, t:t + x.shape[1], left:left + x.shape[2]] = x
            sy, sx = layer.stride
            ho = (xp.shape[1] - kh) // sy + 1
            wo = (xp.shape[2] - kw) // sx + 1
            rows = []
            for i in range(n):
                for y in range(ho):
                    for xx in range(wo):
                        rows.append(xp[i, y * sy:y * sy + kh, xx * sx:xx * sx + kw, :].reshape(-1))
            A = np.array(rows, dtype=np.int64)
            W = layer.weights.reshape(-1, co).astype(np.int64)
        elif layer.kind == "maxpool":
            (ph, pw), (sy, sx) = layer.size, layer.stride
            ho, wo = (x.shape[1] - ph) // sy + 1, (x.shape[2] - pw) // sx + 1
            y = np.zeros((n, ho, wo, x.shape[3]), np.int64)
            for i in range(ho):
                for j in range(wo):
                    y[:, i, j] = x[:, i * sy:i * sy + ph, j * sx:j * sx + pw].max(axis=(1, 2))
            x = y
            continue
        elif layer.kind == "avgpool":
            (ph, pw), (sy, sx) = layer.size, layer.stride
            ho, wo = (x.shape[1] - ph) // sy + 1, (x.shape[2] - pw) // sx + 1
            y = np.zeros((n, ho, wo, x.shape[3]), np.int64)
            for i in range(ho):
                for j in range(wo):
                    total = x[:, i * sy:i * sy + ph, j * sx:j * sx + pw].sum(axis=(1, 2))
                    area = ph * pw
                    if area & (area - 1) == 0:
                        y[:, i, j] = ref_requant(total, area.bit_length() - 1, bits)
                    else:
                        y[:, i, j] = ref_requant(total * round(65536 / area), 16, bits)
            x = y
            continue
        elif layer.kind == "flatten":
            x = (x.transpose(0, 3, 1, 2) if layer.order == "chw" else x).reshape(n, -1)
            continue
        elif layer.kind == "relu":
            x = np.maximum(x, 0)
            continue
        else:
            raise AssertionError(layer.kind)
        A = ref_units(A, cfg, units) if cfg.dataflow == "ws" else A
        y = A @ W + layer.bias.astype(np.int64)
        if layer.relu:
            y = np.maximum(y, 0)
        q = ref_requant(y, layer.shift, bits)
        x = q if layer.kind == "dense" else q.reshape(n, ho, wo, -1)
    return x
