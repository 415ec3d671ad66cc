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

from ftaccel import units as unit_registry
from ftaccel.config import FAULT_CONTROLS, AcceleratorConfig
from ftaccel.errors import ConfigError, check_int
from ftaccel.golden import units as golden_units
from ftaccel.golden.accelerator import run_matmul
from ftaccel.golden.faults import Fault
from ftaccel.golden.output_stage import Requant
from ftaccel.golden.results import alarm_report, mismatch_report
from ftaccel.golden.schedule import (
    Program,
    assemble,
    assemble_corrected,
    build_program,
    check_requant,
)
from ftaccel.units import UnitOptions

from .accelerator import RTLRun, mismatches, rtl_matmul
from .runner import default_sim, discard_run, keep_runs

__all__ = ["RunOptions", "ProductRun", "check_operands", "accumulator_bound",
           "check_accumulator", "prepare", "run_product"]

#: Largest shift accepted (the output stage's 6-bit port, one left for a split column).
MAX_SHIFT = 62


class RunOptions:
    """The run-time inputs of one product: the output stage's, a fault, every unit's options.

    Parameters
    ----------
    bias, relu, shift
        The output stage's inputs (N biases, ReLU, requantisation shift).
    fault : Fault, optional
        A fault to arm through the fault hooks.
    requant : Requant, optional
        Replaces ``relu``/``shift`` with a :class:`golden.output_stage.Requant` (the
        fixed-point path needs ``requant = "multiplier"`` in the configuration).
    units : dict, optional
        Per unit name, its :class:`ftaccel.units.UnitOptions` (e.g. from
        :func:`ftaccel.units.options_from_flags`).
    **keywords
        Unit options as the keywords of a units mapping (``bypass_map``, ``afd``,
        ``median_enable``, ``temporal_batch``, ``checksum_threshold``, ``temporal_threshold``,
        ``split``, ``lcu_pairs``, ``tmr_triples``, ...); ``bias_error = (column, bit, row)``
        flips ``bit`` of the bias word of ``column`` on its way into the partial sums, for
        output row ``row`` only or (``row = None``) for the stored word, i.e. every row
        (Ozen 2023 Table 6.1's bias row; WS with a checksum), as ``--bias-error`` does.

    Every option is checked once, by :func:`prepare` (:func:`ftaccel.units.check_options`).
    """

    def __init__(self, *, bias=None, relu: bool = False, shift: int = 0,
                 fault: Fault | None = None, requant: Requant | None = None,
                 units: dict | None = None, **keywords):
        if "bias_error" in keywords:  # the flip form, as --bias-error gives it
            keywords["bias_flip"] = keywords.pop("bias_error")
        self.bias = bias
        self.relu = relu
        self.shift = shift
        self.fault = fault
        self.requant = requant
        self.units: dict[str, UnitOptions] = {**unit_registry.options_from_keywords(keywords),
                                              **(units or {})}

    @property
    def injects(self) -> bool:
        """A fault or a bias error is injected (the fault-free product differs)."""
        chk = self.units.get("checksum")
        return self.fault is not None or (
            chk is not None and (chk.bias_flip is not None or chk.bias_error is not None))

    def keywords(self, cfg: AcceleratorConfig, *, clean: bool = False) -> dict:
        """Keyword arguments of :func:`golden.schedule.build_program` for the units.

        With the defaults of every always-programmed unit ``cfg`` builds; ``clean`` leaves
        the bias error out (the fault-free product).
        """
        units = unit_registry.with_defaults(cfg, self.units)
        if clean and "checksum" in units:
            units["checksum"] = units["checksum"].replace(bias_flip=None, bias_error=None)
        keywords = unit_registry.to_keywords(units)
        if self.requant is not None:  # the output stage's, passed beside the units'
            keywords["requant"] = self.requant
        return keywords

    def summary(self, cfg: AcceleratorConfig | None = None) -> dict:
        """The options as JSON values (arrays summarised); with ``cfg``, its defaults too."""
        out = {"relu": bool(self.relu), "shift": int(self.shift),
               "bias": self.bias is not None,
               "fault": None if self.fault is None else vars(self.fault).copy()}
        units = self.units if cfg is None else unit_registry.with_defaults(cfg, self.units)
        out.update(unit_registry.summary(units))
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
    check_int("shift", opts.shift, 0, min(cfg.acc_bits, MAX_SHIFT))
    if opts.requant is not None:
        if opts.relu or opts.shift:
            raise ConfigError("relu/shift", (opts.relu, opts.shift),
                              "off with a requant (it carries its own relu and shift)")
        check_requant(cfg, opts.requant, B.shape[1])
    if opts.fault is not None:
        unit_registry.check_fault(cfg, opts.fault)
    unit_registry.check_options(cfg, opts.units, m=A.shape[0], n=B.shape[1])
    try:
        program = build_program(cfg, A, B, bias=bias, relu=opts.relu, shift=opts.shift,
                                **opts.keywords(cfg))
    except ConfigError:
        raise
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

    def unit_records(self) -> dict:
        """Per unit that reports one (the LCU, the TMR voter), what it did in this product."""
        if self.corrected is None:
            return {}
        return golden_units.run_records(self.cfg, self.run.program, self.run.q, self.corrected,
                                        self.options.units)

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
            "options": self.options.summary(self.cfg),
            "cycles": int(self.run.program.cycles),
            "simulated_s": round(self.seconds, 3),
            "checksums": self.alarms,
            "golden_check": check,
            "outputs": outputs or {},
        }
        if self.fault_effect is not None:
            out["outputs_changed_by_injection"] = self.fault_effect
        out.update(self.unit_records())
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
    opts = opts or RunOptions()
    if program is None:
        program = prepare(cfg, A, B, opts)
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    sim = sim or default_sim()
    units = opts.keywords(cfg)
    t0 = time.perf_counter()
    run = rtl_matmul(cfg, A, B, bias=opts.bias, relu=opts.relu, shift=opts.shift,
                     fault=opts.fault, sim=sim, check=check, keep=True if check else None,
                     **units)
    seconds = time.perf_counter() - t0
    res = ProductRun(cfg=cfg, shape=(A.shape[0], A.shape[1], B.shape[1]), options=opts,
                     run=run, sim=sim, seconds=seconds,
                     alarms=alarm_report(cfg, run.program, run.recorded))
    if run.program.buffer_row is not None:  # the program reads an output buffer back
        res.corrected = assemble_corrected(run.program, run.recorded)
    if check:
        res.port_mismatches = mismatches(run.recorded, run.golden)
        res.golden_acc = assemble(run.program, run.golden, "acc_out")
        if cfg.output_stage:
            res.golden_q = assemble(run.program, run.golden, "q_out")
        if run.program.buffer_row is not None:
            res.golden_corrected = assemble_corrected(run.program, run.golden)
        if res.passed and not keep_runs():
            discard_run(run.run_dir)
            run.log = None
    if opts.injects:
        clean, _ = run_matmul(cfg, A, B, bias=opts.bias, relu=opts.relu, shift=opts.shift,
                              **opts.keywords(cfg, clean=True))
        res.fault_effect = int(np.sum(clean != run.acc))
    return res
