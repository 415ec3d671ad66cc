"""Median feature selection hardware: Sort-2, Median-3, Median-5 and the median array.

Implements Ozen 2023 §8.4.2 (Eq. 8.3) and §8.6.2 (Figs. 8.10–8.12);
Ozen 2023 §8.4.2, §8.6.2.  A median array filters the vector streamed into the systolic array,
before the input skew: output lane ``i`` is ``median(x[i-h] … x[i+h])`` with ``h = window // 2``,
stride 1, and
``h`` zeros appended at both ends so the vector keeps its length.  Vectors wider than the array
are filtered chunk by chunk, each chunk padded on its own (Ozen 2023 §8.7.2): the hardware sees one
array-width chunk per cycle, so that is the host's business (:func:`golden.median.median_filter`
with ``chunk=``).  A short last chunk must be fed with zeros in the unused lanes, which is the
same as padding it on its own.

Two constructions of the sliding median (``variant``):

``"plain"``
    One independent unit per window (Fig. 8.11): a Median-3 is three Sort-2 with the two
    unused multiplexers pruned (3 comparators, 4 multiplexers); a Median-5 is four Sort-2 that
    drop the minimum and the maximum of a 4-element subset, then a Median-3 on the remaining
    three (7 comparators, 10 multiplexers).
``"shared"``
    Fig. 8.12: the Sort-2 units are split into comparators and multiplexers, every pair of
    elements closer than ``window`` is compared exactly once for the whole vector, and each
    window picks its median from those comparison bits.  Window ``i+1`` shares all but
    ``window - 1`` comparisons with window ``i``: Median-3 costs 3 comparators for the first
    window and 2 for each further one, Median-5 costs 10 and then 4 (7 per window plain).  The
    median is routed by ``window - 1`` two-input multiplexers per window (2 for Median-3, 4 for
    Median-5) driven by one-hot "this element is the median" flags; all comparisons work on
    the inputs directly, so the sequential dependency of the plain network is gone.

How the shared variant decides, with ties: elements are ordered by (value, position), so the
order is total and strict.  For positions ``k < j`` one comparator computes
``c[k, j] = x[j] < x[k]`` (signed); ``j`` precedes ``k`` exactly when ``c[k, j]``.  The element
of a window with exactly ``h`` predecessors inside the window is its median.  The plain and
shared variants are proven equal by :mod:`synth.equiv` (see ``tests/test_median.py``).
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.errors import ConfigError, check_int, is_int

from .emit import write_verilog
from .vector import LaneParameters, VectorSignature, WindowSignature

__all__ = [
    "WINDOWS",
    "VARIANTS",
    "MIN_WIDTH",
    "MAX_WIDTH",
    "MAX_LANES",
    "Sort2",
    "Median3",
    "Median5",
    "SlidingMedian",
    "MedianArray",
    "MedianControlSignature",
    "expected_counts",
    "median_array_name",
    "emit_median_array",
    "emit_median_core",
    "emit_median_unit",
    "WindowedMedianLane",
    "WindowedMedian",
    "emit_windowed_median_lane",
]

#: Window sizes of the seed (Ozen 2023 §8.4.2: "small filtering window sizes").
WINDOWS = (3, 5)
#: Array constructions: independent units (Figs. 8.10/8.11) or comparator sharing (Fig. 8.12).
VARIANTS = ("plain", "shared")
MIN_WIDTH = 2
MAX_WIDTH = 32
#: Largest array width, as for the systolic array (ftaccel.config.MAX_DIM).
MAX_LANES = 256


def _check_width(width) -> None:
    check_int("width", width, MIN_WIDTH, MAX_WIDTH)


def _check_lanes(lanes) -> None:
    check_int("lanes", lanes, 1, MAX_LANES)


def _check_window(window) -> None:
    if not is_int(window) or window not in WINDOWS:
        raise ConfigError("window", window, f"one of {', '.join(map(str, WINDOWS))}")


def _check_variant(variant) -> None:
    if variant not in VARIANTS:
        raise ConfigError("variant", variant, f"one of {', '.join(VARIANTS)}")


def _check_array(width, lanes, window, variant) -> None:
    """The parameters every lanes × window median component takes."""
    _check_width(width)
    _check_lanes(lanes)
    _check_window(window)
    _check_variant(variant)


def expected_counts(*, lanes: int, window: int, variant: str) -> dict[str, int]:
    """Comparators and two-input multiplexers of a :class:`SlidingMedian` core, by construction.

    Plain: ``n = lanes`` units of 3 comparators / 4 multiplexers (Median-3) or 7 / 10
    (Median-5).  Shared: one comparator per pair of positions closer than ``window`` among the
    ``n + 2h`` inputs (``2n + 1`` for Median-3, ``4n + 6`` for Median-5) and ``window - 1``
    multiplexers per window.  ``tests/test_median.py`` checks these against the synthesised
    netlist.
    """
    n = lanes
    _check_lanes(n)
    _check_window(window)
    _check_variant(variant)
    if variant == "plain":
        comparators, muxes = {3: (3, 4), 5: (7, 10)}[window]
        return {"comparators": comparators * n, "muxes": muxes * n}
    span = n + window - 1
    pairs = sum(span - d for d in range(1, window))
    return {"comparators": pairs, "muxes": (window - 1) * n}


# -- building blocks shared by the units (each comparator becomes one named signal) -----------

def _less(m: Module, a, b, name: str) -> Signal:
    """One comparator: ``a < b``, signed."""
    lt = Signal(name=name)
    m.d.comb += lt.eq(a < b)
    return lt


def _sort2(m: Module, a, b, name: str, keep: tuple[str, ...] = ("lo", "hi")):
    """A Sort-2 (Fig. 8.10-a): one comparator, one multiplexer per output kept.

    ``keep`` prunes the multiplexer of an output that nobody reads (Figs. 8.10-b/c).
    Returns ``(lo, hi)``; a pruned output is ``None``.
    """
    b_lt_a = _less(m, b, a, f"{name}_lt")
    lo = hi = None
    # Named signals, so that each multiplexer appears once in the Verilog however often its
    # output is read.
    if "lo" in keep:
        lo = Signal.like(a, name=f"{name}_lo")
        m.d.comb += lo.eq(Mux(b_lt_a, b, a))
    if "hi" in keep:
        hi = Signal.like(a, name=f"{name}_hi")
        m.d.comb += hi.eq(Mux(b_lt_a, a, b))
    return lo, hi


def _median3(m: Module, a, b, c, name: str):
    """Fig. 8.10-b: the median of three from three comparators and four multiplexers.

    Sort (a, b), then max(a,b) against c, then the median is max(min(a, b), min(max(a, b), c)).
    """
    lo1, hi1 = _sort2(m, a, b, f"{name}_s0")
    lo2, _ = _sort2(m, hi1, c, f"{name}_s1", keep=("lo",))
    _, med = _sort2(m, lo1, lo2, f"{name}_s2", keep=("hi",))
    return med


class Sort2(wiring.Component):
    """Sort-2 (Ozen 2023 Fig. 8.10-a): one signed comparator and two multiplexers.

    Combinational (latency 0).

    Parameters
    ----------
    width : int
        Data width in bits, 2 … 32 (signed, two's complement).

    Ports
    -----
    a, b : In(signed(width))
    lo, hi : Out(signed(width))
        ``min(a, b)`` and ``max(a, b)``.
    """

    def __init__(self, *, width: int = 8):
        _check_width(width)
        self._width = width
        super().__init__({
            "a": In(signed(width)), "b": In(signed(width)),
            "lo": Out(signed(width)), "hi": Out(signed(width)),
        })

    @property
    def width(self) -> int:
        """The word width in bits."""
        return self._width

    def elaborate(self, platform):
        """The unit's netlist."""
        m = Module()
        lo, hi = _sort2(m, self.a, self.b, "cmp")
        m.d.comb += [self.lo.eq(lo), self.hi.eq(hi)]
        return m


class _MedianUnit(wiring.Component):
    """Common ports of a median unit: ``x`` (window inputs) and ``median``."""

    _WINDOW = 0

    def __init__(self, *, width: int = 8):
        _check_width(width)
        self._width = width
        super().__init__({
            "x": In(signed(width)).array(self._WINDOW),
            "median": Out(signed(width)),
        })

    @property
    def width(self) -> int:
        return self._width


class Median3(_MedianUnit):
    """Median-3 (Ozen 2023 Fig. 8.10-b): three Sort-2, the two unused multiplexers pruned.

    Combinational (latency 0); 3 comparators and 4 multiplexers.

    Parameters
    ----------
    width : int
        Data width in bits, 2 … 32 (signed).

    Ports
    -----
    x : In(signed(width)).array(3)
    median : Out(signed(width))
    """

    _WINDOW = 3

    def elaborate(self, platform):
        """The unit's netlist."""
        m = Module()
        m.d.comb += self.median.eq(_median3(m, *self.x, "m3"))
        return m


class Median5(_MedianUnit):
    """Median-5 (Ozen 2023 Fig. 8.10-c).

    Four Sort-2 drop the extremes of a 4-element subset, a Median-3 finds the median of the
    remaining three; unused multiplexers pruned.

    The minimum and the maximum of any four of the five inputs cannot be the median of all
    five (Ozen 2023 §8.6.2), so removing both leaves the median unchanged.  The 4-element subset is
    the window without its centre, paired symmetrically as ``(x0, x4)`` and ``(x1, x3)``: the
    first-level comparisons then span distances 4 and 2, so in a plain array no two windows
    contain the same first-level Sort-2 (pairing ``(x0, x1)``, ``(x2, x3)`` would let a
    synthesiser merge window ``i``'s second pair with window ``i+2``'s first, which is sharing,
    not the plain design).  Combinational (latency 0); 7 comparators, 10 multiplexers.

    Parameters
    ----------
    width : int
        Data width in bits, 2 … 32 (signed).

    Ports
    -----
    x : In(signed(width)).array(5)
    median : Out(signed(width))
    """

    _WINDOW = 5

    def elaborate(self, platform):
        """The unit's netlist."""
        m = Module()
        x = self.x
        lo_a, hi_a = _sort2(m, x[0], x[4], "s0")
        lo_b, hi_b = _sort2(m, x[1], x[3], "s1")
        # The smaller of the two minima is the subset's minimum: keep only the larger one.
        _, lo = _sort2(m, lo_a, lo_b, "s2", keep=("hi",))
        # Likewise the larger of the two maxima is the subset's maximum.
        hi, _ = _sort2(m, hi_a, hi_b, "s3", keep=("lo",))
        m.submodules.m3 = m3 = Median3(width=self._width)
        m.d.comb += [m3.x[0].eq(lo), m3.x[1].eq(x[2]), m3.x[2].eq(hi)]
        m.d.comb += self.median.eq(m3.median)
        return m


class SlidingMedian(LaneParameters, wiring.Component):
    """Combinational core of the median array.

    ``lanes`` windows of ``window`` over ``lanes + window - 1`` inputs, stride 1, no padding (the
    padding is wiring, added by :class:`MedianArray`).

    Output ``y[i] = median(x[i] … x[i + window - 1])``.  ``variant="plain"`` instantiates one
    :class:`Median3` / :class:`Median5` per window (Ozen 2023 Fig. 8.11); ``variant="shared"`` is
    the comparator-sharing construction of Fig. 8.12 described in the module docstring. Comparator
    and multiplexer counts: :func:`expected_counts`.  Combinational (latency 0).

    Parameters
    ----------
    width : int
        Data width in bits, 2 … 32 (signed).
    lanes : int
        Number of windows (outputs), 1 … 256.
    window : int
        3 or 5.
    variant : str
        ``"plain"`` or ``"shared"``.

    Attributes
    ----------
    x : In(signed(width)).array(lanes + window - 1)
    y : Out(signed(width)).array(lanes)
    """

    def __init__(self, *, width: int = 8, lanes: int = 8, window: int = 3,
                 variant: str = "plain"):
        _check_array(width, lanes, window, variant)
        self._width, self._lanes, self._window, self._variant = width, lanes, window, variant
        super().__init__({
            "x": In(signed(width)).array(lanes + window - 1),
            "y": Out(signed(width)).array(lanes),
        })

    @property
    def window(self) -> int:
        """The median window, 3 or 5."""
        return self._window

    @property
    def variant(self) -> str:
        """The median unit variant, ``plain`` or ``shared``."""
        return self._variant

    def elaborate(self, platform):
        """The core's netlist."""
        m = Module()
        w = self._window
        if self._variant == "plain":
            unit = Median3 if w == 3 else Median5
            for i in range(self._lanes):
                med = unit(width=self._width)
                m.submodules[f"median{i}"] = med
                m.d.comb += [med.x[k].eq(self.x[i + k]) for k in range(w)]
                m.d.comb += self.y[i].eq(med.median)
            return m

        x = self.x
        span = len(x)
        # One comparator per pair of positions that share a window: c[k, j] = x[j] < x[k].
        c = {}
        for j in range(span):
            for k in range(max(0, j - w + 1), j):
                c[k, j] = _less(m, x[j], x[k], f"lt_{k}_{j}")

        def precedes(k: int, j: int):
            """Whether position k comes before position j in the (value, position) order."""
            return ~c[k, j] if k < j else c[j, k]

        h = w // 2
        for i in range(self._lanes):
            members = range(i, i + w)
            centre = i + h
            out = x[centre]  # the default: selected when no other element is the median
            for j in members:
                if j == centre:
                    continue
                before = [precedes(k, j) for k in members if k != j]
                is_med = Signal(name=f"med_{i}_is_{j - i}")
                m.d.comb += is_med.eq(_exactly(before, h))
                out = Mux(is_med, x[j], out)
            m.d.comb += self.y[i].eq(out)
        return m


def _exactly(bits: list, count: int):
    """True when exactly ``count`` of ``bits`` are set, as AND/OR/XOR logic (no adder).

    So the netlist's multiplexers and comparators are only those of the median datapath.
    """
    if len(bits) == 2 and count == 1:
        return bits[0] ^ bits[1]
    if len(bits) == 4 and count == 2:
        parity = bits[0] ^ bits[1] ^ bits[2] ^ bits[3]
        any_set = bits[0] | bits[1] | bits[2] | bits[3]
        all_set = bits[0] & bits[1] & bits[2] & bits[3]
        # Even parity leaves 0, 2 or 4 set bits; rule out 0 and 4.
        return ~parity & any_set & ~all_set
    raise AssertionError(f"no rule for exactly {count} of {len(bits)}")


class MedianControlSignature(wiring.Signature):
    """The run-time control of the median filter, as the host drives it.

    Members
    -------
    enable : Out(1)
        1: filter; 0: pass the vector through (still one cycle).
    """

    def __init__(self):
        super().__init__({"enable": Out(1)})

    def __eq__(self, other) -> bool:
        """Equal to any other median control signature."""
        return isinstance(other, MedianControlSignature)

    def __hash__(self) -> int:
        """The hash of the signature."""
        return hash(MedianControlSignature)


class MedianArray(LaneParameters, wiring.Component):
    """Median feature selection stage before the systolic array's input skew (Ozen 2023 Fig. 8.11).

    Each cycle it takes one array-width vector ``i.data`` and registers
    ``o.data[i] = median(p[i] … p[i + window - 1])``, where ``p`` is ``i.data`` with
    ``window // 2`` zeros appended at both ends (Eq. 8.3, stride 1).  With ``ctl.enable`` low
    the vector passes unfiltered through the same register, so the host can switch filtering
    per layer at run time without changing the timing.

    Latency one cycle, throughput one vector per cycle.  The data register loads every cycle
    (it is a plain pipeline stage: no load-enable logic); ``o.valid`` is ``i.valid`` delayed
    by one cycle and is the only thing that says whether ``o.data`` is meaningful.  Reset
    clears ``o.data`` and ``o.valid``.

    Parameters
    ----------
    width : int
        Data width in bits, 2 … 32 (signed, two's complement).
    lanes : int
        Array width (lanes), 1 … 256.
    window : int
        Median window, 3 or 5.
    variant : str
        ``"plain"`` (one unit per window) or ``"shared"`` (comparator sharing, Fig. 8.12).

    Attributes
    ----------
    i : In(VectorSignature(width, lanes))
    ctl : In(MedianControlSignature())
    o : Out(VectorSignature(width, lanes))
        Registered.
    """

    def __init__(self, *, width: int = 8, lanes: int = 8, window: int = 3,
                 variant: str = "plain"):
        _check_array(width, lanes, window, variant)
        self._width, self._lanes, self._window, self._variant = width, lanes, window, variant
        super().__init__({
            "i": In(VectorSignature(width, lanes)),
            "ctl": In(MedianControlSignature()),
            "o": Out(VectorSignature(width, lanes)),
        })

    @property
    def window(self) -> int:
        """Median window, 3 or 5."""
        return self._window

    @property
    def variant(self) -> str:
        """``"plain"`` or ``"shared"``."""
        return self._variant

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "median_array", "width": self._width, "lanes": self._lanes,
                "window": self._window, "variant": self._variant}

    def elaborate(self, platform):
        """The stage's netlist."""
        m = Module()
        m.submodules.core = core = SlidingMedian(
            width=self._width, lanes=self._lanes, window=self._window, variant=self._variant)
        h = self._window // 2
        for k in range(len(core.x)):
            i = k - h
            # Zero padding (Eq. 8.3): positions outside the vector are constant zeros.
            m.d.comb += core.x[k].eq(self.i.data[i] if 0 <= i < self._lanes else 0)
        for i in range(self._lanes):
            m.d.sync += self.o.data[i].eq(Mux(self.ctl.enable, core.y[i], self.i.data[i]))
        m.d.sync += self.o.valid.eq(self.i.valid)
        return m


# -- stand-alone emission (the median testbench and the equivalence proofs) --------------------

def median_array_name(width: int, lanes: int, window: int, variant: str) -> str:
    """Verilog module name of a ``MedianArray``."""
    return f"median_array_w{window}_{variant}_{width}b_n{lanes}"


def emit_median_array(*, width: int, lanes: int, window: int, variant: str,
                      out_dir: Path) -> tuple[Path, str]:
    """Write ``MedianArray`` Verilog under ``out_dir``; return ``(path, module name)``."""
    dut = MedianArray(width=width, lanes=lanes, window=window, variant=variant)
    name = median_array_name(width, lanes, window, variant)
    path = write_verilog(dut, name, dut.config(), Path(out_dir) / f"{name}.v")
    return path, name


def emit_median_core(*, width: int, lanes: int, window: int, variant: str,
                     out_dir: Path) -> tuple[Path, str]:
    """Write the combinational ``SlidingMedian`` core; return ``(path, module name)``."""
    dut = SlidingMedian(width=width, lanes=lanes, window=window, variant=variant)
    name = f"sliding_median_w{window}_{variant}_{width}b_n{lanes}"
    config = {"unit": "sliding_median", "width": width, "lanes": lanes, "window": window,
              "variant": variant}
    path = write_verilog(dut, name, config, Path(out_dir) / f"{name}.v")
    return path, name


def emit_median_unit(*, width: int, window: int, out_dir: Path) -> tuple[Path, str]:
    """Write a ``Median3`` or ``Median5`` unit; return ``(path, module name)``."""
    unit = {3: Median3, 5: Median5}[window](width=width)
    name = f"median{window}_{width}b"
    path = write_verilog(unit, name, {"unit": f"median{window}", "width": width},
                         Path(out_dir) / f"{name}.v")
    return path, name


# -- the median in time: IS and OS (a lane's features arrive one per cycle) --------------------

def _window_masks(m: Module, first: list, last: list, window: int) -> list:
    """Per tap of a time window, whether it belongs to the centre tap's chunk.

    Tap 0 is the newest feature, tap ``window − 1`` the oldest, the centre tap ``window // 2``.
    Two neighbouring taps are in different chunks when the older one is its chunk's last or the
    newer one its chunk's first (a chunk cut short has no ``last``: the next ``first`` ends it);
    a tap is in the centre's chunk when no such break lies between them.
    """
    h = window // 2
    brk = []
    for g in range(window - 1):  # the break between tap g and tap g + 1 (older)
        b = Signal(name=f"brk{g}")
        m.d.comb += b.eq(last[g + 1] | first[g])
        brk.append(b)
    valid = []
    for k in range(window):
        gaps = range(k, h) if k < h else range(h, k)
        ok = Signal(name=f"in_chunk{k}")
        m.d.comb += ok.eq(~Cat(*(brk[g] for g in gaps)).any() if gaps else 1)
        valid.append(ok)
    return valid


class WindowedMedianLane(wiring.Component):
    """One lane of :class:`WindowedMedian`: Median-3 / Median-5 over features arriving in time.

    Each cycle one feature ``x`` enters a shift register of ``window − 1`` taps; the window
    centred on the feature that arrived ``window // 2`` cycles ago is filtered, its taps outside
    the centre's chunk replaced by zeros (Eq. 8.3's padding of each chunk, Ozen 2023 §8.7.2, told by
    ``first`` / ``last``: :class:`rtl_gen.vector.WindowSignature`), and the median registered.

    ``"plain"``: the masked window into one :class:`Median3` / :class:`Median5` (3 / 7
    comparators).  ``"shared"``: Fig. 8.12 in time, the "regular, pipelined" form of Ozen 2023
    §8.6.2: the newest feature is compared with each older tap (``window − 1`` comparators: 2 for
    Median-3, 4 for Median-5), every other pair of the window was compared when its newer member
    arrived and its bit is kept in a one-bit shift register (``(window − 1)(window − 2) / 2``
    flip-flops); a tap outside the chunk compares as zero through its sign bit and a zero test, and
    the median is routed by ``window − 1`` multiplexers from one-hot "is the median" flags, as in
    :class:`SlidingMedian`.  The two are proven equal by :func:`synth.equiv.prove_windowed_median`.

    Latency **window // 2 + 1** cycles (2 for Median-3, 3 for Median-5); one feature per cycle.
    Flip-flops: ``window − 1`` taps and the output (``width`` bits), ``2·window − 1`` flag bits.

    Ports: ``x`` (signed width), ``first``, ``last``, ``enable`` (0: the centre passes
    unfiltered) in; ``y``, ``y_first``, ``y_last`` (the centre's flags) out, registered.
    """

    def __init__(self, *, width: int = 8, window: int = 3, variant: str = "plain"):
        _check_width(width)
        _check_window(window)
        _check_variant(variant)
        self._width, self._window, self._variant = width, window, variant
        super().__init__({"x": In(signed(width)), "first": In(1), "last": In(1),
                          "enable": In(1), "y": Out(signed(width)), "y_first": Out(1),
                          "y_last": Out(1)})

    @property
    def latency(self) -> int:
        """Cycles from a feature to its filtered value."""
        return self._window // 2 + 1

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "windowed_median_lane", "width": self._width, "window": self._window,
                "variant": self._variant}

    def elaborate(self, platform):
        """The lane's netlist."""
        m = Module()
        w, h = self._window, self._window // 2
        v, f, last = [self.x], [self.first], [self.last]
        for k in range(1, w):
            v.append(Signal(signed(self._width), name=f"tap{k}"))
            f.append(Signal(name=f"first{k}"))
            last.append(Signal(name=f"last{k}"))
            m.d.sync += [v[k].eq(v[k - 1]), f[k].eq(f[k - 1]), last[k].eq(last[k - 1])]
        valid = _window_masks(m, f, last, w)
        u = []
        for k in range(w):
            uk = Signal(signed(self._width), name=f"masked{k}")
            m.d.comb += uk.eq(Mux(valid[k], v[k], 0))
            u.append(uk)
        if self._variant == "plain":
            m.submodules.unit = unit = (Median3 if w == 3 else Median5)(width=self._width)
            m.d.comb += [unit.x[i].eq(u[w - 1 - i]) for i in range(w)]  # oldest first
            med = unit.median
        else:
            med = self._shared(m, v, u, valid)
        m.d.sync += [self.y.eq(Mux(self.enable, med, v[h])), self.y_first.eq(f[h]),
                     self.y_last.eq(last[h])]
        return m

    def _shared(self, m: Module, v: list, u: list, valid: list):
        w, h = self._window, self._window // 2
        # c[a, b] (a newer than b): v[a] < v[b], compared when a was the newest feature.
        c = {}
        for d in range(1, w):
            c[0, d] = _less(m, v[0], v[d], f"lt_0_{d}")
            for i in range(1, w - d):
                c[i, i + d] = Signal(name=f"lt_{i}_{i + d}")
        m.d.sync += [c[i, i + d].eq(c[i - 1, i - 1 + d])
                     for d in range(1, w) for i in range(1, w - d)]
        neg = [v[k][-1] for k in range(w)]
        pos = [~v[k][-1] & v[k].any() for k in range(w)]

        def lt(a: int, b: int):
            """u[a] < u[b] for a newer than b: a tap outside the chunk is a zero."""
            bit = Signal(name=f"mlt_{a}_{b}")
            m.d.comb += bit.eq((valid[a] & valid[b] & c[a, b]) | (valid[a] & ~valid[b] & neg[a])
                               | (~valid[a] & valid[b] & pos[b]))
            return bit

        lts = {(a, b): lt(a, b) for a in range(w) for b in range(a + 1, w)}

        def precedes(k: int, j: int):
            # (value, older first) is a strict total order: a newer tap precedes an older one
            # only when it is smaller.
            return lts[k, j] if k < j else ~lts[j, k]

        out = u[h]
        for j in range(w):
            if j == h:
                continue
            is_med = Signal(name=f"is_med{j}")
            m.d.comb += is_med.eq(_exactly([precedes(k, j) for k in range(w) if k != j], h))
            out = Mux(is_med, u[j], out)
        return out


class WindowedMedian(wiring.Component):
    """Median feature selection on IS and OS: one :class:`WindowedMedianLane` per lane.

    Where a cycle's vector does not hold neighbouring features of one input, the window is
    built in time (per-lane delay lines over the features as they arrive): OS filters the
    streamed activations (R lanes, K over cycles), IS the stationary activations as each
    column loads them (C lanes).  Each chunk of R features is padded and filtered on its own,
    exactly as the WS :class:`MedianArray` filters one streamed vector, so one model
    (:func:`golden.units.units_matrix`) gives the same result on every dataflow.

    Latency **window // 2 + 1** cycles (the feature ``window // 2`` positions later must have
    arrived); throughput one feature per lane and cycle; the flags travel with the features.

    Parameters
    ----------
    width, lanes, window, variant
        As for :class:`MedianArray`.

    Attributes
    ----------
    i : In(WindowSignature(width, lanes))
    ctl : In(MedianControlSignature())
    o : Out(WindowSignature(width, lanes))
        Registered.
    """

    def __init__(self, *, width: int = 8, lanes: int = 8, window: int = 3,
                 variant: str = "plain"):
        _check_array(width, lanes, window, variant)
        self._width, self._lanes, self._window, self._variant = width, lanes, window, variant
        super().__init__({"i": In(WindowSignature(width, lanes)),
                          "ctl": In(MedianControlSignature()),
                          "o": Out(WindowSignature(width, lanes))})

    @property
    def latency(self) -> int:
        """Cycles from a feature to its filtered value: ``window // 2 + 1``."""
        return self._window // 2 + 1

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "windowed_median", "width": self._width, "lanes": self._lanes,
                "window": self._window, "variant": self._variant}

    def elaborate(self, platform):
        """One lane unit per lane."""
        m = Module()
        for c in range(self._lanes):
            m.submodules[f"lane{c}"] = lane = WindowedMedianLane(
                width=self._width, window=self._window, variant=self._variant)
            m.d.comb += [lane.x.eq(self.i.data[c]), lane.first.eq(self.i.first[c]),
                         lane.last.eq(self.i.last[c]), lane.enable.eq(self.ctl.enable),
                         self.o.data[c].eq(lane.y), self.o.first[c].eq(lane.y_first),
                         self.o.last[c].eq(lane.y_last)]
        return m


def emit_windowed_median_lane(*, width: int, window: int, variant: str,
                              out_dir: Path) -> tuple[Path, str]:
    """Write a :class:`WindowedMedianLane`; return ``(path, module name)``."""
    dut = WindowedMedianLane(width=width, window=window, variant=variant)
    name = f"windowed_median{window}_{variant}_{width}b"
    path = write_verilog(dut, name, dut.config(), Path(out_dir) / f"{name}.v")
    return path, name
