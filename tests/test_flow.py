"""Flow-controlling MAC units (Ozen 2023 §12.5.2).

Packing, pruning, the packed product, and the RTL of every variant against the golden register-level
model and plain numpy.

Plain numpy references here are written apart from :mod:`golden.flow`: the sparse product is
``A @ W``; the pruning reference walks the groups with Python loops.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.array import AccumulatorOverflow
from ftaccel.golden.flow import (
    NotPackable,
    Packed,
    check_fits,
    check_packable,
    flow_cycle_count,
    flow_dense_layer,
    is_packable,
    layer_shape,
    pack,
    packed_matmul,
    prune,
    run_flow_matmul,
    unpack,
)
from ftaccel.golden.output_stage import output_stage
from ftaccel.tb.flow import measured_cycles, mismatches, rtl_flow_matmul

#: (flow, hardware group) pairs the RTL is verified for: group sizes 2, 4, 8 (16 shortened).
VARIANTS = [("shortened", 2), ("shortened", 4), ("shortened", 8), ("shortened", 16),
            ("superposition", 2), ("superposition", 4), ("superposition", 8),
            ("twodim", 4), ("twodim", 16)]


def _limits(width):
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def _sparse(rng, K, N, gl, gk, width=8, extreme=False, fill=1.0):
    """A random complementary-sparse K×N matrix.

    In each group at most one nonzero at a random position (a fraction ``fill`` of the groups used),
    written with plain loops.
    """
    lo, hi = _limits(width)
    W = np.zeros((K, N), dtype=np.int64)
    for r0 in range(0, K, gl):
        for c0 in range(0, N, gk):
            if rng.random() >= fill:
                continue
            r = r0 + int(rng.integers(0, min(gl, K - r0)))
            c = c0 + int(rng.integers(0, min(gk, N - c0)))
            W[r, c] = rng.choice([lo, hi, -1]) if extreme else rng.integers(lo, hi + 1)
            if W[r, c] == 0:
                W[r, c] = 1
    return W


def _activations(rng, M, K, width=8, extreme=False):
    lo, hi = _limits(width)
    if extreme:
        return rng.choice([lo, hi, 0, -1], (M, K)).astype(np.int64)
    return rng.integers(lo, hi + 1, (M, K))


# -- golden: packing, checking, pruning, the packed product ------------------------------------

@pytest.mark.parametrize("gl,gk", [(1, 1), (2, 1), (4, 1), (8, 1), (16, 1), (1, 2), (1, 4),
                                   (1, 8), (2, 2), (4, 4), (3, 1), (1, 5), (2, 3)])
def test_pack_unpack_and_packed_product_equal_the_sparse_product(rng, gl, gk):
    for extreme in (False, True):
        K, N, M = int(rng.integers(1, 40)), int(rng.integers(1, 40)), int(rng.integers(1, 9))
        W = _sparse(rng, K, N, gl, gk, extreme=extreme, fill=0.8)
        A = _activations(rng, M, K, extreme=extreme)
        p = pack(W, gl, gk)
        assert p.values.shape == (-(-K // gl), -(-N // gk))
        assert np.array_equal(unpack(p), W)
        assert np.array_equal(packed_matmul(A, p), A @ W)
        assert np.count_nonzero(p.values) == np.count_nonzero(W)


def test_extension_bits_give_the_position_inside_the_group(rng):
    W = np.zeros((8, 6), dtype=np.int64)
    W[5, 3] = 7    # group (1, 1) of 4×2 groups: row 1, column 1 inside it
    W[0, 4] = -3   # group (0, 2): row 0, column 0
    p = pack(W, 4, 2)
    assert (p.values[1, 1], p.ext_row[1, 1], p.ext_col[1, 1]) == (7, 1, 1)
    assert (p.values[0, 2], p.ext_row[0, 2], p.ext_col[0, 2]) == (-3, 0, 0)
    assert p.ext_word(4)[1, 1] == 1 | (1 << 2)  # row select low, column select above
    assert np.count_nonzero(p.values) == 2 and not p.ext_row[0, 0] and not p.ext_col[0, 0]


@pytest.mark.parametrize("gl,gk,W_bad,message", [
    (4, 1, [(5, 3), (6, 3)], "rows 4…7 of column 3 hold 2 nonzero weights (at (5, 3), (6, 3))"),
    (1, 4, [(2, 1), (2, 2)], "columns 0…3 of row 2 hold 2 nonzero weights"),
    (2, 2, [(4, 6), (5, 7), (4, 7)], "rows 4…5 × columns 6…7 hold 3 nonzero weights"),
])
def test_not_packable_names_the_group(gl, gk, W_bad, message):
    W = np.zeros((8, 8), dtype=np.int64)
    W[0, 0] = 1
    for r, c in W_bad:
        W[r, c] = -2
    with pytest.raises(NotPackable) as exc:
        pack(W, gl, gk)
    assert message in str(exc.value)
    assert isinstance(exc.value, ConfigError)
    assert not is_packable(W, gl, gk)
    W[W_bad[0]] = 0
    for rc in W_bad[2:]:
        W[rc] = 0
    check_packable(W, gl, gk)  # one nonzero left per group: packable


@pytest.mark.parametrize("gl,gk", [(4, 1), (1, 4), (2, 2), (3, 2), (8, 1)])
def test_prune_keeps_the_largest_magnitude_of_every_group(rng, gl, gk):
    K, N = int(rng.integers(1, 30)), int(rng.integers(1, 30))
    for W in (rng.normal(size=(K, N)), rng.integers(-128, 128, (K, N))):
        S = prune(W, gl, gk)
        ref = np.zeros_like(W)
        for r0, c0 in itertools.product(range(0, K, gl), range(0, N, gk)):
            block = W[r0:r0 + gl, c0:c0 + gk]
            best, where = -1.0, None
            for r, c in itertools.product(range(block.shape[0]), range(block.shape[1])):
                if abs(block[r, c]) > best:
                    best, where = abs(block[r, c]), (r0 + r, c0 + c)
            ref[where] = W[where]
        assert np.array_equal(S, ref)
        assert is_packable(S, gl, gk)
        assert np.array_equal(prune(S, gl, gk), S)  # already complementary: unchanged


def test_layer_shapes_and_bad_groups():
    assert layer_shape("shortened", 8) == (8, 1)
    assert layer_shape("superposition", 8) == (1, 8)
    assert layer_shape("twodim", 16) == (4, 4)
    assert layer_shape("none", 1) == (1, 1)
    with pytest.raises(ConfigError, match="a square"):
        layer_shape("twodim", 8)
    with pytest.raises(ConfigError, match="invalid flow"):
        layer_shape("diagonal", 4)


def test_packed_extension_bits_outside_the_layer_are_rejected():
    with pytest.raises(ConfigError, match="inside group"):
        Packed(values=np.array([[1]]), ext_row=np.array([[3]]), ext_col=np.array([[0]]),
               shape=(3, 1), gl=4, gk=1)


@pytest.mark.parametrize("flow,hw,layer,message", [
    ("shortened", 4, (8, 1), "8 activation lanes per PE (it has 4)"),
    ("superposition", 2, (1, 4), "4 partial-sum lanes per PE (it has 2)"),
    ("shortened", 4, (1, 2), "2 partial-sum lanes per PE (it has 1)"),
    ("twodim", 4, (4, 4), "4 activation lanes per PE (it has 2) and 4 partial-sum lanes"),
])
def test_a_group_the_hardware_was_not_built_for_is_rejected(flow, hw, layer, message):
    cfg = AcceleratorConfig(rows=2, cols=2, flow=flow, flow_group=hw)
    W = np.zeros((8, 8), dtype=np.int64)
    W[3, 5] = 1
    p = pack(W, *layer)
    with pytest.raises(ConfigError, match="was not built for this group") as exc:
        check_fits(cfg, p)
    assert message in str(exc.value)


@pytest.mark.parametrize("changes,field", [
    ({"flow": "shortened"}, "flow_group"),               # group 1 is not a flow group
    ({"flow": "shortened", "flow_group": 6}, "flow_group"),
    ({"flow": "twodim", "flow_group": 8}, "flow_group"),
    ({"flow": "none", "flow_group": 4}, "flow_group"),
    ({"flow": "shortened", "flow_group": 4, "dataflow": "os"}, "flow"),
    ({"flow": "superposition", "flow_group": 4, "checksum": "spatial"}, "checksum"),
    ({"flow": "superposition", "flow_group": 4, "bypass": True}, "bypass"),
    ({"flow": "sparse"}, "flow"),
])
def test_flow_configuration_is_validated(changes, field):
    with pytest.raises(ConfigError) as exc:
        AcceleratorConfig(**changes)
    assert exc.value.field == field


def test_flow_configuration_round_trips():
    cfg = AcceleratorConfig(rows=3, cols=2, flow="twodim", flow_group=16)
    assert AcceleratorConfig.from_json(cfg.to_json()) == cfg
    assert cfg.name().endswith("_flowtw16")


@pytest.mark.parametrize("flow,hw", VARIANTS)
def test_golden_cycle_model_computes_the_tiled_packed_product(rng, flow, hw):
    cfg = AcceleratorConfig(rows=3, cols=2, flow=flow, flow_group=hw, max_k=256)
    gl, gk = layer_shape(flow, hw)
    K, N, M = 3 * gl * 2 + 1, 2 * gk * 2 + 1, 5   # K- and N-tiles, ragged edges
    W = _sparse(rng, K, N, gl, gk)
    A = _activations(rng, M, K)
    acc, q, prog = run_flow_matmul(cfg, A, pack(W, gl, gk), bias=np.arange(N) - 3, relu=True,
                                   shift=3)
    assert np.array_equal(acc, A @ W)
    assert np.array_equal(q, output_stage(A @ W, np.arange(N) - 3, True, 3, 8))
    assert prog.cycles == flow_cycle_count(cfg, M, K, N, gl, gk)


def test_accumulator_overflow_is_reported_not_wrapped():
    cfg = AcceleratorConfig(rows=2, cols=2, flow="shortened", flow_group=4, acc_width=16)
    W = np.zeros((8, 1), dtype=np.int64)
    W[[0, 4], 0] = -128
    A = np.full((1, 8), -128)
    with pytest.raises(AccumulatorOverflow, match="16-bit accumulator"):
        run_flow_matmul(cfg, A, pack(W, 4, 1))


# -- RTL against golden and numpy ---------------------------------------------------------------

def _check_rtl(cfg, A, W, gl, gk, *, bias=None, relu=False, shift=0):
    run = rtl_flow_matmul(cfg, A, pack(W, gl, gk), bias=bias, relu=relu, shift=shift)
    bad = mismatches(run.recorded, run.golden)
    assert not bad, f"RTL differs from the golden model (port, cycle, lane, rtl, golden): {bad}"
    assert np.array_equal(run.acc, A @ W)
    if cfg.output_stage:
        b = np.zeros(W.shape[1], np.int64) if bias is None else bias
        assert np.array_equal(run.q, output_stage(A @ W, b, relu, shift, cfg.a_width))
    M, K = A.shape
    assert measured_cycles(run) == flow_cycle_count(cfg, M, K, W.shape[1], gl, gk)
    return run


@pytest.mark.parametrize("flow,hw", VARIANTS)
def test_rtl_random_and_extreme_values_tiled(rng, flow, hw):
    """Every variant and group.

    Random, then extreme operands; K and N span several tiles with ragged edges; bias, ReLU and
    requantisation in the output stage.
    """
    cfg = AcceleratorConfig(rows=3, cols=2, flow=flow, flow_group=hw, max_k=512)
    gl, gk = layer_shape(flow, hw)
    K, N = 3 * gl * 2 - 1, 2 * gk * 2 + 1
    for extreme in (False, True):
        W = _sparse(rng, K, N, gl, gk, extreme=extreme)
        A = _activations(rng, 6, K, extreme=extreme)
        bias = rng.integers(-5000, 5000, N)
        _check_rtl(cfg, A, W, gl, gk, bias=bias, relu=not extreme, shift=int(rng.integers(0, 9)))


@pytest.mark.parametrize("flow,hw", [("shortened", 8), ("superposition", 4), ("twodim", 16)])
def test_rtl_dense_and_smaller_groups_use_a_subset_of_the_lanes(rng, flow, hw):
    """A dense layer gives the plain product, and a smaller group runs on the same hardware.

    The dense layer uses fixed multiplexer positions; a layer packed for a smaller group runs on the
    same hardware (Ozen 2023 §12.5.2).
    """
    cfg = AcceleratorConfig(rows=2, cols=3, flow=flow, flow_group=hw, max_k=256)
    L, Kk = layer_shape(flow, hw)
    A = _activations(rng, 4, 7)
    B = rng.integers(-128, 128, (7, 5))
    _check_rtl(cfg, A, B, 1, 1)
    gl, gk = max(1, L // 2), max(1, Kk // 2)
    W = _sparse(rng, 4 * gl + 1, 3 * gk + 2, gl, gk)
    _check_rtl(cfg, _activations(rng, 4, W.shape[0]), W, gl, gk)


def test_rtl_16_bit_operands_and_no_output_stage(rng):
    cfg = AcceleratorConfig(rows=2, cols=2, flow="twodim", flow_group=4, a_width=16,
                            w_width=16, max_k=64, output_stage=False)
    W = _sparse(rng, 9, 7, 2, 2, width=16, extreme=True)
    A = _activations(rng, 5, 9, width=16, extreme=True)
    run = _check_rtl(cfg, A, W, 2, 2)
    assert run.q is None and "q_out" not in run.recorded


@pytest.mark.parametrize("flow,g", [("shortened", 8), ("superposition", 4), ("twodim", 16)])
def test_rtl_throughput_boost_equals_the_group_size(rng, flow, g):
    """The same layer, dense and packed, on one array.

    The packed layer needs g times fewer passes, and the cycle counts read off ``out_valid`` in
    simulation follow the formula.
    """
    R, C, M = 2, 2, 24
    cfg = AcceleratorConfig(rows=R, cols=C, flow=flow, flow_group=g, max_k=256)
    gl, gk = layer_shape(flow, g)
    K, N = R * gl, C * gk
    W = _sparse(rng, K, N, gl, gk)
    A = _activations(rng, M, K)
    dense = _check_rtl(cfg, A, W, 1, 1)
    packed = _check_rtl(cfg, A, W, gl, gk)
    dense_passes = (K // R) * (N // C)
    assert dense_passes == g  # one pass packed
    per_pass = R + M + max(R - 2, 0)
    assert measured_cycles(dense) == g * per_pass - max(R - 2, 0) + R + 1
    assert measured_cycles(packed) == per_pass - max(R - 2, 0) + R + 1


def test_rtl_rejects_bad_layers_before_simulating(rng):
    cfg = AcceleratorConfig(rows=2, cols=2, flow="shortened", flow_group=4)
    W = np.zeros((8, 2), dtype=np.int64)
    W[1, 1] = W[2, 1] = 5
    with pytest.raises(NotPackable, match="rows 0…3 of column 1"):
        rtl_flow_matmul(cfg, np.ones((2, 8)), pack(W, 4, 1))
    with pytest.raises(ConfigError, match="was not built for this group"):
        rtl_flow_matmul(cfg, np.ones((2, 8)), pack(np.eye(8, dtype=np.int64), 8, 1))


# -- one network layer --------------------------------------------------------------------------

def test_flow_dense_layer_prunes_packs_and_runs(rng):
    cfg = AcceleratorConfig(rows=4, cols=4, flow="shortened", flow_group=4, max_k=64)
    A = rng.integers(0, 128, (10, 32))
    W = rng.integers(-128, 128, (32, 12))
    bias = rng.integers(-100, 100, 12)
    res = flow_dense_layer(cfg, A, W, bias=bias, shift=6, simulate=True)
    S = res["pruned"]
    assert np.array_equal(S, prune(W, 4, 1)) and is_packable(S, 4, 1)
    assert np.array_equal(res["acc"], A @ S)
    assert np.array_equal(res["q"], output_stage(A @ S, bias, True, 6, 8))
    assert np.array_equal(res["dense_acc"], A @ W)
    assert res["cycles"] == flow_cycle_count(cfg, 10, 32, 12, 4, 1)
    assert res["dense_cycles"] == flow_cycle_count(cfg, 10, 32, 12, 1, 1)
    assert res["speedup"] > 1


# -- command line -------------------------------------------------------------------------------

def _rtlgen(*args, cwd=None):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ftaccel.app.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def sparse_operands(tmp_path, rng):
    A = rng.integers(-128, 128, (5, 13))
    B = _sparse(rng, 13, 5, 4, 1)
    bad = B.copy()
    bad[8:12, 2] = [0, 3, -4, 0]  # rows 8…11 of column 2: two nonzeros
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "B.npy", B)
    np.save(tmp_path / "bad.npy", bad)
    np.save(tmp_path / "dense.npy", rng.integers(-128, 128, (13, 5)))
    return A, B


HW = ["--rows", 2, "--cols", 2, "--flow", "shortened", "--flow-group", 4]


def test_cli_matmul_packs_b_and_checks(tmp_path, sparse_operands):
    A, B = sparse_operands
    np.save(tmp_path / "bias.npy", np.arange(5) * 100)
    p = _rtlgen("matmul", *HW, "--a", "A.npy", "--b", "B.npy", "-o", "C.npy", "--q", "q.npy",
                "--bias", "bias.npy", "--relu", "--shift", 3, "--check", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "packed in 4×1 groups" in p.stdout and "check passed" in p.stdout
    assert np.array_equal(np.load(tmp_path / "C.npy"), A @ B)
    assert np.array_equal(np.load(tmp_path / "q.npy"),
                          output_stage(A @ B, np.arange(5) * 100, True, 3, 8))
    p = _rtlgen("matmul", *HW, "--prune", "--a", "A.npy", "--b", "dense.npy", "-o", "P.npy",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    D = np.load(tmp_path / "dense.npy")
    assert np.array_equal(np.load(tmp_path / "P.npy"), A @ prune(D, 4, 1))


def test_cli_matmul_mismatch_names_the_kept_run_folder(tmp_path, sparse_operands, monkeypatch,
                                                       capsys):
    """A failed ``--check`` on the flow-controlling array prints the run folder it kept."""
    import shutil
    from pathlib import Path

    import ftaccel.tb.flow as tbf
    from ftaccel.app.cli import main

    simulate = tbf.simulate_flow

    def wrong(*a, **kw):  # the golden model disagrees with the RTL in its first valid cycle
        golden = dict(simulate(*a, **kw))
        golden["out_valid"] = 1 - np.asarray(golden["out_valid"])
        return golden

    monkeypatch.setattr(tbf, "simulate_flow", wrong)
    monkeypatch.chdir(tmp_path)
    assert main(["matmul", *map(str, HW), "--a", "A.npy", "--b", "B.npy", "-o", "C.npy",
                 "--check"]) == 1
    out = capsys.readouterr().out
    assert "CHECK FAILED" in out and "log: None" not in out
    folder = Path(out.split("run folder kept: ")[1].split(" (log: ")[0])
    assert folder.is_dir() and (folder / "sim.log").is_file()
    shutil.rmtree(folder)  # kept in the user's cache for a person; not for this test


@pytest.mark.parametrize("args,message", [
    (["--b", "bad.npy"], "rows 8…11 of column 2 hold 2 nonzero weights (at (9, 2), (10, 2))"),
    (["--b", "dense.npy"], "not packable for 4×1 groups: rows 0…3 of column 0"),
    (["--b", "B.npy", "--pack-group", 8], "the layer needs 8 activation lanes per PE (it has 4)"),
    (["--b", "B.npy", "--flow-group", 6], "invalid flow_group = 6"),
    (["--b", "B.npy", "--dataflow", "is"], "invalid flow = 'shortened'"),
    (["--b", "B.npy", "--fault", "0,0,psum,1,sa1"], "--fault is not available with --flow"),
])
def test_cli_bad_flow_input_is_one_line_exit_2(tmp_path, sparse_operands, args, message):
    p = _rtlgen("matmul", *HW, "--a", "A.npy", "-o", "C.npy", *args, cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "C.npy").exists()


def test_cli_generate_and_verify_flow(tmp_path):
    p = _rtlgen("generate", "--rows", 2, "--cols", 2, "--flow", "twodim", "--flow-group", 16,
                "-o", tmp_path / "g")
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "g" / "flow_accelerator.v").read_text()
    assert "module flow_pe_l4k4_" in text and '"flow": "twodim"' in text
    p = _rtlgen("verify", *HW, "--count", 3, "--seed", 5)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "3 passed, 0 failed (seed 5)" in p.stdout


def test_the_plain_array_refuses_a_flow_configuration():
    from ftaccel.rtl_gen.array import SystolicArray

    with pytest.raises(ConfigError, match="FlowAccelerator"):
        SystolicArray(AcceleratorConfig(flow="shortened", flow_group=4))


def _product(rng, index=0, M=6, K=24, N=10):
    from types import SimpleNamespace

    return SimpleNamespace(index=index, name=f"fc{index}", A=rng.integers(0, 128, (M, K)),
                           B=rng.integers(-128, 128, (K, N)), bias=rng.integers(-99, 99, N),
                           relu=True, shift=5, fault=None, units={})


@pytest.mark.parametrize("simulate", [False, True])
def test_flow_engine_runs_chosen_layers_packed_and_the_rest_dense(rng, simulate):
    from ftaccel.golden.flow import FlowEngine

    cfg = AcceleratorConfig(rows=3, cols=2, flow="superposition", flow_group=4, max_k=64)
    eng = FlowEngine(cfg, {"fc0": 4, 1: 2}, simulate=simulate)
    for index, g in ((0, 4), (1, 2), (2, 1)):
        p = _product(rng, index)
        res = eng.product(p)
        S = prune(p.B, 1, g)
        assert res.group == g and np.array_equal(res.pruned, S)
        assert np.array_equal(res.q, output_stage(p.A @ S, p.bias, True, 5, 8))
        assert res.cycles == flow_cycle_count(cfg, 6, 24, 10, 1, g)
    p = _product(rng)
    p.units = {"afd": {"enable": 1}}
    with pytest.raises(ConfigError, match="not built into it"):
        eng.product(p)


def test_flow_rtl_engine_equals_the_golden_engine(rng):
    from ftaccel.golden.flow import FlowEngine
    from ftaccel.tb.flow import FlowRTLEngine

    cfg = AcceleratorConfig(rows=2, cols=2, flow="twodim", flow_group=4, max_k=64)
    p = _product(rng, M=4, K=9, N=7)
    gold, rtl = FlowEngine(cfg).product(p), FlowRTLEngine(cfg).product(p)
    assert np.array_equal(rtl.q, gold.q) and rtl.cycles == gold.cycles


def test_training_evolves_a_complementary_pattern_that_beats_one_shot_pruning(rng):
    """A linear classifier whose teacher is complementary-sparse in 4×1 groups.

    The training path's ``sparse`` method (the mask recomputed at every step, Ozen 2023 §12.4.1;
    int8-aware) ends packable and at least as accurate as pruning the dense solution (trained
    by the same path without the mask) once; the first is accurate.
    """
    pytest.importorskip("jax")
    from ftaccel.app.datasets import Dataset
    from ftaccel.app.train import TrainOptions, train
    from ftaccel.golden.network import Dense, Model

    X = rng.normal(size=(600, 16))
    teacher = _sparse(rng, 16, 4, 4, 1).astype(float)
    y = np.argmax(X @ teacher, axis=1)
    data = Dataset(X, y, "teacher")
    start = Model(layers=(Dense(rng.normal(scale=0.1, size=(16, 4)), np.zeros(4), name="fc"),),
                  input_shape=(16,), classes=4, name="linear")
    cfg = AcceleratorConfig(rows=4, cols=4, flow="shortened", flow_group=4)
    common = dict(epochs=40, lr=0.05, optimizer="sgd", seed=1)
    dense = train(start, data, config=cfg, options=TrainOptions(methods=("qat",), **common))
    sparse = train(start, data, config=cfg, options=TrainOptions(
        methods=("sparse",), flow_layers={"fc": 4}, **common))
    Ws, bs = sparse.float_model.layers[0].weights, sparse.float_model.layers[0].bias
    assert is_packable(Ws, 4, 1) and np.count_nonzero(Ws) <= 16
    assert is_packable(sparse.model.layers[0].weights, 4, 1)
    Wd, bd = dense.float_model.layers[0].weights, dense.float_model.layers[0].bias
    trained = np.mean(np.argmax(X @ Ws + bs, axis=1) == y)
    oneshot = np.mean(np.argmax(X @ prune(Wd, 4, 1) + bd, axis=1) == y)
    print(f"accuracy: trained in {trained:.3f}, one-shot pruned {oneshot:.3f}")
    assert trained >= oneshot and trained > 0.9


@pytest.mark.verilator
@pytest.mark.slow
def test_rtl_on_verilator(rng):
    """The same RTL on the second simulator (a 2×2 superposition-4 array, tiled)."""
    cfg = AcceleratorConfig(rows=2, cols=2, flow="superposition", flow_group=4, max_k=64)
    W = _sparse(rng, 5, 11, 1, 4, extreme=True)
    A = _activations(rng, 4, 5, extreme=True)
    run = rtl_flow_matmul(cfg, A, pack(W, 1, 4), bias=np.arange(11), relu=True, shift=2,
                          sim="verilator")
    assert not mismatches(run.recorded, run.golden)
    assert np.array_equal(run.acc, A @ W)


@pytest.mark.synth
@pytest.mark.slow
def test_flow_top_synthesises_with_its_pes_as_the_pe_unit(tmp_path):
    """``rtlgen synth --flow`` counts one flow-controlling PE per array position.

    And the input multiplexer makes the shortened PE larger than the dense MAC built the same way.
    """
    import json

    from ftaccel.rtl_gen.emit import write_verilog
    from ftaccel.rtl_gen.flow import FlowPE
    from ftaccel.synth.flow import synthesize

    p = _rtlgen("synth", "--rows", 2, "--cols", 3, "--flow", "shortened", "--flow-group", 2,
                "-o", tmp_path / "s")
    assert p.returncode == 0, p.stderr
    rep = json.loads((tmp_path / "s" / "area.json").read_text())
    pe = [u for u in rep["units"] if u["unit"] == "pe"]
    assert len(pe) == 1 and pe[0]["instances"] == 6
    areas = []
    for lanes in (1, 2):
        dut = FlowPE(lanes_in=lanes, lanes_out=1, a_width=8, w_width=8, acc_width=20)
        path = write_verilog(dut, dut.module_name, {"lanes_in": lanes}, tmp_path / f"{lanes}.v")
        areas.append(synthesize(path, dut.module_name, tmp_path / f"pe{lanes}",
                                liberty=False)["totals"]["transistors"])
    assert areas[1] > areas[0]
