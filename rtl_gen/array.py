"""The R×C systolic array with its edge skew and deskew registers (Ozen 2023 §2.3, §10.3.2, §2.3).

The PE is emitted once as its own Verilog module and instantiated R×C times by name
(``amaranth.hdl.Instance``), so synthesis sees true hierarchy (one PE module × R·C instances)
and the Verilog holds one PE body, not 4,096 copies of it: a 64×64 int8 accelerator is 3.5 MB
of Verilog (5.1 MB of RTLIL), almost all of it the instances' port connections and the edge
registers of the array module.

Timing (cycle t = the cycle in which a vector is presented at the array ports):

WS / IS (:class:`~rtl_gen.pe.StationaryPE`)
    ``stream_data[r]`` is delayed r cycles (skew) so that vector t reaches PE (r, c) at cycle
    ``t + r + c + 1``; ``psum_data[c]`` is delayed ``c + 1`` cycles to meet it at the top of
    column c; the bottom of column c is delayed ``C − 1 − c`` cycles (deskew).
    **Latency: R + C cycles** from ``stream_data``/``psum_data`` to ``out``; one vector in and
    one vector out per cycle, no bubble.  ``load`` shifts ``stat_data`` into the top row and
    every stationary value one row down: R cycles load a tile, row R−1's value first.
    *Single-buffered* (``double_buffer = False``): loading while products are in flight
    corrupts them, so the driver loads only when the array is idle.  *Double-buffered*
    (default): ``load`` shifts the shadow registers instead, column c ``c`` cycles after
    column 0 (the driver presents column c's ``stat_data`` c cycles later); ``swap``, set with
    the first vector of a pass and skewed like it, moves each PE's shadow into its stationary
    register as that vector arrives.  The next tile can load from R − 1 cycles after a pass's
    first vector and must end before the next pass's first vector: passes follow each other
    every ``max(stream, 2R − 1)`` cycles (:func:`golden.array.pass_starts`).
OS (:class:`~rtl_gen.pe.OutputStationaryPE`)
    ``act_data[r]`` and ``last`` are delayed r cycles, ``weight_data[c]`` c cycles.  A product
    is a run of K ≥ R steps with ``last`` set on the final step t_last; the R rows of the result
    leave the deskew on cycles ``t_last + R + C + 1 + i`` for ``i = 0 … R−1``, **row R−1−i
    first** (the drain chain empties bottom-up).  The next product may start on the cycle after
    t_last.
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.config import AcceleratorConfig
from ftaccel.enums import Dataflow
from ftaccel.errors import ConfigError

from .fault import FaultSelectSignature
from .pe import OutputStationaryPE, StationaryPE, pe_module_name

__all__ = ["SystolicArray", "delay", "make_pe", "pe_name", "sanity_pes"]


def delay(m: Module, sig, cycles: int, name: str):
    """``sig`` delayed by ``cycles`` registers (``cycles = 0`` returns ``sig`` itself)."""
    out = sig
    for i in range(cycles):
        reg = Signal(sig.shape(), name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(out)
        out = reg
    return out


def _taps(m: Module, sig, n: int, name: str) -> list:
    """``sig`` delayed by 0 … n − 1 cycles: the taps of one shift register (n − 1 flip-flops)."""
    taps = [sig]
    for i in range(1, n):
        reg = Signal(sig.shape(), name=f"{name}{i}")
        m.d.sync += reg.eq(taps[-1])
        taps.append(reg)
    return taps


def sanity_pes(cfg: AcceleratorConfig) -> dict:
    """The Sanity-Check PEs by place: ``"col"``, ``"row"`` (OS) and ``"corner"`` (OS, both).

    Each holds the wider operand of its place and lets its partial sum wrap at the accumulator
    width (its checker works modulo 2**acc_bits).  WS: the sanity column's stationary weights
    are ``cfg.sanity_width`` bits; IS: its stationary activations; OS: the weights streaming
    down it, and the sanity row's activations ``cfg.sanity_row_width`` bits.
    """
    hooks, P = cfg.fault_hooks, cfg.acc_bits
    out = {}
    if cfg.dataflow is Dataflow.OS:
        made: dict = {}  # one component per distinct PE (the corner may equal the column's)

        def os_pe(a: int, w: int):
            if (a, w) not in made:
                made[a, w] = OutputStationaryPE(a_width=a, w_width=w, acc_width=P,
                                                fault_hooks=hooks, wraps=True)
            return made[a, w]

        if cfg.spatial:
            out["col"] = os_pe(cfg.a_width, cfg.sanity_width)
        if cfg.temporal:
            out["row"] = os_pe(cfg.sanity_row_width, cfg.w_width)
        if cfg.spatial and cfg.temporal:
            out["corner"] = os_pe(cfg.sanity_row_width, cfg.sanity_width)
        return out
    if cfg.spatial:
        ws = cfg.dataflow is Dataflow.WS
        a, w = ((cfg.stream_width, cfg.sanity_width) if ws
                else (cfg.sanity_width, cfg.stream_width))
        out["col"] = StationaryPE(dataflow=cfg.dataflow, a_width=a, w_width=w, acc_width=P,
                                  fault_hooks=hooks, wraps=True,
                                  double_buffer=cfg.double_buffered)
    return out


def _pe_parameters(cfg: AcceleratorConfig) -> dict:
    """The PE's parameters for a configuration (those of :func:`pe_module_name` too)."""
    # The streamed operand (WS: activations, IS: weights) is cfg.stream_width bits, wider than
    # its own width with the exact temporal checksum, whose sanity vectors are sums of it.
    a_width = cfg.stream_width if cfg.dataflow is Dataflow.WS else cfg.a_width
    w_width = cfg.stream_width if cfg.dataflow is Dataflow.IS else cfg.w_width
    return {"dataflow": cfg.dataflow, "a_width": a_width, "w_width": w_width,
            "acc_width": cfg.acc_bits, "fault_hooks": cfg.fault_hooks, "bypass": cfg.bypass,
            "double_buffer": cfg.double_buffered}


def make_pe(cfg: AcceleratorConfig):
    """The PE component for a configuration (not yet instantiated)."""
    params = _pe_parameters(cfg)
    if cfg.dataflow is Dataflow.OS:
        del params["dataflow"], params["double_buffer"]  # (OS keeps no stationary operand)
        return OutputStationaryPE(**params)
    return StationaryPE(**params)


def pe_name(cfg: AcceleratorConfig) -> str:
    """The Verilog module name of :func:`make_pe`'s PE, without building it."""
    return pe_module_name(**_pe_parameters(cfg))


class SystolicArray(wiring.Component):
    """R×C grid of PEs with skew/deskew registers; see the module docstring for timing.

    Parameters
    ----------
    config : AcceleratorConfig
        Uses rows, cols, dataflow, widths and ``fault_hooks``.

    Ports (WS / IS): ``load`` (1), ``stat_data`` (C × stationary width), ``stream_data``
    (R × streamed width), ``psum_data`` (C × acc), ``out`` (C × acc).
    Ports (OS): ``act_data`` (R × a), ``weight_data`` (C × w), ``last`` (1), ``out`` (C × acc).
    With fault hooks: ``fault``, a :class:`~rtl_gen.fault.FaultSelectSignature` driven by
    :class:`~rtl_gen.fault.FaultController`.
    """

    def __new__(cls, config: AcceleratorConfig, *args, **kwargs):
        """Refuse a flow configuration before the component exists.

        An elaboratable created and never elaborated warns when it is collected; a refused
        array must not.  Flow-controlling PEs have their own array and top (:mod:`rtl_gen.flow`).
        """
        if isinstance(config, AcceleratorConfig) and config.flow != "none":
            raise ConfigError("flow", config.flow, "'none' for this array: build "
                              "rtl_gen.flow.FlowAccelerator for flow-controlling PEs")
        return super().__new__(cls, src_loc_at=1)  # (a warning names our caller)

    def __init__(self, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        # (a flow configuration is refused in __new__, before an elaboratable exists)
        self._cfg = config
        self._pe = make_pe(config)
        self._sanity = sanity_pes(config)
        R, C, P = config.rows, config.cols, config.acc_bits
        if config.dataflow is Dataflow.OS:
            members = {
                "act_data": In(signed(config.a_width)).array(R),
                "weight_data": In(signed(config.w_width)).array(C),
                "last": In(1),
            }
            if config.spatial:
                members["sanity_weight"] = In(signed(config.sanity_width))
            if config.temporal:
                members["sanity_act"] = In(signed(config.sanity_row_width))
        else:
            members = {
                "load": In(1),
                "stat_data": In(signed(config.stationary_width)).array(C),
                "stream_data": In(signed(config.stream_width)).array(R),
                "psum_data": In(signed(P)).array(C),
            }
            if config.double_buffered:
                members["swap"] = In(1)
        members["out"] = Out(signed(P)).array(C)
        if config.spatial:
            if config.dataflow is not Dataflow.OS:
                members.update({"sanity_stat": In(signed(config.sanity_width)),
                                "sanity_psum": In(signed(P))})
            members["sanity_out"] = Out(signed(P))
        if config.fault_hooks:
            members["fault"] = In(FaultSelectSignature(config.array_rows, config.array_cols))
        if config.bypass:
            members["bypass_map"] = In(R * C)  # bit r*C + c bypasses PE (r, c)
        super().__init__(members)

    @property
    def config(self) -> AcceleratorConfig:
        """The configuration the array is built from."""
        return self._cfg

    @property
    def pe(self):
        """The PE component; emit it as Verilog module ``pe.module_name`` beside the array."""
        return self._pe

    @property
    def pe_modules(self) -> list:
        """Every distinct PE component the array instantiates (to emit beside it)."""
        out = {self._pe.module_name: self._pe}
        for pe in self._sanity.values():
            out.setdefault(pe.module_name, pe)
        return list(out.values())

    @property
    def latency(self) -> int:
        """Cycles from a vector at the ports to its result at ``out`` (first row for OS)."""
        return self._cfg.array_latency

    def _instantiate(self, m: Module, r: int, c: int, inputs: dict) -> dict:
        """Instantiate PE (r, c) with ``inputs`` (port name → value); return its outputs."""
        extra_row, extra_col = r >= self._cfg.rows, c >= self._cfg.cols
        place = ("corner" if extra_row and extra_col else "row" if extra_row
                 else "col" if extra_col else None)
        pe = self._pe if place is None else self._sanity[place]
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        outputs = {}
        for name, member in pe.signature.members.items():
            if member.flow == In:
                ports[f"i_{name}"] = inputs[name]
            else:
                sig = Signal(member.shape, name=f"pe_{r}_{c}_{name}")
                ports[f"o_{name}"] = sig
                outputs[name] = sig
        m.submodules[f"pe_{r}_{c}"] = Instance(pe.module_name, **ports)
        return outputs

    def _fault_inputs(self, r: int, c: int) -> dict:
        # The sanity column is not in the bypass map (it is checked, not pruned).
        extra = ({"bypass": self.bypass_map[r * self._cfg.cols + c]}
                 if self._cfg.bypass and c < self._cfg.cols and r < self._cfg.rows else {})
        if not self._cfg.fault_hooks:
            return extra
        sel = self.fault
        return {**extra, "fault_row_hit": sel.row_hit[r], "fault_col_hit": sel.col_hit[c],
                "fault_reg_hit": sel.reg_hit, "fault_bit": sel.bit, "fault_mode": sel.mode}

    def elaborate(self, platform):
        """The array's netlist: PEs, skew and deskew registers."""
        m = Module()
        R, C = self._cfg.rows, self._cfg.array_cols
        if self._cfg.dataflow is Dataflow.OS:
            bottom = self._elaborate_os(m, self._cfg.array_rows, C)
        else:
            bottom = self._elaborate_stationary(m, R, C)
        outs = list(self.out) + ([self.sanity_out] if self._cfg.spatial else [])
        for c in range(C):
            m.d.comb += outs[c].eq(delay(m, bottom[c], C - 1 - c, f"deskew{c}"))
        return m

    def _elaborate_stationary(self, m, R, C):
        left = [delay(m, self.stream_data[r], r, f"skew{r}") for r in range(R)]
        db = self._cfg.double_buffered
        # Double-buffered: column c loads c cycles after column 0 (the driver presents column
        # c's data c cycles later), so each column's shadows refill right behind the swap
        # wavefront, and the swap flag rides the skewed stream of each row.
        load = _taps(m, self.load, C, "lskew") if db else [self.load] * C
        swap = _taps(m, self.swap, R, "swskew") if db else None
        psum = list(self.psum_data)
        stat_above = list(self.stat_data)
        if self._cfg.spatial:
            psum.append(self.sanity_psum)
            stat_above.append(self.sanity_stat)
        above = [delay(m, psum[c], c + 1, f"pskew{c}") for c in range(C)]
        for r in range(R):
            for c in range(C):
                extra = {"swap_in": swap[r]} if db else {}
                out = self._instantiate(m, r, c, {
                    "load": load[c], "stat_in": stat_above[c], "move_in": left[r],
                    "psum_in": above[c], **extra, **self._fault_inputs(r, c)})
                left[r], above[c], stat_above[c] = out["move_out"], out["psum_out"], out["stat_out"]
                if db:
                    swap[r] = out["swap_out"]
        return above

    def _elaborate_os(self, m, R, C):
        # R, C: the rows and columns built (the sanity row and column included).
        acts = list(self.act_data) + ([self.sanity_act] if self._cfg.temporal else [])
        weights = list(self.weight_data) + ([self.sanity_weight] if self._cfg.spatial else [])
        left = [delay(m, acts[r], r, f"skew{r}") for r in range(R)]
        last = [delay(m, self.last, r, f"lskew{r}") for r in range(R)]
        above = [delay(m, weights[c], c, f"wskew{c}") for c in range(C)]
        drain = [Signal(signed(self._cfg.acc_bits), name=f"drain_top{c}") for c in range(C)]
        for r in range(R):
            for c in range(C):
                out = self._instantiate(m, r, c, {
                    "act_in": left[r], "last_in": last[r], "weight_in": above[c],
                    "drain_in": drain[c], **self._fault_inputs(r, c)})
                left[r], last[r] = out["act_out"], out["last_out"]
                above[c], drain[c] = out["weight_out"], out["drain_out"]
        return drain
