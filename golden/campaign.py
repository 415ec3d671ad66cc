"""Fault-injection campaigns on the golden cycle model: outcome of every fault in a list.

The cycle model is proven equal to the RTL, fault hooks included, by the testbenches
(``tests/test_fault_hooks.py``, ``tests/test_checksum.py``), so a campaign of thousands of
faults runs here in seconds instead of hours of RTL simulation; a sample of the same faults is
replayed on the RTL by the tests.

What can be injected (one *case* of a campaign):

* a :class:`golden.faults.Fault` in a PE register (what the RTL's fault hooks do);
* a tuple of faults at once, e.g. :func:`output_error_faults`: k single-cycle flips on the
  bottom-row partial-sum registers, each of which corrupts exactly one output value, for the
  checksums' multiple-error guarantees (Table 6.1, "3 errors");
* a :class:`BiasError`: a bit flip in a bias word on its way into the array (a fault outside
  the PEs; the bias enters through ``psum_in`` when a checksum is configured).

Outcome classes (SPEC §7): ``masked`` (every output equals the fault-free run, no alarm),
``detected`` (some output differs and an alarm fired), ``sdc`` (silent data corruption: some
output differs, no alarm), ``false_alarm`` (no output differs but an alarm fired: the fault
hit the check itself, e.g. the sanity column or a sanity vector).  The spatial and temporal
alarms are kept apart, so one campaign on a ``checksum="both"`` configuration gives the
spatial, temporal and combined columns of Table 6.1 (:func:`coverage_table`'s ``check``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .accelerator import simulate
from .faults import MODES, REGISTERS, Fault, sabotage, sample_size
from .schedule import Program, assemble, build_program

__all__ = ["Outcome", "BiasError", "classify", "exhaustive_faults", "bias_errors",
           "result_positions", "output_error_faults", "run_campaign", "coverage_table",
           "sample_combinations", "alarms",
           "CHECKS"]

#: Which alarms count as a detection in :func:`coverage_table`.
CHECKS = ("spatial", "temporal", "any")


@dataclass(frozen=True)
class BiasError:
    """Bit ``bit`` of the bias word of neuron ``col`` flipped: for output row ``row`` only
    (one wrong output) or, ``row = None``, in the stored word (every row of the column)."""

    row: int | None
    col: int
    bit: int


@dataclass(frozen=True)
class Outcome:
    fault: object       # Fault, tuple of Faults, or BiasError
    corrupted: int      # outputs that differ from the fault-free run
    alarm: bool         # any checksum alarm
    kind: str           # masked | detected | sdc | false_alarm
    spatial: bool = False
    temporal: bool = False


def classify(corrupted: int, alarm: bool) -> str:
    if corrupted == 0:
        return "false_alarm" if alarm else "masked"
    return "detected" if alarm else "sdc"


def exhaustive_faults(cfg, modes=("sa0", "sa1"), registers=REGISTERS, cycle: int = 0):
    """Every (PE, register, bit, mode) of the built array, sanity column included."""
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"fault mode must be one of {MODES}, not {mode!r}")
    return [Fault(r, c, reg, bit, mode, cycle)
            for r in range(cfg.rows) for c in range(cfg.array_cols) for reg in registers
            for bit in range(cfg.register_width(reg, c)) for mode in modes]


def bias_errors(cfg, rows: int, cols: int, rng: np.random.Generator) -> list[BiasError]:
    """Every bit of every bias word, once in the stored word and once for one random row."""
    out = []
    for n in range(cols):
        for bit in range(cfg.acc_bits):
            out.append(BiasError(None, n, bit))
            out.append(BiasError(int(rng.integers(rows)), n, bit))
    return out


def result_positions(program: Program) -> list[tuple[int, int]]:
    """``(output cycle, lane)`` of every result of the product, in cycle then lane order."""
    return sorted(set(zip(program.out_cycle.ravel().tolist(),
                          program.out_lane.ravel().tolist(), strict=True)))


def output_error_faults(cfg, positions, bits) -> tuple[Fault, ...]:
    """Flips that corrupt exactly the outputs at ``positions`` (``(cycle, lane)``), bit
    ``bits[i]`` of each: a single-cycle flip of the bottom PE's partial-sum register in the
    cycle the value passes it (the output stage shows it one cycle later, after the
    ``NC − 1 − lane`` deskew registers)."""
    nc = cfg.array_cols
    return tuple(Fault(cfg.rows - 1, lane, "psum", int(bit), "flip",
                       int(row) - 1 - (nc - 1 - lane))
                 for (row, lane), bit in zip(positions, bits, strict=True))


def alarms(rec: dict) -> tuple[bool, bool]:
    """``(spatial, temporal)``: whether each checksum's alarm fired in recorded outputs (False
    for a checksum that is not configured)."""
    spatial = bool(rec["checksum_alarm"].max()) if "checksum_alarm" in rec else False
    temporal = bool(rec["temporal_alarm"].max()) if "temporal_alarm" in rec else False
    return spatial, temporal


def run_campaign(cfg, A, B, faults, **program_options) -> list[Outcome]:
    """Simulate every case on the cycle model and classify it against the fault-free run.

    ``program_options`` go to :func:`golden.schedule.build_program` (``bias``,
    ``temporal_batch`` …).  Register faults only change what the model applies, not the
    program, so the program is built once (the RTL would also need the ``fault_*`` ports).
    """
    program = build_program(cfg, A, B, **program_options)
    clean = assemble(program, simulate(cfg, program), "acc_out")
    outcomes = []
    for case in faults:
        if isinstance(case, BiasError):
            bias = np.asarray(program_options.get("bias", np.zeros(B.shape[1])), np.int64)
            word = int(bias[case.col])
            delta = int(sabotage(word, cfg.acc_bits, case.bit, "flip")) - word
            prog = build_program(cfg, A, B, bias_error=(case.row, case.col, delta),
                                 **program_options)
            rec = simulate(cfg, prog)
        else:
            prog = program
            rec = simulate(cfg, program, case)
        corrupted = int(np.sum(assemble(prog, rec, "acc_out") != clean))
        spatial, temporal = alarms(rec)
        alarm = spatial or temporal
        outcomes.append(Outcome(case, corrupted, alarm, classify(corrupted, alarm),
                                spatial, temporal))
    return outcomes


def sample_combinations(n: int, k: int, count: int, rng: np.random.Generator):
    """``count`` distinct k-subsets of ``range(n)`` (all of them if there are not more)."""
    if math.comb(n, k) <= count:
        return [list(c) for c in combinations(range(n), k)]
    seen: set = set()
    while len(seen) < count:
        seen.add(tuple(sorted(rng.choice(n, k, replace=False).tolist())))
    return [list(c) for c in sorted(seen)]


def coverage_table(outcomes: list[Outcome], key=lambda o: o.fault.register,
                   check: str = "any") -> dict:
    """Per key: counts of each outcome and the detection rate of output-changing faults,
    counting the ``check`` alarm(s) (``"spatial"``, ``"temporal"`` or ``"any"``)."""
    if check not in CHECKS:
        raise ValueError(f"check must be one of {CHECKS}, not {check!r}")
    groups: dict = {}
    for o in outcomes:
        alarm = {"spatial": o.spatial, "temporal": o.temporal, "any": o.alarm}[check]
        groups.setdefault(key(o), Counter())[classify(o.corrupted, alarm)] += 1
    table = {}
    for k, cnt in groups.items():
        changing = cnt["detected"] + cnt["sdc"]
        table[k] = {**{kind: cnt[kind] for kind in ("masked", "detected", "sdc", "false_alarm")},
                    "total": sum(cnt.values()),
                    "detection_rate": (cnt["detected"] / changing) if changing else None}
    return table


# ---------------------------------------------------------------------------------------------
# Table 6.1 of 000 on the composed accelerator (checksum="both")
# ---------------------------------------------------------------------------------------------
#: Rows of the measured table: (key, Table 6.1 row, what is injected).
TABLE_ROWS = (
    ("input/flip", "input", "single flip of a column-0 activation register (one input element "
                            "of one vector, seen by every column)"),
    ("input/stuck", "input", "stuck-at bit of a column-0 activation register (that input "
                             "element of every vector)"),
    ("weight/stuck", "weight", "stuck-at bit of a weight register (columns 0…C−1)"),
    ("bias/one", "bias", "flipped bias bit for one output row"),
    ("bias/word", "bias", "flipped bit of a stored bias word (every row of the column)"),
    ("output/flip", "output", "single flip of a partial-sum register (columns 0…C−1)"),
    ("output/stuck", "output", "stuck-at bit of a partial-sum register (columns 0…C−1)"),
    ("output/x1", "output", "1 output value corrupted (random bit)"),
    ("output/x2", "output", "2 output values corrupted (random bits)"),
    ("output/x3", "output", "3 output values corrupted (random bits)"),
    ("output/x2-cancel", "output", "2 errors that cancel in their output row (same bit, "
                                   "opposite values: invisible to the spatial check)"),
    ("act/inner", "—", "activation register faults in columns 1…C−1 (flip + stuck-at)"),
    ("sanity/all", "—", "faults in the sanity column's PEs (flip + stuck-at)"),
)


def _flip_cycles(program: Program) -> np.ndarray:
    """Cycles in which the product is in flight (first streamed input to last output)."""
    start = int(np.flatnonzero(program.inputs["in_valid"])[0])
    return np.arange(start, program.cycles)


def _cancelling_pairs(cfg, program: Program, clean_rec: dict, rng, count: int) -> list:
    """Pairs of flips on two results of one output row, same bit, opposite bit values: the
    two errors are +2**b and −2**b, so the row still sums to zero."""
    rows = sorted(set(program.out_cycle.ravel().tolist()))
    lanes = sorted(set(program.out_lane.ravel().tolist()))
    out = []
    for _ in range(count * 20):
        if len(out) == count or len(lanes) < 2:
            break
        row = rows[int(rng.integers(len(rows)))]
        u1, u2 = (int(x) for x in rng.choice(lanes, 2, replace=False))
        bit = int(rng.integers(cfg.acc_bits))
        v1, v2 = (int(clean_rec["acc_out"][row, u]) >> bit & 1 for u in (u1, u2))
        if v1 != v2:
            out.append(output_error_faults(cfg, [(row, u1), (row, u2)], [bit, bit]))
    return out


def table_6_1_campaign(cfg, rng: np.random.Generator, *, m: int = 6, batch: int = 3,
                       flips: int | None = None, combos: int = 300) -> dict:
    """Measure Table 6.1 on the accelerator (``cfg.checksum == "both"``, fault hooks on).

    One random single-pass product (M = ``m`` rows, K = R, N = C, nonzero weights, a bias),
    temporal batches of ``batch``; for each row of :data:`TABLE_ROWS` the cases are run on
    the cycle model and counted per check (spatial alarm, temporal alarm, either).  Stuck-at
    faults and bias errors are exhaustive; single flips are sampled, ``flips`` per row
    (default: the statistical size of SPEC §7 for the population of (register, bit, cycle));
    multiple-output errors ``combos`` per row.  Returns ``{"product": …, "rows": {key:
    {"population", "cases", "exhaustive", "spatial", "temporal", "any"}}}`` with
    :func:`coverage_table` rows for the three checks; ``population`` is known (not None)
    for the exhaustive rows and the flip samples.
    """
    if cfg.checksum != "both" or not cfg.fault_hooks:
        raise ValueError("table_6_1_campaign needs checksum='both' and fault_hooks")
    R, C = cfg.rows, cfg.cols
    lo, hi = -(1 << (cfg.a_width - 1)), 1 << (cfg.a_width - 1)
    A = rng.integers(lo, hi, (m, R))
    wlo, whi = -(1 << (cfg.w_width - 1)), 1 << (cfg.w_width - 1)
    B = rng.integers(wlo, whi, (R, C))
    B[B == 0] = 1  # a zero weight turns some faults into input-like ones (see the docs)
    bias = rng.integers(wlo, whi, C)
    opts = {"bias": bias, "temporal_batch": batch}
    program = build_program(cfg, A, B, **opts)
    clean_rec = simulate(cfg, program)
    cycles = _flip_cycles(program)
    stuck = exhaustive_faults(cfg)
    results = result_positions(program)

    def flip_sample(sel):
        population = [(f.row, f.col, f.register, f.bit) for f in stuck
                      if f.mode == "sa0" and sel(f)]
        size = len(population) * len(cycles)
        n = flips if flips is not None else sample_size(size)
        idx = rng.choice(size, min(n, size), replace=False)
        return [Fault(*population[i // len(cycles)], "flip", int(cycles[i % len(cycles)]))
                for i in idx], size

    def col0_act(f):
        return f.register == "act" and f.col == 0

    def combo_cases(k):
        chosen = sample_combinations(len(results), k, combos, rng)
        return [output_error_faults(cfg, [results[i] for i in c],
                                    rng.integers(0, cfg.acc_bits, k)) for c in chosen]

    def every(cases):  # an exhaustive row: (cases, population, exhaustive)
        return cases, len(cases), True

    def sampled(cases, population=None):
        return cases, population, False

    groups = {}
    groups["input/flip"] = sampled(*flip_sample(col0_act))
    groups["input/stuck"] = every([f for f in stuck if col0_act(f)])
    groups["weight/stuck"] = every([f for f in stuck if f.register == "weight" and f.col < C])
    bias_cases = bias_errors(cfg, m, C, rng)
    # every (column, bit); the row of a one-row error is drawn at random
    groups["bias/one"] = sampled([b for b in bias_cases if b.row is not None])
    groups["bias/word"] = every([b for b in bias_cases if b.row is None])
    groups["output/flip"] = sampled(*flip_sample(lambda f: f.register == "psum" and f.col < C))
    groups["output/stuck"] = every([f for f in stuck if f.register == "psum" and f.col < C])
    for k in (1, 2, 3):  # position sets, each with random bits
        groups[f"output/x{k}"] = sampled(combo_cases(k))
    groups["output/x2-cancel"] = sampled(_cancelling_pairs(cfg, program, clean_rec, rng,
                                                           combos))
    inner, _ = flip_sample(lambda f: f.register == "act" and 0 < f.col < C)
    groups["act/inner"] = sampled(inner + [f for f in stuck
                                           if f.register == "act" and 0 < f.col < C])
    san, _ = flip_sample(lambda f: f.col >= C)
    groups["sanity/all"] = sampled(san + [f for f in stuck if f.col >= C])

    rows = {}
    for key, (cases, population, exhaustive) in groups.items():
        outcomes = run_campaign(cfg, A, B, cases, **opts)
        rows[key] = {"population": population, "cases": len(cases),
                     "exhaustive": exhaustive,
                     **{check: coverage_table(outcomes, key=lambda o: 0, check=check).get(0)
                        for check in CHECKS}}
    return {"product": {"M": m, "K": R, "N": C, "batch": batch, "A": A.tolist(),
                        "B": B.tolist(), "bias": bias.tolist()},
            "config": cfg.to_dict(), "rows": rows}
