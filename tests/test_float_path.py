"""Fault-free products in floating point, and stuck-at runs that skip unchanged images (issue 24).

:func:`golden.array.float_plan` picks float32 / float64 from a bound on every partial sum
(the input's largest magnitude times each column's Σ|w|); :func:`golden.array.float_product`
then computes the product and the output stage in that type.  Held here against an int64
numpy reference written in the test at the exactness edges (−128 everywhere with K at the
float32 limit and one past it, 16-bit data, rounding ties, saturation), and the network
engine's floating-point path against its integer path and the independent reference of
``tests/netref.py`` on convolutions (3×3 padded, 1×1 strided), depthwise and dense layers,
8- and 16-bit models, in batch chunks.  The stuck-at runner that recomputes only the images
a fault changed is held against the full recomputation.  Seeded; the seed is printed.
"""

from __future__ import annotations

import numpy as np
import pytest
from netref import reference  # tests/netref.py: the independent reference

from ftaccel.config import AcceleratorConfig
from ftaccel.golden import network as gnet
from ftaccel.golden.array import float_plan, float_product
from ftaccel.golden.fault_models import FastFaultEngine, run_from
from ftaccel.golden.faults import MODES, REGISTERS, Fault
from ftaccel.golden.network import (
    Add,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    FunctionalEngine,
    LayerOptions,
    Model,
    ReLU,
    product_layers,
    quantize,
    run,
)
from ftaccel.golden.output_stage import Requant


def _stage_ref(A, B, bias, shift: int, relu: bool, width: int) -> np.ndarray:
    """The output stage on the exact int64 product, written out (round half up, saturate)."""
    y = A.astype(np.int64) @ B.astype(np.int64) + np.asarray(bias, np.int64)
    if relu:
        y = np.maximum(y, 0)
    if shift:
        y = (y + (1 << (shift - 1))) >> shift
    return np.clip(y, -(1 << (width - 1)), (1 << (width - 1)) - 1)


def _float(A, B, bias, rq, acc_bits, width, amax=None):
    amax = float(np.abs(A).max()) if amax is None else amax
    ftype = float_plan(amax, B, bias, rq, acc_bits=acc_bits, bias_in_psum=False)
    return ftype, (None if ftype is None else
                   float_product(A.astype(ftype), B, bias, rq, width))


@pytest.mark.parametrize("K,want", [(1024, np.float32), (1025, np.float64)])
def test_minus_128_everywhere_at_the_float32_limit(K, want):
    """Σ 128·128 over K = 1,024 is 2^24: the last sum float32 holds; one more needs float64."""
    A = np.full((3, K), -128, dtype=np.int64)
    B = np.full((K, 5), -128, dtype=np.int64)
    bias = np.zeros(5, dtype=np.int64)
    ftype, q = _float(A, B, bias, Requant(shift=0), 26, 32)
    assert ftype is want
    np.testing.assert_array_equal(q, _stage_ref(A, B, bias, 0, False, 32))
    assert q[0, 0] == 128 * 128 * K  # 2^24 (+ 2^14): float32 would round 2^24 + 2^14 + 1 only


def test_16_bit_data_takes_float64_and_stays_exact():
    seed = 1601
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    A = rng.integers(-(1 << 15), 1 << 15, (37, 300))
    B = rng.integers(-(1 << 15), 1 << 15, (300, 11))
    A[0], B[:, 0] = -(1 << 15), -(1 << 15)  # the extreme product in every term
    bias = rng.integers(-(1 << 40), 1 << 40, 11)
    for shift, relu in ((0, False), (13, True), (29, False)):
        ftype, q = _float(A, B, bias, Requant(shift=shift, relu=relu), 48, 16)
        assert ftype is np.float64
        np.testing.assert_array_equal(q, _stage_ref(A, B, bias, shift, relu, 16))


@pytest.mark.parametrize("shift", [1, 2, 7, 15])
@pytest.mark.parametrize("relu", [False, True])
def test_rounding_ties_and_saturation_equal_the_integer_stage(shift, relu):
    """Accumulators at every tie ``k·2^s − 2^(s−1)`` (both signs) and beyond the clamp."""
    seed = 1700 + shift + 100 * relu
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    ties = (np.arange(-300, 301) << shift) - (1 << (shift - 1))
    # A = [ties, 1] @ B = [[1], [0]] + random columns: the ties pass through the product
    A = np.stack([ties, np.ones_like(ties)], axis=1)
    B = np.array([[1, 3, -5], [0, 1 << shift, -(1 << shift)]])
    bias = rng.integers(-(1 << shift), 1 << shift, 3)
    for width in (8, 4):
        ftype, q = _float(A, B, bias, Requant(shift=shift, relu=relu), 60, width)
        assert ftype is not None  # float32 for the small shifts, float64 for 15
        np.testing.assert_array_equal(q, _stage_ref(A, B, bias, shift, relu, width))


def test_random_products_and_the_fixed_point_stage():
    seed = 1801
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for _ in range(20):
        M, K, N = (int(v) for v in rng.integers(1, [50, 700, 20]))
        A = rng.integers(-128, 128, (M, K))
        B = rng.integers(-128, 128, (K, N))
        bias = rng.integers(-5000, 5000, N)
        shift, relu = int(rng.integers(0, 20)), bool(rng.integers(2))
        ftype, q = _float(A, B, bias, Requant(shift=shift, relu=relu), 32, 8)
        assert ftype is not None
        np.testing.assert_array_equal(q, _stage_ref(A, B, bias, shift, relu, 8))
        # gemmlowp's stage runs in int64 on the exact float accumulators
        rq = Requant(multiplier=rng.integers(1 << 30, 1 << 31, N), shift=rng.integers(0, 12, N),
                     zero_point=int(rng.integers(-20, 20)))
        ftype, q = _float(A, B, bias, rq, 32, 8)
        exact = A @ B
        np.testing.assert_array_equal(q, rq.apply(exact, bias, 8))


def test_the_plan_refuses_what_it_cannot_prove():
    B = np.array([[1 << 20], [-(1 << 20)]])
    bias = np.zeros(1, np.int64)
    # one product beyond 2^53, a sum past the accumulator, a non-finite bound, a bad shift
    assert float_plan(float(1 << 40), B, bias, Requant(), acc_bits=64, bias_in_psum=False) \
        is None
    assert float_plan(128.0, B, bias, Requant(), acc_bits=26, bias_in_psum=False) is None
    assert float_plan(float("inf"), B, bias, Requant(), acc_bits=64, bias_in_psum=False) \
        is None
    assert float_plan(1.0, B, bias, Requant(shift=64), acc_bits=64, bias_in_psum=False) is None
    # the bias entering the partial sums counts against the accumulator (IS, WS checksum)
    small = np.array([[1]])
    assert float_plan(1.0, small, np.array([1 << 25]), Requant(), acc_bits=26,
                      bias_in_psum=True) is None
    assert float_plan(1.0, small, np.array([1 << 25]), Requant(), acc_bits=26,
                      bias_in_psum=False) is np.float64


# -- the network engine -----------------------------------------------------------------------

def _net(rng) -> Model:
    """3×3 padded conv → depthwise 3×3 stride 2 → 1×1 stride 2 conv ‖ skip → Add → dense."""
    w = lambda *s, scale=0.5: rng.normal(0, scale, s)  # noqa: E731
    return Model(layers=(
        Conv2D(w(3, 3, 3, 6), w(6, scale=0.1), padding=(1, 1, 1, 1), relu=True, name="c3"),
        DepthwiseConv2D(w(3, 3, 6), w(6, scale=0.1), stride=(2, 2), padding=(1, 1, 1, 1),
                        relu=True, name="dw"),
        Conv2D(w(1, 1, 6, 4), w(4, scale=0.1), name="pw"),
        Conv2D(w(1, 1, 6, 4), w(4, scale=0.1), stride=(2, 2), name="skip", inputs=(0,)),
        Add(name="res", inputs=(2, 3)),
        ReLU(name="r"),
        Flatten(name="fl"),
        Dense(w(64, 5, scale=0.2), w(5, scale=0.1), name="fc"),
    ), input_shape=(8, 8, 3), classes=5, name="mix")


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("chunk", [None, 100])
def test_network_float_path_equals_the_integer_path_and_the_reference(bits, chunk, monkeypatch):
    seed = 1900 + bits
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fm = _net(rng)
    qm = quantize(fm, rng.normal(0, 1, (64,) + fm.input_shape), a_bits=bits, w_bits=bits)
    images = rng.normal(0, 1.5, (9,) + fm.input_shape)  # beyond the calibration: saturation
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", a_width=bits, w_width=bits,
                            acc_width=48 if bits == 16 else 32)
    xq = qm.quantize_input(images)
    if chunk:  # a few images per lowered chunk
        monkeypatch.setattr(gnet, "LOWER_CHUNK", chunk)
    calls = []
    real = gnet.float_product
    monkeypatch.setattr(gnet, "float_product", lambda *a: calls.append(a[0].dtype) or real(*a))
    fast = run(qm, xq, FunctionalEngine(cfg), record=True)
    assert len(calls) >= 4 if chunk is None else len(calls) > 4  # the float path ran
    # int8: |a|·Σ|w| ≤ 2^24; 16-bit: float64
    assert set(calls) == {np.dtype(np.float32 if bits == 8 else np.float64)}
    n_float = len(calls)
    slow = run(qm, xq, FunctionalEngine(cfg, plain=False), record=True)  # the integer path
    assert len(calls) == n_float
    for a, b in zip(fast.outputs, slow.outputs, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast.logits, reference(qm, images, cfg))
    assert [s.cycles for s in fast.layers] == [s.cycles for s in slow.layers]
    assert [(s.M, s.K, s.N, s.macs) for s in fast.layers] == \
        [(s.M, s.K, s.N, s.macs) for s in slow.layers]
    assert np.ptp(fast.logits) > 0


# -- stuck-at runs --------------------------------------------------------------------------------

def test_stuck_at_run_skipping_unchanged_images_equals_the_full_run():
    """Every register and mode, on a graph with a skip and a depthwise layer (WS, no checksum).

    Each fault is run twice through the same cache: first filling it, then taking the
    unchanged images' fault-free accumulators from it.
    """
    seed = 2001
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fm = _net(rng)
    qm = quantize(fm, rng.normal(0, 1, (64,) + fm.input_shape))
    xq = qm.quantize_input(rng.normal(0, 1, (7,) + fm.input_shape))
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", acc_width=32, double_buffer=True)
    clean = run(qm, xq, FunctionalEngine(cfg), record=True)
    cache: dict = {}
    partial = 0
    for _ in range(40):
        f = Fault(int(rng.integers(4)), int(rng.integers(4)),
                  REGISTERS[int(rng.integers(len(REGISTERS)))], int(rng.integers(0, 12)),
                  [m for m in MODES if m != "flip"][int(rng.integers(2))])
        opts = {i: LayerOptions(fault=f) for i in product_layers(qm)}
        want = run(qm, xq, FastFaultEngine(cfg, checked=False), options=opts).logits
        for _ in range(2):
            eng = FastFaultEngine(cfg, checked=False, restrict=True, clean_cache=cache,
                                  clean_input=0)
            got = run_from(qm, xq, clean.outputs, clean.logits, eng, options=opts).logits
            np.testing.assert_array_equal(got, want, err_msg=str(f))
        changed = np.any(want != clean.logits, axis=1).sum()
        partial += 0 < changed < len(xq)
    print(f"{partial} of 40 faults changed some images but not all")
    assert partial >= 3  # the images a fault left alone were skipped somewhere


@pytest.mark.parametrize(("kernel", "channels", "stride", "padding"),
                         [((5, 5), 1, (1, 1), (0, 0, 0, 0)), ((3, 3), 3, (2, 1), (1, 0, 2, 1)),
                          ((3, 2), 2, (2, 2), (1, 1, 1, 1)), ((3, 3), 16, (1, 1), (1, 1, 1, 1))])
def test_narrow_convolutions_lower_k_major_to_the_same_matrix(kernel, channels, stride, padding):
    """The floating-point path's lowering equals :meth:`Conv2D.lower` (im2col), pad value too.

    Kernel rows of fewer than ``NARROW_ROW`` values are lowered K-major (column-major); wider
    ones row-major; the matrix is the same either way.
    """
    seed = 71 + kernel[0] * channels + stride[0]
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (3, 9, 8, channels))
    layer = Conv2D(weights=rng.integers(-8, 8, (*kernel, channels, 4)),
                   bias=np.zeros(4, np.int64), stride=stride, padding=padding, pad_value=-5)
    lowered = gnet._lower_float(layer, x.astype(np.float32))
    assert lowered.flags.f_contiguous == (kernel[1] * channels < gnet.NARROW_ROW)
    assert np.array_equal(lowered, layer.lower(x))


def test_product_nodes_hold_contiguous_weights_whose_matrix_is_a_view():
    """An importer's transposed kernel (OIHW → HWIO) is copied once at construction.

    Otherwise :attr:`Conv2D.matrix` copied the kernel on every product (36 % of the golden
    engine's time on ResNet-18); the values are the given ones.
    """
    rng = np.random.default_rng(81)
    print("seed 81")
    oihw = rng.integers(-8, 8, (4, 3, 3, 3))
    hwio = oihw.transpose(2, 3, 1, 0)
    assert not hwio.flags.c_contiguous
    layer = Conv2D(weights=hwio, bias=np.zeros(4, np.int64), padding=(1, 1, 1, 1))
    assert layer.weights.flags.c_contiguous and np.array_equal(layer.weights, hwio)
    assert np.shares_memory(layer.matrix, layer.weights)
    dense = Dense(weights=rng.integers(-8, 8, (5, 7)).T, bias=np.zeros(5, np.int64))
    assert dense.weights.flags.c_contiguous
