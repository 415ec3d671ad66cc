"""Campaigns recompute only what a fault touches (issue 24 item 2), with the same results.

The fast path (a run from the faulty layer on the recorded fault-free activations, the faulty
product computed only where the fault reaches, the later layers only on the images it
changed) is held equal to the full recomputation of every layer from the faulty one, on
every dataflow, stuck-at and one-cycle faults of every register, with protections; and the
restricted product to the whole product on random operands and cycles over the whole
schedule.  Seeded; the seed is printed.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.app.campaign import build_context, parse_spec, population
from ftaccel.app.netcampaign import evaluate_register_fault
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.array import cycle_count
from ftaccel.golden.fault_models import (
    TransientFault,
    _stuck_terms,
    clean_acc,
    faulty_product,
    restricted_applies,
    sabotage_array,
)
from ftaccel.golden.faults import MODES, REGISTERS, Fault
from ftaccel.golden.network import Conv2D, LoweredConv

PROTECTIONS = [{"kind": "none"}, {"kind": "bypass"},
               {"kind": "sanity", "checksum": "both"},
               {"kind": "afd", "gates": 2, "mode": "clip"}, {"kind": "median", "window": 3}]


def _spec(dataflow: str, protections, model="digits-cnn", images=5, double=True,
          rows=4, cols=4) -> dict:
    return parse_spec({
        "campaign": {"name": "speed", "seed": 5, "chunk": 8},
        "network": {"model": model}, "data": {"source": "digits", "images": images},
        "accelerator": {"rows": rows, "cols": cols, "dataflow": dataflow,
                        "double_buffer": double},
        "protections": protections, "faults": {"model": "register"},
        "sample": {"method": "statistical", "confidence": 0.8, "margin": 0.3}})


def _check_equal(ctx, pop, seed: int, n: int) -> int:
    """Fast and full evaluation of ``n`` stuck-at and ``n`` flip faults; how many changed logits."""
    rng = np.random.default_rng(seed)
    idx = list(rng.choice(pop.n_stuck, n, replace=False)) + \
        list(rng.integers(pop.n_stuck, len(pop), n))
    effective = 0
    for fid, i in enumerate(idx):
        d = pop.describe(int(i))
        fast = evaluate_register_fault(ctx, d, fid)
        full = evaluate_register_fault(ctx, d, fid, full=True)
        assert fast == full, (seed, d)
        effective += any(r["logits_changed"] for r in full)
    return effective


@pytest.mark.parametrize("dataflow,double", [("ws", True), ("ws", False), ("is", True),
                                             ("os", True)])
def test_fast_campaign_path_equals_full_recomputation(dataflow, double):
    """Every protection the campaign allows on the plain model, every register, both fault kinds."""
    seed = {"ws": 11, "is": 12, "os": 13}[dataflow] + (0 if double else 100)
    print(f"seed {seed}")
    # (the input units and the Sanity-Check are WS units here)
    prots = [p for p in PROTECTIONS if dataflow == "ws" or p["kind"] in ("none", "bypass")]
    spec = _spec(dataflow, prots, double=double)
    ctx = build_context(spec)
    effective = _check_equal(ctx, population(spec, ctx), seed, 12)
    assert effective >= 3  # the sample reaches the logits: the comparison has teeth


def test_fast_campaign_path_equals_full_recomputation_with_lcu_and_tmr():
    """The critical-neuron protections (their own protected models and placements)."""
    print("seed 21")
    spec = _spec("ws", [{"kind": "none"}, {"kind": "lcu", "nvf_threshold": 5},
                        {"kind": "tmr", "nvf_threshold": 5}], model="digits-mlp", images=6)
    ctx = build_context(spec)
    assert _check_equal(ctx, population(spec, ctx), 21, 10) >= 3


@pytest.mark.parametrize(("rows", "cols", "double"), [(3, 5, False), (5, 2, True)])
def test_one_cycle_faults_on_rectangular_arrays_equal_the_whole_product(rows, cols, double):
    """A one-cycle fault's change to the clean accumulators, on arrays with R ≠ C.

    Every register and mode at cycles over the whole schedule, half of them in the K-tiles'
    loads and streams (the partial-sum registers read the one sum they hit from the earlier
    K-tiles), ragged edge tiles and bypassed PEs: the restricted product equals the
    pass-by-pass one.
    """
    seed = 41 + rows + double
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = AcceleratorConfig(rows=rows, cols=cols, dataflow="ws", double_buffer=double)
    tried = differs = 0
    for _ in range(10):
        M, K, N = (int(v) for v in rng.integers([1, 1, 1], [12, 4 * rows, 3 * cols]))
        A = rng.integers(-128, 128, (M, K))
        B = rng.integers(-128, 128, (K, N))
        bias = rng.integers(-1000, 1000, N)
        bmap = rng.random((rows, cols)) < 0.2 if rng.random() < 0.5 else None
        clean, _ = faulty_product(cfg, A, B, bias, None, bypass_map=bmap)
        T = cycle_count(cfg, M, K, N)
        for _ in range(30):
            reg = REGISTERS[int(rng.integers(len(REGISTERS)))]
            r, c = int(rng.integers(rows + 1)), int(rng.integers(cols + 1))
            bit, t = int(rng.integers(0, 10)), int(rng.integers(0, T + 3))
            f = Fault(r, c, reg, bit, "flip", t) if rng.random() < 0.5 else \
                TransientFault(r, c, reg, bit, MODES[int(rng.integers(len(MODES)))], t)
            whole, _ = faulty_product(cfg, A, B, bias, f, bypass_map=bmap)
            fast, _ = faulty_product(cfg, A, B, bias, f, bypass_map=bmap, restrict=True,
                                     clean=clean)
            assert np.array_equal(fast, whole), (seed, M, K, N, f)
            tried += 1
            differs += not np.array_equal(whole, clean)
    print(f"{differs} of {tried} faults changed an output")
    # most one-cycle faults change nothing here (a bit forced to the value it has, a cycle
    # outside every pass, a PE outside the tile): about 1 in 10 do, so more than 1 in 20
    # shows the change path is exercised
    assert differs > tried // 20


@pytest.mark.parametrize("double", [True, False])
def test_restricted_product_equals_the_whole_product(double):
    """Random operands, PEs, registers, modes and cycles over the whole schedule (WS, no checksum).

    Includes bypassed PEs and ragged edge tiles; the fault-free accumulators from one BLAS
    product equal the pass-by-pass ones; so do the results from float32-lowered activations.
    """
    seed = 31 + double
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", double_buffer=double)
    assert restricted_applies(cfg)
    tried = differs = 0
    for _ in range(12):
        M, K, N = (int(v) for v in rng.integers([1, 1, 1], [14, 15, 14]))
        A = rng.integers(-128, 128, (M, K))
        B = rng.integers(-128, 128, (K, N))
        bias = rng.integers(-1000, 1000, N)
        bmap = rng.random((4, 4)) < 0.2 if rng.random() < 0.5 else None
        whole0, _ = faulty_product(cfg, A, B, bias, None, bypass_map=bmap)
        assert np.array_equal(clean_acc(cfg, A, B, bias, bmap), whole0)
        T = cycle_count(cfg, M, K, N)
        for _ in range(20):
            reg = REGISTERS[int(rng.integers(len(REGISTERS)))]
            mode = MODES[int(rng.integers(len(MODES)))]
            r, c, bit = int(rng.integers(5)), int(rng.integers(5)), int(rng.integers(0, 20))
            t = int(rng.integers(0, T + 3))
            if mode == "flip":
                f = Fault(r, c, reg, bit, "flip", t)
            elif rng.random() < 0.5:
                f = TransientFault(r, c, reg, bit, mode, t)
            else:
                f = Fault(r, c, reg, bit, mode)
            whole, _ = faulty_product(cfg, A, B, bias, f, bypass_map=bmap)
            fast, _ = faulty_product(cfg, A, B, bias, f, bypass_map=bmap, restrict=True)
            assert np.array_equal(fast, whole), (seed, M, K, N, f)
            given, _ = faulty_product(cfg, A, B, bias, f, bypass_map=bmap, restrict=True,
                                      clean=whole0)
            assert np.array_equal(given, whole), (seed, M, K, N, f)
            # the activations lowered in float32 (FastFaultEngine.lowers_float), clean
            # accumulators computed from them too; any other fault converts them back
            lowered, _ = faulty_product(cfg, A.astype(np.float32), B, bias, f,
                                        bypass_map=bmap, restrict=True)
            assert np.array_equal(lowered, whole), (seed, M, K, N, f)
            tried += 1
            differs += not np.array_equal(whole, whole0)
    assert differs > tried // 10  # enough faults reach the outputs


@pytest.mark.parametrize(("a_width", "w_width", "acc_width"),
                         [(8, 8, None), (16, 8, 30), (16, 16, 40), (4, 4, 9), (12, 16, 32)])
def test_stuck_faults_equal_the_whole_product_at_every_width(a_width, w_width, acc_width):
    """Stuck-at faults of every register at widths that change the closed form's words.

    The partial sums' recurrence runs on uint32 words for P ≤ 32 (P < 32 wraps inside them)
    and uint64 beyond; K-tile sums are exact in float32 up to 2^24 and in float64 beyond
    (16-bit activations); a stuck weight without cached accumulators is one product with
    the faulty weights.  With and without the cached fault-free accumulators, from integer
    and float-lowered activations (float64 where float32 is not exact).
    """
    seed = 61 + a_width + w_width
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    tried = differs = 0
    for _ in range(8):
        R, C = (int(v) for v in rng.integers(1, 7, 2))
        cfg = AcceleratorConfig(rows=R, cols=C, dataflow="ws", a_width=a_width,
                                w_width=w_width, acc_width=acc_width, max_k=64,
                                double_buffer=bool(rng.integers(2)))
        P = cfg.acc_bits
        M, K, N = (int(v) for v in rng.integers([1, 1, 1], [20, 40, 14]))
        A = rng.integers(-(1 << a_width - 1), 1 << a_width - 1, (M, K))
        B = rng.integers(-(1 << w_width - 1), 1 << w_width - 1, (K, N))
        bias = rng.integers(-1000, 1000, N)
        bmap = rng.random((R, C)) < 0.2 if rng.random() < 0.5 else None
        whole0, _ = faulty_product(cfg, A, B, bias, None, bypass_map=bmap)
        Af = A.astype(np.float32 if a_width + w_width <= 16 else np.float64)
        for _ in range(16):
            f = Fault(int(rng.integers(R + 1)), int(rng.integers(C + 1)),
                      REGISTERS[int(rng.integers(len(REGISTERS)))],
                      int(rng.integers(0, P + 1)), ("sa0", "sa1")[int(rng.integers(2))])
            whole, _ = faulty_product(cfg, A, B, bias, f, bypass_map=bmap)
            for a in (A, Af):
                for clean in (None, whole0):
                    fast, _ = faulty_product(cfg, a, B, bias, f, bypass_map=bmap,
                                             restrict=True, clean=clean)
                    assert np.array_equal(fast, whole), (seed, R, C, M, K, N, f, a.dtype)
            tried += 1
            differs += not np.array_equal(whole, whole0)
    assert differs > tried // 8  # enough faults reach the outputs


def test_stuck_bit_change_is_the_sabotage_of_every_value():
    """``sab(v) − v = step · (t1 + t2 · bit_b(v))`` for every value of widths 2 … 9, every bit."""
    for width in range(2, 10):
        v = np.arange(-(1 << width - 1), 1 << width - 1)
        for bit in range(width + 2):
            for mode in MODES:
                step, t1, t2 = _stuck_terms(width, bit, mode)
                want = sabotage_array(v, width, bit, mode) - v
                assert np.array_equal(step * (t1 + t2 * ((v >> bit) & 1)), want), \
                    (width, bit, mode)


def _small(images=12) -> dict:
    return parse_spec({
        "campaign": {"name": "runner", "seed": 3, "chunk": 4},
        "network": {"model": "digits-mlp"}, "data": {"source": "digits", "images": images},
        "accelerator": {"rows": 4, "cols": 4, "dataflow": "ws"},
        "protections": [{"kind": "none"}, {"kind": "bypass"}],
        "faults": {"model": "register"},
        "sample": {"method": "statistical", "confidence": 0.8, "margin": 0.25}})


def test_small_campaign_runs_in_process_by_default_and_says_why(tmp_path):
    """The default runner times the first chunk; a small campaign never starts a cluster."""
    from ftaccel.app.campaign import run_campaign

    spec = _small()
    ref = run_campaign(spec, tmp_path / "zero", workers=0, progress=False)
    assert ref["timing"]["runner"] == "in-process"
    assert ref["timing"]["runner_reason"] == "--workers 0"
    rep = run_campaign(spec, tmp_path / "auto", progress=False)
    t = rep["timing"]
    assert t["runner"] == "in-process" and t["workers"] == 0
    assert "start-up" in t["runner_reason"] or t["runner_reason"] in ("one core", "one chunk")
    md = (tmp_path / "auto" / "campaign.md").read_text()
    assert f"- runner: in-process ({t['runner_reason']})" in md
    assert (tmp_path / "auto" / "trace.csv").read_text() == \
        (tmp_path / "zero" / "trace.csv").read_text()


def test_long_campaign_prints_its_estimate_and_runs_on_dask(tmp_path, monkeypatch):
    """Past the thresholds the default runner starts a cluster and prints the measured speed."""
    import os

    from ftaccel.app import campaign

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the default runner stays in-process")
    monkeypatch.setattr(campaign, "cluster_startup_seconds", lambda ctx: 0.0)
    monkeypatch.setattr(campaign, "LONG_CAMPAIGN_SECONDS", 0.0)
    spec = _small()
    lines = []
    rep = campaign.run_campaign(spec, tmp_path / "auto", progress=False,
                                log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert rep["timing"]["runner"] == "dask" and rep["timing"]["workers"] >= 2
    est = [s for s in lines if s.startswith("estimate: ")]
    assert len(est) == 1 and "faults/minute" in est[0] and "measured in the first chunk" \
        in est[0], lines
    campaign.run_campaign(spec, tmp_path / "zero", workers=0, progress=False)
    assert (tmp_path / "auto" / "trace.csv").read_text() == \
        (tmp_path / "zero" / "trace.csv").read_text()


@pytest.mark.parametrize(("kernel", "stride", "padding"),
                         [((3, 3), (1, 1), (1, 1, 1, 1)), ((5, 3), (2, 1), (2, 0, 1, 1)),
                          ((1, 1), (2, 2), (0, 0, 0, 0))])
def test_lowered_conv_reads_equal_the_im2col_matrix(kernel, stride, padding):
    """:class:`LoweredConv`'s column blocks and rows are those of the whole im2col matrix."""
    seed = 51 + kernel[0] + stride[0]
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (3, 9, 7, 5))
    layer = Conv2D(weights=rng.integers(-8, 8, (*kernel, 5, 4)), bias=np.zeros(4, np.int64),
                   stride=stride, padding=padding, pad_value=-3)
    lazy = LoweredConv(layer, x)
    whole = layer.lower(x)
    assert lazy.shape == whole.shape
    K = whole.shape[1]
    for k0, k1 in ((0, min(4, K)), (K // 2, K), (K - 1, K), (0, K)):
        assert np.array_equal(lazy[:, k0:k1], whole[:, k0:k1]), (k0, k1)
    for j in rng.integers(0, whole.shape[0], 6):
        assert np.array_equal(lazy[int(j), :K // 2], whole[int(j), :K // 2]), j
    assert np.array_equal(np.asarray(lazy), whole)
    assert np.array_equal(lazy[2:5, 1:3], whole[2:5, 1:3])  # any other index: the matrix's
