"""PE bypass map: the run-time R×C register map that isolates faulty PEs (Ozen 2023 ch. 10).

The map is produced by testing (BIST, scan) and loaded at run time, not hard-wired
(Ozen 2023 §10.4).  It is written one row per cycle through the host port
(:class:`BypassSignature`; the top's ``bypass__we`` …) and can be read back the same way:

* ``host.we`` (1), ``host.row`` (row index), ``host.wdata`` (C bits): on a cycle with ``we``,
  row ``row`` of the map becomes ``wdata`` (bit c = bypass PE (row, c)).
* ``host.rdata`` (C bits): row ``row`` of the map as it was in the previous cycle (registered).
* ``map`` (R·C bits, bit ``r*C + c``): to the PEs of :class:`rtl_gen.array.SystolicArray`.

The bypass logic itself is in each PE (:mod:`rtl_gen.pe`): a partial-sum multiplexer in WS/IS
(Fig. 10.2-A) and AND gates on the pinned output in OS (Fig. 10.2-B).  A new map takes effect
in the cycle after it is written.  Reset clears the map (nothing bypassed).
"""

from __future__ import annotations

from amaranth import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.errors import check_int

__all__ = ["BypassMap", "BypassSignature"]


class BypassSignature(wiring.Signature):
    """The bypass map's host port, as the host sees it: write a row, read a row back.

    Parameters
    ----------
    rows, cols : int
        Map size (the data PEs, R × C).

    Members
    -------
    we : Out(1)
        Write ``wdata`` into row ``row`` this cycle.
    row : Out(range(max(rows, 2)))
        Row written and read.
    wdata : Out(cols)
        Bit c: bypass PE (row, c).
    rdata : In(cols)
        Row ``row`` of the map as it was in the previous cycle.
    """

    def __init__(self, rows: int, cols: int):
        self._rows, self._cols = rows, cols
        super().__init__({"we": Out(1), "row": Out(range(max(rows, 2))), "wdata": Out(cols),
                          "rdata": In(cols)})

    def __eq__(self, other) -> bool:
        """Equal for the same rows and columns."""
        return (isinstance(other, BypassSignature) and (self._rows, self._cols)
                == (other._rows, other._cols))

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((BypassSignature, self._rows, self._cols))


class BypassMap(wiring.Component):
    """R×C bypass register map with a row-wide write port and a registered read-back port.

    Parameters
    ----------
    rows, cols : int
        Map size, 1 … 256 each.

    Attributes
    ----------
    host : In(BypassSignature(rows, cols))
        Write and read-back port.
    map : Out(rows * cols)
        Bit ``r*C + c`` bypasses PE (r, c); a written row takes effect in the next cycle.
    """

    def __init__(self, *, rows: int, cols: int):
        check_int("rows", rows, 1, 256)
        check_int("cols", cols, 1, 256)
        self._rows, self._cols = rows, cols
        super().__init__({"host": In(BypassSignature(rows, cols)), "map": Out(rows * cols)})

    @property
    def rows(self) -> int:
        """Map rows (R)."""
        return self._rows

    @property
    def cols(self) -> int:
        """Map columns (C)."""
        return self._cols

    def elaborate(self, platform):
        """The map's netlist."""
        m = Module()
        host = self.host
        regs = Array(Signal(self._cols, name=f"map_row{r}") for r in range(self._rows))
        for r in range(self._rows):
            with m.If(host.we & (host.row == r)):
                m.d.sync += regs[r].eq(host.wdata)
            m.d.comb += self.map[r * self._cols:(r + 1) * self._cols].eq(regs[r])
        # Rows beyond R read as zero (Array indexing would otherwise alias the last row).
        with m.If(host.row < self._rows):
            m.d.sync += host.rdata.eq(regs[host.row])
        with m.Else():
            m.d.sync += host.rdata.eq(0)
        return m
