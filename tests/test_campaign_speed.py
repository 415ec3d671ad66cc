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
    clean_acc,
    faulty_product,
    restricted_applies,
)
from ftaccel.golden.faults import MODES, REGISTERS, Fault

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


@pytest.mark.parametrize("double", [True, False])
def test_restricted_product_equals_the_whole_product(double):
    """Random operands, PEs, registers, modes and cycles over the whole schedule (WS, no checksum).

    Includes bypassed PEs and ragged edge tiles; the fault-free accumulators from one BLAS
    product equal the pass-by-pass ones.
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
            tried += 1
            differs += not np.array_equal(whole, whole0)
    assert differs > tried // 10  # enough faults reach the outputs
