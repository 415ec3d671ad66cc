"""Unit attribution: which hardware unit each synthesised module's area belongs to.

Each module belongs to a unit (``pe``, ``array``, ``output_stage``, ``checksum``, ``median``,
``afd``, ``bypass``, ``lcu``, ``tmr``, ...): by the caller's ``units`` mapping (exact module
name or name prefix, longest wins) or else by :func:`default_unit`.  A module whose own unit
is a baseline one (:data:`BASELINE_UNITS`) but which sits inside an overhead unit's module
counts for that unit (e.g. the extra PE column of a checksum unit).

:func:`attribute_units` walks the instance tree of a deduplicated design
(:class:`synth.netlist.Dedup`) and sums every unit's area, then gives each overhead on three
denominators: one PE (the PE without any overhead unit inside it), the array (all baseline
PEs plus the array's own logic) and the whole design (everything, overheads included, as in
the seeds' "% of the accelerator").  An overhead *inside* a module (the bypass multiplexer in
each PE) is split off against a reference module synthesised beside the design.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ftaccel.synth.netlist import Dedup, natural_key
from ftaccel.units import area_patterns

__all__ = ["BASELINE_UNITS", "UNIT_PATTERNS", "attribute_units", "default_unit", "unit_of"]

#: Units that make up the plain accelerator; all others are overheads.
BASELINE_UNITS = ("top", "array", "pe", "output_stage")

#: Default unit of a module-name component (fullmatch, case-insensitive), first match wins:
#: every registered unit's pattern (:attr:`ftaccel.units.Unit.area`), in registry order.
UNIT_PATTERNS: tuple[tuple[str, str], ...] = area_patterns()

#: What each denominator of the overhead percentages is (written into the report).
DENOMINATOR_DEFINITIONS = {
    "pe": "one PE without any overhead unit inside it (area of unit 'pe' / PE count)",
    "array": "all PEs (baseline) plus the array's own logic (units 'pe' + 'array')",
    "design": "the whole synthesised design, overhead units included",
    "pct_of_pe": "units inside the PE: share per PE; others: whole unit / one PE",
    "reference": "an overhead inside the PE (bypass, double buffer) is the PE's figure minus "
                 "that of the same PE generated without it, synthesised beside the design "
                 "(nested: bypass first, then double buffer, down to the plain PE)",
}


def default_unit(name: str, top: str) -> str:
    """The unit a module belongs to, from its hierarchical name.

    ``top`` → ``"top"``; otherwise the *last* dot-separated component that names a known unit
    (``accelerator.median.s3`` → ``median``, ``pe.bypass`` → ``bypass``, ``pe_ws_a8w8p26`` →
    ``pe``); failing that the first component below the top (``accelerator.ctrl`` → ``ctrl``).
    """
    if name == top:
        return "top"
    parts = name.split(".")
    if parts[0] == top and len(parts) > 1:
        parts = parts[1:]
    for part in reversed(parts):
        for unit, pattern in UNIT_PATTERNS:
            if re.fullmatch(pattern, part, re.I):
                return unit
    return parts[0]


def unit_of(name: str, top: str, units: dict[str, str] | None) -> str:
    """The unit of module ``name``: the caller's mapping (exact, then longest prefix) first."""
    if units:
        if name in units:
            return units[name]
        prefixes = [p for p in units if name.startswith(p)]
        if prefixes:
            return units[max(prefixes, key=len)]
    return default_unit(name, top)


class _Tally:
    """Per-unit sums of one walk over the instance tree."""

    def __init__(self) -> None:
        self.area: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.instances: dict[str, int] = defaultdict(int)
        self.modules: dict[str, set[str]] = defaultdict(set)
        self.in_pe: dict[str, bool] = {}
        self.n_pe = 0


def _splits(dd: Dedup, own: Callable[[str, str], float], metrics: list[str],
            refs: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Modules whose own logic holds an overhead measured against a reference module.

    ``{module: {"pe": {metric: reference figure}, unit: {metric: the rest}}}``.
    """
    split: dict[str, dict[str, dict[str, float]]] = {}
    # References of one target nest (largest first): each unit is the step from the module
    # above it to its reference, and the last reference is the PE.
    above: dict[str, str] = {}
    for ref_unit, ref in refs.items():
        for target in ref["targets"]:
            upper = above.get(target, dd.rep[target])
            base = {m: own(m, ref["module"]) for m in metrics}
            entry = split.setdefault(target, {})
            entry[ref_unit] = {m: own(m, upper) - base[m] for m in metrics}
            entry["pe"] = base
            above[target] = ref["module"]
    return split


def _walk(dd: Dedup, top: str, units: dict[str, str] | None,
          own: Callable[[str, str], float], metrics: list[str],
          refs: dict[str, dict[str, Any]]) -> _Tally:
    """Sum every module's own figure into its unit, parents before children.

    ``state[module][(enclosing overhead unit, inside a PE)]`` counts the instances of a
    module under each kind of parent, so a baseline module inside an overhead unit (the
    sanity column's PEs) counts for that unit.
    """
    tally = _Tally()
    state: dict[str, dict[tuple[str | None, bool], int]] = defaultdict(lambda: defaultdict(int))
    state[top][(None, False)] = 1
    split = _splits(dd, own, metrics, refs)
    for name in dd.order:
        own_unit = unit_of(name, top, units)
        rep = dd.rep[name]
        for (inherited, inside_pe), n in sorted(state[name].items(), key=str):
            unit = own_unit if own_unit not in BASELINE_UNITS else (inherited or own_unit)
            if unit == "pe" and not inside_pe:
                tally.n_pe += n
            parts = split.get(name) if unit == "pe" else None
            for part, values in (parts or {unit: {m: own(m, rep) for m in metrics}}).items():
                for metric in metrics:
                    tally.area[part][metric] += n * values[metric]
                if part != unit:
                    tally.instances[part] += n
                    tally.modules[part].add(rep)
                    tally.in_pe[part] = True
            tally.instances[unit] += n
            tally.modules[unit].add(rep)
            if unit not in BASELINE_UNITS:
                # A unit with any part inside the PEs (bypass: the multiplexer in each PE, the
                # map bits beside the array) is given per PE.
                tally.in_pe[unit] = tally.in_pe.get(unit, False) or inside_pe
            child_key = (unit if unit not in BASELINE_UNITS else inherited,
                         inside_pe or unit == "pe")
            for child, k in dd.children[name].items():
                state[child][child_key] += n * k
    return tally


def _pct(a: float, b: float | None) -> float | None:
    return 100.0 * a / b if b else None


def _unit_row(unit: str, tally: _Tally, metrics: list[str],
              denominators: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    inside = bool(tally.in_pe.get(unit, False)) and tally.n_pe > 0
    baseline = unit in BASELINE_UNITS
    row: dict[str, Any] = {"unit": unit, "kind": "baseline" if baseline else "overhead",
                           "instances": tally.instances[unit],
                           "modules": sorted(tally.modules[unit], key=natural_key),
                           "inside_pe": inside}
    for metric in metrics:
        a = tally.area[unit][metric]
        per_pe = a / tally.n_pe if inside else a
        row[metric] = {
            "area": a,
            # A baseline unit is not an overhead on the PE; only the array's own parts
            # (PEs, skew registers) are shares of the array.
            "pct_of_pe": None if baseline else _pct(per_pe, denominators["pe"][metric]),
            "pct_of_array": (_pct(a, denominators["array"][metric])
                             if not baseline or unit in ("pe", "array") else None),
            "pct_of_design": _pct(a, denominators["design"][metric]),
        }
    return row


def attribute_units(dd: Dedup, top: str, units: dict[str, str] | None, *,
                    own: Callable[[str, str], float], depth: Callable[[str], int | None],
                    metrics: list[str], design: dict[str, float],
                    refs: dict[str, dict[str, Any]] | None = None
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Area of every unit and its share of one PE, the array and the design.

    Parameters
    ----------
    dd : Dedup
        The deduplicated design (instance tree, class representatives).
    top : str
        The top module.
    units : dict or None
        Module name or name prefix → unit, before :func:`default_unit`.
    own : callable
        ``own(metric, module)``: the module's own figure (submodules excluded), per instance.
    depth : callable
        ``depth(module)``: its logic depth, or None.
    metrics : list of str
        ``"transistors"`` and, with a cell library, ``"area_um2"``.
    design : dict
        The design's total per metric (the "% of design" denominator).
    refs : dict, optional
        Reference modules of overheads inside a module (:func:`synth.flow.synthesize`).

    Returns
    -------
    rows : list of dict
        One row per unit, baseline units first.
    denominators : dict
        ``pe_instances``, the ``pe``, ``array`` and ``design`` figures, and their definitions.
    """
    refs = refs or {}
    tally = _walk(dd, top, units, own, metrics, refs)
    n_pe = tally.n_pe
    pe_area = tally.area.get("pe", {})
    array_area = tally.area.get("array", {})
    denominators: dict[str, Any] = {
        "pe_instances": n_pe,
        "pe": {m: (pe_area.get(m, 0.0) / n_pe if n_pe else None) for m in metrics},
        "array": {m: (pe_area.get(m, 0.0) + array_area.get(m, 0.0) if n_pe else None)
                  for m in metrics},
        "design": dict(design),
        "definition": DENOMINATOR_DEFINITIONS,
    }
    order = sorted(tally.area, key=lambda u: (u not in BASELINE_UNITS,
                                              BASELINE_UNITS.index(u)
                                              if u in BASELINE_UNITS else 0, u))
    rows = [_unit_row(u, tally, metrics, denominators) for u in order]
    for ref_unit, ref in refs.items():
        d_ref = depth(ref["module"])
        d_with = max((depth(dd.rep[t]) or 0) for t in ref["targets"])
        for row in rows:
            if row["unit"] == ref_unit and d_ref:
                row["pe_depth"] = {"with": d_with, "without": d_ref,
                                   "delay_pct": 100.0 * (d_with - d_ref) / d_ref}
                row["reference_module"] = ref["module"]
    return rows, denominators
