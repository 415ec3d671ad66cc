"""Golden models against plain numpy written independently, and the cycle model's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ftaccel.config import FAULT_CONTROLS, AcceleratorConfig
from ftaccel.golden.accelerator import run_matmul, simulate
from ftaccel.golden.array import AccumulatorOverflow, cycle_count, latency, matmul
from ftaccel.golden.faults import Fault, inject_bit_errors, sabotage, sample_size
from ftaccel.golden.mapping import pe_map, tiles
from ftaccel.golden.output_stage import output_stage
from ftaccel.golden.schedule import build_program

SHAPES = [(1, 1), (2, 3), (3, 2), (4, 4), (8, 8)]


def _operands(rng, cfg, M, K, N):
    lo_a, hi_a = -(1 << (cfg.a_width - 1)), 1 << (cfg.a_width - 1)
    lo_w, hi_w = -(1 << (cfg.w_width - 1)), 1 << (cfg.w_width - 1)
    return rng.integers(lo_a, hi_a, (M, K)), rng.integers(lo_w, hi_w, (K, N))


def _plain_requant(y, shift, width, relu):
    """Element-wise Python integers: round half up, then clamp."""
    out = []
    for v in np.asarray(y).ravel().tolist():
        if relu:
            v = max(v, 0)
        if shift:
            v = (v + 2 ** (shift - 1)) // 2 ** shift
        out.append(min(max(v, -(2 ** (width - 1))), 2 ** (width - 1) - 1))
    return np.array(out, dtype=np.int64).reshape(np.shape(y))


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
@pytest.mark.parametrize("rows,cols", SHAPES)
@pytest.mark.parametrize("width", [8, 16])
def test_functional_and_cycle_models_equal_numpy(rng, dataflow, rows, cols, width):
    cfg = AcceleratorConfig(rows=rows, cols=cols, dataflow=dataflow, a_width=width,
                            w_width=width)
    M, K, N = (int(x) for x in rng.integers(1, 3 * max(rows, cols) + 2, 3))
    A, B = _operands(rng, cfg, M, K, N)
    bias = rng.integers(-5000, 5000, N)
    shift = int(rng.integers(0, 12))
    # Independent reference: Python integers, no numpy broadcasting tricks.
    ref = np.array([[sum(int(A[m, k]) * int(B[k, n]) for k in range(K)) + int(bias[n])
                     for n in range(N)] for m in range(M)], dtype=np.int64)
    functional = matmul(cfg, A, B, bias, relu=True, shift=shift)
    assert np.array_equal(functional.acc, ref)
    assert np.array_equal(functional.q, _plain_requant(ref, shift, width, relu=True))
    cycle = run_matmul(cfg, A, B, bias=bias, relu=True, shift=shift)
    acc, q = cycle  # the one result type unpacks as (acc, q)
    # IS folds the bias into the accumulator, WS and OS add it in the output stage.
    assert np.array_equal(acc, ref if dataflow == "is" else ref - bias[None, :])
    assert np.array_equal(q, _plain_requant(ref, shift, width, relu=True))
    assert type(cycle) is type(functional) and cycle.alarms == functional.alarms == {}
    assert cycle.cycles == functional.cycles == cycle_count(cfg, M, K, N)


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
@pytest.mark.parametrize("rows,cols,M,K,N", [(1, 1, 1, 1, 1), (2, 3, 5, 7, 4), (3, 2, 1, 2, 9),
                                             (4, 4, 9, 13, 6), (8, 8, 2, 3, 17)])
def test_cycle_count_formula_matches_schedule_and_model(dataflow, rows, cols, M, K, N):
    cfg = AcceleratorConfig(rows=rows, cols=cols, dataflow=dataflow)
    A, B = np.ones((M, K), np.int64), np.ones((K, N), np.int64)
    program = build_program(cfg, A, B)
    assert program.cycles == cycle_count(cfg, M, K, N)
    rec = simulate(cfg, program)
    valid = np.flatnonzero(rec["out_valid"])
    assert valid[-1] == program.cycles - 1  # the last cycle carries the last result
    # The first result appears exactly `latency` cycles after its input.
    if dataflow == "os":
        first_in = int(np.flatnonzero(program.inputs["in_last"])[0])
    else:
        first_in = int(np.flatnonzero(program.inputs["in_valid"])[0])
    assert valid[0] == first_in + latency(cfg)


def test_seed_latency_figure_2n_plus_m():
    # Ozen 2023 §8.8.2: batch latency of an N×N array is proportional to 2N + M.
    for n in (4, 8, 16, 64):
        cfg = AcceleratorConfig(rows=n, cols=n)
        M = 8
        streaming = cycle_count(cfg, M, n, n) - n  # minus the R load cycles
        assert streaming == 2 * n + M + 1


def test_overflow_is_reported_not_wrapped():
    cfg = AcceleratorConfig(rows=2, cols=2, acc_width=16)
    A = np.full((1, 4), -128)
    B = np.full((4, 1), -128)
    with pytest.raises(AccumulatorOverflow, match="16-bit"):
        matmul(cfg, A, B)
    ok = AcceleratorConfig(rows=2, cols=2, max_k=4)
    assert matmul(ok, A, B).acc[0, 0] == 4 * 16384


def test_output_stage_matches_plain_python(rng):
    y = rng.integers(-(1 << 30), 1 << 30, 500)
    y[:6] = [0, -1, 1, 7, 8, -8]
    for shift in (0, 1, 3, 17, 31):
        for relu in (False, True):
            for width in (8, 16):
                assert np.array_equal(output_stage(y, 0, relu, shift, width),
                                      _plain_requant(y, shift, width, relu))


def test_mapping_equations_and_tiles():
    m = pe_map("ws", 3, 4, 5, 7, 9)  # B is K×N = 7×9
    assert m.shape == (7, 9)
    assert m[5, 6] == (5 % 3) * 4 + 6 % 4  # Eq. 10.3: row c_i % R, column c_o % C
    assert pe_map("is", 3, 4, 5, 7, 9)[4, 5] == (5 % 3) * 4 + 4 % 4  # Eq. 10.4
    assert pe_map("os", 3, 4, 5, 7, 9)[4, 6] == (4 % 3) * 4 + 6 % 4  # Eq. 10.5
    tl = tiles("ws", 3, 4, 5, 7, 9)
    assert len(tl) == 3 * 3 and [t.first_k for t in tl[:3]] == [True, False, False]
    covered = np.zeros((7, 9), int)
    for t in tl:
        covered[t.k0:t.k1, t.n0:t.n1] += 1
    assert (covered == 1).all()


def test_sabotage_bits():
    assert sabotage(5, 8, 1, "sa1") == 7
    assert sabotage(5, 8, 0, "sa0") == 4
    assert sabotage(0, 8, 7, "flip") == -128
    assert sabotage(-128, 8, 7, "sa0") == 0
    assert sabotage(3, 8, 9, "sa1") == 3  # beyond the register: no effect, as in the RTL


def test_fault_parse_and_errors():
    f = Fault.parse("1,2,psum,7,flip,40")
    assert f == Fault(1, 2, "psum", 7, "flip", 40)
    controls = f.controls()
    assert controls["reg"] == 2 and controls["mode"] == 2 and controls["cycle"] == 40
    assert set(controls) == set(FAULT_CONTROLS)
    for bad in ("1,2,psum", "a,2,psum,1,sa0", "1,2,acc,1,sa0", "1,2,psum,1,stuck"):
        with pytest.raises(ValueError):
            Fault.parse(bad)


def test_algorithm_6_1_bit_errors(rng):
    x = rng.integers(-100, 100, 1000)
    y = inject_bit_errors(x, 0.01, 8, rng)
    changed = np.flatnonzero(x != y)
    assert len(changed) <= 10
    for i in changed:
        d = int(y[i]) - int(x[i])
        assert y[i] == -x[i] or (abs(d) & (abs(d) - 1)) == 0  # negation or ± a power of two


@pytest.mark.parametrize("population", [1, 2, 10, 100, 1000, 9604, 10**5, 10**9])
@pytest.mark.parametrize(("e", "t", "p"), [(0.01, 1.96, 0.5), (0.05, 2.576, 0.2)])
def test_sample_size_eq_4_7(population, e, t, p):
    # Ahmadilivani 2025 Eq. 4.7 in Cochran's finite-population form: n0 = t²p(1−p)/e² for an
    # infinite population, corrected to n0 / (1 + (n0 − 1)/N); never more than N faults.
    n0 = t * t * p * (1 - p) / (e * e)
    want = min(population, math.ceil(n0 / (1 + (n0 - 1) / population) - 1e-9))
    assert sample_size(population, e=e, t=t, p=p) == want
    assert sample_size(population, e=e, t=t, p=p) <= population


def test_sample_size_limits():
    assert sample_size(0) == 0 and sample_size(-5) == 0
    # Large populations approach the published 9604 faults (±1 % at 95 %: 1.96²·0.25/0.01²).
    assert sample_size(10**12) == 9604
    sizes = [sample_size(n) for n in range(1, 3000, 37)]
    assert sizes == sorted(sizes)  # a larger population never needs fewer faults

