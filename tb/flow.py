"""Testbench of the flow-controlling accelerator (:mod:`rtl_gen.flow`).

Run a packed product on the RTL and hold it against the golden register-level model, port by port
and cycle by cycle.

The driver program (:func:`golden.flow.build_flow_program`) is played by the generic player
(:func:`tb.accelerator.run_program` with ``top="flow_accelerator"``: the RTL and the compiled
model cached once per configuration, each run in its own folder; partial sums of one K-tile
looped back into the next) and run
through :func:`golden.flow.simulate_flow`; :func:`rtl_flow_matmul` returns both views and the
assembled product.  :func:`measured_cycles` reads the cycle count off the RTL's ``out_valid``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.flow import (
    FlowEngine,
    Packed,
    build_flow_program,
    check_group,
    check_overflow,
    flow_cycle_count,
    layer_shape,
    pack,
    prune,
    simulate_flow,
)
from ftaccel.golden.schedule import Program, assemble
from ftaccel.rtl_gen.flow import FLOW_TOP_NAME

from .accelerator import mismatches, run_program  # mismatches: the same port-by-port diff
from .runner import default_sim, discard_run, keep_runs

__all__ = ["FlowRun", "rtl_flow_matmul", "measured_cycles", "mismatches",
           "FlowProduct", "flow_product", "verify_flow", "FlowRTLEngine"]


@dataclass
class FlowRun:
    """One packed product on the RTL, with the golden model's view of the same program.

    ``log`` is the simulator log when the run folder was kept, else None.
    """

    program: Program
    recorded: dict[str, np.ndarray]
    golden: dict[str, np.ndarray]
    acc: np.ndarray
    q: np.ndarray | None
    log: Path | None


def rtl_flow_matmul(cfg: AcceleratorConfig, A, packed: Packed, *, bias=None, relu=False,
                    shift=0, sim: str | None = None, build_root: Path | None = None,
                    waves: bool | None = None, cache_dir: Path | None = None,
                    keep: bool | None = None) -> FlowRun:
    """``A @ unpack(packed)`` by simulating the flow-controlling RTL of ``cfg``.

    ``sim``, ``build_root``, ``waves``, ``cache_dir`` and ``keep`` are those of
    :func:`tb.accelerator.run_program`.  Raises :class:`~ftaccel.config.ConfigError`
    for a group the hardware was not built for,
    :class:`~ftaccel.golden.array.AccumulatorOverflow` before simulating a product whose
    partial sums would not fit the accumulator.
    """
    check_overflow(cfg, A, packed)
    program = build_flow_program(cfg, A, packed, bias=bias, relu=relu, shift=shift)
    recorded, log = run_program(cfg, program, sim=sim, build_root=build_root, waves=waves,
                                cache_dir=cache_dir, keep=keep, top=FLOW_TOP_NAME)
    golden = simulate_flow(cfg, program)
    q = assemble(program, recorded, "q_out") if cfg.output_stage else None
    return FlowRun(program=program, recorded=recorded, golden=golden,
                   acc=assemble(program, recorded), q=q, log=log)


def measured_cycles(run: FlowRun) -> int:
    """Cycles from the first load to the last valid output inclusive, read off the RTL."""
    valid = np.flatnonzero(run.recorded["out_valid"])
    return int(valid[-1]) + 1 if len(valid) else 0


@dataclass
class FlowProduct:
    """``matmul`` on the flow-controlling array.

    The run, the packed B, cycle counts and the check (``passed`` is None when not checked).
    """

    run: FlowRun
    packed: Packed
    B: np.ndarray
    cycles: int
    dense_cycles: int
    seconds: float
    passed: bool | None


def flow_product(cfg: AcceleratorConfig, A, B, *, group: int | None = None,
                 prune_first: bool = False, bias=None, relu: bool = False, shift: int = 0,
                 sim: str | None = None, check: bool = False) -> FlowProduct:
    """Pack the sparse ``B``, simulate ``A @ B`` on the RTL and, with ``check``, verify it.

    ``B`` is packed (after pruning it, with ``prune_first``) in the hardware's groups (``group``: a
    smaller group size, default ``cfg.flow_group``); with ``check`` the result is held against the
    golden model (every port, every cycle) and numpy, and the run folder is kept on a mismatch
    (``run.log`` names the log in it).  Every bad input raises :class:`ConfigError`
    before simulating: a group the hardware was not built for, a ``B`` not packable for it (naming
    the group).
    """
    gl, gk = layer_shape(cfg.flow, cfg.flow_group if group is None else group)
    check_group(cfg, gl, gk)
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    if prune_first:
        B = prune(B, gl, gk)
    packed = pack(B, gl, gk)
    t0 = time.perf_counter()
    run = rtl_flow_matmul(cfg, A, packed, bias=bias, relu=relu, shift=shift, sim=sim,
                          keep=True if check else None)
    seconds = time.perf_counter() - t0
    passed = None
    if check:
        passed = not mismatches(run.recorded, run.golden) and np.array_equal(run.acc, A @ B)
        if passed and not keep_runs() and run.log is not None:
            discard_run(run.log.parent)
            run.log = None
    M, K = A.shape
    return FlowProduct(run=run, packed=packed, B=B, cycles=measured_cycles(run),
                       dense_cycles=flow_cycle_count(cfg, M, K, B.shape[1]), seconds=seconds,
                       passed=passed)


def verify_flow(cfg: AcceleratorConfig, *, seed: int = 1, count: int = 5,
                sim: str | None = None) -> int:
    """Seeded random regression of a flow-controlling configuration (``rtlgen verify``).

    Complementary-sparse layers packed for the hardware's own group, for half of it and dense,
    random and extreme values, tiled; RTL against the golden model every cycle and against numpy.
    Prints one line per case; returns the number of failed cases.
    """
    rng = np.random.default_rng(seed)
    print(f"verify {cfg.name()} on {sim or default_sim()}: seed {seed}, {count} cases")
    lo_a, hi_a = -(1 << (cfg.a_width - 1)), (1 << (cfg.a_width - 1)) - 1
    lo_w, hi_w = -(1 << (cfg.w_width - 1)), (1 << (cfg.w_width - 1)) - 1
    L, Kk = layer_shape(cfg.flow, cfg.flow_group)
    failed = 0
    for i in range(count):
        gl, gk = ((L, Kk), (max(1, L // 2), max(1, Kk // 2)), (1, 1))[i % 3]
        k_cap = max(1, min(cfg.max_k, 2 * cfg.rows * gl))
        M = int(rng.integers(1, 2 * cfg.rows + 1))
        K = int(rng.integers(1, k_cap + 1))
        N = int(rng.integers(1, 2 * cfg.cols * gk + 2))
        edge = i % 2 == 1
        A = rng.choice([lo_a, hi_a, 0, -1], (M, K)) if edge else rng.integers(lo_a, hi_a + 1,
                                                                              (M, K))
        B = rng.choice([lo_w, hi_w, 1], (K, N)) if edge else rng.integers(lo_w, hi_w + 1, (K, N))
        W = prune(B, gl, gk)
        run = rtl_flow_matmul(cfg, A, pack(W, gl, gk), sim=sim)
        bad = mismatches(run.recorded, run.golden)
        ok = not bad and np.array_equal(run.acc, A @ W)
        failed += not ok
        print(f"  case {i}: {M}×{K} @ {K}×{N} in {gl}×{gk} groups, {measured_cycles(run)} "
              f"cycles: {'pass' if ok else 'FAIL ' + str(bad[:3])}")
    print(f"{count - failed} passed, {failed} failed (seed {seed})")
    return failed


class FlowRTLEngine(FlowEngine):
    """:class:`golden.flow.FlowEngine` with every product simulated on the RTL.

    The RTL is that of the flow-controlling array, held against the golden register-level model; the
    cycles are read off ``out_valid``.  A difference raises :class:`AssertionError` naming the
    layer.
    """

    name = "flow-rtl"

    def __init__(self, cfg, layers=None, *, sim: str | None = None):
        super().__init__(cfg, layers)
        self.sim = sim

    def product(self, p):
        """The product ``p`` pruned, packed and simulated on the flow-controlling RTL."""
        if getattr(p, "fault", None) is not None or getattr(p, "units", None):
            raise ConfigError("layer options", "fault/units", "none on the flow-controlling "
                              "array (the reliability units are not built into it)")
        g = self.group_for(p.index, p.name)
        gl, gk = layer_shape(self.cfg.flow, g)
        W = prune(np.asarray(p.B, dtype=np.int64), gl, gk)
        run = rtl_flow_matmul(self.cfg, p.A, pack(W, gl, gk), bias=p.bias, relu=p.relu,
                              shift=p.shift, sim=self.sim)
        bad = mismatches(run.recorded, run.golden)
        if bad:
            raise AssertionError(f"layer {p.name}: RTL differs from the golden model: {bad[:3]}")
        self.pruned[p.index] = W
        return SimpleNamespace(q=run.q, cycles=measured_cycles(run), alarms={}, group=g,
                               pruned=W)
