"""Latency and area of every protection on every dataflow (issue 29), beside Ozen 2023 Table 6.3.

For each dataflow (WS, IS, OS) and each input/detection unit (anomaly suppression, median 3
plain, median 5 comparator-sharing, Sanity-Check spatial, temporal residue, both exact) an
``--size``² array (default 4×4, 8-bit) is generated and synthesised whole with the project's
Yosys flow (:func:`synth.flow.synthesize`, hierarchical, the OSU 0.18 µm library when
installed, else transistors).  Printed per configuration:

* **area added**: whole design minus the plain design of the same dataflow, and that as a share
  of the plain design's array (Ozen 2023 Table 6.3's denominator);
* **latency**: :attr:`ftaccel.config.AcceleratorConfig.latency` (input vector to its output at
  the top's ports) and the windowed filters' lead :attr:`~ftaccel.config.AcceleratorConfig.
  filter_lead` (IS / OS: the filtered operand enters that many cycles early), as added cycles;
* **cycles** of a 16×16 @ 16×16 product (:func:`golden.array.cycle_count`) against the plain
  design: the throughput cost (sanity vectors, the OS sanity row's longer drain).

Writes ``build/dataflow_units/costs.json`` and prints Markdown.
``python bench/bench_dataflow_units.py [--size 4] [--only ws is os]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ftaccel.config import AcceleratorConfig
from ftaccel.files import write_text
from ftaccel.golden.array import cycle_count
from ftaccel.rtl_gen.accelerator import generate
from ftaccel.synth.flow import synthesize

OUT = Path(__file__).resolve().parent.parent / "build" / "dataflow_units"

#: Label → configuration keywords (on top of the dataflow and the size).
UNITS = {
    "plain": {},
    "AFD": {"afd": True},
    "median 3 plain": {"median": 3},
    "median 5 shared": {"median": 5, "median_variant": "shared"},
    "Sanity-Check spatial": {"checksum": "spatial"},
    "Sanity-Check temporal (residue)": {"checksum": "temporal"},
    "Sanity-Check both (exact)": {"checksum": "both", "temporal_mode": "exact"},
}
PRODUCT = (16, 16, 16)


def metric(report: dict) -> str:
    return report.get("primary_metric", "transistors")


def measure(cfg: AcceleratorConfig) -> dict:
    d = OUT / cfg.name()
    gen = generate(cfg, d / "rtl")
    rep = synthesize(gen.verilog, gen.top, d)
    key = metric(rep)
    return {"metric": key, "design": rep["denominators"]["design"][key],
            "array": rep["denominators"]["array"][key],
            "latency": cfg.latency, "filter_lead": cfg.filter_lead,
            "cycles": cycle_count(cfg, *PRODUCT)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4, help="rows = cols of the array")
    ap.add_argument("--only", nargs="+", choices=("ws", "is", "os"), default=["ws", "is", "os"])
    args = ap.parse_args(argv)
    results = {}
    t0 = time.perf_counter()
    for df in args.only:
        for label, kw in UNITS.items():
            cfg = AcceleratorConfig(rows=args.size, cols=args.size, dataflow=df, max_k=64, **kw)
            results[f"{df}/{label}"] = {"dataflow": df, "unit": label, "config": cfg.name(),
                                        **measure(cfg)}
    unit = results[next(iter(results))]["metric"]
    print(f"## Every protection on every dataflow: {args.size}×{args.size}, 8-bit "
          f"({unit}; {time.perf_counter() - t0:.0f} s)\n")
    print("| dataflow | unit | design | added | % of plain array | latency (+) | filter lead "
          f"| cycles {'×'.join(map(str, PRODUCT))} (+) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results.values():
        base = results[f"{r['dataflow']}/plain"]
        added = r["design"] - base["design"]
        print(f"| {r['dataflow'].upper()} | {r['unit']} | {r['design']:,.0f} | {added:,.0f} | "
              f"{100 * added / base['array']:.1f} % | {r['latency']} "
              f"(+{r['latency'] - base['latency']}) | {r['filter_lead']} | {r['cycles']} "
              f"(+{r['cycles'] - base['cycles']}) |")
    write_text(OUT / "costs.json", json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
