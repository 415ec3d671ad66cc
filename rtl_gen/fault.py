"""RTL fault hooks: run-time controlled saboteurs on PE registers (README, Fault campaigns).

A *saboteur* sits on the output of a register: while it is enabled, the value the rest of the
circuit reads is the stored value with one bit forced to 0 (stuck-at-0), forced to 1
(stuck-at-1) or inverted (bit flip).  Stuck-at faults are permanent: enabled on every cycle.
A flip is transient: enabled only in the one cycle whose number (counted by
:class:`FaultController` from reset, cycle 0 being the first after reset) equals the ``cycle``
control.  Registers that hold their value (the stationary operand) feed the sabotaged value
back into themselves, so a flip there persists until the register is reloaded, as a
flipped storage cell would; pipeline registers are overwritten every cycle, so a flip there
corrupts the one value that passes through it.

The hooks exist only when ``AcceleratorConfig.fault_hooks`` is set: with it off, no saboteur,
decoder or counter is generated, and the Verilog has no ``fault__*`` port (checked by a test).

Controls (:class:`FaultControlSignature`, the top's ``fault`` ports ``fault__enable`` …; held
constant by the testbench during a run; names and widths from
:data:`ftaccel.config.FAULT_CONTROLS`, the ``reg`` and ``mode`` encodings the order of
:class:`ftaccel.enums.FaultRegister` and :class:`ftaccel.enums.FaultMode`; a test holds this
table against them):

==========  =====  ===========================================================
member      width  meaning
==========  =====  ===========================================================
enable      1      1 arms the fault
row         8      PE row
col         8      PE column
reg         3      0 = weight register, 1 = activation register, 2 = partial sum,
                   3 = multiplier product, 4 = adder sum (MAC logic: combinational,
                   isolated by PE bypass), 5 = shadow register (the stationary
                   operand's load chain, double-buffered WS / IS only)
bit         6      bit index inside that register (0 = LSB)
mode        2      0 = stuck-at-0, 1 = stuck-at-1, 2 = flip at ``cycle``
cycle       32     cycle of the flip
==========  =====  ===========================================================
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.config import FAULT_CONTROLS, FAULT_MODES, FAULT_REGISTERS
from ftaccel.enums import FaultMode

__all__ = ["FaultController", "FaultControlSignature", "FaultSelectSignature", "sabotage",
           "MODE_SA0", "MODE_SA1", "MODE_FLIP", "BIT_WIDTH"]

MODE_SA0, MODE_SA1, MODE_FLIP = (FAULT_MODES.index(m) for m in FaultMode)
BIT_WIDTH = FAULT_CONTROLS["bit"]  # bit index: registers are at most 60 bits wide


class FaultControlSignature(wiring.Signature):
    """The fault hooks' run-time controls as the host drives them (the table above)."""

    def __init__(self):
        super().__init__({name: Out(unsigned(width)) for name, width in FAULT_CONTROLS.items()})

    def __eq__(self, other) -> bool:
        """Equal to any other fault control signature."""
        return isinstance(other, FaultControlSignature)

    def __hash__(self) -> int:
        """The hash of the signature."""
        return hash(FaultControlSignature)


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


class FaultSelectSignature(wiring.Signature):
    """The decoded fault selection the controller drives into the array.

    Parameters
    ----------
    rows, cols : int
        PE rows and built PE columns.

    Members
    -------
    row_hit, col_hit : Out(rows), Out(cols)
        One-hot: the selected row and column.
    reg_hit : Out(len(FAULT_REGISTERS))
        One-hot: the selected register, only while the fault is active.
    bit, mode : Out(6), Out(2)
        The bit and mode for the saboteurs.
    """

    def __init__(self, rows: int, cols: int):
        self._rows, self._cols = rows, cols
        super().__init__({"row_hit": Out(rows), "col_hit": Out(cols),
                          "reg_hit": Out(len(FAULT_REGISTERS)), "bit": Out(BIT_WIDTH),
                          "mode": Out(2)})

    def __eq__(self, other) -> bool:
        """Equal for the same rows and columns."""
        return (isinstance(other, FaultSelectSignature)
                and (self._rows, self._cols) == (other._rows, other._cols))

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((FaultSelectSignature, self._rows, self._cols))


class FaultController(wiring.Component):
    """Cycle counter and decoder that turn the fault controls into per-PE select lines.

    Outputs are one-hot row and column hits and a one-hot register hit that already includes
    the "active now" condition (armed, and for a flip, the right cycle); each PE ANDs its row
    hit, column hit and register hit.  Purely combinational except the 32-bit cycle counter.

    Parameters
    ----------
    rows, cols : int
        Array size (PE rows and built PE columns).

    Attributes
    ----------
    ctl : In(FaultControlSignature())
        The controls.
    sel : Out(FaultSelectSignature(rows, cols))
        The decoded selection, to :class:`rtl_gen.array.SystolicArray`'s ``fault`` port.
    """

    def __init__(self, *, rows: int, cols: int):
        self._rows, self._cols = rows, cols
        super().__init__({"ctl": In(FaultControlSignature()),
                          "sel": Out(FaultSelectSignature(rows, cols))})

    @property
    def rows(self) -> int:
        """PE rows."""
        return self._rows

    @property
    def cols(self) -> int:
        """PE columns built."""
        return self._cols

    def elaborate(self, platform):
        """The controller's netlist."""
        m = Module()
        cycle = Signal(32)
        m.d.sync += cycle.eq(cycle + 1)
        active = Signal()
        ctl, sel = self.ctl, self.sel
        m.d.comb += active.eq(ctl.enable & ((ctl.mode != MODE_FLIP) | (cycle == ctl.cycle)))
        for r in range(self._rows):
            m.d.comb += sel.row_hit[r].eq(ctl.row == r)
        for c in range(self._cols):
            m.d.comb += sel.col_hit[c].eq(ctl.col == c)
        for k in range(len(FAULT_REGISTERS)):
            m.d.comb += sel.reg_hit[k].eq(active & (ctl.reg == k))
        m.d.comb += [sel.bit.eq(ctl.bit), sel.mode.eq(ctl.mode)]
        return m
