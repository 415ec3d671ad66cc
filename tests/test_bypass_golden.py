"""Golden model of PE bypass (golden/bypass.py) against plain-Python loops over the equations.

The references below never call golden.mapping or golden.bypass: for every weight, input or
output they compute its PE from Eqs. 10.3–10.5 (Ozen 2023 §10.3.2) on its (shifted) position
and sum Python integers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ftaccel.golden.bypass import (
    AccumulatorOverflow,
    bernoulli_map,
    bypass_rate,
    check_map,
    diagonal_shift,
    fault_map,
    hardware_mask,
    pruned_matmul,
    shift_channels,
    shift_inputs,
    shift_outputs,
    shift_period,
    shifted_mask,
    shifted_pruned_matmul,
    unshift_channels,
    unshift_outputs,
)
from ftaccel.golden.faults import Fault

DATAFLOWS = ["ws", "is", "os"]
SHAPES = [(1, 1), (2, 3), (3, 2), (4, 4), (3, 5)]


# -- independent references ---------------------------------------------------------------------

def _pos(i: int, s: int, length: int, channels: int | None = None) -> int:
    """Shifted position of index i: channel (i mod ch) of block (i div ch) rolled by s."""
    ch = length if channels is None else channels
    return (i // ch) * ch + (i % ch + s) % ch


def _ref(dataflow, A, B, bmap, bias=None, s=0, channels=None):
    """Plain Python: the layer with every pruned variable dropped, PE by the equations."""
    A, B, bmap = A.tolist(), B.tolist(), np.asarray(bmap).tolist()
    M, K, N, R, C = len(A), len(B), len(B[0]), len(bmap), len(bmap[0])
    bias = [0] * N if bias is None else [int(v) for v in bias]
    out = []
    for b in range(M):
        row = []
        for co in range(N):
            co_s = _pos(co, s, N)
            acc = 0
            # Eq. 10.5: output (c_o, b) -> PE (column c_o % C, row b % R); forced to zero.
            if not (dataflow == "os" and bmap[b % R][co_s % C]):
                for ci in range(K):
                    ci_s = _pos(ci, s, K, channels)
                    # Eq. 10.3: weight (c_o, c_i) -> PE (column c_o % C, row c_i % R).
                    if dataflow == "ws" and bmap[ci_s % R][co_s % C]:
                        continue
                    # Eq. 10.4: input (b, c_i) -> PE (column b % C, row c_i % R).
                    if dataflow == "is" and bmap[ci_s % R][b % C]:
                        continue
                    acc += A[b][ci] * B[ci][co]
            row.append(acc + bias[co])
        out.append(row)
    return np.array(out, dtype=np.int64)


def _ref_mask(dataflow, bmap, M, K, N):
    """Plain Python mask of the pinned tensor (WS: K×N, IS: M×K, OS: M×N)."""
    bm = np.asarray(bmap).tolist()
    R, C = len(bm), len(bm[0])
    if dataflow == "ws":
        return np.array([[bm[k % R][n % C] for n in range(N)] for k in range(K)])
    if dataflow == "is":
        return np.array([[bm[k % R][b % C] for k in range(K)] for b in range(M)])
    return np.array([[bm[b % R][n % C] for n in range(N)] for b in range(M)])


def _operands(rng, M, K, N, width=8):
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    return (rng.integers(lo, hi, (M, K)), rng.integers(lo, hi, (K, N)),
            rng.integers(-5000, 5000, N))


def _dims(rng, R, C):
    """Random layer sizes up to three tiles in every direction (so tiling is exercised)."""
    return tuple(int(x) for x in rng.integers(1, 3 * max(R, C) + 2, 3))


# -- pruned product ---------------------------------------------------------------------------

@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", SHAPES)
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_pruned_matmul_equals_plain_python(rng, dataflow, rows, cols, rate):
    for _ in range(3):
        M, K, N = _dims(rng, rows, cols)
        A, B, bias = _operands(rng, M, K, N)
        bmap = bernoulli_map(rows, cols, rate, rng)
        ref = _ref(dataflow, A, B, bmap, bias)
        assert np.array_equal(pruned_matmul(dataflow, A, B, bmap, bias), ref)
        assert np.array_equal(pruned_matmul(dataflow, A, B, bmap, bias, acc_bits=40), ref)
        assert np.array_equal(pruned_matmul(dataflow, A, B, bmap),
                              _ref(dataflow, A, B, bmap))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_empty_map_changes_nothing(rng, dataflow, rows, cols):
    M, K, N = _dims(rng, rows, cols)
    A, B, bias = _operands(rng, M, K, N)
    empty = np.zeros((rows, cols), dtype=bool)
    plain = np.array([[sum(int(A[m, k]) * int(B[k, n]) for k in range(K)) + int(bias[n])
                       for n in range(N)] for m in range(M)], dtype=np.int64)
    assert np.array_equal(pruned_matmul(dataflow, A, B, empty, bias), plain)
    assert not hardware_mask(dataflow, empty, M, K, N).any()


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_full_map_leaves_only_the_bias(rng, dataflow, rows, cols):
    """Every PE bypassed.

    WS/IS prune everything, OS zeroes everything; the bias is added by the output stage (WS, OS) or
    forwarded down every column (IS).
    """
    M, K, N = _dims(rng, rows, cols)
    A, B, bias = _operands(rng, M, K, N)
    full = np.ones((rows, cols), dtype=int)
    assert np.array_equal(pruned_matmul(dataflow, A, B, full, bias), np.tile(bias, (M, 1)))
    assert not pruned_matmul(dataflow, A, B, full).any()
    assert hardware_mask(dataflow, full, M, K, N).all()


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", SHAPES + [(1, 4), (5, 1)])
def test_mask_is_the_map_replicated_and_cropped(rng, dataflow, rows, cols):
    """Fig. 10.3: the R×C map tiled over the pinned tensor and cropped.

    IS: the map transposed, because the batch runs along the array's columns.
    """
    for _ in range(3):
        M, K, N = _dims(rng, rows, cols)
        bmap = bernoulli_map(rows, cols, 0.4, rng)
        mask = hardware_mask(dataflow, bmap, M, K, N)
        assert mask.dtype == bool
        assert np.array_equal(mask, _ref_mask(dataflow, bmap, M, K, N))
        if dataflow == "ws":
            tiled = np.tile(bmap, (math.ceil(K / rows), math.ceil(N / cols)))[:K, :N]
        elif dataflow == "is":
            tiled = np.tile(bmap.T, (math.ceil(M / cols), math.ceil(K / rows)))[:M, :K]
        else:
            tiled = np.tile(bmap, (math.ceil(M / rows), math.ceil(N / cols)))[:M, :N]
        assert np.array_equal(mask, tiled)


def test_one_bypassed_pe_prunes_its_variables_in_every_tile():
    """WS 2×2, K = N = 4 (four tiles), PE (row 1, column 0) bypassed.

    The weights with odd k and even n are pruned, nothing else.
    """
    bmap = [[0, 0], [1, 0]]
    A = np.ones((1, 4), dtype=np.int64)
    B = np.arange(1, 17, dtype=np.int64).reshape(4, 4)
    got = pruned_matmul("ws", A, B, bmap)
    keep = B.copy()
    keep[1::2, 0::2] = 0
    assert np.array_equal(got, keep.sum(axis=0, keepdims=True))
    assert np.array_equal(hardware_mask("ws", bmap, 1, 4, 4), keep == 0)


# -- accumulator overflow ----------------------------------------------------------------------

def test_pruning_can_create_an_overflow_that_is_reported():
    """Running sums 10000, 0, 10000 fit 15 bits; with the −100 weight pruned they reach 20000."""
    A = np.array([[100, 100, 100]])
    B = np.array([[100], [-100], [100]])
    bmap = np.array([[0], [1], [0], [0]])  # 4×1 WS: weight k = 1 is on PE row 1
    assert np.array_equal(pruned_matmul("ws", A, B, np.zeros((4, 1), bool), acc_bits=15),
                          [[10000]])
    assert np.array_equal(pruned_matmul("ws", A, B, bmap), [[20000]])
    with pytest.raises(AccumulatorOverflow, match="15-bit"):
        pruned_matmul("ws", A, B, bmap, acc_bits=15)
    # IS: the same with the input pruned instead of the weight.
    with pytest.raises(AccumulatorOverflow):
        pruned_matmul("is", A, B, bmap, acc_bits=15)


def test_os_overflow_only_in_outputs_that_are_not_bypassed():
    A = np.full((2, 3), 200)
    B = np.full((3, 1), 100)  # 60000 does not fit 15 bits
    bmap = np.array([[1], [0]])  # 2×1 OS: output row 0 bypassed, row 1 not
    with pytest.raises(AccumulatorOverflow, match="OS"):
        pruned_matmul("os", A, B, bmap, acc_bits=15)
    assert np.array_equal(pruned_matmul("os", A, B, [[1], [1]], acc_bits=15), [[0], [0]])
    assert np.array_equal(pruned_matmul("os", A, B, [[1], [1]], [7], acc_bits=15), [[7], [7]])


# -- fault maps --------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.0, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0])
def test_bernoulli_map_statistics(rng, rate):
    """Bypass rate = fraction of PEs bypassed (Ozen 2023 §10.4), independent per PE.

    The overall mean, each PE position's frequency and the spread of per-map counts match Binomial
    statistics (bounds at 5 standard deviations; seed printed).
    """
    R, C, T = 16, 16, 400
    maps = np.stack([bernoulli_map(R, C, rate, rng) for _ in range(T)])
    assert maps.shape == (T, R, C) and maps.dtype == bool
    if rate in (0.0, 1.0):
        assert (maps == bool(rate)).all()
        return
    n, var = maps.size, rate * (1 - rate)
    assert abs(maps.mean() - rate) < 5 * math.sqrt(var / n)
    per_pe = maps.mean(axis=0)  # each position: T trials
    assert np.abs(per_pe - rate).max() < 5 * math.sqrt(var / T)
    counts = maps.sum(axis=(1, 2))  # Binomial(256, rate) per map
    # Sample variance of T draws: relative standard error about sqrt(2 / T) (≈ 7 %).
    assert abs(counts.var(ddof=1) / (R * C * var) - 1) < 5 * math.sqrt(2 / T)
    # Neighbouring PEs are independent: their correlation over all maps is ~0.
    x = maps[:, :, :-1].astype(float).ravel()
    y = maps[:, :, 1:].astype(float).ravel()
    assert abs(np.corrcoef(x, y)[0, 1]) < 5 / math.sqrt(x.size)
    assert abs(bypass_rate(maps[0]) - counts[0] / (R * C)) < 1e-12


def test_bernoulli_map_is_reproducible():
    a = bernoulli_map(8, 5, 0.3, 1234)
    b = bernoulli_map(8, 5, 0.3, np.random.default_rng(1234))
    assert a.shape == (8, 5) and np.array_equal(a, b)
    assert not np.array_equal(a, bernoulli_map(8, 5, 0.3, 1235))


def test_fault_map_marks_every_pe_with_a_fault():
    faults = [Fault(1, 2, "psum", 3, "sa1"), Fault(1, 2, "weight", 0, "sa0"), (0, 0)]
    got = fault_map(3, 4, faults)
    want = np.zeros((3, 4), bool)
    want[1, 2] = want[0, 0] = True
    assert np.array_equal(got, want)
    assert bypass_rate(got) == 2 / 12
    assert not fault_map(2, 2, []).any()


# -- diagonal shift ----------------------------------------------------------------------------

def test_diagonal_shift_moves_every_weight_along_the_diagonal(rng):
    K, N = 5, 7
    B = rng.integers(-100, 100, (K, N))
    for s in (-3, 0, 1, 4, 12):
        Bs = diagonal_shift(B, s)
        for k in range(K):
            for n in range(N):
                assert Bs[(k + s) % K, (n + s) % N] == B[k, n]
    # Blocks of channels (im2col, channel fastest): the roll stays inside each pixel block.
    B = rng.integers(-100, 100, (12, 5))
    Bs = diagonal_shift(B, 1, channels=3)
    for k in range(12):
        for n in range(5):
            assert Bs[_pos(k, 1, 12, 3), (n + 1) % 5] == B[k, n]
    x = rng.integers(-9, 9, (3, 12))
    assert np.array_equal(unshift_channels(shift_channels(x, 5, axis=1, channels=4), 5,
                                           axis=1, channels=4), x)
    assert np.array_equal(unshift_outputs(shift_outputs(x, 7), 7), x)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_shift_changes_nothing_when_nothing_is_bypassed(rng, dataflow, rows, cols):
    """Ozen 2023 §10.3.4.

    The shifted layer, unshifted, equals the plain layer exactly, for any sizes (multiples of the
    array or not) and any shift.
    """
    empty = np.zeros((rows, cols), dtype=bool)
    for _ in range(3):
        M, K, N = _dims(rng, rows, cols)
        A, B, bias = _operands(rng, M, K, N)
        plain = A @ B + bias
        for s in range(-1, max(K, N) + 2):
            assert np.array_equal(shifted_pruned_matmul(dataflow, A, B, empty, s, bias), plain)
            # The same by hand: shifted weights, inputs and bias, plain product, unshift.
            Ys = shift_inputs(A, s) @ diagonal_shift(B, s) + shift_outputs(bias, s)
            assert np.array_equal(unshift_outputs(Ys, s), plain)
    # Convolution layout: channels rolled inside each im2col pixel block.
    A, B, bias = _operands(rng, 5, 12, 6)
    for s in range(5):
        assert np.array_equal(shifted_pruned_matmul(dataflow, A, B, empty, s, bias,
                                                    channels=4), A @ B + bias)


def test_shifted_layers_chain_without_unshifting_in_between(rng):
    """Ozen 2023 §10.3.4: a layer's input permutation is the previous layer's output permutation.

    So only the network input is shifted and only its output is unshifted.
    """
    M, K1, N1, N2 = 6, 10, 7, 5
    x = rng.integers(-128, 128, (M, K1))
    W1, b1 = rng.integers(-128, 128, (K1, N1)), rng.integers(-999, 999, N1)
    W2, b2 = rng.integers(-128, 128, (N1, N2)), rng.integers(-999, 999, N2)
    plain = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    for s in range(8):
        h = np.maximum(shift_inputs(x, s) @ diagonal_shift(W1, s) + shift_outputs(b1, s), 0)
        y = h @ diagonal_shift(W2, s) + shift_outputs(b2, s)
        assert np.array_equal(unshift_outputs(y, s), plain)
        if s % N1:
            assert not np.array_equal(h, np.maximum(x @ W1 + b1, 0))  # really permuted


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_shifted_pruned_matmul_equals_plain_python(rng, dataflow, rows, cols):
    for _ in range(3):
        M, K, N = _dims(rng, rows, cols)
        A, B, bias = _operands(rng, M, K, N)
        bmap = bernoulli_map(rows, cols, 0.3, rng)
        for s in (0, 1, int(rng.integers(-20, 20))):
            got = shifted_pruned_matmul(dataflow, A, B, bmap, s, bias)
            assert np.array_equal(got, _ref(dataflow, A, B, bmap, bias, s=s))
            # Same as the unshifted pruned formula with the shifted mask on the original.
            mask = shifted_mask(dataflow, bmap, M, K, N, s)
            if dataflow == "ws":
                alt = A @ np.where(mask, 0, B) + bias
            elif dataflow == "is":
                alt = np.where(mask, 0, A) @ B + bias
            else:
                alt = np.where(mask, 0, A @ B) + bias
            assert np.array_equal(got, alt)
    # Convolution layout.
    A, B, bias = _operands(rng, 7, 18, 5)
    bmap = bernoulli_map(rows, cols, 0.4, rng)
    for s in range(4):
        assert np.array_equal(
            shifted_pruned_matmul(dataflow, A, B, bmap, s, bias, channels=6, acc_bits=40),
            _ref(dataflow, A, B, bmap, bias, s=s, channels=6))


def _patterns(dataflow, bmap, M, K, N, shifts, channels=None):
    return {shifted_mask(dataflow, bmap, M, K, N, s, channels=channels).tobytes()
            for s in shifts}


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_square_array_gives_n_distinct_patterns(rng, dataflow, n):
    """Ozen 2023 §10.3.4: on an N×N array the N shifts give N distinct pruning patterns.

    Each is the map rolled diagonally (WS), along rows (IS) or along columns (OS).
    """
    M, K, N = n * int(rng.integers(1, 4)), n * int(rng.integers(1, 4)), n * int(rng.integers(1, 4))
    assert shift_period(dataflow, n, n, K, N) == n
    one = np.zeros((n, n), bool)
    one[tuple(rng.integers(0, n, 2))] = True
    assert len(_patterns(dataflow, one, M, K, N, range(n))) == n
    assert len(_patterns(dataflow, one, M, K, N, range(3 * n))) == n
    A, B, bias = _operands(rng, M, K, N)
    for _ in range(3):
        bmap = bernoulli_map(n, n, 0.3, rng)
        for s in range(n):
            mask = shifted_mask(dataflow, bmap, M, K, N, s)
            assert np.array_equal(mask, shifted_mask(dataflow, bmap, M, K, N, s + n))
            rolled = np.roll(bmap, {"ws": (-s, -s), "is": (-s, 0), "os": (0, -s)}[dataflow],
                             axis=(0, 1))
            assert np.array_equal(mask, hardware_mask(dataflow, rolled, M, K, N))
            assert np.array_equal(shifted_pruned_matmul(dataflow, A, B, bmap, s, bias),
                                  shifted_pruned_matmul(dataflow, A, B, bmap, s + n, bias))
    # Maps invariant under a diagonal roll give fewer: the identity diagonal is one pattern (WS).
    if dataflow == "ws":
        assert len(_patterns("ws", np.eye(n, dtype=bool), M, K, N, range(n))) == 1


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", [(2, 3), (3, 2), (4, 6), (1, 4)])
def test_rectangular_array_patterns(rng, dataflow, rows, cols):
    """R×C, sizes multiples of the array: WS lcm(R, C) patterns, IS R, OS C."""
    M, K, N = 2 * cols, 2 * rows, math.lcm(rows, cols) * cols  # multiples
    period = shift_period(dataflow, rows, cols, K, N)
    assert period == {"ws": math.lcm(rows, cols), "is": rows, "os": cols}[dataflow]
    one = np.zeros((rows, cols), bool)
    one[int(rng.integers(rows)), int(rng.integers(cols))] = True
    assert len(_patterns(dataflow, one, M, K, N, range(3 * period))) == period
    bmap = bernoulli_map(rows, cols, 0.5, rng)
    for s in range(period):
        assert np.array_equal(shifted_mask(dataflow, bmap, M, K, N, s),
                              shifted_mask(dataflow, bmap, M, K, N, s + period))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols,K,N,channels", [(4, 4, 5, 6, None), (4, 4, 3, 4, None),
                                                     (3, 3, 10, 7, None), (4, 4, 12, 4, 6),
                                                     (2, 2, 12, 4, 4)])
def test_sizes_not_multiples_of_the_array(rng, dataflow, rows, cols, K, N, channels):
    """The documented decision.

    The roll is modulo the true length, so a dimension that is not a multiple of the array has
    period = its length (not R or C), and the pattern is no longer the rolled map; exactness is kept
    (tested above).
    """
    M = 2 * cols
    ch = K if channels is None else channels
    p_rows = rows if ch % rows == 0 else ch
    p_cols = cols if N % cols == 0 else N
    period = shift_period(dataflow, rows, cols, K, N, channels=channels)
    assert period == {"ws": math.lcm(p_rows, p_cols), "is": p_rows, "os": p_cols}[dataflow]
    one = np.zeros((rows, cols), bool)
    one[0, 0] = True  # a PE every layer size uses
    assert len(_patterns(dataflow, one, M, K, N, range(2 * period), channels)) == period
    for _ in range(3):
        bmap = bernoulli_map(rows, cols, 0.4, rng)
        for s in range(period):
            assert np.array_equal(shifted_mask(dataflow, bmap, M, K, N, s, channels=channels),
                                  shifted_mask(dataflow, bmap, M, K, N, s + period,
                                               channels=channels))
    # When a rolled dimension is not a multiple, shift by the array size is not the identity.
    broken = (dataflow in ("ws", "is") and ch % rows) or (dataflow in ("ws", "os") and N % cols)
    step = rows if dataflow == "is" else cols if dataflow == "os" else math.lcm(rows, cols)
    same = (shifted_mask(dataflow, one, M, K, N, 0, channels=channels)
            == shifted_mask(dataflow, one, M, K, N, step, channels=channels)).all()
    assert same != bool(broken)


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args,match", [
    ((0, 4, 0.1, 1), "rows"), ((4, -1, 0.1, 1), "cols"), ((2.5, 4, 0.1, 1), "rows"),
    ((True, 4, 0.1, 1), "rows"), ((4, 4, -0.1, 1), "rate"), ((4, 4, 1.5, 1), "rate"),
    ((4, 4, float("nan"), 1), "rate"), ((4, 4, "0.1", 1), "rate"), ((4, 4, True, 1), "rate"),
    ((4, 4, 0.1, "seed"), "rng"), ((4, 4, 0.1, -3), "rng"), ((4, 4, 0.1, None), "rng"),
])
def test_bernoulli_map_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        bernoulli_map(*args)


def test_bad_input_is_rejected_with_a_clear_message():
    A, B, m = np.ones((2, 3), int), np.ones((3, 4), int), np.zeros((2, 2), bool)
    bad = [
        (lambda: hardware_mask("wx", m, 2, 3, 4), "dataflow"),
        (lambda: hardware_mask("ws", np.zeros(4, bool), 2, 3, 4), "bypass_map"),
        (lambda: hardware_mask("ws", np.zeros((0, 2), bool), 2, 3, 4), "bypass_map"),
        (lambda: hardware_mask("ws", [[0, 2]], 2, 3, 4), "bypass_map"),
        (lambda: hardware_mask("ws", [[0.0, 1.0]], 2, 3, 4), "bypass_map"),
        (lambda: hardware_mask("os", m, 0, 3, 4), "M"),
        (lambda: hardware_mask("is", m, 2, 3.0, 4), "K"),
        (lambda: pruned_matmul("ws", A, np.ones((4, 3), int), m), "shapes"),
        (lambda: pruned_matmul("ws", A.astype(float), B, m), "A"),
        (lambda: pruned_matmul("ws", A, B.astype(bool), m), "B"),
        (lambda: pruned_matmul("ws", A[0], B, m), "A"),
        (lambda: pruned_matmul("is", A, B, m, bias=[1, 2, 3]), "bias"),
        (lambda: pruned_matmul("is", A, B, m, bias=[0.5] * 4), "bias"),
        (lambda: pruned_matmul("os", A, B, m, acc_bits=1), "acc_bits"),
        (lambda: pruned_matmul("os", A, B, m, acc_bits=16.0), "acc_bits"),
        (lambda: shifted_pruned_matmul("ws", A, B, m, 1.5), "shift"),
        (lambda: shifted_pruned_matmul("ws", A, B, m, 1, channels=2), "channels"),
        (lambda: diagonal_shift(B, 1, channels=0), "channels"),
        (lambda: diagonal_shift(B[0], 1), "B"),
        (lambda: shift_channels(B, 1, axis=2), "axis"),
        (lambda: shift_channels(np.int64(3), 1), "x"),
        (lambda: shifted_mask("ws", m, 2, 3, 4, None), "shift"),
        (lambda: shift_period("ws", 4, 0, 4, 4), "cols"),
        (lambda: shift_period("xs", 4, 4, 4, 4), "dataflow"),
        (lambda: fault_map(2, 2, [(2, 0)]), "fault location"),
        (lambda: fault_map(2, 2, [Fault(0, 5, "act", 0, "flip")]), "fault location"),
        (lambda: check_map([[True, False], [False]]), "bypass_map"),
    ]
    for call, match in bad:
        with pytest.raises(ValueError, match=match):
            call()
