"""Exact integer products: golden.intmath.exact_matmul against numpy's int64 @ and float32 @.

    python bench/bench_matmul.py            # ~1 minute on 2 cores
    python bench/bench_matmul.py --quick    # smaller batches, fewer repeats

On the shapes of real layers: every product layer of digits-cnn (its own operands, captured
from a golden run on 128 test images), a ResNet-18 3×3 convolution at 32×32 lowered by im2col
(M = batch·1024, K = 576, N = 64; int8, and the same shape with 16-bit data), and a ResNet-18
last-stage 3×3 convolution (K = 4,608 > 1,024: float32 in K-blocks).  For each: the plan the
kernel follows, GMAC/s of the kernel on int8 operands and on the int64 operands the golden
engine hands it, of numpy's int64 ``@`` (no BLAS) and of float32 ``@`` on operands already
in float32 with the kernel's thread count (the ceiling: the BLAS alone, no bound, no casts),
and the ratios.  Then the
measurements behind the kernel's constants (``SMALL_MACS``: small products on numpy's int64
``@``; ``MIN_F32_BLOCK``: float32 K-blocks or one float64 product; ``THREAD_MACS``: one BLAS
thread below it) and the golden engine's images per second on digits-cnn (the number
``bench/bench_infer.py --engines golden`` prints).  Every result is checked equal to numpy's
int64 product; times are medians of several runs (the machine is shared: the load average is
printed; ``OPENBLAS_NUM_THREADS=1`` runs every product on one thread).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ftaccel.app.datasets import digits
from ftaccel.app.network import Network
from ftaccel.config import AcceleratorConfig
from ftaccel.golden import intmath
from ftaccel.golden.intmath import exact_matmul, plan
from ftaccel.golden.network import FunctionalEngine


def best(f, repeats: int) -> float:
    """Median of ``repeats`` timed calls of ``f`` after one warm-up, in seconds.

    The median, not the best: on a shared machine a threaded BLAS call is now and then fast and
    mostly slow, and the best run would hide that.
    """
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class _Recorder(FunctionalEngine):
    """The golden engine, keeping every product's operands."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.products = []

    def product(self, p):
        self.products.append((p.name, np.asarray(p.A), np.asarray(p.B)))
        return super().product(p)


def layer_shapes(batch: int, rng) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, A, B)`` of the benchmarked products (A, B as the golden engine gives them)."""
    net = Network.builtin("digits-cnn")
    cfg = AcceleratorConfig(rows=16, cols=16, dataflow="ws")
    rec = _Recorder(cfg)
    test = digits("test")
    net.run(test.images[:128], engine=rec, config=cfg)
    out = [(f"digits-cnn {name} (128 images)", A, B) for name, A, B in rec.products]

    def rand(bits, shape):
        return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=shape, dtype=np.int64)

    M = batch * 1024
    out.append((f"ResNet-18 3×3 conv 64→64 at 32×32, int8 (batch {batch})",
                rand(8, (M, 576)), rand(8, (576, 64))))
    out.append((f"ResNet-18 3×3 conv 512→512 at 4×4, int8 (batch {4 * batch})",
                rand(8, (4 * batch * 16, 4608)), rand(8, (4608, 512))))
    out.append((f"ResNet-18 3×3 conv 64→64 at 32×32, 16-bit (batch {batch})",
                rand(16, (M, 576)), rand(16, (576, 64))))
    return out


def narrow(x: np.ndarray) -> np.ndarray:
    """``x`` in the narrowest signed integer dtype that holds it (int8 data as int8)."""
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if x.size == 0 or (x.min() >= info.min and x.max() <= info.max):
            return x.astype(dt)
    return x


def kernel_table(batch: int, repeats: int, rng) -> None:
    print("| product | M×K×N | plan | kernel, int8/16 in (GMAC/s) | kernel, int64 in | "
          "numpy int64 @ | float32 @ (ceiling) | kernel / int64 @ | kernel / float32 @ |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, A, B in layer_shapes(batch, rng):
        M, K = A.shape
        N = B.shape[1]
        macs = M * K * N
        An, Bn = narrow(A), narrow(B)
        ref = A @ B
        assert np.array_equal(exact_matmul(An, Bn), ref), name
        assert np.array_equal(exact_matmul(A, B), ref), name
        p = plan(An, Bn)
        t_narrow = best(lambda An=An, Bn=Bn: exact_matmul(An, Bn), repeats)
        t_kernel = best(lambda A=A, B=B: exact_matmul(A, B), repeats)
        t_int = best(lambda A=A, B=B: A @ B, max(1, repeats // 3))
        Af, Bf = A.astype(np.float32), B.astype(np.float32)

        def ceiling(Af=Af, Bf=Bf, macs=macs):
            with intmath._one_thread(macs < intmath.THREAD_MACS):  # the kernel's threads
                return Af @ Bf

        t_f32 = best(ceiling, repeats)
        g = [macs / t / 1e9 for t in (t_narrow, t_kernel, t_int, t_f32)]
        how = p.method + (f", K-blocks of {p.block}" if 0 < p.block < K else "")
        print(f"| {name} | {M}×{K}×{N} | {how} | {g[0]:.1f} | {g[1]:.1f} | {g[2]:.2f} | "
              f"{g[3]:.1f} | {g[1] / g[2]:.0f}× | {100 * g[1] / g[3]:.0f} % |", flush=True)


def crossover_table(repeats: int, rng) -> None:
    print(f"\nSmall products (int64 operands): the BLAS path against numpy's int64 @ "
          f"(SMALL_MACS = {intmath.SMALL_MACS:,}: at or below it the kernel uses int64 @)\n")
    print("| M×K×N | MACs | BLAS path (µs) | int64 @ (µs) |")
    print("|---|---:|---:|---:|")
    keep = intmath.SMALL_MACS
    try:
        for M, K, N in ((16, 16, 16), (64, 16, 16), (64, 16, 64), (128, 16, 64),
                        (540, 8, 9), (256, 32, 32), (512, 64, 32)):
            A = rng.integers(-128, 128, size=(M, K))
            B = rng.integers(-128, 128, size=(K, N))
            intmath.SMALL_MACS = 0
            t_blas = best(lambda A=A, B=B: exact_matmul(A, B), 20 * repeats)
            t_int = best(lambda A=A, B=B: A @ B, 20 * repeats)
            print(f"| {M}×{K}×{N} | {M * K * N:,} | {1e6 * t_blas:.0f} | {1e6 * t_int:.0f} |")
    finally:
        intmath.SMALL_MACS = keep


def block_table(repeats: int, rng) -> None:
    print(f"\nK-blocks (MIN_F32_BLOCK = {intmath.MIN_F32_BLOCK}: shorter float32 blocks give "
          "way to one float64 product), ms on one thread, operands already in float32 / "
          "int64:\n")
    sizes = (32, 64, 128, 256, 1024)
    print("| M×K×N | float64, one product | " + " | ".join(f"float32, blocks of {b}"
                                                          for b in sizes) + " |")
    print("|---|---:|" + "---:|" * len(sizes))
    for M, K, N in ((4096, 1024, 64), (512, 2048, 256)):
        A = rng.integers(-128, 128, size=(M, K))
        B = rng.integers(-128, 128, size=(K, N))
        Af, Bf = A.astype(np.float32), B.astype(np.float32)
        with intmath._one_thread(True):  # the algorithms, not the threading
            t64 = best(lambda A=A, B=B, K=K: intmath._blas_blocks(A, B, np.float64, K),
                       repeats)
            t32 = [best(lambda Af=Af, Bf=Bf, b=b: intmath._blas_blocks(Af, Bf, np.float32, b),
                        repeats) for b in sizes]
        print(f"| {M}×{K}×{N} | {1e3 * t64:.1f} | " + " | ".join(f"{1e3 * t:.1f}" for t in t32)
              + " |", flush=True)


def thread_table(repeats: int, rng) -> None:
    print(f"\nBLAS threads (THREAD_MACS = {intmath.THREAD_MACS:,}: below it one thread), "
          "the kernel in ms:\n")
    print("| M×K×N | MACs | one thread | the BLAS' own threading |")
    print("|---|---:|---:|---:|")
    keep = intmath.THREAD_MACS
    try:
        for M, K, N in ((8192, 9, 8), (34560, 8, 9), (2048, 72, 16), (2000, 64, 64),
                        (8192, 576, 64)):
            A = rng.integers(-128, 128, size=(M, K), dtype=np.int8)
            B = rng.integers(-128, 128, size=(K, N), dtype=np.int8)
            t = []
            for limit in (float("inf"), 0):
                intmath.THREAD_MACS = limit
                t.append(best(lambda A=A, B=B: exact_matmul(A, B), 4 * repeats))
            print(f"| {M}×{K}×{N} | {M * K * N:,} | {1e3 * t[0]:.2f} | {1e3 * t[1]:.2f} |",
                  flush=True)
    finally:
        intmath.THREAD_MACS = keep


def engine_rate(repeats: int) -> None:
    net = Network.builtin("digits-cnn")
    test = digits("test")
    print("\nGolden engine (overflow-checked) on the digits test set, WS:\n")
    print("| model | array | images | images/s |")
    print("|---|---|---:|---:|")
    for size in (8, 16):
        cfg = AcceleratorConfig(rows=size, cols=size, dataflow="ws")
        n = 540
        secs = min(net.run(test.images[:n], labels=test.labels[:n], engine="golden",
                           config=cfg).seconds for _ in range(repeats))
        print(f"| digits-cnn | {size}×{size} | {n} | {n / secs:,.0f} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 2, fewer repeats")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"seed {args.seed}; load average {os.getloadavg()[0]:.2f} at the start; "
          f"{os.cpu_count()} cores\n")
    rng = np.random.default_rng(args.seed)
    repeats = 2 if args.quick else 5
    kernel_table(2 if args.quick else 8, repeats, rng)
    crossover_table(repeats, rng)
    block_table(repeats, rng)
    thread_table(repeats, rng)
    engine_rate(repeats)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"(total {time.perf_counter() - t0:.0f} s)")
    raise SystemExit(code)
