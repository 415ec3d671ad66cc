"""Two's-complement bit arithmetic of registers, element-wise on int64 arrays.

Every golden model stores a ``width``-bit register as the signed int64 value the register's
bits mean.  The few operations on those values live here, once:

* :func:`wrap` — what a ``width``-bit register holds after being written ``x`` (drop the
  high bits, sign-extend bit ``width − 1``);
* :func:`to_unsigned` — the register's bit pattern as a non-negative integer (the value an
  unsigned Verilog port shows);
* :func:`flip_bit` — the value with one bit inverted (a transient upset);
* :func:`signed_range`, :func:`signed_array` — the range of a ``width``-bit signed value and
  the check that an operand lies in it.

Widths are 1 … :data:`MAX_BITS`: sums of two such values still fit int64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_BITS", "flip_bit", "signed_array", "signed_range", "to_unsigned", "wrap"]

#: Widest register the int64 golden models handle.
MAX_BITS = 62


def _widths(bits, lo: int = 1) -> np.ndarray:
    """``bits`` as an int64 array, checked to lie in ``lo … MAX_BITS``."""
    w = np.asarray(bits)
    if w.dtype.kind not in "iu" or (w.size and (w.min() < lo or w.max() > MAX_BITS)):
        raise ValueError(f"invalid width = {bits!r}: an integer from {lo} to {MAX_BITS}")
    return w.astype(np.int64)


def signed_range(width: int) -> tuple[int, int]:
    """``(lo, hi)`` of a ``width``-bit two's-complement integer."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def wrap(x, width):
    """``x`` as a ``width``-bit register holds it (two's-complement wrap-around).

    Parameters
    ----------
    x : int or int array
        Values of any size that fits int64.
    width : int or int array
        Register width(s), 1 … :data:`MAX_BITS`; an array applies element-wise.

    Returns
    -------
    numpy.ndarray or numpy.int64
        Signed values in ``[-2**(width-1), 2**(width-1) - 1]``.
    """
    half = np.int64(1) << (_widths(width) - np.int64(1))
    return ((np.asarray(x, dtype=np.int64) + half) & ((half << np.int64(1)) - 1)) - half


def to_unsigned(x, width):
    """The ``width``-bit pattern of signed ``x`` as a non-negative integer."""
    return np.asarray(x, dtype=np.int64) & ((np.int64(1) << _widths(width)) - np.int64(1))


def flip_bit(x, bit, width):
    """``x`` with bit ``bit`` of its ``width``-bit pattern inverted, as a signed value.

    ``bit`` (and ``width``) may be arrays broadcasting against ``x``; every bit must lie in
    ``0 … width − 1``.
    """
    w = _widths(width)
    b = np.asarray(bit, dtype=np.int64)
    if b.size and (b.min() < 0 or np.any(b >= w)):
        raise ValueError(f"invalid bit = {bit!r}: 0 … width − 1 (width {width!r})")
    return wrap(to_unsigned(x, w) ^ (np.int64(1) << b), w)


def signed_array(x, name: str, width: int | None = None) -> np.ndarray:
    """``x`` as an int64 array, checked to hold integers (of ``width`` signed bits, if given).

    Raises
    ------
    ValueError
        Naming ``name``: not integers, or a value outside the ``width``-bit range.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"invalid {name}: an integer array, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if width is not None:
        lo, hi = signed_range(width)
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"invalid {name}: values must be {width}-bit signed ({lo} … {hi})")
    return arr
