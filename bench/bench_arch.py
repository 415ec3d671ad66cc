"""Benchmark of the code's shape: the figures issue 27 asks to compare before and after.

Prints, for the source tree (``ftaccel``, ``rtl_gen``, ``golden``, ``tb``, ``synth``, ``app``):

* project imports inside functions (an ``import`` of ``ftaccel`` or a relative one, below a
  ``def``), per room and in total, and how many of them carry a comment on the line above or
  at the end of the line (the project's rule: only for an optional or heavy dependency);
* the longest functions and the largest modules (lines);
* with ``--hashes``, the SHA-256 of the Verilog ``rtlgen generate`` writes for a few
  configurations (area unchanged = Verilog byte-identical);
* with ``--unit-files REV``, the files a commit (e.g. the TMR merge) touched, by room.

Run ``python bench/bench_arch.py [--top 10] [--hashes] [--unit-files REV]``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("ftaccel", "rtl_gen", "golden", "tb", "synth", "app")

#: Configurations whose Verilog must not change (one per unit, and a few mixes).
HASH_CONFIGS = (
    {},
    {"dataflow": "is", "rows": 4, "cols": 3},
    {"dataflow": "os", "rows": 4, "cols": 4, "bypass": True, "fault_hooks": True},
    {"rows": 4, "cols": 4, "afd": True, "median": 3, "checksum": "both", "bypass": True,
     "fault_hooks": True},
    {"rows": 4, "cols": 4, "checksum": "temporal", "temporal_mode": "exact", "median": 5,
     "median_variant": "shared"},
    {"rows": 4, "cols": 4, "lcu": True, "lcu_depth": 8, "lcu_mask": 0xBF},
    {"rows": 4, "cols": 4, "tmr": "bitwise", "lcu_depth": 8, "dataflow": "os"},
    {"rows": 4, "cols": 4, "double_buffer": False, "fault_hooks": True},
    {"rows": 4, "cols": 4, "flow": "twodim", "flow_group": 4},
)


def _modules():
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            yield room, path


def _is_project(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").startswith("ftaccel")
    return any(a.name.startswith("ftaccel") for a in node.names)


def _inner_imports(path: Path):
    """``(line, project?, commented?)`` of every import below a function definition."""
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                line = lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                yield node.lineno, _is_project(node), "#" in line or above.startswith("#")


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def shape(top: int) -> None:
    """Print the import, function and module figures."""
    per_room: Counter = Counter()
    third: Counter = Counter()
    commented = 0
    funcs, mods = [], []
    seen: set = set()
    for room, path in _modules():
        rel = path.relative_to(ROOT)
        for line, project, comment in _inner_imports(path):
            if (rel, line) in seen:  # a nested function's import is walked twice
                continue
            seen.add((rel, line))
            (per_room if project else third)[room] += 1
            commented += comment
        funcs += [(n, f"{rel}:{ln}:{name}") for name, ln, n in _functions(path)]
        mods.append((len(path.read_text().splitlines()), str(rel)))
    total = sum(per_room.values()) + sum(third.values())
    print("## Imports inside functions\n")
    print("| room | project | third-party |\n|---|---:|---:|")
    for room in ROOMS:
        print(f"| {room} | {per_room[room]} | {third[room]} |")
    print(f"| **total** | **{sum(per_room.values())}** | **{sum(third.values())}** |")
    print(f"\n{commented} of {total} carry a comment.\n")
    print(f"## Longest functions (top {top})\n\n| lines | function |\n|---:|---|")
    for n, where in sorted(funcs, reverse=True)[:top]:
        print(f"| {n} | `{where}` |")
    print(f"\n## Largest modules (top {top})\n\n| lines | module |\n|---:|---|")
    for n, where in sorted(mods, reverse=True)[:top]:
        print(f"| {n} | `{where}` |")


def hashes() -> None:
    """Print the Verilog hash of every configuration of :data:`HASH_CONFIGS`."""
    from ftaccel.config import AcceleratorConfig  # the tree's own package: only for --hashes
    from ftaccel.rtl_gen.accelerator import verilog_text
    from ftaccel.rtl_gen.flow import flow_design_texts

    print("\n## Verilog hashes\n\n| configuration | sha256 (first 16) |\n|---|---|")
    for fields in HASH_CONFIGS:
        cfg = AcceleratorConfig(**fields)
        text = flow_design_texts(cfg)[1] if cfg.flow != "none" else verilog_text(cfg)
        print(f"| `{cfg.name()}` | {hashlib.sha256(text.encode()).hexdigest()[:16]} |",
              flush=True)


def unit_files(rev: str) -> None:
    """Print the files ``rev`` (a commit or a range) touched, grouped by room."""
    out = subprocess.run(["git", "diff", "--name-only", *(rev.split("..") if ".." in rev
                                                           else [f"{rev}^", rev])],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    files = [f for f in out.stdout.split() if f.endswith(".py")]
    rooms = Counter(f.split("/")[0] for f in files)
    print(f"\n## Python files touched by {rev}: {len(files)} in {len(rooms)} folders\n")
    for f in files:
        print(f"- `{f}`")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--hashes", action="store_true", help="also hash generated Verilog")
    ap.add_argument("--unit-files", metavar="REV", help="files touched by a commit or range")
    args = ap.parse_args()
    shape(args.top)
    if args.hashes:
        hashes()
    if args.unit_files:
        unit_files(args.unit_files)


if __name__ == "__main__":
    main()
