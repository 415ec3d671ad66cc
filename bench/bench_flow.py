"""Flow-controlling MAC units.

Area beside Ozen 2023 Table 12.9, ops per area beside Table 12.10, and the throughput boost measured
in simulation (Ozen 2023 §12.5.2, §12.7.3).

**Area.**  Each PE variant (:class:`rtl_gen.flow.FlowPE`) is emitted on its own and synthesised
with :func:`synth.flow.synthesize` (one Yosys version, one script, the OSU 0.18 µm library when
installed).  The denominator is the dense MAC unit built the same way (``FlowPE`` with one
activation and one partial-sum lane: multiplier, adder, weight and partial-sum registers), so
the overhead is exactly the flow-control enhancement of Fig. 12.6.  Two figures per variant:

* *MAC datapath*: combinational cells only (registers excluded) — the seed measures "MAC
  units" and names the k partial-sum registers of superposition an *additional* storage
  overhead (Ozen 2023 §12.7.3), so this is the closer analogue of Table 12.9;
* *whole PE*: everything the array instantiates per PE (weight, extension and k partial-sum
  registers included; activations are broadcast per row, so no activation registers).

Effective ops per area (Table 12.10) = group size / (area of the variant / dense area): the
flow-controlling MAC does ``g`` times the work of the dense MAC on a packed layer (Ozen 2023
§12.7.3). The seed's Table 12.10 column is recomputed from its Table 12.9 the same way; that
reproduces every legible entry (Shortened-8 6.98, Two-Dim-4x4 9.77, Shortened-64 28.40, Two-Dim-8x8
28.28, Superposition-16 4.85, Superposition-64 6.20, Shortened-256 43.61, Superposition-256 6.87);
the "Superposition-8 12.12" line of the plain-text seed is Shortened-16's value (16 / 1.3204).

**Throughput.**  The same layer, dense and packed, on one flow-controlling array, simulated on
the RTL (Icarus): cycles from the first load to the last valid output, read off ``out_valid``.

**Network** (``--network``, needs the network runner ``golden.network``): digits-mlp with fc1
and fc2 complementary-sparse, pruned one-shot or trained in (Ozen 2023 §12.4.1), quantised and run
on the flow-controlling array (:class:`golden.flow.FlowEngine`; ``--network-rtl icarus`` also runs
the first variant on the RTL): accuracy and cycles beside the dense network.

**Designs** (``--designs 4``): the whole flow-controlling top against the plain WS
accelerator of the same size, the broadest denominator (skew registers on ``l`` lanes per row
and output-stage lanes for ``k`` partial sums per column included).

``python bench/bench_flow.py [--groups 8,16,64] [--large] [--no-sim] [--designs 4]
[--network]`` prints
Markdown and writes ``build/flow/flow.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ftaccel.config import AcceleratorConfig, flow_lanes
from ftaccel.golden.flow import flow_cycle_count, layer_shape, pack, prune
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.rtl_gen.flow import FlowPE
from ftaccel.synth.flow import synthesize

OUT = Path(__file__).resolve().parent.parent / "build" / "flow"

#: Ozen 2023 Table 12.9 (§12.7.3), 8-bit fixed point, area overhead (%) on the MAC unit.
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
    print(f"\n### Area overhead on the dense MAC (Ozen 2023 Table 12.9), {cfg.a_width}-bit "
          "operands, "
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
    print("\n### Effective ops per area over the dense MAC (Ozen 2023 Table 12.10)\n")
    print("| variant | group | ops/area (datapath) | ops/area (whole PE) | seed (from Table "
          "12.9) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        oc = f"{r['ops_area_comb']:.2f}×" if r["ops_area_comb"] is not None else "—"
        so = f"{r['seed_ops_area']:.2f}×" if r["seed_ops_area"] is not None else "—"
        print(f"| {r['variant']} | {r['group']} | {oc} | {r['ops_area_whole']:.2f}× | {so} |")
    return [{"dense": base}] + rows


def design_table(variants, size: int) -> list[dict]:
    """Whole generated designs.

    The flow-controlling top (array, skew registers on l lanes per row, output stage on C·k lanes)
    against the plain WS accelerator of the same size.
    """
    from ftaccel.rtl_gen.accelerator import generate
    from ftaccel.rtl_gen.flow import generate_flow

    def total(gen, name, units=None):
        rep = synthesize(gen.verilog, gen.top, OUT / name, units=units, timeout_s=1800)
        return rep["totals"][rep.get("primary_metric", "transistors")]

    plain = AcceleratorConfig(rows=size, cols=size)
    base = total(generate(plain, OUT / plain.name() / "rtl"), plain.name())
    out = []
    print(f"\n### Whole design over the plain {size}×{size} WS accelerator (array, skew, "
          "output stage)\n")
    print("| variant | design | overhead | ops/area (g / area ratio) |")
    print("|---|---:|---:|---:|")
    print(f"| plain WS accelerator | {base:.0f} | — | 1.00× |")
    for flow, g in variants:
        cfg = AcceleratorConfig(rows=size, cols=size, flow=flow, flow_group=g)
        a = total(generate_flow(cfg, OUT / cfg.name() / "rtl"), cfg.name(), {"flow_pe_": "pe"})
        out.append({"variant": label(flow, g), "design": a, "plain": base,
                    "overhead": a / base - 1, "ops_area": g * base / a})
        print(f"| {label(flow, g)} | {a:.0f} | {pct(a / base - 1)} | {g * base / a:.2f}× |")
    return out


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


def network_table(variants, size: int, epochs: int, rtl: str | None, seed: int) -> list[dict]:
    """digits-mlp (64-64-32-10) with fc1 and fc2 complementary-sparse.

    One-shot pruning of the trained model, and the sparsity trained in (Ozen 2023 §12.4.1,
    fine-tuning from the dense weights), each quantised (8-bit, calibrated on digits-train) and run
    on the flow-controlling array; accuracy on digits-test and cycles beside the dense network on
    the same array. Needs the network runner (``golden.network``, ``app.datasets``).
    """
    from importlib import resources

    from ftaccel.app.datasets import digits
    from ftaccel.app.network import prune_flow_layers
    from ftaccel.golden.flow import FlowEngine, is_packable
    from ftaccel.golden.network import Model, quantize, run

    with resources.files("ftaccel.app").joinpath("models", "digits-mlp.npz").open("rb") as fh:
        fmodel = Model.load(fh)
    train, test = digits("train"), digits("test")
    sparse_layers = (0, 1)

    def accuracy(qmodel, engine):
        x = qmodel.quantize_input(qmodel.prepare(test.images))
        inf = run(qmodel, x, engine)
        return float(np.mean(inf.predictions == test.labels)), sum(s.cycles for s in inf.layers)

    qdense = quantize(fmodel, train.images)
    out = []
    print(f"\n### digits-mlp with complementary-sparse fc1 and fc2 ({size}×{size} array, "
          f"digits-test, {len(test)} images)\n")
    print("| hardware | layers packed | weights kept (fc1, fc2) | accuracy, one-shot prune | "
          "accuracy, trained in | cycles | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for flow, g in variants:
        cfg = AcceleratorConfig(rows=size, cols=size, flow=flow, flow_group=g)
        shape = layer_shape(flow, g)
        acc_d, cyc_d = accuracy(qdense, FlowEngine(cfg, {}))
        # the sparsity trained in by the training path (app.train, int8-aware, needs JAX)
        trained = prune_flow_layers(fmodel, flow, {fmodel.layers[i].name: g
                                                   for i in sparse_layers},
                                    method="train", train=train, epochs=epochs, seed=seed,
                                    config=cfg)
        qtrained = quantize(trained, train.images)
        assert all(is_packable(qtrained.layers[i].weights, *shape) for i in sparse_layers)
        which = {i: g for i in sparse_layers}
        acc_1, _ = accuracy(qdense, FlowEngine(cfg, which))
        acc_t, cyc = accuracy(qtrained, FlowEngine(cfg, which))
        kept = [int(np.count_nonzero(qtrained.layers[i].weights)) for i in sparse_layers]
        if not out:
            print(f"| {label(flow, g)} | none (dense) | all | {acc_d:.2%} | — | {cyc_d} | 1.00× |")
        print(f"| {label(flow, g)} | fc1, fc2 | {kept[0]}, {kept[1]} | {acc_1:.2%} | "
              f"{acc_t:.2%} | {cyc} | {cyc_d / cyc:.2f}× |")
        row = {"variant": label(flow, g), "dense_accuracy": acc_d, "dense_cycles": cyc_d,
               "oneshot_accuracy": acc_1, "trained_accuracy": acc_t, "cycles": cyc,
               "kept": kept}
        if rtl and (flow, g) == variants[0]:
            from ftaccel.tb.flow import FlowRTLEngine

            acc_r, cyc_r = accuracy(qtrained, FlowRTLEngine(cfg, which, sim=rtl))
            row.update({"rtl_accuracy": acc_r, "rtl_cycles": cyc_r})
            print(f"| {label(flow, g)} on the RTL ({rtl}) | fc1, fc2 | {kept[0]}, {kept[1]} | — "
                  f"| {acc_r:.2%} | {cyc_r} | {cyc_d / cyc_r:.2f}× |")
        out.append(row)
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
    ap.add_argument("--designs", type=int, metavar="SIZE",
                    help="also synthesise whole SIZE×SIZE designs (flow top vs plain WS top)")
    ap.add_argument("--network", action="store_true",
                    help="digits-mlp with complementary-sparse layers (needs golden.network)")
    ap.add_argument("--network-rtl", metavar="SIM",
                    help="also run the first network variant on the RTL (icarus|verilator)")
    ap.add_argument("--epochs", type=int, default=60, help="sparse training epochs")
    args = ap.parse_args()
    groups = [int(g) for g in args.groups.split(",")] + ([256] if args.large else [])

    def variants(gs):
        return [(f, g) for g in gs for f in ("shortened", "superposition", "twodim")
                if f != "twodim" or int(g ** 0.5) ** 2 == g]

    OUT.mkdir(parents=True, exist_ok=True)
    cfg = AcceleratorConfig()  # 8-bit operands, 26-bit partial sums (max_k 1024)
    t0 = time.perf_counter()
    results = {"area": area_table(variants(groups), cfg)}
    if args.designs:
        results["designs"] = design_table(variants(groups), args.designs)
    if not args.no_sim:
        sim_groups = [int(g) for g in args.sim_groups.split(",")]
        results["throughput"] = throughput_table(variants(sim_groups), args.sim_size,
                                                 args.sim_size, args.batch, args.seed)
    if args.network:
        results["network"] = network_table(
            [("shortened", 4), ("superposition", 4), ("twodim", 4), ("shortened", 8),
             ("twodim", 16)], 8, args.epochs, args.network_rtl, args.seed)
    (OUT / "flow.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\n({time.perf_counter() - t0:.0f} s; JSON in {OUT / 'flow.json'})")


if __name__ == "__main__":
    main()
