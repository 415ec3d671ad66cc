"""Golden model of the output stage (bias, ReLU, requantisation).

Bit-exact with :mod:`rtl_gen.output_stage`.

Semantics, element-wise, all in exact integer arithmetic::

    y = acc + bias
    y = max(y, 0)                          if relu
    q = (y + 2**(shift-1)) >> shift        if shift > 0   (floor division: round half up)
    q = clamp(q, -2**(out_width-1), 2**(out_width-1) - 1)

Round half up (towards +inf) is what an adder plus an arithmetic shift gives for free; it is
biased by half an LSB on exact ties, which is the usual choice for integer inference.

**Split columns** (SPEC §5, :mod:`golden.split`): a column whose ``split`` flag is set holds
one copy of a critical neuron split for the LCU; it uses ``shift + 1`` and saturates to
``out_width − 1`` bits, so that both copies are bit-identical halves of the original output
and never set bit ``out_width − 2``.  This equals :func:`golden.split.layer_forward` of the
split layer (tests/test_output_stage.py).  ``shift`` is 0 … 63 (the hardware's 6-bit port), so a
split column shifts by up to 64: :func:`requantize` accepts 0 … 64 and stays exact in int64.
"""

from __future__ import annotations

import numpy as np

from ftaccel.errors import is_int

__all__ = ["requantize", "output_stage", "MAX_SHIFT"]

#: Largest value of the hardware's ``shift`` port (``SHIFT_WIDTH = 6`` bits); a split column
#: adds one.  Kept here as a number because golden models import nothing of the project.
MAX_SHIFT = 63


def requantize(y: np.ndarray, shift: int, out_width: int) -> np.ndarray:
    """Rounding arithmetic right shift by ``shift`` (0 … 64) then saturation to ``out_width`` bits.

    For ``shift ≥ 2`` it computes ``((y >> 1) + 2**(shift-2)) >> (shift-1)``, which equals
    ``(y + 2**(shift-1)) >> shift`` for every integer ``y`` (dropping the low bit of ``y`` first
    cannot change the floor because ``2**(shift-1)`` is even) and cannot overflow int64 even at
    ``shift = 64``.
    """
    if not is_int(shift, numpy=True) or not 0 <= shift <= 64:
        raise ValueError(f"shift must be 0..64, not {shift!r}")
    shift = int(shift)
    y = np.asarray(y, dtype=np.int64)
    if shift == 1:
        y = (y >> 1) + (y & 1)  # (y + 1) >> 1 without overflow at the top of int64
    elif shift >= 2:
        y = ((y >> 1) + (np.int64(1) << np.int64(shift - 2))) >> np.int64(shift - 1)
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    return np.clip(y, lo, hi)


def output_stage(acc: np.ndarray, bias, relu: bool, shift: int, out_width: int,
                 split=None) -> np.ndarray:
    """``requantize(relu(acc + bias))``; ``bias`` broadcasts over the last axis (columns).

    ``split`` (optional): one bool per column (broadcast over the last axis); a set column
    uses ``shift + 1`` and saturates to ``out_width − 1`` bits.  ``shift`` is 0 … 63.
    """
    if not is_int(shift, numpy=True) \
            or not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"shift must be 0..{MAX_SHIFT}, not {shift!r}")
    y = np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
    if relu:
        y = np.maximum(y, 0)
    q = requantize(y, shift, out_width)
    if split is None:
        return q
    s = np.asarray(split)
    if s.dtype != bool:
        raise ValueError(f"invalid split: one bool per column, got dtype {s.dtype}")
    if s.ndim != 1 or (y.ndim and s.shape[0] != y.shape[-1]):
        raise ValueError(f"invalid split: {y.shape[-1] if y.ndim else 1} bools (one per column), "
                         f"got shape {s.shape}")
    if out_width < 2:
        raise ValueError("invalid out_width: a split column needs out_width >= 2")
    return np.where(s, requantize(y, int(shift) + 1, out_width - 1), q)
