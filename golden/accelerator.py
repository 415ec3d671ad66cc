"""Golden model of the composed accelerator top, cycle by cycle.

:class:`AcceleratorModel` is the register-level model of :class:`rtl_gen.accelerator.Accelerator`
(input units, skew, PEs, deskew, checkers, output stage, output buffer), in numpy over the
whole R×C grid.  It is the fault model: with a :class:`golden.faults.Fault` it reproduces the
faulty outputs of the RTL bit for bit, because it applies the same saboteur to the same
register in the same cycle.  :func:`simulate` runs a :class:`golden.schedule.Program` through
it and returns what the RTL's output ports show; :func:`run_matmul` is the one-call product.

:func:`simulate` returns the same dictionary :func:`tb.runner.run_stream` records from the
simulator (``out_valid`` ``[T]``, ``acc_out`` and ``q_out`` ``[T, C]``), so a testbench
compares the two with one ``np.array_equal`` per port: every cycle, not only the results.
"""

from __future__ import annotations

import numpy as np

from . import units as golden_units
from .array import MatmulResult
from .bits import wrap
from .faults import Fault, sabotage
from .output_stage import FixedRequantModel, output_stage
from .schedule import Program, assemble, build_program

__all__ = ["AcceleratorModel", "simulate", "play", "run_matmul"]


def simulate(cfg, program: Program, fault: Fault | None = None) -> dict[str, np.ndarray]:
    """Cycle-by-cycle outputs of the accelerator for ``program`` (with ``fault``, if any)."""
    return play(AcceleratorModel(cfg, fault), program)


def play(model, program) -> dict[str, np.ndarray]:
    """What a cycle model's output ports show for a driver program, cycle by cycle.

    ``model`` has ``outputs()`` and ``step(inputs)``; ``program`` has ``cycles``, ``inputs``,
    ``outputs`` and ``loopback`` (:class:`golden.schedule.Program`).  The record has the layout
    of :func:`tb.runner.run_stream`'s, so the two compare port by port.
    """
    T = program.cycles
    rec = {name: np.zeros((T, n) if n else T, dtype=np.int64)
           for name, (n, _signed) in program.outputs.items()}
    for t in range(T):
        outs = model.outputs()  # read before this cycle's inputs, as the player does
        for name in rec:
            rec[name][t] = outs[name]
        inputs = {name: arr[t] for name, arr in program.inputs.items()}
        for port, (source, src) in program.loopback.items():
            if src[t] >= 0:
                inputs[port] = rec[source][src[t]]
        model.step(inputs)
    return rec


def run_matmul(cfg, A, B, *, bias=None, relu=False, shift=0, fault: Fault | None = None,
               **units) -> MatmulResult:
    """``A @ B`` as the accelerator computes it, on the register-level cycle model.

    A :class:`golden.array.MatmulResult` (``acc, q = run_matmul(...)`` unpacks it); ``q`` is
    ``None`` without an output stage; ``units`` are the units' run-time options, passed to
    :func:`golden.schedule.build_program` (``bypass_map``, ``afd``, ``median_enable``, ...).
    """
    program = build_program(cfg, A, B, bias=bias, relu=relu, shift=shift, fault=fault, **units)
    rec = simulate(cfg, program, fault)
    q = assemble(program, rec, "q_out") if cfg.output_stage else None
    return MatmulResult(acc=assemble(program, rec, "acc_out"), q=q, cycles=program.cycles,
                        alarms=golden_units.alarms(cfg, rec))


#: Array inputs that pass through the input units' pipeline stages.
_ARRAY_PORTS = ("load", "load_data", "in_valid", "in_data", "psum_in", "swap")


class AcceleratorModel:
    """Register-level model of the accelerator top, one :meth:`step` per clock cycle.

    Mirrors :mod:`rtl_gen.accelerator`: the same registers, the same reset values (zero), the
    same order of operations.  :meth:`outputs` gives what the registered output ports show in
    the current cycle; :meth:`step` applies one cycle's inputs (a dict of port values) and
    advances to the next cycle.  With ``fault`` set, the fault's saboteur is applied to the
    selected register's value wherever it is read, exactly as in the RTL; a list of faults
    applies each (in list order where two hit the same register bit).
    """

    def __init__(self, cfg, fault: Fault | tuple | list | None = None):
        self.cfg = cfg
        # Several faults at once (a list) model multiple errors, e.g. the checksums' 2- and
        # 3-error guarantees; the RTL's hooks take one fault, which is the case proven equal.
        self.faults = (() if fault is None else tuple(fault) if isinstance(fault, (list, tuple))
                       else (fault,))
        R, C = cfg.rows, cfg.cols
        self.R, self.C, self.P = R, C, cfg.acc_bits
        self.NC = NC = cfg.array_cols
        self.NR = NR = cfg.array_rows  # (the OS temporal checksum's sanity row included)
        z = lambda: np.zeros((NR, NC), dtype=np.int64)  # noqa: E731
        self.cycle = 0
        if cfg.dataflow == "os":
            self.act, self.weight, self.last, self.psum = z(), z(), z(), z()
            self.drain_a, self.drain_b = z(), z()
            self.remaining = 0
        else:
            self.stat, self.move, self.psum = z(), z(), z()
            self.shadow, self.swap = z(), z()  # double-buffered: shadow and swap registers
        self.hist: dict[str, list] = {}
        self.units = self._make_units()
        self.stage_regs: list[dict] = []
        # IS / OS: the windowed filters (their models and the chunk position counters)
        self.window = self._make_window_units()
        self.position = np.zeros(1 if cfg.dataflow == "os" else C, dtype=np.int64)
        self.raw_load: list[int] = []  # the load port's past values (IS: the filters' lead)
        self.load_gen = None
        if cfg.spatial and cfg.dataflow == "is":
            from .checksum import SanityLoadGeneratorModel
            self.load_gen = SanityLoadGeneratorModel(lanes=C, rows=R, skewed=cfg.double_buffered,
                                                     bypass=cfg.bypass)
        # the sanity row and column are never bypassed
        self.bypass = np.zeros((NR, NC), dtype=bool)
        self.bypass_rdata = 0
        self.checker = None
        if NC > C:
            from .checksum import SpatialCheckerModel
            self.checker = SpatialCheckerModel(width=self.P, lanes=NC, residue_bits=self.P)
        self.generator = self.tchecker = None
        if cfg.temporal:
            from .checksum import SanityInputGeneratorModel, TemporalCheckerModel
            bb = cfg.temporal_batch_bits
            if cfg.dataflow != "os":  # (OS: the sanity row's input is an adder tree)
                self.generator = SanityInputGeneratorModel(
                    width=cfg.a_width if cfg.dataflow == "ws" else cfg.w_width, lanes=R,
                    batch_bits=bb, out_width=cfg.stream_width)
            self.tchecker = TemporalCheckerModel(width=self.P, lanes=NC, batch_bits=bb,
                                                 residue_bits=cfg.temporal_check_bits)
        # The output buffer's controller (LCU or TMR voter, exclusive), its port-name prefix and
        # its list entry (pairs of a, b or triples of a, b, c).
        self.controller = None
        if cfg.lcu:
            from .lcu import ControllerModel
            self.controller = ControllerModel(width=cfg.a_width, depth=cfg.lcu_depth,
                                              max_pairs=cfg.lcu_max_pairs, lanes=C,
                                              capture=True, mask=cfg.lcu_mask)
            self._buffer = ("lcu", "pair", "ab")
        elif cfg.tmr != "none":
            from .tmr import VotingControllerModel
            self.controller = VotingControllerModel(
                width=cfg.a_width, depth=cfg.lcu_depth, max_triples=cfg.tmr_max_triples,
                voter=cfg.tmr, lanes=C, capture=True)
            self._buffer = ("tmr", "triple", "abc")
        self.sanity_acc_out = 0
        self.bottom_hist: list[np.ndarray] = []
        self.valid_hist: list[int] = []
        self.acc_out = np.zeros(C, dtype=np.int64)
        self.q_out = np.zeros(C, dtype=np.int64)
        self.out_valid = 0
        # The fixed-point multiplier (requant = "multiplier"): its path, the delay registers
        # of acc_out, the power-of-two result and out_valid, and the checkers' flags delayed
        # as much (the RTL's _late), newest last.
        self.extra = cfg.requant_stages
        self.fixed = FixedRequantModel(C) if self.extra else None
        self.acc_delay = [np.zeros(C, dtype=np.int64) for _ in range(self.extra)]
        self.pow2_delay = [np.zeros(C, dtype=np.int64) for _ in range(self.extra)]
        self.valid_delay = [0] * self.extra
        zero = {k: np.zeros_like(v) for k, v in self._checker_outputs().items()}
        self.late: list[dict] = [dict(zero) for _ in range(self.extra)]

    # -- helpers ---------------------------------------------------------------------------
    def _read(self, regs: np.ndarray, register: str) -> np.ndarray:
        out = regs
        for f in self.faults:
            if f.register != register or not f.active(self.cycle):
                continue
            if f.row >= self.NR or f.col >= self.NC:
                continue
            if out is regs:
                out = regs.copy()
            width = self.cfg.register_width(register, f.col, f.row)
            out[f.row, f.col] = sabotage(out[f.row, f.col], width, f.bit, f.mode)
        return out

    def _delayed(self, port: str, d: int, n: int) -> np.ndarray:
        """The value port ``port`` had ``d`` cycles ago (zero before the first cycle)."""
        h = self.hist[port]
        i = len(h) - 1 - d
        return h[i] if i >= 0 else np.zeros(n, dtype=np.int64)

    def outputs(self) -> dict[str, np.ndarray | int]:
        """The top's output ports after the last step, by port name."""
        out = {"out_valid": self.out_valid, "acc_out": self.acc_out.copy(),
               "q_out": (self.fixed.outputs() if self.fixed is not None else self.q_out.copy()),
               "bypass__rdata": self.bypass_rdata}
        out.update(self.late[0] if self.extra else self._checker_outputs())
        if self.controller is not None:
            unit = self._buffer[0]
            ctl = self.controller.outputs()
            rd = ctl["buf_rd_rows"]  # None: the read was issued while busy; the top shows 0
            out.update({f"{unit}__busy": ctl["busy"], f"{unit}__done": ctl["done"],
                        f"{unit}__cap_row": ctl["cap_row"],
                        f"{unit}__rd_data": (np.zeros(self.C, np.int64) if rd is None
                                             else rd.copy())})
        if self.generator is not None:
            out["temporal__overrun"] = self.generator.outputs()["overrun"]
        return out

    def _checker_outputs(self) -> dict:
        """The checkers' flags and ``sanity_acc_out`` as their own registers show them."""
        out: dict = {}
        if self.checker is not None:
            chk = self.checker.outputs()
            out.update({"sanity_acc_out": self.sanity_acc_out,
                        "checksum__error": chk["error"], "checksum__alarm": chk["alarm"],
                        "checksum__first": chk["first_index"],
                        "checksum__syndrome": chk["checksum"]})
        if self.tchecker is not None:
            chk = self.tchecker.outputs()
            out.update({"temporal__checked": chk["checked"], "temporal__error": chk["error"],
                        "temporal__lane_errors": chk["lane_errors"],
                        "temporal__alarm": chk["alarm"], "temporal__first": chk["first_index"]})
        return out

    # -- input units (WS): each is one registered stage in front of the skew -------------------
    def _make_units(self):
        cfg = self.cfg
        units = []
        if cfg.dataflow != "ws":  # (IS / OS filter in time: _make_window_units)
            return units
        if cfg.afd:
            from .afd import anomaly_suppression

            def afd(vec, ctl):
                return anomaly_suppression(vec, width=cfg.a_width, shift=int(ctl["afd__shift"]),
                                           gates=int(ctl["afd__gates"]),
                                           mode=int(ctl["afd__mode"]),
                                           enable=int(ctl["afd__enable"]))
            units.append(afd)
        if cfg.median:
            from .median import median_filter

            def median(vec, ctl):
                if not int(ctl["median__enable"]):
                    return np.asarray(vec, dtype=np.int64)
                return median_filter(vec, window=cfg.median)
            units.append(median)
        return units

    def _make_window_units(self) -> list:
        """IS / OS: the windowed filters' models, in pipeline order (AFD, then the median)."""
        cfg = self.cfg
        if not cfg.filter_lead:
            return []
        from .afd import WindowedAFDModel
        from .median import WindowedMedianModel
        lanes = cfg.rows if cfg.dataflow == "os" else cfg.cols
        units = []
        if cfg.afd:
            units.append(("afd", WindowedAFDModel(width=cfg.a_width, lanes=lanes,
                                                  chunk=cfg.rows, reverse=cfg.dataflow == "is")))
        if cfg.median:
            units.append(("median", WindowedMedianModel(lanes=lanes, window=cfg.median)))
        return units

    def _chunk_flags(self, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
        """The chunk position's ``first`` / ``last`` this cycle; advances its counters.

        OS (:class:`rtl_gen.vector.ChunkPosition` mode ``start``): one counter, restarted by
        ``in_first``, advancing every cycle.  IS (mode ``load``): one per column, advancing
        in the cycles the column's (skewed) load is set.
        """
        R = self.R
        if self.cfg.dataflow == "os":
            pos = np.zeros(1, np.int64) if int(inputs["in_first"]) else self.position
            go = np.ones(1, dtype=bool)
        else:
            pos = self.position
            loads = self.raw_load
            go = np.array([loads[-1 - c] if (self.cfg.double_buffered and len(loads) > c)
                           else (loads[-1] if not self.cfg.double_buffered else 0)
                           for c in range(self.C)], dtype=bool)
        first, last = go & (pos == 0), go & (pos == R - 1)
        self.position = np.where(go, np.where(pos == R - 1, 0, pos + 1), pos)
        if self.cfg.dataflow == "os":
            first, last = np.repeat(first, R), np.repeat(last, R)
        return first, last

    def _through_window_units(self, inputs: dict, port: str) -> np.ndarray:
        """The windowed filters on ``port``'s lanes: the value the array side sees this cycle.

        Each unit's registered outputs are the next one's inputs; the first takes the port and
        the chunk flags.
        """
        first, last = self._chunk_flags(inputs)
        seen = self.window[-1][1].outputs()["data"]
        data = np.asarray(inputs[port], dtype=np.int64)[:len(first)]
        for name, unit in self.window:
            shown = unit.outputs()
            if name == "afd":
                unit.step({"data": data, "first": first, "last": last,
                           **{k: inputs[f"afd__{k}"] for k in ("shift", "gates", "mode",
                                                               "enable")}})
            else:
                unit.step({"data": data, "first": first, "last": last,
                           "enable": inputs["median__enable"]})
            data, first, last = shown["data"], shown["first"], shown["last"]
        return seen

    def _through_input_units(self, inputs: dict) -> dict:
        """The array-side view of this cycle's inputs, after the input units' stages.

        The filters (AFD, median) are functions of one vector, each one register stage; the
        sanity-input generator, if any, is the last stage and has state of its own.  Its
        controls travel through the filters' stages with the vector they belong to.
        """
        gen = self.generator
        if not self.units and gen is None:
            return inputs
        ports = [p for p in _ARRAY_PORTS if p in inputs]
        if gen is not None:
            ports += ["temporal__last", "temporal__batch", "checksum__clear"]
        now = {p: np.atleast_1d(np.asarray(inputs[p], np.int64)) for p in ports}
        n_stages = len(self.units) + (gen is not None)
        if not self.stage_regs:
            self.stage_regs = [{p: np.zeros_like(v) for p, v in now.items()}
                               for _ in range(n_stages)]
        old = self.stage_regs
        new = []
        for k, unit in enumerate(self.units):
            src = now if k == 0 else old[k - 1]
            stage = dict(src)
            stage["in_data"] = unit(src["in_data"], inputs)
            new.append(stage)
        seen = dict(inputs)
        if gen is not None:
            src = now if not self.units else old[len(self.units) - 1]
            shown = gen.outputs()  # the generator's registers, seen by the array this cycle
            gen.step({"i__data": src["in_data"], "i__valid": src["in_valid"][0],
                      "last": src["temporal__last"][0], "batch": src["temporal__batch"][0],
                      "clear": src["checksum__clear"][0]})
            new.append(dict(src))
            old[-1] = {**old[-1], "in_data": shown["o__data"],
                       "in_valid": np.atleast_1d(shown["o__valid"])}
            seen["sanity"] = shown["sanity"]
        self.stage_regs = new
        seen.update({p: (v if p in ("load_data", "in_data", "psum_in") else v[0])
                     for p, v in old[-1].items() if p in _ARRAY_PORTS})
        return seen

    def _write_bypass_map(self, inputs: dict) -> None:
        row = int(inputs.get("bypass__row", 0))
        # The map covers the C data columns; a sanity column (if any) is never bypassed.
        self.bypass_rdata = (int(np.dot(self.bypass[row, :self.C], 1 << np.arange(self.C)))
                             if row < self.R else 0)
        if int(inputs.get("bypass__we", 0)) and row < self.R:
            bits = int(inputs["bypass__wdata"])
            self.bypass[row, :self.C] = [(bits >> c) & 1 for c in range(self.C)]

    # -- one clock cycle -------------------------------------------------------------------
    def step(self, inputs: dict) -> None:
        """Advance one clock cycle with ``inputs`` (port name → value) on the top's input ports."""
        cfg, C, NC = self.cfg, self.C, self.NC
        if self.extra:  # the delay registers of the checkers' flags take this cycle's values
            now = {k: v.copy() if isinstance(v, np.ndarray) else v
                   for k, v in self._checker_outputs().items()}
            self.late = self.late[1:] + [now]
        inputs = dict(inputs)
        os_flow = cfg.dataflow == "os"
        if not os_flow:
            self.raw_load.append(int(inputs["load"]))
        if self.window:
            # IS: the load lanes, the load flag delayed as long; OS: the activations
            port = "act_in" if os_flow else "load_data"
            inputs[port] = self._through_window_units(inputs, port)
            if not os_flow:
                lead = cfg.filter_lead
                inputs["load"] = (self.raw_load[-1 - lead] if len(self.raw_load) > lead else 0)
        if os_flow:
            extra = []
            if cfg.temporal:  # the sanity row: the negated sum of the step's activations
                total = -np.asarray(inputs["act_in"], dtype=np.int64).sum()
                extra.append(wrap(total, cfg.sanity_row_width))
            inputs["act_in"] = np.append(np.asarray(inputs["act_in"], np.int64), extra)
            if cfg.spatial:
                inputs["weight_in"] = np.append(np.asarray(inputs["weight_in"], np.int64),
                                                np.int64(inputs["sanity_weight_in"]))
        elif NC > C:  # the sanity column's ports extend the column vectors
            sanity_ld = inputs.get("sanity_load_data", 0)  # (IS: made below, in hardware)
            inputs["load_data"] = np.append(np.asarray(inputs["load_data"], np.int64),
                                            np.int64(sanity_ld))
            inputs["psum_in"] = np.append(np.asarray(inputs["psum_in"], np.int64),
                                          np.int64(inputs["sanity_psum_in"]))
        if not os_flow:
            inputs = self._through_input_units(inputs)
            if self.load_gen is not None:
                lanes = np.asarray(inputs["load_data"], np.int64)
                bmap = self.bypass[:self.R, :C] if cfg.bypass else None
                lanes[C] = self.load_gen.output(lanes[:C], bmap)
                self.load_gen.step(lanes[:C], int(inputs["load"]), bmap)
                inputs["load_data"] = lanes
        for port, value in inputs.items():
            self.hist.setdefault(port, []).append(np.atleast_1d(np.asarray(value, np.int64)))
        closing = None
        if os_flow:
            bottom, valid, drained0, closing = self._step_os()
        else:
            bottom, valid = self._step_stationary(inputs)
        self.bottom_hist.append(bottom)
        # Deskew: column c is delayed NC-1-c cycles (NC-1-c = 0 is a wire).
        lanes = np.array([self.bottom_hist[-1 - (NC - 1 - c)][c]
                          if len(self.bottom_hist) > NC - 1 - c else 0 for c in range(NC)],
                         dtype=np.int64)
        array_out = lanes[:C]
        checked = lanes
        if os_flow and cfg.output_stage and cfg.checksum != "none":
            # OS: the checkers add the bias the output stage adds (and the sanity bias)
            bias = np.asarray(inputs["bias"], dtype=np.int64)
            if cfg.spatial:
                bias = np.append(bias, np.int64(inputs["sanity_bias"]))
            checked = wrap(lanes + bias, self.P)
        data_valid = valid
        if self.tchecker is not None:
            # Sanity vectors (the generator's flag, delayed like the data; OS: the sanity row,
            # drained first, and the tile's last row closes the batch) are checked, never
            # results.
            if os_flow:
                last, data_valid = closing, valid and not drained0
            else:
                last = int(self._delayed("sanity", self.R + NC, 1)[0])
                data_valid = valid and not last
            self.tchecker.step({"data": checked, "valid": int(valid), "last": int(last),
                                "expected": inputs["temporal__expected"],
                                "threshold": int(inputs["temporal__threshold"]),
                                "clear": int(inputs["checksum__clear"])})
        if self.checker is not None:
            self.checker.step({"data": checked, "valid": int(data_valid), "expected": 0,
                               "threshold": int(inputs["checksum__threshold"]),
                               "clear": int(inputs["checksum__clear"])})
            self.sanity_acc_out = int(lanes[C])
        if self.controller is not None:
            # The buffer captures the vector the output stage shows now, before it advances.
            unit, entry, fields = self._buffer
            ctl = {"cap_en": int(self.out_valid) & int(inputs[f"{unit}__capture"]),
                   "cap_clear": inputs[f"{unit}__cap_clear"],
                   "cap_data": self.fixed.outputs() if self.fixed is not None else self.q_out,
                   f"{entry}_wr_en": inputs[f"{unit}__{entry}_we"],
                   f"{entry}_wr_index": inputs[f"{unit}__{entry}_index"],
                   f"n_{entry}s": inputs[f"{unit}__n_{entry}s"],
                   "start": inputs[f"{unit}__start"], "buf_rd_row": inputs[f"{unit}__rd_row"]}
            ctl.update({f"{entry}_wr_{f}": inputs[f"{unit}__{entry}_{f}"] for f in fields})
            self.controller.step(ctl)
        self._output_stage(inputs, array_out, int(data_valid))
        if cfg.bypass:
            self._write_bypass_map(inputs)  # after the PEs used this cycle's map
        self.cycle += 1

    def _output_stage(self, inputs: dict, array_out: np.ndarray, valid: int) -> None:
        """The output stage's registers: one stage, or the fixed-point path's four."""
        cfg, C = self.cfg, self.C
        q = None
        if cfg.output_stage:
            split = None
            if cfg.lcu:
                split = (int(inputs["split"]) >> np.arange(C)) & 1 == 1
            q = output_stage(array_out, inputs["bias"], bool(inputs["relu"]),
                             int(inputs["shift"]), cfg.a_width, split=split)
        if not self.extra:
            self.acc_out, self.out_valid = array_out, valid
            if q is not None:
                self.q_out = q
            return
        self.fixed.step(array_out + np.asarray(inputs["bias"], dtype=np.int64),
                        pow2=self.pow2_delay[0], fixed=int(inputs["requant__fixed"]),
                        multiplier=inputs["requant__multiplier"],
                        right_shift=inputs["requant__shift"],
                        zero_point=int(inputs["requant__zero_point"]),
                        lo=int(inputs["requant__lo"]), hi=int(inputs["requant__hi"]))
        self.acc_out, self.out_valid = self.acc_delay[0], self.valid_delay[0]
        self.acc_delay = self.acc_delay[1:] + [array_out]
        self.pow2_delay = self.pow2_delay[1:] + [q]
        self.valid_delay = self.valid_delay[1:] + [valid]

    def _step_stationary(self, inputs: dict):
        R, C, P = self.R, self.NC, self.P  # C: columns of PEs built
        ws = self.cfg.dataflow == "ws"
        stat_q = self._read(self.stat, "weight" if ws else "act")
        move_q = self._read(self.move, "act" if ws else "weight")
        psum_q = self._read(self.psum, "psum")
        bottom = psum_q[R - 1].copy()  # seen by the deskew this cycle

        move_in = np.empty((R, C), dtype=np.int64)
        move_in[:, 1:] = move_q[:, :-1]
        move_in[:, 0] = [self._delayed("in_data", r, R)[r] for r in range(R)]
        psum_in = np.empty((R, C), dtype=np.int64)
        psum_in[1:] = psum_q[:-1]
        psum_in[0] = [self._delayed("psum_in", c + 1, C)[c] for c in range(C)]
        stat_in = np.empty((R, C), dtype=np.int64)
        stat_in[1:] = stat_q[:-1]
        stat_in[0] = np.asarray(inputs["load_data"], dtype=np.int64)

        if self.cfg.double_buffered:
            # The load chain runs through the shadows, column c c cycles after column 0; the
            # swap flag rides the skewed stream and moves the shadow into the stationary reg.
            shadow_q = self._read(self.shadow, "shadow")
            stat_in[1:] = shadow_q[:-1]
            load = np.array([self._delayed("load", c, 1)[0] for c in range(C)], dtype=bool)
            swap_in = np.empty((R, C), dtype=np.int64)
            swap_in[:, 1:] = self.swap[:, :-1]
            swap_in[:, 0] = [self._delayed("swap", r, 1)[0] for r in range(R)]
            self.shadow = np.where(load[None, :], stat_in, shadow_q)
            self.stat = np.where(swap_in.astype(bool), shadow_q, stat_q)
            self.swap = swap_in
        else:
            self.stat = stat_in if int(inputs["load"]) else stat_q
        self.move = move_in
        # A bypassed PE forwards the partial sum it receives (Fig. 10.2-A).
        # The MAC-logic fault sites: the multiplier's product and the adder's sum.
        mac = self._read(wrap(psum_in + self._read(stat_q * move_q, "product"), P), "sum")
        self.psum = np.where(self.bypass, psum_in, mac)
        valid = self._delayed("in_valid", self.cfg.array_latency, 1)[0]
        return bottom, valid

    def _step_os(self):
        R, C, P = self.NR, self.NC, self.P  # the rows and columns of PEs built
        act_q = self._read(self.act, "act")
        weight_q = self._read(self.weight, "weight")
        psum_q = self._read(self.psum, "psum")
        bottom = self.drain_b[R - 1].copy()

        act_in = np.empty((R, C), dtype=np.int64)
        act_in[:, 1:] = act_q[:, :-1]
        act_in[:, 0] = [self._delayed("act_in", r, R)[r] for r in range(R)]
        last_in = np.empty((R, C), dtype=np.int64)
        last_in[:, 1:] = self.last[:, :-1]
        last_in[:, 0] = [self._delayed("in_last", r, 1)[0] for r in range(R)]
        weight_in = np.empty((R, C), dtype=np.int64)
        weight_in[1:] = weight_q[:-1]
        weight_in[0] = [self._delayed("weight_in", c, C)[c] for c in range(C)]
        drain_in = np.zeros((R, C), dtype=np.int64)
        drain_in[1:] = self.drain_b[:-1]

        total = self._read(wrap(psum_q + self._read(act_q * weight_q, "product"), P), "sum")
        last = self.last.astype(bool)
        self.drain_b = self.drain_a
        # A bypassed PE's pinned output is forced to zero (Fig. 10.2-B).
        self.drain_a = np.where(last, np.where(self.bypass, 0, total), drain_in)
        self.psum = np.where(last, 0, total)
        self.act, self.weight, self.last = act_in, weight_in, last_in

        # The R drained rows (the sanity row first) leave on consecutive cycles.
        first = bool(self._delayed("in_last", R + C + 1, 1)[0])
        valid = first or self.remaining != 0
        closing = not first and self.remaining == 1
        if first:
            self.remaining = R - 1
        elif self.remaining:
            self.remaining -= 1
        return bottom, valid, first, closing
