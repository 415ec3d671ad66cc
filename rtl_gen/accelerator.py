"""The composed accelerator top: systolic array, output stage and optional fault hooks.

Later reliability units (checksums, median, anomaly suppression, bypass, correction) join
this top as configuration options; each is a submodule with a fixed name (``sanity_check``,
``median``, ``afd``, ``bypass``, ``fault``…) so area reports can attribute logic to units.

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

Optional units (configuration fields):
    ``bypass`` — ``bypass_we``, ``bypass_row``, ``bypass_wdata[C bits]`` write the PE bypass map
    one row per cycle, ``bypass_rdata`` reads it back (:mod:`rtl_gen.bypass`).
    ``afd`` — anomaly suppression of the streamed activations (WS), controls ``afd_shift``,
    ``afd_gates``, ``afd_mode``, ``afd_enable`` (:mod:`rtl_gen.afd`).
    ``median`` — Median-3/5 filter of the streamed activations (WS), ``median_enable``.
    ``checksum="spatial"`` — Sanity-Check (WS): an extra PE column loaded through
    ``sanity_load_data`` (the negated row sums of the weight tile, ``cfg.sanity_width`` bits),
    ``sanity_psum_in``/``sanity_acc_out`` for its K-tile partial sums, and a checker over the
    C + 1 outputs (:class:`rtl_gen.checksum.SpatialChecker`, modulo 2**acc_bits): inputs
    ``checksum_threshold``, ``checksum_clear``; outputs ``checksum_error`` (this output vector
    failed), ``checksum_alarm`` (sticky), ``checksum_first`` (index of the first failing
    vector, counting valid output vectors), ``checksum_syndrome``.  The extra column adds one
    cycle of latency (000 L1249).
    Input units sit between the ports and the skew registers; every other array input is
    delayed by the same number of stages, so the array sees them aligned.

Latency (cycles from the input vector to its output vector, :func:`latency`):
WS / IS: **R + C + 1**; OS: the first of the R result rows appears **R + C + 2** cycles after
the cycle carrying ``in_last`` and the others follow on consecutive cycles (row R−1 first);
plus one cycle per input unit.
Throughput: one vector per cycle in and out, no bubble in steady state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import emit
from .afd import AnomalySuppression, shift_port_width
from .array import SystolicArray, delay
from .bypass import BypassMap
from .checksum import SanityInputGenerator, SpatialChecker, TemporalChecker, spatial_check_width
from .config import AcceleratorConfig
from .fault import FAULT_CONTROL_PORTS, FaultController
from .output_stage import SHIFT_WIDTH, OutputStage
from .pe import pe_module_name

__all__ = ["Accelerator", "Generated", "generate", "verilog_text", "TOP_NAME"]

TOP_NAME = "accelerator"


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
        # The correction controller is built here, like the array, so that its port shapes
        # size the top's ports; elaborate() adds it as the submodule `lcu`.
        self._lcu = ctl = _controller(config) if config.lcu else None
        if ctl is not None:
            members.update({
                "split": In(C), "lcu_capture": In(1), "lcu_cap_clear": In(1),
                "lcu_pair_we": In(1), "lcu_pair_index": In(ctl.signature.members[
                    "pair_wr_index"].shape),
                "lcu_pair_a": In(unsigned(ctl.addr_bits)), "lcu_pair_b": In(unsigned(
                    ctl.addr_bits)),
                "lcu_n_pairs": In(ctl.signature.members["n_pairs"].shape), "lcu_start": In(1),
                "lcu_rd_row": In(unsigned(ctl.row_bits)),
                "lcu_busy": Out(1), "lcu_done": Out(1), "lcu_cap_row": Out(unsigned(
                    ctl.row_bits)),
                "lcu_rd_data": Out(signed(config.a_width)).array(C),
            })
        if config.fault_hooks:
            members.update({name: In(unsigned(w)) for name, w in FAULT_CONTROL_PORTS.items()})
        if config.bypass:
            members.update({"bypass_we": In(1), "bypass_row": In(range(max(R, 2))),
                            "bypass_wdata": In(C), "bypass_rdata": Out(C)})
        if config.afd:
            members.update({"afd_shift": In(signed(shift_port_width(config.a_width))),
                            "afd_gates": In(2), "afd_mode": In(1), "afd_enable": In(1)})
        if config.median:
            members["median_enable"] = In(1)
        if config.checksum != "none":
            members["checksum_clear"] = In(1)
        if config.spatial:
            cw = spatial_check_width(P, C + 1, P)
            members.update({
                "sanity_load_data": In(signed(config.sanity_width)),
                "sanity_psum_in": In(signed(P)),
                "checksum_threshold": In(unsigned(cw)),
                "sanity_acc_out": Out(signed(P)), "checksum_error": Out(1),
                "checksum_alarm": Out(1), "checksum_first": Out(unsigned(16)),
                "checksum_syndrome": Out(signed(cw)),
            })
        if config.temporal:
            k = config.temporal_check_bits
            lanes = config.array_cols  # the sanity column is checked over time too
            members.update({
                "temporal_batch": In(unsigned(config.temporal_batch_bits)),
                "temporal_last": In(1),
                "temporal_expected": In(signed(k)).array(lanes),
                "temporal_threshold": In(unsigned(k)),
                "temporal_checked": Out(1), "temporal_error": Out(1),
                "temporal_lanes": Out(unsigned(lanes)), "temporal_alarm": Out(1),
                "temporal_first": Out(unsigned(16)), "temporal_overrun": Out(1),
            })
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
            cols=C, acc_width=cfg.acc_bits, out_width=cfg.a_width, requant=cfg.output_stage,
            split=cfg.lcu)

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
            stages = cfg.input_stages
            stream = self._input_units(m, list(self.in_data))
            # Everything else the array reads is delayed as much as the input units delay the
            # streamed vector, so the array sees the same alignment with or without them.
            m.d.comb += array.load.eq(delay(m, self.load, stages, "load_stage"))
            for c in range(C):
                m.d.comb += [
                    array.stat_data[c].eq(delay(m, self.load_data[c], stages, f"ld{c}_stage")),
                    array.psum_data[c].eq(delay(m, self.psum_in[c], stages, f"ps{c}_stage"))]
            if cfg.spatial:
                m.d.comb += [
                    array.sanity_stat.eq(delay(m, self.sanity_load_data, stages, "sld_stage")),
                    array.sanity_psum.eq(delay(m, self.sanity_psum_in, stages, "sps_stage"))]
            if cfg.temporal:
                stream, in_valid, in_sanity = self._sanity_inputs(m, stream)
                arr_valid = delay(m, in_valid, array.latency, "valid")
                sanity = delay(m, in_sanity, array.latency, "sanity")
                # Sanity vectors are checked, never results: out_valid marks data vectors.
                valid = Signal()
                m.d.comb += valid.eq(arr_valid & ~sanity)
            else:
                valid = delay(m, self.in_valid, array.latency + stages, "valid")
            for r in range(R):
                m.d.comb += array.stream_data[r].eq(stream[r])

        for c in range(C):
            m.d.comb += ostage.acc_in[c].eq(array.out[c])
        m.d.comb += [ostage.in_valid.eq(valid), self.out_valid.eq(ostage.out_valid)]
        for c in range(C):
            m.d.comb += self.acc_out[c].eq(ostage.acc_out[c])
        if cfg.output_stage:
            m.d.comb += [ostage.relu.eq(self.relu), ostage.shift.eq(self.shift)]
            for c in range(C):
                m.d.comb += [ostage.bias[c].eq(self.bias[c]), self.q_out[c].eq(ostage.q_out[c])]

        if cfg.lcu:
            m.d.comb += ostage.split.eq(self.split)
            self._correction(m, ostage)

        if cfg.temporal:
            # Beside the spatial checker, on the same raw sums (Fig. 6.9, yellow): the batch's
            # closing vector is the generator's out_sanity delayed like the data.
            m.submodules.sanity_temporal = tchk = TemporalChecker(
                width=cfg.acc_bits, n_lanes=cfg.array_cols, batch_bits=cfg.temporal_batch_bits,
                residue_bits=cfg.temporal_check_bits)
            lanes_out = list(array.out) + ([array.sanity_out] if cfg.spatial else [])
            for u, lane in enumerate(lanes_out):
                m.d.comb += [tchk.data[u].eq(lane),
                             tchk.expected[u].eq(self.temporal_expected[u])]
            m.d.comb += [
                tchk.valid.eq(arr_valid), tchk.last.eq(sanity),
                tchk.threshold.eq(self.temporal_threshold), tchk.clear.eq(self.checksum_clear),
                self.temporal_checked.eq(tchk.checked), self.temporal_error.eq(tchk.error),
                self.temporal_lanes.eq(tchk.lane_errors), self.temporal_alarm.eq(tchk.alarm),
                self.temporal_first.eq(tchk.first_index)]

        if cfg.spatial:
            # The checker sees the raw sums of the C + 1 columns in the cycle the output stage
            # samples them, so its flags come out aligned with out_valid / acc_out.
            m.submodules.sanity_check = chk = SpatialChecker(
                width=cfg.acc_bits, n=C + 1, residue_bits=cfg.acc_bits)
            for c in range(C):
                m.d.comb += chk.data[c].eq(array.out[c])
            m.d.comb += [
                chk.data[C].eq(array.sanity_out), chk.valid.eq(valid), chk.expected.eq(0),
                chk.threshold.eq(self.checksum_threshold), chk.clear.eq(self.checksum_clear),
                self.checksum_error.eq(chk.error), self.checksum_alarm.eq(chk.alarm),
                self.checksum_first.eq(chk.first_index),
                self.checksum_syndrome.eq(chk.checksum)]
            m.d.sync += self.sanity_acc_out.eq(array.sanity_out)

        if cfg.bypass:
            m.submodules.bypass = bp = BypassMap(rows=R, cols=C)
            m.d.comb += [bp.we.eq(self.bypass_we), bp.row.eq(self.bypass_row),
                         bp.wdata.eq(self.bypass_wdata), self.bypass_rdata.eq(bp.rdata),
                         array.bypass_map.eq(bp.map)]

        if cfg.fault_hooks:
            m.submodules.fault = fc = FaultController(rows=R, cols=cfg.array_cols)
            for name in FAULT_CONTROL_PORTS:
                m.d.comb += getattr(fc, name).eq(getattr(self, name))
            m.d.comb += [array.fault_row_hit.eq(fc.row_hit), array.fault_col_hit.eq(fc.col_hit),
                         array.fault_reg_hit.eq(fc.reg_hit), array.fault_bit.eq(fc.bit),
                         array.fault_mode.eq(fc.mode)]
        return m


    def _input_units(self, m: Module, lanes: list) -> list:
        """Chain the configured input units (each one registered stage) over ``lanes``."""
        cfg = self._cfg
        if cfg.afd:
            m.submodules.afd = afd = AnomalySuppression(width=cfg.a_width, n=cfg.rows)
            m.d.comb += [afd.shift.eq(self.afd_shift), afd.gates.eq(self.afd_gates),
                         afd.mode.eq(self.afd_mode), afd.enable.eq(self.afd_enable),
                         afd.in_valid.eq(1)]
            for r, lane in enumerate(lanes):
                m.d.comb += afd.act_in[r].eq(lane)
            lanes = list(afd.act_out)
        if cfg.median:
            from .median import MedianArray

            m.submodules.median = med = MedianArray(width=cfg.a_width, n=cfg.rows,
                                                    window=cfg.median,
                                                    variant=cfg.median_variant)
            m.d.comb += [med.enable.eq(self.median_enable), med.in_valid.eq(1)]
            for r, lane in enumerate(lanes):
                m.d.comb += med.data_in[r].eq(lane)
            lanes = list(med.data_out)
        return lanes

    def _correction(self, m: Module, ostage) -> None:
        """Output buffer + LCU correction controller beside the output stage (SPEC §5).

        Every output vector with ``lcu_capture`` set is captured (one row per vector, rows
        counted from ``lcu_cap_clear``); after the layer, ``lcu_start`` corrects the loaded
        pairs in place; the host reads rows back through ``lcu_rd_row`` → ``lcu_rd_data``
        (one cycle later).  Read data issued while the controller is busy is unspecified in
        the memory; the top shows 0 for it so that every output port is deterministic.
        """
        m.submodules.lcu = ctl = self._lcu
        m.d.comb += [
            ctl.cap_en.eq(ostage.out_valid & self.lcu_capture),
            ctl.cap_clear.eq(self.lcu_cap_clear),
            ctl.buf_wr_en.eq(0),
            ctl.pair_wr_en.eq(self.lcu_pair_we), ctl.pair_wr_index.eq(self.lcu_pair_index),
            ctl.pair_wr_a.eq(self.lcu_pair_a), ctl.pair_wr_b.eq(self.lcu_pair_b),
            ctl.n_pairs.eq(self.lcu_n_pairs), ctl.start.eq(self.lcu_start),
            ctl.buf_rd_row.eq(self.lcu_rd_row),
            self.lcu_busy.eq(ctl.busy), self.lcu_done.eq(ctl.done),
            self.lcu_cap_row.eq(ctl.cap_row),
        ]
        read_ok = Signal(init=1)  # the read issued last cycle was the host's
        m.d.sync += read_ok.eq(~ctl.busy)
        for c in range(self._cfg.cols):
            m.d.comb += [ctl.cap_data[c].eq(ostage.q_out[c]),
                         self.lcu_rd_data[c].eq(Mux(read_ok, ctl.buf_rd_rows[c], 0))]

    def _sanity_inputs(self, m: Module, lanes: list):
        """The temporal checksum's sanity-input generator, the last input stage (Fig. 6.9).

        It sits after the filters so that the sanity vector is the negated sum of exactly the
        vectors the array multiplies.  Its controls are delayed like the streamed vector so
        that they reach it with the vector they belong to.  Returns the streamed lanes, their
        valid flag and the sanity flag at the array's input.
        """
        cfg = self._cfg
        before = cfg.input_stages - 1  # stages in front of the generator
        m.submodules.sanity_input = gen = SanityInputGenerator(
            width=cfg.a_width, n_lanes=cfg.rows, batch_bits=cfg.temporal_batch_bits,
            out_width=cfg.stream_width)
        for r, lane in enumerate(lanes):
            m.d.comb += gen.in_data[r].eq(lane)
        m.d.comb += [
            gen.in_valid.eq(delay(m, self.in_valid, before, "tv_stage")),
            gen.in_last.eq(delay(m, self.temporal_last, before, "tl_stage")),
            gen.batch.eq(delay(m, self.temporal_batch, before, "tb_stage")),
            gen.clear.eq(delay(m, self.checksum_clear, before, "tc_stage")),
            self.temporal_overrun.eq(gen.overrun),
        ]
        return list(gen.out_data), gen.out_valid, gen.out_sanity


def _controller(cfg: AcceleratorConfig):
    from .lcu import CorrectionController

    return CorrectionController(width=cfg.a_width, depth=cfg.lcu_depth,
                                max_pairs=cfg.lcu_max_pairs, lanes=cfg.cols, capture=True)


def design_texts(cfg: AcceleratorConfig) -> tuple[str, str]:
    """The whole design as RTLIL and as Verilog (with the configuration header)."""
    top = Accelerator(cfg)
    # The PEs are emitted on their own and instantiated by name, so elaborate them here too.
    parts = [(pe, pe.module_name) for pe in top.array.pe_modules] + [(top, TOP_NAME)]
    il, v = emit.design_texts(parts)
    head = emit.header(cfg.to_dict(), TOP_NAME)
    return head.replace("//", "#") + il, head + v


def verilog_text(cfg: AcceleratorConfig) -> str:
    """The whole design as one Verilog text: the PE modules, then the top and its submodules."""
    return design_texts(cfg)[1]


@dataclass(frozen=True)
class Generated:
    """Files written by :func:`generate`."""

    verilog: Path
    rtlil: Path
    config_json: Path
    top: str
    pe_module: str


def generate(cfg: AcceleratorConfig, out_dir: str | Path) -> Generated:
    """Write ``accelerator.v``, its RTLIL twin ``accelerator.il`` (read by the synthesis flow,
    much faster than the Verilog for large arrays) and ``config.json`` into ``out_dir``."""
    out = Path(out_dir)
    il, text = design_texts(cfg)  # generate fully before writing anything
    i = emit.write_text_atomic(out / f"{TOP_NAME}.il", il)
    v = emit.write_text_atomic(out / f"{TOP_NAME}.v", text)
    j = emit.write_text_atomic(out / "config.json", cfg.to_json())
    return Generated(verilog=v, rtlil=i, config_json=j, top=TOP_NAME,
                     pe_module=pe_module_name(cfg.dataflow, cfg.a_width, cfg.w_width,
                                              cfg.acc_bits, cfg.fault_hooks, cfg.bypass))
