"""One product on the RTL, checked and reported: what ``rtlgen matmul`` runs.

:func:`prepare` validates a product and every run-time option against the configuration
*before* anything is simulated or written (every problem is a
:class:`~ftaccel.config.ConfigError` naming the value and what would be valid), and
builds the driver program.  :func:`run_product` simulates it with
:func:`tb.accelerator.rtl_matmul` (and, to check it, the golden cycle model on the same
program) and returns a :class:`ProductRun`; :meth:`ProductRun.record` is the machine-readable result
(``rtlgen matmul --json``).

The accumulator guard (:func:`accumulator_bound`) is operand-based: it refuses a product when
some partial sum *could* leave the accumulator for these operands, in any summation order:
``max over (m, n) of Σ_k |A[m,k]|·|B[k,n]| (+ |bias[n]| where the bias enters the partial
sums)`` must be at most ``2**(P−1) − 1`` for the ``P``-bit accumulator, explicit or derived.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ftaccel.config import FAULT_CONTROLS, AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.faults import Fault, sabotage
from ftaccel.golden.mapping import ceil_div
from ftaccel.golden.output_stage import Requant
from ftaccel.golden.results import alarm_report, mismatch_report
from ftaccel.golden.schedule import (
    Program,
    assemble,
    assemble_corrected,
    build_program,
    check_requant,
)
from ftaccel.rtl_gen.afd import shift_port_width

from .accelerator import RTLRun, mismatches, rtl_matmul

__all__ = ["RunOptions", "ProductRun", "check_operands", "accumulator_bound",
           "check_accumulator", "prepare", "run_product", "result_vectors"]

#: Largest shift accepted (the output stage's 6-bit port, one left for a split column).
MAX_SHIFT = 62


@dataclass
class RunOptions:
    """The run-time inputs of one product (every unit's controls; defaults = off / exact).

    ``bias_error = (column, bit, row)`` flips ``bit`` of the bias word of ``column`` on its
    way into the partial sums, for output row ``row`` only or (``row = None``) for the stored
    word, i.e. every row (Table 6.1's bias row; WS with a checksum).  ``requant`` replaces
    ``relu``/``shift`` with a :class:`golden.output_stage.Requant` (the fixed-point path needs
    ``requant = "multiplier"`` in the configuration).
    """

    bias: np.ndarray | None = None
    relu: bool = False
    shift: int = 0
    fault: Fault | None = None
    bypass_map: np.ndarray | None = None
    afd: dict | None = None
    median_enable: bool = True
    split: np.ndarray | None = None
    lcu_pairs: np.ndarray | None = None
    tmr_triples: np.ndarray | None = None
    temporal_batch: int | None = None
    bias_error: tuple[int, int, int | None] | None = None
    checksum_threshold: int | None = None
    temporal_threshold: int | None = None
    requant: Requant | None = None

    def units(self, cfg: AcceleratorConfig, A: np.ndarray) -> dict:
        """Keyword arguments of :func:`golden.schedule.build_program` for the units."""
        units: dict = {}
        if self.bypass_map is not None:
            units["bypass_map"] = np.asarray(self.bypass_map).astype(bool)
        if self.afd is not None:
            units["afd"] = dict(self.afd)
        if cfg.median:
            units["median_enable"] = bool(self.median_enable)
        if self.split is not None:
            units["split"] = np.asarray(self.split, dtype=bool)
        if self.lcu_pairs is not None:
            units["lcu_pairs"] = np.asarray(self.lcu_pairs, dtype=np.int64).reshape(-1, 2)
        if self.tmr_triples is not None:
            units["tmr_triples"] = np.asarray(self.tmr_triples, dtype=np.int64).reshape(-1, 3)
        if self.temporal_batch is not None:
            units["temporal_batch"] = int(self.temporal_batch)
        if self.checksum_threshold is not None:
            units["checksum_threshold"] = int(self.checksum_threshold)
        if self.temporal_threshold is not None:
            units["temporal_threshold"] = int(self.temporal_threshold)
        if self.requant is not None:
            units["requant"] = self.requant
        if self.bias_error is not None:
            col, bit, row = self.bias_error
            word = 0 if self.bias is None else int(self.bias[col])
            delta = sabotage(word, cfg.acc_bits, bit, "flip") - word
            units["bias_error"] = (row, col, delta)
        return units

    def summary(self) -> dict:
        """The options as JSON values (arrays summarised)."""
        out = {"relu": bool(self.relu), "shift": int(self.shift),
               "bias": self.bias is not None,
               "fault": None if self.fault is None else vars(self.fault).copy()}
        if self.bypass_map is not None:
            out["bypassed_pes"] = np.argwhere(np.asarray(self.bypass_map)).tolist()
        if not self.median_enable:
            out["median_enable"] = False
        for name in ("afd", "temporal_batch", "checksum_threshold", "temporal_threshold"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.split is not None:
            out["split_columns"] = np.nonzero(self.split)[0].tolist()
        if self.lcu_pairs is not None:
            out["lcu_pairs"] = np.asarray(self.lcu_pairs).reshape(-1, 2).tolist()
        if self.tmr_triples is not None:
            out["tmr_triples"] = np.asarray(self.tmr_triples).reshape(-1, 3).tolist()
        if self.bias_error is not None:
            col, bit, row = self.bias_error
            out["bias_error"] = {"column": col, "bit": bit, "row": row}
        if self.requant is not None:
            rq = self.requant
            out["requant"] = {"path": "fixed" if rq.fixed else "shift",
                              "shift": np.asarray(rq.shift).tolist(), "relu": bool(rq.relu)}
            if rq.fixed:
                out["requant"].update({
                    "multiplier": np.asarray(rq.multiplier).tolist(),
                    "zero_point": int(rq.zero_point),
                    "lo": None if rq.lo is None else int(rq.lo),
                    "hi": None if rq.hi is None else int(rq.hi)})
        return out


# -- validation ------------------------------------------------------------------------------
def _integers(name: str, arr, width: int, ndim: int) -> np.ndarray:
    """Return ``arr`` as int64 if it is an integer array that fits.

    It must have ``ndim`` dimensions and values of ``width`` bits signed; float arrays holding
    integers are accepted.
    """
    arr = np.asarray(arr)
    if arr.ndim != ndim:
        want = "a matrix (2-D)" if ndim == 2 else "a vector (1-D)"
        raise ConfigError(f"{name} shape", arr.shape, want)
    if arr.size == 0:
        raise ConfigError(f"{name} shape", arr.shape, "at least one element")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ConfigError(f"{name} values", str(arr.dtype), "integers (got non-integral "
                              "or non-finite floats)")
    elif arr.dtype.kind not in "iub":
        raise ConfigError(f"{name} dtype", str(arr.dtype), "an integer array")
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    amin, amax = arr.min(), arr.max()
    if amin < lo or amax > hi:
        raise ConfigError(f"{name} values", (int(amin), int(amax)),
                          f"integers that fit {width}-bit signed [{lo}, {hi}]")
    return arr.astype(np.int64)


def check_operands(cfg: AcceleratorConfig, A, B, bias=None):
    """``(A, B, bias)`` as int64 after checking shapes, types and ranges against ``cfg``."""
    A = _integers("A", A, cfg.a_width, 2)
    B = _integers("B", B, cfg.w_width, 2)
    if A.shape[1] != B.shape[0]:
        raise ConfigError("B shape", B.shape,
                          f"{A.shape[1]} rows: shapes do not chain, A is {A.shape[0]}×"
                          f"{A.shape[1]} (M×K) so B must be {A.shape[1]}×N (K×N)")
    if bias is not None:
        bias = _integers("bias", bias, cfg.acc_bits, 1)
        if bias.shape != (B.shape[1],):
            raise ConfigError("bias shape", bias.shape,
                              f"({B.shape[1]},): one value per column of B")
    return A, B, bias


def accumulator_bound(cfg: AcceleratorConfig, A: np.ndarray, B: np.ndarray,
                      bias=None) -> tuple[int, tuple[int, int]]:
    """The largest partial-sum magnitude these operands can reach, and the output where.

    ``Σ_k |A[m,k]|·|B[k,n]|`` (plus ``|bias[n]|`` where the bias enters the partial sums)
    bounds every partial sum of ``C[m, n]`` whatever the order of the sum, so it also holds
    across K-tiles.  Exact in int64: operands are ≤ 16 bits and K ≤ 2**24.
    """
    bound = np.abs(A) @ np.abs(B)
    if bias is not None and cfg.bias_in_psum:
        bound = bound + np.abs(np.asarray(bias, dtype=np.int64))[None, :]
    m, n = np.unravel_index(int(np.argmax(bound)), bound.shape)
    return int(bound[m, n]), (int(m), int(n))


def check_accumulator(cfg: AcceleratorConfig, A, B, bias=None) -> None:
    """Refuse a product whose partial sums could overflow the accumulator (module docstring)."""
    worst, (m, n) = accumulator_bound(cfg, A, B, bias)
    limit = (1 << (cfg.acc_bits - 1)) - 1
    if worst <= limit:
        return
    need = worst.bit_length() + 1
    how = "acc_width" if cfg.acc_width is not None else "max_k or acc_width"
    advice = (f"an accumulator of at least {need} bits (raise {how})" if need <= 60 else
              "operands whose sums fit 60 bits")
    terms = "Σk |A[m,k]|·|B[k,n]|" + (" + |bias[n]|" if bias is not None
                                       and cfg.bias_in_psum else "")
    raise ConfigError("accumulator width", cfg.acc_bits,
                      f"too narrow for these operands: the partial sums of C[{m}, {n}] can "
                      f"reach {worst:,} ({terms}), beyond {limit:,}; needs {advice}")


def result_vectors(cfg: AcceleratorConfig, M: int, N: int) -> int:
    """Result vectors a product shows at the outputs (output-buffer rows the LCU needs)."""
    if cfg.dataflow == "is":
        return N * ceil_div(M, cfg.cols)
    return M * ceil_div(N, cfg.cols)


def _buffered(cfg: AcceleratorConfig) -> bool:
    """``cfg`` has the output buffer (with the LCU or the TMR voter) and its read-back."""
    return cfg.lcu or cfg.tmr != "none"


def _check_range(name: str, value, lo: int, hi: int, what: str = "an integer") -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise ConfigError(name, value, f"{what} from {lo} to {hi}")
    return value


def _check_fault(cfg: AcceleratorConfig, fault: Fault) -> None:
    if not cfg.fault_hooks:
        raise ConfigError("fault_hooks", cfg.fault_hooks, "true to inject a fault")
    nc = cfg.array_cols
    if fault.row >= cfg.rows or fault.col >= nc:
        extra = f" (column {cfg.cols} is the sanity column)" if nc > cfg.cols else ""
        raise ConfigError("fault PE", (fault.row, fault.col),
                          f"a PE of the {cfg.rows}×{nc} array{extra}")
    if fault.register == "shadow" and not cfg.double_buffered:
        raise ConfigError("fault register", "shadow", "weight, act, psum, product or sum: only a "
                          "double-buffered WS/IS PE has a shadow register")
    width = cfg.register_width(fault.register, fault.col)
    if fault.bit >= width:
        raise ConfigError("fault bit", fault.bit,
                          f"a bit of the {width}-bit {fault.register} register (0 … {width - 1})")


def _check_units(cfg: AcceleratorConfig, opts: RunOptions, M: int, N: int) -> None:
    R, C = cfg.rows, cfg.cols
    if opts.bypass_map is not None:
        if not cfg.bypass:
            raise ConfigError("bypass", cfg.bypass, "true to use a bypass map")
        bmap = np.asarray(opts.bypass_map)
        if bmap.shape != (R, C):
            raise ConfigError("bypass map shape", bmap.shape, f"({R}, {C}): one flag per PE")
        if bmap.dtype.kind not in "iub":
            raise ConfigError("bypass map dtype", str(bmap.dtype), "integers or booleans 0/1")
        bad = bmap[~np.isin(bmap, (0, 1))]
        if bad.size:
            raise ConfigError("bypass map value", int(bad[0]), "0 (keep) or 1 (bypass)")
    if opts.afd is not None:
        if not cfg.afd:
            raise ConfigError("afd", cfg.afd, "true to set the anomaly-suppression controls")
        max_shift = (1 << (shift_port_width(cfg.a_width) - 1)) - 1
        _check_range("afd gates", opts.afd.get("gates", 1), 1, 2)
        _check_range("afd shift", opts.afd.get("shift", 1), -min(cfg.a_width, max_shift),
                     min(cfg.a_width, max_shift))
    if opts.split is not None or opts.lcu_pairs is not None:
        if not cfg.lcu:
            raise ConfigError("lcu", cfg.lcu, "true for split columns and LCU pairs")
        if opts.split is not None and np.asarray(opts.split).shape != (N,):
            raise ConfigError("split shape", np.asarray(opts.split).shape,
                              f"({N},): one flag per column of B")
        if opts.lcu_pairs is not None:
            pairs = np.asarray(opts.lcu_pairs).reshape(-1, 2)
            if pairs.size and (pairs.min() < 0 or pairs.max() >= N):
                raise ConfigError("lcu pair column", int(pairs.max() if pairs.max() >= N
                                                         else pairs.min()), f"0 … {N - 1}")
    if opts.tmr_triples is not None:
        if cfg.tmr == "none":
            raise ConfigError("tmr", cfg.tmr, "'word' or 'bitwise' for TMR triples")
        triples = np.asarray(opts.tmr_triples).reshape(-1, 3)
        if triples.size and (triples.min() < 0 or triples.max() >= N):
            raise ConfigError("tmr triple column", int(triples.max() if triples.max() >= N
                                                       else triples.min()), f"0 … {N - 1}")
        for t in triples.tolist():
            if len(set(t)) != 3:
                raise ConfigError("tmr triple", tuple(t), "three different columns")
    if _buffered(cfg) and result_vectors(cfg, M, N) > cfg.lcu_depth:
        raise ConfigError("lcu_depth", cfg.lcu_depth,
                          f"at least {result_vectors(cfg, M, N)} output-buffer rows for this "
                          f"product (one per result vector); use a smaller batch or a "
                          f"deeper buffer")
    if opts.temporal_batch is not None:
        if not cfg.temporal:
            raise ConfigError("checksum", cfg.checksum,
                              "'temporal' or 'both' to set a temporal batch size")
        _check_range("temporal batch", opts.temporal_batch, 1, cfg.temporal_batch_max)
    if opts.checksum_threshold is not None:
        if not cfg.spatial:
            raise ConfigError("checksum", cfg.checksum,
                              "'spatial' or 'both' to set the spatial checksum threshold")
        _check_range("checksum threshold", opts.checksum_threshold, 0,
                     (1 << cfg.acc_bits) - 1)
    if opts.temporal_threshold is not None:
        if not cfg.temporal:
            raise ConfigError("checksum", cfg.checksum,
                              "'temporal' or 'both' to set the temporal checksum threshold")
        _check_range("temporal threshold", opts.temporal_threshold, 0,
                     (1 << cfg.temporal_check_bits) - 1)
    if opts.bias_error is not None:
        if not (cfg.dataflow == "ws" and cfg.checksum != "none"):
            raise ConfigError("bias error", opts.bias_error,
                              "none unless the dataflow is WS with a checksum (only there does "
                              "the bias enter the checked partial sums)")
        col, bit, row = opts.bias_error
        _check_range("bias error column", col, 0, N - 1)
        _check_range("bias error bit", bit, 0, cfg.acc_bits - 1)
        if row is not None:
            _check_range("bias error row", row, 0, M - 1)


def prepare(cfg: AcceleratorConfig, A, B, opts: RunOptions | None = None) -> Program:
    """Validate a product and its options against ``cfg``; return its driver program.

    Nothing is simulated or written.  Raises :class:`ConfigError` for bad operands, an
    accumulator too narrow for them, an option the configuration does not have or out of
    range, a fault outside the array or its register, or a flip after the run has ended.
    """
    opts = opts or RunOptions()
    A, B, bias = check_operands(cfg, A, B, opts.bias)
    opts.bias = bias
    check_accumulator(cfg, A, B, bias)
    if (bias is not None or opts.relu or opts.shift) and not cfg.output_stage:
        raise ConfigError("output_stage", cfg.output_stage,
                          "true for a bias, ReLU or shift")
    _check_range("shift", opts.shift, 0, min(cfg.acc_bits, MAX_SHIFT))
    if opts.requant is not None:
        if opts.relu or opts.shift:
            raise ConfigError("relu/shift", (opts.relu, opts.shift),
                              "off with a requant (it carries its own relu and shift)")
        check_requant(cfg, opts.requant, B.shape[1])
    if opts.fault is not None:
        _check_fault(cfg, opts.fault)
    _check_units(cfg, opts, A.shape[0], B.shape[1])
    try:
        program = build_program(cfg, A, B, bias=bias, relu=opts.relu, shift=opts.shift,
                                **opts.units(cfg, A))
    except ValueError as exc:  # a combination the checks above do not foresee
        raise ConfigError("product", f"{A.shape[0]}×{A.shape[1]} @ {B.shape[0]}×{B.shape[1]}",
                          str(exc).splitlines()[0]) from None
    if opts.fault is not None:
        limit = min(program.cycles, 1 << FAULT_CONTROLS["cycle"]) - 1
        if opts.fault.cycle > limit:
            raise ConfigError("fault cycle", opts.fault.cycle,
                              f"0 … {limit}: this run lasts {program.cycles} cycles, so a flip "
                              "later than that never fires")
    return program


# -- running ---------------------------------------------------------------------------------
@dataclass
class ProductRun:
    """A product simulated on the RTL, with the golden model's view of the same program."""

    cfg: AcceleratorConfig
    shape: tuple[int, int, int]
    options: RunOptions
    run: RTLRun
    sim: str
    seconds: float
    alarms: dict
    corrected: np.ndarray | None = None
    golden_acc: np.ndarray | None = None
    golden_q: np.ndarray | None = None
    golden_corrected: np.ndarray | None = None
    port_mismatches: list = field(default_factory=list)
    #: Outputs that differ from the golden product without the fault / bias error.
    fault_effect: int | None = None

    @property
    def checked(self) -> bool:
        """The golden cycle model ran beside the RTL (``run_product(..., check=True)``)."""
        return self.golden_acc is not None

    @property
    def passed(self) -> bool | None:
        """The RTL equals the golden model.

        Every port in every cycle, and every result (``None`` when the golden model did not run).
        """
        if not self.checked:
            return None
        return not self.port_mismatches and self.result_mismatches() == 0

    def result_mismatches(self) -> int:
        """Results (accumulators, requantised, corrected) that differ from the golden model."""
        bad = int(np.sum(self.run.acc != self.golden_acc))
        if self.run.q is not None:
            bad += int(np.sum(self.run.q != self.golden_q))
        if self.corrected is not None:
            bad += int(np.sum(self.corrected != self.golden_corrected))
        return bad

    def record(self, outputs: dict | None = None, exit_code: int | None = None) -> dict:
        """The machine-readable result (``rtlgen matmul --json``)."""
        M, K, N = self.shape
        check = None
        if self.checked:
            check = {"passed": self.passed,
                     "acc": mismatch_report(self.run.acc, self.golden_acc)}
            if self.run.q is not None:
                check["q"] = mismatch_report(self.run.q, self.golden_q)
            if self.corrected is not None:
                check["corrected"] = mismatch_report(self.corrected, self.golden_corrected)
            check["port_mismatches"] = [
                {"port": p, "cycle": c, "lane": ln, "rtl": str(r), "golden": str(g)}
                for p, c, ln, r, g in self.port_mismatches]
        out = {
            "command": "matmul",
            "config": self.cfg.to_dict(), "config_name": self.cfg.name(),
            "simulator": self.sim, "shape": {"M": M, "K": K, "N": N},
            "options": self.options.summary(),
            "cycles": int(self.run.program.cycles),
            "simulated_s": round(self.seconds, 3),
            "checksums": self.alarms,
            "golden_check": check,
            "outputs": outputs or {},
        }
        if self.fault_effect is not None:
            out["outputs_changed_by_injection"] = self.fault_effect
        if self.cfg.lcu:
            starts = int(self.run.program.inputs["lcu__start"].sum())
            out["lcu"] = {"correction_runs": starts,
                          "pairs": int(len(np.asarray(self.options.lcu_pairs).reshape(-1, 2))
                                       if self.options.lcu_pairs is not None else 0) * M,
                          "words_changed": int(np.sum(self.corrected != self.run.q))}
        if self.cfg.tmr != "none":
            starts = int(self.run.program.inputs["tmr__start"].sum())
            out["tmr"] = {"voter": self.cfg.tmr, "voting_runs": starts,
                          "triples": int(len(np.asarray(self.options.tmr_triples).reshape(-1, 3))
                                         if self.options.tmr_triples is not None else 0) * M,
                          "words_changed": int(np.sum(self.corrected != self.run.q))}
        if exit_code is not None:
            out["exit_code"] = exit_code
        return out


def run_product(cfg: AcceleratorConfig, A, B, opts: RunOptions | None = None, *,
                sim: str | None = None, program: Program | None = None,
                check: bool = True) -> ProductRun:
    """Simulate ``A @ B`` on the RTL of ``cfg`` and compare it with the golden model.

    ``program`` is :func:`prepare`'s result when the caller has validated already (it is
    rebuilt otherwise).  With ``check`` the golden cycle model runs on the same program (with
    the fault, if any) and every port is compared in every cycle; without it only the RTL
    runs (:attr:`ProductRun.passed` is None).  With a fault or a bias error, the fault-free
    golden product is computed too (``fault_effect``).  A checked run keeps its run folder
    until the check: on a mismatch it stays (``run.run_dir``, ``run.log``) for inspection;
    after a pass it is removed unless :func:`tb.runner.keep_runs` asks otherwise.
    """
    from .runner import default_sim, discard_run, keep_runs

    opts = opts or RunOptions()
    if program is None:
        program = prepare(cfg, A, B, opts)
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    sim = sim or default_sim()
    units = opts.units(cfg, A)
    t0 = time.perf_counter()
    run = rtl_matmul(cfg, A, B, bias=opts.bias, relu=opts.relu, shift=opts.shift,
                     fault=opts.fault, sim=sim, check=check, keep=True if check else None,
                     **units)
    seconds = time.perf_counter() - t0
    res = ProductRun(cfg=cfg, shape=(A.shape[0], A.shape[1], B.shape[1]), options=opts,
                     run=run, sim=sim, seconds=seconds,
                     alarms=alarm_report(cfg, run.program, run.recorded))
    if _buffered(cfg):
        res.corrected = assemble_corrected(run.program, run.recorded)
    if check:
        res.port_mismatches = mismatches(run.recorded, run.golden)
        res.golden_acc = assemble(run.program, run.golden, "acc_out")
        if cfg.output_stage:
            res.golden_q = assemble(run.program, run.golden, "q_out")
        if _buffered(cfg):
            res.golden_corrected = assemble_corrected(run.program, run.golden)
        if res.passed and not keep_runs():
            discard_run(run.run_dir)
            run.log = None
    if opts.fault is not None or opts.bias_error is not None:
        from ftaccel.golden.accelerator import run_matmul

        clean_units = {k: v for k, v in units.items() if k != "bias_error"}
        clean, _ = run_matmul(cfg, A, B, bias=opts.bias, relu=opts.relu, shift=opts.shift,
                              **clean_units)
        res.fault_effect = int(np.sum(clean != run.acc))
    return res
