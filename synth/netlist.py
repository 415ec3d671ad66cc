"""Netlist texts: modules, instances and identical modules merged (Verilog or RTLIL).

The area flow (:mod:`synth.flow`) synthesises every distinct module of a design once.  This
module reads the design text: :func:`parse_modules` splits it into modules and finds the
instances of the design's own modules in each; :func:`deduplicate` merges modules whose
bodies are identical up to their names (Amaranth emits one module per submodule *instance*:
``accelerator.median.s0`` … ``s63``) and counts the instances of each in the tree below the
top; :func:`read_config` finds the configuration header :mod:`rtl_gen.emit` writes.

Amaranth's output is regular enough for regular expressions: Verilog instances are one
``type [#(...)] name (`` per statement, RTLIL cells are ``cell type name`` lines.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftaccel.errors import ConfigError

__all__ = ["Dedup", "Module", "deduplicate", "format_of", "instance_paths", "natural_key",
           "parse_modules", "plain_name", "read_config", "spell"]

_VID = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"


@dataclass(frozen=True)
class _Format:
    """How modules, their ends, module attributes and instances look in one input format."""

    name: str
    module: re.Pattern
    end: re.Pattern
    attr_line: re.Pattern
    inst: re.Pattern  # group "type": the instantiated module, group "inst": the instance


_VERILOG = _Format(
    "verilog",
    re.compile(rf"^[ \t]*module[ \t]+({_VID})", re.M),
    re.compile(r"\bendmodule\b[^\n]*\n?"),
    re.compile(r"[ \t]*\(\*.*\*\)[ \t]*\n"),
    # type [#(params, one level of nested parentheses)] name (
    re.compile(rf"^[ \t]*(?P<type>{_VID})\s+(?:#\s*\((?:[^()]|\([^()]*\))*\)\s*)?"
               rf"(?P<inst>{_VID})\s*\(", re.M),
)
_RTLIL = _Format(
    "rtlil",
    re.compile(r"^module[ \t]+(\S+)[ \t]*$", re.M),
    re.compile(r"^end[ \t]*(?:\n|$)", re.M),
    re.compile(r"attribute[ \t][^\n]*\n"),
    re.compile(r"^[ \t]+cell[ \t]+(?P<type>\S+)[ \t]+(?P<inst>\S+)[ \t]*$", re.M),
)
_FORMATS = {"verilog": _VERILOG, "rtlil": _RTLIL}

_AUTO_RE = re.compile(r"\\?\$auto\$\S+")


def plain_name(name: str) -> str:
    """A module name without its escape backslash (as Yosys prints it)."""
    return name[1:] if name.startswith("\\") else name


def spell(name: str, fmt: str) -> str:
    r"""A module name as written in ``fmt`` (RTLIL: ``\name``; Verilog: escaped if needed)."""
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
    instances: list[tuple[str, str]] = field(default_factory=list)  # (type, instance name)


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
            raise ConfigError("design", f"module {plain_name(m.group(1))}",
                              "a module that ends (endmodule / end)")
        start = m.start()
        # Attribute lines directly above belong to the module (dropped with it).
        while start > 0:
            line_start = text.rfind("\n", 0, start - 1) + 1
            if f.attr_line.fullmatch(text, line_start, start):
                start = line_start
            else:
                break
        name = plain_name(m.group(1))
        modules[name] = Module(name, start, e.end(), text[start:e.end()])
        pos = e.end()
    for mod in modules.values():
        for inst in f.inst.finditer(mod.text):
            typ = plain_name(inst.group("type"))
            if typ in modules:
                mod.children.append((typ, inst.start("type"), inst.end("type")))
                mod.instances.append((typ, plain_name(inst.group("inst").rstrip())))
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


def natural_key(name: str) -> list:
    """A sort key that orders the digit runs of ``name`` by value."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def deduplicate(text: str, top: str, fmt: str = "verilog") -> Dedup:
    """Merge modules whose bodies are identical up to their own and their children's names.

    Two modules are identical when their text, with the module's own name, the names of child
    module types (replaced by their class) and Yosys' ``$auto$`` identifiers (numbered by first
    appearance) normalised, is the same.  Children are classified first, so two parents that
    instantiate different-but-identical children are identical too.

    Raises
    ------
    ConfigError
        ``top`` is not a module of ``text``, or a module instantiates itself.
    """
    modules = parse_modules(text, fmt)
    if top not in modules:
        known = ", ".join(sorted(modules)[:8]) or "none"
        raise ConfigError("top", top, f"a module of the design (found: {known})")
    order = _tree_order(modules, top)
    children = {n: _child_counts(modules[n]) for n in order}
    instances: dict[str, int] = defaultdict(int)
    instances[top] = 1
    for n in order:
        for c, k in children[n].items():
            instances[c] += instances[n] * k
    classes: dict[str, list[str]] = defaultdict(list)
    key = _class_keys(modules, _FORMATS[fmt])
    for n in order:
        classes[key(n)].append(n)
    rep: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for names in classes.values():
        names.sort(key=natural_key)
        r = top if top in names else names[0]
        members[r] = names
        for n in names:
            rep[n] = r
    texts = {n: _rewrite_children(modules[n], rep, fmt)
             for n in sorted(members, key=lambda r: modules[r].start)}
    return Dedup("\n".join(texts.values()), texts, rep, members, dict(instances), children,
                 order, fmt)


def _tree_order(modules: dict[str, Module], top: str) -> list[str]:
    """Modules reachable from ``top``, parents before children (post-order, reversed)."""
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
    return order


def _child_counts(mod: Module) -> dict[str, int]:
    """Child module → instances of it in one instance of ``mod``."""
    counts: dict[str, int] = {}
    for t, _, _ in mod.children:
        counts[t] = counts.get(t, 0) + 1
    return counts


def _class_keys(modules: dict[str, Module], f: _Format):
    """A function giving each module's class key: the hash of its normalised text."""
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

    return key


def _rewrite_children(mod: Module, rep: dict[str, str], fmt: str) -> str:
    """``mod``'s text with every child instance naming its class representative."""
    out, last = [], 0
    for typ, s, e in mod.children:
        out.append(mod.text[last:s])
        out.append(spell(rep[typ], fmt).rstrip())
        last = e
    out.append(mod.text[last:])
    return "".join(out)


def read_config(text: str, top: str) -> dict[str, Any] | None:
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



def instance_paths(text: str, top: str, fmt: str = "verilog") -> dict[tuple[str, ...], str]:
    """Every instance of the design's own modules below ``top``, by its instance path.

    ``{(): top, ("array",): "accelerator.array", ("array", "pe_0_0"): "pe_ws_…", …}``: the
    path is the chain of instance names from ``top`` (as a simulator names the scopes of a
    waveform), the value the module instantiated there.  Used to attribute the switching
    activity of a simulation to the modules the synthesis flow measures
    (:mod:`synth.activity`).
    """
    modules = parse_modules(text, fmt)
    if top not in modules:
        raise ConfigError("top", top, "a module of the design")
    out: dict[tuple[str, ...], str] = {}
    stack: list[tuple[tuple[str, ...], str]] = [((), top)]
    while stack:
        path, name = stack.pop()
        out[path] = name
        for typ, inst in modules[name].instances:
            if len(path) < 64:  # a module cannot instantiate itself (deduplicate checks)
                stack.append((path + (inst,), typ))
    return out
