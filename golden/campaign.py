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

Outcome classes (README, Fault campaigns): ``masked`` (every output equals the fault-free run, no
alarm),
``detected`` (some output differs and an alarm fired), ``sdc`` (silent data corruption: some
output differs, no alarm), ``false_alarm`` (no output differs but an alarm fired: the fault
hit the check itself, e.g. the sanity column or a sanity vector).  The spatial and temporal
alarms are kept apart, so one campaign on a ``checksum="both"`` configuration gives the
spatial, temporal and combined columns of Table 6.1 (:func:`coverage_table`'s ``check``);
:func:`table_6_1_campaign` measures the whole table on the accelerator.

The same table without hardware (Table 6.1, Ozen 2023 §6.2.2–6.2.3, Lemmas 1–6):
:func:`random_fc_layer`, :func:`detection_table`, :func:`aliasing_table`,
:func:`rectangle_escape` inject errors into the inputs, weights, bias or outputs of a random
integer FC layer *after* checksum encoding (as in the seed, Ozen 2023 §6.3.1, with the host helpers
of
:mod:`golden.checksum`) and evaluate the spatial, temporal and combined checks exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ftaccel.enums import Dataflow
from ftaccel.errors import check_int

from .accelerator import simulate
from .array import os_first_step, os_tile_steps
from .bits import flip_bit
from .checksum import (
    negated_sum_width,
    residue,
    sanity_column,
    temporal_expected,
    temporal_sanity_input,
)
from .faults import MODES, REGISTERS, Fault, sabotage, sample_size
from .schedule import Program, assemble, build_program

__all__ = ["Outcome", "BiasError", "classify", "exhaustive_faults", "bias_errors",
           "result_positions", "output_error_faults", "run_campaign", "coverage_table",
           "sample_combinations", "alarms", "CHECKS", "TABLE_ROWS", "table_6_1_campaign",
           "TABLE_ROWS_BY_DATAFLOW", "table_rows", "table_6_1_claims", "site_kinds",
           "TABLE_6_1", "KINDS", "FCLayer", "random_fc_layer", "alg61_bits", "inject", "detect",
           "detection_table", "aliasing_table", "rectangle_escape"]

#: Which alarms count as a detection in :func:`coverage_table`.
CHECKS = ("spatial", "temporal", "any")


@dataclass(frozen=True)
class BiasError:
    """Bit ``bit`` of the bias word of neuron ``col`` flipped.

    For output row ``row`` only (one wrong output) or, ``row = None``, in the stored word (every row
    of the column).
    """

    row: int | None
    col: int
    bit: int


@dataclass(frozen=True)
class Outcome:
    """One fault's result: outputs corrupted, alarms raised, and its kind."""

    fault: object       # Fault, tuple of Faults, or BiasError
    corrupted: int      # outputs that differ from the fault-free run
    alarm: bool         # any checksum alarm
    kind: str           # masked | detected | sdc | false_alarm
    spatial: bool = False
    temporal: bool = False


def classify(corrupted: int, alarm: bool) -> str:
    """The outcome kind: masked, detected, sdc (silent data corruption) or false_alarm."""
    if corrupted == 0:
        return "false_alarm" if alarm else "masked"
    return "detected" if alarm else "sdc"


def exhaustive_faults(cfg, modes=("sa0", "sa1"), registers=REGISTERS[:3], cycle: int = 0):
    """Every (PE, register, bit, mode) of the built array, sanity column and row included.

    The three registers by default; the MAC sites ``product`` / ``sum`` are not in this study.
    """
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"fault mode must be one of {MODES}, not {mode!r}")
    return [Fault(r, c, reg, bit, mode, cycle)
            for r in range(cfg.array_rows) for c in range(cfg.array_cols) for reg in registers
            for bit in range(cfg.register_width(reg, c, r)) for mode in modes]


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


def output_error_faults(cfg, positions, bits, program: Program | None = None,
                        K: int | None = None) -> tuple[Fault, ...]:
    """Flips that corrupt exactly the outputs at ``positions``, bit ``bits[i]`` of each.

    Positions are ``(cycle, lane)`` of ``program`` (the product's reduction length ``K``).
    WS / IS: each flip is a single-cycle flip of the bottom
    PE's partial-sum register in the cycle the value passes it (the output stage shows it
    ``cfg.output_latency`` cycles later, after the ``NC − 1 − lane`` deskew registers).  OS
    (``program`` and ``K`` needed: they map positions to results and steps): a flip of the
    result's PE's partial-sum register in the cycle its last step reads it, so the error is the
    flip of the partial sum before the last step, which is the whole sum when the tile's steps
    outnumber K (the zero-padded steps of :func:`golden.array.os_tile_steps`, e.g. K = R with
    the OS sanity row).
    """
    if cfg.dataflow is not Dataflow.OS:
        nc = cfg.array_cols
        return tuple(Fault(cfg.rows - 1, lane, "psum", int(bit), "flip",
                           int(row) - cfg.output_latency - (nc - 1 - lane))
                     for (row, lane), bit in zip(positions, bits, strict=True))
    if program is None or K is None:
        raise ValueError("output_error_faults needs the program and K on OS")
    R, C = cfg.rows, cfg.cols
    M, N = program.out_cycle.shape
    steps = os_tile_steps(cfg, K)
    nnt = -(-N // C)
    where = {(int(program.out_cycle[m, n]), int(program.out_lane[m, n])): (m, n)
             for m in range(M) for n in range(N)}
    out = []
    for pos, bit in zip(positions, bits, strict=True):
        m, n = where[(int(pos[0]), int(pos[1]))]
        r, c, tile = m % R, n % C, (m // R) * nnt + n // C
        cycle = cfg.config_cycles + os_first_step(cfg) + tile * steps + steps - 1 + r + c + 1
        out.append(Fault(r, c, "psum", int(bit), "flip", cycle))
    return tuple(out)


def alarms(rec: dict) -> tuple[bool, bool]:
    """``(spatial, temporal)``: whether each checksum's alarm fired in recorded outputs.

    False for a checksum that is not configured.
    """
    spatial = bool(rec["checksum__alarm"].max()) if "checksum__alarm" in rec else False
    temporal = bool(rec["temporal__alarm"].max()) if "temporal__alarm" in rec else False
    return spatial, temporal


def run_campaign(cfg, A, B, faults, **program_options) -> list[Outcome]:
    """Simulate every case on the cycle model and classify it against the fault-free run.

    ``program_options`` go to :func:`golden.schedule.build_program` (``bias``,
    ``temporal_batch`` …).  Register faults only change what the model applies, not the
    program, so the program is built once (the RTL would also need the ``fault_*`` ports).
    Outputs are compared as the array gives them to the output stage: ``acc_out``, plus a bias
    error where the bias is added after it (OS, :attr:`~ftaccel.config.AcceleratorConfig.
    bias_in_psum` false).
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
            got = assemble(prog, rec, "acc_out")
            if not cfg.bias_in_psum:  # (OS) the output stage adds the wrong bias after acc_out
                rows = slice(None) if case.row is None else case.row
                got[rows, case.col] += delta
        else:
            rec = simulate(cfg, program, case)
            got = assemble(program, rec, "acc_out")
        corrupted = int(np.sum(got != clean))
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
    """Per key, counts of each outcome and the detection rate of output-changing faults.

    Detection counts the ``check`` alarm(s) (``"spatial"``, ``"temporal"`` or ``"any"``).
    """
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
# Ozen 2023 Table 6.1 on the composed accelerator (checksum="both")
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
    ("stream/inner", "—", "activation register faults in columns 1…C−1 (flip + stuck-at)"),
    ("sanity/all", "—", "faults in the sanity column's PEs (flip + stuck-at)"),
)

#: The rows whose injected sites differ from WS's (:data:`TABLE_ROWS`), per dataflow.  IS keeps
#: the inputs in the array and streams the weights (their entry: column 0); OS streams both
#: (activations enter at column 0, weights at row 0) and keeps the partial sums.
TABLE_ROWS_BY_DATAFLOW = {
    "is": {
        "input/flip": "single flip of a stationary input register (columns 0…C−1; one input "
                      "element of one batch row, for the rest of the stream)",
        "input/stuck": "stuck-at bit of a stationary input register (columns 0…C−1)",
        "weight/stuck": "stuck-at bit of a column-0 weight register (that weight element of "
                        "every streamed neuron, seen by every column)",
        "stream/inner": "weight register faults in columns 1…C−1 (flip + stuck-at)",
        "sanity/all": "faults in the sanity input column's PEs (flip + stuck-at)",
    },
    "os": {
        "input/flip": "single flip of a column-0 activation register (rows 0…R−1)",
        "input/stuck": "stuck-at bit of a column-0 activation register (rows 0…R−1)",
        "weight/stuck": "stuck-at bit of a row-0 weight register (columns 0…C−1)",
        "stream/inner": "activation and weight register faults past the entry PEs (flip + "
                        "stuck-at)",
        "sanity/all": "faults in the sanity row's and the sanity column's PEs (flip + "
                      "stuck-at)",
    },
}


def table_rows(dataflow) -> tuple[tuple[str, str, str], ...]:
    """:data:`TABLE_ROWS` with the descriptions of ``dataflow``'s injected sites."""
    own = TABLE_ROWS_BY_DATAFLOW.get(str(dataflow), {})
    return tuple((key, row, own.get(key, text)) for key, row, text in TABLE_ROWS)


def table_6_1_claims(dataflow) -> dict:
    """Table 6.1's guarantees per hardware check of ``dataflow``.

    Table 6.1 (Ozen 2023 §6.2.2–6.2.3) names the checks after WS: *spatial* is the sanity neuron
    (Eq. 6.5, a column of weights' negated sums), *temporal* the sanity input (Eq. 6.7).  OS
    builds them alike (sanity neuron column, sanity row of inputs); IS swaps them: its spatial
    checksum is the sanity *input* column (the stationary inputs' negated sums) and its
    temporal checksum the sanity *neuron* in the weight stream, so each IS check carries the
    other's guarantees.
    """
    if str(dataflow) != "is":
        return TABLE_6_1
    return {kind: {"spatial": g["temporal"], "temporal": g["spatial"], "both": g["both"]}
            for kind, g in TABLE_6_1.items()}


def site_kinds(cfg) -> dict:
    """Predicates on a PE fault: the error location each of the campaign's rows injects."""
    R, C = cfg.rows, cfg.cols

    def data(f):
        return f.row < R and f.col < C

    def reg(f, name):
        return f.register == name and data(f)

    if cfg.dataflow is Dataflow.IS:
        kinds = {"input": lambda f: reg(f, "act"),
                 "weight": lambda f: reg(f, "weight") and f.col == 0,
                 "inner": lambda f: reg(f, "weight") and f.col > 0}
    elif cfg.dataflow is Dataflow.OS:
        kinds = {"input": lambda f: reg(f, "act") and f.col == 0,
                 "weight": lambda f: reg(f, "weight") and f.row == 0,
                 "inner": lambda f: (reg(f, "act") and f.col > 0)
                 or (reg(f, "weight") and f.row > 0)}
    else:
        kinds = {"input": lambda f: reg(f, "act") and f.col == 0,
                 "weight": lambda f: reg(f, "weight"),
                 "inner": lambda f: reg(f, "act") and f.col > 0}
    return {**kinds, "output": lambda f: reg(f, "psum"), "sanity": lambda f: not data(f)}


def _flip_cycles(cfg, program: Program) -> np.ndarray:
    """Cycles in which the product is in flight (first streamed input to last output).

    OS has no ``in_valid``: its streams start after the configuration cycles.
    """
    if "in_valid" in program.inputs:
        start = int(np.flatnonzero(program.inputs["in_valid"])[0])
    else:
        start = cfg.config_cycles
    return np.arange(start, program.cycles)


def _cancelling_pairs(cfg, program: Program, clean_rec: dict, rng, count: int, K: int) -> list:
    """Pairs of flips on two results of one output row, same bit, opposite bit values.

    The two errors are +2**b and −2**b, so the row still sums to zero (the row the spatial
    checksum sums: WS, OS a row of outputs over the neurons; IS a neuron over the batch rows).
    """
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
            out.append(output_error_faults(cfg, [(row, u1), (row, u2)], [bit, bit], program,
                                           K))
    return out


def _table_6_1_cases(cfg, rng: np.random.Generator, program: Program, m: int, K: int,
                     flips: int | None, combos: int) -> dict[str, tuple[list, int | None, bool]]:
    """The cases of every row of :data:`TABLE_ROWS`: ``key → (cases, population, exhaustive)``.

    The sites of each row follow the dataflow (:func:`site_kinds`, :func:`table_rows`).
    """
    C = cfg.cols
    kind = site_kinds(cfg)
    clean_rec = simulate(cfg, program)
    cycles = _flip_cycles(cfg, program)
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

    def combo_cases(k):
        chosen = sample_combinations(len(results), k, combos, rng)
        return [output_error_faults(cfg, [results[i] for i in c],
                                    rng.integers(0, cfg.acc_bits, k), program, K)
                for c in chosen]

    def every(cases):  # an exhaustive row: (cases, population, exhaustive)
        return cases, len(cases), True

    def sampled(cases, population=None):
        return cases, population, False

    groups = {}
    groups["input/flip"] = sampled(*flip_sample(kind["input"]))
    groups["input/stuck"] = every([f for f in stuck if kind["input"](f)])
    groups["weight/stuck"] = every([f for f in stuck if kind["weight"](f)])
    bias_cases = bias_errors(cfg, m, C, rng)
    # every (column, bit); the row of a one-row error is drawn at random
    groups["bias/one"] = sampled([b for b in bias_cases if b.row is not None])
    groups["bias/word"] = every([b for b in bias_cases if b.row is None])
    groups["output/flip"] = sampled(*flip_sample(kind["output"]))
    groups["output/stuck"] = every([f for f in stuck if kind["output"](f)])
    for k in (1, 2, 3):  # position sets, each with random bits
        groups[f"output/x{k}"] = sampled(combo_cases(k))
    groups["output/x2-cancel"] = sampled(_cancelling_pairs(cfg, program, clean_rec, rng,
                                                           combos, K))
    inner, _ = flip_sample(kind["inner"])
    groups["stream/inner"] = sampled(inner + [f for f in stuck if kind["inner"](f)])
    san, _ = flip_sample(kind["sanity"])
    groups["sanity/all"] = sampled(san + [f for f in stuck if kind["sanity"](f)])

    return groups


def table_6_1_campaign(cfg, rng: np.random.Generator, *, m: int = 6, batch: int = 3,
                       flips: int | None = None, combos: int = 300) -> dict:
    """Measure Table 6.1 on the accelerator (``cfg.checksum == "both"``, fault hooks on).

    On every dataflow (the sites of each row follow it: :func:`table_rows`; IS's checks carry
    each other's guarantees: :func:`table_6_1_claims`).  One random product (M = ``m`` rows,
    K = R, N = C, nonzero weights, a bias; one pass on WS), temporal batches of ``batch`` (OS:
    a tile's R rows); for each
    row of :data:`TABLE_ROWS` the cases are run on the cycle model and counted per check
    (spatial alarm, temporal alarm, either).  Stuck-at faults and bias errors are exhaustive;
    single flips are sampled, ``flips`` per row (default: the statistical size of README, Fault
    campaigns for the population of (register, bit, cycle)); multiple-output errors ``combos`` per
    row. Returns ``{"product": …, "rows": {key: {"population", "cases", "exhaustive", "spatial",
    "temporal", "any"}}}`` with :func:`coverage_table` rows for the three checks; ``population`` is
    known (not None) for the exhaustive rows and the flip samples.
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
    if cfg.dataflow is Dataflow.OS:  # its temporal batch is a tile's R rows (the sanity row)
        batch = R
        opts = {"bias": bias}
    else:
        opts = {"bias": bias, "temporal_batch": batch}
    program = build_program(cfg, A, B, **opts)
    groups = _table_6_1_cases(cfg, rng, program, m, R, flips, combos)
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


# ---------------------------------------------------------------------------------------------
# Table 6.1 on a random FC layer: the checksums' detection study by error injection
# ---------------------------------------------------------------------------------------------
#: Table 6.1 (Ozen 2023 §6.2.2–6.2.3): how many errors each checksum is guaranteed to detect, per
#: error location: 0 = none (Lemma 1), n = up to n errors, None = all errors (Lemma 4).
TABLE_6_1 = {
    "input": {"spatial": 0, "temporal": 1, "both": 1},
    "weight": {"spatial": 1, "temporal": 0, "both": 1},
    "bias": {"spatial": 1, "temporal": None, "both": None},
    "output": {"spatial": 1, "temporal": 1, "both": 3},
}
KINDS = tuple(TABLE_6_1)


def _bits_for(bound: int) -> int:
    """Signed width holding ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


@dataclass
class FCLayer:
    """A random integer FC layer with both checksums embedded (Eqs. 6.1–6.8).

    ``I`` (N×K), ``W`` (K×M), ``b`` (M) are the data; the ``*_ext`` tensors carry the sanity
    input row (row N), the sanity column (column M) and the sanity bias, exact (wide).  The
    ``*_width`` arrays give the register width of every element (data widths, widened for the
    sanity values by :func:`negated_sum_width`), which bounds the bit of an injected flip.

    ``wrap_input`` / ``wrap_weight`` store the sanity input row / sanity weight column wrapped
    to ``a_width`` / ``w_width`` bits instead (no widened hardware path, Ozen 2023 §6.3.1): the
    temporal / spatial invariant then holds only modulo ``2^a_width`` / ``2^w_width``, so the
    matching check must run in residue mode with k at most that width.
    """

    I: np.ndarray
    W: np.ndarray
    b: np.ndarray
    a_width: int
    w_width: int
    bias_width: int
    wrap_input: bool = False
    wrap_weight: bool = False
    I_ext: np.ndarray = field(init=False)
    W_ext: np.ndarray = field(init=False)
    b_ext: np.ndarray = field(init=False)
    O_ext: np.ndarray = field(init=False)
    widths: dict = field(init=False)

    def __post_init__(self):
        """Embed the checksums: the sanity input row, sanity column and their expected outputs."""
        N, K = self.I.shape
        M = self.W.shape[1]
        si = temporal_sanity_input(self.I, wrap_bits=self.a_width if self.wrap_input else None)
        self.I_ext = np.vstack([self.I, si[None, :]])
        s, _ = sanity_column(self.W, wrap_bits=self.w_width if self.wrap_weight else None)
        _, sb = sanity_column(self.W, self.b)
        self.W_ext = np.hstack([self.W, s[:, None]])
        self.b_ext = np.append(self.b, sb)
        self.O_ext = self.I_ext @ self.W_ext + self.b_ext[None, :]
        aw = np.full(N + 1, self.a_width)
        if not self.wrap_input:
            aw[N] = negated_sum_width(self.a_width, N)
        ww = np.full(M + 1, self.w_width)
        if not self.wrap_weight:
            ww[M] = negated_sum_width(self.w_width, M)
        bw = np.full(M + 1, self.bias_width)
        bw[M] = negated_sum_width(self.bias_width, M)
        ow = np.array([[_bits_for(K * (1 << (int(aw[z]) - 1)) * (1 << (int(ww[u]) - 1))
                                  + (1 << (int(bw[u]) - 1)))
                        for u in range(M + 1)] for z in range(N + 1)])
        self.widths = {"input": np.broadcast_to(aw[:, None], (N + 1, K)).copy(),
                       "weight": np.broadcast_to(ww[None, :], (K, M + 1)).copy(),
                       "bias": bw, "output": ow}

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(N, K, M)``: data vectors per temporal batch, inputs, neurons."""
        return self.I.shape[0], self.I.shape[1], self.W.shape[1]

    def tensor(self, kind: str) -> np.ndarray:
        """The extended ``input``, ``weight``, ``bias`` or ``output`` tensor, by ``kind``."""
        return {"input": self.I_ext, "weight": self.W_ext, "bias": self.b_ext,
                "output": self.O_ext}[kind]

    def temporal_expected(self) -> np.ndarray:
        """The temporal check constants for the extended bias and input batch."""
        return temporal_expected(self.b_ext, self.I_ext.shape[0])


def random_fc_layer(rng: np.random.Generator, *, batch: int = 8, k_in: int = 8, m_out: int = 8,
                    a_width: int = 8, w_width: int = 8, bias_width: int = 16,
                    wrap_input: bool = False, wrap_weight: bool = False) -> FCLayer:
    """A layer with uniformly random signed data of the given widths.

    See :class:`FCLayer` for ``wrap_input`` / ``wrap_weight``.
    """
    for name, v in (("batch", batch), ("k_in", k_in), ("m_out", m_out)):
        check_int(name, v, 1, 256)
    for name, v in (("a_width", a_width), ("w_width", w_width), ("bias_width", bias_width)):
        check_int(name, v, 2, 24, numpy=True)

    def draw(shape, w):
        return rng.integers(-(1 << (w - 1)), 1 << (w - 1), size=shape, dtype=np.int64)
    return FCLayer(I=draw((batch, k_in), a_width), W=draw((k_in, m_out), w_width),
                   b=draw(m_out, bias_width), a_width=a_width, w_width=w_width,
                   bias_width=bias_width, wrap_input=wrap_input, wrap_weight=wrap_weight)


def alg61_bits(values, bits, widths):
    """Algorithm 6.1 (Ozen 2023 §6.3.1).

    Sign bit → negate; else add 2^i if bit i is 0, subtract 2^i if it is 1 (with scale 1: integer
    data).
    """
    v = np.asarray(values, dtype=np.int64)
    b = np.asarray(bits, dtype=np.int64)
    w = np.asarray(widths, dtype=np.int64)
    bit_set = (v >> b) & 1
    return np.where(b == w - 1, -v, np.where(bit_set == 1, v - (np.int64(1) << b),
                                             v + (np.int64(1) << b)))


def inject(layer: FCLayer, kind: str, sites: np.ndarray, bits: np.ndarray,
           model: str = "flip") -> np.ndarray:
    """Faulty extended outputs ``[E, N+1, M+1]`` for E error cases.

    ``sites`` [E, m] are flat indices into the tensor of ``kind`` (distinct within a case),
    ``bits`` [E, m] the flipped bit of each.  The faulty tensor is propagated exactly:
    input / weight / bias errors through ``O = I_ext @ W_ext + b_ext``, output errors directly.
    """
    if kind not in KINDS:
        raise ValueError(f"invalid kind = {kind!r}: one of {', '.join(KINDS)}")
    corrupt = {"flip": flip_bit, "alg61": alg61_bits}.get(model)
    if corrupt is None:
        raise ValueError(f"invalid model = {model!r}: flip or alg61")
    X = layer.tensor(kind)
    E = len(sites)
    flat = np.broadcast_to(X.reshape(-1), (E, X.size)).copy()
    wflat = layer.widths[kind].reshape(-1)
    rows = np.arange(E)[:, None]
    flat[rows, sites] = corrupt(flat[rows, sites], bits, wflat[sites])
    Xf = flat.reshape((E,) + X.shape)
    if kind == "input":
        return Xf @ layer.W_ext + layer.b_ext
    if kind == "weight":
        return layer.I_ext @ Xf + layer.b_ext
    if kind == "bias":
        return (layer.I_ext @ layer.W_ext)[None] + Xf[:, None, :]
    return Xf


def detect(layer: FCLayer, O, *, threshold: int = 0, modulus: str = "exact",
           k: int | None = None, temporal_modulus: str | None = None,
           temporal_k: int | None = None):
    """``(spatial, temporal)`` alarms for faulty outputs ``O`` [E, N+1, M+1].

    Spatial: some output row (vector) whose sum deviates from 0 by more than ``threshold``;
    temporal: some column whose sum over the N+1 vectors deviates from ``(N+1)·b_ext[u]``.
    ``modulus``/``k`` select the checker arithmetic (see :func:`residue`);
    ``temporal_modulus``/``temporal_k``, if given, that of the temporal check alone.
    """
    O = np.asarray(O, dtype=np.int64)
    if temporal_modulus is None:
        temporal_modulus, temporal_k = modulus, k
    rows = residue(O.sum(axis=2), modulus, k)
    cols = residue(O.sum(axis=1) - layer.temporal_expected()[None, :], temporal_modulus,
                   temporal_k)
    return (np.abs(rows) > threshold).any(axis=1), (np.abs(cols) > threshold).any(axis=1)


def _cases(rng, layer: FCLayer, kind: str, m: int, samples: int | None,
           exhaustive_limit: int):
    """Error cases ``(sites [E, m], bits [E, m], population, exhaustive)``."""
    wflat = layer.widths[kind].reshape(-1)
    n_sites = wflat.size
    if m > n_sites:
        return None
    # population: m distinct sites, any bit at each
    if m == 1:
        population = int(wflat.sum())
    else:
        # sum over site subsets of the product of widths (elementary symmetric polynomial)
        e = [1] + [0] * m
        for w in wflat.tolist():
            for j in range(m, 0, -1):
                e[j] += e[j - 1] * w
        population = e[m]
    if m == 1 and population <= exhaustive_limit and samples is None:
        sites = np.repeat(np.arange(n_sites), wflat)
        bits = np.concatenate([np.arange(w) for w in wflat.tolist()])
        return sites[:, None], bits[:, None], population, True
    E = samples if samples is not None else sample_size(population)
    # Sites drawn without replacement with weights = widths (Efraimidis–Spirakis keys), so a
    # single error hits every (site, bit) pair with the same probability.
    keys = rng.random((E, n_sites)) ** (1.0 / wflat[None, :])
    sites = np.argsort(-keys, axis=1)[:, :m]
    bits = np.floor(rng.random((E, m)) * wflat[sites]).astype(np.int64)
    return sites, bits, population, False


def detection_table(rng: np.random.Generator, layer: FCLayer, *, max_errors: int = 3,
                    threshold: int = 0, modulus: str = "exact", k: int | None = None,
                    model: str = "flip", samples: int | None = None,
                    exhaustive_limit: int = 20000, temporal_modulus: str | None = None,
                    temporal_k: int | None = None) -> list[dict]:
    """Measured detection rates per error location and error count (Table 6.1 reproduced).

    For every kind in (input, weight, bias, output) and m = 1 … ``max_errors`` errors in
    distinct elements of that tensor, bit errors are injected (``model``: two's-complement
    ``"flip"`` or Algorithm 6.1's ``"alg61"``): exhaustively over (element, bit) for single
    errors when the population is at most ``exhaustive_limit``, else a uniform sample of
    :func:`sample_size` cases (or ``samples``).

    Each row: ``kind, errors, population, tried, exhaustive, masked`` (the extended outputs
    did not change), ``effective`` (they did), ``critical`` (a real, non-sanity output
    changed), detection rates over the effective cases ``spatial, temporal, both``, and
    ``sdc`` (critical cases neither checksum detected).  ``modulus``/``k`` (and
    ``temporal_modulus``/``temporal_k`` for the temporal check alone) as in :func:`detect`.
    """
    table = []
    for kind in KINDS:
        for m in range(1, max_errors + 1):
            got = _cases(rng, layer, kind, m, samples, exhaustive_limit)
            if got is None:
                continue
            sites, bits, population, exhaustive = got
            O = inject(layer, kind, sites, bits, model)
            delta = O - layer.O_ext[None]
            effective = (delta != 0).any(axis=(1, 2))
            N, _, M = layer.shape
            critical = (delta[:, :N, :M] != 0).any(axis=(1, 2))
            s, t = detect(layer, O, threshold=threshold, modulus=modulus, k=k,
                          temporal_modulus=temporal_modulus, temporal_k=temporal_k)
            n_eff = int(effective.sum())

            def rate(d, eff=effective, n=n_eff):
                return float(d[eff].sum() / n) if n else float("nan")
            table.append({
                "kind": kind, "errors": m, "population": population, "tried": len(sites),
                "exhaustive": exhaustive, "masked": int((~effective).sum()),
                "effective": n_eff, "critical": int(critical.sum()),
                "spatial": rate(s), "temporal": rate(t), "both": rate(s | t),
                "sdc": int((critical & ~(s | t)).sum()),
            })
    return table


def aliasing_table(rng: np.random.Generator, layer: FCLayer, ks, *,
                   modulus: str = "pow2", model: str = "flip", samples: int | None = None,
                   exhaustive_limit: int = 20000) -> list[dict]:
    """Escape (aliasing) rate of single errors against the residue width k.

    For each k and each error location: the fraction of *effective* single errors that
    escape the spatial check, the temporal check and both.  Plus ``random_word``: an output
    register replaced by a uniformly random value of its width (a multi-bit upset), where
    modulo 2^k the expected escape rate is about 2^-k.
    """
    cases = {}
    for kind in KINDS:
        sites, bits, _, _ = _cases(rng, layer, kind, 1, samples, exhaustive_limit)
        O = inject(layer, kind, sites, bits, model)
        eff = (O - layer.O_ext[None] != 0).any(axis=(1, 2))
        cases[kind] = O[eff]
    # random-word output errors
    E = samples or 20000
    O = np.broadcast_to(layer.O_ext, (E,) + layer.O_ext.shape).copy()
    wflat = layer.widths["output"].reshape(-1)
    site = rng.integers(0, wflat.size, E)
    half = np.int64(1) << (wflat[site] - 1)
    val = (rng.random(E) * (2.0 * half)).astype(np.int64) - half
    O.reshape(E, -1)[np.arange(E), site] = val
    eff = (O - layer.O_ext[None] != 0).any(axis=(1, 2))
    cases["random_word"] = O[eff]
    out = []
    for k in ks:
        kind_mod = "exact" if k is None else modulus
        row = {"k": k}
        for kind, Oe in cases.items():
            s, t = detect(layer, Oe, modulus=kind_mod, k=k)
            n = len(Oe)
            row[kind] = {"spatial": float((~s).sum() / n), "temporal": float((~t).sum() / n),
                         "both": float((~(s | t)).sum() / n), "n": n}
        out.append(row)
    return out


def rectangle_escape(layer: FCLayer, delta: int = 1, corner=(0, 0, 1, 1)) -> tuple[bool, bool]:
    """Four output errors on a rectangle, ``+d, -d, -d, +d`` at (z1,u1), (z1,u2), (z2,u1), (z2,u2).

    Every row and column sum is unchanged, so both checksums miss it (the bound of Lemma 6 is
    tight). Returns ``(spatial, temporal)`` detections (both False).
    """
    z1, u1, z2, u2 = corner
    O = layer.O_ext.copy()
    O[z1, u1] += delta
    O[z1, u2] -= delta
    O[z2, u1] -= delta
    O[z2, u2] += delta
    s, t = detect(layer, O[None])
    return bool(s[0]), bool(t[0])
