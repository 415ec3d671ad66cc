"""Flow-controlling MAC units and the array built from them (Ozen 2023 §12.5.2, Fig. 12.6).

A complementary-sparse layer (see :mod:`golden.flow`) is stored packed: each weight carries
*extension bits* giving its position inside its group.  The PE uses them to steer the data
through an otherwise dense weight-stationary array:

* **shortened** (Fig. 12.6-b, Ozen 2023 §12.5.2): the PE receives ``l`` activations and an input
  multiplexer picks the one its weight belongs to;
* **superposition** (Fig. 12.6-a, Ozen 2023 §12.5.2): the PE receives ``k`` partial sums, a
  multiplexer picks the one to update, the adder adds the product, and a demultiplexer puts the
  sum back in its lane; the other ``k − 1`` lanes are forwarded unchanged;
* **two-dimensional** (Fig. 12.6-c, Ozen 2023 §12.5.2): both, ``√g`` lanes each, the two
  selects in separate fields of the extension bits.

A dense layer runs with every extension at 0 (fixed multiplexer positions, Ozen 2023 §12.5.2) and a
layer with a smaller group uses a subset of the lanes, so one array serves every group size
up to the one it was built for.

Why weight-stationary only: the extension bits belong to the weight, and in WS the weight is
what the PE holds, so the multiplexers are set once per tile and stay still while activations
stream (the seed's power argument, Ozen 2023 §12.7.3).  In IS or OS the weights stream, and every
streamed weight would need its extension bits, lanes and multiplexer settings to travel with
it; the seed describes the WS arrangement only.

Wiring choices (the seed leaves them open):

* activations are **broadcast** along a row (Ozen 2023 §12.7.3: "activations can be broadcast to the
  entire row without requiring an individual activation register at each MAC unit"), after
  ``r`` skew registers at the left edge of row r; the ``l`` lanes of a row share those
  registers, so no PE holds an activation register;
* partial sums move down a column through one register per PE and lane (the superposition
  "accumulation registers between neighbouring MAC units", Ozen 2023 §12.7.3); because every column
  sees a vector in the same cycle, the columns finish together and need no deskew.

Timing of :class:`FlowAccelerator` (cycle t = the cycle a vector is on ``act_data``):
row r computes vector t in cycle t + r; the partial sums reach ``acc_out``/``q_out`` after
the output stage in cycle **t + R + 1** (latency R + 1, one vector per cycle).  ``load``
shifts ``weight_data``/``ext_data`` into the top row and every weight one row down (R cycles
per tile, row R−1's weight first); a load must wait until the last vector of the previous tile
has passed the bottom row (see :func:`golden.flow.build_flow_program`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amaranth import ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.config import AcceleratorConfig, flow_lanes
from ftaccel.errors import ConfigError

from . import emit
from .array import delay
from .output_stage import SHIFT_WIDTH, OutputStage

__all__ = ["FLOW_GENERATED_FILES", "FlowPE", "FlowArray", "FlowAccelerator", "flow_pe_name",
           "flow_design_texts", "generate_flow", "FLOW_TOP_NAME", "ext_bits", "mux_tree"]

FLOW_TOP_NAME = "flow_accelerator"


def ext_bits(n: int) -> int:
    """Extension bits selecting one of ``n`` lanes: ``ceil(log2 n)``."""
    return (n - 1).bit_length()


def flow_pe_name(lanes_in: int, lanes_out: int, a_width: int, w_width: int,
                 acc_width: int) -> str:
    """Verilog module name of a flow-controlling PE (the dense MAC is ``l1k1``)."""
    return f"flow_pe_l{lanes_in}k{lanes_out}_a{a_width}w{w_width}p{acc_width}"


def mux_tree(values: list, sel) -> object:
    """``values[sel]`` as a binary tree of 2-to-1 multiplexers, one level per select bit.

    ``len(values)`` is a power of two.  Continuous assignments, not a ``case`` block: Icarus never
    evaluates an ``always @*`` whose inputs keep their reset values, and the select of a lane that
    carries only zeros would read X.
    """
    level = list(values)
    for b in range(ext_bits(len(values))):
        level = [Mux(sel[b], level[i + 1], level[i]) for i in range(0, len(level), 2)]
    return level[0]


class FlowPE(wiring.Component):
    """Flow-controlling weight-stationary MAC unit (Ozen 2023 Fig. 12.6).

    It has ``l`` activation and ``k`` partial-sum lanes; ``l = k = 1`` is the plain MAC the
    overheads are measured on.

    Parameters
    ----------
    lanes_in, lanes_out : int
        ``l`` and ``k`` (powers of two, 1 … 256): shortened ``(g, 1)``, superposition
        ``(1, g)``, two-dimensional ``(√g, √g)``.
    a_width, w_width, acc_width : int
        Activation, weight and partial-sum widths.

    Ports: ``load`` (1), ``weight_in``/``weight_out`` (w_width), ``ext_in``/``ext_out``
    (``ceil(log2 l) + ceil(log2 k)`` bits: row select low, column select high; absent when 0),
    ``act`` (l × a_width, from the row's broadcast), ``psum_in``/``psum_out``
    (k × acc_width).

    Behaviour: ``psum_out[j] <= psum_in[j] + (j == col_sel ? act[row_sel] · weight : 0)``,
    built as the seed draws it: one multiplier, one adder, an l-to-1 input multiplexer, a
    k-to-1 partial-sum multiplexer and k 2-to-1 write-back multiplexers.  While ``load`` is
    high the weight and extension registers take ``weight_in``/``ext_in`` (a shift chain down
    the column through ``weight_out``/``ext_out``).  Latency one cycle; one MAC per cycle.
    """

    def __init__(self, *, lanes_in: int, lanes_out: int, a_width: int, w_width: int,
                 acc_width: int):
        for name, v in (("lanes_in", lanes_in), ("lanes_out", lanes_out)):
            if (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 256
                    or v & (v - 1)):
                raise ConfigError(name, v, "a power of two from 1 to 256")
        for name, v, lo, hi in (("a_width", a_width, 2, 16), ("w_width", w_width, 2, 16),
                                ("acc_width", acc_width, a_width + w_width, 60)):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ConfigError(name, v, f"an integer from {lo} to {hi}")
        self._l, self._k = lanes_in, lanes_out
        self._a, self._w, self._p = a_width, w_width, acc_width
        self._bl, self._bk = ext_bits(lanes_in), ext_bits(lanes_out)
        members = {
            "load": In(1),
            "weight_in": In(signed(w_width)), "weight_out": Out(signed(w_width)),
            "act": In(signed(a_width)).array(lanes_in),
            "psum_in": In(signed(acc_width)).array(lanes_out),
            "psum_out": Out(signed(acc_width)).array(lanes_out),
        }
        if self.ext_width:
            members.update({"ext_in": In(self.ext_width), "ext_out": Out(self.ext_width)})
        super().__init__(members)

    lanes_in = property(lambda self: self._l)
    lanes_out = property(lambda self: self._k)
    ext_width = property(lambda self: self._bl + self._bk)

    @property
    def module_name(self) -> str:
        """The module name, unique per lane counts and widths."""
        return flow_pe_name(self._l, self._k, self._a, self._w, self._p)

    def elaborate(self, platform):
        """The PE's netlist."""
        m = Module()
        weight_reg = Signal(signed(self._w), name="weight_reg")
        m.d.sync += weight_reg.eq(Mux(self.load, self.weight_in, weight_reg))
        m.d.comb += self.weight_out.eq(weight_reg)
        row_sel = col_sel = 0
        if self.ext_width:
            ext_reg = Signal(self.ext_width, name="ext_reg")
            m.d.sync += ext_reg.eq(Mux(self.load, self.ext_in, ext_reg))
            m.d.comb += self.ext_out.eq(ext_reg)
            row_sel = ext_reg[:self._bl] if self._bl else 0
            col_sel = ext_reg[self._bl:] if self._bk else 0
        # Input multiplexer (Fig. 12.6-b): the activation this weight belongs to.
        act = mux_tree(list(self.act), row_sel) if self._l > 1 else self.act[0]
        act_sel = Signal(signed(self._a), name="act_sel")
        m.d.comb += act_sel.eq(act)
        product = Signal(signed(self._a + self._w), name="product")
        m.d.comb += product.eq(act_sel * weight_reg)
        psum_reg = [Signal(signed(self._p), name=f"psum_reg{j}") for j in range(self._k)]
        if self._k == 1:
            m.d.sync += psum_reg[0].eq(self.psum_in[0] + product)
        else:
            # Partial-sum multiplexer, one adder, write-back (Fig. 12.6-a): only the selected
            # lane is updated, the others pass to the PE below unchanged.
            psum_sel = Signal(signed(self._p), name="psum_sel")
            total = Signal(signed(self._p), name="total")
            m.d.comb += [psum_sel.eq(mux_tree(list(self.psum_in), col_sel)),
                         total.eq(psum_sel + product)]
            for j in range(self._k):
                m.d.sync += psum_reg[j].eq(Mux(col_sel == j, total, self.psum_in[j]))
        for j in range(self._k):
            m.d.comb += self.psum_out[j].eq(psum_reg[j])
        return m


def _check_flow_config(config) -> None:
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    if config.flow == "none":
        raise ConfigError("flow", config.flow, "shortened, superposition or twodim for a "
                          "flow-controlling array")


class FlowArray(wiring.Component):
    """R×C array of :class:`FlowPE` (WS), activations broadcast along rows.

    See the module docstring. Ports: ``load`` (1), ``weight_data`` (C × w), ``ext_data`` (C × ext
    bits), ``act_data`` (R·l × a: lane j of row r at index ``r·l + j``), ``psum_data`` (C·k × acc:
    lane j of column c at ``c·k + j``), ``out`` (C·k × acc).  Latency R cycles from
    ``act_data``/``psum_data`` to ``out``.
    """

    def __init__(self, config: AcceleratorConfig):
        _check_flow_config(config)
        self._cfg = config
        L, K = flow_lanes(config.flow, config.flow_group)
        self._pe = FlowPE(lanes_in=L, lanes_out=K, a_width=config.a_width,
                          w_width=config.w_width, acc_width=config.acc_bits)
        R, C, P = config.rows, config.cols, config.acc_bits
        super().__init__({
            "load": In(1),
            "weight_data": In(signed(config.w_width)).array(C),
            "ext_data": In(self._pe.ext_width).array(C),
            "act_data": In(signed(config.a_width)).array(R * L),
            "psum_data": In(signed(P)).array(C * K),
            "out": Out(signed(P)).array(C * K),
        })

    pe = property(lambda self: self._pe)

    def elaborate(self, platform):
        """The array's netlist."""
        m = Module()
        R, C = self._cfg.rows, self._cfg.cols
        L, K = self._pe.lanes_in, self._pe.lanes_out
        # Row r's lanes wait r cycles, then reach every PE of the row in the same cycle.
        rows = [[delay(m, self.act_data[r * L + j], r, f"skew{r}_{j}") for j in range(L)]
                for r in range(R)]
        above = [[self.psum_data[c * K + j] for j in range(K)] for c in range(C)]
        weight = list(self.weight_data)
        ext = list(self.ext_data)
        for r in range(R):
            for c in range(C):
                ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal(), "i_load": self.load,
                         "i_weight_in": weight[c]}
                for j in range(L):
                    ports[f"i_act__{j}"] = rows[r][j]
                for j in range(K):
                    ports[f"i_psum_in__{j}"] = above[c][j]
                w_out = Signal(signed(self._cfg.w_width), name=f"pe_{r}_{c}_weight_out")
                ports["o_weight_out"] = w_out
                if self._pe.ext_width:
                    e_out = Signal(self._pe.ext_width, name=f"pe_{r}_{c}_ext_out")
                    ports["i_ext_in"], ports["o_ext_out"] = ext[c], e_out
                    ext[c] = e_out
                outs = [Signal(signed(self._cfg.acc_bits), name=f"pe_{r}_{c}_psum_out{j}")
                        for j in range(K)]
                for j in range(K):
                    ports[f"o_psum_out__{j}"] = outs[j]
                m.submodules[f"pe_{r}_{c}"] = Instance(self._pe.module_name, **ports)
                weight[c], above[c] = w_out, outs
        for c in range(C):
            for j in range(K):
                m.d.comb += self.out[c * K + j].eq(above[c][j])
        return m


class FlowAccelerator(wiring.Component):
    """The flow-controlling top.

    :class:`FlowArray` followed by the output stage over its C·k output lanes, and a valid flag.

    Ports: those of the array (``psum_data`` is named ``psum_in`` here), ``in_valid`` (1),
    ``acc_out`` (C·k × acc), ``out_valid`` (1); with the output stage also ``bias`` (C·k ×
    acc), ``relu`` (1), ``shift`` (6 bits), ``q_out`` (C·k × a_width).  Latency **R + 1**.
    """

    def __init__(self, config: AcceleratorConfig):
        _check_flow_config(config)
        self._cfg = config
        self._array = FlowArray(config)
        L, K = self._array.pe.lanes_in, self._array.pe.lanes_out
        R, C, P = config.rows, config.cols, config.acc_bits
        members = {
            "load": In(1),
            "weight_data": In(signed(config.w_width)).array(C),
            "ext_data": In(self._array.pe.ext_width).array(C),
            "in_valid": In(1),
            "act_data": In(signed(config.a_width)).array(R * L),
            "psum_in": In(signed(P)).array(C * K),
            "acc_out": Out(signed(P)).array(C * K),
            "out_valid": Out(1),
        }
        if config.output_stage:
            members.update({"bias": In(signed(P)).array(C * K), "relu": In(1),
                            "shift": In(SHIFT_WIDTH),
                            "q_out": Out(signed(config.a_width)).array(C * K)})
        super().__init__(members)

    config = property(lambda self: self._cfg)
    array = property(lambda self: self._array)

    @property
    def latency(self) -> int:
        """The top's latency in cycles, ``rows + 1``."""
        return self._cfg.rows + 1

    def elaborate(self, platform):
        """The top's netlist."""
        m = Module()
        cfg, arr = self._cfg, self._array
        lanes = len(self.acc_out)
        m.submodules.array = arr
        m.submodules.output_stage = out = OutputStage(
            lanes=lanes, acc_width=cfg.acc_bits, out_width=cfg.a_width,
            requant=cfg.output_stage)
        m.d.comb += [arr.load.eq(self.load), out.in_valid.eq(
            delay(m, self.in_valid, cfg.rows, "valid"))]
        for c in range(cfg.cols):
            m.d.comb += [arr.weight_data[c].eq(self.weight_data[c]),
                         arr.ext_data[c].eq(self.ext_data[c])]
        for i in range(len(self.act_data)):
            m.d.comb += arr.act_data[i].eq(self.act_data[i])
        for i in range(lanes):
            m.d.comb += [arr.psum_data[i].eq(self.psum_in[i]), out.acc_in[i].eq(arr.out[i]),
                         self.acc_out[i].eq(out.acc_out[i])]
            if cfg.output_stage:
                m.d.comb += [out.bias[i].eq(self.bias[i]), self.q_out[i].eq(out.q_out[i])]
        if cfg.output_stage:
            m.d.comb += [out.relu.eq(self.relu), out.shift.eq(self.shift)]
        m.d.comb += self.out_valid.eq(out.out_valid)
        return m


def flow_design_texts(cfg: AcceleratorConfig) -> tuple[str, str]:
    """RTLIL and Verilog of the flow-controlling top and its PE module (with the header)."""
    top = FlowAccelerator(cfg)
    il, v = emit.design_texts([(top.array.pe, top.array.pe.module_name), (top, FLOW_TOP_NAME)])
    head = emit.header(cfg.to_dict(), FLOW_TOP_NAME)
    return head.replace("//", "#") + il, head + v


@dataclass(frozen=True)
class FlowGenerated:
    """Files written by :func:`generate_flow`."""

    verilog: Path
    rtlil: Path
    config_json: Path
    top: str
    pe_module: str


#: The files :func:`generate_flow` writes into its folder.
FLOW_GENERATED_FILES = (f"{FLOW_TOP_NAME}.il", f"{FLOW_TOP_NAME}.v", "config.json")


def generate_flow(cfg: AcceleratorConfig, out_dir: str | Path) -> FlowGenerated:
    """Write ``flow_accelerator.v``, its RTLIL twin and ``config.json`` into ``out_dir``."""
    out = Path(out_dir)
    il, text = flow_design_texts(cfg)  # generate fully before writing anything
    L, K = flow_lanes(cfg.flow, cfg.flow_group)
    i = emit.write_text_atomic(out / f"{FLOW_TOP_NAME}.il", il)
    v = emit.write_text_atomic(out / f"{FLOW_TOP_NAME}.v", text)
    j = emit.write_text_atomic(out / "config.json", cfg.to_json())
    return FlowGenerated(verilog=v, rtlil=i, config_json=j, top=FLOW_TOP_NAME,
                         pe_module=flow_pe_name(L, K, cfg.a_width, cfg.w_width, cfg.acc_bits))
