"""Flow-controlling MAC units: area beside 000 Table 12.9, ops per area beside Table 12.10, and
the throughput boost measured in simulation (SPEC §8, 000 §12.5.2, §12.7.3).

**Area.**  Each PE variant (:class:`rtl_gen.flow.FlowPE`) is emitted on its own and synthesised
with :func:`synth.flow.synthesize` (one Yosys version, one script, the OSU 0.18 µm library when
installed).  The denominator is the dense MAC unit built the same way (``FlowPE`` with one
activation and one partial-sum lane: multiplier, adder, weight and partial-sum registers), so
the overhead is exactly the flow-control enhancement of Fig. 12.6.  Two figures per variant:

* *MAC datapath*: combinational cells only (registers excluded) — the seed measures "MAC
  units" and names the k partial-sum registers of superposition an *additional* storage
  overhead (000 L3210), so this is the closer analogue of Table 12.9;
* *whole PE*: everything the array instantiates per PE (weight, extension and k partial-sum
  registers included; activations are broadcast per row, so no activation registers).

Effective ops per area (Table 12.10) = group size / (area of the variant / dense area): the
flow-controlling MAC does ``g`` times the work of the dense MAC on a packed layer (000 L3218).
The seed's Table 12.10 column is recomputed from its Table 12.9 the same way; that reproduces
every legible entry (Shortened-8 6.98, Two-Dim-4x4 9.77, Shortened-64 28.40, Two-Dim-8x8 28.28,
Superposition-16 4.85, Superposition-64 6.20, Shortened-256 43.61, Superposition-256 6.87); the
"Superposition-8 12.12" line of the plain-text seed is Shortened-16's value (16 / 1.3204).

**Throughput.**  The same layer, dense and packed, on one flow-controlling array, simulated on
the RTL (Icarus): cycles from the first load to the last valid output, read off ``out_valid``.

``python bench/bench_flow.py [--groups 8,16,64] [--large] [--no-sim]`` prints Markdown and
writes ``build/flow/flow.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ftaccel.golden.flow import flow_cycle_count, layer_shape, pack, prune
from ftaccel.rtl_gen.config import AcceleratorConfig, flow_lanes
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.rtl_gen.flow import FlowPE
from ftaccel.synth.flow import synthesize

OUT = Path(__file__).resolve().parent.parent / "build" / "flow"

#: 000 Table 12.9 (L3190), 8-bit fixed point, area overhead (%) on the MAC unit.
SEED_AREA = {("shortened", 8): 14.63, ("superposition", 8): 111.68, ("shortened", 16): 32.04,
             ("superposition", 16): 229.68, ("twodim", 16): 63.73, ("shortened", 64): 125.36,
             ("superposition", 64): 932.12, ("twodim", 64): 126.30, ("shortened", 256): 487.00,
             ("superposition", 256): 3628.66, ("twodim", 256): 261.72}
LABEL = {"shortened": "Shortened", "superposition": "Superposition", "twodim": "Two-Dim"}


def label(flow: str, g: int) -> str:
    if flow == "twodim":
        s = flow_lanes(flow, g)[0]
        return f"Two-Dim-{s}x{s}"
    return f"{LABEL[flow]}-{g}"


def synth_pe(lanes_in: int, lanes_out: int, cfg: AcceleratorConfig) -> dict:
    pe = FlowPE(lanes_in=lanes_in, lanes_out=lanes_out, a_width=cfg.a_width,
                w_width=cfg.w_width, acc_width=cfg.acc_bits)
    name = pe.module_name
    path = write_verilog(pe, name, {"unit": "flow_pe", "lanes_in": lanes_in,
                                    "lanes_out": lanes_out, "acc_width": cfg.acc_bits},
                         OUT / name / f"{name}.v")
    t0 = time.perf_counter()
    rep = synthesize(path, name, OUT / name, timeout_s=1800)
    tot = rep["totals"]
    key = rep.get("primary_metric", "transistors")
    whole = tot[key]
    seq = tot.get("sequential_area_um2", 0.0) if key == "area_um2" else None
    return {"module": name, "metric": key, "whole": whole,
            "comb": (whole - seq) if seq is not None else None,
            "transistors": tot.get("transistors"), "depth": tot.get("logic_depth"),
            "seconds": round(time.perf_counter() - t0, 1)}


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def area_table(variants, cfg) -> list[dict]:
    base = synth_pe(1, 1, cfg)
    rows = []
    for flow, g in variants:
        L, K = flow_lanes(flow, g)
        r = synth_pe(L, K, cfg)
        over_whole = r["whole"] / base["whole"] - 1
        over_comb = r["comb"] / base["comb"] - 1 if r["comb"] is not None else None
        seed = SEED_AREA.get((flow, g))
        rows.append({"variant": label(flow, g), "flow": flow, "group": g, **r,
                     "overhead_comb": over_comb, "overhead_whole": over_whole,
                     "ops_area_comb": g / (1 + over_comb) if over_comb is not None else None,
                     "ops_area_whole": g / (1 + over_whole),
                     "seed_overhead": seed,
                     "seed_ops_area": g / (1 + seed / 100) if seed else None})
    unit = "µm² (OSU 0.18 µm)" if base["metric"] == "area_um2" else "transistors"
    print(f"\n### Area overhead on the dense MAC (000 Table 12.9), {cfg.a_width}-bit operands, "
          f"{cfg.acc_bits}-bit partial sums\n")
    print(f"Dense MAC: {base['comb']:.0f} {unit} datapath, {base['whole']:.0f} whole PE "
          f"({base['module']}).\n" if base["comb"] is not None else
          f"Dense MAC: {base['whole']:.0f} {unit} ({base['module']}).\n")
    print("| variant | PE module | datapath | overhead (datapath) | whole PE | overhead (whole "
          "PE) | seed (Table 12.9) | logic depth |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        comb = f"{r['comb']:.0f}" if r["comb"] is not None else "—"
        seed = f"{r['seed_overhead']:.2f} %" if r["seed_overhead"] is not None else "—"
        print(f"| {r['variant']} | {r['module']} | {comb} | {pct(r['overhead_comb'])} | "
              f"{r['whole']:.0f} | {pct(r['overhead_whole'])} | {seed} | {r['depth']} |")
    print("\n### Effective ops per area over the dense MAC (000 Table 12.10)\n")
    print("| variant | group | ops/area (datapath) | ops/area (whole PE) | seed (from Table "
          "12.9) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        oc = f"{r['ops_area_comb']:.2f}×" if r["ops_area_comb"] is not None else "—"
        so = f"{r['seed_ops_area']:.2f}×" if r["seed_ops_area"] is not None else "—"
        print(f"| {r['variant']} | {r['group']} | {oc} | {r['ops_area_whole']:.2f}× | {so} |")
    return [{"dense": base}] + rows


def throughput_table(variants, rows: int, cols: int, M: int, seed: int) -> list[dict]:
    from ftaccel.tb.flow import measured_cycles, mismatches, rtl_flow_matmul

    rng = np.random.default_rng(seed)
    out = []
    print(f"\n### Throughput boost measured in simulation ({rows}×{cols} array, M = {M}, "
          f"seed {seed})\n")
    print("Each layer is K×N with K = 2·R·l and N = 2·C·k (l, k: the group's rows and columns), "
          "so the dense layer takes g times the passes of the packed one; each pass also loads "
          "its weights (R cycles), which the boost pays for.\n")
    print("| variant | layer K×N | dense cycles | packed cycles | boost | ideal (g) | "
          "RTL = golden = numpy |")
    print("|---|---|---:|---:|---:|---:|---|")
    for flow, g in variants:
        cfg = AcceleratorConfig(rows=rows, cols=cols, flow=flow, flow_group=g, max_k=4096)
        gl, gk = layer_shape(flow, g)
        K, N = 2 * rows * gl, 2 * cols * gk
        W = prune(rng.integers(-128, 128, (K, N)), gl, gk)
        A = rng.integers(-128, 128, (M, K))
        runs = [rtl_flow_matmul(cfg, A, pack(W, a, b)) for a, b in ((1, 1), (gl, gk))]
        ok = all(not mismatches(r.recorded, r.golden) and np.array_equal(r.acc, A @ W)
                 for r in runs)
        cyc = [measured_cycles(r) for r in runs]
        assert cyc == [flow_cycle_count(cfg, M, K, N), flow_cycle_count(cfg, M, K, N, gl, gk)]
        out.append({"variant": label(flow, g), "K": K, "N": N, "dense": cyc[0],
                    "packed": cyc[1], "boost": cyc[0] / cyc[1], "ok": ok})
        print(f"| {label(flow, g)} | {K}×{N} | {cyc[0]} | {cyc[1]} | {cyc[0] / cyc[1]:.2f}× | "
              f"{g} | {'yes' if ok else 'NO'} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", default="8,16,64",
                    help="group sizes (powers of two; twodim uses the squares among them)")
    ap.add_argument("--large", action="store_true", help="also group 256 (slow: Superposition-256)")
    ap.add_argument("--no-sim", action="store_true", help="skip the simulated throughput table")
    ap.add_argument("--sim-groups", default="4,8,16", help="group sizes simulated")
    ap.add_argument("--sim-size", type=int, default=4, help="array rows = cols for simulation")
    ap.add_argument("--batch", type=int, default=64, help="M of the simulated layers")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    groups = [int(g) for g in args.groups.split(",")] + ([256] if args.large else [])

    def variants(gs):
        return [(f, g) for g in gs for f in ("shortened", "superposition", "twodim")
                if f != "twodim" or int(g ** 0.5) ** 2 == g]

    OUT.mkdir(parents=True, exist_ok=True)
    cfg = AcceleratorConfig()  # 8-bit operands, 26-bit partial sums (max_k 1024)
    t0 = time.perf_counter()
    results = {"area": area_table(variants(groups), cfg)}
    if not args.no_sim:
        sim_groups = [int(g) for g in args.sim_groups.split(",")]
        results["throughput"] = throughput_table(variants(sim_groups), args.sim_size,
                                                 args.sim_size, args.batch, args.seed)
    (OUT / "flow.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\n({time.perf_counter() - t0:.0f} s; JSON in {OUT / 'flow.json'})")


if __name__ == "__main__":
    main()
