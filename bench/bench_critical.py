"""Fig. 4.17 analogue (001 §4.3.1.5).

Accuracy loss, critical faults and network size of digits-mlp and digits-cnn protected at NVF
thresholds 0 … 50 % by splitting + LCU and by selective TMR, against the unprotected network, under
one bit flip in a random hidden neuron's output and under a permanent stuck-at in a random PE's
partial-sum register. Prints the tables, the 20 % point and the point whose protected share is
closest to the thesis' (MLP-7 17.86 %, LeNet-5 3.99 %) beside the thesis' figures, and writes a PNG
and JSON.

    python bench/bench_critical.py [--images 300] [--neuron-faults N] [--pe-faults 60]
                                   [-o bench_critical]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ftaccel.files import write_json
from ftaccel.golden.datasets import digits
from ftaccel.golden.nvf import nvf
from ftaccel.tb.critical import fig417
from ftaccel.tb.network import Network

THESIS = {"digits-mlp": ("MLP-7", 17.86, 2.14, 15.15), "digits-cnn": ("LeNet-5", 3.99, 3.38, 3.84)}


def _ratio(a, b):
    return a / b if b > 1e-12 else float("inf") if a > 1e-12 else 1.0


def _three(points, model: str, key: str) -> str:
    return "/".join(f"{100 * x[model][key]:.2f}" for x in points)


def table(rep: dict) -> str:
    flips = rep["neuron_faults"] or "every (neuron, bit)"
    lines = [f"## {rep['model']}: {rep['images']} test images, clean accuracy "
             f"{100 * rep['base_accuracy']:.2f} %, {flips} neuron flips, "
             f"{rep['pe_faults']} PE stuck-at faults per point", "",
             "| NVF ≥ | critical | share | neurons none/LCU/TMR | flip loss none/LCU/TMR (pp) "
             "| flip critical none/LCU/TMR | PE loss none/LCU/TMR (pp) | cycles LCU/TMR vs none |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        p = [r["none"], r["lcu"], r["tmr"]]
        lines.append(
            f"| {r['threshold']} % | {r['critical']} | {100 * r['share']:.1f} % | "
            f"{'/'.join(str(x['neurons']) for x in p)} | "
            f"{_three(p, 'neuron_flip', 'loss')} | {_three(p, 'neuron_flip', 'critical')} | "
            f"{_three(p, 'pe_stuck', 'loss')} | "
            f"{p[1]['cycles'] / p[0]['cycles']:.3f}/{p[2]['cycles'] / p[0]['cycles']:.3f} |")
    return "\n".join(lines)


def compare(rep: dict) -> str:
    name, share, red, saving = THESIS[rep["model"]]
    rows = rep["rows"]
    at20 = next(r for r in rows if r["threshold"] == 20)
    near = min(rows, key=lambda r: abs(100 * r["share"] - share))
    out = []
    for label, r in (("NVF ≥ 20 %", at20), (f"NVF ≥ {near['threshold']} % "
                                             f"({100 * near['share']:.1f} % protected)", near)):
        none, lcu, tmr = (r[k]["neuron_flip"]["loss"] for k in ("none", "lcu", "tmr"))
        size = 100 * (1 - r["lcu"]["neurons"] / r["tmr"]["neurons"])
        out.append(f"- {rep['model']} at {label}: loss reduction LCU {_ratio(none, lcu):.2f}×, "
                   f"TMR {_ratio(none, tmr):.2f}×; LCU network {size:.2f} % smaller than TMR "
                   f"(thesis {name} at 20 %: {red}× and {saving} %)")
    return "\n".join(out)


def plot(reports: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(3, len(reports), figsize=(5 * len(reports), 10), squeeze=False)
    for j, rep in enumerate(reports):
        t = [r["threshold"] for r in rep["rows"]]
        for k, style in (("none", "k--"), ("lcu", "b-o"), ("tmr", "r-s")):
            ax[0, j].plot(t, [100 * r[k]["neuron_flip"]["loss"] for r in rep["rows"]], style,
                          label=k)
            ax[1, j].plot(t, [100 * r[k]["neuron_flip"]["critical"] for r in rep["rows"]],
                          style, label=k)
            ax[2, j].plot(t, [r[k]["neurons"] for r in rep["rows"]], style, label=k)
        ax[0, j].set_title(rep["model"])
        ax[0, j].set_ylabel("accuracy loss, pp (neuron flip)")
        ax[1, j].set_ylabel("critical faults, %")
        ax[2, j].set_ylabel("hidden neurons")
        ax[2, j].set_xlabel("NVF threshold, %")
        for a in ax[:, j]:
            a.grid(alpha=0.3)
            a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--nvf-images", type=int, default=500)
    ap.add_argument("--neuron-faults", type=int, default=None,
                    help="sampled neuron flips per point (default: every neuron and bit)")
    ap.add_argument("--pe-faults", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default="bench_critical")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in ("digits-mlp", "digits-cnn"):
        t0 = time.perf_counter()
        net = Network.builtin(name)
        cfg = net.default_config(max_k=1024)
        res = nvf(net.model, net.model.quantize_input(digits("train").images[:args.nvf_images]))
        test = digits("test").head(args.images)
        x = net.model.quantize_input(test.images)
        rep = fig417(net, x, test.labels, cfg, res, neuron_faults=args.neuron_faults,
                     pe_faults=args.pe_faults, seed=args.seed)
        rep["seconds"] = time.perf_counter() - t0
        reports.append(rep)
        print(table(rep), "\n", file=sys.stdout)
        print(compare(rep), f"\n({rep['seconds']:.0f} s)\n")
    write_json(out / "critical.json", reports)
    plot(reports, out / "fig417.png")
    print(f"wrote {out / 'critical.json'} and {out / 'fig417.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
