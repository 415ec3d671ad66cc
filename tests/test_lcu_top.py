"""The LCU in the composed accelerator (Ahmadilivani 2025 §4.3.1): split layer, buffer, correction.

* a split layer (:func:`golden.split.split_layer`) runs on the top with its copies' lanes in
  split mode; RTL equals the golden cycle model in every port and cycle (Icarus for every
  dataflow, Verilator for one), the requantised result equals the split layer's independent
  forward pass, and the corrected buffer read back equals it too (fault-free, the LCU keeps
  identical non-negative halves);
* faults through the PE fault hooks corrupt one copy of a pair: a value made larger (0→1 bits)
  is masked back to the clean value, one made smaller passes as the smaller value, and the
  buffer after correction equals :func:`golden.lcu.correct_buffer` of the faulty outputs;
* the correction timing (2 cycles per pair, done ``2n + 3`` cycles after start) is measured;
* bad options give clear errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.campaign import output_error_faults
from ftaccel.golden.lcu import correct_buffer, lcu
from ftaccel.golden.schedule import assemble_corrected, build_program
from ftaccel.golden.split import split_layer
from ftaccel.tb.accelerator import mismatches, rtl_matmul


def _cfg(**kw):
    return AcceleratorConfig(**{"rows": 3, "cols": 3, "lcu": True, "lcu_depth": 16,
                                "lcu_max_pairs": 4, **kw})


def _layer(rng, M=5, K=4, N=4, critical=(1, 3), shift=6):
    X = rng.integers(0, 128, (M, K))  # post-ReLU activations of the previous layer
    W = rng.integers(-128, 128, (K, N))
    b = rng.integers(-500, 500, N)
    return X, split_layer(W, b, shift, list(critical), relu=True, a_width=8)


def _run(cfg, X, layer, sim="icarus", fault=None):
    return rtl_matmul(cfg, X, layer.weights, bias=layer.bias, relu=True,
                      shift=int(layer.shift.min()), split=layer.out_bits < 8,
                      lcu_pairs=layer.pairs, fault=fault, sim=sim)


@pytest.mark.parametrize(("dataflow", "sim"), [
    ("ws", "icarus"), ("is", "icarus"), ("os", "icarus"),
    pytest.param("ws", "verilator", marks=pytest.mark.verilator)])
def test_split_layer_fault_free(rng, dataflow, sim):
    cfg = _cfg(dataflow=dataflow)
    X, layer = _layer(rng)
    run = _run(cfg, X, layer, sim)
    assert not mismatches(run.recorded, run.golden)
    ref = layer.forward(X)
    assert np.array_equal(run.q, ref)
    # the halves are bit-identical and non-negative, so the LCU leaves them unchanged
    a, b = layer.pairs.T
    assert np.array_equal(ref[:, a], ref[:, b]) and ref.min() >= 0
    assert np.array_equal(assemble_corrected(run.program, run.recorded), ref)


def test_correction_timing_measured(rng):
    cfg = _cfg()
    X, layer = _layer(rng, M=3, critical=(0,))  # 3 rows × 1 pair = 3 pairs, one run
    run = _run(cfg, X, layer)
    start = np.flatnonzero(run.program.inputs["lcu__start"])
    done = np.flatnonzero(run.recorded["lcu__done"])
    busy = run.recorded["lcu__busy"]
    n = 3
    assert len(start) == 1 and list(done) == [start[0] + 2 * n + 3]
    assert busy[start[0] + 1:done[0]].all() and busy.sum() == 2 * n + 2
    # the capture counter shows one buffer row per result vector
    assert run.recorded["lcu__cap_row"][-1] == len(np.unique(run.program.out_cycle))


def _faulty_copy_run(rng, bit_of, want_larger):
    """Flip one accumulator bit of a copy's result so that its requantised value grows or shrinks.

    Return the run, the clean result and the corrupted element.
    """
    cfg = _cfg(fault_hooks=True)
    for _ in range(50):  # random layers until one has a suitable element (almost always the 1st)
        X, layer = _layer(rng, critical=(1,))
        clean = layer.forward(X)
        program = build_program(cfg, X, layer.weights, bias=layer.bias, relu=True, shift=6,
                                split=layer.out_bits < 8, lcu_pairs=layer.pairs)
        copy = int(layer.pairs[0, 1])
        acc = X @ layer.weights  # WS without a checksum: the bias is added after the array
        for m in range(X.shape[0]):
            for bit in bit_of:
                was = (int(acc[m, copy]) >> bit) & 1
                if was == int(not want_larger) and clean[m, copy] not in (0, 63):
                    cyc, lane = int(program.out_cycle[m, copy]), int(program.out_lane[m, copy])
                    (fault,) = output_error_faults(cfg, [(cyc, lane)], [bit])
                    return _run(cfg, X, layer, fault=fault), clean, (m, copy)
    raise AssertionError("no layer with a suitable element in 50 draws")


@pytest.mark.parametrize("larger", [True, False])
def test_fault_in_one_copy(rng, larger):
    # bits 7 … 12 of the accumulator reach the copy's output (shift 6 + 1)
    run, clean, (m, n) = _faulty_copy_run(rng, range(7, 13), larger)
    assert not mismatches(run.recorded, run.golden)  # fault hooks: RTL = cycle model
    faulty = run.q
    assert faulty[m, n] != clean[m, n] and (faulty[m, n] > clean[m, n]) == larger
    assert np.array_equal(np.delete(faulty, n, axis=1), np.delete(clean, n, axis=1))
    corrected = assemble_corrected(run.program, run.recorded)
    # the buffer after correction is correct_buffer of what was captured (independent model)
    flat = faulty.reshape(-1)
    N = faulty.shape[1]
    pairs = np.array([[r * N + 1, r * N + n] for r in range(faulty.shape[0])])
    assert np.array_equal(corrected.reshape(-1), correct_buffer(flat, pairs, width=8))
    a = int(clean[m, 1])
    assert corrected[m, n] == corrected[m, 1] == int(lcu(a, int(faulty[m, n]), width=8))
    if larger:   # bits that only went 0→1 are masked: a & b = a when b ⊇ a
        if (int(faulty[m, n]) & a) == a:
            assert corrected[m, n] == clean[m, n]
    else:        # 1→0: the pair takes a smaller value, never a larger one
        assert corrected[m, n] < clean[m, n]


def test_bad_options(rng):
    with pytest.raises(ConfigError, match="lcu"):
        AcceleratorConfig(lcu=True, output_stage=False)
    with pytest.raises(ConfigError, match="lcu_depth"):
        AcceleratorConfig(lcu=True, lcu_depth=1)
    cfg = _cfg(lcu_depth=4)
    X, layer = _layer(rng)
    with pytest.raises(ValueError, match="lcu_depth"):
        build_program(cfg, X, layer.weights, split=layer.out_bits < 8, lcu_pairs=layer.pairs)
    cfg = _cfg()
    with pytest.raises(ValueError, match="split"):
        build_program(cfg, X, layer.weights, split=[True])
    with pytest.raises(ConfigError, match="invalid lcu pair column = 99: 0 … 5"):
        build_program(cfg, X, layer.weights, lcu_pairs=[[0, 99]])
    with pytest.raises(ValueError, match="lcu"):
        build_program(_cfg(lcu=False), X, layer.weights, lcu_pairs=[[0, 1]])
