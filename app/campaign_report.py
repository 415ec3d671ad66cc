"""The reports of a campaign: summaries, ``campaign.json``, ``campaign.md``, plots, trace.

Everything :func:`app.campaign.run_campaign` writes once the chunks are in:

* the outcome counts of every protection, each share with its sample size and 95 % Wilson
  interval (a sweep's trials at rate 0 are fault-free runs, reported as such and never
  counted as faults; ``repaired`` results are a class of their own, apart from critical SDC);
* the Sanity-Check coverage of error-caused mispredictions (Ozen 2023 Fig. 6.10);
* accuracy per site, per rate (Student t intervals over the trials) and, for a pinned chip
  and fresh chips, per chip;
* per-layer and per-PE vulnerability (register faults: critical-SDC share of the faults in
  each product layer and each PE, with intervals) and a heat map of the array;
* whether a register sample covers every site class (register × stuck-at / flip) with at
  least the Ahmadilivani 2025 Eq. 4.7 size, and the margin each class actually has;
* the rate tolerated at equal accuracy loss (Ozen 2023 Figs. 8.13/8.14), for an absolute
  loss (percentage points) and a relative one (per cent of the fault-free accuracy), with a
  crossing below the lowest or above the highest swept rate written as such.

Every file is written atomically (:mod:`ftaccel.files`); ``campaign.json`` last, so that its
presence means a complete report.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ftaccel.app.campaign_store import rows_to_csv, spec_hash
from ftaccel.app.netcampaign import (
    OUTCOMES,
    Context,
    faulted_nodes,
    margin_of,
    mean_ci,
    statistical_size,
    wilson,
)
from ftaccel.config import AcceleratorConfig
from ftaccel.files import atomic_write, write_json, write_text

__all__ = ["summarise", "tolerated_rates", "crossing", "ratio_of", "share", "write_reports",
           "write_plots", "to_markdown", "rate_text", "share_text", "LOSSES"]

#: Accuracy losses of the tolerated-rate tables: absolute (percentage points of accuracy)
#: and relative (per cent of the unprotected network's fault-free accuracy).
LOSSES = {"absolute": (1.0, 5.0), "relative": (1.0, 5.0)}

#: Outcome colours of the plots (one per class, the same in every figure).
COLORS = dict(zip(OUTCOMES, ("#9ecae1", "#fdd0a2", "#e6550d", "#31a354", "#756bb1",
                             "#fdae6b"), strict=True))


# -- statistics of one class -------------------------------------------------------------------

def share(k: int, n: int) -> dict:
    """``k`` of ``n``: the count, the sample size, the share and its 95 % Wilson interval."""
    return {"count": int(k), "n": int(n), "share": (k / n if n else None),
            "ci95": list(wilson(k, n))}


def share_text(s: dict | None) -> str:
    """``12/371 (3.2 %, 1.8–5.6 %)``; ``—`` for an empty sample."""
    if not s or not s["n"]:
        return "—"
    lo, hi = s["ci95"]
    return f"{s['count']}/{s['n']} ({100 * s['share']:.1f} %, {100 * lo:.1f}–{100 * hi:.1f} %)"


def _acc_text(v) -> str:
    if v is None or v[0] is None or v[0] != v[0]:
        return "—"
    m, lo, hi = v
    return f"{100 * m:.2f} % ({100 * lo:.2f}–{100 * hi:.2f})"


# -- summaries ---------------------------------------------------------------------------------

def summarise(spec: dict, ctx: Context, plan, rows: list[dict], *,
              classes: dict | None = None) -> dict:
    """Everything ``campaign.json`` holds besides the trace and the provenance.

    ``plan``: an :class:`app.campaign.Plan`; ``classes``: register faults, the population of
    every site class (:meth:`app.netcampaign.RegisterPopulation.class_sizes`).
    """
    prots = [q["name"] for q in spec["protections"]]
    n_img = len(ctx.x)
    base_cycles = ctx.cycles(next(p for p in ctx.protections if p.kind == "none"))
    clean = {}
    for p in ctx.protections:
        c = ctx.clean[p.name]
        cycles = ctx.cycles(p)
        clean[p.name] = {
            "accuracy": ctx.accuracy(c.logits), "false_alarms": c.alarms,
            "config": c.cfg.name(), "config_fields": c.cfg.to_dict(),
            "kind": p.kind, "cycles": cycles, "cycles_per_inference": cycles / n_img,
            "extra_cycles_per_inference": (cycles - base_cycles) / n_img,
            "hidden_neurons": _hidden(ctx.model_of(p)),
            "permuted": p.options is None and bool(ctx.permutations),
            **({"protection": p.info} if p.info else {})}
    out = {"spec": spec, "spec_hash": spec_hash(spec), "images": n_img,
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
    pin = spec["faults"].get("profile")
    if pin:
        out["chips"] = {"pinned": {"file": pin["file"], "fr_max": pin["fr_max"]},
                        "runs_on": spec["faults"]["chips"]}
    by_prot = {p: [r for r in rows if r["protection"] == p] for p in prots}
    base = {r["fault_id"]: r for r in by_prot.get("none", [])}
    register = spec["faults"]["model"] == "register"
    for p in prots:
        if not by_prot[p]:  # e.g. pe_bypass: only protections with the bypass hardware take part
            continue
        entry = _entry(spec, by_prot[p], base, register, ctx.base)
        out["protections"][p] = entry
    if register and classes:
        out["sample_coverage"] = sample_coverage(spec, plan, by_prot["none"], classes)
    if not register:
        out["tolerated_rate"] = tolerated_rates(out)
    return out


def _entry(spec: dict, all_rows: list[dict], base: dict, register: bool, cfg) -> dict:
    """One protection's summary (:func:`summarise`)."""
    free = [r for r in all_rows if r["outcome"] == "fault_free"]
    rs = [r for r in all_rows if r["outcome"] != "fault_free"]
    n = len(rs)
    counts = {o: sum(r["outcome"] == o for r in rs) for o in OUTCOMES}
    entry = {"faults": n, "fault_free_trials": len(free), "outcomes": counts,
             "shares": {o: (counts[o] / n if n else None) for o in OUTCOMES},
             "ci95": {o: wilson(counts[o], n) for o in OUTCOMES},
             "classes": {o: share(counts[o], n) for o in OUTCOMES},
             "accuracy": mean_ci([r["accuracy"] for r in rs]) if rs else None,
             "alarms": {a: sum(r["alarm"] == a for r in rs)
                        for a in ("spatial", "temporal", "both")}}
    # critical SDC: a top-1 prediction changed, silently, with no repair acting
    entry["critical_sdc"] = share(counts["critical"], n)
    # repaired results whose top-1 prediction changed (degraded, not silent corruption)
    entry["repaired_top1_changed"] = share(
        sum(r["outcome"] == "repaired" and r["top1_changed"] > 0 for r in rs), n)
    acted = [r for r in rs if r.get("acted") not in ("", None)]
    if acted:
        entry["acted"] = share(sum(int(r["acted"]) for r in acted), len(acted))
    # coverage of error-caused mispredictions (Ozen 2023 Fig. 6.10): among the faults that
    # change a top-1 prediction of the unprotected network, how many this one detects
    crit = [r for r in rs if base.get(r["fault_id"], {}).get("top1_changed", 0) > 0]
    if crit:
        det = sum(r["outcome"] == "detected" for r in crit)
        entry["misprediction_coverage"] = {"faults": len(crit), "detected": det,
                                           "share": det / len(crit),
                                           "ci95": wilson(det, len(crit))}
    entry["detected_without_output_change"] = sum(
        r["outcome"] == "detected" and r["logits_changed"] == 0 for r in rs)
    if register:
        sites = spec["faults"]["registers"]
        entry["by_site"] = {reg: {o: sum(r["outcome"] == o for r in rs if r["register"] == reg)
                                  for o in OUTCOMES} for reg in sites}
        entry["accuracy_by_site"] = {reg: mean_ci([r["accuracy"] for r in rs
                                                   if r["register"] == reg]) for reg in sites}
        entry["critical_by_site"] = {reg: share(
            sum(r["outcome"] == "critical" for r in rs if r["register"] == reg),
            sum(r["register"] == reg for r in rs)) for reg in sites}
        layers = list(dict.fromkeys(r["layer"] for r in rs))
        entry["by_layer"] = {layer: {
            "critical_sdc": share(sum(r["outcome"] == "critical" for r in rs
                                      if r["layer"] == layer),
                                  sum(r["layer"] == layer for r in rs)),
            "outcomes": {o: sum(r["outcome"] == o for r in rs if r["layer"] == layer)
                         for o in OUTCOMES}} for layer in layers}
        R, C = cfg.rows, cfg.cols
        n_pe = np.zeros((R, C), dtype=np.int64)
        k_pe = np.zeros((R, C), dtype=np.int64)
        for r in rs:
            n_pe[r["pe_row"], r["pe_col"]] += 1
            k_pe[r["pe_row"], r["pe_col"]] += r["outcome"] == "critical"
        entry["by_pe"] = {"faults": n_pe.tolist(), "critical": k_pe.tolist(),
                          "ci95": [[list(wilson(int(k_pe[i, j]), int(n_pe[i, j])))
                                    for j in range(C)] for i in range(R)]}
    else:
        entry["by_rate"] = _by_rate(spec, all_rows)
        chips = sorted({r.get("chip") for r in all_rows if r.get("chip")})
        if len(chips) > 1:
            entry["by_chip"] = {}
            for chip in chips:
                cr = [r for r in all_rows if r.get("chip") == chip]
                faulty = [r for r in cr if r["outcome"] != "fault_free"]
                entry["by_chip"][chip] = {
                    "accuracy": mean_ci([r["accuracy"] for r in faulty]) if faulty else None,
                    "critical_sdc": share(sum(r["outcome"] == "critical" for r in faulty),
                                          len(faulty)),
                    "by_rate": _by_rate(spec, cr)}
    return entry


def _by_rate(spec: dict, rows: list[dict]) -> dict:
    out = {}
    for rate in spec["sample"]["rates"]:
        rr = [r for r in rows if r["rate"] == rate]
        if not rr:
            continue
        m, lo, hi = mean_ci([r["accuracy"] for r in rr])
        faulty = [r for r in rr if r["outcome"] != "fault_free"]
        out[repr(rate)] = {
            "trials": len(rr), "fault_free": rate == 0, "accuracy": m, "ci95": [lo, hi],
            "outcomes": {o: sum(r["outcome"] == o for r in faulty) for o in OUTCOMES},
            "critical_sdc": share(sum(r["outcome"] == "critical" for r in faulty),
                                  len(faulty)),
            **({"bypass_rate": float(np.mean([r["bypass_rate"] for r in rr]))}
               if rr[0]["bypass_rate"] != "" else {})}
    return out


def sample_coverage(spec: dict, plan, rows: list[dict], classes: dict) -> dict:
    """Whether the sample holds at least the Eq. 4.7 size of every site class.

    Per class (register × stuck-at / flip): its population, the faults of the sample in it,
    the Eq. 4.7 size at the spec's margin and confidence (Ahmadilivani 2025 Eq. 4.7,
    p = 0.5), whether the sample reaches it, and the margin the class's own sample gives.
    An exhaustive campaign covers every class.
    """
    s = plan.sample
    margin = s.get("margin", 0.0)
    confidence = s.get("confidence", 0.95)
    out = []
    for (reg, kind), size in classes.items():
        k = sum(r["register"] == reg and (r["mode"] == "flip") == (kind == "flip")
                for r in rows)
        need = size if s["method"] == "exhaustive" else statistical_size(size, margin,
                                                                         confidence)
        out.append({"register": reg, "class": kind, "population": size, "sampled": k,
                    "eq47_size": need, "covered": k >= need,
                    "margin": margin_of(k, size, confidence)})
    return {"method": s["method"], "margin": margin, "confidence": confidence,
            "classes": out, "every_class_covered": all(c["covered"] for c in out)}


def _hidden(model) -> int:
    from ftaccel.golden.network import product_layers

    return int(sum(model.layers[i].matrix.shape[1] for i in product_layers(model)[:-1]))


# -- the rate tolerated at equal loss ----------------------------------------------------------

def crossing(pts, level: float) -> dict | None:
    """Where a mean-accuracy curve first falls to ``level``; None without points.

    ``pts``: ``(rate, accuracy)`` pairs.  Returns ``{"rate", "relation"}``:

    ``=``
        at a swept rate exactly, or log-linearly interpolated between two non-zero rates
        (Ozen 2023 Figs. 8.13/8.14 read their curves the same way);
    ``<``
        below ``rate``: the lowest non-zero swept rate is already past the level (with a
        point at rate 0 above it, the crossing lies between 0 and that rate, where a log
        scale cannot interpolate);
    ``>``
        above ``rate``, the highest swept rate: the level is never reached in the sweep;
    ``none``
        the fault-free accuracy (rate 0) itself is below the level: no rate is tolerated.
    """
    pts = sorted((float(r), float(a)) for r, a in pts)
    if not pts:
        return None
    prev = None
    for rate, acc in pts:
        if acc == level:
            return {"rate": rate, "relation": "="}
        if acc < level:
            if prev is None:
                return {"rate": 0.0, "relation": "none"} if rate == 0 else \
                    {"rate": rate, "relation": "<"}
            (r0, a0), r1, a1 = prev, rate, acc
            if r0 <= 0:
                return {"rate": r1, "relation": "<"}
            f = (a0 - level) / (a0 - a1)
            x = 10 ** (math.log10(r0) + f * (math.log10(r1) - math.log10(r0)))
            return {"rate": float(x), "relation": "="}
        prev = (rate, acc)
    return {"rate": pts[-1][0], "relation": ">"}


def _bounds(c: dict | None) -> tuple[float, float] | None:
    """The interval a crossing places the true rate in."""
    if c is None:
        return None
    r, rel = c["rate"], c["relation"]
    return {"=": (r, r), "<": (0.0, r), ">": (r, math.inf), "none": (0.0, 0.0)}[rel]


def ratio_of(c: dict | None, base: dict | None) -> dict | None:
    """A crossing's ratio to the baseline's, with the bound the two crossings allow.

    ``{"ratio", "relation"}`` (``=``, ``>`` or ``<``), or None when the two bounds leave the
    ratio open (both below the lowest rate, say) or the baseline tolerates no rate.
    """
    a, b = _bounds(c), _bounds(base)
    if a is None or b is None or b[1] == 0:
        return None
    lo = a[0] / b[1] if math.isfinite(b[1]) else 0.0
    hi = a[1] / b[0] if b[0] > 0 else math.inf
    if lo == hi:
        return {"ratio": lo, "relation": "="}
    if lo > 0 and not math.isfinite(hi):
        return {"ratio": lo, "relation": ">"}
    if lo == 0 and math.isfinite(hi):
        return {"ratio": hi, "relation": "<"}
    return None


def tolerated_rates(summary: dict, losses: dict | None = None) -> dict:
    """The rate at which each protection's mean accuracy has lost each of ``losses``.

    Against the unprotected network's fault-free accuracy ``ref`` (the same level for every
    protection: "at equal loss"): ``absolute`` losses are percentage points (level
    ``ref − loss/100``), ``relative`` ones per cent of ``ref`` (level ``ref·(1 − loss/100)``).
    Each entry holds the crossing (:func:`crossing`), its text and its ratio to the
    baseline's (:func:`ratio_of`).
    """
    losses = LOSSES if losses is None else losses
    ref = summary["fault_free"]["none"]["accuracy"]
    out: dict = {"reference_accuracy": ref}
    for kind, values in losses.items():
        out[kind] = {}
        for loss in values:
            level = ref - loss / 100 if kind == "absolute" else ref * (1 - loss / 100)
            row = {}
            for p, e in summary["protections"].items():
                pts = [(float(r), v["accuracy"]) for r, v in e.get("by_rate", {}).items()]
                row[p] = crossing(pts, level)
            base = row.get("none")
            out[kind][f"{loss:g}"] = {
                "level": level,
                **{p: {**(c or {}), "text": rate_text(c), "ratio": ratio_of(c, base)}
                   for p, c in row.items()}}
    return out


def rate_text(c: dict | None) -> str:
    """A crossing as text: ``0.0023``, ``< 0.001 (lowest swept rate)``, ``> 0.005 …``."""
    if c is None:
        return "—"
    r = c["rate"]
    return {"=": f"{r:.2g}", "<": f"< {r:.2g} (lowest non-zero swept rate)",
            ">": f"> {r:.2g} (highest swept rate)",
            "none": "none (fault-free accuracy already below)"}[c["relation"]]


def _ratio_text(x: dict | None) -> str:
    if not x:
        return ""
    rel = "" if x["relation"] == "=" else f"{x['relation']} "
    return f" ({rel}{x['ratio']:.2g}×)"


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
    write_json(folder / "campaign.json", jsonable(report))


def jsonable(x):
    """``x`` with numpy scalars as Python numbers and non-finite floats as None (JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def write_plots(folder: Path, report: dict) -> list[str]:
    """The campaign's PNG plots; returns the names of the files written.

    ``accuracy_vs_rate.png`` and ``outcomes_by_rate.png`` (sweeps), ``outcomes_by_site.png``
    and ``pe_heatmap.png`` (register faults).
    """
    import matplotlib  # heavy: only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    prots = report["protections"]
    model = report["spec"]["faults"]["model"]
    if any("by_rate" in e for e in prots.values()):
        made.append(_accuracy_plot(plt, folder, report))
        made.append(_outcomes_plot(plt, folder, report, "by_rate", "outcomes_by_rate.png"))
    if model == "register":
        made.append(_outcomes_plot(plt, folder, report, "by_site", "outcomes_by_site.png"))
        made.append(_heatmap(plt, folder, report))
    return made


def _accuracy_plot(plt, folder: Path, report: dict) -> str:
    prots = report["protections"]
    model = report["spec"]["faults"]["model"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rates = sorted({float(r) for e in prots.values() for r in e.get("by_rate", {})})
    log = model != "pe_bypass" and any(r > 0 for r in rates)
    for i, (p, e) in enumerate(prots.items()):
        series = [("", e.get("by_rate", {}))]
        if "by_chip" in e:
            series = [(f" ({c} chip{'s' if c == 'fresh' else ''})", v["by_rate"])
                      for c, v in e["by_chip"].items()]
        for j, (suffix, by_rate) in enumerate(series):
            pts = sorted((float(r), v) for r, v in by_rate.items())
            free = [v for r, v in pts if r == 0]
            pts = [(r, v) for r, v in pts if r > 0 or not log]
            if not pts:
                continue
            x = [r for r, _ in pts]
            if all("bypass_rate" in v for _, v in pts):
                x = [v["bypass_rate"] for _, v in pts]
            y = [100 * v["accuracy"] for _, v in pts]
            lo = [100 * v["ci95"][0] for _, v in pts]
            hi = [100 * v["ci95"][1] for _, v in pts]
            color = f"C{i % 10}"
            ax.plot(x, y, marker="o", color=color, linestyle=("-", "--")[j % 2],
                    label=p + suffix)
            ax.fill_between(x, lo, hi, alpha=0.15, color=color)
            if free and log:  # rate 0 cannot sit on a log axis: the fault-free level
                ax.axhline(100 * free[0]["accuracy"], color=color, linewidth=0.8,
                           linestyle=":")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel({"bit_errors": "bit-error rate", "pe_profile": "FR_max",
                   "pe_bypass": "PE bypass rate"}.get(model, "rate"))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{report['model']}: accuracy vs rate (95 % CI"
                 + ("; dotted: fault-free" if log and 0.0 in rates else "") + ")")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    name = _save(fig, folder / "accuracy_vs_rate.png")
    plt.close(fig)
    return name


def _outcomes_plot(plt, folder: Path, report: dict, key: str, name: str) -> str:
    """Stacked outcome shares per site or per (non-zero) rate, one panel per protection."""
    prots = {p: e for p, e in report["protections"].items() if key in e}
    fig, axes = plt.subplots(1, len(prots), figsize=(2.6 * len(prots) + 1, 3.8),
                             sharey=True, squeeze=False)
    for ax, (p, e) in zip(axes[0], prots.items(), strict=True):
        groups = {g: (v["outcomes"] if key == "by_rate" else v) for g, v in e[key].items()
                  if key != "by_rate" or not v["fault_free"]}
        labels = [g if key == "by_site" else f"{float(g):g}" for g in groups]
        bottom = np.zeros(len(groups))
        tot = np.array([max(1, sum(v.values())) for v in groups.values()])
        for o in OUTCOMES:
            v = np.array([g[o] for g in groups.values()]) / tot * 100
            ax.bar(labels, v, bottom=bottom, color=COLORS[o], label=o)
            bottom += v
        ax.set_title(p, fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    axes[0][0].set_ylabel("share of faults (%)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{report['model']}: outcomes per "
                 f"{'fault site' if key == 'by_site' else 'rate (trials at rate 0 left out)'}")
    out = _save(fig, folder / name)
    plt.close(fig)
    return out


def _heatmap(plt, folder: Path, report: dict) -> str:
    """Critical-SDC share of the faults in each PE, one array per protection."""
    prots = {p: e for p, e in report["protections"].items() if "by_pe" in e}
    fig, axes = plt.subplots(1, len(prots), figsize=(2.8 * len(prots) + 1.2, 3.2),
                             squeeze=False)
    im = None
    for ax, (p, e) in zip(axes[0], prots.items(), strict=True):
        n = np.asarray(e["by_pe"]["faults"], dtype=np.float64)
        k = np.asarray(e["by_pe"]["critical"], dtype=np.float64)
        share_pe = np.divide(100 * k, n, out=np.full_like(n, np.nan), where=n > 0)
        im = ax.imshow(share_pe, vmin=0, vmax=100, cmap="magma_r")
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("PE column", fontsize=8)
        ax.set_ylabel("PE row", fontsize=8)
        ax.tick_params(labelsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), label="critical SDC (% of the PE's faults)",
                     shrink=0.85)
    fig.suptitle(f"{report['model']}: critical SDC per PE")
    out = _save(fig, folder / "pe_heatmap.png", tight=False)
    plt.close(fig)
    return out


def _save(fig, path: Path, tight: bool = True) -> str:
    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight" if not tight else None)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return path.name


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def provenance_lines(prov: dict | None) -> list[str]:
    """The provenance of a report as Markdown list items."""
    if not prov:
        return []
    model = prov.get("model", {})
    data = prov.get("data", {})
    lines = [f"- model: {model.get('name')} (sha256 {model.get('sha256') or 'built-in'}); "
             f"data: {data.get('source')} (sha256 {data.get('sha256') or 'built-in'})",
             f"- engine: {prov.get('engine')}; tool: ftaccel {prov.get('version')}; "
             f"seed {prov.get('seed')}"]
    if prov.get("command"):
        lines.append(f"- command: `{prov['command']}`")
    return lines


def to_markdown(r: dict) -> str:
    """``campaign.md``: the campaign's summary tables from the ``campaign.json`` dict ``r``."""
    spec = r["spec"]
    cfg = AcceleratorConfig.from_dict(r["config"])
    register = spec["faults"]["model"] == "register"
    shown_keys = ", ".join(f"{k}={v}" for k, v in spec["faults"].items()
                           if k not in ("model", "profile"))
    lines = [f"# Fault campaign: {spec['campaign']['name']}", "",
             f"- model: {r['model']} on {r['images']} images; accelerator `{cfg.name()}`",
             f"- fault model: {spec['faults']['model']} ({shown_keys})"]
    lines += provenance_lines(r.get("provenance"))
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
    if r.get("chips"):
        ch = r["chips"]
        which = {"pinned": "the pinned chip only", "fresh": "fresh chips only",
                 "both": "both the pinned chip and fresh chips (the same trials each)"}
        lines.append(f"- chips: pinned profile `{ch['pinned']['file']}` (FR_max "
                     f"{ch['pinned']['fr_max']:g}; at another swept rate its per-PE rates are "
                     f"scaled to it); the trials run on {which[ch['runs_on']]}; fresh chips draw "
                     "every PE's rate U(0, rate) per trial (Shresthamali HAS §4.2)")
    for p, ff in r["fault_free"].items():
        info = ff.get("protection")
        if info and "permutation" in info:
            lines.append(f"- {p}: HAS permutation `{info['permutation']}`")
        elif info:
            src = (f"NVF ≥ {info['nvf_threshold']:g} %" if "nvf_threshold" in info
                   else f"`{info['protected']}`")
            lines.append(f"- {p}: {info.get('protected_neurons')} critical neurons ({src}); "
                         f"{info.get('original_neurons')} → {ff['hidden_neurons']} hidden "
                         "neurons")
    plan = r["plan"]
    if plan["method"] == "statistical":
        lines.append(f"- statistical sample (Ahmadilivani 2025 Eq. 4.7): {plan['size']:,} of "
                     f"{plan['population']:,} faults, error margin ±{100 * plan['margin']:g} % at "
                     f"{100 * plan['confidence']:g} % confidence")
    elif plan["method"] == "exhaustive":
        lines.append(f"- exhaustive: all {plan['size']:,} faults")
    else:
        lines.append(f"- sweep: rates {', '.join(f'{x:g}' for x in plan['rates'])}, "
                     f"{plan['trials']} trials each"
                     + ("; trials at rate 0 inject nothing: they are fault-free runs, not "
                        "counted as faults" if 0.0 in plan["rates"] else ""))
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
    lines += _outcome_table(r)
    lines += _coverage_table(r)
    if register:
        lines += _site_tables(r)
        lines += _layer_table(r)
        lines += _pe_table(r, cfg)
        lines += _sample_table(r)
    lines += _rate_tables(r)
    if "verify_rtl" in r:
        lines += _verify_lines(r["verify_rtl"])
    if r.get("plots"):
        lines += [""] + [f"![{p}]({p})" for p in r["plots"]]
    return "\n".join(lines) + "\n"


def _verify_lines(v: dict) -> list[str]:
    """The RTL check (``--verify-rtl``): agreement per fault kind, simulator, build vs run."""
    lines = ["", "## RTL check (`--verify-rtl`)", "",
             f"{v.get('agree', 0)} of {v.get('checked', 0)} runs agree with the fast model bit "
             f"for bit ({v.get('note', '')})."]
    if not v.get("simulator"):
        return lines
    builds = v.get("build_seconds", {})
    lines += ["", f"Simulator: {v['simulator']} ({v.get('simulator_reason', '')}); "
                  f"{len(builds)} build(s) in {sum(builds.values()):.1f} s (one per "
                  f"configuration, or its cache look-up), runs {v.get('run_seconds', 0):.1f} s "
                  f"on the RTL against {v.get('fast_seconds', 0):.3f} s on the fast model.", "",
              "| fault kind | runs | agree |", "|---|---:|---:|"]
    lines += [f"| {kind} | {e['checked']} | {e['agree']} |"
              for kind, e in v.get("by_kind", {}).items()]
    layers = sorted({", ".join(c["rtl_layers"]) or "(none)" for c in v.get("cases", [])})
    lines += ["", "Layers run on the RTL (the rest on the fast model): "
                  + "; ".join(layers) + "."]
    return lines


def _outcome_table(r: dict) -> list[str]:
    unit = "trials" if r["spec"]["faults"]["model"] != "register" else "faults"
    lines = ["", f"## Outcomes under faults ({unit}; every share with its sample size and "
                 "95 % Wilson interval)", "",
             "`repaired`: the protection acted (bypassed the faulty PEs, or corrected / voted "
             "disagreeing copies) and nothing of the fault got past it, but the output differs "
             "from the fault-free one; never counted as critical SDC. `critical`: a top-1 "
             "prediction changed silently.", "",
             "| protection | fault-free accuracy | " + " | ".join(OUTCOMES)
             + " | repaired, top-1 changed | accuracy under faults (95 % CI) |",
             "|---|---:|" + "---:|" * len(OUTCOMES) + "---:|---:|"]
    for p, e in r["protections"].items():
        lines.append(f"| {p} | {_pct(r['fault_free'][p]['accuracy'])} | "
                     + " | ".join(share_text(e["classes"][o]) for o in OUTCOMES)
                     + f" | {share_text(e['repaired_top1_changed'])} | "
                       f"{_acc_text(e['accuracy'])} |")
    free = {p: e["fault_free_trials"] for p, e in r["protections"].items()
            if e.get("fault_free_trials")}
    if free:
        lines += ["", f"Fault-free trials (rate 0, not in the shares): "
                      f"{', '.join(f'{p} {n}' for p, n in free.items())}."]
    return lines


def _coverage_table(r: dict) -> list[str]:
    cov = [(p, e["misprediction_coverage"]) for p, e in r["protections"].items()
           if "misprediction_coverage" in e and "sanity" in r["fault_free"][p]["kind"]]
    if not cov:
        return []
    lines = ["", "## Sanity-Check coverage", "",
             "Ozen 2023 Fig. 6.10: 100 % of error-caused mispredictions detected, no false alarm.",
             "",
             "| protection | faults changing a top-1 prediction (unprotected) | detected "
             "| coverage (95 % CI) | false alarms (fault-free) |",
             "|---|---:|---:|---:|---:|"]
    for p, c in cov:
        lines.append(f"| {p} | {c['faults']} | {c['detected']} | {_pct(c['share'])} "
                     f"({_pct(c['ci95'][0])}–{_pct(c['ci95'][1])}) | "
                     f"{r['fault_free'][p]['false_alarms']} |")
    return lines


def _site_tables(r: dict) -> list[str]:
    sites = [(p, e) for p, e in r["protections"].items() if e.get("accuracy_by_site")]
    if not sites:
        return []
    names = list(sites[0][1]["accuracy_by_site"])
    lines = ["", "## Per fault site", "",
             "Critical SDC (faults changing a top-1 prediction silently) and mean top-1 "
             "accuracy under a fault, per site (95 % intervals); product and sum are MAC "
             "logic, which PE bypass isolates.", "",
             "| site | " + " | ".join(f"{p}: critical | {p}: accuracy" for p, _ in sites) + " |",
             "|---|" + "---:|---:|" * len(sites)]
    for site in names:
        cells = []
        for _, e in sites:
            cells.append(share_text(e["critical_by_site"][site]))
            cells.append(_acc_text(e["accuracy_by_site"][site]))
        lines.append(f"| {site} | " + " | ".join(cells) + " |")
    return lines


def _layer_table(r: dict) -> list[str]:
    prots = [(p, e) for p, e in r["protections"].items() if e.get("by_layer")]
    if not prots:
        return []
    layers = list(dict.fromkeys(k for _, e in prots for k in e["by_layer"]))
    lines = ["", "## Per layer", "",
             "Critical-SDC share of the faults in each product layer (95 % Wilson interval); "
             "a transient flip hits one layer, a stuck-at fault every layer (`all`).", "",
             "| layer | " + " | ".join(p for p, _ in prots) + " |",
             "|---|" + "---:|" * len(prots)]
    for layer in layers:
        cells = [share_text(e["by_layer"].get(layer, {}).get("critical_sdc")) for _, e in prots]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return lines


def _pe_table(r: dict, cfg) -> list[str]:
    e = r["protections"].get("none")
    if not e or "by_pe" not in e:
        return []
    n = np.asarray(e["by_pe"]["faults"])
    k = np.asarray(e["by_pe"]["critical"])
    lines = ["", "## Per PE", "",
             "Unprotected network: critical SDC among the faults of each PE, "
             "`critical/faults`; every protection's array is in `pe_heatmap.png` and "
             "`campaign.json` (`by_pe`, with intervals).", "",
             "| PE row \\ column | " + " | ".join(str(c) for c in range(cfg.cols)) + " |",
             "|---:|" + "---:|" * cfg.cols]
    for i in range(cfg.rows):
        lines.append(f"| {i} | " + " | ".join(f"{k[i, j]}/{n[i, j]}" if n[i, j] else "—"
                                              for j in range(cfg.cols)) + " |")
    return lines


def _sample_table(r: dict) -> list[str]:
    sc = r.get("sample_coverage")
    if not sc:
        return []
    flips = any(c["class"] == "flip" for c in sc["classes"])
    if sc["every_class_covered"]:
        verdict = "The sample covers every site class with at least its Eq. 4.7 size."
    else:
        short = [f"{c['register']} {c['class']}" for c in sc["classes"] if not c["covered"]]
        verdict = (f"The sample does **not** cover every site class with its Eq. 4.7 size: "
                   f"{', '.join(short)} fall short (their own margin is in the last column); "
                   "the per-class shares above carry those wider intervals.")
    lines = ["", "## Sample per site class", "",
             f"Ahmadilivani 2025 Eq. 4.7 at ±{100 * sc['margin']:g} %, "
             f"{100 * sc['confidence']:g} % confidence, p = 0.5, per class "
             f"(register × {'stuck-at / flip' if flips else 'stuck-at'}). {verdict}", "",
             "| site | class | population | in the sample | Eq. 4.7 size | covered | margin "
             "of the class |", "|---|---|---:|---:|---:|---|---:|"]
    for c in sc["classes"]:
        lines.append(f"| {c['register']} | {c['class']} | {c['population']:,} | "
                     f"{c['sampled']:,} | {c['eq47_size']:,} | "
                     f"{'yes' if c['covered'] else 'no'} | ±{100 * c['margin']:.1f} % |")
    return lines


def _rate_tables(r: dict) -> list[str]:
    sweep = [(p, e) for p, e in r["protections"].items() if e.get("by_rate")]
    if not sweep:
        return []
    lines = []
    series = []
    for p, e in sweep:
        if "by_chip" in e:
            series += [(f"{p} ({c})", v["by_rate"]) for c, v in e["by_chip"].items()]
        else:
            series.append((p, e["by_rate"]))
    rates = sorted({float(x) for _, br in series for x in br})
    lines += ["", "## Per rate", "",
              "Mean top-1 accuracy over the trials (95 % CI, Student t) and critical SDC "
              "among the trials; rate 0 is the fault-free run.", "",
              "| rate | " + " | ".join(f"{p}: accuracy | {p}: critical" for p, _ in series)
              + " |", "|---:|" + "---:|---:|" * len(series)]
    for rate in rates:
        cells = []
        for _, br in series:
            v = br.get(repr(rate))
            if v is None:
                cells += ["—", "—"]
                continue
            cells.append(f"{100 * v['accuracy']:.2f} % ({100 * v['ci95'][0]:.2f}–"
                         f"{100 * v['ci95'][1]:.2f}), n={v['trials']}")
            cells.append("fault-free" if v["fault_free"] else share_text(v["critical_sdc"]))
        label = f"{rate:g}" + (" (fault-free)" if rate == 0 else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tol = r.get("tolerated_rate")
    if tol:
        seed = {"bit_errors": " (Ozen 2023 Figs. 8.13/8.14: AFD 20×, median 10–20× the baseline's "
                              "weight error rate)",
                "pe_bypass": " (Ozen 2023 Figs. 10.5–10.7)"}.get(r["spec"]["faults"]["model"], "")
        prots = list(r["protections"])
        ref = tol["reference_accuracy"]
        for kind, title in (("absolute", "an absolute loss, in percentage points of accuracy"),
                            ("relative", "a relative loss, in per cent of the fault-free "
                                         "accuracy")):
            lines += ["", f"## Rate tolerated at equal loss: {title}", "",
                      "The swept rate at which each protection's mean accuracy falls to the "
                      "level (the unprotected network's fault-free accuracy, "
                      f"{100 * ref:.2f} %, less the loss), and its ratio to the baseline's"
                      f"{seed}; log-linear between swept rates.", "",
                      "| loss | level | " + " | ".join(prots) + " |",
                      "|---|---:|" + "---:|" * len(prots)]
            for loss, row in tol[kind].items():
                unit = "pp" if kind == "absolute" else "%"
                cells = [row[p]["text"] + _ratio_text(row[p].get("ratio")) if p in row else "—"
                         for p in prots]
                lines.append(f"| {loss} {unit} | {100 * row['level']:.2f} % | "
                             + " | ".join(cells) + " |")
    return lines
