"""Golden models of the systolic array: functional (what it computes) and cycle-level (how).

``cfg`` below is an :class:`rtl_gen.config.AcceleratorConfig`; its derived quantities
(latency, widths, which units are built) are read from its properties, never recomputed here.

* :func:`matmul` — the exact product, accumulated tile by tile in the driver's order
  (:mod:`golden.mapping`), with every partial sum checked against the accumulator range:
  overflow is reported (:class:`AccumulatorOverflow`), never wrapped silently.
* :func:`latency`, :func:`cycle_count` — the cycle model: closed formulas, written apart from
  the schedule builder so that a test can hold the two (and the RTL) against each other.
* :class:`ArrayCycleModel` — register-level, cycle-by-cycle model of the accelerator top
  (skew, PEs, deskew, output stage), in numpy over the whole R×C grid.  It is the fault model:
  with a :class:`golden.faults.Fault` it reproduces the faulty outputs of the RTL bit for bit,
  because it applies the same saboteur to the same register in the same cycle.
"""

from __future__ import annotations

import numpy as np

from .bits import wrap
from .faults import Fault, sabotage
from .mapping import ceil_div, tiles
from .output_stage import output_stage

__all__ = ["AccumulatorOverflow", "matmul", "checked_product", "latency", "cycle_count", "pass_gap",
           "ArrayCycleModel", "temporal_batch_max", "temporal_stream_len"]


class AccumulatorOverflow(ArithmeticError):
    """A partial sum left the configured accumulator range."""


def _acc_range(acc_bits: int) -> tuple[int, int]:
    return -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1


def _check(x: np.ndarray, acc_bits: int, what: str) -> None:
    lo, hi = _acc_range(acc_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        bad = x.max() if x.max() > hi else x.min()
        raise AccumulatorOverflow(
            f"{what}: partial sum {int(bad)} does not fit the {acc_bits}-bit accumulator "
            f"[{lo}, {hi}]; raise max_k or acc_width")


def matmul(cfg, A: np.ndarray, B: np.ndarray, bias=None) -> np.ndarray:
    """Exact ``A @ B (+ bias)`` as int64, checked for accumulator overflow in driver order.

    Bias enters where the hardware adds it (``cfg.bias_in_psum``): WS and OS in the output
    stage (after the whole reduction, with one extra bit, so it cannot overflow the
    accumulator); IS, and WS with a checksum, through ``psum_in`` ahead of the first K-tile
    (so it is part of every partial sum checked).
    """
    return checked_product(cfg.dataflow, cfg.rows, cfg.cols, cfg.acc_bits, A, B, bias,
                           bias_in_psum=cfg.bias_in_psum)


def checked_product(dataflow: str, rows: int, cols: int, acc_bits: int, A, B, bias=None, *,
                    bias_in_psum: bool) -> np.ndarray:
    """:func:`matmul` for an array given by its shape and accumulator width alone.

    Raises
    ------
    AccumulatorOverflow
        A running partial sum leaves the ``acc_bits``-bit range (tile order of
        :func:`golden.mapping.tiles`).
    """
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    M, K = A.shape
    N = B.shape[1]
    bias_v = np.zeros(N, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    out = np.zeros((M, N), dtype=np.int64)
    P = acc_bits
    early = bias_in_psum
    if early:
        out += bias_v[None, :]
        _check(out, P, "bias")
    for t in tiles(dataflow, rows, cols, M, K, N):
        a = A[t.m0:t.m1, t.k0:t.k1]
        b = B[t.k0:t.k1, t.n0:t.n1]
        block = out[t.m0:t.m1, t.n0:t.n1]
        if dataflow == "os":
            # The PE adds one product per cycle: check every running sum along K.
            running = np.cumsum(a[:, :, None] * b[None, :, :], axis=1)
            _check(running, P, "OS accumulation")
            block += running[:, -1, :]
        else:
            # Partial sums run down a column, one product per PE row.
            running = block[:, None, :] + np.cumsum(a[:, :, None] * b[None, :, :], axis=1)
            _check(running, P, f"{dataflow.upper()} column reduction")
            block[...] = running[:, -1, :]
    if not early:
        out += bias_v[None, :]
    return out


def latency(cfg) -> int:
    """Cycles from an input vector to its output vector at the top's ports.

    :attr:`rtl_gen.config.AcceleratorConfig.latency`: **R + C + 1** for WS / IS, **R + C + 2**
    for OS (from the cycle carrying ``in_last`` to the first result row), plus one cycle per
    input unit and per sanity column.
    """
    return cfg.latency


def temporal_batch_max(cfg) -> int:
    """Largest run-time batch size N: ``2**temporal_batch_bits − 1`` data vectors."""
    return cfg.temporal_batch_max


def temporal_stream_len(stream: int, batch: int) -> int:
    """Cycles a pass of ``stream`` vectors occupies with a temporal batch of ``batch``: one
    sanity vector (an idle cycle at the ports) after every batch, the short last one included:
    ``stream + ceil(stream / batch)``, a throughput of N/(N+1) (000 L1253)."""
    return stream + ceil_div(stream, batch)


def pass_gap(cfg, stream_len: int) -> int:
    """Idle cycles between the last streamed vector of a WS/IS pass and the next load.

    The next load may start once the last vector's wavefront has left PE (R−1, C−1):
    R + C − 2 idle cycles.  When K-tiles chain their partial sums, the first result of a
    pass must also be out before the next pass streams it back in (``L − R − stream_len``).
    """
    return max(cfg.rows + cfg.array_cols - 2, cfg.latency - cfg.rows - stream_len, 0)


def cycle_count(cfg, M: int, K: int, N: int, temporal_batch: int | None = None) -> int:
    """Cycles the driver takes for an M×K @ K×N product, from the first input to the last
    output inclusive (see :mod:`golden.schedule`); with the temporal checksum, for batches of
    ``temporal_batch`` vectors (default :func:`temporal_batch_max`)."""
    R, C = cfg.rows, cfg.cols
    L = cfg.latency
    if cfg.dataflow == "os":
        n_tiles = ceil_div(M, R) * ceil_div(N, C)
        return cfg.config_cycles + n_tiles * max(K, R) + L + R - 1
    stream = M if cfg.dataflow == "ws" else N
    if cfg.temporal:
        stream = temporal_stream_len(stream, temporal_batch or cfg.temporal_batch_max)
    outer = ceil_div(N, C) if cfg.dataflow == "ws" else ceil_div(M, C)
    passes = outer * ceil_div(K, R)
    return (cfg.config_cycles + (passes - 1) * (R + stream + pass_gap(cfg, stream))
            + R + stream + L)


#: Array inputs that pass through the input units' pipeline stages.
_ARRAY_PORTS = ("load", "load_data", "in_valid", "in_data", "psum_in")


class ArrayCycleModel:
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
        z = lambda: np.zeros((R, NC), dtype=np.int64)  # noqa: E731
        self.cycle = 0
        if cfg.dataflow == "os":
            self.act, self.weight, self.last, self.psum = z(), z(), z(), z()
            self.drain_a, self.drain_b = z(), z()
            self.remaining = 0
        else:
            self.stat, self.move, self.psum = z(), z(), z()
        self.hist: dict[str, list] = {}
        self.units = self._make_units()
        self.stage_regs: list[dict] = []
        self.bypass = np.zeros((R, NC), dtype=bool)  # the sanity column is never bypassed
        self.bypass_rdata = 0
        self.checker = None
        if NC > C:
            from .checksum import SpatialCheckerModel
            self.checker = SpatialCheckerModel(width=self.P, n=NC, residue_bits=self.P)
        self.generator = self.tchecker = None
        if cfg.temporal:
            from .checksum import SanityInputGeneratorModel, TemporalCheckerModel
            bb = cfg.temporal_batch_bits
            self.generator = SanityInputGeneratorModel(width=cfg.a_width, n_lanes=R,
                                                       batch_bits=bb, out_width=cfg.stream_width)
            self.tchecker = TemporalCheckerModel(width=self.P, n_lanes=NC, batch_bits=bb,
                                                 residue_bits=cfg.temporal_check_bits)
        self.controller = None
        if cfg.lcu:
            from .lcu import ControllerModel
            self.controller = ControllerModel(width=cfg.a_width, depth=cfg.lcu_depth,
                                              max_pairs=cfg.lcu_max_pairs, lanes=C,
                                              capture=True)
        self.sanity_acc_out = 0
        self.bottom_hist: list[np.ndarray] = []
        self.valid_hist: list[int] = []
        self.acc_out = np.zeros(C, dtype=np.int64)
        self.q_out = np.zeros(C, dtype=np.int64)
        self.out_valid = 0

    # -- helpers ---------------------------------------------------------------------------
    def _read(self, regs: np.ndarray, register: str) -> np.ndarray:
        out = regs
        for f in self.faults:
            if f.register != register or not f.active(self.cycle):
                continue
            if f.row >= self.R or f.col >= self.NC:
                continue
            if out is regs:
                out = regs.copy()
            width = self.cfg.register_width(register, f.col)
            out[f.row, f.col] = sabotage(out[f.row, f.col], width, f.bit, f.mode)
        return out

    def _delayed(self, port: str, d: int, n: int) -> np.ndarray:
        """The value port ``port`` had ``d`` cycles ago (zero before the first cycle)."""
        h = self.hist[port]
        i = len(h) - 1 - d
        return h[i] if i >= 0 else np.zeros(n, dtype=np.int64)

    def outputs(self) -> dict[str, np.ndarray | int]:
        out = {"out_valid": self.out_valid, "acc_out": self.acc_out.copy(),
               "q_out": self.q_out.copy(), "bypass_rdata": self.bypass_rdata}
        if self.checker is not None:
            chk = self.checker.outputs()
            out.update({"sanity_acc_out": self.sanity_acc_out, "checksum_error": chk["error"],
                        "checksum_alarm": chk["alarm"], "checksum_first": chk["first_index"],
                        "checksum_syndrome": chk["checksum"]})
        if self.controller is not None:
            ctl = self.controller.outputs()
            rd = ctl["buf_rd_rows"]  # None: the read was issued while busy; the top shows 0
            out.update({"lcu_busy": ctl["busy"], "lcu_done": ctl["done"],
                        "lcu_cap_row": ctl["cap_row"],
                        "lcu_rd_data": np.zeros(self.C, np.int64) if rd is None else rd.copy()})
        if self.tchecker is not None:
            chk = self.tchecker.outputs()
            out.update({"temporal_checked": chk["checked"], "temporal_error": chk["error"],
                        "temporal_lanes": chk["lane_errors"], "temporal_alarm": chk["alarm"],
                        "temporal_first": chk["first_index"],
                        "temporal_overrun": self.generator.outputs()["overrun"]})
        return out

    # -- input units (WS): each is one registered stage in front of the skew -------------------
    def _make_units(self):
        cfg = self.cfg
        units = []
        if cfg.afd:
            from .afd import anomaly_suppression

            def afd(vec, ctl):
                return anomaly_suppression(vec, width=cfg.a_width, shift=int(ctl["afd_shift"]),
                                           gates=int(ctl["afd_gates"]), mode=int(ctl["afd_mode"]),
                                           enable=int(ctl["afd_enable"]))
            units.append(afd)
        if cfg.median:
            from .median import median_filter

            def median(vec, ctl):
                if not int(ctl["median_enable"]):
                    return np.asarray(vec, dtype=np.int64)
                return median_filter(vec, window=cfg.median)
            units.append(median)
        return units

    def _through_input_units(self, inputs: dict) -> dict:
        """The array-side view of this cycle's inputs, after the input units' stages.

        The filters (AFD, median) are functions of one vector, each one register stage; the
        sanity-input generator, if any, is the last stage and has state of its own.  Its
        controls travel through the filters' stages with the vector they belong to.
        """
        gen = self.generator
        if not self.units and gen is None:
            return inputs
        ports = list(_ARRAY_PORTS)
        if gen is not None:
            ports += ["temporal_last", "temporal_batch", "checksum_clear"]
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
            gen.step({"in_data": src["in_data"], "in_valid": src["in_valid"][0],
                      "in_last": src["temporal_last"][0], "batch": src["temporal_batch"][0],
                      "clear": src["checksum_clear"][0]})
            new.append(dict(src))
            old[-1] = {**old[-1], "in_data": shown["out_data"],
                       "in_valid": np.atleast_1d(shown["out_valid"])}
            seen["sanity"] = shown["out_sanity"]
        self.stage_regs = new
        seen.update({p: (v if p in ("load_data", "in_data", "psum_in") else v[0])
                     for p, v in old[-1].items() if p in _ARRAY_PORTS})
        return seen

    def _write_bypass_map(self, inputs: dict) -> None:
        row = int(inputs.get("bypass_row", 0))
        # The map covers the C data columns; a sanity column (if any) is never bypassed.
        self.bypass_rdata = (int(np.dot(self.bypass[row, :self.C], 1 << np.arange(self.C)))
                             if row < self.R else 0)
        if int(inputs.get("bypass_we", 0)) and row < self.R:
            bits = int(inputs["bypass_wdata"])
            self.bypass[row, :self.C] = [(bits >> c) & 1 for c in range(self.C)]

    # -- one clock cycle -------------------------------------------------------------------
    def step(self, inputs: dict) -> None:
        cfg, C, NC = self.cfg, self.C, self.NC
        if NC > C:  # the sanity column's ports extend the column vectors
            inputs = dict(inputs)
            for port, extra in (("load_data", "sanity_load_data"), ("psum_in", "sanity_psum_in")):
                inputs[port] = np.append(np.asarray(inputs[port], np.int64),
                                         np.int64(inputs[extra]))
        if cfg.dataflow != "os":
            inputs = self._through_input_units(inputs)
        for port, value in inputs.items():
            self.hist.setdefault(port, []).append(np.atleast_1d(np.asarray(value, np.int64)))
        if cfg.dataflow == "os":
            bottom, valid = self._step_os()
        else:
            bottom, valid = self._step_stationary(inputs)
        self.bottom_hist.append(bottom)
        # Deskew: column c is delayed NC-1-c cycles (NC-1-c = 0 is a wire).
        lanes = np.array([self.bottom_hist[-1 - (NC - 1 - c)][c]
                          if len(self.bottom_hist) > NC - 1 - c else 0 for c in range(NC)],
                         dtype=np.int64)
        array_out = lanes[:C]
        if self.tchecker is not None:
            # Sanity vectors (the generator's flag, delayed like the data) close a batch and
            # are checked, never results.
            sanity = int(self._delayed("sanity", self.R + NC, 1)[0])
            self.tchecker.step({"data": lanes, "valid": int(valid), "last": sanity,
                                "expected": inputs["temporal_expected"],
                                "threshold": int(inputs["temporal_threshold"]),
                                "clear": int(inputs["checksum_clear"])})
            valid = valid and not sanity
        if self.checker is not None:
            self.checker.step({"data": lanes, "valid": int(valid), "expected": 0,
                               "threshold": int(inputs["checksum_threshold"]),
                               "clear": int(inputs["checksum_clear"])})
            self.sanity_acc_out = int(lanes[C])
        if self.controller is not None:
            # The buffer captures the vector the output stage shows now, before it advances.
            self.controller.step({
                "cap_en": int(self.out_valid) & int(inputs["lcu_capture"]),
                "cap_clear": inputs["lcu_cap_clear"], "cap_data": self.q_out,
                "pair_wr_en": inputs["lcu_pair_we"], "pair_wr_index": inputs["lcu_pair_index"],
                "pair_wr_a": inputs["lcu_pair_a"], "pair_wr_b": inputs["lcu_pair_b"],
                "n_pairs": inputs["lcu_n_pairs"], "start": inputs["lcu_start"],
                "buf_rd_row": inputs["lcu_rd_row"]})
        # Output stage register.
        self.acc_out = array_out
        if cfg.output_stage:
            split = None
            if self.controller is not None:
                split = (int(inputs["split"]) >> np.arange(C)) & 1 == 1
            self.q_out = output_stage(array_out, inputs["bias"], bool(inputs["relu"]),
                                      int(inputs["shift"]), cfg.a_width, split=split)
        self.out_valid = int(valid)
        if cfg.bypass:
            self._write_bypass_map(inputs)  # after the PEs used this cycle's map
        self.cycle += 1

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

        self.stat = stat_in if int(inputs["load"]) else stat_q
        self.move = move_in
        # A bypassed PE forwards the partial sum it receives (Fig. 10.2-A).
        self.psum = np.where(self.bypass, psum_in, wrap(psum_in + stat_q * move_q, P))
        valid = self._delayed("in_valid", self.cfg.array_latency, 1)[0]
        return bottom, valid

    def _step_os(self):
        R, C, P = self.R, self.NC, self.P  # C: columns of PEs built
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

        total = wrap(psum_q + act_q * weight_q, P)
        last = self.last.astype(bool)
        self.drain_b = self.drain_a
        # A bypassed PE's pinned output is forced to zero (Fig. 10.2-B).
        self.drain_a = np.where(last, np.where(self.bypass, 0, total), drain_in)
        self.psum = np.where(last, 0, total)
        self.act, self.weight, self.last = act_in, weight_in, last_in

        first = self._delayed("in_last", self.cfg.array_latency, 1)[0]
        valid = bool(first) or self.remaining != 0
        if first:
            self.remaining = R - 1
        elif self.remaining:
            self.remaining -= 1
        return bottom, valid

