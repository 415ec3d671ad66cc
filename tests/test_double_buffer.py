# amaranth: UnusedElaboratable=no
"""Double-buffered stationary tiles (issue 18): RTL, cycle model, formula and numpy agree.

The RTL is held to the cycle model in every cycle and to numpy on the result, both buffering
modes, with every unit that depends on the schedule; the cycle count is held to
:func:`golden.array.cycle_count` and to the issue's promise written independently: with a
stream of at least ``2R − 1`` vectors and no K-tile chaining, passes follow each other with no
idle cycle at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.array import cycle_count
from ftaccel.golden.mapping import ceil_div
from ftaccel.tb.accelerator import mismatches, rtl_matmul

#: Units whose stimulus follows the schedule; every one on the double- and single-buffered PE.
UNIT_CONFIGS = {
    "plain": {},
    "spatial+bypass": {"checksum": "spatial", "bypass": True},
    "temporal": {"checksum": "temporal", "temporal_batch_bits": 2},
    "afd+median": {"afd": True, "median": 3},
    "lcu": {"lcu": True, "lcu_depth": 16, "lcu_max_pairs": 2},
}


def _expected(cfg, A, B, bias):
    ref = A @ B
    return ref + bias if cfg.bias_in_psum else ref


@pytest.mark.parametrize("double", [True, False], ids=["double", "single"])
@pytest.mark.parametrize("dataflow", ["ws", "is"])
@pytest.mark.parametrize("rows,cols,M,K,N", [(2, 3, 5, 7, 8), (4, 4, 9, 9, 5), (3, 2, 2, 3, 7)])
def test_rtl_equals_cycle_model_numpy_and_formula(rng, dataflow, double, rows, cols, M, K, N):
    cfg = AcceleratorConfig(rows=rows, cols=cols, dataflow=dataflow, double_buffer=double,
                            max_k=64)
    A, B = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    bias = rng.integers(-99, 100, N)
    run = rtl_matmul(cfg, A, B, bias=bias)
    assert not mismatches(run.recorded, run.golden)
    assert np.array_equal(run.acc, _expected(cfg, A, B, bias))
    last = np.flatnonzero(run.recorded["out_valid"])[-1] + 1
    assert last == cycle_count(cfg, M, K, N) == run.program.cycles


@pytest.mark.parametrize("double", [True, False], ids=["double", "single"])
@pytest.mark.parametrize("unit", list(UNIT_CONFIGS))
def test_units_follow_the_schedule(rng, unit, double):
    """Checksums, bypass map, temporal batches, input stages and LCU capture, both PEs."""
    cfg = AcceleratorConfig(rows=3, cols=3, dataflow="ws", double_buffer=double, max_k=64,
                            **UNIT_CONFIGS[unit])
    M, K, N = 7, 8, 5  # 3 K-tiles chained, 2 N-tiles
    A, B = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    bias = rng.integers(-99, 100, N)
    units = {}
    if cfg.bypass:
        units["bypass_map"] = np.zeros((3, 3), dtype=bool)
    if cfg.lcu:
        units["lcu_pairs"] = np.array([[0, 3]])
    if cfg.afd:  # the filters' stages stay in the pipeline; numpy cannot know their output
        units.update(afd={"enable": 0}, median_enable=False)
    run = rtl_matmul(cfg, A, B, bias=bias, relu=True, shift=2, **units)
    assert not mismatches(run.recorded, run.golden)
    assert np.array_equal(run.acc, _expected(cfg, A, B, bias))
    for name in ("checksum__alarm", "temporal__alarm"):
        if name in run.recorded:
            assert not run.recorded[name].any(), f"{name} raised with no fault"
    if cfg.temporal:  # every batch of every pass was checked
        assert run.recorded["temporal__checked"].max() > 0


def test_bypassed_pe_on_both_pes_equals_numpy(rng):
    """A bypassed PE prunes the same weight whichever register feeds it."""
    bmap = np.zeros((3, 3), dtype=bool)
    bmap[1, 2] = bmap[0, 0] = True
    A, B = rng.integers(-128, 128, (6, 5)), rng.integers(-128, 128, (5, 4))
    results = []
    for double in (True, False):
        cfg = AcceleratorConfig(rows=3, cols=3, dataflow="ws", bypass=True, max_k=64,
                                double_buffer=double)
        run = rtl_matmul(cfg, A, B, bypass_map=bmap)
        assert not mismatches(run.recorded, run.golden)
        results.append(run.acc)
    pruned = B.copy()
    for k in range(5):
        for n in range(4):
            if bmap[k % 3, n % 3]:
                pruned[k, n] = 0
    assert np.array_equal(results[0], A @ pruned) and np.array_equal(results[1], A @ pruned)


@pytest.mark.parametrize("dataflow", ["ws", "is"])
def test_back_to_back_passes_have_no_bubble(dataflow):
    """Stream ≥ 2R − 1, one K-tile: R load cycles, every pass's vectors, then the latency."""
    for R, C in [(1, 1), (2, 5), (4, 4), (8, 3), (16, 16)]:
        cfg = AcceleratorConfig(rows=R, cols=C, dataflow=dataflow)
        stream = 2 * R - 1 + R % 3
        M, N = (stream, 3 * C + 1) if dataflow == "ws" else (3 * C + 1, stream)
        passes = ceil_div(N if dataflow == "ws" else M, C)
        assert cycle_count(cfg, M, R, N) == R + passes * stream + cfg.latency


def test_double_buffered_is_never_slower_than_single_or_scale_sim():
    rng = np.random.default_rng(18)
    print("seed 18")
    for _ in range(300):
        R, C = (int(x) for x in rng.integers(1, 33, 2))
        M, K, N = (int(x) for x in rng.integers(1, 300, 3))
        for dataflow in ("ws", "is"):
            cfg = AcceleratorConfig(rows=R, cols=C, dataflow=dataflow, max_k=512)
            single = cfg.replace(double_buffer=False)
            stream, outer = (M, N) if dataflow == "ws" else (N, M)
            scale_sim = ceil_div(K, R) * ceil_div(outer, C) * (2 * R + C + stream - 2)
            dbl = cycle_count(cfg, M, K, N)
            assert dbl <= cycle_count(single, M, K, N)
            # the measurement: single-buffered = SCALE-Sim + 3 (the output stage)
            assert dbl <= scale_sim + 3


def test_config_option():
    cfg = AcceleratorConfig(dataflow="ws")
    assert cfg.double_buffered and "_sb" not in cfg.name()
    single = cfg.replace(double_buffer=False)
    assert not single.double_buffered and single.name().endswith("_sb")
    assert AcceleratorConfig.from_json(single.to_json()) == single
    assert not AcceleratorConfig(dataflow="os").double_buffered  # nothing stationary to buffer
    with pytest.raises(ConfigError, match="double_buffer"):
        AcceleratorConfig(double_buffer=1)
    assert single.register_width("shadow") == cfg.w_width
    assert AcceleratorConfig(dataflow="is", a_width=6).register_width("shadow") == 6
