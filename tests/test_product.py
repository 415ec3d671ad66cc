"""tb.product: every check of a product before it is simulated (no simulator needed here)."""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.faults import Fault
from ftaccel.tb.product import (
    RunOptions,
    accumulator_bound,
    check_accumulator,
    prepare,
)


def _bound_by_loops(A, B, bias=None):
    """Σk |A[m,k]|·|B[k,n]| (+ |bias[n]|), written with plain Python loops."""
    best = 0
    for m in range(len(A)):
        for n in range(len(B[0])):
            s = sum(abs(int(A[m][k])) * abs(int(B[k][n])) for k in range(len(B)))
            if bias is not None:
                s += abs(int(bias[n]))
            best = max(best, s)
    return best


def test_bound_equals_an_independent_computation(rng):
    cfg = AcceleratorConfig(dataflow="is")  # IS adds the bias into the partial sums
    for _ in range(20):
        M, K, N = rng.integers(1, 6, 3)
        A = rng.integers(-128, 128, (M, K))
        B = rng.integers(-128, 128, (K, N))
        bias = rng.integers(-1000, 1000, N)
        assert accumulator_bound(cfg, A, B)[0] == _bound_by_loops(A, B)
        assert accumulator_bound(cfg, A, B, bias)[0] == _bound_by_loops(A, B, bias)
    ws = AcceleratorConfig()  # WS without a checksum: the bias is added after the array
    assert accumulator_bound(ws, A, B, bias)[0] == _bound_by_loops(A, B)


def test_the_issue_case_is_refused_naming_the_bound():
    # 2×2, --acc-width 16, all −128: numpy gives 65536, a 16-bit accumulator wraps to 0.
    A = np.full((2, 2), -128)
    cfg = AcceleratorConfig(rows=2, cols=2, acc_width=16)
    with pytest.raises(ConfigError) as info:
        check_accumulator(cfg, A, A)
    msg = str(info.value)
    assert "32,768" in msg and "32,767" in msg and "17 bits" in msg
    check_accumulator(cfg.replace(acc_width=17), A, A)  # one more bit holds it


def test_derived_width_is_guarded_too():
    cfg = AcceleratorConfig(rows=2, cols=2, max_k=1)  # derived 16 bits
    assert cfg.acc_width is None and cfg.acc_bits == 16
    with pytest.raises(ConfigError, match="max_k or acc_width"):
        check_accumulator(cfg, np.full((1, 2), -128), np.full((2, 1), -128))
    check_accumulator(cfg, np.full((1, 2), -128), np.full((2, 1), 127))  # 32,512 fits
    # the boundary itself: 128·128 + 128·127 + 1·127 = 2**15 − 1 fits, one more does not
    A = np.array([[-128, -128, 1]])
    check_accumulator(cfg, A, np.array([[-128], [127], [127]]))
    with pytest.raises(ConfigError, match="32,768"):
        check_accumulator(cfg, A, np.array([[-128], [127], [-128]]))


def _prep(cfg, M=3, K=4, N=5, **opts):
    A = np.ones((M, K), dtype=np.int64)
    B = np.ones((K, N), dtype=np.int64)
    return prepare(cfg, A, B, RunOptions(**opts))


@pytest.mark.parametrize("cfg,opts,message", [
    (AcceleratorConfig(bypass=True), {"bypass_map": np.full((8, 8), -1)},
     "invalid bypass map value = -1"),
    (AcceleratorConfig(bypass=True), {"bypass_map": np.zeros((8, 7))}, "bypass map shape"),
    (AcceleratorConfig(), {"bypass_map": np.zeros((8, 8))}, "invalid bypass = False"),
    (AcceleratorConfig(fault_hooks=True), {"fault": Fault(0, 0, "psum", 1, "flip", 10 ** 30)},
     "never fires"),
    (AcceleratorConfig(fault_hooks=True), {"fault": Fault(0, 0, "psum", 1, "flip", 500)},
     "this run lasts"),
    (AcceleratorConfig(fault_hooks=True), {"fault": Fault(0, 8, "psum", 1, "sa0")},
     "a PE of the 8×8 array"),
    (AcceleratorConfig(fault_hooks=True), {"fault": Fault(0, 0, "weight", 8, "sa0")},
     "8-bit weight register"),
    (AcceleratorConfig(), {"fault": Fault(0, 0, "psum", 1, "sa0")}, "fault_hooks"),
    (AcceleratorConfig(lcu=True, lcu_depth=2), {}, "at least 3 output-buffer rows"),
    (AcceleratorConfig(checksum="spatial"), {"checksum_threshold": 1 << 26},
     "checksum threshold"),
    (AcceleratorConfig(), {"checksum_threshold": 0}, "'spatial' or 'both'"),
    (AcceleratorConfig(checksum="temporal"), {"temporal_threshold": 256},
     "temporal threshold"),
    (AcceleratorConfig(checksum="temporal"), {"temporal_batch": 16}, "temporal batch"),
    (AcceleratorConfig(checksum="both"), {"bias_error": (5, 0, None)}, "bias error column"),
    (AcceleratorConfig(checksum="both"), {"bias_error": (0, 26, None)}, "bias error bit"),
    (AcceleratorConfig(checksum="both"), {"bias_error": (0, 1, 3)}, "bias error row"),
    (AcceleratorConfig(), {"bias_error": (0, 1, None)}, "unless a checksum is built"),
    (AcceleratorConfig(), {"shift": 63}, "invalid shift = 63"),
    (AcceleratorConfig(output_stage=False), {"relu": True}, "output_stage"),
    (AcceleratorConfig(afd=True), {"afd": {"gates": 3}}, "afd gates"),
    (AcceleratorConfig(lcu=True), {"lcu_pairs": np.array([[0, 5]])}, "lcu pair column"),
    (AcceleratorConfig(lcu=True), {"split": np.zeros(4, bool)}, "split shape"),
])
def test_prepare_refuses_bad_options(cfg, opts, message):
    with pytest.raises(ConfigError, match=message):
        _prep(cfg, **opts)


@pytest.mark.parametrize("A,B,message", [
    (np.ones((3, 4)), np.ones((5, 2)), "shapes do not chain"),
    (np.ones(3), np.ones((3, 2)), "a matrix"),
    (np.ones((0, 3)), np.ones((3, 2)), "at least one element"),
    (np.full((2, 2), 0.5), np.ones((2, 2)), "integers"),
    (np.full((2, 2), np.nan), np.ones((2, 2)), "integers"),
    (np.ones((2, 2), complex), np.ones((2, 2)), "integer array"),
    (np.full((2, 2), 128), np.ones((2, 2)), "8-bit signed"),
])
def test_prepare_refuses_bad_operands(A, B, message):
    with pytest.raises(ConfigError, match=message):
        prepare(AcceleratorConfig(), A, B)


def test_result_vectors_matches_the_program():
    for cfg in (AcceleratorConfig(rows=2, cols=3), AcceleratorConfig(rows=3, cols=2,
                dataflow="is"), AcceleratorConfig(rows=2, cols=2, dataflow="os")):
        for M, N in ((1, 1), (5, 4), (7, 9)):
            program = _prep(cfg, M=M, N=N)
            assert cfg.result_vectors(M, N) == len(np.unique(program.out_cycle))


def test_prepare_accepts_a_valid_product():
    cfg = AcceleratorConfig(rows=2, cols=2, fault_hooks=True, checksum="both", lcu=True)
    program = _prep(cfg, M=3, K=3, N=3, fault=Fault(1, 2, "weight", 9, "flip", 3),
                    checksum_threshold=5, temporal_threshold=2, temporal_batch=2,
                    bias_error=(2, 4, 1), lcu_pairs=np.array([[0, 1]]),
                    split=np.array([False, True, False]))
    assert program.cycles > 0
    assert program.inputs["checksum__threshold"].max() == 5
    assert program.inputs["temporal__threshold"].max() == 2
