"""Checksum alarms mapped to the product's rows and columns (golden.results), on the cycle model.

The RTL records the same ports (held equal cycle by cycle in test_checksum_top).
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.campaign import output_error_faults
from ftaccel.golden.faults import Fault
from ftaccel.golden.results import alarm_lines, alarm_report, mismatch_report
from ftaccel.golden.schedule import assemble, build_program

CFG = AcceleratorConfig(rows=3, cols=3, checksum="both", temporal_mode="exact",
                        fault_hooks=True)


def _ceil(a, b):
    return -(-a // b)


def _operands(rng, M=7, K=5, N=4):
    return rng.integers(-20, 20, (M, K)), rng.integers(-20, 20, (K, N))


def _one_result_flip(A, B, m, n, bit, batch=3):
    """A partial-sum flip timed to corrupt exactly C[m, n] (golden.campaign's recipe)."""
    program = build_program(CFG, A, B, temporal_batch=batch)
    pos = [(int(program.out_cycle[m, n]), int(program.out_lane[m, n]))]
    return output_error_faults(CFG, pos, [bit])[0]


def _run(A, B, batch=3, fault=None, **kw):
    program = build_program(CFG, A, B, temporal_batch=batch, fault=fault, **kw)
    clean = assemble(program, simulate(CFG, program), "acc_out")
    rec = simulate(CFG, program, fault)
    return program, rec, clean, assemble(program, rec, "acc_out")


def test_clean_run_counts_vectors_and_batches_and_flags_nothing(rng):
    M, K, N, nb = 7, 5, 4, 3
    program, rec, clean, acc = _run(*_operands(rng, M, K, N), nb)
    rep = alarm_report(CFG, program, rec)
    n_tiles, k_tiles = _ceil(N, CFG.cols), _ceil(K, CFG.rows)
    assert rep["alarm"] is False and rep["located"] == []
    sp, tp = rep["spatial"], rep["temporal"]
    assert sp["result_vectors"] == M * n_tiles
    assert sp["partial_sum_vectors"] == (k_tiles - 1) * M * n_tiles
    assert tp["batches"] == _ceil(M, nb) * n_tiles
    assert tp["partial_sum_batches"] == (k_tiles - 1) * _ceil(M, nb) * n_tiles
    assert sp["flagged"] == [] and tp["flagged"] == []
    assert "no error" in alarm_lines(rep)[0] and "no error" in alarm_lines(rep)[1]


@pytest.mark.parametrize("fault", [
    Fault(2, 1, "psum", 3, "sa1"),          # one column, every row
    "flip C[4, 0]",                         # one result, flipped as it leaves the array
    Fault(0, 2, "psum", 5, "flip", 14),     # a partial sum of the first K-tile
    Fault(1, 1, "act", 4, "sa0"),
])
def test_every_corrupted_output_is_flagged_and_located(rng, fault):
    A, B = _operands(rng)
    if isinstance(fault, str):
        fault = _one_result_flip(A, B, 4, 0, 2)
    program, rec, clean, acc = _run(A, B, fault=fault)
    rep = alarm_report(CFG, program, rec)
    corrupted = {tuple(p) for p in np.argwhere(acc != clean).tolist()}
    assert corrupted, "the fault must change a result for this test to mean something"
    rows = set(rep["spatial"]["rows_flagged"])
    cols = set(rep["temporal"]["columns_flagged"])
    for m, n in corrupted:
        # spatial: the vector of row m holding column n; temporal: n's lane in m's batch
        assert any(m in v["rows"] and n in v["columns"] for v in rep["spatial"]["flagged"])
        assert any(m in b["rows"] and n in b["columns"] for b in rep["temporal"]["flagged"])
        assert m in rows and n in cols
    assert corrupted <= {tuple(p) for p in rep["located"]}
    assert rep["alarm"]


def test_partial_sum_error_is_counted_apart(rng):
    # A flip early in the first K-tile pass: flagged there and again in the final sum.
    program, rec, clean, acc = _run(*_operands(rng), fault=Fault(0, 2, "psum", 5, "flip", 14))
    rep = alarm_report(CFG, program, rec)
    assert rep["spatial"]["partial_sum_vectors_flagged"] >= 1
    assert rep["spatial"]["result_vectors_flagged"] >= 1


def test_threshold_hides_small_syndromes(rng):
    # Bit 0 of one result: the error is ±1, so thresholds of 1 let it pass, 0 does not.
    A, B = _operands(rng)
    fault = _one_result_flip(A, B, 2, 1, 0)
    program, rec, clean, acc = _run(A, B, fault=fault)
    assert np.sum(acc != clean) == 1 and alarm_report(CFG, program, rec)["alarm"]
    program, rec, _, _ = _run(A, B, fault=fault, checksum_threshold=1, temporal_threshold=1)
    rep = alarm_report(CFG, program, rec)
    assert not rep["spatial"]["alarm"] and not rep["temporal"]["alarm"]


def test_bias_word_error_flags_every_row_of_its_column(rng):
    M, K, N = 7, 3, 3
    A = rng.integers(-20, 20, (M, K))
    B = rng.integers(-20, 20, (K, N))
    bias = rng.integers(-100, 100, N)
    program = build_program(CFG, A, B, bias=bias, temporal_batch=3,
                            bias_error=(None, 1, 1 << 10))
    rec = simulate(CFG, program)
    rep = alarm_report(CFG, program, rec)
    assert rep["spatial"]["rows_flagged"] == list(range(M))
    assert rep["temporal"]["columns_flagged"] == [1]
    assert sorted(map(tuple, rep["located"])) == [(m, 1) for m in range(M)]


def test_mismatch_report():
    a = np.array([[1, 2], [3, 4]])
    b = np.array([[1, 0], [3, 5]])
    assert mismatch_report(a, b) == {"count": 2, "first": [[0, 1, 2, 0], [1, 1, 4, 5]]}
    assert mismatch_report(a, a) == {"count": 0, "first": []}
    assert mismatch_report(a, b, limit=1)["first"] == [[0, 1, 2, 0]]
