"""Output stage: bias, ReLU and requantisation of the accumulator vector (README, Networks).

The correction units of Ahmadilivani 2025 §4.3.1 work on requantised activations, so the accelerator
ends in the usual integer-inference epilogue, applied element-wise to each output vector:

.. code-block:: text

    y = acc + bias[c]                      (acc_width + 1 bits: cannot overflow)
    y = max(y, 0)           if relu
    q = (y + 2**(shift-1)) >> shift        if shift > 0  (round half up, arithmetic shift)
    q = clamp(q, -2**(a_width-1), 2**(a_width-1) - 1)

``bias`` (per column), ``relu`` and ``shift`` are run-time ports, held constant during a
product.  Latency: **1 cycle** (one register stage holding both the raw accumulator ``acc_out``,
used when a product is tiled along K, and the requantised ``q_out``).  Throughput: one vector
per cycle.  The golden model is :func:`golden.output_stage.output_stage`.

**Split lanes** (``split=True``, Ahmadilivani 2025 §4.3.1): the two copies of
a critical neuron split for the LCU realise the halving in requantisation (see
:mod:`golden.split`).  A lane whose ``split`` bit is set uses ``shift + 1`` and saturates to
the ``(out_width − 1)``-bit signed range, so a fault-free non-negative copy never sets bit
``out_width − 2``, the bit the LCU clears; the other lanes are unchanged.  The effective shift
is computed on ``SHIFT_WIDTH + 1`` bits, so ``shift + 1`` cannot overflow: at the largest shift
(63) a split lane shifts by 64 and outputs 0 for every accumulator (``|y| < 2**62`` because
``acc_width ≤ 60``), as an unsplit lane already does at shift 63.  With ``split=False`` (the
default) no split hardware or port exists and the generated Verilog is unchanged.

**Fixed-point multiplier** (``multiplier=True``; ``AcceleratorConfig.requant = "multiplier"``,
README, Two quantisation paths, issue 23): each lane gains gemmlowp's integer requantisation beside
the power-of-two path, in a submodule ``requant`` (:class:`FixedRequant`, its own unit in the area
flow), and a run-time select ``fixed`` between the two:

.. code-block:: text

    y    = acc + bias                                    (acc_width + 1 bits, as above)
    prod = y · M0                                        (M0: 31-bit unsigned, per lane)
    high = (prod + 2**30) >> 31                          SaturatingRoundingDoublingHighMul
    r    = (high + 2**(n-1) − (high < 0)) >> n  if n>0   RoundingDivideByPOT (n: 6 bits, per
                                                         lane; half away from zero)
    q    = min(max(r + zero_point, lo), hi)              (zero_point, lo, hi: a_width bits)

``M0`` is gemmlowp's positive int32 multiplier in ``[2**30, 2**31)``: its sign bit is always 0,
so the port carries the 31 magnitude bits and loses nothing.  gemmlowp rounds the doubling high
multiply with a sign-dependent nudge and a division truncating towards zero; for a
non-negative ``M0`` that equals ``floor((prod + 2**30) / 2**31)`` (both round half towards
+∞), one carry-in instead of a sign-dependent adder.  The saturation case of gemmlowp
(``a = M0 = −2**31``) cannot occur.  The path is exact for every input the ports can hold:
``y`` up to ``acc_width + 1 ≤ 33`` bits (a bias that pushes ``acc + bias`` beyond int32, or a
fault, gives the exact mathematical result, not a wrap), and ``n`` up to 63 (``n > 62``
gives 0 as the exact quotient does).  The golden model is
:func:`golden.output_stage.fixed_requantize` (:class:`golden.output_stage.FixedRequantModel`
register by register).

Pipeline and latency (logic depth in CMOS gate levels from the area flow, a8w8, K ≤ 1,024):
the 27 × 31-bit product alone is 122 levels inside :class:`FixedRequant` (145 synthesised on
its own), against the PE's 79 and the power-of-two lane's 143, so it is a stage of its own;
the roundings, zero point and clamp after it measured 161 levels in one stage, so they are
two.  Four registered stages in all: ``y`` (the bias adder, shared with the power-of-two
path), the product, one adder for both roundings, then the shift, zero point and clamp
together with the select; the lane's longest path stays the power-of-two one (143 → 145).
The lane's latency grows from 1 to **4 cycles** (``AcceleratorConfig.output_latency``); the
power-of-two result, ``acc_out`` and ``out_valid`` are delayed alike, so every output of the
stage stays aligned.  Ports are read in the cycle their stage computes: ``bias`` in the
vector's first cycle t, ``multiplier`` in t + 1, ``shift`` in t + 2, ``zero_point``, ``lo``,
``hi`` and ``fixed`` in t + 3 (:func:`golden.schedule.build_program` drives them so).
Without ``multiplier`` no such hardware or port exists and the Verilog is unchanged.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.config import REQUANT_STAGES
from ftaccel.errors import ConfigError, check_bool, check_int

__all__ = ["OutputStage", "OutputLane", "FixedRequant", "RequantSignature", "SHIFT_WIDTH",
           "MULTIPLIER_WIDTH", "FIXED_LATENCY"]

SHIFT_WIDTH = 6
#: Width of the fixed-point multiplier port: gemmlowp's int32 ``M0`` is never negative.
MULTIPLIER_WIDTH = 31
#: Cycles from a lane's biased accumulator to its output with the fixed-point path: the
#: output register and the configuration's extra stages.
FIXED_LATENCY = 1 + REQUANT_STAGES


def _check_split(split, requant) -> None:
    check_bool("split", split)
    if split and not requant:
        raise ConfigError("split", split, "false when requant is false (nothing to split)")


def _check_multiplier(multiplier, requant, acc_width) -> None:
    if not isinstance(multiplier, bool):
        raise ConfigError("multiplier", multiplier, "true or false")
    if multiplier and not requant:
        raise ConfigError("multiplier", multiplier, "false when requant is false")
    if multiplier and acc_width > 32:
        raise ConfigError("acc_width", acc_width, "at most 32 bits with the fixed-point "
                          "multiplier (gemmlowp's int32 accumulator)")


class RequantSignature(wiring.Signature):
    """The host's ports of the fixed-point path (the top's ``requant`` group), all inputs.

    ``fixed`` selects the fixed-point result (1) or the power-of-two one (0) for every lane;
    ``multiplier[lanes]`` (``M0``, :data:`MULTIPLIER_WIDTH` bits unsigned) and
    ``shift[lanes]`` (``n``, :data:`SHIFT_WIDTH` bits) per lane, loaded like the bias;
    ``zero_point``, ``lo`` and ``hi`` (``out_width`` bits signed) for all lanes.
    """

    def __init__(self, lanes: int, out_width: int):
        check_int("lanes", lanes, 1, 256)
        check_int("out_width", out_width, 2, 16)
        super().__init__({
            "fixed": Out(1),
            "multiplier": Out(unsigned(MULTIPLIER_WIDTH)).array(lanes),
            "shift": Out(SHIFT_WIDTH).array(lanes),
            "zero_point": Out(signed(out_width)), "lo": Out(signed(out_width)),
            "hi": Out(signed(out_width)),
        })
        self._key = (lanes, out_width)

    def __eq__(self, other) -> bool:
        """Equal to a requantisation signature of the same lanes and width."""
        return isinstance(other, RequantSignature) and other._key == self._key

    def __hash__(self) -> int:
        """The hash of the signature."""
        return hash((RequantSignature, self._key))


class FixedRequant(wiring.Component):
    """The gemmlowp fixed-point requantisation of one lane, pipelined (module docstring).

    Four registered stages from ``y`` to ``q``, each read of a control in the cycle its stage
    computes (``y`` arrives in cycle t):

    1. ``y_reg = y``;
    2. ``product = y_reg · multiplier`` (``multiplier`` in t + 1);
    3. ``rounding_sum = (product >> 31) + product[30] + 2**(n-1) − down`` and ``n`` itself
       (``right_shift`` in t + 2, limited to ``y_width + 1``; ``down`` = the high word is
       negative and ``n > 0``): the doubling high multiply's rounding and RoundingDivideByPOT's
       rounding constant in one adder;
    4. ``q = min(max(sat(rounding_sum >> n) + zero_point, lo), hi)``, or the lane's
       power-of-two result ``pow2`` when ``fixed`` is 0 (``zero_point``, ``lo``, ``hi``,
       ``fixed``, ``pow2`` in t + 3).

    Latency **4 cycles**, one value per cycle.  ``sat`` limits the shifted value to
    ``[−2**out_width, 2**out_width − 1]``, which cannot change the clamped result (any value
    beyond plus an ``out_width``-bit zero point is beyond an ``out_width``-bit bound), so the
    zero-point adder and the comparators are ``out_width + 2`` bits wide instead of
    ``y_width + 3``.

    Parameters
    ----------
    y_width : int
        Width of the biased accumulator ``y`` (the lane's ``acc_width + 1``), 2 … 33.
    out_width : int
        Width of ``q``, ``pow2``, ``zero_point``, ``lo`` and ``hi``.
    """

    def __init__(self, *, y_width: int, out_width: int):
        check_int("y_width", y_width, 2, 33)
        check_int("out_width", out_width, 2, 16)
        self._yw, self._out = y_width, out_width
        super().__init__({
            "y": In(signed(y_width)), "pow2": In(signed(out_width)), "fixed": In(1),
            "multiplier": In(unsigned(MULTIPLIER_WIDTH)), "right_shift": In(SHIFT_WIDTH),
            "zero_point": In(signed(out_width)), "lo": In(signed(out_width)),
            "hi": In(signed(out_width)), "q": Out(signed(out_width)),
        })

    def elaborate(self, platform):
        """The path's netlist."""
        m = Module()
        yw = self._yw
        y = Signal(signed(yw), name="y_reg")
        m.d.sync += y.eq(self.y)
        # |product| < 2**(yw+30): M0 < 2**31 and |y| <= 2**(yw-1).
        prod = Signal(signed(yw + MULTIPLIER_WIDTH), name="product")
        m.d.sync += prod.eq(y * self.multiplier)
        total, n = self._rounding_sum(m, prod)
        m.d.sync += self.q.eq(Mux(self.fixed, self._shift_clamp(m, total, n), self.pow2))
        return m

    def _rounding_sum(self, m: Module, prod):
        """Stage 3: ``high + 2**(n-1) − down`` in one adder, registered with ``n``.

        ``high = floor((prod + 2**30) / 2**31) = (prod >> 31) + prod[30]`` (the doubling high
        multiply, see the module docstring), and
        ``floor((high + k) / 2**n) = RoundingDivideByPOT(high, n)`` for
        ``k = 2**(n-1) − (high < 0)`` when ``n > 0`` (half away from zero), ``k = 0`` for
        ``n = 0``.  ``high < 0`` is read off the high word without the add: it is negative
        unless it is −1 and bit 30 carries it to 0.
        """
        yw = self._yw
        word = Signal(signed(yw), name="high_word")
        m.d.comb += word.eq(prod >> 31)
        carry = prod[30]
        negative = Signal(name="high_negative")
        m.d.comb += negative.eq(word[-1] & ~((word == -1) & carry))
        # A shift beyond yw + 1 gives 0 like yw + 1 does (|high| <= 2**(yw-1)), so the shifter
        # and the rounding constant need only range(yw + 2).
        n_now = Signal(range(yw + 2), name="rshift")
        m.d.comb += n_now.eq(Mux(self.right_shift > yw + 1, yw + 1, self.right_shift))
        half = Signal(yw + 1, name="rhalf")
        m.d.comb += half.eq((Const(1, 1) << n_now) >> 1)
        k = Signal(signed(yw + 2), name="rconst")
        m.d.comb += k.eq(half - (negative & (n_now != 0)))
        total = Signal(signed(yw + 2), name="rounding_sum")
        n = Signal(range(yw + 2), name="rshift_reg")
        m.d.sync += [total.eq(word + k + carry), n.eq(n_now)]
        return total, n

    def _shift_clamp(self, m: Module, total, n):
        """Stage 4 (combinational): the shift, the saturation, the zero point and the clamp."""
        w = self._out
        r = Signal(signed(self._yw + 2), name="rounded")
        m.d.comb += r.eq(total >> n)
        top = r[w:]
        sat = Signal(signed(w + 1), name="rounded_sat")
        m.d.comb += sat.eq(Mux(~r[-1] & top.any(), (1 << w) - 1,
                               Mux(r[-1] & ~top.all(), -(1 << w), r)))
        s = Signal(signed(w + 2), name="zp_sum")
        m.d.comb += s.eq(sat + self.zero_point)
        # min(max(s, lo), hi), numpy's clip: hi wins if lo > hi.
        t = Signal(signed(w + 2), name="clamp_lo")
        m.d.comb += t.eq(Mux(s < self.lo, self.lo, s))
        return Mux(t > self.hi, self.hi, t)


class OutputLane(wiring.Component):
    """One lane of the output stage (see the module docstring); registered.

    A lane per column, all identical, so the area flow synthesises one and multiplies it
    instead of synthesising a C-lane block (minutes at 64 columns).  ``split=True`` adds the
    input ``split: In(1)`` (this lane holds a split copy: ``shift + 1``, saturation to
    ``out_width − 1`` bits).  ``multiplier=True`` adds the fixed-point path as the submodule
    ``requant`` (:class:`FixedRequant`) with the inputs ``fixed``, ``multiplier``,
    ``right_shift``, ``zero_point``, ``lo`` and ``hi``, and delays ``acc_out`` and the
    power-of-two result to its latency of 4 cycles.
    """

    def __init__(self, *, acc_width: int, out_width: int, requant: bool, split: bool = False,
                 multiplier: bool = False):
        _check_split(split, requant)
        _check_multiplier(multiplier, requant, acc_width)
        self._acc, self._out, self._requant, self._split = acc_width, out_width, requant, split
        self._mult = multiplier
        members = {"acc_in": In(signed(acc_width)), "acc_out": Out(signed(acc_width))}
        if requant:
            members.update({"bias": In(signed(acc_width)), "relu": In(1),
                            "shift": In(SHIFT_WIDTH), "q_out": Out(signed(out_width))})
        if split:
            members["split"] = In(1)
        if multiplier:
            members.update({"fixed": In(1), "multiplier": In(unsigned(MULTIPLIER_WIDTH)),
                            "right_shift": In(SHIFT_WIDTH), "zero_point": In(signed(out_width)),
                            "lo": In(signed(out_width)), "hi": In(signed(out_width))})
        super().__init__(members)

    @property
    def has_split(self) -> bool:
        """The lane has the ``split`` input (the property cannot be named like the port)."""
        return self._split

    @property
    def has_multiplier(self) -> bool:
        """The lane has the fixed-point path (:class:`FixedRequant`, submodule ``requant``)."""
        return self._mult

    def elaborate(self, platform):
        """The lane's netlist."""
        m = Module()
        if self._mult:
            return self._elaborate_multiplier(m)
        m.d.sync += self.acc_out.eq(self.acc_in)
        if not self._requant:
            return m
        y = Signal(signed(self._acc + 1), name="biased")
        m.d.comb += y.eq(self.acc_in + self.bias)
        m.d.sync += self.q_out.eq(self._pow2(m, y))
        return m

    def _pow2(self, m: Module, y):
        """The power-of-two result of ``y`` (combinational): ReLU, rounding shift, clamp."""
        hi = (1 << (self._out - 1)) - 1
        lo = -(1 << (self._out - 1))
        r = Signal(signed(self._acc + 1), name="relu_out")
        m.d.comb += r.eq(Mux(self.relu & y[-1], 0, y))
        shift = self.shift
        if self._split:
            # One more bit for the shift: shift + 1 must not wrap to 0 at the largest shift.
            shift = Signal(SHIFT_WIDTH + 1, name="lane_shift")
            m.d.comb += shift.eq(self.shift + self.split)
        # (1 << shift) >> 1 is the rounding constant 2**(shift-1), and 0 when shift = 0.
        half = (Const(1, 1) << shift) >> 1
        s = Signal(signed(self._acc + 2), name="scaled")
        m.d.comb += s.eq((r + half) >> shift)
        if not self._split:
            return Mux(s > hi, hi, Mux(s < lo, lo, s))
        # A split copy saturates one bit narrower, so it never sets bit out_width-2.
        top = Signal(signed(self._out), name="sat_hi")
        bottom = Signal(signed(self._out), name="sat_lo")
        m.d.comb += [top.eq(Mux(self.split, hi >> 1, hi)), bottom.eq(Mux(self.split, lo >> 1, lo))]
        return Mux(s > top, top, Mux(s < bottom, bottom, s))

    def _elaborate_multiplier(self, m: Module):
        """Both paths: the power-of-two result and ``acc_out`` delayed to the fixed path's."""
        y = Signal(signed(self._acc + 1), name="biased")
        m.d.comb += y.eq(self.acc_in + self.bias)
        m.submodules.requant = fx = FixedRequant(y_width=self._acc + 1, out_width=self._out)
        pow2 = Signal(signed(self._out), name="pow2_q")
        m.d.comb += pow2.eq(self._pow2(m, y))
        acc = self.acc_in
        for i in range(FIXED_LATENCY - 1):
            nxt = (Signal.like(pow2, name=f"pow2_d{i + 1}"),
                   Signal.like(self.acc_in, name=f"acc_d{i + 1}"))
            m.d.sync += [nxt[0].eq(pow2), nxt[1].eq(acc)]
            pow2, acc = nxt
        m.d.sync += self.acc_out.eq(acc)
        m.d.comb += [fx.y.eq(y), fx.pow2.eq(pow2), fx.fixed.eq(self.fixed),
                     fx.multiplier.eq(self.multiplier), fx.right_shift.eq(self.right_shift),
                     fx.zero_point.eq(self.zero_point), fx.lo.eq(self.lo), fx.hi.eq(self.hi),
                     self.q_out.eq(fx.q)]
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
    multiplier : bool
        ``True`` adds the fixed-point path to every lane and the input group ``fixed_point``
        (:class:`RequantSignature`; the property ``requant`` already names the option
        above); the stage's latency becomes :data:`FIXED_LATENCY` cycles for every output.
        Requires ``requant`` and ``acc_width ≤ 32``.  Default ``False``: no port, Verilog as
        without the option.
    """

    def __init__(self, *, lanes: int, acc_width: int, out_width: int, requant: bool = True,
                 split: bool = False, multiplier: bool = False):
        check_int("lanes", lanes, 1, 256)
        check_int("acc_width", acc_width, 2, 60)
        check_int("out_width", out_width, 2, 16)
        _check_split(split, requant)
        _check_multiplier(multiplier, requant, acc_width)
        self._split, self._mult = split, multiplier
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
        if multiplier:
            members["fixed_point"] = In(RequantSignature(lanes, out_width))
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

    @property
    def latency(self) -> int:
        """Cycles from ``acc_in`` to every output: 1, or :data:`FIXED_LATENCY`."""
        return FIXED_LATENCY if self._mult else 1

    def elaborate(self, platform):
        """The stage's netlist."""
        m = Module()
        valid = self.in_valid
        for i in range(self.latency - 1):
            reg = Signal(name=f"valid_d{i + 1}")
            m.d.sync += reg.eq(valid)
            valid = reg
        m.d.sync += self.out_valid.eq(valid)
        for c in range(self._lanes):
            m.submodules[f"lane{c}"] = lane = OutputLane(
                acc_width=self._acc, out_width=self._out, requant=self._requant,
                split=self._split, multiplier=self._mult)
            m.d.comb += [lane.acc_in.eq(self.acc_in[c]), self.acc_out[c].eq(lane.acc_out)]
            if self._requant:
                m.d.comb += [lane.bias.eq(self.bias[c]), lane.relu.eq(self.relu),
                             lane.shift.eq(self.shift), self.q_out[c].eq(lane.q_out)]
            if self._split:
                m.d.comb += lane.split.eq(self.split[c])
            if self._mult:
                rq = self.fixed_point
                m.d.comb += [lane.fixed.eq(rq.fixed), lane.multiplier.eq(rq.multiplier[c]),
                             lane.right_shift.eq(rq.shift[c]), lane.zero_point.eq(rq.zero_point),
                             lane.lo.eq(rq.lo), lane.hi.eq(rq.hi)]
        return m
