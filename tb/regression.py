"""Seeded random regression of one configuration on the RTL: what ``rtlgen verify`` runs.

Each case is a random product (shapes around the array size, so that M, K and N tiles and
partial tiles all occur; every third case uses only the extreme values −2^(w−1), 2^(w−1)−1,
0 and ±1) with a random ReLU and shift.  With the fixed-point multiplier (``requant =
"multiplier"``) every other case uses it instead (:func:`random_requant`: per-column or one
multiplier, a zero point and clamp bounds).  A case passes when the RTL equals the golden
cycle model on every port in every cycle, *and* the product equals ``A @ B`` computed by numpy
and the requantised outputs equal :func:`golden.output_stage.output_stage` (or
:func:`golden.output_stage.fixed_requantize`) of it (so the golden model is not its own
judge).  The input filters (anomaly suppression, median) are switched
off at run time so that the product is the plain one; the sizes keep every case inside the
accumulator bound (:func:`tb.product.check_accumulator`) and the LCU's output buffer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ftaccel import units as unit_registry
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.output_stage import (
    Requant,
    fixed_requantize,
    output_stage,
    quantize_multiplier,
)

from .product import RunOptions, prepare, run_product

__all__ = ["random_case", "random_requant", "regression", "plain_options", "MAX_COUNT"]

#: Most cases one regression runs (each is a simulation of seconds).
MAX_COUNT = 10_000


def plain_options(cfg: AcceleratorConfig, **kw) -> RunOptions:
    """Run-time options that leave the product plain: input filters off, nothing injected.

    Every unit ``cfg`` builds whose options can switch it off at run time
    (:meth:`ftaccel.units.UnitOptions.off`: the AFD, the median) is switched off.
    """
    off = {u.name: u.options().off() for u in unit_registry.UNITS
           if u.built(cfg) and u.options is not None and u.options().off() is not None}
    return RunOptions(units=off, **kw)


def _fits(cfg: AcceleratorConfig, M: int, N: int) -> bool:
    """Every unit ``cfg`` builds can run an M×·×N product (:meth:`Unit.check_product`)."""
    try:
        unit_registry.check_options(cfg, {}, m=M, n=N)
    except ConfigError:
        return M == N == 1  # nothing smaller to try: let prepare() say why
    return True


def random_case(cfg: AcceleratorConfig, rng: np.random.Generator, index: int):
    """Draw ``(A, B, relu, shift)`` of case ``index``.

    Sizes go up to about twice the array; K is capped so that the worst case fits the
    accumulator, M and N so that the result fits the LCU's output buffer.
    """
    a_lo, a_hi = -(1 << (cfg.a_width - 1)), (1 << (cfg.a_width - 1)) - 1
    w_lo, w_hi = -(1 << (cfg.w_width - 1)), (1 << (cfg.w_width - 1)) - 1
    worst_product = (1 << (cfg.a_width - 1)) * (1 << (cfg.w_width - 1))
    k_fit = ((1 << (cfg.acc_bits - 1)) - 1) // worst_product  # ≥ 1: acc_bits ≥ a + w
    K = int(rng.integers(1, max(1, min(k_fit, 3 * cfg.rows)) + 1))
    N = int(rng.integers(1, 2 * cfg.cols + 2))
    M = int(rng.integers(1, 2 * max(cfg.rows, cfg.cols) + 1))
    while not _fits(cfg, M, N):  # e.g. the output buffer holds every result vector
        M, N = max(1, M // 2), max(1, N // 2)
    if index % 3 == 1:  # edge values: extremes and zeros
        A = rng.choice([a_lo, a_hi, 0, -1], (M, K))
        B = rng.choice([w_lo, w_hi, 0, 1], (K, N))
    else:
        A = rng.integers(a_lo, a_hi + 1, (M, K))
        B = rng.integers(w_lo, w_hi + 1, (K, N))
    shift = int(rng.integers(0, 8)) if cfg.output_stage else 0
    relu = bool(rng.integers(2)) and cfg.output_stage
    return A, B, relu, shift


def random_requant(cfg: AcceleratorConfig, rng: np.random.Generator, acc: np.ndarray) -> Requant:
    """A fixed-point :class:`Requant` that maps ``acc`` onto about the output range.

    The real multiplier of each column (or one for all) is drawn around ``2**(a_width-1) /
    max|acc|`` (×0.25 … ×4, so some outputs saturate), a random zero point and, half of the
    time, a ReLU clamp ``lo = zero_point``.
    """
    top = 1 << (cfg.a_width - 1)
    cols = acc.shape[1] if rng.integers(2) else 1
    scale = top / max(int(np.abs(acc).max()), 1) * 2.0 ** rng.uniform(-2, 2, cols)
    pairs = [quantize_multiplier(float(min(v, 0.999))) for v in scale]
    m0, n = (np.array([p[i] for p in pairs]) for i in (0, 1))
    zp = int(rng.integers(-top // 2, top // 2))
    lo = zp if rng.integers(2) else None
    return Requant(multiplier=m0 if cols > 1 else int(m0[0]),
                   shift=n if cols > 1 else int(n[0]), zero_point=zp, lo=lo)


def regression(cfg: AcceleratorConfig, *, seed: int, count: int, sim: str | None = None,
               progress: Callable[[str], None] | None = None) -> dict:
    """Run ``count`` random cases from ``seed``; return the machine-readable result.

    ``progress`` receives one line per case.  The result holds the seed, every case (shape,
    cycles, pass, the first port mismatches) and the pass/fail counts.
    """
    if type(seed) is not int or not 0 <= seed < 1 << 63:
        raise ConfigError("seed", seed, "an integer from 0 to 2**63 - 1")
    if type(count) is not int or not 1 <= count <= MAX_COUNT:
        raise ConfigError("count", count, f"an integer from 1 to {MAX_COUNT}")
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        A, B, relu, shift = random_case(cfg, rng, i)
        opts = plain_options(cfg, relu=relu, shift=shift)
        if cfg.requant == "multiplier" and i % 2:
            opts = plain_options(cfg, requant=random_requant(cfg, rng, A @ B))
            relu, shift = False, 0
        program = prepare(cfg, A, B, opts)
        res = run_product(cfg, A, B, opts, sim=sim, program=program)
        ok = res.passed and np.array_equal(res.run.acc, A @ B)
        if opts.requant is not None:
            rq = opts.requant
            ok = ok and np.array_equal(res.run.q, fixed_requantize(
                A @ B, rq.multiplier, rq.shift, rq.zero_point, *rq.bounds(cfg.a_width)))
        elif cfg.output_stage:
            ok = ok and np.array_equal(res.run.q, output_stage(A @ B, 0, relu, shift,
                                                               cfg.a_width))
        M, K = A.shape
        N = B.shape[1]
        cases.append({"case": i, "M": M, "K": K, "N": N, "relu": relu, "shift": shift,
                      **({"requant": opts.summary()["requant"]} if opts.requant else {}),
                      "cycles": int(program.cycles), "pass": bool(ok),
                      "numpy_mismatches": int(np.sum(res.run.acc != A @ B)),
                      "port_mismatches": [list(map(str, m)) for m in res.port_mismatches]})
        if progress:
            detail = "pass" if ok else f"FAIL {res.port_mismatches[:3]}"
            progress(f"  case {i}: {M}×{K} @ {K}×{N}, {program.cycles} cycles: {detail}")
    failed = sum(not c["pass"] for c in cases)
    return {"command": "verify", "config": cfg.to_dict(), "config_name": cfg.name(),
            "simulator": res.sim, "seed": seed, "count": count, "passed": count - failed,
            "failed": failed, "cases": cases}
