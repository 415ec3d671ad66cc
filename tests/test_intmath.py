"""golden.intmath.exact_matmul against integer references written here, at the exactness edges.

The references are plain Python integers (every sum exact, wrapped to int64 by hand) for small
shapes and numpy's int64 ``@`` (no BLAS, exact while it does not overflow) for large ones.  Most
tests lower :data:`golden.intmath.SMALL_MACS` to 0 so that small operands take the BLAS paths;
the edge tests check :func:`golden.intmath.plan` too, so that each really sits on the side of
the edge it claims, and show that the naive float product is wrong just past it.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.errors import ConfigError
from ftaccel.golden import array, intmath
from ftaccel.golden.array import AccumulatorOverflow, checked_product
from ftaccel.golden.bypass import pruned_matmul
from ftaccel.golden.intmath import column_bound, exact_matmul, plan, sum_bound
from ftaccel.golden.mapping import tiles

INT_DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64)


@pytest.fixture
def blas_always(monkeypatch):
    """Every product on the BLAS paths, however small (the int64 shortcut off)."""
    monkeypatch.setattr(intmath, "SMALL_MACS", 0)


def _wrap64(x: int) -> int:
    """``x`` modulo 2^64 as a signed 64-bit value (what int64 arithmetic keeps)."""
    x %= 1 << 64
    return x - (1 << 64) if x >= 1 << 63 else x


def _python_matmul(A, B) -> np.ndarray:
    """``A @ B`` of 2-D integer arrays with Python's exact integers, wrapped to int64."""
    a = [[int(v) for v in row] for row in np.asarray(A)]
    b = [[int(v) for v in row] for row in np.asarray(B).T]
    out = [[_wrap64(sum(x * y for x, y in zip(ra, cb, strict=True))) for cb in b] for ra in a]
    return np.array(out, dtype=np.int64).reshape(len(a), len(b))


def _int64_matmul(A, B) -> np.ndarray:
    return np.matmul(np.asarray(A).astype(np.int64), np.asarray(B).astype(np.int64))


def _full_range(rng, dtype, shape):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    # both extremes present, so the bound sits at its largest
    x.flat[0], x.flat[-1] = info.min, info.max
    return x


# -- the float32 edge: 2^24 -----------------------------------------------------------------------

@pytest.mark.parametrize("K", [1, 1023, 1024, 1025, 2048, 2049, 3000])
def test_minus_128_everywhere_at_the_float32_edge(K, blas_always):
    A = np.full((3, K), -128, dtype=np.int8)
    B = np.full((K, 5), -128, dtype=np.int8)
    p = plan(A, B)
    assert p.bound == 16384 * K
    assert p.method == "float32"
    # one float32 product up to K = 2^24 / 2^14 = 1,024, blocks of 1,024 beyond
    assert p.block == (K if K <= 1024 else 1024)
    got = exact_matmul(A, B)
    assert got.dtype == np.int64
    assert np.array_equal(got, np.full((3, 5), 16384 * K, dtype=np.int64))
    assert np.array_equal(got, _int64_matmul(A, B))


def test_odd_sums_past_2_24_need_the_blocks(blas_always):
    """127 · 127 summed 1,041 times is odd and above 2^24: no float32 holds it."""
    K = 1041
    A = np.full((2, K), 127, dtype=np.int8)
    B = np.full((K, 3), 127, dtype=np.int8)
    exact = 16129 * K
    assert exact > 2 ** 24 and exact % 2
    naive = (A.astype(np.float32) @ B.astype(np.float32)).astype(np.int64)
    assert not np.array_equal(naive, np.full((2, 3), exact))  # the edge is real
    assert plan(A, B).block == 2 ** 24 // 16129
    assert np.array_equal(exact_matmul(A, B), np.full((2, 3), exact))


@pytest.mark.parametrize("K", [1024, 1025, 4096])
def test_mixed_signs_at_full_range(K, rng, blas_always):
    A = rng.choice(np.array([-128, 127], dtype=np.int8), size=(16, K))
    B = rng.choice(np.array([-128, 127], dtype=np.int8), size=(K, 8))
    assert np.array_equal(exact_matmul(A, B), _int64_matmul(A, B))
    assert np.array_equal(exact_matmul(A[:3, :50], B[:50, :2]),
                          _python_matmul(A[:3, :50], B[:50, :2]))


# -- the float64 edge: 2^53 -----------------------------------------------------------------------

@pytest.mark.parametrize("K,method,block", [(1, "float64", 1), (2, "float64", 2),
                                            (3, "float64", 2), (5, "float64", 2)])
def test_values_of_2_26_at_the_float64_edge(K, method, block, blas_always):
    """2^26 · 2^26 = 2^52: two products reach 2^53 (one float64 product), three need blocks."""
    A = np.full((2, K), 1 << 26, dtype=np.int32)
    B = np.full((K, 3), -(1 << 26), dtype=np.int32)
    p = plan(A, B)
    assert (p.method, p.block) == (method, block)
    assert np.array_equal(exact_matmul(A, B), _python_matmul(A, B))


def test_odd_sums_past_2_53_need_the_blocks(blas_always):
    v = (1 << 26) - 1  # v² is odd and just below 2^52: three of them are odd and above 2^53
    A = np.full((2, 3), v, dtype=np.int64)
    B = np.full((3, 2), v, dtype=np.int64)
    exact = 3 * v * v
    assert exact > 2 ** 53 and exact % 2
    naive = (A.astype(np.float64) @ B.astype(np.float64)).astype(np.int64)
    assert not np.array_equal(naive, np.full((2, 2), exact))
    assert plan(A, B).method == "float64" and plan(A, B).block == 2
    assert np.array_equal(exact_matmul(A, B), np.full((2, 2), exact))


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_16_bit_data_at_k_2_23(extra, blas_always):
    """-32768 · -32768 = 2^30: K = 2^23 reaches 2^53 exactly; one more needs a second block."""
    K = (1 << 23) + extra
    a = np.full(K, -32768, dtype=np.int16)
    b = np.full(K, -32768, dtype=np.int16)
    p = plan(a, b)
    assert p.method == "float64"
    assert p.block == min(K, 1 << 23)
    assert int(exact_matmul(a, b)) == (1 << 30) * K


@pytest.mark.parametrize("K", [1, 7, 300])
def test_16_bit_data(K, rng, blas_always):
    A = _full_range(rng, np.int16, (9, K))
    B = _full_range(rng, np.int16, (K, 6))
    assert plan(A, B).method == "float64"
    assert np.array_equal(exact_matmul(A, B), _python_matmul(A, B))


# -- beyond float64: operands split ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_wide_values_are_split_and_wrap_as_int64(dtype, rng, blas_always):
    A = _full_range(rng, dtype, (5, 11))
    B = _full_range(rng, dtype, (11, 4))
    assert plan(A, B).method == "split"
    got = exact_matmul(A, B)
    assert np.array_equal(got, _python_matmul(A.astype(np.int64), B.astype(np.int64)))
    assert np.array_equal(got, _int64_matmul(A, B))  # numpy wraps the same way


def test_int64_extremes(blas_always):
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    A = np.array([[lo, hi, -1], [hi, hi, lo], [0, lo, 1]], dtype=np.int64)
    B = np.array([[lo, 1, hi], [-1, lo, 2], [hi, 0, lo]], dtype=np.int64)
    assert np.array_equal(exact_matmul(A, B), _python_matmul(A, B))


# -- dtypes, shapes, strides ----------------------------------------------------------------------

@pytest.mark.parametrize("da", INT_DTYPES)
@pytest.mark.parametrize("db", (np.int8, np.int16, np.uint8, np.int64))
def test_every_dtype_pair(da, db, rng, blas_always):
    A = _full_range(rng, da, (7, 13))
    B = _full_range(rng, db, (13, 5))
    assert np.array_equal(exact_matmul(A, B), _python_matmul(A.astype(np.int64),
                                                             B.astype(np.int64)))


@pytest.mark.parametrize("shapes", [((0, 5), (5, 3)), ((4, 0), (0, 3)), ((4, 5), (5, 0)),
                                    ((2, 0, 5), (5, 3)), ((0,), (0,)), ((0,), (0, 4))])
def test_empty_dimensions(shapes, blas_always):
    A = np.ones(shapes[0], dtype=np.int8)
    B = np.ones(shapes[1], dtype=np.int8)
    want = _int64_matmul(A, B)
    got = exact_matmul(A, B)
    assert got.shape == want.shape and got.dtype == np.int64
    assert np.array_equal(got, want)
    assert plan(A, B).method == "empty"


def test_strided_and_non_contiguous_inputs(rng, blas_always):
    base = rng.integers(-128, 128, size=(40, 60), dtype=np.int64)
    w = rng.integers(-128, 128, size=(60, 30), dtype=np.int16)
    views = [(base[::2, ::3], w[::3, 1::2]),          # strided
             (base.T[:30, :40], w.T[:25, :40].T),        # transposed (Fortran order)
             (base[::-1, ::-2], w[::-2, ::-1]),          # negative strides
             (np.asfortranarray(base), w)]
    for A, B in views:
        assert np.array_equal(exact_matmul(A, B), _python_matmul(A, B))
    # an im2col-style lowering without copying: overlapping windows of a 1-D signal
    sig = rng.integers(-128, 128, size=200, dtype=np.int8)
    win = np.lib.stride_tricks.sliding_window_view(sig, 9)  # 192×9, rows overlap in memory
    k = rng.integers(-128, 128, size=(9, 4), dtype=np.int8)
    assert np.array_equal(exact_matmul(win, k), _python_matmul(win, k))


def test_batched_and_one_dimensional_operands(rng, blas_always):
    A = rng.integers(-128, 128, size=(3, 6, 10), dtype=np.int8)
    B = rng.integers(-128, 128, size=(10, 4), dtype=np.int8)
    Bs = rng.integers(-32768, 32768, size=(3, 10, 4), dtype=np.int16)
    got = exact_matmul(A, B)
    assert got.shape == (3, 6, 4)
    for i in range(3):
        assert np.array_equal(got[i], _python_matmul(A[i], B))
        assert np.array_equal(exact_matmul(A, Bs)[i], _python_matmul(A[i], Bs[i]))
    # broadcasting batch axes: (2, 1, M, K) @ (3, K, N) -> (2, 3, M, N)
    A4 = rng.integers(-128, 128, size=(2, 1, 5, 10), dtype=np.int8)
    got = exact_matmul(A4, Bs)
    assert got.shape == (2, 3, 5, 4)
    assert np.array_equal(got[1, 2], _python_matmul(A4[1, 0], Bs[2]))
    v = rng.integers(-128, 128, size=10, dtype=np.int8)
    assert np.array_equal(exact_matmul(v, B), _python_matmul(v[None, :], B)[0])
    assert np.array_equal(exact_matmul(A[0], v), _python_matmul(A[0], v[:, None])[:, 0])
    assert exact_matmul(v, v).shape == () and int(exact_matmul(v, v)) == sum(
        int(x) * int(x) for x in v)


def test_random_shapes_and_ranges(rng, blas_always):
    for _ in range(40):
        M, K, N = (int(x) for x in rng.integers(1, 90, size=3))
        bits = int(rng.integers(2, 33))
        A = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(M, K))
        B = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(K, N))
        if bits <= 24:  # no int64 overflow: numpy's loop is exact
            assert np.array_equal(exact_matmul(A, B), _int64_matmul(A, B)), (M, K, N, bits)
        else:
            assert np.array_equal(exact_matmul(A, B), _python_matmul(A, B)), (M, K, N, bits)


def test_small_products_take_numpy_int64_and_agree(rng):
    A = rng.integers(-128, 128, size=(4, 8), dtype=np.int8)
    B = rng.integers(-128, 128, size=(8, 4), dtype=np.int8)
    assert plan(A, B).method == "int64"
    assert np.array_equal(exact_matmul(A, B), _python_matmul(A, B))
    A2 = rng.integers(-128, 128, size=(128, 64), dtype=np.int8)
    B2 = rng.integers(-128, 128, size=(64, 64), dtype=np.int8)
    assert plan(A2, B2).method == "float32"  # 2^19 multiply-accumulates: the BLAS


# -- the bound ------------------------------------------------------------------------------------

def test_sum_bound_covers_every_running_sum(rng):
    A = rng.integers(-100, 100, size=(20, 30)) * (rng.random((20, 30)) < 0.5)
    B = rng.integers(-1000, 1000, size=(30, 10))
    running = np.cumsum(A[:, :, None] * B[None, :, :], axis=1)
    bound = sum_bound(A, B)
    assert np.abs(running).max() <= bound
    # and it is Σ_k max|a_k| · max|b_k|, written out
    assert bound == sum(int(np.abs(A[:, k]).max()) * int(np.abs(B[k]).max()) for k in range(30))
    assert sum_bound(np.zeros((0, 3), np.int8), np.zeros((3, 2), np.int8)) == 0.0


def test_bound_of_int64_min_does_not_wrap():
    A = np.array([[np.iinfo(np.int64).min]])
    assert intmath.k_abs_max(A, -1)[0] == 2.0 ** 63
    assert sum_bound(A, np.array([[1]])) >= 2.0 ** 63


def test_product_with_maxima(rng, blas_always):
    cases = [rng.integers(-128, 128, size=(30, 20), dtype=np.int8),
             _full_range(rng, np.int64, (6, 20)),  # split: maxima from the integers
             np.full((4, 20), 1 << 25, dtype=np.int32)]  # ≥ 2^24: float32 copies round
    for A in cases:
        B = rng.integers(-128, 128, size=(20, 3), dtype=np.int8)
        out, amax = intmath.exact_matmul_amax(A, B)
        assert np.array_equal(out, _python_matmul(A, B))
        want = [max(abs(int(v)) for v in A[:, k]) for k in range(A.shape[1])]
        # exact below 2^53; above, the nearest float64 (still ≥ 2^53: the bounds stay safe)
        assert amax.tolist() == [float(w) for w in want]


def test_mid_size_products_leave_the_blas_threads_as_they_were(rng, monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    info = threadpoolctl.threadpool_info
    before = [d["num_threads"] for d in info() if d["user_api"] == "blas"]
    A = rng.integers(-128, 128, size=(2000, 64))  # 2^23 MACs: one thread
    B = rng.integers(-128, 128, size=(64, 64))
    assert intmath.THREAD_MACS > 2000 * 64 * 64
    inside = []
    real = intmath._blas_blocks

    def spy(*args):
        inside.append([d["num_threads"] for d in info() if d["user_api"] == "blas"])
        return real(*args)

    monkeypatch.setattr(intmath, "_blas_blocks", spy)
    assert np.array_equal(exact_matmul(A, B), _int64_matmul(A, B))
    assert inside == [[1] * len(before)]
    assert [d["num_threads"] for d in info() if d["user_api"] == "blas"] == before


# -- bad operands ---------------------------------------------------------------------------------

@pytest.mark.parametrize("A,B,field", [
    (np.ones((2, 2)), np.ones((2, 2), np.int8), "A"),
    (np.ones((2, 2), bool), np.ones((2, 2), np.int8), "A"),
    (np.ones((2, 2), np.int8), [["a", "b"], ["c", "d"]], "B"),
    (np.int8(3), np.ones((1, 1), np.int8), "A"),
    (np.ones((2, 3), np.int8), np.ones((2, 3), np.int8), "shapes"),
    (np.ones((2, 2, 3), np.int8), np.ones((3, 3, 2), np.int8), "shapes"),
])
def test_bad_operands(A, B, field):
    with pytest.raises(ConfigError) as e:
        exact_matmul(A, B)
    assert e.value.field == field
    assert "\n" not in str(e.value) and str(e.value).startswith(f"invalid {field} = ")


# -- the golden products built on it: the same overflow checks as forming every sum --------------

def _every_running_sum(dataflow, R, C, P, A, B, bias, early):
    """The accumulator check written out: every running sum formed, tile by tile in driver order."""
    lo, hi = -(1 << (P - 1)), (1 << (P - 1)) - 1

    def check(x, what):
        if x.size and (x.min() < lo or x.max() > hi):
            raise AccumulatorOverflow(f"{what}: {int(x.max() if x.max() > hi else x.min())}")

    M, N = A.shape[0], B.shape[1]
    out = np.zeros((M, N), dtype=np.int64)
    if early:
        out += bias
        check(out, "bias")
    for t in tiles(dataflow, R, C, M, A.shape[1], N):
        run = np.cumsum(A[t.m0:t.m1, t.k0:t.k1, None] * B[None, t.k0:t.k1, t.n0:t.n1], axis=1)
        if dataflow != "os":
            run += out[t.m0:t.m1, None, t.n0:t.n1]
        check(run, dataflow)
        out[t.m0:t.m1, t.n0:t.n1] = run[:, -1, :]
    return out if early else out + bias


def _outcome(f, *args, **kwargs):
    """``("ok", f(...))`` or ``("overflow", the value the message reports)``."""
    try:
        return "ok", f(*args, **kwargs)
    except AccumulatorOverflow as e:
        return "overflow", int(str(e).split("partial sum ")[1].split()[0]) \
            if "partial sum" in str(e) else int(str(e).rsplit(": ", 1)[1])


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_checked_product_reports_what_every_running_sum_shows(dataflow, rng, monkeypatch):
    """Bound cleared, bound not cleared but no overflow, and overflow: all as the plain check."""
    monkeypatch.setattr(array, "_RUNNING_CHUNK", 37)  # several row chunks per tile
    seen = set()
    for _ in range(150):
        R, C = (int(x) for x in rng.integers(1, 6, size=2))
        M, K, N = (int(x) for x in rng.integers(1, 12, size=3))
        A = rng.integers(-128, 128, size=(M, K))
        B = rng.integers(-128, 128, size=(K, N))
        bias = rng.integers(-3000, 3000, size=N)
        P = int(rng.integers(14, 21))
        early = bool(rng.integers(2)) and dataflow != "os"
        want = _outcome(_every_running_sum, dataflow, R, C, P, A, B, bias, early)
        got = _outcome(checked_product, dataflow, R, C, P, A, B, bias, bias_in_psum=early)
        assert got[0] == want[0], (R, C, M, K, N, P, early)
        if got[0] == "ok":
            assert np.array_equal(got[1], want[1])
            bound = column_bound(intmath.k_abs_max(A, -1), B).max() + \
                (np.abs(bias).max() if early else 0)
            seen.add("cleared" if bound < 2 ** (P - 1) else "checked")
        else:
            assert got[1] == want[1]
            seen.add("overflow")
    assert seen == {"cleared", "checked", "overflow"}


def test_os_pruned_product_checks_only_outputs_in_use(rng, monkeypatch):
    monkeypatch.setattr(array, "_RUNNING_CHUNK", 29)
    seen = set()
    for _ in range(150):
        R, C = (int(x) for x in rng.integers(1, 5, size=2))
        M, K, N = (int(x) for x in rng.integers(1, 12, size=3))
        A = rng.integers(-128, 128, size=(M, K))
        B = rng.integers(-128, 128, size=(K, N))
        bmap = rng.random((R, C)) < 0.4
        P = int(rng.integers(14, 20))
        mask = bmap[np.arange(M)[:, None] % R, np.arange(N)[None, :] % C]
        run = np.cumsum(A[:, :, None] * B[None, :, :], axis=1).transpose(0, 2, 1)[~mask]
        lo, hi = -(1 << (P - 1)), (1 << (P - 1)) - 1
        got = _outcome(pruned_matmul, "os", A, B, bmap, acc_bits=P)
        if run.size and (run.min() < lo or run.max() > hi):
            assert got == ("overflow", int(run.max() if run.max() > hi else run.min()))
            seen.add("overflow")
        else:
            assert got[0] == "ok"
            assert np.array_equal(got[1], np.where(mask, 0, _int64_matmul(A, B)))
            seen.add("ok")
    assert seen == {"ok", "overflow"}


def test_check_running_is_independent_of_the_chunking(rng, monkeypatch):
    A = rng.integers(-128, 128, size=(23, 9))
    B = rng.integers(-128, 128, size=(9, 4))
    start = rng.integers(-5000, 5000, size=(23, 4))
    sums = []
    for chunk in (1, 36, 37, 10 ** 6):
        monkeypatch.setattr(array, "_RUNNING_CHUNK", chunk)
        sums.append(array.check_running(A, B, 20, "x", start=start))
        with pytest.raises(AccumulatorOverflow) as e:
            array.check_running(A, B, 14, "x", start=start)
        sums.append(str(e.value))
    assert np.array_equal(sums[0], start + _int64_matmul(A, B))
    assert all(np.array_equal(s, sums[i % 2]) if i % 2 == 0 else s == sums[1]
               for i, s in enumerate(sums))
