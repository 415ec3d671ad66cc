"""Golden model of the Lightweight Correction Unit (LCU) and its correction controller.

Seed 001 §4.3.1.3 (L1768–L1770): a critical neuron is split into two halves whose requantized
outputs are bit-identical when no fault occurs (see :mod:`golden.split`).  The LCU takes the two
halves ``a`` and ``b`` and outputs ``a & b`` with the most significant *integer* bit (bit
``width − 2``; bit 6 of int8) forced to 0.  Why this corrects:

* a 0→1 flip in one copy is removed by the AND (the other copy still has the 0);
* a 1→0 flip in either copy passes, but only makes the value *smaller* — the seed's
  observation (L1750) that 0→1 flips are the critical ones because they enlarge activations;
* a 0→1 flip of bit ``width − 2``, even in both copies, is removed by the mask, because a
  split half of a non-negative ``width``-bit activation never sets that bit.

The mask is only sound for **non-negative** values (post-ReLU activations).  A negative value
in two's complement has the sign bit set and, for ``−2**(width−2) ≤ x < 0``, bit ``width − 2``
set as well: the LCU then returns ``x − 2**(width−2)`` (−1 becomes −65 at int8), and values
below ``−2**(width−2)`` are unchanged by the mask.  Faults are no better: a 1→0 flip below the
sign bit still passes but now makes the *magnitude* larger (the value moves away from zero), and
a 1→0 flip of the sign bit in one copy turns the result into a large positive number (the AND
keeps the 0).  This module models that behaviour bit for bit; it does not hide it.

The mask is a parameter: ``mask`` is the bit pattern ANDed into the result (1 = keep), default
:func:`default_mask` (all ones except bit ``width − 2``).

Controller semantics (001 L1720, SPEC §5): after a layer finishes, for each critical pair
``(index_a, index_b)`` *in list order*, ``v = lcu(buf[index_a], buf[index_b])`` and ``v`` is
written to both places.  Pairs may share indices; they are processed strictly one after the
other, so a later pair sees the values written by earlier ones (:func:`correct_buffer`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["default_mask", "check_mask", "lcu", "correct_buffer", "flip_bit", "to_unsigned",
           "to_signed", "signed_range"]


def signed_range(width: int) -> tuple[int, int]:
    """``(lo, hi)`` of a ``width``-bit two's-complement integer."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def _check_width(width) -> None:
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or not 2 <= width <= 62:
        raise ValueError(f"invalid width = {width!r}: an integer from 2 to 62")


def default_mask(width: int) -> int:
    """All ones except bit ``width − 2`` (the most significant integer bit of a signed value)."""
    _check_width(width)
    return ((1 << width) - 1) & ~(1 << (width - 2))


def check_mask(mask, width: int) -> int:
    """Return the effective mask (``None`` → default); raise ``ValueError`` when out of range."""
    if mask is None:
        return default_mask(width)
    if isinstance(mask, bool) or not isinstance(mask, int | np.integer) \
            or not 0 <= int(mask) < (1 << width):
        raise ValueError(f"invalid mask = {mask!r}: an integer from 0 to 2**{width} - 1 "
                         "(bits set to 1 are kept)")
    return int(mask)


def _as_signed_array(x, width: int, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"invalid {name}: an integer array, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    lo, hi = signed_range(width)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"invalid {name}: values must be {width}-bit signed ({lo} … {hi})")
    return arr


def to_unsigned(x, width: int) -> np.ndarray:
    """Two's-complement bit pattern of signed ``x`` as a non-negative int64."""
    return np.asarray(x, dtype=np.int64) & ((1 << width) - 1)


def to_signed(u, width: int) -> np.ndarray:
    """Signed value of the ``width``-bit pattern ``u``."""
    u = np.asarray(u, dtype=np.int64) & ((1 << width) - 1)
    return np.where(u >= (1 << (width - 1)), u - (1 << width), u)


def lcu(a, b, *, width: int = 8, mask: int | None = None) -> np.ndarray:
    """LCU output for signed ``width``-bit ``a`` and ``b`` (element-wise, broadcasting).

    Returns ``to_signed(to_unsigned(a) & to_unsigned(b) & mask)`` as int64.
    """
    _check_width(width)
    m = check_mask(mask, width)
    a = _as_signed_array(a, width, "a")
    b = _as_signed_array(b, width, "b")
    return to_signed(to_unsigned(a, width) & to_unsigned(b, width) & m, width)


def correct_buffer(buffer, pairs, *, width: int = 8, mask: int | None = None) -> np.ndarray:
    """The output buffer after the controller has processed ``pairs`` in order.

    Parameters
    ----------
    buffer : int array [depth]
        Signed ``width``-bit words.
    pairs : int array [n, 2]
        Buffer indices ``(index_a, index_b)``, each in ``0 … depth − 1``; ``n`` may be 0.
    """
    buf = _as_signed_array(buffer, width, "buffer").reshape(-1).copy()
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if p.size and (p.min() < 0 or p.max() >= buf.size):
        raise ValueError(f"invalid pairs: indices must be in 0 … {buf.size - 1}")
    m = check_mask(mask, width)
    for ia, ib in p:
        v = int(lcu(buf[ia], buf[ib], width=width, mask=m))
        buf[ia] = v
        buf[ib] = v
    return buf


def flip_bit(x, bit, width: int) -> np.ndarray:
    """``x`` with bit ``bit`` inverted (a transient bit flip), as a signed ``width``-bit value."""
    bit = np.asarray(bit, dtype=np.int64)
    if bit.size and (bit.min() < 0 or bit.max() >= width):
        raise ValueError(f"invalid bit: 0 … {width - 1}")
    return to_signed(to_unsigned(x, width) ^ (np.int64(1) << bit), width)
