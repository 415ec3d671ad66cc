"""Output stage: bias, ReLU and requantisation of the accumulator vector (issue 2 item 3).

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
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError

__all__ = ["OutputStage", "OutputLane", "SHIFT_WIDTH"]

SHIFT_WIDTH = 6


class OutputLane(wiring.Component):
    """One lane of the output stage (see the module docstring); registered.

    A lane per column, all identical, so the area flow synthesises one and multiplies it
    instead of synthesising a C-lane block (minutes at 64 columns).
    """

    def __init__(self, *, acc_width: int, out_width: int, requant: bool):
        self._acc, self._out, self._requant = acc_width, out_width, requant
        members = {"acc_in": In(signed(acc_width)), "acc_out": Out(signed(acc_width))}
        if requant:
            members.update({"bias": In(signed(acc_width)), "relu": In(1),
                            "shift": In(SHIFT_WIDTH), "q_out": Out(signed(out_width))})
        super().__init__(members)

    def elaborate(self, platform):
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
        # (1 << shift) >> 1 is the rounding constant 2**(shift-1), and 0 when shift = 0.
        half = (Const(1, 1) << self.shift) >> 1
        s = Signal(signed(self._acc + 2), name="scaled")
        m.d.comb += s.eq((r + half) >> self.shift)
        m.d.sync += self.q_out.eq(Mux(s > hi, hi, Mux(s < lo, lo, s)))
        return m


class OutputStage(wiring.Component):
    """Registered bias/ReLU/requantisation over ``cols`` lanes.

    Parameters
    ----------
    cols : int
        Vector length.
    acc_width : int
        Width of the incoming accumulators (and of ``bias``).
    out_width : int
        Width of the requantised outputs (the activation width).
    requant : bool
        ``False`` keeps only the register (``acc_out``, ``out_valid``): no bias, ReLU or
        ``q_out`` hardware.
    """

    def __init__(self, *, cols: int, acc_width: int, out_width: int, requant: bool = True):
        for name, v, lo, hi in (("cols", cols, 1, 256), ("acc_width", acc_width, 2, 60),
                                ("out_width", out_width, 2, 16)):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ConfigError(name, v, f"an integer from {lo} to {hi}")
        self._cols, self._acc, self._out, self._requant = cols, acc_width, out_width, requant
        members = {
            "acc_in": In(signed(acc_width)).array(cols), "in_valid": In(1),
            "acc_out": Out(signed(acc_width)).array(cols), "out_valid": Out(1),
        }
        if requant:
            members.update({
                "bias": In(signed(acc_width)).array(cols), "relu": In(1),
                "shift": In(SHIFT_WIDTH), "q_out": Out(signed(out_width)).array(cols),
            })
        super().__init__(members)

    cols = property(lambda self: self._cols)
    requant = property(lambda self: self._requant)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.out_valid.eq(self.in_valid)
        for c in range(self._cols):
            m.submodules[f"lane{c}"] = lane = OutputLane(
                acc_width=self._acc, out_width=self._out, requant=self._requant)
            m.d.comb += [lane.acc_in.eq(self.acc_in[c]), self.acc_out[c].eq(lane.acc_out)]
            if self._requant:
                m.d.comb += [lane.bias.eq(self.bias[c]), lane.relu.eq(self.relu),
                             lane.shift.eq(self.shift), self.q_out[c].eq(lane.q_out)]
        return m
