"""Power and timing beside the area: the other half of every seed table (README, Timing and power).

:func:`analyse` is called by :func:`synth.flow.synthesize` with ``timing``/``power`` after
the Yosys runs: it times (and powers) every distinct module's mapped netlist with OpenSTA
(:mod:`synth.sta`), links the whole design for one more timing run when it is small enough,
and builds the report's ``timing`` and ``power`` sections:

``timing``
    ``modules`` (per distinct module: worst path, worst register-to-register path, Fmax),
    ``design`` (critical path, its module, Fmax, how it was found), ``units`` (each unit's
    critical path as a ratio to the PE's MAC path; for a unit inside the PE the delay it
    adds, against the PE generated without it), the boundary model and the wire load.
``power``
    ``modules`` (per instance and in total: internal, switching, leakage), ``units`` (the
    same walk as the area: shares of one PE, the array and the design), ``total``, the
    clock, the voltage and the activity (default, marked as such, or the workload's).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from ftaccel.errors import ConfigError
from ftaccel.synth import sta
from ftaccel.synth.activity import Activity, default_activity
from ftaccel.synth.netlist import Dedup
from ftaccel.synth.units import attribute_units, unit_of

__all__ = ["POWER_METRICS", "analyse", "check_clock"]

#: Power figures attributed to units (mW, per instance of a module before the walk).
POWER_METRICS = ["total_mw", "dynamic_mw", "leakage_mw"]


def check_clock(clock_mhz: float | None) -> float:
    """The power analysis clock in MHz (default :data:`synth.sta.DEFAULT_CLOCK_MHZ`)."""
    if clock_mhz is None:
        return sta.DEFAULT_CLOCK_MHZ
    if (not isinstance(clock_mhz, int | float) or isinstance(clock_mhz, bool)
            or not math.isfinite(clock_mhz) or not 0 < clock_mhz <= 10_000):
        raise ConfigError("clock_mhz", clock_mhz, "a clock frequency in MHz above 0, at most "
                                                  "10000")
    return float(clock_mhz)


def _voltage(liberty: Path) -> float | None:
    m = re.search(r"nom_voltage\s*:\s*([0-9.]+)", Path(liberty).read_text(errors="replace"))
    return float(m.group(1)) if m else None


def analyse(*, dd: Dedup, top: str, flat: bool, units: dict[str, str] | None,
            refs: dict[str, dict[str, Any]], stems: dict[str, str], work: Path,
            liberty: Path, liberty_local: str, cells: dict[str, int], timing: bool,
            power: bool, activity: Activity | None, clock_mhz: float | None,
            wire_load: bool, jobs: int, timeout_s: float,
            timed_area: dict[str, float] | None = None,
            area: float | None = None) -> dict[str, Any]:
    """Timing and power sections of the report (see the module docstring).

    Parameters
    ----------
    dd, top, flat, units, refs
        The deduplicated design, its top, flattening, the unit mapping and the reference
        modules, as :func:`synth.flow.synthesize` used them.
    stems : dict
        Module → file stem of its Yosys outputs in ``work`` (``<stem>_mapped.v``).
    liberty, liberty_local
        The cell library and its copy's name in ``work``.
    cells : dict
        Module → standard cells per instance (the linked run's size check).
    timing, power : bool
        What to report.
    activity : Activity or None
        Switching activity (default: :func:`synth.activity.default_activity`).
    clock_mhz : float or None
        Clock of the power analysis (default :data:`synth.sta.DEFAULT_CLOCK_MHZ`); timing is
        reported as a minimum period, independent of it.
    wire_load : bool
        Use the stated wire-load model (:data:`synth.sta.WIRE_LOAD`), else pin loads only.
    timed_area, area : optional
        Module → µm² per instance of the timed (buffered) netlist, and the design's area from
        the area flow: the report states what the buffers add.
    """
    t0 = time.monotonic()
    clock = check_clock(clock_mhz)
    period = 1000.0 / clock
    activity = activity or default_activity()
    boundary = sta.calibrate(liberty_local, work, timeout_s=min(timeout_s, 120))
    wire_lib = None
    if wire_load:
        sta.wire_load_library(work / "wire_load.lib")
        wire_lib = "wire_load.lib"
    template = sta.TEMPLATE_PATH.read_text()
    modules = [top] if flat else list(stems)
    # A reference PE (without bypass / double buffer) is not in the simulated design: it takes
    # the activity of the PE it stands beside (the same ports and registers).
    alias = {ref["module"]: dd.rep[ref["targets"][0]] for ref in refs.values()}
    jobs_kw = []
    for module in modules:
        per_net = activity.of(alias.get(module, dd.rep.get(module, module)))
        jobs_kw.append({
            "stem": stems[module], "module": module, "work": work, "liberty": liberty_local,
            "boundary": boundary, "period": period, "wire_lib": wire_lib,
            "template": template, "power": power, "timeout_s": timeout_s,
            "activity": sta.activity_lines(per_net, activity.rate, activity.duty)})
    results = dict(zip(modules, sta.time_modules(jobs_kw, jobs), strict=True))
    instances = {rep: (1 if flat else sum(dd.instances[m] for m in dd.members[rep]))
                 for rep in (dd.members if not flat else [top])}
    out: dict[str, Any] = {}
    netlist: dict[str, Any] = {
        "source": f"the area flow's liberty mapping plus ABC fanout buffering (buffer -N "
                  f"{sta.TIMED_MAX_FANOUT}), area.ys section 'timed'"}
    if timed_area:
        total = sum(timed_area.get(r, 0.0) * n for r, n in instances.items())
        netlist["area_um2"] = total
        if area:
            netlist["buffers_pct_of_area"] = round(100.0 * (total - area) / area, 3)
    common = {"clock_mhz": clock, "period_ns": period, "boundary": boundary.describe(),
              "netlist": netlist,
              "wire_load": dict(sta.WIRE_LOAD) if wire_load else
              {"name": "none", "source": "pin capacitances only, no wire capacitance"},
              "tool": {"opensta": sta.sta_version(), **sta.template_record(),
                       "liberty": str(liberty)}}
    if timing:
        out["timing"] = _timing(dd, top, flat, units, refs, results, instances, work, stems,
                                liberty_local, boundary, period, wire_lib, template, cells,
                                timeout_s) | common
    if power:
        out["power"] = _power(dd, top, flat, units, refs, results, instances, activity,
                              liberty) | common
    out["elapsed_s"] = round(time.monotonic() - t0, 3)
    return out


def _fmax(min_period: float | None) -> float | None:
    return round(1000.0 / min_period, 2) if min_period and min_period > 0 else None


def _path_row(res: dict[str, Any], key: str = "worst") -> dict[str, Any] | None:
    p = res.get(key)
    if p is None:
        return None
    return {k: p[k] for k in ("start", "end", "start_net", "end_net", "start_register",
                              "end_register", "kind", "arrival_ns", "min_period_ns", "slack_ns",
                              "cells", "steps")} | {"fmax_mhz": _fmax(p["min_period_ns"])}


def _pe_modules(dd: Dedup, top: str, units: dict[str, str] | None,
                refs: dict[str, dict[str, Any]]) -> tuple[str | None, str | None]:
    """The PE as built and the PE the overheads are measured against (the MAC path)."""
    pe = next((rep for rep in dd.members if unit_of(rep, top, units) == "pe"), None)
    plain = list(refs.values())[-1]["module"] if refs else pe
    return pe, plain


def _timing(dd, top, flat, units, refs, results, instances, work, stems, liberty_local,
            boundary, period, wire_lib, template, cells, timeout_s) -> dict[str, Any]:
    mods = []
    for module, res in results.items():
        row = {"module": module, "instances": instances.get(module, 0),
               "worst": _path_row(res), "reg2reg": _path_row(res, "reg2reg"),
               "log": Path(res["log"]).name}
        mods.append(row)
    timed = [m for m in mods if m["worst"] is not None and m["instances"]]
    slowest = max(timed, key=lambda m: m["worst"]["min_period_ns"], default=None)
    design: dict[str, Any] = {"method": "per module (ports as registers of the neighbours)",
                              "module": slowest["module"] if slowest else None,
                              "path": slowest["worst"] if slowest else None}
    total_cells = sum(cells.get(rep, 0) * instances.get(rep, 0) for rep in instances)
    design["cells"] = total_cells
    if not flat and total_cells <= sta.LINK_LIMIT:
        files = []
        for rep in dd.members:
            files.append(f"{stems[rep]}_mapped.v")
        res = sta.time_module(stem="design", module=top, work=work, liberty=liberty_local,
                              boundary=boundary, period=period, wire_lib=wire_lib,
                              template=template, power=False, activity="",
                              timeout_s=timeout_s, netlist_files=files)
        if res.get("worst") is not None:
            design.update({"method": "linked whole design (every instance timed, paths "
                                     "across module boundaries included)",
                           "module": _module_of(res["worst"], top),
                           "path": _path_row(res)})
    elif not flat:
        design["note"] = (f"{total_cells:,} cells > {sta.LINK_LIMIT:,}: the design is not "
                          "linked; its figure is its slowest module's")
    if design["path"]:
        design["min_period_ns"] = design["path"]["min_period_ns"]
        design["fmax_mhz"] = design["path"]["fmax_mhz"]
    unit_rows = [] if flat else _unit_timing(dd, top, units, refs, results, instances)
    pe, plain = (None, None) if flat else _pe_modules(dd, top, units, refs)
    mac = results.get(plain, {}).get("worst") if plain else None
    return {"modules": mods, "design": design, "units": unit_rows,
            "mac_path": ({"module": plain, **_path_row(results[plain])} if mac else None)}


def _module_of(path: dict[str, Any], top: str) -> str:
    """The instance path holding a linked path's end point (``array/pe_3_2``), or the top."""
    end = path["end"]
    return top + ("/" + end.rsplit("/", 1)[0] if "/" in end else "")


def _unit_timing(dd, top, units, refs, results, instances) -> list[dict[str, Any]]:
    """Per unit: its slowest module's path against the MAC path; inside-PE units' added delay."""
    rows, _ = attribute_units(
        dd, top, units, own=lambda metric, rep: 0.0, depth=lambda rep: None,
        metrics=["cells"], design={"cells": 1.0}, refs=refs)
    pe, plain = _pe_modules(dd, top, units, refs)

    def period(m: str | None) -> float | None:
        p = results.get(m, {}).get("worst") if m else None
        return p["min_period_ns"] if p else None

    mac = period(plain)
    # nested references (PE as built → without bypass → without double buffer)
    chain = [pe] + [r["module"] for r in refs.values()]
    added = {unit: (chain[i], chain[i + 1]) for i, unit in enumerate(refs)}
    out = []
    for row in rows:
        unit = row["unit"]
        entry: dict[str, Any] = {"unit": unit, "kind": row["kind"],
                                 "inside_pe": row["inside_pe"]}
        if unit in added:
            with_, without = added[unit]
            a, b = period(with_), period(without)
            entry.update({"module": with_, "reference_module": without,
                          "min_period_ns": a, "without_ns": b,
                          "added_ns": round(a - b, 4) if a and b else None,
                          "added_pct": round(100 * (a - b) / b, 3) if a and b else None})
        else:
            mods = [m for m in row["modules"] if period(m) is not None
                    and (unit != "pe" or m == pe)]
            slow = max(mods, key=period, default=None)
            entry.update({"module": slow, "min_period_ns": period(slow),
                          "path": _path_row(results[slow]) if slow else None})
        v = entry.get("min_period_ns")
        entry["ratio_to_mac"] = round(v / mac, 4) if v and mac else None
        # "fits in the MAC's cycle" asks of a unit beside the PE; inside it, the delay added
        # is the answer, and the PE itself is the cycle
        beside = unit != "pe" and unit not in added
        entry["fits_mac_cycle"] = (v <= mac * 1.0005) if v and mac and beside else None
        out.append(entry)
    return out


def _power(dd, top, flat, units, refs, results, instances, activity, liberty) -> dict[str, Any]:
    per: dict[str, dict[str, float]] = {}
    mods = []
    for module, res in results.items():
        tot = res["power"]["total"]
        seq = res["power"].get("sequential", {})
        figures = {"total_mw": tot["total_mw"],
                   "dynamic_mw": tot["internal_mw"] + tot["switching_mw"],
                   "leakage_mw": tot["leakage_mw"], "internal_mw": tot["internal_mw"],
                   "switching_mw": tot["switching_mw"],
                   "sequential_mw": seq.get("total_mw", 0.0)}
        per[module] = figures
        n = instances.get(module, 0)
        mods.append({"module": module, "instances": n, "per_instance": figures,
                     "total_mw": figures["total_mw"] * n, "log": Path(res["log"]).name})
    design = {m: sum(per[r][m] * instances.get(r, 0) for r in per if instances.get(r))
              for m in POWER_METRICS + ["internal_mw", "switching_mw", "sequential_mw"]}
    out: dict[str, Any] = {"modules": mods, "total": design, "activity": activity.describe(),
                           "voltage_v": _voltage(liberty), "units": [], "denominators": None,
                           "clock_tree": "ideal clock: no clock tree; every flip-flop's clock "
                                         "pin power counted"}
    if not flat:
        rows, den = attribute_units(
            dd, top, units, own=lambda metric, rep: per[rep][metric],
            depth=lambda rep: None, metrics=POWER_METRICS,
            design={m: design[m] for m in POWER_METRICS}, refs=refs)
        out["units"] = [{"unit": r["unit"], "kind": r["kind"], "inside_pe": r["inside_pe"],
                         "instances": r["instances"],
                         **{m: r[m]["area"] for m in POWER_METRICS},
                         **{k: r["total_mw"][k] for k in ("pct_of_pe", "pct_of_array",
                                                          "pct_of_design")}}
                        for r in rows]
        out["denominators"] = {"pe_instances": den["pe_instances"],
                               "pe_mw": den["pe"]["total_mw"],
                               "array_mw": den["array"]["total_mw"],
                               "design_mw": den["design"]["total_mw"]}
    return out

