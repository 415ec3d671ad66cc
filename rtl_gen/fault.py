"""RTL fault hooks: run-time controlled saboteurs on PE registers (SPEC §7).

A *saboteur* sits on the output of a register: while it is enabled, the value the rest of the
circuit reads is the stored value with one bit forced to 0 (stuck-at-0), forced to 1
(stuck-at-1) or inverted (bit flip).  Stuck-at faults are permanent: enabled on every cycle.
A flip is transient: enabled only in the one cycle whose number (counted by
:class:`FaultController` from reset, cycle 0 being the first after reset) equals
``fault_cycle``.  Registers that hold their value (the stationary operand) feed the sabotaged
value back into themselves, so a flip there persists until the register is reloaded, as a
flipped storage cell would; pipeline registers are overwritten every cycle, so a flip there
corrupts the one value that passes through it.

The hooks exist only when ``AcceleratorConfig.fault_hooks`` is set: with it off, no saboteur,
decoder or counter is generated, and the Verilog has no ``fault_*`` port (checked by a test).

Control ports of the accelerator top (held constant by the testbench during a run):

==============  =====  ===========================================================
port            width  meaning
==============  =====  ===========================================================
fault_enable    1      1 arms the fault
fault_row       8      PE row
fault_col       8      PE column
fault_reg       2      0 = weight register, 1 = activation register, 2 = partial sum
fault_bit       6      bit index inside that register (0 = LSB)
fault_mode      2      0 = stuck-at-0, 1 = stuck-at-1, 2 = flip at ``fault_cycle``
fault_cycle     32     cycle of the flip
==============  =====  ===========================================================
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import FAULT_CONTROLS, FAULT_MODES, FAULT_REGISTERS

__all__ = ["FaultController", "sabotage", "FAULT_CONTROL_PORTS", "MODE_SA0", "MODE_SA1",
           "MODE_FLIP", "BIT_WIDTH"]

MODE_SA0, MODE_SA1, MODE_FLIP = (FAULT_MODES.index(m) for m in ("sa0", "sa1", "flip"))
BIT_WIDTH = FAULT_CONTROLS["bit"]  # bit index: registers are at most 60 bits wide
#: Top-level control ports and their widths, in the order of the table above.
FAULT_CONTROL_PORTS = {f"fault_{name}": width for name, width in FAULT_CONTROLS.items()}


def sabotage(m: Module, value, enable, bit, mode, name: str):
    """Return a signal equal to ``value`` with the selected fault applied while ``enable``.

    Works on the raw bits (``as_unsigned``) so that a signed register's sign bit is an ordinary
    bit; the result has the shape of ``value``.
    """
    width = len(value)
    raw = value.as_unsigned()
    mask = Signal(width, name=f"{name}_mask")
    m.d.comb += mask.eq(Const(1, 1) << bit)
    faulty = Mux(mode == MODE_SA0, raw & ~mask, Mux(mode == MODE_SA1, raw | mask, raw ^ mask))
    out = Signal(value.shape(), name=f"{name}_q")
    m.d.comb += out.eq(Mux(enable, faulty, raw))
    return out


class FaultController(wiring.Component):
    """Cycle counter and decoder that turn the ``fault_*`` ports into per-PE select lines.

    Outputs are one-hot row and column hits and a one-hot register hit that already includes
    the "active now" condition (armed, and for a flip, the right cycle); each PE ANDs its row
    hit, column hit and register hit.  Purely combinational except the 32-bit cycle counter.

    Parameters
    ----------
    rows, cols : int
        Array size.
    """

    def __init__(self, *, rows: int, cols: int):
        self._rows, self._cols = rows, cols
        members = {name: In(unsigned(w)) for name, w in FAULT_CONTROL_PORTS.items()}
        members.update({
            "row_hit": Out(rows), "col_hit": Out(cols),
            "reg_hit": Out(len(FAULT_REGISTERS)),
            "bit": Out(BIT_WIDTH), "mode": Out(2),
        })
        super().__init__(members)

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    def elaborate(self, platform):
        m = Module()
        cycle = Signal(32)
        m.d.sync += cycle.eq(cycle + 1)
        active = Signal()
        m.d.comb += active.eq(self.fault_enable & (
            (self.fault_mode != MODE_FLIP) | (cycle == self.fault_cycle)))
        for r in range(self._rows):
            m.d.comb += self.row_hit[r].eq(self.fault_row == r)
        for c in range(self._cols):
            m.d.comb += self.col_hit[c].eq(self.fault_col == c)
        for k in range(len(FAULT_REGISTERS)):
            m.d.comb += self.reg_hit[k].eq(active & (self.fault_reg == k))
        m.d.comb += [self.bit.eq(self.fault_bit), self.mode.eq(self.fault_mode)]
        return m
