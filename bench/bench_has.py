"""HAS on the array (Shresthamali HAS; README, Fault campaigns).

Accuracy of digits-mlp (and digits-cnn with --models) on an 8×8 WS array with a per-PE fault profile
(rates ~ U(0, FR_max)), flip-to-1 and bit flip in the partial sums, for FR_max ∈ {1e-3, 2e-3, 5e-3,
0.1, 0.2, 0.5}: unscheduled, NVF-guided placement, NVF placement + bypass of the worst PEs, and the
GA's permutation; all layers on the faulty array ("combined"), and at 5e-3 each layer alone.
Accuracy on the test images with fresh error draws (not the GA's own).  Beside the HAS report's ~55
% → ~85 % at 5e-3 (mnist32-cnn, c0). The GA defaults to a reduced budget (--generations 15 --runs
1); --published runs the HAS report's 100 generations × 3 runs.  Prints the tables, writes has.json
and has.png.

    python bench/bench_has.py [--published] [--images 300] [--fit-images 100] [-o bench_has]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ftaccel.app.datasets import digits
from ftaccel.app.has import Fitness, ga, nvf_placement, worst_bypass
from ftaccel.app.network import Network
from ftaccel.app.nvf import nvf
from ftaccel.files import write_json
from ftaccel.golden.fault_models import pe_profile
from ftaccel.golden.network import product_layers

FR_MAX = (1e-3, 2e-3, 5e-3, 0.1, 0.2, 0.5)
MODES = ("flip-to-1", "bitflip")


def point(net, cfg, cfg_b, res, fit_ds, test_ds, prof, mode, layers, args) -> dict:
    m = net.model
    xf, xt = m.quantize_input(fit_ds.images), m.quantize_input(test_ds.images)
    fresh = [(10_000 + args.seed, e) for e in range(args.test_draws)]
    fit = Fitness(m, xf, fit_ds.labels, cfg, prof, mode, layers, seed=args.seed)
    t0 = time.perf_counter()
    g = ga(fit, generations=args.generations, runs=args.runs, seed=args.seed)
    t_ga = time.perf_counter() - t0
    test = Fitness(m, xt, test_ds.labels, cfg, prof, mode, layers, seed=args.seed,
                   evaluations=1)
    nv = {i: nvf_placement(res.layer_values(i), prof, cfg.cols) for i in layers}
    bmap = worst_bypass(prof, args.bypass_share)
    test_b = Fitness(m, xt, test_ds.labels, cfg_b, prof, mode, layers, seed=args.seed,
                     evaluations=1, bypass_map=bmap)
    out = {}
    for name, f, perms in (("none", test, None), ("nvf", test, nv), ("nvf+bypass", test_b, nv),
                           ("ga", test, g.perms)):
        acc = f.accuracy(perms, seeds=fresh)
        out[name] = {"mean": float(acc.mean()), "std": float(acc.std())}
    out["ga_fitness"] = {"identity": g.identity_fitness, "best": g.fitness,
                         "fitness_calls": g.evaluations, "seconds": round(t_ga, 1)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits-mlp")
    ap.add_argument("--images", type=int, default=300, help="test images for the accuracy")
    ap.add_argument("--fit-images", type=int, default=100, help="images in the GA fitness")
    ap.add_argument("--test-draws", type=int, default=5)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--published", action="store_true", help="100 generations × 3 runs")
    ap.add_argument("--bypass-share", type=float, default=0.1)
    ap.add_argument("--fr-max", default=",".join(map(str, FR_MAX)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default="bench_has")
    args = ap.parse_args()
    if args.published:
        args.generations, args.runs = 100, 3
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    frs = [float(v) for v in args.fr_max.split(",")]
    report = {"settings": vars(args), "models": {}}
    for name in args.models.split(","):
        net = Network.builtin(name)
        cfg = net.default_config(max_k=1024)
        cfg_b = cfg.replace(bypass=True)
        res = nvf(net.model, net.model.quantize_input(digits("train").images[:500]))
        test = digits("test")
        fit_ds, test_ds = test.head(args.fit_images), test.head(args.images)
        prods = product_layers(net.model)
        rows = []
        print(f"## {name}: {args.generations} generations × {args.runs} runs, population 20, "
              f"fitness on {args.fit_images} images × 3 draws, accuracy on {args.images} images"
              f" × {args.test_draws} fresh draws\n")
        print("| FR_max | mode | layers | none | NVF placement | NVF + bypass "
              f"{100 * args.bypass_share:.0f} % | GA |\n|---|---|---|---|---|---|---|")
        for fr in frs:
            prof = pe_profile(cfg.rows, cfg.cols, fr, np.random.default_rng([args.seed, 7]))
            sets = [("combined", prods)]
            if fr == 5e-3:
                sets += [(net.model.layers[i].name, [i]) for i in prods]
            for mode in MODES:
                for label, layers in sets:
                    r = point(net, cfg, cfg_b, res, fit_ds, test_ds, prof, mode, layers, args)
                    r.update({"fr_max": fr, "mode": mode, "layers": label})
                    rows.append(r)
                    cells = " | ".join(f"{100 * r[k]['mean']:.1f} ± {100 * r[k]['std']:.1f}"
                                       for k in ("none", "nvf", "nvf+bypass", "ga"))
                    print(f"| {fr:g} | {mode} | {label} | {cells} |", flush=True)
        report["models"][name] = rows
        print("\n003 (mnist32-cnn, c0, FR_max 5e-3, flip-to-1 / bit flip): ~55 % → ~85 %\n")
    write_json(out / "has.json", report)
    plot(report, out / "has.png")
    print(f"wrote {out / 'has.json'} and {out / 'has.png'}")
    return 0


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["models"])
    fig, ax = plt.subplots(len(names), 2, figsize=(11, 4 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        rows = [r for r in report["models"][name] if r["layers"] == "combined"]
        for j, mode in enumerate(MODES):
            rs = [r for r in rows if r["mode"] == mode]
            fr = [r["fr_max"] for r in rs]
            for k, style in (("none", "k--o"), ("nvf", "g-^"), ("nvf+bypass", "m-v"),
                             ("ga", "b-s")):
                ax[i, j].errorbar(fr, [100 * r[k]["mean"] for r in rs],
                                  yerr=[100 * r[k]["std"] for r in rs], fmt=style, label=k,
                                  capsize=3)
            ax[i, j].set_xscale("log")
            ax[i, j].set_title(f"{name}, {mode}, all layers on the faulty array")
            ax[i, j].set_xlabel("FR_max")
            ax[i, j].set_ylabel("accuracy, %")
            ax[i, j].grid(alpha=0.3)
            ax[i, j].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
