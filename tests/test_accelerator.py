# amaranth: UnusedElaboratable=no
"""RTL of the accelerator against the golden cycle model and plain numpy, on both simulators.

Every test compares every output port in every cycle with the golden model, the assembled
result with ``A @ B`` computed by numpy, and the measured cycle count with the formula.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.array import cycle_count, latency
from ftaccel.golden.output_stage import output_stage
from ftaccel.tb.accelerator import mismatches, rtl_matmul

DATAFLOWS = ["ws", "is", "os"]
SIMS = ["icarus", pytest.param("verilator", marks=pytest.mark.verilator)]


def _limits(width):
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def _edge_rows(K, lo, hi):
    """Zeros, all most negative, all most positive, alternating extremes."""
    alt = np.where(np.arange(K) % 2 == 0, lo, hi)
    return np.stack([np.zeros(K), np.full(K, lo), np.full(K, hi), alt, -alt - 1])


def check(cfg, A, B, *, bias=None, relu=False, shift=0, sim=None):
    run = rtl_matmul(cfg, A, B, bias=bias, relu=relu, shift=shift, sim=sim)
    bad = mismatches(run.recorded, run.golden)
    assert not bad, f"RTL differs from the golden model (port, cycle, lane, rtl, golden): {bad}"
    M, K = A.shape
    N = B.shape[1]
    ref = A.astype(np.int64) @ B.astype(np.int64)
    bias_v = np.zeros(N, np.int64) if bias is None else np.asarray(bias, np.int64)
    assert np.array_equal(run.acc, ref + bias_v if cfg.bias_in_psum else ref)
    if cfg.output_stage:
        assert np.array_equal(run.q, output_stage(ref, bias_v, relu, shift, cfg.a_width))
    valid = np.flatnonzero(run.recorded["out_valid"])
    assert valid[-1] + 1 == cycle_count(cfg, M, K, N) == run.program.cycles
    return run


@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 2), (4, 4), (8, 8)])
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_random_and_edge_values_with_tiling(rng, dataflow, rows, cols, width):
    """Random operands plus edge rows; K and N exceed the array so tiling is exercised."""
    cfg = AcceleratorConfig(rows=rows, cols=cols, dataflow=dataflow, a_width=width,
                            w_width=width, max_k=64)
    lo, hi = _limits(width)
    K = 2 * rows + 1
    N = cols + 1 + int(rng.integers(0, cols + 1))
    A = np.vstack([rng.integers(lo, hi + 1, (3, K)), _edge_rows(K, lo, hi)]).astype(np.int64)
    B = rng.integers(lo, hi + 1, (K, N))
    B[:, 0] = lo  # a most-negative column meets the most-negative row
    bias = rng.integers(-1000, 1000, N)
    check(cfg, A, B, bias=bias, relu=bool(rng.integers(2)), shift=int(rng.integers(0, 10)))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_16x16(rng, dataflow):
    cfg = AcceleratorConfig(rows=16, cols=16, dataflow=dataflow)
    A = rng.integers(-128, 128, (5, 20))
    B = rng.integers(-128, 128, (20, 18))
    check(cfg, A, B, bias=rng.integers(-99, 99, 18), relu=True, shift=7)


@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_most_negative_squared_at_full_reduction_length(dataflow, width):
    """K = max_k products of (most negative)², the accumulator's worst case, exactly."""
    max_k = 32
    cfg = AcceleratorConfig(rows=3, cols=2, dataflow=dataflow, a_width=width, w_width=width,
                            max_k=max_k)
    lo, _ = _limits(width)
    A = np.full((3, max_k), lo)
    B = np.full((max_k, 3), lo)
    run = check(cfg, A, B)
    assert run.acc[0, 0] == max_k * lo * lo


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_back_to_back_products_have_no_idle_cycle(rng, dataflow):
    """Two products streamed back to back: inputs and outputs every cycle, no bubble."""
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow)
    if dataflow == "os":
        # Two output tiles (two products of 4 rows each) run back to back, K = R.
        A = rng.integers(-128, 128, (8, 4))
        B = rng.integers(-128, 128, (4, 4))
    else:
        # The stationary tile is loaded once; two 6-row products stream with no gap.
        A1, A2 = rng.integers(-128, 128, (6, 4)), rng.integers(-128, 128, (6, 4))
        A, B = (np.vstack([A1, A2]), rng.integers(-128, 128, (4, 4))) if dataflow == "ws" else \
            (rng.integers(-128, 128, (4, 4)), np.hstack([A1.T, A2.T]))
    run = check(cfg, A, B)
    valid = np.flatnonzero(run.recorded["out_valid"])
    assert np.array_equal(valid, np.arange(valid[0], valid[0] + len(valid)))
    assert len(valid) == (8 if dataflow == "os" else 12)
    if dataflow != "os":
        fed = np.flatnonzero(run.program.inputs["in_valid"])
        assert np.array_equal(fed, np.arange(fed[0], fed[0] + 12))
        assert valid[0] == fed[0] + latency(cfg)


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_verilator_subset(rng, dataflow):
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow)
    A = np.vstack([rng.integers(-128, 128, (3, 9)), _edge_rows(9, -128, 127)])
    B = rng.integers(-128, 128, (9, 6))
    check(cfg, A, B, bias=rng.integers(-99, 99, 6), relu=True, shift=5, sim="verilator")


@pytest.mark.verilator
def test_verilator_16x16_16bit(rng):
    cfg = AcceleratorConfig(rows=16, cols=16, dataflow="ws", a_width=16, w_width=16)
    A = rng.integers(-(1 << 15), 1 << 15, (6, 17))
    B = rng.integers(-(1 << 15), 1 << 15, (17, 16))
    check(cfg, A, B, shift=12, sim="verilator")


def _chunked(fn, A, rows):
    """Apply a per-vector unit to each R-lane chunk of every row of A (zero-padded).

    As the WS array streams it: one K-tile of R features per pass.
    """
    M, K = A.shape
    out = np.zeros_like(A)
    for k0 in range(0, K, rows):
        chunk = np.zeros((M, rows), dtype=np.int64)
        chunk[:, :min(rows, K - k0)] = A[:, k0:k0 + rows]
        out[:, k0:k0 + rows] = fn(chunk)[:, :min(rows, K - k0)]
    return out


@pytest.mark.parametrize("mode", [0, 1])
def test_anomaly_suppression_stage_removes_spikes_before_the_array(rng, mode):
    from ftaccel.golden.afd import anomaly_suppression

    cfg = AcceleratorConfig(rows=4, cols=3, dataflow="ws", afd=True)
    A = rng.integers(-6, 7, (6, 10))
    A[1, 2] = 100   # spikes: large bit flips on single activations
    A[4, 9] = -128
    B = rng.integers(-128, 128, (10, 5))
    ctl = {"shift": 2, "gates": 2, "mode": mode, "enable": 1}
    run = rtl_matmul(cfg, A, B, afd=ctl)
    assert not mismatches(run.recorded, run.golden)
    cleaned = _chunked(lambda v: anomaly_suppression(v, width=8, shift=2, gates=2, mode=mode),
                       A, cfg.rows)
    assert abs(cleaned[1, 2]) < 100 and abs(cleaned[4, 9]) < 128
    assert np.array_equal(run.acc, cleaned @ B)
    assert run.program.cycles == cycle_count(cfg, 6, 10, 5)
    valid = np.flatnonzero(run.recorded["out_valid"])
    fed = np.flatnonzero(run.program.inputs["in_valid"])
    assert valid[0] == fed[0] + latency(cfg) == fed[0] + cfg.rows + cfg.cols + 2


@pytest.mark.parametrize("window,variant", [(3, "plain"), (5, "shared")])
def test_median_stage_filters_each_chunk_before_the_array(rng, window, variant):
    from ftaccel.golden.median import median_filter

    cfg = AcceleratorConfig(rows=5, cols=3, dataflow="ws", median=window, median_variant=variant)
    A = rng.integers(-10, 11, (4, 12))
    A[0, 6] = 127   # a spike with correct neighbours is removed
    B = rng.integers(-128, 128, (12, 4))
    run = rtl_matmul(cfg, A, B)
    assert not mismatches(run.recorded, run.golden)
    filtered = _chunked(lambda v: np.stack([median_filter(row, window=window) for row in v]),
                        A, cfg.rows)
    assert abs(filtered[0, 6]) <= 10
    assert np.array_equal(run.acc, filtered @ B)
    off = rtl_matmul(cfg, A, B, median_enable=False)
    assert np.array_equal(off.acc, A @ B)


@pytest.mark.parametrize("sim", SIMS)
def test_every_unit_together(rng, sim):
    """Fault hooks, bypass, anomaly suppression, median and the spatial checksum in one WS top.

    The RTL equals the golden model cycle by cycle with a map and a fault applied.
    """
    from ftaccel.golden.faults import Fault

    cfg = AcceleratorConfig(rows=4, cols=3, dataflow="ws", fault_hooks=True, bypass=True,
                            afd=True, median=3, median_variant="shared", checksum="spatial",
                            max_k=64)
    A = rng.integers(-30, 31, (5, 9))
    B = rng.integers(-128, 128, (9, 5))
    bmap = np.zeros((4, 3), dtype=bool)
    bmap[3, 2] = True
    for fault in (None, Fault(1, 1, "psum", 5, "sa1"), Fault(3, 3, "weight", 2, "flip", 9)):
        run = rtl_matmul(cfg, A, B, bypass_map=bmap, fault=fault, sim=sim,
                         afd={"shift": 2, "gates": 2, "mode": 1, "enable": 1})
        assert not mismatches(run.recorded, run.golden), fault
        assert run.program.cycles == cycle_count(cfg, 5, 9, 5)
        if fault is None:  # the host leaves bypassed weights out of the sanity column
            assert run.recorded["checksum__alarm"].max() == 0


def test_input_units_are_chainable_vector_stages():
    """Every input unit takes and gives a VectorSignature, so the top chains them with ``connect``.

    The top's unit ports are the units' own control signatures.
    """
    from amaranth import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import connect

    from ftaccel.rtl_gen.accelerator import Accelerator
    from ftaccel.rtl_gen.afd import AFDControlSignature, AnomalySuppression
    from ftaccel.rtl_gen.checksum import SanityInputGenerator
    from ftaccel.rtl_gen.fault import FaultControlSignature
    from ftaccel.rtl_gen.median import MedianArray
    from ftaccel.rtl_gen.vector import VectorSignature

    stages = [AnomalySuppression(width=8, lanes=5), MedianArray(width=8, lanes=5, window=3),
              SanityInputGenerator(width=8, lanes=5, batch_bits=3)]
    for unit in stages:
        assert unit.signature.members["i"].signature == VectorSignature(8, 5).flip()
    m = Module()
    connect(m, stages[0].o, stages[1].i)
    connect(m, stages[1].o, stages[2].i)
    assert stages[2].signature.members["o"].signature == VectorSignature(8 + 3, 5)
    top = Accelerator(AcceleratorConfig(rows=5, cols=2, afd=True, fault_hooks=True))
    assert top.signature.members["afd"].signature == AFDControlSignature(8).flip()
    assert top.signature.members["fault"].signature == FaultControlSignature().flip()
    with pytest.raises(wiring.ConnectionError):
        connect(Module(), stages[0].o, SanityInputGenerator(width=9, lanes=5, batch_bits=3).i)

