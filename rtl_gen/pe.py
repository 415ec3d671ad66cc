"""Processing elements (MACs) of the systolic array, one per dataflow (Ozen 2023 §2.3, §10.3.2).

Two PEs cover the three dataflows of Ozen 2023 §2.3:

* :class:`StationaryPE` for weight-stationary (WS) and input-stationary (IS): "the processing
  element design is often identical to the one used for the weight-stationary dataflow"
  (Ozen 2023 §2.3).  One operand is pinned in the PE (WS: a weight, IS: an activation), the other
  streams left to right, partial sums stream top to bottom.
* :class:`OutputStationaryPE` for OS: activations stream right, weights stream down, each PE
  keeps one output's partial sum and hands it to a drain chain when its reduction ends.

Register names are the same in every dataflow and in the golden model and fault reports:
``weight_reg``, ``act_reg`` and ``psum_reg`` (the OS accumulator is its ``psum_reg``).
All arithmetic is two's complement; the partial sum wraps at ``acc_width`` bits exactly as the
golden cycle model does (a configuration whose ``max_k`` is respected never wraps).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.config import FAULT_REGISTERS
from ftaccel.errors import ConfigError, is_int

from .fault import BIT_WIDTH, sabotage

__all__ = ["StationaryPE", "OutputStationaryPE", "pe_module_name"]

_W, _A, _P, _M, _S, _SH = (FAULT_REGISTERS.index(r)
                           for r in ("weight", "act", "psum", "product", "sum", "shadow"))


def _fault_members(enabled: bool) -> dict:
    if not enabled:
        return {}
    return {
        "fault_row_hit": In(1), "fault_col_hit": In(1), "fault_reg_hit": In(len(FAULT_REGISTERS)),
        "fault_bit": In(BIT_WIDTH), "fault_mode": In(2),
    }


def _check_widths(a_width, w_width, acc_width, wraps=False):
    # A sanity PE (Sanity-Check) holds a wider operand and lets its partial sum wrap: its
    # checker works modulo 2**acc_width.
    # a_width reaches 16 + temporal_batch_bits with the exact temporal checksum.
    for name, v, lo, hi in (("a_width", a_width, 2, 32 if wraps else 24),
                            ("w_width", w_width, 2, 32 if wraps else 16),
                            ("acc_width", acc_width, 2 if wraps else a_width + w_width, 60)):
        if not is_int(v) or not lo <= v <= hi:
            raise ConfigError(name, v, f"an integer from {lo} to {hi}")


def pe_module_name(dataflow: str, a_width: int, w_width: int, acc_width: int,
                   fault_hooks: bool, bypass: bool = False, double_buffer: bool = False) -> str:
    """Verilog module name of a PE; the array instantiates it R×C times by this name."""
    return (f"pe_{dataflow}_a{a_width}w{w_width}p{acc_width}" + ("_fh" if fault_hooks else "")
            + ("_bp" if bypass else "") + ("_db" if double_buffer else ""))


class _PEBase(wiring.Component):
    def __init__(self, members, *, dataflow, a_width, w_width, acc_width, fault_hooks, bypass,
                 wraps=False, double_buffer=False):
        self._double_buffer = bool(double_buffer)
        _check_widths(a_width, w_width, acc_width, wraps)
        self._wraps = bool(wraps)
        self._dataflow = dataflow
        self._a_width, self._w_width, self._acc_width = a_width, w_width, acc_width
        self._fault_hooks = bool(fault_hooks)
        self._bypass = bool(bypass)
        members.update(_fault_members(self._fault_hooks))
        if self._bypass:
            members["bypass"] = In(1)
        super().__init__(members)

    @property
    def dataflow(self) -> str:
        """``"ws"``, ``"is"`` or ``"os"``."""
        return self._dataflow

    @property
    def a_width(self) -> int:
        """Activation (streamed operand) width."""
        return self._a_width

    @property
    def w_width(self) -> int:
        """Weight width."""
        return self._w_width

    @property
    def acc_width(self) -> int:
        """Partial-sum width."""
        return self._acc_width

    @property
    def fault_hooks(self) -> bool:
        """Saboteurs on every register."""
        return self._fault_hooks

    @property
    def has_bypass(self) -> bool:
        """The ``bypass`` input exists (the property cannot be named like the port)."""
        return self._bypass

    @property
    def double_buffer(self) -> bool:
        """The stationary operand has a shadow register (WS / IS)."""
        return self._double_buffer

    @property
    def module_name(self) -> str:
        """The Verilog module name the array instantiates this PE by."""
        # A sanity-column PE is Sanity-Check overhead, and its name says so for area reports.
        return ("sanity_" if self._wraps else "") + pe_module_name(
            self._dataflow, self._a_width, self._w_width, self._acc_width, self._fault_hooks,
            self._bypass, self._double_buffer)

    def _mac(self, m: Module, addend, product, name: str | None = None):
        """``addend + product`` (wrapped to ``acc_width`` where it is stored).

        With fault hooks the multiplier's output (``product``, full width) and the adder's (``sum``,
        acc_width) each pass a saboteur. Without hooks the logic is what it always was (an
        expression, or a signal called ``name``).
        """
        if not self._fault_hooks:
            if name is None:
                return addend + product
            total = Signal(signed(self._acc_width), name=name)
            m.d.comb += total.eq(addend + product)
            return total
        prod = Signal(product.shape(), name="product")
        total = Signal(signed(self._acc_width), name="sum")
        m.d.comb += prod.eq(product)
        m.d.comb += total.eq(addend + self._read(m, prod, _M, "product"))
        return self._read(m, total, _S, "sum")

    def _read(self, m: Module, reg, index: int, name: str):
        """The value of ``reg`` as the circuit sees it: through a saboteur if hooks are on."""
        if not self._fault_hooks:
            return reg
        enable = self.fault_row_hit & self.fault_col_hit & self.fault_reg_hit[index]
        return sabotage(m, reg, enable, self.fault_bit, self.fault_mode, name)


class StationaryPE(_PEBase):
    """WS / IS processing element: ``psum_out <= psum_in + stationary × streamed``.

    Ports (``S`` = stationary width, ``M`` = streamed width, ``P`` = ``acc_width``):

    * ``load`` (1), ``stat_in`` (S) → ``stat_out`` (S): while ``load`` is high the stationary
      registers of a column form a shift chain, top to bottom, so a column is loaded in R
      cycles; ``stat_out`` feeds the PE below.
    * ``move_in`` (M) → ``move_out`` (M): streamed operand, registered, forwarded right.
    * ``psum_in`` (P) → ``psum_out`` (P): partial sum from above, plus this PE's product,
      registered, forwarded down.

    WS: stationary = weight (``weight_reg``), streamed = activation (``act_reg``).
    IS: stationary = activation (``act_reg``), streamed = weight (``weight_reg``).

    Latency: one cycle for the streamed operand and for the partial sum; the product uses the
    *registered* streamed operand, so ``psum_out`` at cycle t+2 includes the operand presented
    on ``move_in`` at cycle t.  Throughput: one MAC per cycle.

    **Double-buffered** (``double_buffer=True``, issue 18): the load chain runs through a second
    register, ``shadow_reg``, so the next tile shifts in while the current one computes; the
    stationary register only multiplies.  ``swap_in`` (1) → ``swap_out`` (1) travels right with
    the streamed operand, registered like it: in the cycle the first vector of a pass enters
    ``move_reg``, the stationary register takes the shadow's value, so that vector already
    multiplies with the new tile (no bubble).  Fault sites: the stationary register (its hold
    path goes through its saboteur) and the shadow (the load chain and the swap read it through
    its saboteur).
    """

    def __init__(self, *, dataflow: str, a_width: int, w_width: int, acc_width: int,
                 fault_hooks: bool = False, bypass: bool = False, wraps: bool = False,
                 double_buffer: bool = False):
        if dataflow not in ("ws", "is"):
            raise ConfigError("dataflow", dataflow, "'ws' or 'is' for a StationaryPE")
        sw, mw = (w_width, a_width) if dataflow == "ws" else (a_width, w_width)
        self._stat_width, self._move_width = sw, mw
        members = {
            "load": In(1), "stat_in": In(signed(sw)), "stat_out": Out(signed(sw)),
            "move_in": In(signed(mw)), "move_out": Out(signed(mw)),
            "psum_in": In(signed(acc_width)), "psum_out": Out(signed(acc_width)),
        }
        if double_buffer:
            members.update({"swap_in": In(1), "swap_out": Out(1)})
        super().__init__(members, dataflow=dataflow, a_width=a_width, w_width=w_width,
                         acc_width=acc_width, fault_hooks=fault_hooks, bypass=bypass,
                         wraps=wraps, double_buffer=double_buffer)

    def elaborate(self, platform):
        """The PE's netlist."""
        m = Module()
        ws = self._dataflow == "ws"
        stat_reg = Signal(signed(self._stat_width), name="weight_reg" if ws else "act_reg")
        move_reg = Signal(signed(self._move_width), name="act_reg" if ws else "weight_reg")
        psum_reg = Signal(signed(self._acc_width), name="psum_reg")
        stat_q = self._read(m, stat_reg, _W if ws else _A, stat_reg.name)
        move_q = self._read(m, move_reg, _A if ws else _W, move_reg.name)
        psum_q = self._read(m, psum_reg, _P, "psum_reg")

        # The hold path goes through the saboteur so that a flipped stationary bit stays
        # flipped (a storage upset), while a pipeline register is simply overwritten.
        mac = self._mac(m, self.psum_in, stat_q * move_q)
        if self._bypass:
            # Fig. 10.2-A: one 2-to-1 multiplexer forwards the received partial sum, pruning
            # every weight (WS) or input (IS) mapped to this PE; operands still pass through.
            mac = Mux(self.bypass, self.psum_in, mac)
        chain_q = stat_q
        if self._double_buffer:
            shadow_reg = Signal(signed(self._stat_width), name="shadow_reg")
            swap_reg = Signal(name="swap_reg")
            chain_q = self._read(m, shadow_reg, _SH, "shadow_reg")
            m.d.sync += [
                shadow_reg.eq(Mux(self.load, self.stat_in, chain_q)),
                stat_reg.eq(Mux(self.swap_in, chain_q, stat_q)),
                swap_reg.eq(self.swap_in),
            ]
            m.d.comb += self.swap_out.eq(swap_reg)
        else:
            m.d.sync += stat_reg.eq(Mux(self.load, self.stat_in, stat_q))
        m.d.sync += [
            move_reg.eq(self.move_in),
            psum_reg.eq(mac),
        ]
        m.d.comb += [
            self.stat_out.eq(chain_q),
            self.move_out.eq(move_q),
            self.psum_out.eq(psum_q),
        ]
        return m


class OutputStationaryPE(_PEBase):
    """OS processing element: a pinned accumulator and a two-register drain chain.

    Ports: ``act_in``/``act_out`` (a_width) and ``last_in``/``last_out`` (1) stream right
    together; ``weight_in``/``weight_out`` (w_width) stream down; ``drain_in``/``drain_out``
    (acc_width) form the column's drain chain (top to bottom).

    Each cycle the PE multiplies its registered activation and weight and adds the product to
    ``psum_reg``.  When the registered ``last`` flag is set, the finished sum goes into the
    first drain register instead and ``psum_reg`` restarts at zero, so the next product
    starts on the very next cycle (no bubble).  The drain chain has *two* registers per PE:
    rows finish one cycle apart (the wavefront is skewed), and a one-register chain would make
    row r's result collide with row r−1's passing result; with two per row the results leave
    the bottom of the column on consecutive cycles, bottom row first, and the chain is free
    again after R cycles, so back-to-back products need a reduction length of at least R
    (the driver pads shorter ones with zero steps).
    """

    def __init__(self, *, a_width: int, w_width: int, acc_width: int,
                 fault_hooks: bool = False, bypass: bool = False, wraps: bool = False):
        super().__init__({
            "act_in": In(signed(a_width)), "act_out": Out(signed(a_width)),
            "last_in": In(1), "last_out": Out(1),
            "weight_in": In(signed(w_width)), "weight_out": Out(signed(w_width)),
            "drain_in": In(signed(acc_width)), "drain_out": Out(signed(acc_width)),
        }, dataflow="os", a_width=a_width, w_width=w_width, acc_width=acc_width,
            fault_hooks=fault_hooks, bypass=bypass, wraps=wraps)

    def elaborate(self, platform):
        """The PE's netlist."""
        m = Module()
        act_reg = Signal(signed(self._a_width), name="act_reg")
        weight_reg = Signal(signed(self._w_width), name="weight_reg")
        psum_reg = Signal(signed(self._acc_width), name="psum_reg")
        last_reg = Signal(name="last_reg")
        drain_a = Signal(signed(self._acc_width), name="drain_a")
        drain_b = Signal(signed(self._acc_width), name="drain_b")
        act_q = self._read(m, act_reg, _A, "act_reg")
        weight_q = self._read(m, weight_reg, _W, "weight_reg")
        psum_q = self._read(m, psum_reg, _P, "psum_reg")

        total = self._mac(m, psum_q, act_q * weight_q, "total")
        result = total
        if self._bypass:
            # Fig. 10.2-B: AND gates force the pinned output to zero.
            result = Signal(signed(self._acc_width), name="result")
            m.d.comb += result.eq(total & ~self.bypass.replicate(self._acc_width))
        m.d.sync += [
            act_reg.eq(self.act_in),
            weight_reg.eq(self.weight_in),
            last_reg.eq(self.last_in),
            psum_reg.eq(Mux(last_reg, 0, total)),
            drain_a.eq(Mux(last_reg, result, self.drain_in)),
            drain_b.eq(drain_a),
        ]
        m.d.comb += [
            self.act_out.eq(act_q),
            self.weight_out.eq(weight_q),
            self.last_out.eq(last_reg),
            self.drain_out.eq(drain_b),
        ]
        return m
