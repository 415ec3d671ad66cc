"""Benchmark: Verilog generation time and size against array size and dataflow.

Prints a Markdown table; run with ``python bench/bench_generate.py [--sizes 4 8 16 32 64]``.
"""

from __future__ import annotations

import argparse
import time

from ftaccel.config import AcceleratorConfig
from ftaccel.rtl_gen.accelerator import verilog_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--dataflows", nargs="+", default=["ws", "os"])
    args = ap.parse_args()
    verilog_text(AcceleratorConfig(rows=2, cols=2))  # warm Amaranth's Yosys cache
    print("| array | dataflow | fault hooks | generation (s) | Verilog (kB) |")
    print("|---|---|---|---:|---:|")
    for n in args.sizes:
        for df in args.dataflows:
            for fh in (False, True):
                cfg = AcceleratorConfig(rows=n, cols=n, dataflow=df, fault_hooks=fh)
                t0 = time.perf_counter()
                text = verilog_text(cfg)
                dt = time.perf_counter() - t0
                print(f"| {n}×{n} | {df} | {'on' if fh else 'off'} | {dt:.2f} | "
                      f"{len(text) / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
