"""Output stage: bias, ReLU and requantisation of the accumulator vector (SPEC §0, §10).

The correction units of SPEC §5 work on requantised activations, so the accelerator ends in
the usual integer-inference epilogue, applied element-wise to each output vector:

.. code-block:: text

    y = acc + bias[c]                      (acc_width + 1 bits: cannot overflow)
    y = max(y, 0)           if relu
    q = (y + 2**(shift-1)) >> shift        if shift > 0  (round half up, arithmetic shift)
    q = clamp(q, -2**(a_width-1), 2**(a_width-1) - 1)

``bias`` (per column), ``relu`` and ``shift`` are run-time ports, held constant during a
product.  Latency: **1 cycle** (one register stage holding both the raw accumulator ``acc_out``,
used when a product is tiled along K, and the requantised ``q_out``).  Throughput: one vector
per cycle.  The golden model is :func:`golden.output_stage.output_stage`.

**Split lanes** (``split=True``, SPEC §5, seed 001 §4.3.1.3 L1737–L1739): the two copies of
a critical neuron split for the LCU realise the halving in requantisation (see
:mod:`golden.split`).  A lane whose ``split`` bit is set uses ``shift + 1`` and saturates to
the ``(out_width − 1)``-bit signed range, so a fault-free non-negative copy never sets bit
``out_width − 2``, the bit the LCU clears; the other lanes are unchanged.  The effective shift
is computed on ``SHIFT_WIDTH + 1`` bits, so ``shift + 1`` cannot overflow: at the largest shift
(63) a split lane shifts by 64 and outputs 0 for every accumulator (``|y| < 2**62`` because
``acc_width ≤ 60``), as an unsplit lane already does at shift 63.  With ``split=False`` (the
default) no split hardware or port exists and the generated Verilog is unchanged.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.errors import ConfigError, check_bool, check_int

__all__ = ["OutputStage", "OutputLane", "SHIFT_WIDTH"]

SHIFT_WIDTH = 6


def _check_split(split, requant) -> None:
    check_bool("split", split)
    if split and not requant:
        raise ConfigError("split", split, "false when requant is false (nothing to split)")


class OutputLane(wiring.Component):
    """One lane of the output stage (see the module docstring); registered.

    A lane per column, all identical, so the area flow synthesises one and multiplies it
    instead of synthesising a C-lane block (minutes at 64 columns).  ``split=True`` adds the
    input ``split: In(1)`` (this lane holds a split copy: ``shift + 1``, saturation to
    ``out_width − 1`` bits).
    """

    def __init__(self, *, acc_width: int, out_width: int, requant: bool, split: bool = False):
        _check_split(split, requant)
        self._acc, self._out, self._requant, self._split = acc_width, out_width, requant, split
        members = {"acc_in": In(signed(acc_width)), "acc_out": Out(signed(acc_width))}
        if requant:
            members.update({"bias": In(signed(acc_width)), "relu": In(1),
                            "shift": In(SHIFT_WIDTH), "q_out": Out(signed(out_width))})
        if split:
            members["split"] = In(1)
        super().__init__(members)

    @property
    def has_split(self) -> bool:
        """The lane has the ``split`` input (the property cannot be named like the port)."""
        return self._split

    def elaborate(self, platform):
        """The lane's netlist."""
        m = Module()
        m.d.sync += self.acc_out.eq(self.acc_in)
        if not self._requant:
            return m
        hi = (1 << (self._out - 1)) - 1
        lo = -(1 << (self._out - 1))
        y = Signal(signed(self._acc + 1), name="biased")
        m.d.comb += y.eq(self.acc_in + self.bias)
        r = Signal(signed(self._acc + 1), name="relu_out")
        m.d.comb += r.eq(Mux(self.relu & y[-1], 0, y))
        if self._split:
            return self._elaborate_split(m, r, hi, lo)
        # (1 << shift) >> 1 is the rounding constant 2**(shift-1), and 0 when shift = 0.
        half = (Const(1, 1) << self.shift) >> 1
        s = Signal(signed(self._acc + 2), name="scaled")
        m.d.comb += s.eq((r + half) >> self.shift)
        m.d.sync += self.q_out.eq(Mux(s > hi, hi, Mux(s < lo, lo, s)))
        return m

    def _elaborate_split(self, m, r, hi, lo):
        # One more bit for the shift: shift + 1 must not wrap to 0 at the largest shift.
        shift = Signal(SHIFT_WIDTH + 1, name="lane_shift")
        m.d.comb += shift.eq(self.shift + self.split)
        half = (Const(1, 1) << shift) >> 1
        s = Signal(signed(self._acc + 2), name="scaled")
        m.d.comb += s.eq((r + half) >> shift)
        # A split copy saturates one bit narrower, so it never sets bit out_width-2.
        top = Signal(signed(self._out), name="sat_hi")
        bottom = Signal(signed(self._out), name="sat_lo")
        m.d.comb += [top.eq(Mux(self.split, hi >> 1, hi)), bottom.eq(Mux(self.split, lo >> 1, lo))]
        m.d.sync += self.q_out.eq(Mux(s > top, top, Mux(s < bottom, bottom, s)))
        return m


class OutputStage(wiring.Component):
    """Registered bias/ReLU/requantisation over ``lanes`` lanes, one cycle of latency.

    Parameters
    ----------
    lanes : int
        Vector length.
    acc_width : int
        Width of the incoming accumulators (and of ``bias``).
    out_width : int
        Width of the requantised outputs (the activation width).
    requant : bool
        ``False`` keeps only the register (``acc_out``, ``out_valid``): no bias, ReLU or
        ``q_out`` hardware.
    split : bool
        ``True`` adds the input ``split: In(lanes)``: bit ``c`` set makes lane ``c`` a split
        copy (``shift + 1``, saturation to ``out_width − 1`` bits; see the module docstring).
        Requires ``requant``.  Default ``False``: no port, Verilog as without the option.
    """

    def __init__(self, *, lanes: int, acc_width: int, out_width: int, requant: bool = True,
                 split: bool = False):
        check_int("lanes", lanes, 1, 256)
        check_int("acc_width", acc_width, 2, 60)
        check_int("out_width", out_width, 2, 16)
        _check_split(split, requant)
        self._split = split
        self._lanes, self._acc, self._out, self._requant = lanes, acc_width, out_width, requant
        members = {
            "acc_in": In(signed(acc_width)).array(lanes), "in_valid": In(1),
            "acc_out": Out(signed(acc_width)).array(lanes), "out_valid": Out(1),
        }
        if requant:
            members.update({
                "bias": In(signed(acc_width)).array(lanes), "relu": In(1),
                "shift": In(SHIFT_WIDTH), "q_out": Out(signed(out_width)).array(lanes),
            })
        if split:
            members["split"] = In(lanes)
        super().__init__(members)

    @property
    def lanes(self) -> int:
        """Vector length."""
        return self._lanes

    @property
    def requant(self) -> bool:
        """Bias, ReLU and requantisation are built (else only the register)."""
        return self._requant

    @property
    def has_split(self) -> bool:
        """The stage has the ``split`` input (the property cannot be named like the port)."""
        return self._split

    def elaborate(self, platform):
        """The stage's netlist."""
        m = Module()
        m.d.sync += self.out_valid.eq(self.in_valid)
        for c in range(self._lanes):
            m.submodules[f"lane{c}"] = lane = OutputLane(
                acc_width=self._acc, out_width=self._out, requant=self._requant,
                split=self._split)
            m.d.comb += [lane.acc_in.eq(self.acc_in[c]), self.acc_out[c].eq(lane.acc_out)]
            if self._requant:
                m.d.comb += [lane.bias.eq(self.bias[c]), lane.relu.eq(self.relu),
                             lane.shift.eq(self.shift), self.q_out[c].eq(lane.q_out)]
            if self._split:
                m.d.comb += lane.split.eq(self.split[c])
        return m
