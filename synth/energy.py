"""Energy per inference, and the power/timing figures of each configuration kept for reuse.

Energy of a run = power × cycles / f (README, Timing and power): the design's total power at the
analysis clock ``f`` (dynamic power is proportional to ``f``, so the energy of a cycle does not
depend on the clock chosen; leakage, four to five orders of magnitude smaller on OSU 0.18 µm, is
charged per cycle at that clock too).

The power and timing sections of every ``synthesize(..., timing/power)`` run are stored per
configuration in the user cache (``<cache>/ppa/<config sha256>.json``, written by
:func:`store`, read by :func:`lookup`): ``rtlgen infer --energy`` and the trade-off report
(``rtlgen compare``) read them instead of synthesising again.  An entry holds the
configuration, the Liberty, the clock, the activity source (the default toggle rate, or the
workload), the power totals and per unit, the design's Fmax and its area (totals,
denominators, units, the rows beside the seeds); a synthesis without power keeps its area
alone (kind ``area``).

API
---
:func:`energy_joules` (the formula), :func:`energy_per_inference` (a network run on a
configuration: cycles and images from the run, power from a report or a cached entry),
:func:`store`, :func:`lookup`, :func:`cache_key`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftaccel.errors import ConfigError
from ftaccel.files import cache_dir, write_json

__all__ = ["Energy", "cache_key", "energy_joules", "energy_per_inference", "lookup", "store"]

_SCHEMA = "ftaccel-ppa/1"


def energy_joules(power_mw: float, cycles: int, clock_mhz: float) -> float:
    """``power × cycles / f`` in joules (mW, cycles, MHz).

    Raises
    ------
    ConfigError
        A negative or non-finite power, negative cycles, a clock not above 0.
    """
    for name, v, ok in (("power_mw", power_mw, lambda x: x >= 0),
                        ("cycles", cycles, lambda x: x >= 0),
                        ("clock_mhz", clock_mhz, lambda x: x > 0)):
        if (not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v)
                or not ok(v)):
            raise ConfigError(name, v, "a finite number" + (" above 0" if name == "clock_mhz"
                                                            else ", 0 or more"))
    return power_mw * 1e-3 * cycles / (clock_mhz * 1e6)


@dataclass(frozen=True)
class Energy:
    """The energy of a network run on one configuration.

    Attributes
    ----------
    cycles, images : int
        Accelerator cycles of the run and the images (inferences) it computed.
    power_mw, clock_mhz : float
        The design's total power at the analysis clock.
    energy_uj, per_inference_uj : float
        Whole run and per image, in µJ.
    time_ms : float
        The run's duration at the clock (cycles / f).
    fmax_mhz : float or None
        The design's Fmax (OpenSTA), when timed.
    activity : str
        Where the power's switching activity came from (``default`` is marked as such).
    source : str
        The report or cache entry the power came from.
    """

    cycles: int
    images: int
    power_mw: float
    clock_mhz: float
    energy_uj: float
    per_inference_uj: float
    time_ms: float
    fmax_mhz: float | None
    activity: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def line(self) -> str:
        """One line for a terminal or a Markdown report."""
        fmax = f", Fmax {self.fmax_mhz:.1f} MHz" if self.fmax_mhz else ""
        return (f"energy {self.per_inference_uj:.4g} µJ per inference ({self.energy_uj:.4g} µJ "
                f"for {self.images} images, {self.cycles:,} cycles = {self.time_ms:.4g} ms at "
                f"{self.clock_mhz:g} MHz, {self.power_mw:.4g} mW{fmax}; activity: "
                f"{self.activity})")


def _area(report: dict[str, Any]) -> dict[str, Any]:
    """The area part of a synthesis report: totals, denominators, units, seed rows."""
    return {
        "area_totals": report.get("totals"), "primary_metric": report.get("primary_metric"),
        "area_denominators": report.get("denominators"),
        "area_units": [{k: u.get(k) for k in ("unit", "kind", "inside_pe", "transistors",
                                              "area_um2") if k in u}
                       for u in report.get("units") or []],
        "beside_the_seeds": report.get("beside_the_seeds"),
    }


def _summary(report: dict[str, Any], *, area_only: bool = False) -> dict[str, Any]:
    """The reusable part of a synthesis report with power (and timing), and its area.

    ``area_only``: a report without power gives its area part alone (kind ``area``).
    """
    pw, tm = report.get("power") or {}, report.get("timing") or {}
    if not pw and not area_only:
        raise ConfigError("report", report.get("files", {}).get("json"),
                          "a synthesis report with power (synthesize(..., power=True))")
    act = pw.get("activity") or {}
    kind = "area" if not pw else "default" if act.get("source") == "default" else "workload"
    return {
        "schema": _SCHEMA,
        "config": (report.get("design") or {}).get("config"),
        "liberty": (report.get("tool") or {}).get("liberty"),
        "clock_mhz": pw.get("clock_mhz"), "voltage_v": pw.get("voltage_v"),
        "activity": act or None,
        "activity_kind": kind,
        "power_total": pw.get("total"), "power_units": pw.get("units"),
        "power_denominators": pw.get("denominators"),
        "fmax_mhz": (tm.get("design") or {}).get("fmax_mhz"),
        "min_period_ns": (tm.get("design") or {}).get("min_period_ns"),
        "mac_path": tm.get("mac_path"), "timing_units": tm.get("units"),
        "report": (report.get("files") or {}).get("json"),
        **_area(report),
    }


def cache_key(config: dict[str, Any]) -> str:
    """The cache name of a configuration: sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:24]


def _entry_path(config: dict[str, Any], kind: str, folder: Path | None) -> Path:
    base = Path(folder) if folder is not None else cache_dir("ppa")
    return base / f"{cache_key(config)}-{kind}.json"


def store(report: dict[str, Any], *, folder: Path | None = None) -> Path | None:
    """Keep ``report``'s area, power and timing for its configuration; the entry's path.

    One entry per configuration and activity kind (``default`` or ``workload``: a measured
    workload never gives way to the default; ``area`` for a report without power).  None
    when the report has no configuration header.
    """
    summary = _summary(report, area_only=True)
    if not summary["config"]:
        return None
    return write_json(_entry_path(summary["config"], summary["activity_kind"], folder), summary)


def lookup(config: dict[str, Any], *, folder: Path | None = None,
           power: bool = True) -> dict[str, Any] | None:
    """The stored figures of ``config`` (a measured workload's before the default), or None.

    ``power=False``: an area-only entry (kind ``area``) will do too, after those with power.
    """
    for kind in ("workload", "default", *(() if power else ("area",))):
        path = _entry_path(config, kind, folder)
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if data.get("schema") == _SCHEMA and data.get("config") == config:
                data["entry"] = str(path)
                return data
    return None


def energy_per_inference(figures: dict[str, Any], *, cycles: int, images: int,
                         clock_mhz: float | None = None) -> Energy:
    """Energy of a run of ``images`` inferences taking ``cycles`` accelerator cycles.

    Parameters
    ----------
    figures : dict
        A synthesis report with power (:func:`synth.flow.synthesize`) or a cached entry
        (:func:`lookup`).
    cycles, images : int
        From the run (e.g. :attr:`app.network.InferenceResult.cycles` and ``.images``).
    clock_mhz : float, optional
        Run at another clock than the analysis one: dynamic power scales with it (the
        energy per cycle stays), leakage does not.
    """
    if "power_total" not in figures:
        figures = _summary(figures)
    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise ConfigError("images", images, "a positive number of inferences")
    tot = figures["power_total"]
    f0 = figures["clock_mhz"]
    f = f0 if clock_mhz is None else clock_mhz
    power = tot["dynamic_mw"] * (f / f0) + tot["leakage_mw"]
    joules = energy_joules(power, cycles, f)
    act = figures["activity"]
    what = ("DEFAULT toggle rate " + f"{act.get('default_input_rate'):g}"
            if act.get("source") == "default"
            else act.get("workload") or act.get("file") or "workload")
    return Energy(cycles=int(cycles), images=images, power_mw=power, clock_mhz=f,
                  energy_uj=joules * 1e6, per_inference_uj=joules * 1e6 / images,
                  time_ms=cycles / (f * 1e3), fmax_mhz=figures.get("fmax_mhz"),
                  activity=what, source=figures.get("entry") or figures.get("report") or "")
