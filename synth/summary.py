"""A few lines for a terminal from an area report.

Totals, the denominators, Fmax and power when measured (OpenSTA), and each overhead unit
beside its seed figures (area, power, delay).  The complete tables
stay in ``area.md`` / ``area.json`` (:mod:`synth.report`); this is what ``rtlgen synth`` and
``rtlgen demo`` print.
"""

from __future__ import annotations

from typing import Any

__all__ = ["headline"]

_DENOMINATOR = {"pe": "one PE", "array": "array", "design": "design"}


def _num(x: float | None, unit: str) -> str:
    return "—" if x is None else f"{x:,.0f} {unit}".rstrip()


def headline(report: dict[str, Any]) -> list[str]:
    """Lines summarising ``report`` (the dict :func:`synth.flow.synthesize` returns).

    The primary metric is the cell area in µm² when a cell library was used, else the CMOS
    transistor count; each seed row gives this design's percentage on the seed's denominator
    next to the seed's figure and its source.
    """
    metric = report.get("primary_metric", "transistors")
    unit = "µm²" if metric == "area_um2" else "transistors"
    totals = report.get("totals", {})
    lines = []
    design = _num(totals.get(metric), unit)
    if metric == "area_um2" and totals.get("transistors") is not None:
        design += f" ({totals['transistors']:,.0f} transistors)"
    den = report.get("denominators") or {}  # None when flattened
    parts = [f"design {design}"]
    if den.get("pe", {}).get(metric) is not None:
        parts.append(f"one PE {_num(den['pe'][metric], unit)} (× {den.get('pe_instances')})")
    if den.get("array", {}).get(metric) is not None:
        parts.append(f"array {_num(den['array'][metric], unit)}")
    lines.append(", ".join(parts))
    if totals.get("logic_depth") is not None:
        lines.append(f"logic depth {totals['logic_depth']} gate levels "
                     f"(`{totals.get('logic_depth_module')}`)")
    lines += _timing_lines(report.get("timing")) + _power_lines(report.get("power"))
    for row in report.get("beside_the_seeds", []):
        seed = row["seed"]
        if seed is None:  # a unit the seeds publish no figure for: its own share, and why
            unit = next((u for u in report.get("units", []) if u["unit"] == row["unit"]), {})
            where = "pe" if unit.get("inside_pe") else "design"
            value = unit.get(metric, {}).get(f"pct_of_{where}")
            shown = "—" if value is None else f"{value:.2f} %"
            pw = next((u for u in (report.get("power") or {}).get("units") or []
                       if u["unit"] == row["unit"]), {})
            power = (f" (power {pw[f'pct_of_{where}']:.2f} %)"
                     if pw.get(f"pct_of_{where}") is not None else "")
            lines.append(f"{row['unit']:<12} {shown:>8} of {_DENOMINATOR.get(where, where)}"
                         f"{power}, no seed figure: {row.get('note', '')}")
            continue
        mine = row.get("project_pct", {})
        where = _DENOMINATOR.get(seed.get("denominator"), seed.get("denominator"))
        if seed.get("metric") == "delay":
            value, depth = mine.get("delay"), mine.get("logic_depth")
            shown = (f"{value:+.2f} % delay" if value is not None else
                     "—" if depth is None else f"{depth:+.1f} % logic depth")
            what = f"of {where}, seed {seed['text']} delay"
        elif seed.get("metric") == "power":
            value = mine.get("power")
            shown = "—" if value is None else f"{value:.2f} %"
            what = f"of {where} power, seed {seed['text']}"
        else:
            value = mine.get(metric)
            shown = "—" if value is None else f"{value:.2f} %"
            what = f"of {where}, seed {seed['text']}"
        lines.append(f"{row['unit']:<12} {shown:>8} {what} ({seed['source']})")
    return lines


def _timing_lines(t: dict[str, Any] | None) -> list[str]:
    """Fmax and critical path; the MAC path; each overhead unit against it."""
    if not t:
        return []
    out = []
    d = t.get("design") or {}
    if d.get("path"):
        p = d["path"]
        out.append(f"Fmax {d['fmax_mhz']:.1f} MHz: critical path {d['min_period_ns']:.2f} ns "
                   f"in `{d['module']}` from `{p['start_net']}` ({p['kind']}; "
                   f"wire load {t['wire_load']['name']})")
    mac = t.get("mac_path")
    if mac:
        out.append(f"MAC path {mac['min_period_ns']:.2f} ns ({mac['fmax_mhz']:.1f} MHz) in "
                   f"`{mac['module']}`")
    parts = []
    for u in t.get("units") or []:
        if u["kind"] != "overhead":
            continue
        if u.get("added_pct") is not None:
            parts.append(f"{u['unit']} adds {u['added_pct']:+.2f} % to the PE")
        elif u.get("ratio_to_mac") is not None:
            fits = "fits" if u.get("fits_mac_cycle") else "EXCEEDS the MAC cycle"
            parts.append(f"{u['unit']} {u['ratio_to_mac']:.2f}× MAC ({fits})")
    if parts:
        out.append("units: " + "; ".join(parts))
    return out


def _power_lines(pw: dict[str, Any] | None) -> list[str]:
    """Total power, the clock and voltage, and where the activity came from."""
    if not pw:
        return []
    act = pw.get("activity") or {}
    if act.get("source") == "default":
        what = (f"DEFAULT activity {act.get('default_input_rate'):g} toggles/cycle at every "
                "module input, not a workload")
    else:
        what = (f"activity of {act['workload']}" if act.get("workload") else
                f"activity of {act.get('file')}, {act.get('cycles')} cycles")
    tot = pw["total"]
    line = (f"power {tot['total_mw']:.3f} mW at {pw['clock_mhz']:g} MHz, {pw['voltage_v']} V "
            f"(leakage {tot['leakage_mw'] * 1000:.3f} µW; {what})")
    den = pw.get("denominators")
    if den and den.get("pe_mw") is not None:
        line += f"; one PE {den['pe_mw']:.4f} mW"
    return [line]
