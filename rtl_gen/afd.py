"""Anomalous feature detection and suppression, AFD (seed 000 §8.4.1 Eqs. 8.1–8.2, §8.6.1).

One pipeline stage placed at the activation-buffer output, before the systolic array
(Fig. 8.9, 000:L1692–L1696).  The datapath of Fig. 8.8 (000:L1680–L1690), per element ``c``::

    A_c ──|·|──► |A_c| ──► shift by s (γ = 2^s) ──► T_c ──┐  (T vector rotated by ±1)
                   │                                       ▼
                   ├──────► |A_c| ≥ T_{c+1} (one gate) / |A_c| > T_{c+1} ──┐
                   └──────► |A_c| > T_{c−1} ───────────────────────────────┤ gates
                                                                           ▼
    |A_{c+1}| vs |A_{c−1}| ─► larger T ─► ±T* (sign of A_c) ─► drop/clip ─► mux ─► reg ─► out

The exact integer semantics (ties, zero neighbours, truncating right shift, saturation,
wrap-around, one and two lanes) are written down in :mod:`golden.afd`; this component matches
that model bit for bit.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.errors import check_int

from .vector import VectorSignature

__all__ = ["AFDControlSignature", "AnomalySuppression", "shift_port_width"]

MAX_WIDTH = 32
MAX_LANES = 256


def shift_port_width(max_shift: int) -> int:
    """Bits of the signed ``shift`` port: enough to hold ``−max_shift … +max_shift``."""
    return max_shift.bit_length() + 1


class AFDControlSignature(wiring.Signature):
    """The run-time controls of the anomaly suppression, as the host drives them.

    Parameters
    ----------
    max_shift : int
        Largest shift magnitude; sizes ``shift`` (:func:`shift_port_width`).

    Members
    -------
    shift : Out(signed(shift_port_width(max_shift)))
        γ = 2^shift.
    gates : Out(2)
        1 = Eq. 8.1, 2 = Eq. 8.2.
    mode : Out(1)
        0 = drop, 1 = clip.
    enable : Out(1)
        0 = pass the vector through.
    """

    def __init__(self, max_shift: int):
        self._max_shift = max_shift
        super().__init__({"shift": Out(signed(shift_port_width(max_shift))), "gates": Out(2),
                          "mode": Out(1), "enable": Out(1)})

    @property
    def max_shift(self) -> int:
        """Largest shift magnitude."""
        return self._max_shift

    def __eq__(self, other) -> bool:
        """Equal for the same ``max_shift``."""
        return isinstance(other, AFDControlSignature) and self._max_shift == other._max_shift

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((AFDControlSignature, self._max_shift))


def _saturating_shift(mag, amount, left, width: int):
    """``min(mag << amount, 2^w − 1)`` if ``left`` else ``mag >> amount``, all ``width`` bits.

    A logarithmic shifter per direction: stage ``i`` shifts by ``2^i`` when bit ``i`` of
    ``amount`` is set.  The left shifter keeps only ``width`` bits and records in one sticky
    flag whether any set bit was pushed out, then saturates once at the end; that keeps every
    stage ``width`` bits wide instead of growing to ``2·width`` bits for nothing: the
    comparison partner ``|A_c| ≤ 2^(w−1)`` cannot tell a saturated threshold from a larger one.
    """
    x_left, overflow = mag, C(0, 1)
    x_right = mag
    for i in range(len(amount)):
        step = 1 << i
        if step >= width:
            pushed_out = x_left.any()
            shifted_left = C(0, width)
            shifted_right = C(0, width)
        else:
            pushed_out = x_left[width - step:].any()
            shifted_left = (x_left << step)[:width]
            shifted_right = x_right >> step
        overflow = overflow | (amount[i] & pushed_out)
        x_left = Mux(amount[i], shifted_left, x_left)
        x_right = Mux(amount[i], shifted_right, x_right)
    saturated = Mux(overflow, C((1 << width) - 1, width), x_left)
    return Mux(left, saturated, x_right)


class AnomalySuppression(wiring.Component):
    """Vector anomaly detection and suppression by neighbour thresholds, one pipeline stage.

    Per element ``c`` of the activation vector (indices wrap around), with γ = 2^shift:
    one gate (Eq. 8.1) suppresses ``A_c`` iff ``|A_c| ≥ γ·|A_{c+1}|``; two gates (Eq. 8.2)
    iff ``|A_c| > γ·|A_{c+1}|`` and ``|A_c| > γ·|A_{c−1}|``.  A suppressed element becomes 0
    (drop) or ``sign(A_c) × the largest violated threshold`` (clip).  See :mod:`golden.afd`
    for the exact integer semantics.

    Parameters
    ----------
    width : int
        Data width ``w`` in bits (2 … 32; 8 and 16 are the tested ones).
    lanes : int
        Vector length, i.e. the array's activation inputs (1 … 256).
    max_shift : int or None
        Largest shift in either direction (1 … width); ``None`` means ``width``, which makes
        every representable γ exact (a larger shift would change no output).  A smaller value
        narrows the ``shift`` control and the shifters.

    Attributes
    ----------
    i : In(VectorSignature(w, lanes))
        The activation vector, one per cycle; ``i.valid`` is only delayed to ``o.valid`` (the
        data registers load every cycle, so a consumer qualifies ``o.data`` with ``o.valid``).
    ctl : In(AFDControlSignature(max_shift))
        ``ctl.shift``: γ = 2^shift, positive = left shift (γ > 1), negative = right shift
        (γ < 1, the threshold is truncated: floor(γ·|A|)); values beyond ±max_shift are
        clamped.  ``ctl.gates``: gate count (Fig. 8.8 "Gate Count"), 1 = Eq. 8.1, 2 = Eq. 8.2;
        only bit 1 is decoded (0 acts as 1 and 3 as 2).  ``ctl.mode``: 0 = drop (→ 0),
        1 = clip (→ sign × largest violated threshold).  ``ctl.enable``: 0 = pass the vector
        through unchanged (still one cycle of latency).
    o : Out(VectorSignature(w, lanes))
        The suppressed vector and ``i.valid``, registered.
    suppressed : Out(1).array(lanes)
        Which elements were suppressed (registered, aligned with ``o.data``): the detection
        result, e.g. for counting detected errors.

    Latency one cycle, throughput one vector per cycle; all controls are sampled together with
    ``i.data`` and may change every cycle.

    Widths: magnitudes are unsigned ``w`` bits (``|−2^(w−1)| = 2^(w−1)`` fits); thresholds are
    unsigned ``w`` bits, left shifts saturating at ``2^w − 1`` (invisible in every output
    because ``|A_c| ≤ 2^(w−1)``); the clipped value has magnitude ``≤ |A_c|`` by construction
    and so always fits ``signed(w)`` without saturation.  Implements 000 §8.4.1 (Eqs. 8.1, 8.2,
    L1535, L1735) and §8.6.1 (Figs. 8.8, 8.9).
    """

    def __init__(self, *, width: int = 8, lanes: int = 8, max_shift: int | None = None):
        check_int("width", width, 2, MAX_WIDTH)
        check_int("lanes", lanes, 1, MAX_LANES)
        if max_shift is None:
            max_shift = width
        check_int("max_shift", max_shift, 1, width)
        self._width = width
        self._lanes = lanes
        self._max_shift = max_shift
        super().__init__({
            "i": In(VectorSignature(width, lanes)),
            "ctl": In(AFDControlSignature(max_shift)),
            "o": Out(VectorSignature(width, lanes)),
            "suppressed": Out(1).array(lanes),
        })

    @property
    def width(self) -> int:
        """Data width in bits."""
        return self._width

    @property
    def lanes(self) -> int:
        """Vector length."""
        return self._lanes

    @property
    def max_shift(self) -> int:
        """Largest shift magnitude."""
        return self._max_shift

    @property
    def shift_width(self) -> int:
        """Width of the signed ``ctl.shift`` control."""
        return shift_port_width(self._max_shift)

    def config(self) -> dict:
        """Parameters for the Verilog header."""
        return {"unit": "afd", "width": self._width, "lanes": self._lanes,
                "max_shift": self._max_shift}

    def elaborate(self, platform):
        """The unit's netlist."""
        m = Module()
        w, n = self._width, self._lanes

        # Shift decode, shared by all elements: direction and clamped amount.
        left = Signal()
        amount = Signal(range(self._max_shift + 1))
        shift_mag = abs(self.ctl.shift)
        m.d.comb += [
            left.eq(self.ctl.shift > 0),
            amount.eq(Mux(shift_mag > self._max_shift, self._max_shift, shift_mag)),
        ]
        two_gates = self.ctl.gates[1]

        mags = [Signal(w, name=f"mag_{c}") for c in range(n)]
        thr = [Signal(w, name=f"thr_{c}") for c in range(n)]
        for c in range(n):
            m.d.comb += [
                mags[c].eq(abs(self.i.data[c])),
                thr[c].eq(_saturating_shift(mags[c], amount, left, w)),
            ]

        for c in range(n):
            nxt, prv = (c + 1) % n, (c - 1) % n
            a = self.i.data[c]
            # Eq. 8.1 suppresses on a tie (|A_c| >= T), Eq. 8.2 does not (|A_c| > T): one
            # comparator does both, with the tie broken by an extra LSB, 2|A_c|+[one gate] > 2T.
            viol_next = Cat(~two_gates, mags[c]) > Cat(C(0, 1), thr[nxt])
            viol_prev = mags[c] > thr[prv]
            suppress = Signal(name=f"suppress_{c}")
            m.d.comb += suppress.eq(self.ctl.enable & viol_next & (~two_gates | viol_prev))
            # The largest violated threshold.  The shift is monotone, so comparing the
            # neighbours' magnitudes picks the same one as comparing their thresholds, and this
            # comparator works in parallel with the shifters instead of after them.
            largest = Mux(two_gates & (mags[prv] > mags[nxt]), thr[prv], thr[nxt])
            # |clip| <= |A_c| <= 2^(w-1), so the w-bit negation cannot overflow (-2^(w-1) fits).
            clipped = Mux(a < 0, -largest, largest)[:w].as_signed()
            replacement = Mux(self.ctl.mode, clipped, 0)
            m.d.sync += [
                self.o.data[c].eq(Mux(suppress, replacement, a)),
                self.suppressed[c].eq(suppress),
            ]
        m.d.sync += self.o.valid.eq(self.i.valid)
        return m
