"""The composed accelerator top: systolic array, output stage and the configured units.

Every unit is a submodule with a fixed name, so area reports can attribute logic to it:
``array``, ``output_stage``, the input stages ``afd``, ``median`` and ``sanity_input``, the
checkers ``sanity_check`` (spatial) and ``sanity_temporal``, ``lcu``, ``tmr``, ``bypass`` and
``fault``.  Each unit's host ports are one sub-signature named after the unit, defined beside
the unit (Verilog ``unit__member``; arrays ``unit__member__i``).

Ports of module ``accelerator`` (array ports are ``name__i`` in Verilog):

WS / IS
    ``load``, ``load_data[C]`` (stationary operand, see :mod:`rtl_gen.array`; double-buffered:
    column c's data c cycles after column 0's), ``swap`` (double-buffered: set with the first
    vector of a pass, which multiplies with the tile loaded last), ``in_valid``, ``in_data[R]``
    (streamed operand), ``psum_in[C]`` (partial sums entering the top of the columns: the
    previous K-tile's result, or a bias), then the common ports.
OS
    ``act_in[R]``, ``weight_in[C]``, ``in_last`` (final step of a product), then the common ports.
Common
    ``bias[C]``, ``relu``, ``shift`` (output stage, if configured); ``out_valid``,
    ``acc_out[C]`` (full-width sums), ``q_out[C]`` (requantised, if configured).

Units (configuration fields) and their ports:
    ``fault_hooks`` — ``fault``: :class:`rtl_gen.fault.FaultControlSignature`.
    ``bypass`` — ``bypass``: :class:`rtl_gen.bypass.BypassSignature` (write the PE bypass map
    one row per cycle, read it back).
    ``afd`` — anomaly suppression of the streamed activations (WS), ``afd``:
    :class:`rtl_gen.afd.AFDControlSignature`.
    ``median`` — Median-3/5 filter of the streamed activations (WS), ``median``:
    :class:`rtl_gen.median.MedianControlSignature`.
    ``checksum`` — Sanity-Check (WS), ``checksum``:
    :class:`rtl_gen.checksum.ChecksumControlSignature` (``clear``; with the spatial checksum
    the checker's threshold and flags).  Spatial: an extra PE column (``sanity_load_data``:
    the negated row sums of the weight tile, ``cfg.sanity_width`` bits;
    ``sanity_psum_in``/``sanity_acc_out``: its K-tile partial sums, beside ``psum_in`` and
    ``acc_out``) and a checker over the C + 1 outputs, modulo 2**acc_bits; one more cycle of
    latency (000 L1249).  Temporal
    (``temporal``: :class:`rtl_gen.checksum.TemporalControlSignature`): the sanity-input
    generator as the last input stage (one extra vector after every batch of N) and per-lane
    check accumulators over the C (+1) raw sums.
    ``lcu`` — output buffer and correction controller beside the output stage, ``lcu``:
    :class:`rtl_gen.lcu.LCUHostSignature`; ``split[C]`` selects the output stage's split lanes.
    ``requant = "multiplier"`` — gemmlowp's fixed-point requantisation beside the
    power-of-two path in every output lane (:class:`rtl_gen.output_stage.FixedRequant`),
    ``requant``: :class:`rtl_gen.output_stage.RequantSignature` (``fixed`` select,
    ``multiplier[C]``, ``shift[C]``, ``zero_point``, ``lo``, ``hi``); the output stage's
    latency grows by three cycles, and the checkers' flags and ``sanity_acc_out`` are
    delayed as much, so they stay aligned with ``out_valid``.
    ``tmr`` — the same output buffer with the selective-TMR voting controller
    (:class:`rtl_gen.tmr.VotingController`, word or bitwise voter), ``tmr``:
    :class:`rtl_gen.tmr.TMRHostSignature` (capture, triple list, ``start``, ``busy``/``done``,
    read-back ``rd_row`` → ``rd_data[C]``); ``done`` ``3n + 4`` cycles after ``start`` for n
    triples.

The input stages (:mod:`rtl_gen.vector`) sit between the ports and the skew registers, each one
registered stage, chained with :func:`amaranth.lib.wiring.connect`; every other array input is
delayed by the same number of stages, so the array sees them aligned.

Latency (cycles from the input vector to its output vector,
:attr:`ftaccel.config.AcceleratorConfig.latency`): WS / IS **R + C + 1**; OS: the first of the
R result rows appears **R + C + 2** cycles after the cycle carrying ``in_last`` and the others
follow on consecutive cycles (row R−1 first); plus one cycle per input stage and per sanity
column, and three with the fixed-point multiplier (``requant = "multiplier"``).  Throughput:
one vector per cycle in and out, no bubble in steady state (the temporal checksum takes one
cycle per batch for its sanity vector).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ftaccel.config import AcceleratorConfig

from .. import files
from . import emit
from .afd import AFDControlSignature, AnomalySuppression
from .array import SystolicArray, delay
from .bypass import BypassMap, BypassSignature
from .checksum import (
    ChecksumControlSignature,
    SanityInputGenerator,
    SpatialChecker,
    TemporalChecker,
    TemporalControlSignature,
    spatial_check_width,
)
from .fault import FaultController, FaultControlSignature
from .lcu import CorrectionController
from .median import MedianArray, MedianControlSignature
from .output_stage import SHIFT_WIDTH, OutputStage, RequantSignature
from .pe import pe_module_name
from .tmr import VotingController

__all__ = ["Accelerator", "Generated", "generate", "verilog_text", "TOP_NAME",
           "GENERATED_FILES"]

TOP_NAME = "accelerator"


class Accelerator(wiring.Component):
    """The accelerator top for one configuration; ports, units and latency in the module docstring.

    Parameters
    ----------
    config : AcceleratorConfig
        What to build.
    """

    def __init__(self, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self._cfg = config
        self._array = SystolicArray(config)
        # The correction controller is built here, like the array, so that its port shapes
        # size the top's ``lcu`` port; elaborate() adds it as the submodule ``lcu``.
        self._lcu = (CorrectionController(width=config.a_width, depth=config.lcu_depth,
                                          max_pairs=config.lcu_max_pairs, lanes=config.cols,
                                          capture=True, mask=config.lcu_mask)
                     if config.lcu else None)
        self._tmr = (VotingController(width=config.a_width, depth=config.lcu_depth,
                                      max_triples=config.tmr_max_triples, voter=config.tmr,
                                      lanes=config.cols, capture=True)
                     if config.tmr != "none" else None)
        super().__init__({**self._datapath_members(), **self._unit_members()})

    def _datapath_members(self) -> dict:
        """The array's operands and the output stage's ports."""
        cfg = self._cfg
        R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
        if cfg.dataflow == "os":
            members = {"act_in": In(signed(cfg.a_width)).array(R),
                       "weight_in": In(signed(cfg.w_width)).array(C), "in_last": In(1)}
        else:
            members = {"load": In(1), "load_data": In(signed(cfg.stationary_width)).array(C),
                       "in_valid": In(1), "in_data": In(signed(cfg.stream_width)).array(R),
                       "psum_in": In(signed(P)).array(C)}
            if cfg.double_buffered:
                members["swap"] = In(1)
        if cfg.output_stage:
            members.update({"bias": In(signed(P)).array(C), "relu": In(1),
                            "shift": In(SHIFT_WIDTH)})
        if cfg.lcu:
            members["split"] = In(C)
        members.update({"out_valid": Out(1), "acc_out": Out(signed(P)).array(C)})
        if cfg.output_stage:
            members["q_out"] = Out(signed(cfg.a_width)).array(C)
        return members

    def _unit_members(self) -> dict:
        """One sub-signature per configured unit: the host's view of it."""
        cfg = self._cfg
        members = {}
        if cfg.fault_hooks:
            members["fault"] = In(FaultControlSignature())
        if cfg.bypass:
            members["bypass"] = In(BypassSignature(cfg.rows, cfg.cols))
        if cfg.afd:
            members["afd"] = In(AFDControlSignature(cfg.a_width))
        if cfg.median:
            members["median"] = In(MedianControlSignature())
        if cfg.checksum != "none":
            cw = (spatial_check_width(cfg.acc_bits, cfg.cols + 1, cfg.acc_bits)
                  if cfg.spatial else None)
            members["checksum"] = In(ChecksumControlSignature(cw))
        if cfg.spatial:
            # The sanity column's operands sit beside the array's own (a K-tile's partial sums
            # loop back from sanity_acc_out to sanity_psum_in like acc_out to psum_in).
            members.update({"sanity_load_data": In(signed(cfg.sanity_width)),
                            "sanity_psum_in": In(signed(cfg.acc_bits)),
                            "sanity_acc_out": Out(signed(cfg.acc_bits))})
        if cfg.temporal:
            members["temporal"] = In(TemporalControlSignature(
                cfg.temporal_batch_bits, cfg.temporal_check_bits, cfg.array_cols))
        if cfg.lcu:
            members["lcu"] = In(self._lcu.host_signature)
        if self._tmr is not None:
            members["tmr"] = In(self._tmr.host_signature)
        if cfg.requant == "multiplier":
            members["requant"] = In(RequantSignature(cfg.cols, cfg.a_width))
        return members

    @property
    def config(self) -> AcceleratorConfig:
        """The configuration the top is built from."""
        return self._cfg

    @property
    def array(self) -> SystolicArray:
        """The systolic array (its PE modules are emitted beside the top)."""
        return self._array

    def elaborate(self, platform):
        """The top's netlist: array, output stage and the configured units."""
        m = Module()
        cfg = self._cfg
        m.submodules.array = array = self._array
        m.submodules.output_stage = ostage = OutputStage(
            lanes=cfg.cols, acc_width=cfg.acc_bits, out_width=cfg.a_width,
            requant=cfg.output_stage, split=cfg.lcu, multiplier=cfg.requant == "multiplier")
        if cfg.dataflow == "os":
            valid = self._os_operands(m, array)
        else:
            valid, arr_valid, sanity = self._stationary_operands(m, array)
        self._output_stage(m, array, ostage, valid)
        if cfg.lcu:
            m.submodules.lcu = self._lcu
            self._buffer_unit(m, ostage, self._lcu, self.lcu, "pair", ("a", "b"))
        if self._tmr is not None:
            m.submodules.tmr = self._tmr
            self._buffer_unit(m, ostage, self._tmr, self.tmr, "triple", ("a", "b", "c"))
        if cfg.temporal:
            self._temporal_check(m, array, arr_valid, sanity)
        if cfg.spatial:
            self._spatial_check(m, array, valid)
        if cfg.bypass:
            m.submodules.bypass = bp = BypassMap(rows=cfg.rows, cols=cfg.cols)
            connect(m, flipped(self.bypass), bp.host)
            m.d.comb += array.bypass_map.eq(bp.map)
        if cfg.fault_hooks:
            m.submodules.fault = fc = FaultController(rows=cfg.rows, cols=cfg.array_cols)
            connect(m, flipped(self.fault), fc.ctl)
            connect(m, fc.sel, array.fault)
        return m

    def _os_operands(self, m: Module, array: SystolicArray):
        """OS: operands straight into the array; the valid flag of the R result rows."""
        R = self._cfg.rows
        m.d.comb += [a.eq(b) for a, b in zip(array.act_data, self.act_in, strict=True)]
        m.d.comb += [a.eq(b) for a, b in zip(array.weight_data, self.weight_in, strict=True)]
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
        return valid

    def _input_stages(self, m: Module) -> list:
        """The configured vector stages in order.

        AFD, median, then the sanity-input generator (after the filters, so that the sanity vector
        is the negated sum of exactly the vectors the array multiplies).
        """
        cfg = self._cfg
        stages = []
        if cfg.afd:
            m.submodules.afd = afd = AnomalySuppression(width=cfg.a_width, lanes=cfg.rows)
            connect(m, flipped(self.afd), afd.ctl)
            stages.append(afd)
        if cfg.median:
            m.submodules.median = med = MedianArray(width=cfg.a_width, lanes=cfg.rows,
                                                    window=cfg.median,
                                                    variant=cfg.median_variant)
            connect(m, flipped(self.median), med.ctl)
            stages.append(med)
        if cfg.temporal:
            m.submodules.sanity_input = gen = SanityInputGenerator(
                width=cfg.a_width, lanes=cfg.rows, batch_bits=cfg.temporal_batch_bits,
                out_width=cfg.stream_width)
            # Its controls travel with the vector they belong to: delayed like it.
            before = len(stages)
            m.d.comb += [
                gen.last.eq(delay(m, self.temporal.last, before, "tl_stage")),
                gen.batch.eq(delay(m, self.temporal.batch, before, "tb_stage")),
                gen.clear.eq(delay(m, self.checksum.clear, before, "tc_stage")),
                self.temporal.overrun.eq(gen.overrun),
            ]
            stages.append(gen)
        return stages

    def _stationary_operands(self, m: Module, array: SystolicArray):
        """WS / IS.

        The streamed vector through the input stages, every other operand delayed as much. Returns
        the valid flag of the data vectors at the array's output, that of every vector there (sanity
        vectors included) and the flag of the temporal checksum's sanity vectors (None without it).
        """
        cfg = self._cfg
        stages = self._input_stages(m)
        n = len(stages)
        data, valid = list(self.in_data), self.in_valid
        if stages:
            first = stages[0]
            m.d.comb += [a.eq(b) for a, b in zip(first.i.data, data, strict=True)]
            m.d.comb += first.i.valid.eq(valid)
            for up, down in zip(stages, stages[1:], strict=False):
                connect(m, up.o, down.i)
            data, valid = list(stages[-1].o.data), stages[-1].o.valid
        m.d.comb += [a.eq(b) for a, b in zip(array.stream_data, data, strict=True)]
        m.d.comb += array.load.eq(delay(m, self.load, n, "load_stage"))
        if cfg.double_buffered:
            m.d.comb += array.swap.eq(delay(m, self.swap, n, "swap_stage"))
        for c in range(cfg.cols):
            m.d.comb += [
                array.stat_data[c].eq(delay(m, self.load_data[c], n, f"ld{c}_stage")),
                array.psum_data[c].eq(delay(m, self.psum_in[c], n, f"ps{c}_stage"))]
        if cfg.spatial:
            m.d.comb += [
                array.sanity_stat.eq(delay(m, self.sanity_load_data, n, "sld_stage")),
                array.sanity_psum.eq(delay(m, self.sanity_psum_in, n, "sps_stage"))]
        arr_valid = delay(m, valid, array.latency, "valid")
        if not cfg.temporal:
            return arr_valid, arr_valid, None
        sanity = delay(m, stages[-1].sanity, array.latency, "sanity")
        # Sanity vectors are checked, never results: out_valid marks data vectors.
        data_valid = Signal()
        m.d.comb += data_valid.eq(arr_valid & ~sanity)
        return data_valid, arr_valid, sanity

    def _output_stage(self, m: Module, array: SystolicArray, ostage: OutputStage, valid):
        m.d.comb += [a.eq(b) for a, b in zip(ostage.acc_in, array.out, strict=True)]
        m.d.comb += [ostage.in_valid.eq(valid), self.out_valid.eq(ostage.out_valid)]
        m.d.comb += [a.eq(b) for a, b in zip(self.acc_out, ostage.acc_out, strict=True)]
        if self._cfg.output_stage:
            m.d.comb += [ostage.relu.eq(self.relu), ostage.shift.eq(self.shift)]
            m.d.comb += [a.eq(b) for a, b in zip(ostage.bias, self.bias, strict=True)]
            m.d.comb += [a.eq(b) for a, b in zip(self.q_out, ostage.q_out, strict=True)]
        if self._cfg.lcu:
            m.d.comb += ostage.split.eq(self.split)
        if self._cfg.requant == "multiplier":
            connect(m, flipped(self.requant), ostage.fixed_point)

    def _late(self, m: Module, sig, name: str):
        """``sig`` delayed by the fixed-point path's extra cycles (a wire without it).

        The checkers see the array's output when the output stage samples it; their flags must
        show with that vector's ``out_valid``.
        """
        return delay(m, sig, self._cfg.requant_stages, name)

    def _temporal_check(self, m: Module, array: SystolicArray, arr_valid, sanity) -> None:
        """Beside the spatial checker, on the same raw sums (Fig. 6.9, yellow).

        The batch's closing vector is the generator's sanity flag delayed like the data.
        """
        cfg, host = self._cfg, self.temporal
        m.submodules.sanity_temporal = chk = TemporalChecker(
            width=cfg.acc_bits, lanes=cfg.array_cols, batch_bits=cfg.temporal_batch_bits,
            residue_bits=cfg.temporal_check_bits)
        lanes = list(array.out) + ([array.sanity_out] if cfg.spatial else [])
        m.d.comb += [a.eq(b) for a, b in zip(chk.data, lanes, strict=True)]
        m.d.comb += [a.eq(b) for a, b in zip(chk.expected, host.expected, strict=True)]
        m.d.comb += [
            chk.valid.eq(arr_valid), chk.last.eq(sanity),
            chk.threshold.eq(host.threshold), chk.clear.eq(self.checksum.clear),
            host.checked.eq(self._late(m, chk.checked, "tchecked")),
            host.error.eq(self._late(m, chk.error, "terror")),
            host.lane_errors.eq(self._late(m, chk.lane_errors, "tlanes")),
            host.alarm.eq(self._late(m, chk.alarm, "talarm")),
            host.first.eq(self._late(m, chk.first_index, "tfirst"))]

    def _spatial_check(self, m: Module, array: SystolicArray, valid) -> None:
        """The checker sees the raw sums of the C + 1 columns when the output stage samples them.

        So its flags come out aligned with ``out_valid`` / ``acc_out``.
        """
        cfg, host = self._cfg, self.checksum
        m.submodules.sanity_check = chk = SpatialChecker(
            width=cfg.acc_bits, lanes=cfg.cols + 1, residue_bits=cfg.acc_bits)
        lanes = list(array.out) + [array.sanity_out]
        m.d.comb += [a.eq(b) for a, b in zip(chk.data, lanes, strict=True)]
        m.d.comb += [
            chk.valid.eq(valid), chk.expected.eq(0), chk.threshold.eq(host.threshold),
            chk.clear.eq(host.clear), host.error.eq(self._late(m, chk.error, "serror")),
            host.alarm.eq(self._late(m, chk.alarm, "salarm")),
            host.first.eq(self._late(m, chk.first_index, "sfirst")),
            host.syndrome.eq(self._late(m, chk.checksum, "ssyndrome"))]
        m.d.sync += self.sanity_acc_out.eq(self._late(m, array.sanity_out, "sanity_out"))

    def _buffer_unit(self, m: Module, ostage: OutputStage, ctl, host, entry: str,
                     words: tuple) -> None:
        """Output buffer + its controller beside the output stage (LCU or TMR, SPEC §5).

        Every output vector with ``capture`` set is captured (one row per vector, rows counted
        from ``cap_clear``); after the layer, ``start`` corrects (LCU pairs) or votes (TMR
        triples) the loaded entries in place; the host reads rows back through ``rd_row`` →
        ``rd_data`` (one cycle later).  Read data issued while the controller is busy is
        unspecified in the memory; the top shows 0 for it so that every output port is
        deterministic.
        """
        m.d.comb += [
            ctl.cap_en.eq(ostage.out_valid & host.capture), ctl.cap_clear.eq(host.cap_clear),
            ctl.buf_wr_en.eq(0),
            getattr(ctl, f"{entry}_wr_en").eq(getattr(host, f"{entry}_we")),
            getattr(ctl, f"{entry}_wr_index").eq(getattr(host, f"{entry}_index")),
            getattr(ctl, f"n_{entry}s").eq(getattr(host, f"n_{entry}s")),
            ctl.start.eq(host.start), ctl.buf_rd_row.eq(host.rd_row),
            host.busy.eq(ctl.busy), host.done.eq(ctl.done), host.cap_row.eq(ctl.cap_row),
        ]
        m.d.comb += [getattr(ctl, f"{entry}_wr_{w}").eq(getattr(host, f"{entry}_{w}"))
                     for w in words]
        m.d.comb += [a.eq(b) for a, b in zip(ctl.cap_data, ostage.q_out, strict=True)]
        read_ok = Signal(init=1, name=f"{entry}_read_ok")  # last cycle's read was the host's
        m.d.sync += read_ok.eq(~ctl.busy)
        m.d.comb += [a.eq(Mux(read_ok, b, 0))
                     for a, b in zip(host.rd_data, ctl.buf_rd_rows, strict=True)]


def design_texts(cfg: AcceleratorConfig, *, rtlil_too: bool = True) -> tuple[str | None, str]:
    """The whole design as RTLIL and as Verilog, each with the configuration header.

    The PE modules come first, then the top and its submodules; ``rtlil_too=False`` skips the
    RTLIL (``None``).
    """
    top = Accelerator(cfg)
    # The PEs are emitted on their own and instantiated by name, so elaborate them here too.
    parts = [(pe, pe.module_name) for pe in top.array.pe_modules] + [(top, TOP_NAME)]
    il, v = emit.design_texts(parts, rtlil_too=rtlil_too)
    head = emit.header(cfg.to_dict(), TOP_NAME)
    return (None if il is None else head.replace("//", "#") + il), head + v


def verilog_text(cfg: AcceleratorConfig) -> str:
    """The whole design as one Verilog text: the PE modules, then the top and its submodules."""
    return design_texts(cfg, rtlil_too=False)[1]


@dataclass(frozen=True)
class Generated:
    """Files written by :func:`generate` (``rtlil`` is None when it was not asked for)."""

    verilog: Path
    rtlil: Path | None
    config_json: Path
    top: str
    pe_module: str


#: The files :func:`generate` writes into its output folder.
GENERATED_FILES = (f"{TOP_NAME}.il", f"{TOP_NAME}.v", "config.json")


def generate(cfg: AcceleratorConfig, out_dir: str | Path, *, rtlil: bool = True) -> Generated:
    """Write ``accelerator.v``, ``accelerator.il`` and ``config.json`` into ``out_dir``.

    ``accelerator.il`` is the RTLIL twin of the Verilog; it is read by the synthesis flow, much
    faster than the Verilog for large arrays.

    Parameters
    ----------
    cfg : AcceleratorConfig
        What to generate.
    out_dir : path
        Created if needed.  Every target is checked (:func:`ftaccel.files.check_target`) and
        the whole design converted before the first file is written; the files are written
        atomically (nothing half-written on an error).
    rtlil : bool
        Also write the RTLIL twin (default).  Simulation needs only the Verilog, and the RTLIL
        doubles the generation time.

    Returns
    -------
    Generated
        The paths written and the top and PE module names.
    """
    out = Path(out_dir)
    files.check_folder(out)
    for name in GENERATED_FILES:
        files.check_target(out / name)
    il, text = design_texts(cfg, rtlil_too=rtlil)  # generate fully before writing anything
    i = emit.write_text_atomic(out / f"{TOP_NAME}.il", il) if il is not None else None
    v = emit.write_text_atomic(out / f"{TOP_NAME}.v", text)
    j = emit.write_text_atomic(out / "config.json", cfg.to_json())
    return Generated(verilog=v, rtlil=i, config_json=j, top=TOP_NAME,
                     pe_module=pe_module_name(cfg.dataflow, cfg.a_width, cfg.w_width,
                                              cfg.acc_bits, cfg.fault_hooks, cfg.bypass,
                                              cfg.double_buffered))
