"""The composed accelerator top: systolic array, output stage and optional fault hooks.

Later reliability units (checksums, median, anomaly suppression, bypass, correction) join
this top as configuration options; each is a submodule with a fixed name (``checksum``,
``median``, ``afd``, ``bypass``, ``lcu``…) so area reports can attribute logic to units.

Top-level ports (module ``accelerator``; array ports are ``name__i`` in Verilog):

WS / IS
    ``load``, ``load_data[C]`` (stationary operand, see :mod:`rtl_gen.array`),
    ``in_valid``, ``in_data[R]`` (streamed operand), ``psum_in[C]`` (partial sums entering the
    top of the columns: the previous K-tile's result, or a bias), then the common ports.
OS
    ``act_in[R]``, ``weight_in[C]``, ``in_last`` (final step of a product), then the common ports.
Common
    ``bias[C]``, ``relu``, ``shift`` (output stage, if configured); ``out_valid``,
    ``acc_out[C]`` (full-width sums), ``q_out[C]`` (requantised, if configured); the
    ``fault_*`` ports of :mod:`rtl_gen.fault` if ``fault_hooks``.

Latency (cycles from the input vector to its output vector, :func:`latency`):
WS / IS: **R + C + 1**; OS: the first of the R result rows appears **R + C + 2** cycles after
the cycle carrying ``in_last`` and the others follow on consecutive cycles (row R−1 first).
Throughput: one vector per cycle in and out, no bubble in steady state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import emit
from .array import SystolicArray, delay
from .config import AcceleratorConfig
from .fault import FAULT_CONTROL_PORTS, FaultController
from .output_stage import SHIFT_WIDTH, OutputStage
from .pe import pe_module_name

__all__ = ["Accelerator", "Generated", "generate", "verilog_text", "latency", "TOP_NAME"]

TOP_NAME = "accelerator"


def latency(cfg: AcceleratorConfig) -> int:
    """Input-to-output latency in cycles (OS: from ``in_last`` to the first result row)."""
    return cfg.rows + cfg.cols + (2 if cfg.dataflow == "os" else 1)


class Accelerator(wiring.Component):
    """Systolic array + output stage (+ fault controller); see the module docstring."""

    def __init__(self, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self._cfg = config
        self._array = SystolicArray(config)
        R, C = config.rows, config.cols
        P = config.acc_bits
        if config.dataflow == "os":
            members = {
                "act_in": In(signed(config.a_width)).array(R),
                "weight_in": In(signed(config.w_width)).array(C),
                "in_last": In(1),
            }
        else:
            members = {
                "load": In(1),
                "load_data": In(signed(config.stationary_width)).array(C),
                "in_valid": In(1),
                "in_data": In(signed(config.stream_width)).array(R),
                "psum_in": In(signed(P)).array(C),
            }
        if config.output_stage:
            members.update({"bias": In(signed(P)).array(C), "relu": In(1),
                            "shift": In(SHIFT_WIDTH)})
        if config.fault_hooks:
            members.update({name: In(unsigned(w)) for name, w in FAULT_CONTROL_PORTS.items()})
        members.update({"out_valid": Out(1), "acc_out": Out(signed(P)).array(C)})
        if config.output_stage:
            members["q_out"] = Out(signed(config.a_width)).array(C)
        super().__init__(members)

    @property
    def config(self) -> AcceleratorConfig:
        return self._cfg

    @property
    def array(self) -> SystolicArray:
        return self._array

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        R, C = cfg.rows, cfg.cols
        m.submodules.array = array = self._array
        m.submodules.output_stage = ostage = OutputStage(
            cols=C, acc_width=cfg.acc_bits, out_width=cfg.a_width, requant=cfg.output_stage)

        if cfg.dataflow == "os":
            for r in range(R):
                m.d.comb += array.act_data[r].eq(self.act_in[r])
            for c in range(C):
                m.d.comb += array.weight_data[c].eq(self.weight_in[c])
            m.d.comb += array.last.eq(self.in_last)
            # The R result rows leave the array on consecutive cycles starting array.latency
            # cycles after in_last; a counter stretches the delayed flag over those R cycles.
            first = delay(m, self.in_last, array.latency, "last_to_out")
            remaining = Signal(range(R + 1))
            valid = Signal()
            with m.If(first):
                m.d.sync += remaining.eq(R - 1)
            with m.Elif(remaining != 0):
                m.d.sync += remaining.eq(remaining - 1)
            m.d.comb += valid.eq(first | (remaining != 0))
        else:
            m.d.comb += array.load.eq(self.load)
            for c in range(C):
                m.d.comb += [array.stat_data[c].eq(self.load_data[c]),
                             array.psum_data[c].eq(self.psum_in[c])]
            for r in range(R):
                m.d.comb += array.stream_data[r].eq(self.in_data[r])
            valid = delay(m, self.in_valid, array.latency, "valid")

        for c in range(C):
            m.d.comb += ostage.acc_in[c].eq(array.out[c])
        m.d.comb += [ostage.in_valid.eq(valid), self.out_valid.eq(ostage.out_valid)]
        for c in range(C):
            m.d.comb += self.acc_out[c].eq(ostage.acc_out[c])
        if cfg.output_stage:
            m.d.comb += [ostage.relu.eq(self.relu), ostage.shift.eq(self.shift)]
            for c in range(C):
                m.d.comb += [ostage.bias[c].eq(self.bias[c]), self.q_out[c].eq(ostage.q_out[c])]

        if cfg.fault_hooks:
            m.submodules.fault = fc = FaultController(rows=R, cols=C)
            for name in FAULT_CONTROL_PORTS:
                m.d.comb += getattr(fc, name).eq(getattr(self, name))
            m.d.comb += [array.fault_row_hit.eq(fc.row_hit), array.fault_col_hit.eq(fc.col_hit),
                         array.fault_reg_hit.eq(fc.reg_hit), array.fault_bit.eq(fc.bit),
                         array.fault_mode.eq(fc.mode)]
        return m


def verilog_text(cfg: AcceleratorConfig) -> str:
    """The whole design as one Verilog text: the PE module, then the top and its submodules."""
    top = Accelerator(cfg)
    pe = top.array.pe
    # The PE is emitted on its own and instantiated by name, so elaborate it here too.
    body = emit.module_text(pe, pe.module_name) + "\n" + emit.module_text(top, TOP_NAME)
    return emit.header(cfg.to_dict(), TOP_NAME) + body


@dataclass(frozen=True)
class Generated:
    """Files written by :func:`generate`."""

    verilog: Path
    config_json: Path
    top: str
    pe_module: str


def generate(cfg: AcceleratorConfig, out_dir: str | Path) -> Generated:
    """Write ``accelerator.v`` and ``config.json`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    text = verilog_text(cfg)  # generate fully before writing anything
    v = emit.write_text_atomic(out / f"{TOP_NAME}.v", text)
    j = emit.write_text_atomic(out / "config.json", cfg.to_json())
    return Generated(verilog=v, config_json=j, top=TOP_NAME,
                     pe_module=pe_module_name(cfg.dataflow, cfg.a_width, cfg.w_width,
                                              cfg.acc_bits, cfg.fault_hooks))
