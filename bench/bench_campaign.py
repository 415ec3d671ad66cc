"""Speed of fault campaigns: the fast fault model against the RTL, side by side.

Prints fault-inferences per minute (one fault × one image) of digits-mlp over its whole test
split (540 images) on an 8×8 WS array with the fast fault model, in this process and on a
Dask LocalCluster of every core (``rtlgen campaign``'s runner), and the RTL's speed on the
same faults (Icarus, fault hooks, a few images; generation and build reported apart), and
their ratio.  Goals (issue 15): ≥ 10^5 fault-inferences per minute; ≥ 1000× the RTL.

    python bench/bench_campaign.py [--faults 200] [--rtl-faults 2] [--rtl-images 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from ftaccel.app.campaign import build_context, parse_spec, run_campaign
from ftaccel.app.netcampaign import RegisterPopulation, evaluate_register_fault, flip_cycle
from ftaccel.golden.fault_models import FastFaultEngine
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import LayerOptions, run


def spec(faults: int) -> dict:
    return parse_spec({
        "campaign": {"name": "bench", "seed": 1, "chunk": 25},
        "network": {"model": "digits-mlp"}, "data": {"source": "digits"},
        "accelerator": {"rows": 8, "cols": 8, "dataflow": "ws"},
        "protections": [{"kind": "none"}],
        "faults": {"model": "register"},
        # a margin that gives about `faults` items of the 151 M-fault population
        "sample": {"method": "statistical", "confidence": 0.95,
                   "margin": float(1.96 * 0.5 / np.sqrt(faults))}})


def options(ctx, cfg, desc):
    if desc["layer"] is None:
        f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], desc["mode"])
        return {i: LayerOptions(fault=f) for i in ctx.products}
    M, K, N = next(d[1:] for d in ctx.dims if d[0] == desc["layer"])
    n_pass = max(1, desc["tile"])
    cyc = flip_cycle(cfg, M, K, N, desc["register"], desc["row"], desc["col"],
                     desc["tile"] % n_pass, desc["vector"] % M)
    return {desc["layer"]: LayerOptions(fault=Fault(desc["row"], desc["col"], desc["register"],
                                                    desc["bit"], "flip", cyc))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--rtl-faults", type=int, default=2)
    ap.add_argument("--rtl-images", type=int, default=4)
    args = ap.parse_args()
    s = spec(args.faults)
    ctx = build_context(s)
    cfg = ctx.base
    n_img = len(ctx.x)
    pop = RegisterPopulation(cfg, ctx.dims)
    rng = np.random.default_rng(2)
    stuck = [pop.describe(int(i)) for i in rng.choice(pop.n_stuck, args.faults // 2,
                                                      replace=False)]
    flips = [pop.describe(int(i)) for i in rng.integers(pop.n_stuck, len(pop),
                                                        args.faults // 2)]
    print(f"digits-mlp, {n_img} test images, {cfg.name()}, fast fault model (1 process):")
    rates = {}
    for name, descs in (("stuck-at (every layer)", stuck), ("flip (one layer, resumed)",
                                                            flips)):
        t0 = time.perf_counter()
        for i, d in enumerate(descs):
            evaluate_register_fault(ctx, d, i)
        dt = time.perf_counter() - t0
        rates[name] = len(descs) * n_img / dt * 60
        print(f"  {name:28s} {len(descs):4d} faults in {dt:6.2f} s: "
              f"{rates[name]:12,.0f} fault-inferences/min")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = run_campaign(s, os.path.join(tmp, "c"), workers=None, progress=False)
        dt = time.perf_counter() - t0
        t = rep["timing"]
        print(f"  campaign runner, Dask {t['workers']} workers: {rep['items']} faults in "
              f"{t['seconds']:.1f} s ({dt:.1f} s with cluster start and reports): "
              f"{t['fault_inferences_per_minute']:,} fault-inferences/min")
    fast_rate = min(rates.values())

    from ftaccel.tb.accelerator import RTLEngine

    hooks = cfg.replace(fault_hooks=True)
    x = ctx.x[:args.rtl_images]
    with tempfile.TemporaryDirectory() as tmp:
        rtl = RTLEngine(hooks, cache_dir=os.path.join(tmp, "sim"))
        startup = rtl.start()
        t0 = time.perf_counter()
        for d in (stuck + flips)[:: max(1, len(stuck + flips) // args.rtl_faults)][
                :args.rtl_faults]:
            run(ctx.model, x, rtl, options=options(ctx, hooks, d))
        dt = time.perf_counter() - t0
    rtl_rate = args.rtl_faults * len(x) / dt * 60
    # the fast model on the same faults and images, for a like-for-like figure too
    t0 = time.perf_counter()
    for d in (stuck + flips)[:: max(1, len(stuck + flips) // args.rtl_faults)][
            :args.rtl_faults]:
        run(ctx.model, x, FastFaultEngine(cfg), options=options(ctx, cfg, d))
    dt_small = time.perf_counter() - t0
    print(f"RTL (Icarus, fault hooks): {args.rtl_faults} faults × {len(x)} images in "
          f"{dt:.1f} s (+ {startup:.1f} s generation and build): "
          f"{rtl_rate:,.1f} fault-inferences/min; per fault on {n_img} images: "
          f"{n_img / (rtl_rate / 60):,.0f} s")
    print(f"fast model on the same {args.rtl_faults} faults × {len(x)} images: "
          f"{dt_small * 1e3:.1f} ms ({dt / dt_small:,.0f}× the RTL)")
    print(f"ratio at the campaign's scale (540 images): {fast_rate / rtl_rate:,.0f}× "
          f"(goal ≥ 1000×); fast model {fast_rate:,.0f} fault-inferences/min "
          f"(goal ≥ 100,000)")


if __name__ == "__main__":
    main()
