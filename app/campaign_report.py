"""The reports of a campaign: summaries, ``campaign.json``, ``campaign.md``, plots, trace.

Everything :func:`app.campaign.run_campaign` writes once the chunks are in: the outcome counts
with 95 % Wilson intervals, the Sanity-Check coverage of error-caused mispredictions (000 Fig.
6.10), accuracy per site and per rate (Student t intervals), the rate tolerated at equal
accuracy loss (000 Figs. 8.13/8.14), the Markdown tables and the matplotlib plots.  Every file
is written atomically (:mod:`ftaccel.files`); ``campaign.json`` last, so that its presence
means a complete report.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ftaccel.app.campaign_store import rows_to_csv, spec_hash
from ftaccel.app.netcampaign import OUTCOMES, Context, faulted_nodes, mean_ci, wilson
from ftaccel.config import AcceleratorConfig
from ftaccel.files import atomic_write, write_json, write_text

__all__ = ["summarise", "tolerated_rates", "write_reports", "write_plots", "to_markdown"]


# -- summaries ---------------------------------------------------------------------------------

def summarise(spec: dict, ctx: Context, plan, rows: list[dict]) -> dict:
    """Everything ``campaign.json`` holds besides the trace (``plan``: an app.campaign.Plan)."""
    prots = [q["name"] for q in spec["protections"]]
    clean = {p.name: {"accuracy": ctx.accuracy(ctx.clean[p.name].logits),
                      "false_alarms": ctx.clean[p.name].alarms,
                      "config": ctx.clean[p.name].cfg.name(),
                      "hidden_neurons": _hidden(ctx.model_of(p)),
                      "permuted": p.options is None and bool(ctx.permutations),
                      **({"protection": p.info} if p.info else {})}
             for p in ctx.protections}
    out = {"spec": spec, "spec_hash": spec_hash(spec), "images": len(ctx.x),
           "model": ctx.model.name, "config": ctx.base.to_dict(), "plan": plan.sample,
           "population": plan.population, "items": len(plan.items), "chunks": plan.chunks,
           "fault_free": clean, "protections": {}}
    # only the array's dense/conv products take faults; say which nodes ran fault-free
    out["nodes"] = faulted_nodes(ctx.model)
    pm = spec["network"].get("permutation")
    if pm:
        out["permutation"] = {"file": pm["file"], "layers": {
            ctx.model.layers[i].name: p.tolist() for i, p in ctx.permutations.items()},
            "applies_to": [p.name for p in ctx.protections if p.options is None]}
    by_prot = {p: [r for r in rows if r["protection"] == p] for p in prots}
    base = {r["fault_id"]: r for r in by_prot.get("none", [])}
    for p in prots:
        rs = by_prot[p]
        n = len(rs)
        if not n:  # e.g. pe_bypass: only protections with the bypass hardware take part
            continue
        counts = {o: sum(r["outcome"] == o for r in rs) for o in OUTCOMES}
        entry = {"faults": n, "outcomes": counts,
                 "shares": {o: (counts[o] / n if n else None) for o in OUTCOMES},
                 "ci95": {o: wilson(counts[o], n) for o in OUTCOMES},
                 "accuracy": mean_ci([r["accuracy"] for r in rs]) if rs else None,
                 "alarms": {a: sum(r["alarm"] == a for r in rs)
                            for a in ("spatial", "temporal", "both")}}
        # coverage of error-caused mispredictions (000 Fig. 6.10): among the faults that
        # change a top-1 prediction of the unprotected network, how many this one detects
        crit = [r for r in rs if base.get(r["fault_id"], {}).get("top1_changed", 0) > 0]
        if crit:
            det = sum(r["outcome"] == "detected" for r in crit)
            entry["misprediction_coverage"] = {"faults": len(crit), "detected": det,
                                               "share": det / len(crit),
                                               "ci95": wilson(det, len(crit))}
        entry["detected_without_output_change"] = sum(
            r["outcome"] == "detected" and r["logits_changed"] == 0 for r in rs)
        if spec["faults"]["model"] == "register":
            entry["by_site"] = {reg: {o: sum(r["outcome"] == o for r in rs
                                             if r["register"] == reg) for o in OUTCOMES}
                                for reg in spec["faults"]["registers"]}
            entry["accuracy_by_site"] = {reg: mean_ci([r["accuracy"] for r in rs
                                                       if r["register"] == reg])
                                         for reg in spec["faults"]["registers"]}
        else:
            entry["by_rate"] = {}
            for rate in spec["sample"]["rates"]:
                rr = [r for r in rs if r["rate"] == rate]
                if not rr:
                    continue
                m, lo, hi = mean_ci([r["accuracy"] for r in rr])
                entry["by_rate"][repr(rate)] = {
                    "trials": len(rr), "accuracy": m, "ci95": [lo, hi],
                    "outcomes": {o: sum(r["outcome"] == o for r in rr) for o in OUTCOMES},
                    **({"bypass_rate": float(np.mean([r["bypass_rate"] for r in rr]))}
                       if rr[0]["bypass_rate"] != "" else {})}
        out["protections"][p] = entry
    if spec["faults"]["model"] != "register":
        out["tolerated_rate"] = tolerated_rates(out, [0.01, 0.05])
    return out


def _hidden(model) -> int:
    from ftaccel.golden.network import product_layers

    return int(sum(model.layers[i].matrix.shape[1] for i in product_layers(model)[:-1]))


def tolerated_rates(summary: dict, losses) -> dict:
    """Per accuracy loss (vs the unprotected fault-free accuracy).

    The rate at which each protection's mean accuracy falls to that loss (log-linear interpolation
    between swept rates; None if never within the sweep), and its ratio to the baseline's (000 Figs.
    8.13/8.14: "error rate tolerated at equal accuracy loss").
    """
    ref = summary["fault_free"]["none"]["accuracy"]
    out = {}
    for loss in losses:
        row = {}
        for p, e in summary["protections"].items():
            pts = sorted((float(r), v["accuracy"]) for r, v in e.get("by_rate", {}).items())
            row[p] = _crossing(pts, ref - loss)
        base = row.get("none")
        out[f"{loss:g}"] = {p: {"rate": r, "ratio": (r / base if r and base else None)}
                            for p, r in row.items()}
    return out


def _crossing(pts, level):
    prev = None
    for rate, acc in pts:
        if acc < level:
            if prev is None:
                return None
            (r0, a0), r1, a1 = prev, rate, acc
            if r0 <= 0:
                return r1
            f = (a0 - level) / (a0 - a1)
            return float(10 ** (math.log10(r0) + f * (math.log10(r1) - math.log10(r0))))
        prev = (rate, acc)
    return None


# -- reports -----------------------------------------------------------------------------------

def write_reports(folder: Path, report: dict, rows: list[dict]) -> None:
    """The trace (CSV, and Parquet with pyarrow), plots, ``campaign.md``, ``campaign.json``.

    ``campaign.json`` is written last: a folder holding it holds a complete report.
    """
    folder = Path(folder)
    rows = sorted(rows, key=lambda r: (r["fault_id"], r["protection"]))
    write_text(folder / "trace.csv", rows_to_csv(rows))
    report["trace"] = ["trace.csv"]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # the CSV holds the same rows
        pass
    else:
        table = pa.Table.from_pylist([{k: (None if v == "" else v) for k, v in r.items()}
                                      for r in rows])
        buf = io.BytesIO()
        pq.write_table(table, buf)
        with atomic_write(folder / "trace.parquet") as fh:
            fh.write(buf.getvalue())
        report["trace"].append("trace.parquet")
    report["plots"] = write_plots(folder, report)
    write_text(folder / "campaign.md", to_markdown(report))
    write_json(folder / "campaign.json", _jsonable(report))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def write_plots(folder: Path, report: dict) -> list[str]:
    """``accuracy_vs_rate.png`` (sweeps, 95 % bands) and ``outcomes_by_site.png`` (register).

    Returns the names of the files written.
    """
    import matplotlib  # heavy: only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    prots = report["protections"]
    if any("by_rate" in e for e in prots.values()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for p, e in prots.items():
            pts = sorted((float(r), v) for r, v in e.get("by_rate", {}).items())
            if not pts:
                continue
            x = [r for r, _ in pts]
            key = "bypass_rate" if all("bypass_rate" in v for _, v in pts) else None
            if key:
                x = [v[key] for _, v in pts]
            y = [100 * v["accuracy"] for _, v in pts]
            lo = [100 * v["ci95"][0] for _, v in pts]
            hi = [100 * v["ci95"][1] for _, v in pts]
            ax.plot(x, y, marker="o", label=p)
            ax.fill_between(x, lo, hi, alpha=0.2)
        model = report["spec"]["faults"]["model"]
        if model != "pe_bypass" and min(float(r) for e in prots.values()
                                        for r in e.get("by_rate", {}) or [1]) > 0:
            ax.set_xscale("log")
        ax.set_xlabel({"bit_errors": "bit-error rate", "pe_profile": "FR_max",
                       "pe_bypass": "PE bypass rate"}.get(model, "rate"))
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{report['model']}: accuracy vs rate (95 % CI)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        made.append(_save(fig, folder / "accuracy_vs_rate.png", atomic_write))
        plt.close(fig)
    if any("by_site" in e for e in prots.values()):
        sites = report["spec"]["faults"]["registers"]
        fig, axes = plt.subplots(1, len(prots), figsize=(2.6 * len(prots) + 1, 3.8),
                                 sharey=True, squeeze=False)
        colors = dict(zip(OUTCOMES, ("#9ecae1", "#fdd0a2", "#e6550d", "#31a354", "#756bb1"),
                          strict=True))
        for ax, (p, e) in zip(axes[0], prots.items(), strict=True):
            bottom = np.zeros(len(sites))
            for o in OUTCOMES:
                tot = np.array([max(1, sum(e["by_site"][s].values())) for s in sites])
                v = np.array([e["by_site"][s][o] for s in sites]) / tot * 100
                ax.bar(sites, v, bottom=bottom, color=colors[o], label=o)
                bottom += v
            ax.set_title(p, fontsize=9)
        axes[0][0].set_ylabel("share of faults (%)")
        axes[0][-1].legend(fontsize=7, loc="upper right")
        fig.suptitle(f"{report['model']}: outcomes per fault site")
        made.append(_save(fig, folder / "outcomes_by_site.png", atomic_write))
        plt.close(fig)
    return made


def _save(fig, path: Path, atomic_write) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return path.name


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def to_markdown(r: dict) -> str:
    """``campaign.md``: the campaign's summary tables from the ``campaign.json`` dict ``r``."""
    spec = r["spec"]
    cfg = AcceleratorConfig.from_dict(r["config"])
    lines = [f"# Fault campaign: {spec['campaign']['name']}", "",
             f"- model: {r['model']} on {r['images']} images; accelerator `{cfg.name()}`",
             f"- fault model: {spec['faults']['model']} "
             f"({', '.join(f'{k}={v}' for k, v in spec['faults'].items() if k != 'model')})"]
    if r.get("nodes"):
        nd = r["nodes"]
        free = [f"{', '.join(nd[k])} ({what})" for k, what in
                (("depthwise", "depthwise products"), ("host", "host operations")) if nd[k]]
        lines.append(f"- faults injected into the array's products of {', '.join(nd['faulted'])}"
                     + (f"; fault-free: {'; '.join(free)}" if free else ""))
    if r.get("permutation"):
        pm = r["permutation"]
        lines.append(f"- neuron permutation (HAS): `{pm['file']}`, layers "
                     f"{', '.join(pm['layers'])}; applied to {', '.join(pm['applies_to'])} "
                     "(LCU/TMR keep their own placement)")
    for p, ff in r["fault_free"].items():
        info = ff.get("protection")
        if info:
            src = (f"NVF ≥ {info['nvf_threshold']:g} %" if "nvf_threshold" in info
                   else f"`{info['protected']}`")
            lines.append(f"- {p}: {info.get('protected_neurons')} critical neurons ({src}); "
                         f"{info.get('original_neurons')} → {ff['hidden_neurons']} hidden "
                         "neurons")
    plan = r["plan"]
    if plan["method"] == "statistical":
        lines.append(f"- statistical sample (001 Eq. 4.7): {plan['size']:,} of "
                     f"{plan['population']:,} faults, error margin ±{100 * plan['margin']:g} % at "
                     f"{100 * plan['confidence']:g} % confidence")
    elif plan["method"] == "exhaustive":
        lines.append(f"- exhaustive: all {plan['size']:,} faults")
    else:
        lines.append(f"- sweep: rates {', '.join(f'{x:g}' for x in plan['rates'])}, "
                     f"{plan['trials']} trials each")
    if r.get("chunks_rejected"):
        lines.append(f"- {len(r['chunks_rejected'])} chunk(s) on disk did not verify and were "
                     "computed again (`chunks_rejected` in campaign.json; the files are kept "
                     "in `chunks/rejected/`)")
    t = r.get("timing", {})
    if t and not t["chunks_run"]:
        lines.append(f"- resumed: all {t['chunks_resumed']} chunks were already done")
    elif t:
        lines.append(f"- time: {t['seconds']:.1f} s on {t['workers'] or 'this'} "
                     f"{'worker(s)' if t['workers'] else 'process'}; "
                     f"{t['fault_inferences_per_minute']:,} fault-inferences per minute")
        if t.get("runner"):
            lines.append(f"- runner: {t['runner']} ({t.get('runner_reason', '')})")
    lines += ["", "| protection | fault-free accuracy | " + " | ".join(OUTCOMES)
              + " | mean accuracy (95 % CI) |", "|---|---:|" + "---:|" * len(OUTCOMES) + "---:|"]
    for p, e in r["protections"].items():
        acc = e["accuracy"]
        acc_s = "—" if acc is None else f"{100 * acc[0]:.2f} % ({100 * acc[1]:.2f}–" \
                                        f"{100 * acc[2]:.2f})"
        lines.append(f"| {p} | {_pct(r['fault_free'][p]['accuracy'])} | "
                     + " | ".join(f"{e['outcomes'][o]} ({_pct(e['shares'][o])})"
                                  for o in OUTCOMES) + f" | {acc_s} |")
    cov = [(p, e["misprediction_coverage"]) for p, e in r["protections"].items()
           if "misprediction_coverage" in e and r["fault_free"][p]["config"] !=
           r["fault_free"]["none"]["config"] and "_cs" in r["fault_free"][p]["config"]]
    if cov:
        lines += ["", "Sanity-Check (000 Fig. 6.10: 100 % of error-caused mispredictions "
                      "detected, no false alarm):", "",
                  "| protection | faults changing a top-1 prediction (unprotected) | detected "
                  "| coverage (95 % CI) | false alarms (fault-free) |",
                  "|---|---:|---:|---:|---:|"]
        for p, c in cov:
            lines.append(f"| {p} | {c['faults']} | {c['detected']} | {_pct(c['share'])} "
                         f"({_pct(c['ci95'][0])}–{_pct(c['ci95'][1])}) | "
                         f"{r['fault_free'][p]['false_alarms']} |")
    sites = [(p, e["accuracy_by_site"]) for p, e in r["protections"].items()
             if e.get("accuracy_by_site")]
    if sites:
        names = list(sites[0][1])
        lines += ["", "Mean top-1 accuracy under a fault, per site (95 % CI); product and sum "
                      "are MAC logic, which PE bypass isolates:", "",
                  "| site | " + " | ".join(p for p, _ in sites) + " |",
                  "|---|" + "---:|" * len(sites)]
        for site in names:
            cells = []
            for _, by in sites:
                m, lo, hi = by[site]
                cells.append("—" if m != m else f"{100 * m:.2f} % ({100 * lo:.2f}–"
                                                 f"{100 * hi:.2f})")
            lines.append(f"| {site} | " + " | ".join(cells) + " |")
    sweep = [(p, e["by_rate"]) for p, e in r["protections"].items() if e.get("by_rate")]
    if sweep:
        rates = sorted({float(x) for _, br in sweep for x in br})
        lines += ["", "Mean top-1 accuracy per rate (95 % CI over the trials):", "",
                  "| rate | " + " | ".join(p for p, _ in sweep) + " |",
                  "|---:|" + "---:|" * len(sweep)]
        for rate in rates:
            cells = []
            for _, br in sweep:
                v = br.get(repr(rate))
                cells.append("—" if v is None else f"{100 * v['accuracy']:.2f} % "
                             f"({100 * v['ci95'][0]:.2f}–{100 * v['ci95'][1]:.2f})")
            lines.append(f"| {rate:g} | " + " | ".join(cells) + " |")
    if "tolerated_rate" in r:
        seed = {"bit_errors": " (000 Figs. 8.13/8.14: AFD 20×, median 10–20× the baseline's "
                              "weight error rate)",
                "pe_bypass": " (000 Figs. 10.5–10.7)"}.get(spec["faults"]["model"], "")
        lines += ["", f"Rate at which the mean accuracy has lost 1 % / 5 % of the unprotected "
                      f"fault-free accuracy, and its ratio to the baseline's{seed}:", "",
                  "| accuracy loss | " + " | ".join(r["protections"]) + " |",
                  "|---|" + "---:|" * len(r["protections"])]
        for loss, row in r["tolerated_rate"].items():
            cells = []
            for p in r["protections"]:
                v = row.get(p, {})
                cells.append("—" if v.get("rate") is None else f"{v['rate']:.2g}" + (
                    f" ({v['ratio']:.2g}×)" if v.get("ratio") else ""))
            lines.append(f"| {100 * float(loss):g} % | " + " | ".join(cells) + " |")
    if "verify_rtl" in r:
        v = r["verify_rtl"]
        lines += ["", f"RTL check: {v.get('agree', 0)} of {v.get('checked', 0)} runs agree "
                      f"with the fast model ({v.get('note', '')})"]
    if r.get("plots"):
        lines += [""] + [f"![{p}]({p})" for p in r["plots"]]
    return "\n".join(lines) + "\n"
