"""Golden model of the output stage (bias, ReLU, requantisation), bit-exact with
:mod:`rtl_gen.output_stage`.

Semantics, element-wise, all in exact integer arithmetic::

    y = acc + bias
    y = max(y, 0)                          if relu
    q = (y + 2**(shift-1)) >> shift        if shift > 0   (floor division: round half up)
    q = clamp(q, -2**(out_width-1), 2**(out_width-1) - 1)

Round half up (towards +inf) is what an adder plus an arithmetic shift gives for free; it is
biased by half an LSB on exact ties, which is the usual choice for integer inference.
"""

from __future__ import annotations

import numpy as np

__all__ = ["requantize", "output_stage"]


def requantize(y: np.ndarray, shift: int, out_width: int) -> np.ndarray:
    """Rounding arithmetic right shift by ``shift`` then saturation to ``out_width`` bits."""
    if not 0 <= shift <= 62:
        raise ValueError(f"shift must be 0..62, not {shift}")
    y = np.asarray(y, dtype=np.int64)
    if shift > 0:
        y = (y + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    return np.clip(y, lo, hi)


def output_stage(acc: np.ndarray, bias, relu: bool, shift: int, out_width: int) -> np.ndarray:
    """``requantize(relu(acc + bias))``; ``bias`` broadcasts over the last axis (columns)."""
    y = np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
    if relu:
        y = np.maximum(y, 0)
    return requantize(y, shift, out_width)
