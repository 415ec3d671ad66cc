"""Benchmark of the Yosys area flow: synthesis time and peak memory against array size.

For each square array size (default 4, 8, 16, 32, 64; int8, weight-stationary, output stage)
the design is generated once, then synthesised hierarchically from the Verilog and from its
RTLIL twin, and flattened (from RTLIL) up to ``--flat-max``.  Printed per run: wall time of
``synthesize`` (generation excluded), the summed run time of its Yosys processes, the peak
resident memory of the largest Yosys process (``wait4``; two run side by side), the totals and
the PE's own figures.

    python bench/bench_synth.py                      # the full table (≈ 15 min on 2 cores)
    python bench/bench_synth.py --sizes 4 8 --flat-max 8 --formats rtlil
    python bench/bench_synth.py --sizes 64 --formats rtlil --flat-max 0 --end-to-end --ppa

``--end-to-end`` also times what ``rtlgen synth`` does as a whole (generation included:
the issue-26 target, 64×64 within 60 s at load ≤ 2); ``--ppa`` adds OpenSTA timing and power
to the hierarchical runs and prints their time separately (``sta s``).  The load average is
printed with each row: wall times scale with it, CPU times much less.

A run that exceeds ``--timeout`` (default 900 s) is reported as such, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from amaranth.back import rtlil

from ftaccel.config import AcceleratorConfig
from ftaccel.rtl_gen.accelerator import TOP_NAME, Accelerator, generate
from ftaccel.synth.flow import YosysError, synthesize


def write_rtlil_twin(cfg: AcceleratorConfig, verilog: Path) -> Path:
    """``accelerator.il`` beside ``accelerator.v`` (what ``generate`` would emit too)."""
    top = Accelerator(cfg)
    pes = getattr(top.array, "pe_modules", None) or [top.array.pe]
    text = "".join(rtlil.convert(pe, name=pe.module_name, emit_src=False) for pe in pes)
    text += rtlil.convert(top, name=TOP_NAME, emit_src=False)
    il = verilog.with_suffix(".il")
    il.write_text(text)
    return il


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--flat-max", type=int, default=8, help="largest size synthesised flat")
    ap.add_argument("--formats", nargs="+", default=["verilog", "rtlil"],
                    choices=["verilog", "rtlil"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", type=Path, default=Path("build/bench_synth"))
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--ppa", action="store_true", help="OpenSTA timing and power as well")
    ap.add_argument("--end-to-end", action="store_true",
                    help="also time generation + synthesis, as rtlgen synth runs them")
    args = ap.parse_args(argv)

    rows = []
    header = (f"{'size':>6} {'mode':<5} {'input':<7} {'modules':>7} {'wall s':>8} "
              f"{'yosys s':>8} {'peak MB':>8} {'transistors':>12} {'area µm²':>14} "
              f"{'PE tr.':>7} {'PE µm²':>9}")
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        cfg = AcceleratorConfig(rows=n, cols=n)
        d = args.out / cfg.name()
        if args.end_to_end:
            t = time.perf_counter()
            g = generate(cfg, d / "e2e" / "rtl")
            gen_e2e = time.perf_counter() - t
            synthesize(g.verilog, TOP_NAME, d / "e2e", timeout_s=args.timeout, jobs=args.jobs)
            e2e = time.perf_counter() - t
            rows.append({"size": n, "mode": "end-to-end", "generate_s": round(gen_e2e, 2),
                         "wall_s": round(e2e, 2), "load": os.getloadavg()[0]})
            print(f"{n:>3}x{n:<2} rtlgen synth end to end: {e2e:.1f} s (generation "
                  f"{gen_e2e:.1f} s), load {os.getloadavg()[0]:.1f}", flush=True)
        t = time.perf_counter()
        verilog = generate(cfg, d / "rtl").verilog
        il = write_rtlil_twin(cfg, verilog) if "rtlil" in args.formats else None
        gen_s = time.perf_counter() - t
        runs = [("hier", fmt) for fmt in args.formats]
        if n <= args.flat_max:
            runs.append(("flat", "rtlil" if il else "verilog"))
        for mode, fmt in runs:
            src = il if fmt == "rtlil" else verilog
            row = {"size": n, "mode": mode, "input": fmt, "generate_s": round(gen_s, 2)}
            t = time.perf_counter()
            try:
                ppa = args.ppa and mode == "hier"
                r = synthesize(src, TOP_NAME, d / f"{mode}_{fmt}", flat=(mode == "flat"),
                               timeout_s=args.timeout, jobs=args.jobs, prefer_rtlil=False,
                               timing=ppa, power=ppa)
            except YosysError as exc:
                row.update(error=str(exc).splitlines()[0], wall_s=time.perf_counter() - t)
                print(f"{n:>3}x{n:<2} {mode:<5} {fmt:<7} {'':>7} {row['wall_s']:>8.1f}  "
                      f"{row['error']}", flush=True)
                rows.append(row)
                continue
            wall = time.perf_counter() - t
            pe = next((m for m in r["modules"] if m["unit"] == "pe"), None)
            row.update(
                wall_s=round(wall, 2), yosys_s=r["yosys_wall_s"], yosys_cpu_s=r["cpu_s"],
                peak_mb=round(r["peak_memory_kb"] / 1024, 1),
                modules=r["design"]["modules_synthesised"],
                transistors=r["totals"]["transistors"], area_um2=r["totals"].get("area_um2"),
                pe_transistors=pe["transistors"]["own_per_instance"] if pe else None,
                pe_area_um2=pe["area_um2"]["own_per_instance"] if pe and "area_um2" in pe
                else None)
            rows.append(row)
            area = f"{row['area_um2']:>14,.0f}" if row["area_um2"] else f"{'—':>14}"
            pe_t = f"{row['pe_transistors']:>7,.0f}" if pe else f"{'—':>7}"
            pe_a = f"{row['pe_area_um2']:>9,.0f}" if row["pe_area_um2"] else f"{'—':>9}"
            row["load"] = os.getloadavg()[0]
            extra = ""
            if "sta_elapsed_s" in r:
                row["sta_s"] = r["sta_elapsed_s"]
                row["area_s"] = r["area_elapsed_s"]
                row["fmax_mhz"] = r["timing"]["design"].get("fmax_mhz")
                row["power_mw"] = r["power"]["total"]["total_mw"]
                extra = (f"  (area {r['area_elapsed_s']:.1f} s, sta {r['sta_elapsed_s']:.1f} s; "
                         f"Fmax {row['fmax_mhz']} MHz, {row['power_mw']:.1f} mW)")
            print(f"{n:>3}x{n:<2} {mode:<5} {fmt:<7} {row['modules']:>7} {wall:>8.1f} "
                  f"{row['yosys_s']:>8.1f} {row['peak_mb']:>8.0f} {row['transistors']:>12,.0f} "
                  f"{area} {pe_t} {pe_a}  load {row['load']:.1f}{extra}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
