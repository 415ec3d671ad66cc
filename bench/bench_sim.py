"""Benchmark: RTL simulation throughput and cocotb overhead on Icarus and Verilator.

For each array size, one weight-stationary pass streaming ``--rows`` vectors is simulated:

* build: compile time of the simulator model (cached builds are cleared first);
* start: a 4-cycle run: simulator and cocotb start-up, paid once per run;
* play: wall time of the cocotb run that drives and reads every port every cycle;
* idle: the same number of cycles with cocotb only clocking (no per-cycle Python);
* array-cycles/s = cycles / (play − start); cocotb overhead = (play − idle) / (play − start),
  the share of the per-cycle time spent in the Python driver;
* golden: the numpy cycle model's speed on the same program.

Prints a Markdown table.  ``python bench/bench_sim.py [--sizes 4 8 16] [--sims icarus verilator]``
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from ftaccel.golden.accelerator import simulate
from ftaccel.golden.schedule import build_program
from ftaccel.rtl_gen.accelerator import TOP_NAME, generate
from ftaccel.rtl_gen.config import AcceleratorConfig
from ftaccel.tb.runner import run_stream

ROOT = Path(__file__).resolve().parent.parent / "build" / "bench_sim"


def measure(cfg: AcceleratorConfig, sim: str, stream: int) -> dict:
    rng = np.random.default_rng(0)
    A = rng.integers(-128, 128, (stream, cfg.rows))
    B = rng.integers(-128, 128, (cfg.rows, cfg.cols))
    program = build_program(cfg, A, B)
    bdir = ROOT / sim / cfg.name()
    shutil.rmtree(bdir, ignore_errors=True)
    gen = generate(cfg, bdir / "rtl")
    kw = dict(verilog=[gen.verilog], toplevel=TOP_NAME, inputs=program.inputs,
              outputs=program.outputs, build_dir=bdir, sim=sim, loopback=program.loopback)
    t0 = time.perf_counter()
    run_stream(**kw, idle=True)  # first call builds
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_stream(**kw, idle=True)
    idle = time.perf_counter() - t0
    short = {k: v[:4] for k, v in program.inputs.items()}
    t0 = time.perf_counter()
    run_stream(**{**kw, "inputs": short, "loopback": {}}, idle=True)
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = run_stream(**kw).outputs
    play = time.perf_counter() - t0
    t0 = time.perf_counter()
    gold = simulate(cfg, program)
    golden = time.perf_counter() - t0
    assert all(np.array_equal(rec[k], gold[k]) for k in gold), "RTL differs from golden"
    return {"cycles": program.cycles, "build": max(0.0, first - idle), "idle": idle,
            "play": play, "start": start, "golden": golden}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--sims", nargs="+", default=["icarus", "verilator"])
    ap.add_argument("--stream", type=int, default=4000, help="vectors streamed per pass")
    args = ap.parse_args()
    print("| simulator | array | cycles | build (s) | start (s) | play (s) | idle (s) | "
          "array-cycles/s | MAC/s | cocotb overhead | golden model cycles/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sim in args.sims:
        for n in args.sizes:
            cfg = AcceleratorConfig(rows=n, cols=n)
            r = measure(cfg, sim, args.stream)
            per_run = max(r["play"] - r["start"], 1e-9)
            rate = r["cycles"] / per_run
            overhead = min(1.0, max(0.0, (r["play"] - r["idle"]) / per_run))
            print(f"| {sim} | {n}×{n} | {r['cycles']} | {r['build']:.1f} | {r['start']:.2f} | "
                  f"{r['play']:.2f} | "
                  f"{r['idle']:.2f} | {rate:,.0f} | {rate * n * n:,.0f} | {overhead:.0%} | "
                  f"{r['cycles'] / r['golden']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
