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

from amaranth import signed
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["VectorSignature"]


class VectorSignature(wiring.Signature):
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
        self._width, self._lanes = width, lanes
        super().__init__({"data": Out(signed(width)).array(lanes), "valid": Out(1)})

    @property
    def width(self) -> int:
        """Lane width in bits."""
        return self._width

    @property
    def lanes(self) -> int:
        """Number of lanes."""
        return self._lanes

    def __eq__(self, other) -> bool:
        """Equal for the same width and lanes."""
        return (isinstance(other, VectorSignature) and self._width == other._width
                and self._lanes == other._lanes)

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((VectorSignature, self._width, self._lanes))

    def __repr__(self) -> str:
        """``VectorSignature(width, lanes)``."""
        return f"VectorSignature({self._width}, {self._lanes})"
