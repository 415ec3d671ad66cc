"""Array utilisation: double-buffered WS / IS beside single-buffered, OS and SCALE-Sim (issue 18).

For each GEMM ``M×K @ K×N`` (the issue's table, plus convolution layers lowered to GEMM by
im2col) on R×C arrays, the cycles the driver's schedule takes (:func:`golden.array.cycle_count`,
the closed formula the RTL and the cycle model are held to in the tests) beside

* the ideal ``M·K·N / (R·C)`` (every PE busy every cycle);
* the same array single-buffered (``double_buffer = False``: each tile loads while the array is
  idle);
* SCALE-Sim 3.0's analytical count, per fold: WS ``2R + C + M − 2``, IS ``2R + C + N − 2``,
  OS ``K + R + C − 2`` (folds: WS ``⌈K/R⌉·⌈N/C⌉``, IS ``⌈K/R⌉·⌈M/C⌉``, OS ``⌈M/R⌉·⌈N/C⌉``).

Utilisation = ideal / cycles.  *Steady state* is a pass's stream over the cycles between two
passes' first vectors (:func:`golden.array.pass_period`, the worst pass of the product): what a
long product approaches once the one-time fill (R load cycles) and drain (the latency) are paid.
The goal of issue 18: ≥ 95 % wherever the stream is at least 2R, never below SCALE-Sim.

``--verify N`` plays the driver's program on the cycle model (:mod:`golden.accelerator`) for
every row of at most N cycles and checks the product against numpy and the last valid output's
cycle against the formula.  ``--area`` synthesises the int8 WS PE single- and double-buffered
(the shadow register and swap flag; the same Yosys flow as the area reports).

``python bench/bench_utilisation.py [--sizes 8,16,32] [--verify 20000] [--area]`` prints
Markdown and writes ``build/utilisation/utilisation.json`` and ``utilisation.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.array import cycle_count, pass_period
from ftaccel.golden.mapping import ceil_div, tiles

OUT = Path(__file__).resolve().parent.parent / "build" / "utilisation"

#: (label, M, K, N): the issue's GEMMs, then convolutions lowered by im2col (M = output pixels,
#: K = kernel taps × input channels, N = output channels).
GEMMS = [
    ("gemm", 64, 64, 64),
    ("gemm", 256, 128, 64),
    ("gemm", 1024, 64, 32),
    ("ResNet-18 conv2_x 3×3, 56²×64→64", 3136, 576, 64),
    ("ResNet-18 conv3_x 3×3, 28²×128→128", 784, 1152, 128),
    ("ResNet-18 conv4_x 3×3, 14²×256→256", 196, 2304, 256),
    ("MobileNet 1×1, 14²×512→512", 196, 512, 512),
]


def scale_sim(dataflow: str, R: int, C: int, M: int, K: int, N: int) -> int:
    """SCALE-Sim 3.0's analytical cycle count (issue 18's closed form)."""
    if dataflow == "ws":
        return ceil_div(K, R) * ceil_div(N, C) * (2 * R + C + M - 2)
    if dataflow == "is":
        return ceil_div(K, R) * ceil_div(M, C) * (2 * R + C + N - 2)
    return ceil_div(M, R) * ceil_div(N, C) * (K + R + C - 2)


def steady(cfg: AcceleratorConfig, M: int, K: int, N: int) -> float | None:
    """Worst pass's stream over its period (WS / IS); None for OS."""
    if cfg.dataflow == "os":
        return None
    stream = M if cfg.dataflow == "ws" else N
    tl = tiles(cfg.dataflow, cfg.rows, cfg.cols, M, K, N)
    periods = [pass_period(cfg, stream, not t.first_k) for t in tl[1:]]
    return stream / max(periods) if periods else None


def row(label: str, M: int, K: int, N: int, size: int, dataflow: str) -> dict:
    cfg = AcceleratorConfig(rows=size, cols=size, dataflow=dataflow, max_k=max(K, 1))
    ideal = M * K * N / (size * size)
    cyc = cycle_count(cfg, M, K, N)
    out = {"label": label, "M": M, "K": K, "N": N, "array": f"{size}×{size}",
           "dataflow": dataflow, "stream": None if dataflow == "os" else
           (M if dataflow == "ws" else N), "ideal": ideal, "cycles": cyc,
           "utilisation": ideal / cyc, "scale_sim_cycles": scale_sim(dataflow, size, size,
                                                                      M, K, N),
           "steady_state": steady(cfg, M, K, N), "latency": cfg.latency}
    out["scale_sim_utilisation"] = ideal / out["scale_sim_cycles"]
    if dataflow != "os":
        single = cfg.replace(double_buffer=False)
        out["single_cycles"] = cycle_count(single, M, K, N)
        out["single_utilisation"] = ideal / out["single_cycles"]
        out["speedup_over_single"] = out["single_cycles"] / cyc
        out["stream_at_least_2R"] = out["stream"] >= 2 * size
    out["speedup_over_scale_sim"] = out["scale_sim_cycles"] / cyc
    return out


def verify(r: dict, rng) -> dict:
    """Play the program on the cycle model: product and last valid cycle against the formula."""
    from ftaccel.golden.accelerator import simulate
    from ftaccel.golden.schedule import assemble, build_program

    size = int(r["array"].split("×")[0])
    cfg = AcceleratorConfig(rows=size, cols=size, dataflow=r["dataflow"], max_k=r["K"])
    A = rng.integers(-128, 128, (r["M"], r["K"]))
    B = rng.integers(-128, 128, (r["K"], r["N"]))
    t0 = time.perf_counter()
    program = build_program(cfg, A, B)
    rec = simulate(cfg, program)
    last = int(np.flatnonzero(rec["out_valid"])[-1]) + 1
    ok = np.array_equal(assemble(program, rec, "acc_out"), A @ B)
    return {"product_ok": bool(ok), "last_valid_plus_one": last,
            "formula_ok": last == r["cycles"] == program.cycles,
            "seconds": round(time.perf_counter() - t0, 1)}


def pe_area() -> dict:
    """The int8 WS PE single- and double-buffered, synthesised alone."""
    from ftaccel.rtl_gen.array import make_pe
    from ftaccel.rtl_gen.emit import write_verilog
    from ftaccel.synth.flow import synthesize

    res = {}
    for double in (False, True):
        cfg = AcceleratorConfig(rows=8, cols=8, dataflow="ws", double_buffer=double)
        pe = make_pe(cfg)
        name = pe.module_name
        path = write_verilog(pe, name, {"unit": "pe", "double_buffer": double},
                             OUT / name / f"{name}.v")
        rep = synthesize(path, name, OUT / name, timeout_s=1800)
        key = rep.get("primary_metric", "transistors")
        res["double" if double else "single"] = {"module": name, "metric": key,
                                                 "area": rep["totals"][key]}
    res["overhead_pct"] = 100 * (res["double"]["area"] / res["single"]["area"] - 1)
    return res


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def markdown(rows: list[dict], area: dict | None) -> str:
    lines = ["| GEMM (M, K, N) | array | flow | cycles | utilisation | steady state | "
             "single-buffered | SCALE-Sim | × SCALE-Sim |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = f"{r['M']}, {r['K']}, {r['N']}" + ("" if r["label"] == "gemm"
                                                   else f" ({r['label']})")
        lines.append(
            f"| {name} | {r['array']} | {r['dataflow'].upper()} | {r['cycles']:,} | "
            f"{pct(r['utilisation'])} | {pct(r['steady_state'])} | "
            f"{pct(r.get('single_utilisation'))} | {pct(r['scale_sim_utilisation'])} | "
            f"{r['speedup_over_scale_sim']:.2f}× |")
    ws_is = [r for r in rows if r["dataflow"] != "os"]
    long = [r for r in ws_is if r["stream_at_least_2R"]]
    below_ss = [r for r in rows if r["cycles"] > r["scale_sim_cycles"]]
    lines += ["",
              f"- WS/IS rows with a stream ≥ 2R: {len(long)}; steady state ≥ 95 % on "
              f"{sum((r['steady_state'] or 0) >= 0.95 for r in long)}, whole product ≥ 95 % "
              f"on {sum(r['utilisation'] >= 0.95 for r in long)}.",
              f"- Rows below SCALE-Sim: {len(below_ss)} of {len(rows)}.",
              f"- Double- over single-buffered: {min(r['speedup_over_single'] for r in ws_is):.2f}"
              f"–{max(r['speedup_over_single'] for r in ws_is):.2f}× fewer cycles."]
    if area:
        lines += ["", f"PE area (int8 WS, {area['single']['metric']}): single-buffered "
                  f"{area['single']['area']:,.0f}, double-buffered {area['double']['area']:,.0f} "
                  f"(+{area['overhead_pct']:.1f} %)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,16,32", help="square array sizes (default 8,16,32)")
    ap.add_argument("--verify", type=int, default=20000, metavar="N",
                    help="play rows of at most N cycles on the cycle model (0: none)")
    ap.add_argument("--area", action="store_true", help="synthesise the PE both ways")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [row(label, M, K, N, size, df) for label, M, K, N in GEMMS for size in sizes
            for df in ("ws", "is", "os")]
    rng = np.random.default_rng(18)
    checked = 0
    if args.verify:
        for r in rows:
            if r["cycles"] <= args.verify and r["K"] * max(r["M"], r["N"]) <= 300_000:
                r["verified"] = verify(r, rng)
                assert r["verified"]["product_ok"] and r["verified"]["formula_ok"], r
                checked += 1
    area = pe_area() if args.area else None
    OUT.mkdir(parents=True, exist_ok=True)
    md = markdown(rows, area)
    md += f"\nCycle model played on {checked} rows (≤ {args.verify:,} cycles): all equal.\n"
    (OUT / "utilisation.json").write_text(json.dumps({"rows": rows, "pe_area": area,
                                                      "verified_rows": checked}, indent=2))
    (OUT / "utilisation.md").write_text(md)
    print(md)
    print(f"wrote {OUT / 'utilisation.json'} and {OUT / 'utilisation.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
