"""Golden model of the output stage (bias, ReLU, requantisation).

Bit-exact with :mod:`rtl_gen.output_stage`.

Semantics, element-wise, all in exact integer arithmetic::

    y = acc + bias
    y = max(y, 0)                          if relu
    q = (y + 2**(shift-1)) >> shift        if shift > 0   (floor division: round half up)
    q = clamp(q, -2**(out_width-1), 2**(out_width-1) - 1)

Round half up (towards +inf) is what an adder plus an arithmetic shift gives for free; it is
biased by half an LSB on exact ties, which is the usual choice for integer inference.

**Split columns** (Ahmadilivani 2025 §4.3.1, :mod:`golden.split`): a column whose ``split`` flag is
set holds one copy of a critical neuron split for the LCU; it uses ``shift + 1`` and saturates to
``out_width − 1`` bits, so that both copies are bit-identical halves of the original output
and never set bit ``out_width − 2``.  This equals :func:`golden.split.layer_forward` of the
split layer (tests/test_output_stage.py).  ``shift`` is 0 … 63 (the hardware's 6-bit port), so a
split column shifts by up to 64: :func:`requantize` accepts 0 … 64 and stays exact in int64.

**Fixed-point requantisation** (issue 23, README, Two quantisation paths; the gemmlowp / TFLite
integer scheme): a model quantised by a tool such as onnxruntime carries arbitrary real scales, and
a layer's output is ``q = clamp(round(acc · M) + zero_point)`` with ``M = s_a·s_w / s_y``.  ``M`` is
held as a 32-bit fixed-point multiplier ``M0`` in ``[2**30, 2**31)`` and a right shift ``n`` (``M ≈
M0 · 2**-31 · 2**-n``, :func:`quantize_multiplier`), applied as gemmlowp does
(:func:`fixed_requantize`): ``SaturatingRoundingDoublingHighMul(acc, M0)`` (the high 32 bits of
``2·acc·M0``; gemmlowp's sign-dependent nudge and truncating division round a tie towards +∞ for
either sign, e.g. ``acc·M0 = −2**30`` gives 0) then ``RoundingDivideByPOT(·, n)`` (a rounding
arithmetic right shift, half away from zero), plus the output zero point, then saturation to the
clamp bounds (``[-2**(w-1), 2**(w-1) − 1]``, narrowed by a fused ReLU / ReLU6).  The accumulator
(bias included) must fit 32 signed bits, as gemmlowp's does.  The power-of-two path
(:func:`output_stage`, round half up) stays for the tool's own calibrated models.

**The hardware's pipeline** (:class:`FixedRequantModel`, the register-level model of
:class:`rtl_gen.output_stage.FixedRequant`) computes the same function in another form, one
adder per rounding step: ``high = (prod + 2**30) >> 31`` (floor) and
``(high + 2**(n-1) − (high < 0)) >> n``; tests hold the two forms equal.  The hardware takes
what its ports can hold beyond gemmlowp's domain (``acc + bias`` up to 33 bits, ``n = 63``) and
gives the exact value there; the model follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ftaccel.config import REQUANT_STAGES
from ftaccel.errors import is_int

__all__ = ["requantize", "output_stage", "MAX_SHIFT", "quantize_multiplier", "fixed_requantize",
           "MULTIPLIER_BITS", "MAX_RIGHT_SHIFT", "Requant", "FixedRequantModel",
           "FIXED_LATENCY", "hardware_fixed_requantize"]

#: Largest value of the hardware's ``shift`` port (``SHIFT_WIDTH = 6`` bits); a split column
#: adds one.  Kept here as a number because golden models import nothing of the project.
MAX_SHIFT = 63
#: Width of the fixed-point requantisation multiplier ``M0`` (gemmlowp's int32, positive).
MULTIPLIER_BITS = 32
#: Largest right shift ``n`` of the fixed-point requantisation: a product of a 32-bit
#: accumulator and ``M0`` keeps no bit beyond 62, so a larger shift gives 0 or −0.
MAX_RIGHT_SHIFT = 62
#: Cycles of the hardware's fixed-point path from the biased accumulator to its output
#: (:data:`rtl_gen.output_stage.FIXED_LATENCY`).
FIXED_LATENCY = 1 + REQUANT_STAGES


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


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``(M0, n)`` with ``real ≈ M0 · 2**-31 · 2**-n``, ``M0`` in ``[2**30, 2**31)``, ``n ≥ 0``.

    The rounding of ``M0`` is half away from zero, as TFLite's ``QuantizeMultiplier``; a
    mantissa that rounds up to ``2**31`` is renormalised.  ``real`` must be finite and in
    ``(0, 1)`` (a requantisation multiplier of 1 or more is not supported by the hardware,
    which only shifts right); one below ``2**-(31 + MAX_RIGHT_SHIFT)`` becomes ``(0, 0)``.
    """
    import math

    if not (isinstance(real, (int, float, np.floating)) and math.isfinite(real)
            and 0.0 < real < 1.0):
        raise ValueError(f"requantisation multiplier must be in (0, 1), not {real!r}")
    mantissa, exponent = math.frexp(float(real))  # real = mantissa · 2**exponent, [0.5, 1)
    m0 = int(math.floor(mantissa * (1 << 31) + 0.5))
    if m0 == 1 << 31:
        m0 //= 2
        exponent += 1
    n = -exponent
    if n < 0:
        raise ValueError(f"requantisation multiplier {real!r} rounds to 1 or more")
    if n > MAX_RIGHT_SHIFT:
        return 0, 0
    return m0, n


def fixed_requantize(acc, multiplier, shift, zero_point, lo: int, hi: int) -> np.ndarray:
    """Gemmlowp's integer requantisation, element-wise (see the module docstring).

    Parameters
    ----------
    acc : array of int
        Accumulators, bias included, each within 32 signed bits.
    multiplier, shift, zero_point : int or array of int
        ``M0`` (0 or ``[2**30, 2**31)``), the right shift ``n`` (0 … :data:`MAX_RIGHT_SHIFT`)
        and the output zero point; scalars, or one per column (broadcast over the last axis).
    lo, hi : int
        The clamp bounds (the output width's range, or narrower for a fused ReLU / ReLU6).

    Returns
    -------
    ndarray of int64
        ``clamp(RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, M0), n) + zp)``.
    """
    a = np.asarray(acc, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    n = np.asarray(shift, dtype=np.int64)
    if a.size and (a.min() < -(1 << 31) or a.max() >= 1 << 31):
        raise ValueError("fixed-point requantisation needs accumulators within 32 signed bits")
    if m.size and (m.min() < 0 or m.max() >= 1 << 31):
        raise ValueError("requantisation multiplier M0 must be in 0 … 2**31 − 1")
    if n.size and (n.min() < 0 or n.max() > MAX_RIGHT_SHIFT):
        raise ValueError(f"requantisation shift must be in 0 … {MAX_RIGHT_SHIFT}")
    # SaturatingRoundingDoublingHighMul: (a·m + nudge) / 2**31, the division truncating
    # towards zero as in C; |a·m| < 2**62, so int64 holds it.  Saturation (a = m = −2**31)
    # cannot happen with m ≥ 0.
    ab = a * m
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    t = ab + nudge
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))
    # RoundingDivideByPOT: arithmetic shift, rounded half away from zero.
    mask = (np.int64(1) << n) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    q = (high >> n) + (remainder > threshold)
    return np.clip(q + np.asarray(zero_point, dtype=np.int64), lo, hi)


@dataclass(frozen=True, eq=False)
class Requant:
    """What a layer's output stage does with its accumulators: one of the two paths.

    *Power-of-two* (``multiplier is None``, the tool's calibrated models):
    :func:`output_stage` with ``relu`` and a rounding right ``shift`` (0 … 63, scalar).
    *Fixed-point* (models quantised by other tools, README, Two quantisation paths):
    :func:`fixed_requantize` with
    ``multiplier`` (``M0``) and ``shift`` (``n``), each a scalar or one per output column
    (per-channel weight scales), the output ``zero_point`` and the clamp bounds ``lo``/``hi``
    (``None``: the output width's range; a fused ReLU is ``lo = zero_point``, a ReLU6
    ``hi = zero_point + round(6 / s_y)``).  ``relu`` is not used on this path.
    """

    shift: int | np.ndarray = 0
    relu: bool = False
    multiplier: int | np.ndarray | None = None
    zero_point: int = 0
    lo: int | None = None
    hi: int | None = None

    @property
    def fixed(self) -> bool:
        """Whether this is the fixed-point path."""
        return self.multiplier is not None

    def bounds(self, out_width: int) -> tuple[int, int]:
        """The clamp bounds for ``out_width``-bit outputs (the fixed-point path)."""
        lo = -(1 << (out_width - 1)) if self.lo is None else self.lo
        hi = (1 << (out_width - 1)) - 1 if self.hi is None else self.hi
        return lo, hi

    def apply(self, acc, bias, out_width: int, split=None, *, wide: bool = False) -> np.ndarray:
        """The requantised outputs of ``acc + bias`` (``bias`` per column, broadcast).

        ``split`` (power-of-two path only): the LCU's split lanes, see :func:`output_stage`.
        ``wide`` (fixed-point path): take ``|acc + bias| ≤ 2**32`` as the hardware does
        (:func:`hardware_fixed_requantize`; a fault can push a wrapped accumulator plus its
        bias beyond gemmlowp's 32 bits), the same values within gemmlowp's domain.
        """
        if not self.fixed:
            return output_stage(acc, bias, self.relu, self.shift, out_width, split=split)
        if split is not None and np.any(split):
            raise ValueError("split lanes need the power-of-two output stage")
        y = np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
        f = hardware_fixed_requantize if wide else fixed_requantize
        return f(y, self.multiplier, self.shift, self.zero_point, *self.bounds(out_width))


def hardware_fixed_requantize(y, multiplier, shift, zero_point, lo: int, hi: int) -> np.ndarray:
    """The fixed-point path as :class:`FixedRequantModel` computes it, in closed form.

    ``high = (y·M0 + 2**30) >> 31`` (floor), then ``(high + 2**(n−1) − (high < 0)) >> n``,
    plus the zero point, clamped to ``[lo, hi]``: equal to :func:`fixed_requantize` for
    accumulators within 32 signed bits, and the hardware's value beyond them (``|y| ≤ 2**32``,
    what a 32-bit accumulator plus a 32-bit bias can reach; exact in int64 there).
    """
    a = np.asarray(y, dtype=np.int64)
    if a.size and (a.min() < -(1 << 32) or a.max() > 1 << 32):
        raise ValueError("the hardware's fixed-point path takes |acc + bias| ≤ 2**32")
    prod = a * np.asarray(multiplier, dtype=np.int64)
    high = (prod >> 31) + ((prod >> 30) & 1)
    n = np.asarray(shift, dtype=np.int64)
    k = np.where(n > 0, (np.int64(1) << np.maximum(n - 1, 0)) - (high < 0), 0)
    q = (high + k) >> n
    return np.clip(q + np.asarray(zero_point, dtype=np.int64), lo, hi)


class FixedRequantModel:
    """Register-level model of :class:`rtl_gen.output_stage.FixedRequant` over ``lanes`` lanes.

    Four registers, one :meth:`step` per clock cycle, each reading its controls in the cycle
    its stage computes (``multiplier`` one cycle after ``y``, ``right_shift`` two,
    ``zero_point``, ``lo``, ``hi``, ``fixed`` and ``pow2`` three): latency **4 cycles**.

    * ``y_reg = y``; ``product = y_reg · multiplier``;
    * ``rounding_sum = (product >> 31) + product[30] + k``, ``k = 2**(n-1) − (high < 0)``
      for ``n > 0`` (else 0), and ``rshift = n``;
    * ``q = clip((rounding_sum >> rshift) + zero_point, lo, hi)`` if ``fixed`` else ``pow2``.

    The RTL limits the shift to ``y_width + 1`` inside its registers and saturates before the
    zero point; neither changes ``q`` (see its docstring), so the model keeps the plain
    values.  Exact in int64 for ``|y| ≤ 2**32``, ``multiplier < 2**31`` and ``n ≤ 63``.
    """

    latency = FIXED_LATENCY

    def __init__(self, lanes: int):
        zero = np.zeros(lanes, dtype=np.int64)
        self.y_reg, self.product, self.rounding_sum, self.rshift = (zero.copy() for _ in "1234")
        self.q = zero.copy()

    def outputs(self) -> np.ndarray:
        """``q`` as the registered output shows it in this cycle."""
        return self.q.copy()

    def step(self, y, pow2, fixed, multiplier, right_shift, zero_point, lo, hi) -> None:
        """Advance one cycle with these port values (per lane or scalar, broadcast)."""
        rounded = self.rounding_sum >> self.rshift
        q = np.clip(rounded + np.int64(zero_point), np.int64(lo), np.int64(hi))
        n = np.broadcast_to(np.asarray(right_shift, dtype=np.int64), self.q.shape)
        high = (self.product >> 31) + ((self.product >> 30) & 1)
        k = np.where(n > 0, (np.int64(1) << np.maximum(n - 1, 0)) - (high < 0), 0)
        self.q = np.where(bool(fixed), q, np.asarray(pow2, dtype=np.int64))
        self.rounding_sum, self.rshift = high + k, n.copy()
        self.product = self.y_reg * np.asarray(multiplier, dtype=np.int64)
        self.y_reg = np.broadcast_to(np.asarray(y, dtype=np.int64), self.q.shape).copy()
