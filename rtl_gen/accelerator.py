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
    latency (Ozen 2023 §6.3.3).  Temporal
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
from ftaccel.enums import Dataflow

from .. import files
from . import emit
from .afd import AFDControlSignature, AnomalySuppression, WindowedAFD
from .array import SystolicArray, delay, pe_name
from .bypass import BypassMap, BypassSignature
from .checksum import (
    ChecksumControlSignature,
    SanityInputGenerator,
    SanityLoadGenerator,
    SanityRowInput,
    SpatialChecker,
    TemporalChecker,
    TemporalControlSignature,
    spatial_check_width,
)
from .fault import FaultController, FaultControlSignature
from .lcu import CorrectionController
from .median import MedianArray, MedianControlSignature, WindowedMedian
from .output_stage import SHIFT_WIDTH, OutputStage, RequantSignature
from .tmr import VotingController
from .vector import ChunkPosition

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
            if cfg.filter_lead:
                members["in_first"] = In(1)  # a tile's first step: its chunks start there
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
            # loop back from sanity_acc_out to sanity_psum_in like acc_out to psum_in).  WS:
            # the host loads the sanity neuron's weights; IS: its inputs are made in hardware
            # (SanityLoadGenerator); OS: the sanity neuron's weights stream down the column
            # and its bias joins the checks (OS adds the bias after the array).
            if cfg.dataflow is Dataflow.WS:
                members["sanity_load_data"] = In(signed(cfg.sanity_width))
            if cfg.dataflow is Dataflow.OS:
                members.update({"sanity_weight_in": In(signed(cfg.sanity_width)),
                                "sanity_bias": In(signed(cfg.acc_bits))})
            else:
                members["sanity_psum_in"] = In(signed(cfg.acc_bits))
            members["sanity_acc_out"] = Out(signed(cfg.acc_bits))
        if cfg.temporal:
            members["temporal"] = In(TemporalControlSignature(
                None if cfg.dataflow is Dataflow.OS else cfg.temporal_batch_bits,
                cfg.temporal_check_bits, cfg.array_cols))
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
            valid, arr_valid, sanity = self._os_operands(m, array)
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
            m.submodules.fault = fc = FaultController(rows=cfg.array_rows, cols=cfg.array_cols)
            connect(m, flipped(self.fault), fc.ctl)
            connect(m, fc.sel, array.fault)
        return m

    def _os_operands(self, m: Module, array: SystolicArray):
        """OS: operands into the array; the valid flags of the drained rows.

        The activations pass the windowed filters (leading by ``cfg.filter_lead``); with the
        temporal checksum the sanity row takes the negated sum of each step's activations, and
        with the spatial one the sanity column the host's sanity weights.  Returns the valid
        flag of the R result rows, that of every drained row (the sanity row included) and the
        flag closing a tile's batch (its last drained row; None without the temporal checksum).
        """
        cfg = self._cfg
        R = cfg.rows
        acts = list(self.act_in)
        if cfg.filter_lead:
            m.submodules.chunk_position = pos = ChunkPosition(lanes=R, chunk=R, mode="start")
            m.d.comb += pos.start.eq(self.in_first)
            acts = self._window_filters(m, acts, pos, reverse=False)
        m.d.comb += [a.eq(b) for a, b in zip(array.act_data, acts, strict=True)]
        m.d.comb += [a.eq(b) for a, b in zip(array.weight_data, self.weight_in, strict=True)]
        m.d.comb += array.last.eq(self.in_last)
        if cfg.temporal:
            m.submodules.sanity_row_input = gen = SanityRowInput(
                width=cfg.a_width, lanes=R, out_width=cfg.sanity_row_width)
            m.d.comb += [a.eq(b) for a, b in zip(gen.data, acts, strict=True)]
            m.d.comb += array.sanity_act.eq(gen.out)
        if cfg.spatial:
            m.d.comb += array.sanity_weight.eq(self.sanity_weight_in)
        # The NR drained rows (the sanity row first) leave the array on consecutive cycles from
        # NR + NC + 1 cycles after in_last; a counter stretches the delayed flag over them.
        NR = cfg.array_rows
        first = delay(m, self.in_last, NR + cfg.array_cols + 1, "last_to_out")
        remaining = Signal(range(NR + 1))
        arr_valid = Signal()
        with m.If(first):
            m.d.sync += remaining.eq(NR - 1)
        with m.Elif(remaining != 0):
            m.d.sync += remaining.eq(remaining - 1)
        m.d.comb += arr_valid.eq(first | (remaining != 0))
        if not cfg.temporal:
            return arr_valid, arr_valid, None
        valid, closing = Signal(), Signal()
        # Sanity rows are checked, never results: out_valid marks the R data rows.
        m.d.comb += [valid.eq(arr_valid & ~first), closing.eq(~first & (remaining == 1))]
        return valid, arr_valid, closing

    def _window_filters(self, m: Module, lanes: list, pos: ChunkPosition, *,
                        reverse: bool) -> list:
        """The windowed input units (IS / OS) on ``lanes``: AFD, then the median.

        Each registers its result ``latency`` cycles after its input; the flags of
        ``pos`` travel with the features.  Returns the filtered lanes.
        """
        cfg = self._cfg
        data, first, last = lanes, list(pos.first), list(pos.last)
        n = len(lanes)
        for name in ("afd", "median"):
            if not getattr(cfg, name):
                continue
            if name == "afd":
                unit = WindowedAFD(width=cfg.a_width, lanes=n, chunk=cfg.rows, reverse=reverse)
                connect(m, flipped(self.afd), unit.ctl)
            else:
                unit = WindowedMedian(width=cfg.a_width, lanes=n, window=cfg.median,
                                      variant=cfg.median_variant)
                connect(m, flipped(self.median), unit.ctl)
            m.submodules[name] = unit
            m.d.comb += [a.eq(b) for a, b in zip(unit.i.data, data, strict=True)]
            m.d.comb += [a.eq(b) for a, b in zip(unit.i.first, first, strict=True)]
            m.d.comb += [a.eq(b) for a, b in zip(unit.i.last, last, strict=True)]
            data, first, last = list(unit.o.data), list(unit.o.first), list(unit.o.last)
        return data

    def _input_stages(self, m: Module) -> list:
        """The configured vector stages of the streamed path, in order.

        WS: AFD, median, then the sanity-input generator (after the filters, so that the sanity
        vector is the negated sum of exactly the vectors the array multiplies); IS: the
        generator (on the streamed weights: a sanity neuron made on the fly).
        """
        cfg = self._cfg
        ws = cfg.dataflow is Dataflow.WS
        stages = []
        if cfg.afd and ws:
            m.submodules.afd = afd = AnomalySuppression(width=cfg.a_width, lanes=cfg.rows)
            connect(m, flipped(self.afd), afd.ctl)
            stages.append(afd)
        if cfg.median and ws:
            m.submodules.median = med = MedianArray(width=cfg.a_width, lanes=cfg.rows,
                                                    window=cfg.median,
                                                    variant=cfg.median_variant)
            connect(m, flipped(self.median), med.ctl)
            stages.append(med)
        if cfg.temporal:
            m.submodules.sanity_input = gen = SanityInputGenerator(
                width=cfg.a_width if ws else cfg.w_width, lanes=cfg.rows,
                batch_bits=cfg.temporal_batch_bits, out_width=cfg.stream_width)
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

        The streamed vector through the input stages, every other operand delayed as much; on IS
        the load first through the windowed filters (it leads by ``cfg.filter_lead``).  Returns
        the valid flag of the data vectors at the array's output, that of every vector there
        (sanity vectors included) and the flag of the temporal checksum's sanity vectors (None
        without it).
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
        loaded, load = list(self.load_data), self.load
        if cfg.filter_lead:  # IS: the stationary activations are filtered as they load
            C = cfg.cols
            m.submodules.chunk_position = pos = ChunkPosition(lanes=C, chunk=cfg.rows,
                                                              mode="load")
            # double-buffered, column c's values come c cycles after column 0's
            steps = ([delay(m, self.load, c, f"fload{c}") for c in range(C)]
                     if cfg.double_buffered else [self.load] * C)
            m.d.comb += [a.eq(b) for a, b in zip(pos.step, steps, strict=True)]
            loaded = self._window_filters(m, loaded, pos, reverse=True)
            load = delay(m, self.load, cfg.filter_lead, "load_lead")
        m.d.comb += array.load.eq(delay(m, load, n, "load_stage"))
        if cfg.double_buffered:
            m.d.comb += array.swap.eq(delay(m, self.swap, n, "swap_stage"))
        for c in range(cfg.cols):
            m.d.comb += [
                array.stat_data[c].eq(delay(m, loaded[c], n, f"ld{c}_stage")),
                array.psum_data[c].eq(delay(m, self.psum_in[c], n, f"ps{c}_stage"))]
        if cfg.spatial:
            m.d.comb += array.sanity_psum.eq(delay(m, self.sanity_psum_in, n, "sps_stage"))
            if cfg.dataflow is Dataflow.WS:
                m.d.comb += array.sanity_stat.eq(delay(m, self.sanity_load_data, n,
                                                       "sld_stage"))
            else:
                m.submodules.sanity_load = gen = SanityLoadGenerator(
                    width=cfg.a_width, lanes=cfg.cols, rows=cfg.rows,
                    skewed=cfg.double_buffered, bypass=cfg.bypass)
                m.d.comb += [a.eq(b) for a, b in zip(gen.data, array.stat_data, strict=True)]
                m.d.comb += [gen.load.eq(array.load), array.sanity_stat.eq(gen.out)]
                if cfg.bypass:
                    m.d.comb += gen.bypass_map.eq(array.bypass_map)
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

    def _checked_lanes(self, m: Module, array: SystolicArray) -> list:
        """The lanes the checkers see: the array's raw sums, the sanity column's last.

        WS / IS: the bias is already in them (it entered through ``psum_in``).  OS has no
        partial-sum input: the checkers add the bias the output stage adds (and the host's
        sanity bias to the sanity lane), so that they cover bias errors too (Ozen 2023 Table 6.1).
        """
        cfg = self._cfg
        lanes = list(array.out) + ([array.sanity_out] if cfg.spatial else [])
        if cfg.dataflow is not Dataflow.OS or not cfg.output_stage:
            return lanes
        biases = list(self.bias) + ([self.sanity_bias] if cfg.spatial else [])
        out = []
        for u, (lane, b) in enumerate(zip(lanes, biases, strict=True)):
            s = Signal(signed(cfg.acc_bits), name=f"checked{u}")
            m.d.comb += s.eq(lane + b)  # modulo 2**acc_bits, as the checkers work
            out.append(s)
        return out

    def _temporal_check(self, m: Module, array: SystolicArray, arr_valid, sanity) -> None:
        """Beside the spatial checker, on the same sums (Fig. 6.9, yellow).

        The batch's closing vector is the generator's sanity flag delayed like the data (OS:
        the tile's last drained row).
        """
        cfg, host = self._cfg, self.temporal
        m.submodules.sanity_temporal = chk = TemporalChecker(
            width=cfg.acc_bits, lanes=cfg.array_cols, batch_bits=cfg.temporal_batch_bits,
            residue_bits=cfg.temporal_check_bits)
        lanes = self._checked_lanes(m, array)
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
        """The checker sees the sums of the C + 1 columns when the output stage samples them.

        So its flags come out aligned with ``out_valid`` / ``acc_out``.
        """
        cfg, host = self._cfg, self.checksum
        m.submodules.sanity_check = chk = SpatialChecker(
            width=cfg.acc_bits, lanes=cfg.cols + 1, residue_bits=cfg.acc_bits)
        lanes = self._checked_lanes(m, array)
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
        """Output buffer and its controller beside the output stage (Ahmadilivani 2025 §4.3.1).

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
    return Generated(verilog=v, rtlil=i, config_json=j, top=TOP_NAME, pe_module=pe_name(cfg))
