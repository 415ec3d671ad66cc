"""Fig. 4.17 analogue (Ahmadilivani 2025 §4.3.1.5).

Accuracy loss, critical faults and network size of digits-mlp and digits-cnn protected at NVF
thresholds 0 … 50 % by splitting + LCU and by selective TMR, against the unprotected network, under
one bit flip in a random hidden neuron's output and under a permanent stuck-at in a random PE's
partial-sum register. Prints the tables, the 20 % point and the point whose protected share is
closest to the thesis' (MLP-7 17.86 %, LeNet-5 3.99 %) beside the thesis' figures, and writes a PNG
and JSON.

**Network size as accelerator area** (the area flow, :func:`synth.flow.synthesize`, OSU 0.18 µm
when installed, else transistors; one Yosys version and script): the thesis counts neurons, and
gives no silicon area (Ahmadilivani 2025 §4.3.1).  Two area figures per network, both with the
correction unit:

* *columns*: every hidden neuron in its own array column of R PEs (a spatial array sized for the
  network) — ``hidden neurons × R × A_PE`` — plus one LCU (LCU) or one word voter (TMR);
* *passes*: the generated R×C accelerator (fixed), scaled by the cycles the network takes over the
  unprotected network's (the extra columns of the copies become extra passes: the area needed to
  keep the unprotected throughput) — ``A_accelerator × cycles / cycles_none`` — plus the unit.

``A_PE`` and ``A_accelerator`` come from one synthesis of the plain R×C accelerator; the LCU
(:class:`rtl_gen.lcu.LCU`) and the word voter (:class:`rtl_gen.tmr.WordVoter`, Ahmadilivani 2025
§5.3.3) are synthesised stand-alone, registered, a_width bits: the TMR voter is not yet an option of
the top, so its stand-alone area is used for both, and the controller that reads the pairs / triples
back from the output buffer and writes the result (the same kind for both) is left out.  Results are
cached in ``OUTPUT/synth`` (delete it to synthesise again).

    python bench/bench_critical.py [--images 300] [--neuron-faults N] [--pe-faults 60]
                                   [--no-area] [-o bench_critical]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ftaccel.app.critical import fig417
from ftaccel.app.datasets import digits
from ftaccel.app.network import Network
from ftaccel.app.nvf import nvf
from ftaccel.config import AcceleratorConfig
from ftaccel.files import write_json

THESIS = {"digits-mlp": ("MLP-7", 17.86, 2.14, 15.15), "digits-cnn": ("LeNet-5", 3.99, 3.38, 3.84)}


def _ratio(a, b):
    return a / b if b > 1e-12 else float("inf") if a > 1e-12 else 1.0


def _cached(path: Path, make) -> dict:
    import json

    if path.is_file():
        return json.loads(path.read_text())
    rep = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, rep)
    return rep


def unit_areas(cfg: AcceleratorConfig, folder: Path) -> dict:
    """Areas for the size columns: one PE, the plain accelerator, the LCU and the word voter.

    Synthesised once per configuration and cached as JSON in ``folder``.
    """
    from ftaccel.rtl_gen.accelerator import generate
    from ftaccel.rtl_gen.emit import write_verilog
    from ftaccel.rtl_gen.lcu import LCU
    from ftaccel.rtl_gen.tmr import WordVoter
    from ftaccel.synth.flow import synthesize

    def metric(rep):
        return rep.get("primary_metric", "transistors")

    def plain():
        d = folder / cfg.name()
        gen = generate(cfg, d / "rtl")
        rep = synthesize(gen.verilog, gen.top, d)
        key = metric(rep)
        return {"metric": key, "pe": rep["denominators"]["pe"][key],
                "accelerator": rep["totals"][key], "config": cfg.name()}

    def unit(name, comp):
        def make():
            top = f"{name}_{cfg.a_width}"
            path = write_verilog(comp, top, {"unit": name, "width": cfg.a_width},
                                 folder / top / f"{top}.v")
            rep = synthesize(path, top, folder / top)
            return {"metric": metric(rep), "area": rep["totals"][metric(rep)]}
        return make

    t0 = time.perf_counter()
    base = _cached(folder / f"{cfg.name()}.json", plain)
    lcu = _cached(folder / f"lcu_{cfg.a_width}.json",
                  unit("lcu", LCU(width=cfg.a_width, registered=True)))
    voter = _cached(folder / f"word_voter_{cfg.a_width}.json",
                    unit("word_voter", WordVoter(width=cfg.a_width, registered=True)))
    assert base["metric"] == lcu["metric"] == voter["metric"]
    return {**base, "lcu": lcu["area"], "voter": voter["area"], "rows": cfg.rows,
            "seconds": round(time.perf_counter() - t0, 1)}


def add_area(rep: dict, areas: dict) -> None:
    """Per row and protection, the two area figures (see the module docstring)."""
    unit = {"none": 0.0, "lcu": areas["lcu"], "tmr": areas["voter"]}
    col = areas["rows"] * areas["pe"]
    for r in rep["rows"]:
        c0 = r["none"]["cycles"]
        for k in ("none", "lcu", "tmr"):
            x = r[k]
            x["area_columns"] = x["neurons"] * col + unit[k]
            x["area_passes"] = areas["accelerator"] * x["cycles"] / c0 + unit[k]
    rep["area"] = areas


def _three(points, model: str, key: str) -> str:
    return "/".join(f"{100 * x[model][key]:.2f}" for x in points)


def table(rep: dict) -> str:
    flips = rep["neuron_faults"] or "every (neuron, bit)"
    lines = [f"## {rep['model']}: {rep['images']} test images, clean accuracy "
             f"{100 * rep['base_accuracy']:.2f} %, {flips} neuron flips, "
             f"{rep['pe_faults']} PE stuck-at faults per point", "",
             "| NVF ≥ | critical | share | neurons none/LCU/TMR | flip loss none/LCU/TMR (pp) "
             "| flip critical none/LCU/TMR | PE loss none/LCU/TMR (pp) | cycles LCU/TMR vs none "
             + ("| area (columns) LCU/TMR vs none | area (passes) LCU/TMR vs none |"
                if "area" in rep else "|"),
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if "area" in rep else "")]
    for r in rep["rows"]:
        p = [r["none"], r["lcu"], r["tmr"]]
        lines.append(
            f"| {r['threshold']} % | {r['critical']} | {100 * r['share']:.1f} % | "
            f"{'/'.join(str(x['neurons']) for x in p)} | "
            f"{_three(p, 'neuron_flip', 'loss')} | {_three(p, 'neuron_flip', 'critical')} | "
            f"{_three(p, 'pe_stuck', 'loss')} | "
            f"{p[1]['cycles'] / p[0]['cycles']:.3f}/{p[2]['cycles'] / p[0]['cycles']:.3f} |"
            + ("".join(f" {p[1][a] / p[0][a]:.3f}/{p[2][a] / p[0][a]:.3f} |"
                       for a in ("area_columns", "area_passes")) if "area" in rep else ""))
    if "area" in rep:
        a = rep["area"]
        unit = "µm²" if a["metric"] != "transistors" else "transistors"
        lines += ["", f"Area ({a['metric']}, {unit}): PE {a['pe']:,.0f}, plain accelerator "
                      f"`{a['config']}` {a['accelerator']:,.0f}, LCU {a['lcu']:,.0f}, word voter "
                      f"{a['voter']:,.0f} (stand-alone, registered: the TMR voter is not an "
                      "option of the top yet)."]
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
        area = ""
        if "area_columns" in r["lcu"]:
            ac = 100 * (1 - r["lcu"]["area_columns"] / r["tmr"]["area_columns"])
            ap = 100 * (1 - r["lcu"]["area_passes"] / r["tmr"]["area_passes"])
            area = f", area {ac:.2f} % (columns) / {ap:.2f} % (passes) smaller"
        out.append(f"- {rep['model']} at {label}: loss reduction LCU {_ratio(none, lcu):.2f}×, "
                   f"TMR {_ratio(none, tmr):.2f}×; LCU network {size:.2f} % fewer neurons "
                   f"than TMR{area} (thesis {name} at 20 %: {red}× and {saving} % smaller)")
    return "\n".join(out)


def plot(reports: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    area = all("area" in rep for rep in reports)
    fig, ax = plt.subplots(3 + area, len(reports), figsize=(5 * len(reports), 10 + 3 * area),
                           squeeze=False)
    for j, rep in enumerate(reports):
        t = [r["threshold"] for r in rep["rows"]]
        for k, style in (("none", "k--"), ("lcu", "b-o"), ("tmr", "r-s")):
            ax[0, j].plot(t, [100 * r[k]["neuron_flip"]["loss"] for r in rep["rows"]], style,
                          label=k)
            ax[1, j].plot(t, [100 * r[k]["neuron_flip"]["critical"] for r in rep["rows"]],
                          style, label=k)
            ax[2, j].plot(t, [r[k]["neurons"] for r in rep["rows"]], style, label=k)
            if area:
                ax[3, j].plot(t, [r[k]["area_columns"] / r["none"]["area_columns"]
                                  for r in rep["rows"]], style, label=f"{k} (columns)")
                ax[3, j].plot(t, [r[k]["area_passes"] / r["none"]["area_passes"]
                                  for r in rep["rows"]], style, alpha=0.4,
                              label=f"{k} (passes)")
        ax[0, j].set_title(rep["model"])
        ax[0, j].set_ylabel("accuracy loss, pp (neuron flip)")
        ax[1, j].set_ylabel("critical faults, %")
        ax[2, j].set_ylabel("hidden neurons")
        ax[2 + area, j].set_xlabel("NVF threshold, %")
        if area:
            ax[3, j].set_ylabel("area / unprotected")
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
    ap.add_argument("--no-area", action="store_true",
                    help="leave the area columns out (no synthesis)")
    ap.add_argument("-o", "--output", default="bench_critical")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    areas = None
    for name in ("digits-mlp", "digits-cnn"):
        t0 = time.perf_counter()
        net = Network.builtin(name)
        cfg = net.default_config(max_k=1024)
        res = nvf(net.model, net.model.quantize_input(digits("train").images[:args.nvf_images]))
        test = digits("test").head(args.images)
        x = net.model.quantize_input(test.images)
        rep = fig417(net, x, test.labels, cfg, res, neuron_faults=args.neuron_faults,
                     pe_faults=args.pe_faults, seed=args.seed)
        if not args.no_area:
            areas = areas or unit_areas(cfg, out.resolve() / "synth")
            add_area(rep, areas)
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
