"""Benchmark: generation time (Verilog and its RTLIL twin) and size against array size.

What ``rtlgen generate`` does, timed: :func:`rtl_gen.accelerator.design_texts` (each component
converted to RTLIL once, its Verilog written from that text by Amaranth's Yosys step).  Wall
time depends on the machine's load (printed); the CPU time of this process (``process_time``)
plus that of the Yosys children (``RUSAGE_CHILDREN``) much less so.  Prints a Markdown table;
run with ``python bench/bench_generate.py [--sizes 4 8 16 32 64] [--verilog-only]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from ftaccel.config import AcceleratorConfig
from ftaccel.rtl_gen.accelerator import design_texts, verilog_text


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--dataflows", nargs="+", default=["ws", "os"])
    ap.add_argument("--fault-hooks", choices=["both", "off", "on"], default="both")
    ap.add_argument("--verilog-only", action="store_true",
                    help="the Verilog alone (simulation), not the RTLIL twin as well")
    args = ap.parse_args()
    verilog_text(AcceleratorConfig(rows=2, cols=2))  # warm Amaranth's Yosys cache
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"{'Verilog only' if args.verilog_only else 'Verilog + RTLIL (rtlgen generate)'}\n")
    print("| array | dataflow | fault hooks | generation wall (s) | CPU (s) | Verilog (kB) |")
    print("|---|---|---|---:|---:|---:|")
    hooks = {"both": (False, True), "off": (False,), "on": (True,)}[args.fault_hooks]
    for n in args.sizes:
        for df in args.dataflows:
            for fh in hooks:
                cfg = AcceleratorConfig(rows=n, cols=n, dataflow=df, fault_hooks=fh)
                t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
                text = design_texts(cfg, rtlil_too=not args.verilog_only)[1]
                dt = time.perf_counter() - t0
                cpu = time.process_time() - c0 + _children_cpu() - k0
                print(f"| {n}×{n} | {df} | {'on' if fh else 'off'} | {dt:.2f} | {cpu:.2f} | "
                      f"{len(text) / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
