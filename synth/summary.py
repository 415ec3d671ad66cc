"""A few lines for a terminal from an area report.

Totals, the denominators, and each overhead unit beside its seed figure.  The complete tables
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
    den = report.get("denominators", {})
    parts = [f"design {design}"]
    if den.get("pe", {}).get(metric) is not None:
        parts.append(f"one PE {_num(den['pe'][metric], unit)} (× {den.get('pe_instances')})")
    if den.get("array", {}).get(metric) is not None:
        parts.append(f"array {_num(den['array'][metric], unit)}")
    lines.append(", ".join(parts))
    if totals.get("logic_depth") is not None:
        lines.append(f"logic depth {totals['logic_depth']} gate levels "
                     f"(`{totals.get('logic_depth_module')}`)")
    for row in report.get("beside_the_seeds", []):
        seed = row["seed"]
        if seed is None:  # a unit the seeds publish no figure for: its own share, and why
            unit = next((u for u in report.get("units", []) if u["unit"] == row["unit"]), {})
            where = "pe" if unit.get("inside_pe") else "design"
            value = unit.get(metric, {}).get(f"pct_of_{where}")
            shown = "—" if value is None else f"{value:.2f} %"
            lines.append(f"{row['unit']:<12} {shown:>8} of {_DENOMINATOR.get(where, where)}, "
                         f"no seed figure: {row.get('note', '')}")
            continue
        mine = row.get("project_pct", {})
        where = _DENOMINATOR.get(seed.get("denominator"), seed.get("denominator"))
        if seed.get("metric") == "delay":
            value = mine.get("logic_depth")
            shown = "—" if value is None else f"{value:+.1f} % logic depth"
            what = f"of {where}, seed {seed['text']} delay"
        else:
            value = mine.get(metric)
            shown = "—" if value is None else f"{value:.2f} %"
            what = f"of {where}, seed {seed['text']}"
        lines.append(f"{row['unit']:<12} {shown:>8} {what} ({seed['source']})")
    return lines
