"""The streamed vector that passes through the input units in front of the array.

Every input unit of the WS top (anomaly suppression :mod:`rtl_gen.afd`, median filter
:mod:`rtl_gen.median`, the temporal checksum's sanity-input generator
:mod:`rtl_gen.checksum`) is a *vector stage*: it takes one vector per cycle on
``i: In(VectorSignature(width, lanes))`` and gives it, one register later, on
``o: Out(VectorSignature(width, lanes))``.  The top chains the configured stages with
:func:`amaranth.lib.wiring.connect` (``o`` of one into ``i`` of the next), so a new input unit
only has to expose this pair.  In Verilog the members are ``i__data__0`` … ``i__valid`` and
``o__data__0`` … ``o__valid``; the golden models and testbenches use the same names.
"""

from __future__ import annotations

from amaranth import C, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ChunkPosition", "LaneParameters", "VectorSignature", "WindowSignature"]


class LaneParameters:
    """``width`` and ``lanes`` of anything built on a vector of lanes (``_width``, ``_lanes``).

    The vector signatures and the units that stream them (input units, checkers) share it.
    """

    _width: int
    _lanes: int

    @property
    def width(self) -> int:
        """Lane width in bits."""
        return self._width

    @property
    def lanes(self) -> int:
        """Number of lanes."""
        return self._lanes


class _LaneSignature(LaneParameters, wiring.Signature):
    """A signature of ``lanes`` signed lanes of ``width`` bits: parameters, equality, repr."""

    def __init__(self, width: int, lanes: int, members: dict):
        self._width, self._lanes = width, lanes
        super().__init__(members)

    def __eq__(self, other) -> bool:
        """Equal for the same kind, width and lanes."""
        return (type(other) is type(self) and self._width == other._width
                and self._lanes == other._lanes)

    def __hash__(self) -> int:
        """The hash of the signature's kind and parameters."""
        return hash((type(self), self._width, self._lanes))

    def __repr__(self) -> str:
        """``Kind(width, lanes)``."""
        return f"{type(self).__name__}({self._width}, {self._lanes})"


class VectorSignature(_LaneSignature):
    """One vector of ``lanes`` signed ``width``-bit lanes and its valid flag, per cycle.

    Parameters
    ----------
    width : int
        Lane width in bits.
    lanes : int
        Number of lanes (the array's streamed inputs, R).

    Members
    -------
    data : Out(signed(width)).array(lanes)
        The vector.
    valid : Out(1)
        ``data`` holds a vector; a stage delays it with the data (there is no back-pressure:
        every stage loads every cycle).
    """

    def __init__(self, width: int, lanes: int):
        super().__init__(width, lanes, {"data": Out(signed(width)).array(lanes),
                                        "valid": Out(1)})


class WindowSignature(_LaneSignature):
    """A windowed input unit's stream (IS / OS): per lane, one feature per cycle and its place.

    On IS and OS a cycle's vector does not hold neighbouring features of one input: each lane
    carries one input's features one after the other (OS: the streamed activations, K over
    cycles; IS: the stationary activations of one array column as they are loaded).  The
    features of one lane come in *chunks* of R (the array's rows, the R-lane chunks of a row
    of A that WS streams in one vector, :func:`golden.units.units_matrix`); ``first`` and
    ``last`` say where an element sits in its chunk, so that a windowed unit pads and wraps
    each chunk on its own.

    Parameters
    ----------
    width : int
        Lane width in bits.
    lanes : int
        Number of lanes (OS: R rows; IS: C columns).

    Members
    -------
    data : Out(signed(width)).array(lanes)
        One feature per lane.
    first : Out(1).array(lanes)
        The feature is the first of its chunk (position 0 in arrival order).
    last : Out(1).array(lanes)
        The feature is the R-th of its chunk (position R − 1).  A chunk cut short (OS: the
        last chunk of a K that is not a multiple of R) has no ``last``: the next chunk's
        ``first`` ends it, and its missing positions count as zeros.
    """

    def __init__(self, width: int, lanes: int):
        super().__init__(width, lanes, {"data": Out(signed(width)).array(lanes),
                                        "first": Out(1).array(lanes),
                                        "last": Out(1).array(lanes)})


class ChunkPosition(wiring.Component):
    """Where each lane's feature sits in its chunk of ``chunk`` (R): the ``first``/``last`` flags.

    Combinational flags from one position counter per lane (``ceil(log2 R)`` flip-flops):

    ``"start"`` (OS)
        All lanes share one counter.  ``start`` marks position 0 (the first step of a
        product tile, the top's ``in_first``); every cycle advances the position, wrapping
        at R, so a tile's K steps fall into chunks of R from its first step.
    ``"load"`` (IS)
        Lane c advances only in the cycles its ``step[c]`` is set (the column's load cycles),
        wrapping at R: a tile load is exactly one chunk.

    Attributes
    ----------
    start : In(1)
        ``"start"`` mode: this cycle is position 0.
    step : In(1).array(lanes)
        ``"load"`` mode: lane c's feature this cycle is part of a chunk.
    first, last : Out(1).array(lanes)
        Position 0 / position R − 1 (``"load"``: only in a ``step`` cycle).

    Latency 0 (the flags describe this cycle's features).
    """

    MODES = ("start", "load")

    def __init__(self, *, lanes: int, chunk: int, mode: str):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, not {mode!r}")
        self._lanes, self._chunk, self._mode = lanes, chunk, mode
        super().__init__({"start": In(1), "step": In(1).array(lanes),
                          "first": Out(1).array(lanes), "last": Out(1).array(lanes)})

    def elaborate(self, platform):
        """One counter (``start``) or one per lane (``load``)."""
        m = Module()
        R = self._chunk
        counters = 1 if self._mode == "start" else self._lanes
        for i in range(counters):
            count = Signal(range(max(R, 2)), name=f"pos{i}")
            if self._mode == "start":
                pos = Mux(self.start, 0, count)
                go = C(1, 1)
                lanes = range(self._lanes)
            else:
                pos = count
                go = self.step[i]
                lanes = (i,)
            with m.If(go):
                m.d.sync += count.eq(Mux(pos == R - 1, 0, pos + 1))
            for c in lanes:
                m.d.comb += [self.first[c].eq(go & (pos == 0)),
                             self.last[c].eq(go & (pos == R - 1))]
        return m
