"""Timing and power of the mapped netlists with OpenSTA (README, Timing and power).

The area flow (:mod:`synth.flow`) maps every distinct module onto the Liberty cells; with
timing or power it maps it once more the same way with ABC's fanout buffering added
(``area.ys`` section ``timed``: an area-oriented mapping leaves broadcast nets on one small
gate, which any timing-driven flow buffers) and keeps that netlist (``<stem>_mapped.v``).
This module runs OpenSTA (``sta``, Debian package ``opensta``) on those netlists with the
same Liberty, whose cells carry timing tables and ``internal_power`` tables, and returns:

* **timing**: per distinct module, the worst path (start and end point, the named nets at
  both ends, its delay in ns and the shortest clock period it allows) and the worst
  register-to-register path; the whole design's critical path and Fmax; per unit, its
  critical path as a ratio to the PE's MAC path (the seeds' "fits in one clock cycle",
  Ozen 2023 §8.8.2 at 1 GHz; §8.6.2 at 200 MHz) and, for a unit inside the PE (bypass, double
  buffer), the delay it adds to the PE (Ozen 2023 §10.5.2: at most +2.2 %);
* **power**: per distinct module, internal (cells, clock pins included), switching (nets) and
  leakage power at a stated clock and the library's voltage, from a stated activity
  (:mod:`synth.activity`: a default toggle rate, marked as such, or a simulated workload);
  multiplied by the instance counts and attributed to units on the seeds' denominators (one
  PE, the array, the design) with the same walk as the area (:func:`synth.units.attribute_units`).

How it is timed
---------------
Each module is timed on its own, its submodule instances turned into ports (Yosys ``expose
-evert``), with all its ports treated as the registers of its neighbours: an input arrives
a flip-flop's clk→Q after the edge with that flip-flop's drive, an output must arrive its
setup time before the next edge.  That is exact
for the systolic array, whose PEs register every output, and for the registered input stages;
a combinational path through several modules is split at their boundaries.  When the whole
design has at most :data:`LINK_LIMIT` cells the hierarchical netlist is also linked and timed
as one (the design's critical path then crosses module boundaries where it does); above it
the design's figure is the slowest module's.  The clock is ideal (no clock tree, no skew).

Wire load: OSU 0.18 µm ships no wire-load model, so one is stated here
(:data:`WIRE_LOAD`): metal-2 capacitance and resistance per µm from the library's LEF
(``osu018_stdcells.lef``: C = 1.9e-5 pF/µm² × 0.3 µm + 2 × 6e-5 pF/µm edge ≈ 0.126 fF/µm,
R = 0.08 Ω/□ / 0.3 µm ≈ 0.27 Ω/µm) and one standard-cell row height (10 µm) of wire per
fanout; ``wire_load=None`` times with pin capacitances alone.

The Debian OpenSTA (2019) reads neither VCD nor SAIF: activity is given per pin with
``set_power_activity`` (see :mod:`synth.activity`).  Its 2019 Verilog reader rejects the
``signed`` keyword Yosys writes, which is removed from declarations first (it carries no
meaning for a netlist of cells).
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftaccel.errors import ConfigError

__all__ = ["DEFAULT_CLOCK_MHZ", "LINK_LIMIT", "STA_INSTALL_HINT", "TEMPLATE_PATH",
           "TIMED_MAX_FANOUT", "WIRE_LOAD",
           "StaError", "StaMissing", "Boundary", "activity_lines", "calibrate", "find_sta",
           "parse_paths", "parse_power", "render", "require_sta", "run_sta", "sta_netlist",
           "sta_version", "template_record", "time_module", "time_modules",
           "wire_load_library"]

#: The OpenSTA script template.
TEMPLATE_PATH = Path(__file__).with_name("sta.tcl")
#: Clock of the power analysis when none is given (MHz): the OSU 0.18 µm PEs close at
#: ≈ 130–140 MHz, so 100 MHz is a clock every generated design here meets.
DEFAULT_CLOCK_MHZ = 100.0
#: Largest design (standard cells, all instances) also timed as one linked netlist.
LINK_LIMIT = 400_000
#: Fanout limit of the buffering in the netlist OpenSTA times (``area.ys`` section ``timed``):
#: ABC's ``buffer -N``.  16 loads per driver keeps every net of the generated designs within
#: the OSU 0.18 µm cells' characterised loads (≤ 0.5 pF for an X1 output).
TIMED_MAX_FANOUT = 16
#: What to tell a user without OpenSTA (CLI exit 3).
STA_INSTALL_HINT = ("OpenSTA is not installed (no 'sta' on PATH): run 'make setup' or "
                    "'apt-get install opensta' (Debian package opensta); the area report "
                    "works without it")
#: The stated wire-load model (see the module docstring).
WIRE_LOAD = {
    "name": "ftaccel_fanout_osu018",
    "capacitance_pf_per_um": 1.257e-4,
    "resistance_kohm_per_um": 2.67e-4,
    "um_per_fanout": 10.0,
    "source": "metal-2 C and R per µm from osu018_stdcells.lef, one 10 µm cell row of wire "
              "per fanout, no placement",
}
_DFF = "DFFPOSX1"


class StaError(RuntimeError):
    """OpenSTA failed, timed out or reported an error; the message names the log."""


class StaMissing(StaError):
    """OpenSTA is not installed (the message says how to install it)."""


def find_sta() -> str | None:
    """The ``sta`` executable on ``PATH``, or None."""
    return shutil.which("sta")


def require_sta() -> str:
    """The ``sta`` executable; :class:`StaMissing` with the install hint when absent."""
    exe = find_sta()
    if exe is None:
        raise StaMissing(STA_INSTALL_HINT)
    return exe


def sta_netlist(text: str) -> str:
    """A Yosys netlist as the 2019 OpenSTA reads it: no ``signed`` in declarations."""
    return re.sub(r"^(\s*(?:input|output|inout|wire|reg)\s+)signed\s+", r"\1", text, flags=re.M)


def run_sta(script: str, *, cwd: Path, log: Path, timeout_s: float = 600) -> str:
    """Run ``script`` (Tcl) with OpenSTA in ``cwd``; return its output, also kept in ``log``.

    OpenSTA goes on after an error and exits 0, so an ``Error:`` line or a missing end marker
    (``@@ftaccel end``) is a failure.

    Raises
    ------
    StaMissing
        No ``sta`` installed.
    StaError
        OpenSTA failed, reported an error or exceeded ``timeout_s``; names ``log``.
    """
    exe = require_sta()
    cwd = Path(cwd)
    tcl = cwd / (Path(log).stem + ".tcl")
    tcl.write_text(script)
    try:
        proc = subprocess.run([exe, "-no_splash", "-exit", tcl.name], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise StaError(f"OpenSTA timed out after {timeout_s:.0f} s; see {log}") from None
    except OSError as exc:
        raise StaError(f"cannot start OpenSTA ({exe}: {exc.strerror or exc})") from None
    out = proc.stdout + proc.stderr
    Path(log).write_text(out)
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    if proc.returncode != 0 or errors or "@@ftaccel end" not in out:
        first = errors[0] if errors else f"exit {proc.returncode}, no end marker"
        raise StaError(f"OpenSTA failed ({first[:200]}); see {log}")
    return out


@dataclass(frozen=True)
class Boundary:
    """The registers a module's ports are assumed to meet (measured once per Liberty)."""

    dff: str
    tcq_ns: float
    setup_ns: float
    d_cap_pf: float

    def describe(self) -> dict[str, Any]:
        """The record written into the report."""
        return {"cell": self.dff, "clk_to_q_ns": self.tcq_ns, "setup_ns": self.setup_ns,
                "output_load_pf": self.d_cap_pf,
                "model": f"ports meet {self.dff} registers: inputs launched {self.tcq_ns:.3f} "
                         f"ns after the edge with its drive, outputs due {self.setup_ns:.3f} "
                         f"ns before the next edge into its D pin ({self.d_cap_pf * 1000:.1f} fF)"}


def _lib_pin_cap(liberty: Path, cell: str, pin: str) -> float:
    text = Path(liberty).read_text(errors="replace")
    m = re.search(rf"cell\s*\(\s*\"?{cell}\"?\s*\)\s*\{{", text)
    if not m:
        raise ConfigError("liberty", str(liberty), f"a cell library with a {cell} flip-flop")
    p = re.search(rf"pin\s*\(\s*\"?{pin}\"?\s*\)\s*\{{[^}}]*?capacitance\s*:\s*([0-9.eE+-]+)",
                  text[m.end():])
    return float(p.group(1)) if p else 0.0


def wire_load_library(path: Path) -> str:
    """Write the stated wire-load model as a small Liberty library; return its name."""
    w = WIRE_LOAD
    lengths = "\n".join(f"    fanout_length({k}, {k * w['um_per_fanout']:.1f});"
                        for k in (1, 2, 3, 4, 8))
    thresholds = "\n".join(f"  {k} : {v};" for k, v in (
        ("slew_upper_threshold_pct_rise", 80), ("slew_lower_threshold_pct_rise", 20),
        ("slew_upper_threshold_pct_fall", 80), ("slew_lower_threshold_pct_fall", 20),
        ("input_threshold_pct_rise", 50), ("input_threshold_pct_fall", 50),
        ("output_threshold_pct_rise", 50), ("output_threshold_pct_fall", 50)))
    Path(path).write_text(
        f"/* {w['source']} (ftaccel synth/sta.py) */\n"
        "library(ftaccel_wire_load) {\n"
        '  time_unit : "1ns";\n  voltage_unit : "1V";\n  current_unit : "1uA";\n'
        '  pulling_resistance_unit : "1kohm";\n  leakage_power_unit : "1nW";\n'
        "  capacitive_load_unit (1,pf);\n" + thresholds + "\n"
        f"  wire_load(\"{w['name']}\") {{\n"
        f"    resistance : {w['resistance_kohm_per_um']};\n"
        f"    capacitance : {w['capacitance_pf_per_um']};\n"
        "    area : 0.0;\n"
        f"    slope : {w['um_per_fanout']};\n{lengths}\n  }}\n}}\n")
    return "ftaccel_wire_load"


def render(template: str, **values: str) -> str:
    """Fill the ``@NAME@`` placeholders of the script template."""
    for k, v in values.items():
        template = template.replace(f"@{k.upper()}@", v)
    left = re.findall(r"@[A-Z0-9]+@", template)
    if left:
        raise ValueError(f"OpenSTA script placeholders not filled: {left}")
    return template


def _script(template: str, *, liberty: str, netlist: str, top: str, period: float,
            boundary: Boundary, wire_lib: str | None, activity: str, power: bool,
            reg2reg: bool) -> str:
    return render(
        template, liberty=liberty, netlist=netlist, top=_tcl_name(top),
        wirelib=f"read_liberty {wire_lib}" if wire_lib else "",
        wireload=(f"set_wire_load_model -name {WIRE_LOAD['name']} -library ftaccel_wire_load"
                  if wire_lib else ""),
        period=f"{period:g}", tcq=f"{boundary.tcq_ns:.4f}", setup=f"{boundary.setup_ns:.4f}",
        load=f"{boundary.d_cap_pf:.6f}", dff=boundary.dff, activity=activity,
        power="1" if power else "0", reg2reg="1" if reg2reg else "0")


def _tcl_name(name: str) -> str:
    return "{" + name + "}"


def calibrate(liberty: Path, work: Path, *, timeout_s: float = 120) -> Boundary:
    """Measure the boundary registers: clk→Q of one flip-flop driving another, and its setup.

    A two-flip-flop netlist is timed with the library; its one path gives the clk→Q delay
    (into one D pin) and the library setup time that :func:`time_module` then assumes at
    every module port.
    """
    work = Path(work)
    (work / "calibrate.v").write_text(
        "module ftaccel_calibrate(clk, d, q);\n  input clk;\n  input d;\n  output q;\n"
        "  wire a;\n"
        f"  {_DFF} f1 (.CLK(clk), .D(d), .Q(a));\n  {_DFF} f2 (.CLK(clk), .D(a), .Q(q));\n"
        "endmodule\n")
    script = (f"read_liberty {liberty}\nread_verilog calibrate.v\n"
              "link_design ftaccel_calibrate\ncreate_clock -name clk -period 100 [get_ports clk]\n"
              "puts \"@@ftaccel worst\"\n"
              "report_checks -path_delay max -digits 4 -from [get_pins f1/CLK] "
              "-to [get_pins f2/D]\nputs \"@@ftaccel end\"\n")
    out = run_sta(script, cwd=work, log=work / "calibrate.log", timeout_s=timeout_s)
    tcq = re.search(r"^\s*([0-9.]+)\s+[0-9.]+\s+[v^]\s+f1/Q", out, re.M)
    setup = re.search(r"^\s*-([0-9.]+)\s+[0-9.]+\s+library setup time", out, re.M)
    if not tcq or not setup:
        raise StaError(f"OpenSTA calibration gave no clk->Q or setup time; see "
                       f"{work / 'calibrate.log'}")
    return Boundary(_DFF, float(tcq.group(1)), float(setup.group(1)),
                    _lib_pin_cap(work / liberty, _DFF, "D"))


# A long name pushes the "(kind)" onto the next line.
_PATH_HEAD = re.compile(r"^Startpoint: (\S+)\s+\(([^)]*)\)\s*\nEndpoint: (\S+)\s+\(([^)]*)\)",
                        re.M)


def parse_paths(text: str, period: float) -> dict[str, Any] | None:
    """The first path of a ``report_checks -fields {net}`` report, or None (no path).

    Returns ``start``, ``end`` (instance/port names as OpenSTA prints them), ``start_kind``,
    ``end_kind``, ``start_net`` / ``end_net`` (the first and last named nets on the path),
    ``arrival_ns``, ``required_ns``, ``slack_ns``, ``min_period_ns`` (period − slack: the
    shortest clock this path allows), ``cells`` (cells on the path), ``nets`` and ``steps``
    (per cell: type, output pin, edge, delay, fanout of the net it drives).
    """
    m = _PATH_HEAD.search(text)
    if not m:
        return None
    body = text[m.end():]
    arrival = re.search(r"^\s*([-0-9.]+)\s+data arrival time", body, re.M)
    required = re.search(r"^\s*([-0-9.]+)\s+data required time", body, re.M)
    slack = re.search(r"^\s*([-0-9.]+)\s+slack \((MET|VIOLATED)\)", body, re.M)
    if not (arrival and required and slack):
        return None
    section = body[:arrival.start()]
    nets = re.findall(r"^\s*\d*\s+(\S+) \(net\)$", section, re.M)
    # every cell on the path: its type, its delay and the fanout of the net it drives
    steps: list[dict[str, Any]] = []
    for line in section.splitlines():
        c = re.match(r"^\s*([-0-9.]+)\s+[-0-9.]+\s+([v^])\s+(\S+)/(\S+) \((\w+)\)$", line)
        if c:
            steps.append({"cell": c.group(5), "pin": c.group(4), "edge": c.group(2),
                          "delay_ns": float(c.group(1)), "fanout": None})
            continue
        n = re.match(r"^\s*(\d+)\s+\S+ \(net\)$", line)
        if n and steps and steps[-1]["fanout"] is None:
            steps[-1]["fanout"] = int(n.group(1))
    # the start flip-flop's clock pin and the end one's data pin drive no net on the path
    steps = [st for st in steps if st["fanout"] is not None]
    cells = [st["cell"] for st in steps]
    s = float(slack.group(1))
    return {
        "start": m.group(1), "start_kind": m.group(2), "end": m.group(3),
        "end_kind": m.group(4), "start_net": nets[0] if nets else m.group(1),
        "end_net": nets[-1] if nets else m.group(3),
        "arrival_ns": float(arrival.group(1)), "required_ns": float(required.group(1)),
        "slack_ns": s, "min_period_ns": round(period - s, 4), "cells": len(cells),
        "nets": nets, "steps": steps,
    }


def _kind(path: dict[str, Any]) -> str:
    a = "in" if "input port" in path["start_kind"] else "reg"
    b = "out" if "output port" in path["end_kind"] else "reg"
    return f"{a}→{b}"


_POWER_ROW = re.compile(r"^(Sequential|Combinational|Macro|Pad|Total)\s+([-0-9.eE+]+)\s+"
                        r"([-0-9.eE+]+)\s+([-0-9.eE+]+)\s+([-0-9.eE+]+)", re.M)


def parse_power(text: str) -> dict[str, dict[str, float]]:
    """``report_power``'s rows in mW: ``{group: {internal, switching, leakage, total}}``."""
    out = {}
    for m in _POWER_ROW.finditer(text):
        vals = [float(x) * 1e3 for x in m.groups()[1:]]
        out[m.group(1).lower()] = dict(zip(("internal_mw", "switching_mw", "leakage_mw",
                                            "total_mw"), vals, strict=True))
    return out


def _sections(out: str) -> dict[str, str]:
    parts = re.split(r"^@@ftaccel (\w+)$", out, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _flop_q_nets(netlist: str) -> dict[str, str]:
    """Flip-flop instance → the net on its Q pin (register names for path end points)."""
    out = {}
    for m in re.finditer(r"^\s*DFF\w*\s+(\S+)\s*\((.*?)\);", netlist, re.M | re.S):
        q = re.search(r"\.Q\(([^)]*)\)", m.group(2))
        if q:
            out[m.group(1)] = q.group(1).strip()
    return out


def activity_lines(per_net: dict[str, tuple[float, float]], rate: float, duty: float) -> str:
    """``set_power_activity`` lines: the default for all inputs, then every measured bit."""
    lines = [f"set_power_activity -input -activity {rate:.6g} -duty {duty:.6g}"]
    for net, (act, d) in sorted(per_net.items()):
        if not (math.isfinite(act) and math.isfinite(d)):
            continue
        lines.append(f"ftaccel_activity {{{net}}} {act:.6g} {min(max(d, 0.0), 1.0):.6g}")
    return "\n  ".join(lines)


def time_module(*, stem: str, module: str, work: Path, liberty: str, boundary: Boundary,
                period: float, wire_lib: str | None, template: str, power: bool,
                activity: str, timeout_s: float, netlist_files: list[str] | None = None
                ) -> dict[str, Any]:
    """Time (and power) one module's mapped netlist; figures per instance.

    ``netlist_files`` (default: the module alone, its submodule instances turned into ports
    by ``expose -evert`` in ``area.ys``) are concatenated into ``<stem>_sta.v`` with
    ``signed`` removed.
    """
    files = netlist_files or [f"{stem}_alone.v"]
    text = "\n".join((work / f).read_text() for f in files if (work / f).exists())
    (work / f"{stem}_sta.v").write_text(sta_netlist(text))
    script = _script(template, liberty=liberty, netlist=f"{stem}_sta.v", top=module,
                     period=period, boundary=boundary, wire_lib=wire_lib, activity=activity,
                     power=power, reg2reg=True)
    t0 = time.monotonic()
    out = run_sta(script, cwd=work, log=work / f"{stem}_sta.log", timeout_s=timeout_s)
    sec = _sections(out)
    q_nets = _flop_q_nets(text)
    res: dict[str, Any] = {"module": module, "log": str(work / f"{stem}_sta.log"),
                           "wall_s": round(time.monotonic() - t0, 3)}
    for key in ("worst", "reg2reg"):
        path = parse_paths(sec.get(key, ""), period)
        if path is not None:
            path["kind"] = _kind(path)
            # A flip-flop end point is named by the register on its Q pin.
            path["end_register"] = q_nets.get(path["end"])
            path["start_register"] = q_nets.get(path["start"])
        res[key] = path
    if power:
        res["power"] = parse_power(sec.get("power", ""))
        if "total" not in res["power"]:
            raise StaError(f"OpenSTA reported no power for {module}; see {res['log']}")
    return res


def time_modules(jobs: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    """Run :func:`time_module` on every job, ``workers`` at a time; results in job order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda kw: time_module(**kw), jobs))


def template_record() -> dict[str, str]:
    """Which script produced the figures (recorded in the report)."""
    text = TEMPLATE_PATH.read_text()
    return {"script": TEMPLATE_PATH.name,
            "script_sha256": hashlib.sha256(text.encode()).hexdigest()}


def sta_version() -> str | None:
    """OpenSTA's version string (``2.0.17`` for the Debian 2019 build), or None."""
    exe = find_sta()
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None
