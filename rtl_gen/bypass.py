"""PE bypass map: the run-time R×C register map that isolates faulty PEs (SPEC §6, 000 ch. 10).

The map is produced by testing (BIST, scan) and loaded at run time, not hard-wired
(000 L2411–L2415).  It is written one row per cycle through a configuration port and can be
read back the same way:

* ``we`` (1), ``row`` (row index), ``wdata`` (C bits): on a cycle with ``we``, row ``row`` of
  the map becomes ``wdata`` (bit c = bypass PE (row, c)).
* ``rdata`` (C bits): row ``row`` of the map as it was in the previous cycle (registered).
* ``map`` (R·C bits, bit ``r*C + c``): to the PEs of :class:`rtl_gen.array.SystolicArray`.

The bypass logic itself is in each PE (:mod:`rtl_gen.pe`): a partial-sum multiplexer in WS/IS
(Fig. 10.2-A) and AND gates on the pinned output in OS (Fig. 10.2-B).  A new map takes effect
in the cycle after it is written.  Reset clears the map (nothing bypassed).
"""

from __future__ import annotations

from amaranth import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError, is_int

__all__ = ["BypassMap"]


class BypassMap(wiring.Component):
    """R×C bypass register map with a row-wide write port and a registered read-back port."""

    def __init__(self, *, rows: int, cols: int):
        for name, v in (("rows", rows), ("cols", cols)):
            if not is_int(v) or not 1 <= v <= 256:
                raise ConfigError(name, v, "an integer from 1 to 256")
        self._rows, self._cols = rows, cols
        super().__init__({
            "we": In(1), "row": In(range(max(rows, 2))), "wdata": In(cols),
            "rdata": Out(cols), "map": Out(rows * cols),
        })

    rows = property(lambda self: self._rows)
    cols = property(lambda self: self._cols)

    def elaborate(self, platform):
        m = Module()
        regs = Array(Signal(self._cols, name=f"map_row{r}") for r in range(self._rows))
        for r in range(self._rows):
            with m.If(self.we & (self.row == r)):
                m.d.sync += regs[r].eq(self.wdata)
            m.d.comb += self.map[r * self._cols:(r + 1) * self._cols].eq(regs[r])
        # Rows beyond R read as zero (Array indexing would otherwise alias the last row).
        with m.If(self.row < self._rows):
            m.d.sync += self.rdata.eq(regs[self.row])
        with m.Else():
            m.d.sync += self.rdata.eq(0)
        return m
