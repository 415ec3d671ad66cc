"""Exact integer matrix products on the floating-point BLAS.

numpy's integer ``@`` is a plain loop without BLAS (≈ 0.7 GMAC/s on these machines); its
float32 ``@`` runs OpenBLAS' sgemm, 15–50× faster.  A product of integers computed in
floating point is exact when every value the BLAS forms is an integer the format represents:
a binary32 significand has p = 24 bits and a binary64 one p = 53 (IEEE 754-2019 §3.6), so
every integer of magnitude ≤ 2^24 (float32) or ≤ 2^53 (float64) is representable, and an
operation whose exact result is such an integer returns it unrounded (§4.3: rounding changes
only results that are not representable).

**Bound.**  Whatever order and blocking the BLAS sums in, each value it forms for output
(m, n) is a sum of a subset of the products ``a_mk · b_kn`` (one product, or a fused
multiply-add of them), so its magnitude is at most ``Σ_k |a_mk| |b_kn|``, and at most

    S = Σ_k  max_m |a_mk| · max_n |b_kn|                       (:func:`sum_bound`)

for every output at once: O(M·K + K·N) to compute, against M·K·N for the product.  The
bound is computed in float64 on non-negative integers; every such sum (in any order) is exact
while it stays below 2^53 and, rounding being monotone, is ≥ 2^53 once the exact value is,
so a computed ``S < 2^53`` is the exact bound.

**Plan** (:func:`plan`).  ``S ≤ 2^24``: one float32 product.  Otherwise K is cut into blocks
whose bound ``len · max_k(max|a_k| · max|b_k|)`` stays ≤ 2^24 (float32) or ≤ 2^53 (float64),
each block's exact result converted to int64 and the blocks summed in int64: float32 blocks
while they are at least :data:`MIN_F32_BLOCK` long (int8 data: 1,024 per block), else
float64 (one block whenever ``S ≤ 2^53``: 16-bit data up to K = 2^23).  When a single product
exceeds 2^53 (operands beyond 26 bits), the wider operand is split into a high and a low half
of its bits, ``A = A_hi · 2^h + A_lo`` (the error-free splitting of Ozaki, Ogita, Oishi &
Rump, Numer. Algorithms 59, 2012, here with integer halves), and the halves' products
recombined in int64.

**Result.**  ``exact_matmul(A, B)`` equals ``np.matmul(A.astype(np.int64),
B.astype(np.int64))`` element for element: the exact integer product whenever it fits int64,
and the same value modulo 2^64 (int64 arithmetic wraps) when it does not.  Products with at
most :data:`SMALL_MACS` multiply-accumulates use numpy's int64 ``@`` directly: below that,
the bound and the casts cost more than the loop.  Products below :data:`THREAD_MACS` run the
BLAS on one thread (threadpoolctl), where a second thread gains little and loses much when
the other core is busy.  :func:`exact_matmul_amax` also returns the left operand's maxima,
for callers that bound partial sums with them (the accumulator checks of
:func:`golden.array.checked_product`).  The constants are measured by ``bench/bench_matmul.py``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from ftaccel.errors import ConfigError

__all__ = ["F32_EXACT", "F64_EXACT", "MIN_F32_BLOCK", "SMALL_MACS", "THREAD_MACS", "Plan",
           "k_abs_max", "sum_bound", "column_bound", "plan", "exact_matmul", "exact_matmul_amax",
           "float_matmul", "blas_threads"]

#: Largest magnitude up to which every integer is a float32 (2^24: p = 24).
F32_EXACT = 1 << 24
#: Largest magnitude up to which every integer is a float64 (2^53: p = 53).
F64_EXACT = 1 << 53
#: Shortest K-block worth a float32 product: shorter blocks spend more on converting and adding
#: each block's M×N result than float64's half speed costs (``bench/bench_matmul.py``).
MIN_F32_BLOCK = 128
#: Products of at most this many multiply-accumulates (M·K·N, batch included) run on numpy's
#: int64 ``@``: the bound and the casts cost ≈ 30–40 µs, which its loop (≈ 0.7 ns per
#: multiply-accumulate) beats below this size (``bench/bench_matmul.py``).
SMALL_MACS = 1 << 16
#: Products below this many multiply-accumulates run the BLAS on one thread.  OpenBLAS threads
#: products from a few hundred thousand MACs on, and when another process holds the second
#: core its threads wait for each other: a 8192×9×8 product took 2.1 ms on two threads
#: against 0.05 ms on one (load 6 on 2 cores), and the fast fault model's many tall, narrow
#: per-pass products ran 4× slower than numpy's int64 loop.  Above it (≥ 0.5 ms of work) a
#: second thread can pay off (``bench/bench_matmul.py``).
THREAD_MACS = 1 << 24


class Plan(NamedTuple):
    """How :func:`exact_matmul` computes a product.

    Attributes
    ----------
    method : str
        ``"float32"`` or ``"float64"`` (BLAS), ``"split"`` (an operand's bits halved, each half
        planned again), ``"int64"`` (numpy's loop: small products) or ``"empty"``.
    block : int
        K-block length (K itself when the product is one BLAS call; 0 for the others).
    bound : float
        :func:`sum_bound` of the operands (``inf`` where it was not needed).
    """

    method: str
    block: int
    bound: float


# -- operands --------------------------------------------------------------------------------

def _operand(name: str, x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ConfigError(name, x if arr.size <= 4 else f"<{arr.dtype} array {arr.shape}>",
                          "an array of integers (int8 … int64, uint8 … uint64)")
    if arr.ndim == 0:
        raise ConfigError(name, x, "an array with at least one axis (matmul operands)")
    if arr.dtype == np.uint64:  # the int64 view: the result is defined modulo 2^64
        arr = arr.astype(np.int64)
    return arr


def _shapes(A: np.ndarray, B: np.ndarray):
    """``(A, B, out_shape, squeeze)`` of ``np.matmul``'s rules (1-D operands promoted)."""
    squeeze = []
    if A.ndim == 1:
        A = A[None, :]
        squeeze.append(-2)
    if B.ndim == 1:
        B = B[:, None]
        squeeze.append(-1)
    if A.shape[-1] != B.shape[-2]:
        raise ConfigError("shapes", (A.shape, B.shape),
                          f"A's last axis ({A.shape[-1]}) must equal B's second-to-last "
                          f"({B.shape[-2]})")
    if A.ndim == 2 and B.ndim == 2:  # the common case, without broadcast_shapes' cost
        return A, B, (A.shape[0], B.shape[1]), tuple(squeeze)
    try:
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError:
        raise ConfigError("shapes", (A.shape, B.shape),
                          "batch axes that broadcast against each other") from None
    return A, B, batch + (A.shape[-2], B.shape[-1]), tuple(squeeze)


def _grouped_extremes(X2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column max and min of a C-contiguous 2-D array.

    numpy reduces a tall, narrow array over axis 0 one short row at a time (10× slower than a
    flat reduction for K = 8): reshaping ``g`` rows into one long row first lets it run along
    ``g·K`` elements, and a second, small reduction folds the ``g`` groups.
    """
    M, K = X2.shape
    g = max(1, 512 // max(K, 1))
    Mg = M - M % g
    if g == 1 or Mg == 0:
        return X2.max(axis=0), X2.min(axis=0)
    wide = X2[:Mg].reshape(Mg // g, g * K)
    hi = wide.max(axis=0).reshape(g, K).max(axis=0)
    lo = wide.min(axis=0).reshape(g, K).min(axis=0)
    if Mg < M:
        hi = np.maximum(hi, X2[Mg:].max(axis=0))
        lo = np.minimum(lo, X2[Mg:].min(axis=0))
    return hi, lo


def k_abs_max(X: np.ndarray, axis: int = -1) -> np.ndarray:
    """``max |x|`` for each index along ``axis`` (the reduction axis K), over every other axis.

    Float64 of length ``X.shape[axis]``: exact below 2^53 and ≥ 2^53 at or above (conversion
    rounds monotonically), without int64's ``|−2^63| = −2^63``.  ``axis = -1`` for the left
    operand ``(..., M, K)``, ``-2`` for the right one ``(..., K, N)``.
    """
    X = np.asarray(X)
    if axis in (-1, X.ndim - 1) and X.flags.c_contiguous:
        hi, lo = _grouped_extremes(X.reshape(-1, X.shape[-1]))
    else:
        others = tuple(i for i in range(X.ndim) if i != axis % X.ndim)
        hi, lo = X.max(axis=others), X.min(axis=others)
    return np.maximum(hi.astype(np.float64), -lo.astype(np.float64))


def sum_bound(A, B) -> float:
    """An upper bound on the magnitude of every partial sum of ``A @ B``: ``Σ_k max|a_k|·max|b_k|``.

    Exact (an integer) when below 2^53, ≥ 2^53 otherwise (see the module docstring).
    ``A``: ``(..., M, K)``, ``B``: ``(..., K, N)`` integer arrays; 0 when a dimension is empty.
    """
    A, B, out_shape, _ = _shapes(_operand("A", A), _operand("B", B))
    if A.shape[-1] == 0 or 0 in out_shape:
        return 0.0
    return float(k_abs_max(A, -1) @ k_abs_max(B, -2))


def column_bound(amax: np.ndarray, B) -> np.ndarray:
    """Per output column n, a bound on every partial sum: ``Σ_k amax_k · |b_kn|``.

    ``amax``: :func:`k_abs_max` of the left operand (length K), ``B``: K×N integers.  Float64 of
    length N, exact below 2^53 and ≥ 2^53 at or above (as :func:`sum_bound`).
    """
    B = _operand("B", B)
    if B.size == 0:
        return np.zeros(B.shape[1], dtype=np.float64)
    Bf = B.astype(np.float64)
    return np.asarray(amax, dtype=np.float64) @ np.maximum(Bf, -Bf)


# -- the plan ----------------------------------------------------------------------------------

def _plan(amax: np.ndarray, bmax: np.ndarray, K: int) -> Plan:
    terms = amax * bmax  # exact products of exact maxima (or ≥ 2^53)
    top = float(terms.max())
    total = float(terms.sum())
    if total <= F32_EXACT:
        return Plan("float32", K, total)
    if top >= F64_EXACT:
        return Plan("split", 0, total)
    top_i = max(int(top), 1)  # an exact integer here (0 only for all-zero operands)
    f32_block = F32_EXACT // top_i
    if f32_block >= MIN_F32_BLOCK:
        return Plan("float32", min(f32_block, K), total)
    if total < F64_EXACT:
        return Plan("float64", K, total)
    # exact integer arithmetic: len · top ≤ 2^53 bounds every block's partial sums
    return Plan("float64", max(1, min(F64_EXACT // top_i, K)), total)


def _decide(A: np.ndarray, B: np.ndarray, out_shape: tuple):
    """``(plan, A as float32, B as float32, amax)``; ``None`` for what was not computed.

    The maxima are read from the float32 copies (half the bytes of int64, and needed for a
    float32 product anyway); a copy holding a value ≥ 2^24 may have rounded it, so those maxima
    are read again from the integers.  ``amax``: :func:`k_abs_max` of A.
    """
    K = A.shape[-1]
    if K == 0 or 0 in out_shape:
        return Plan("empty", 0, 0.0), None, None, None
    if math.prod(out_shape) * K <= SMALL_MACS:
        return Plan("int64", 0, float("inf")), None, None, None
    Af, Bf = A.astype(np.float32), B.astype(np.float32)
    amax, bmax = k_abs_max(Af, -1), k_abs_max(Bf, -2)
    if amax.max() >= F32_EXACT:
        amax = k_abs_max(A, -1)
    if bmax.max() >= F32_EXACT:
        bmax = k_abs_max(B, -2)
    return _plan(amax, bmax, K), Af, Bf, amax


def plan(A, B) -> Plan:
    """The :class:`Plan` :func:`exact_matmul` follows for ``A @ B`` (for tests and benchmarks)."""
    A, B, out_shape, _ = _shapes(_operand("A", A), _operand("B", B))
    return _decide(A, B, out_shape)[0]


# -- the product -------------------------------------------------------------------------------

_BLAS_LIBS: list | None = None


def _blas_libs() -> list:
    """The controllers (threadpoolctl) of the BLAS libraries loaded; empty without threadpoolctl."""
    global _BLAS_LIBS
    if _BLAS_LIBS is None:
        try:  # optional: without it the BLAS threads as it likes (still exact)
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS_LIBS = []
        else:
            _BLAS_LIBS = ThreadpoolController().select(user_api="blas").lib_controllers
    return _BLAS_LIBS


@contextmanager
def _one_thread(on: bool):
    """The BLAS on one thread inside the block (when ``on``), its thread counts restored after.

    The count is global to the process: a product running meanwhile in another Python thread
    runs on one thread too (slower, never wrong).
    """
    libs = [(lib, lib.get_num_threads()) for lib in _blas_libs()] if on else []
    libs = [(lib, n) for lib, n in libs if n and n > 1]
    for lib, _ in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in libs:
            lib.set_num_threads(n)


def blas_threads(macs: int):
    """The thread policy of :func:`exact_matmul` for products of ``macs`` multiply-accumulates.

    A context: the BLAS on one thread inside it below :data:`THREAD_MACS`, for a caller that
    makes many small products in a row (one check of the thread counts instead of one each).
    """
    return _one_thread(macs < THREAD_MACS)


def _blas(A: np.ndarray, B: np.ndarray, ftype, block: int) -> np.ndarray:
    """``A @ B`` in ``ftype``, K cut into blocks of ``block``, the blocks summed in int64."""
    batch = 1 if A.ndim == B.ndim == 2 else math.prod(np.broadcast_shapes(A.shape[:-2],
                                                                         B.shape[:-2]))
    macs = batch * A.shape[-2] * A.shape[-1] * B.shape[-1]
    with _one_thread(macs < THREAD_MACS):
        return _blas_blocks(A, B, ftype, block)


def _blas_blocks(A: np.ndarray, B: np.ndarray, ftype, block: int) -> np.ndarray:
    K = A.shape[-1]
    if block >= K:
        return np.matmul(A.astype(ftype, copy=False), B.astype(ftype, copy=False)).astype(
            np.int64)
    out = None
    for k0 in range(0, K, block):
        part = np.matmul(A[..., k0:k0 + block].astype(ftype, copy=False),
                         B[..., k0:k0 + block, :].astype(ftype, copy=False)).astype(np.int64)
        if out is None:
            out = part
        else:
            out += part  # int64: wraps modulo 2^64 exactly as numpy's int64 @
    return out


def _halves(x: np.ndarray, xmax: float) -> tuple[np.ndarray, np.ndarray, int]:
    """``(hi, lo, h)`` with ``x = hi · 2^h + lo``, ``0 ≤ lo < 2^h``, each about half the bits."""
    bits = int(xmax).bit_length() if xmax < F64_EXACT else 64
    h = max(1, (bits + 1) // 2)
    x = x.astype(np.int64, copy=False)
    return x >> h, x & np.int64((1 << h) - 1), h


def _shifted(x: np.ndarray, h: int) -> np.ndarray:
    """``x · 2^h`` modulo 2^64 (through uint64, where the shift is defined for every value)."""
    return (x.view(np.uint64) << np.uint64(h)).view(np.int64)


def _product(A: np.ndarray, B: np.ndarray, out_shape: tuple):
    """``(A @ B exactly, k_abs_max(A) or None)``."""
    p, Af, Bf, amax = _decide(A, B, out_shape)
    if p.method == "empty":
        return np.zeros(out_shape, dtype=np.int64), None
    if p.method == "int64":
        return np.matmul(A.astype(np.int64, copy=False), B.astype(np.int64, copy=False)), None
    if p.method == "float32":
        return _blas(Af, Bf, np.float32, p.block), amax
    del Af, Bf
    if p.method == "float64":
        return _blas(A, B, np.float64, p.block), amax
    # split the operand with the wider values: each half's products are 2^h smaller
    a_top, b_top = float(amax.max()), float(k_abs_max(B, -2).max())
    if a_top >= b_top:
        hi, lo, h = _halves(A, a_top)
        out = _shifted(_product(hi, B, out_shape)[0], h) + _product(lo, B, out_shape)[0]
    else:
        hi, lo, h = _halves(B, b_top)
        out = _shifted(_product(A, hi, out_shape)[0], h) + _product(A, lo, out_shape)[0]
    return out, amax


def exact_matmul(A, B) -> np.ndarray:
    """The exact int64 product ``A @ B`` of integer arrays, on the BLAS.

    Parameters
    ----------
    A, B : array_like of integers
        Any integer dtype, any strides; ``np.matmul``'s shapes: ``(..., M, K)`` and
        ``(..., K, N)`` with broadcasting batch axes (a stack of per-tile products in one
        call), a 1-D operand promoted and its axis removed from the result.

    Returns
    -------
    numpy.ndarray
        int64, equal to ``np.matmul(A.astype(np.int64), B.astype(np.int64))``: the exact sums,
        modulo 2^64 only where those overflow int64 too.  Float32 when :func:`sum_bound` is at
        most 2^24 (int8 × int8 up to K = 1,024), float64 up to 2^53, K-blocked with int64
        block sums beyond, operand bits split when one product exceeds 2^53 (see the module
        docstring and :func:`plan`).

    Raises
    ------
    ftaccel.errors.ConfigError
        An operand that is not an integer array, or shapes ``np.matmul`` rejects.
    """
    if (type(A) is np.ndarray and type(B) is np.ndarray and A.ndim == 2 and B.ndim == 2
            and A.dtype.kind == "i" and B.dtype.kind == "i" and A.shape[1] == B.shape[0]
            and A.shape[0] * A.shape[1] * B.shape[1] <= SMALL_MACS):
        # the fast fault model's many small per-pass products: no checks beyond these
        return np.matmul(A.astype(np.int64, copy=False), B.astype(np.int64, copy=False))
    A, B, out_shape, squeeze = _shapes(_operand("A", A), _operand("B", B))
    out = _product(A, B, out_shape)[0]
    return out.squeeze(axis=squeeze) if squeeze else out


def exact_matmul_amax(A, B) -> tuple[np.ndarray, np.ndarray]:
    """``(exact_matmul(A, B), k_abs_max(A, -1))``: the product and its left operand's maxima.

    The maxima come from the pass the product makes anyway (over A's float32 copy), so a
    caller that bounds partial sums with them (:func:`column_bound`, e.g. the accumulator
    check of :func:`golden.array.checked_product`) reads A once less.  Raises as
    :func:`exact_matmul`.
    """
    A, B, out_shape, squeeze = _shapes(_operand("A", A), _operand("B", B))
    out, amax = _product(A, B, out_shape)
    if amax is None:
        amax = k_abs_max(A, -1) if A.size else np.zeros(A.shape[-1], dtype=np.float64)
    return (out.squeeze(axis=squeeze) if squeeze else out), amax


def float_matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``np.matmul(A, B)`` of floating-point operands, on one BLAS thread below :data:`THREAD_MACS`.

    For callers that have proven the product exact in the operands' type themselves (e.g.
    :func:`golden.array.float_plan`: integers whose partial sums stay within 2^24 in float32,
    2^53 in float64); the thread policy is :func:`exact_matmul`'s.
    """
    batch = 1 if A.ndim == B.ndim == 2 else math.prod(np.broadcast_shapes(A.shape[:-2],
                                                                         B.shape[:-2]))
    with _one_thread(batch * A.shape[-2] * A.shape[-1] * B.shape[-1] < THREAD_MACS):
        return np.matmul(A, B)
