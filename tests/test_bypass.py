"""PE bypass in the RTL (Ozen 2023 ch. 10).

Against the golden cycle model cycle by cycle, and against the independent golden pruned product of
:mod:`golden.bypass`.

Bypass isolates what is *inside* a PE: its multiplier, adder and the register pinned in it
(WS: the weight, IS: the input, OS: the accumulator).  The operand registers a PE forwards to
its neighbours stay in the data path (Fig. 10.2 keeps that path), so a fault there is not
isolated by bypassing the PE; the faults below are therefore placed in the pinned register.
In WS/IS the pinned registers of a column also form the load chain, so a stuck bit there also
corrupts every value shifted through it to the PEs below during loading: the faulty PE is put
in the bottom row, where nothing is shifted through it.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.bypass import bernoulli_map, pruned_matmul
from ftaccel.golden.faults import Fault
from ftaccel.golden.schedule import build_program
from ftaccel.tb.accelerator import mismatches, rtl_matmul, run_program

PINNED = {"ws": "weight", "is": "act", "os": "psum"}
SIMS = ["icarus", pytest.param("verilator", marks=pytest.mark.verilator)]


def _check(run):
    bad = mismatches(run.recorded, run.golden)
    assert not bad, f"RTL differs from the golden cycle model: {bad}"


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_stuck_pe_corrupts_and_bypassing_it_gives_the_pruned_product(rng, dataflow, sim):
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow, bypass=True, fault_hooks=True,
                            max_k=64)
    A = rng.integers(-128, 128, (6, 9))   # larger than the array: tiled in every dataflow
    B = rng.integers(-128, 128, (9, 7))
    bias = rng.integers(-100, 100, 7)
    r, c = 3, 1
    fault = Fault(r, c, PINNED[dataflow], 6, "sa1")
    faulty = rtl_matmul(cfg, A, B, bias=bias, fault=fault, sim=sim)
    _check(faulty)
    exact = A @ B + (bias if dataflow == "is" else 0)
    assert not np.array_equal(faulty.acc, exact), "the stuck-at fault must corrupt the product"

    bmap = np.zeros((4, 4), dtype=bool)
    bmap[r, c] = True
    fixed = rtl_matmul(cfg, A, B, bias=bias, fault=fault, bypass_map=bmap, sim=sim)
    _check(fixed)
    pruned = pruned_matmul(dataflow, A, B, bmap, bias if dataflow == "is" else None)
    assert np.array_equal(fixed.acc, pruned)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 0.6])
@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_random_maps_give_the_pruned_product(rng, dataflow, rate):
    cfg = AcceleratorConfig(rows=3, cols=4, dataflow=dataflow, bypass=True)
    A = rng.integers(-128, 128, (5, 8))
    B = rng.integers(-128, 128, (8, 9))
    bias = rng.integers(-1000, 1000, 9)
    bmap = bernoulli_map(3, 4, rate, rng)
    run = rtl_matmul(cfg, A, B, bias=bias, relu=True, shift=5, bypass_map=bmap)
    _check(run)
    expected = pruned_matmul(dataflow, A, B, bmap, bias)
    q_expected = np.clip((np.maximum(expected, 0) + 16) >> 5, -128, 127)
    assert np.array_equal(run.acc + (0 if dataflow == "is" else bias), expected)
    assert np.array_equal(run.q, q_expected)
    if rate == 0.0:
        assert np.array_equal(run.acc, A @ B + (bias if dataflow == "is" else 0))


def test_map_reads_back_and_costs_r_cycles(rng):
    cfg = AcceleratorConfig(rows=5, cols=3, dataflow="ws", bypass=True)
    bmap = rng.random((5, 3)) < 0.5
    program = build_program(cfg, np.ones((1, 1)), np.ones((1, 1)), bypass_map=bmap)
    # Append one read cycle per row after the product.
    extra = cfg.rows + 1
    for name, arr in program.inputs.items():
        program.inputs[name] = np.concatenate([arr, np.zeros((extra,) + arr.shape[1:], arr.dtype)])
    T = program.cycles
    program.inputs["bypass__row"][T:T + cfg.rows] = np.arange(cfg.rows)
    for port, (src_port, src) in program.loopback.items():
        program.loopback[port] = (src_port, np.concatenate([src, np.full(extra, -1)]))
    program.cycles += extra
    recorded, _ = run_program(cfg, program)
    golden = simulate(cfg, program)
    assert not mismatches(recorded, golden)
    readback = recorded["bypass__rdata"][T + 1:T + 1 + cfg.rows]
    assert np.array_equal(readback, bmap.astype(int) @ (1 << np.arange(3)))
