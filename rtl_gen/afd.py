"""Anomalous feature detection and suppression, AFD (Ozen 2023 §8.4.1 Eqs. 8.1–8.2, §8.6.1).

One pipeline stage placed at the activation-buffer output, before the systolic array
(Fig. 8.9, Ozen 2023 §8.6.1).  The datapath of Fig. 8.8 (Ozen 2023 §8.6.1), per element ``c``::

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

from .vector import LaneParameters, VectorSignature, WindowSignature

__all__ = ["AFDControlSignature", "AnomalySuppression", "WindowedAFD", "WindowedAFDLane",
           "shift_port_width"]

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


class AnomalySuppression(LaneParameters, wiring.Component):
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
    and so always fits ``signed(w)`` without saturation.  Implements Ozen 2023 §8.4.1 (Eqs. 8.1,
    8.2, §8.4.1, §8.7.1) and §8.6.1 (Figs. 8.8, 8.9).
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
        left, amount, two_gates = _decode(m, self.ctl, self._max_shift)
        mags = [Signal(w, name=f"mag_{c}") for c in range(n)]
        thr = [Signal(w, name=f"thr_{c}") for c in range(n)]
        for c in range(n):
            m.d.comb += [
                mags[c].eq(abs(self.i.data[c])),
                thr[c].eq(_saturating_shift(mags[c], amount, left, w)),
            ]
        for c in range(n):
            nxt, prv = (c + 1) % n, (c - 1) % n
            value, suppress = _suppress(m, self.i.data[c], mags[c], mags[nxt], mags[prv],
                                        thr[nxt], thr[prv], two_gates, self.ctl, w, str(c))
            m.d.sync += [self.o.data[c].eq(value), self.suppressed[c].eq(suppress)]
        m.d.sync += self.o.valid.eq(self.i.valid)
        return m


def _decode(m: Module, ctl, max_shift: int):
    """The shift decode shared by all elements: direction, clamped amount, two gates."""
    left = Signal()
    amount = Signal(range(max_shift + 1))
    shift_mag = abs(ctl.shift)
    m.d.comb += [
        left.eq(ctl.shift > 0),
        amount.eq(Mux(shift_mag > max_shift, max_shift, shift_mag)),
    ]
    return left, amount, ctl.gates[1]


def _suppress(m: Module, a, mag, mag_next, mag_prev, thr_next, thr_prev, two_gates, ctl,
              w: int, name: str):
    """One element's rule (Eqs. 8.1/8.2, drop or clip): ``(output value, suppress)``, comb."""
    # Eq. 8.1 suppresses on a tie (|A_c| >= T), Eq. 8.2 does not (|A_c| > T): one
    # comparator does both, with the tie broken by an extra LSB, 2|A_c|+[one gate] > 2T.
    viol_next = Cat(~two_gates, mag) > Cat(C(0, 1), thr_next)
    viol_prev = mag > thr_prev
    suppress = Signal(name=f"suppress_{name}")
    m.d.comb += suppress.eq(ctl.enable & viol_next & (~two_gates | viol_prev))
    # The largest violated threshold.  The shift is monotone, so comparing the
    # neighbours' magnitudes picks the same one as comparing their thresholds, and this
    # comparator works in parallel with the shifters instead of after them.
    largest = Mux(two_gates & (mag_prev > mag_next), thr_prev, thr_next)
    # |clip| <= |A_c| <= 2^(w-1), so the w-bit negation cannot overflow (-2^(w-1) fits).
    clipped = Mux(a < 0, -largest, largest)[:w].as_signed()
    replacement = Mux(ctl.mode, clipped, 0)
    return Mux(suppress, replacement, a), suppress


# -- anomaly suppression in time: IS and OS (a lane's features arrive one per cycle) ----------

class WindowedAFDLane(wiring.Component):
    """One lane of :class:`WindowedAFD`: Eqs. 8.1/8.2 over features arriving one per cycle.

    The features of a lane come in chunks of ``chunk`` (R, told by ``first`` / ``last``,
    :class:`rtl_gen.vector.WindowSignature`); element c's neighbours are c ± 1 *within its
    chunk, wrapping around* (Ozen 2023 §8.4.1), the positions a short chunk lacks being zeros: the
    rule
    :class:`AnomalySuppression` applies to one streamed WS vector (one chunk), in time.  The
    wrap-around makes the first element of a chunk wait for its last: the lane is a shift
    register of ``chunk`` taps and decides on the feature ``chunk − 1`` cycles old, whose newer
    neighbour is the next tap (or, for the chunk's last element, the chunk's first, kept in one
    more register; or zero where the chunk ended early) and whose older neighbour is the
    previous tap (or, for the chunk's first, the chunk's last element, the newest tap, when
    the chunk is whole; else zero).

    ``reverse``: which arrival neighbour is element c + 1.  OS streams a row of A in K order
    (c + 1 is the newer feature); IS loads a column's activations last row first, i.e. in
    falling K (c + 1 is the older one).

    Latency **chunk** cycles (R); one feature per cycle.  Flip-flops: ``chunk + 2`` words
    (taps, the chunk's first, the output) and ``2·chunk + 1`` flag bits.  Logic: as one lane of
    :class:`AnomalySuppression` (magnitudes, two threshold shifters, the comparisons and the
    drop/clip multiplexer) plus the wrap multiplexers.  Controls (``ctl``) are sampled when the
    decision is taken, ``chunk − 1`` cycles after the feature entered: hold them while a chunk
    is in flight.

    Ports: ``x`` (signed width), ``first``, ``last``, ``ctl`` (:class:`AFDControlSignature`)
    in; ``y``, ``suppressed``, ``y_first``, ``y_last`` out, registered.
    """

    def __init__(self, *, width: int = 8, chunk: int = 8, reverse: bool = False,
                 max_shift: int | None = None):
        check_int("width", width, 2, MAX_WIDTH)
        check_int("chunk", chunk, 1, MAX_LANES)
        if max_shift is None:
            max_shift = width
        check_int("max_shift", max_shift, 1, width)
        self._width, self._chunk, self._reverse = width, chunk, bool(reverse)
        self._max_shift = max_shift
        super().__init__({"x": In(signed(width)), "first": In(1), "last": In(1),
                          "ctl": In(AFDControlSignature(max_shift)), "y": Out(signed(width)),
                          "suppressed": Out(1), "y_first": Out(1), "y_last": Out(1)})

    @property
    def latency(self) -> int:
        """Cycles from a feature to its decision: the chunk length."""
        return self._chunk

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "windowed_afd_lane", "width": self._width, "chunk": self._chunk,
                "reverse": self._reverse, "max_shift": self._max_shift}

    def elaborate(self, platform):
        """The lane's netlist."""
        m = Module()
        w, R = self._width, self._chunk
        v, f, last = [self.x], [self.first], [self.last]
        for k in range(1, R + 1):
            v.append(Signal(signed(w), name=f"tap{k}"))
            m.d.sync += v[k].eq(v[k - 1])
            if k < R:
                f.append(Signal(name=f"first{k}"))
                last.append(Signal(name=f"last{k}"))
                m.d.sync += [f[k].eq(f[k - 1]), last[k].eq(last[k - 1])]
        e, e_first, e_last = v[R - 1], f[R - 1], last[R - 1]
        chunk_first = Signal(signed(w), name="chunk_first")
        m.d.sync += chunk_first.eq(Mux(e_first, e, chunk_first))
        # The newer neighbour: the next tap, zero past a chunk cut short, the chunk's first
        # after its last (the element itself in a chunk of one).
        cont = Mux(f[R - 2], 0, v[R - 2]) if R >= 2 else 0
        newer = Signal(signed(w), name="newer")
        m.d.comb += newer.eq(Mux(e_last, Mux(e_first, e, chunk_first), cont))
        # The older neighbour: the previous tap; the chunk's first wraps to its last element,
        # the newest tap when it is the chunk's R-th (else the chunk is short: a zero).
        older = Signal(signed(w), name="older")
        m.d.comb += older.eq(Mux(e_first, Mux(last[0], v[0], 0), v[R]))
        nxt, prv = (older, newer) if self._reverse else (newer, older)
        left, amount, two_gates = _decode(m, self.ctl, self._max_shift)
        mag, mag_next, mag_prev = (Signal(w, name=n) for n in ("mag", "mag_next", "mag_prev"))
        thr_next, thr_prev = Signal(w, name="thr_next"), Signal(w, name="thr_prev")
        m.d.comb += [mag.eq(abs(e)), mag_next.eq(abs(nxt)), mag_prev.eq(abs(prv)),
                     thr_next.eq(_saturating_shift(mag_next, amount, left, w)),
                     thr_prev.eq(_saturating_shift(mag_prev, amount, left, w))]
        value, suppress = _suppress(m, e, mag, mag_next, mag_prev, thr_next, thr_prev,
                                    two_gates, self.ctl, w, "e")
        m.d.sync += [self.y.eq(value), self.suppressed.eq(suppress), self.y_first.eq(e_first),
                     self.y_last.eq(e_last)]
        return m


class WindowedAFD(wiring.Component):
    """Anomaly suppression on IS and OS: one :class:`WindowedAFDLane` per lane.

    OS filters the streamed activations (R lanes, K over cycles, ``reverse=False``), IS the
    stationary activations as each column loads them (C lanes, last row first,
    ``reverse=True``).  Each chunk of R features gets the rule :class:`AnomalySuppression`
    gives one WS vector, so :func:`golden.units.units_matrix` is the model on every dataflow.

    Latency **chunk** cycles (R: a chunk's first element waits for its last, the wrap-around
    of Ozen 2023 §8.4.1); one feature per lane and cycle.

    Attributes
    ----------
    i : In(WindowSignature(width, lanes))
    ctl : In(AFDControlSignature(max_shift))
    o : Out(WindowSignature(width, lanes))
    suppressed : Out(1).array(lanes)
    """

    def __init__(self, *, width: int = 8, lanes: int = 8, chunk: int = 8,
                 reverse: bool = False, max_shift: int | None = None):
        check_int("width", width, 2, MAX_WIDTH)
        check_int("lanes", lanes, 1, MAX_LANES)
        check_int("chunk", chunk, 1, MAX_LANES)
        if max_shift is None:
            max_shift = width
        check_int("max_shift", max_shift, 1, width)
        self._width, self._lanes, self._chunk = width, lanes, chunk
        self._reverse, self._max_shift = bool(reverse), max_shift
        super().__init__({"i": In(WindowSignature(width, lanes)),
                          "ctl": In(AFDControlSignature(max_shift)),
                          "o": Out(WindowSignature(width, lanes)),
                          "suppressed": Out(1).array(lanes)})

    @property
    def latency(self) -> int:
        """Cycles from a feature to its decision: the chunk length R."""
        return self._chunk

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "windowed_afd", "width": self._width, "lanes": self._lanes,
                "chunk": self._chunk, "reverse": self._reverse, "max_shift": self._max_shift}

    def elaborate(self, platform):
        """One lane unit per lane, the controls shared."""
        m = Module()
        for c in range(self._lanes):
            m.submodules[f"lane{c}"] = lane = WindowedAFDLane(
                width=self._width, chunk=self._chunk, reverse=self._reverse,
                max_shift=self._max_shift)
            m.d.comb += [lane.ctl.shift.eq(self.ctl.shift), lane.ctl.gates.eq(self.ctl.gates),
                         lane.ctl.mode.eq(self.ctl.mode), lane.ctl.enable.eq(self.ctl.enable),
                         lane.x.eq(self.i.data[c]), lane.first.eq(self.i.first[c]),
                         lane.last.eq(self.i.last[c]), self.o.data[c].eq(lane.y),
                         self.o.first[c].eq(lane.y_first), self.o.last[c].eq(lane.y_last),
                         self.suppressed[c].eq(lane.suppressed)]
        return m
