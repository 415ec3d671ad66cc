"""Formal equivalence of two Verilog modules with Yosys, and coarse cell counts of a netlist.

:func:`prove_equivalent` reads a *gold* and a *gate* design (each a top module plus the files it
needs), flattens each in its own Yosys design so that module names may collide, joins them in a
miter (``miter -equiv``: same port names and widths required), maps the miter to gates and asks
Yosys' SAT solver, output port by output port, to prove that gold and gate agree:

* combinational designs (``sequential=False``): one SAT call per output over all input values;
  flip-flops or latches in either design make the run stop with an error (their outputs would
  be free variables and the answer meaningless);
* sequential designs (``sequential=True``): temporal induction (``sat -tempinduct``) from the
  all-zero initial state, which is the reset state of every register Amaranth emits.

A proof is exhaustive: "equivalent" means equal for every input (sequence), not for samples.
The result says whether the proof held, which outputs failed, how long Yosys took and where
its log is; on a failure the log holds the counterexample (``-show-inputs``).

:func:`coarse_cell_counts` runs the coarse part of ``synth`` (up to and including ``alumacc``)
on a flattened design and returns its cell types and counts, which is where word-level
comparators (``$lt`` … become ``$alu``) and multiplexers (``$mux``, ``$pmux``) can still be
counted one per operator.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ftaccel.rtl_gen.config import is_int
from ftaccel.synth.yosys import YosysError, run_yosys

__all__ = ["EquivalenceResult", "prove_equivalent", "coarse_cell_counts", "COMPARATOR_CELLS",
           "MUX_CELLS"]

#: Word-level cells that are comparators before/after ``alumacc`` (which turns ``$lt`` & co.
#: into ``$alu``; our median designs contain no other arithmetic).
COMPARATOR_CELLS = ("$lt", "$le", "$gt", "$ge", "$alu")
#: Word-level multiplexer cells.
MUX_CELLS = ("$mux", "$pmux")

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class EquivalenceResult:
    """Outcome of :func:`prove_equivalent`.

    Attributes
    ----------
    equivalent : bool
        True when the proof succeeded (no input makes the outputs differ).
    seconds : float
        Wall-clock time of the Yosys run (reading, flattening and proving).
    log : Path
        The Yosys log; on failure it shows the counterexample.
    summary : str
        One line: how many outputs were proven, or which failed and the solver's verdict.
    outputs : tuple of str
        The output ports compared (Verilog names).
    failed : tuple of str
        The outputs for which the proof failed (a counterexample is in the log).
    """

    equivalent: bool
    seconds: float
    log: Path
    summary: str
    outputs: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.equivalent


def _as_list(files: Path | str | Sequence[Path | str]) -> list[Path]:
    if isinstance(files, (str, Path)):
        return [Path(files)]
    return [Path(f) for f in files]


def _stage(files: list[Path], dest: Path) -> list[str]:
    """Copy ``files`` under ``dest`` (the Yosys sandbox sees only relative paths below its
    working directory) and return their names relative to ``dest.parent``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    names = []
    for i, f in enumerate(files):
        if not f.is_file():
            raise FileNotFoundError(f"Verilog file not found: {f}")
        target = dest / f"{i}_{f.name}"
        shutil.copyfile(f, target)
        names.append(f"{dest.name}/{target.name}")
    return names


def _check_name(name: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"module name {name!r} must be a plain Verilog identifier")


def _read_flat(names: list[str], top: str, alias: str, combinational: bool) -> str:
    reads = "".join(f"read_verilog -sv {n}\n" for n in names)
    check = ""
    if combinational:
        # A register or latch would be a free variable in a one-step SAT proof.
        check = "select -assert-none t:$*ff t:$*dff* t:$*latch* t:$sr t:$mem*\n"
    return (
        "design -reset\n" + reads +
        f"hierarchy -check -top {top}\n"
        "proc\nflatten\nopt_clean\n" + check +
        f"rename {top} {alias}\n"
        f"design -stash {alias}\n"
    )


def _list_outputs(listing: str) -> list[str]:
    """Output names of the gold design from ``select -list miter/o:gold_*``."""
    names = []
    for line in listing.splitlines():
        line = line.strip()
        if line.startswith("miter/gold_"):
            names.append(line[len("miter/gold_"):])
    return names


def prove_equivalent(
    gold: Path | str | Sequence[Path | str],
    gate: Path | str | Sequence[Path | str],
    *,
    gold_top: str,
    gate_top: str,
    work_dir: Path,
    sequential: bool = False,
    max_steps: int = 8,
    timeout_s: float = 600,
) -> EquivalenceResult:
    """Prove that module ``gate_top`` behaves exactly like module ``gold_top``.

    The proof runs output port by output port: for each port ``P`` the miter keeps only the
    logic that drives ``gold_P`` and ``gate_P`` and one SAT call proves them equal.  Splitting
    costs nothing in rigour (equal outputs one by one is equal outputs) and keeps each SAT
    problem as small as one output's cone, which is what makes 16-bit Median-5 arrays provable
    in seconds: one SAT call over all outputs at once took minutes.  The miter is mapped to
    gates (``techmap``) before the SAT calls: Yosys' bit-level encoding of a techmapped
    comparator proved several times faster than its encoding of a word-level ``$lt``.

    Parameters
    ----------
    gold, gate : path or list of paths
        Verilog files of each design (copied into ``work_dir``).
    gold_top, gate_top : str
        Top module names; the two modules must have the same ports (names and widths).
    work_dir : Path
        Where the scripts, the copied sources and the logs go.
    sequential : bool
        False: combinational proof (both designs must be free of registers).  True: temporal
        induction from the all-zero state (the reset state of Amaranth's registers), at most
        ``max_steps`` steps deep.
    timeout_s : float
        Timeout of each Yosys run (raises :class:`synth.yosys.YosysError`).

    Returns
    -------
    EquivalenceResult
        ``equivalent`` is False when Yosys found a counterexample for some output or could not
        complete the induction within ``max_steps``.  Errors of the inputs (unknown module,
        different ports, registers in a combinational proof) raise
        :class:`synth.yosys.YosysError`.
    """
    _check_name(gold_top)
    _check_name(gate_top)
    if not is_int(max_steps) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, not {max_steps!r}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    gold_names = _stage(_as_list(gold), work / "equiv_gold")
    gate_names = _stage(_as_list(gate), work / "equiv_gate")
    comb = not sequential
    start = time.monotonic()

    # Step 1: read, flatten and check each design on its own, join them in a miter, map it to
    # gates and keep it as RTLIL for step 2, with the list of outputs to prove.
    prepare = (
        _read_flat(gold_names, gold_top, "equiv_gold", comb)
        + _read_flat(gate_names, gate_top, "equiv_gate", comb)
        + "design -reset\n"
        "design -copy-from equiv_gold -as equiv_gold equiv_gold\n"
        "design -copy-from equiv_gate -as equiv_gate equiv_gate\n"
        "miter -equiv -flatten -make_outputs equiv_gold equiv_gate miter\n"
        "hierarchy -top miter\n"
        "techmap\nopt -fast\n"
        "write_rtlil equiv_miter.il\n"
        "tee -q -o equiv_outputs.txt select -list miter/o:gold_*\n"
    )
    prepare_log = work / "equiv_prepare.log"
    try:
        run_yosys(prepare, cwd=work, log=prepare_log, timeout_s=timeout_s)
    except YosysError:
        text = prepare_log.read_text(errors="replace") if prepare_log.exists() else ""
        if comb and "Assertion failed: selection is not empty" in text:
            raise YosysError(f"a design has registers or latches: a combinational proof would "
                             f"treat them as free inputs; use sequential=True ({prepare_log})"
                             ) from None
        raise
    outputs = _list_outputs((work / "equiv_outputs.txt").read_text())
    if not outputs:
        raise YosysError(f"the designs have no outputs to compare; see {work}")

    # Step 2: one SAT call per output, each on the miter cut down to that output's cone.
    if comb:
        sat = "sat -prove gold_{p} gate_{p} -show-inputs -show-outputs miter\n"
    else:
        sat = (f"sat -tempinduct -prove gold_{{p}} gate_{{p}} -set-init-zero "
               f"-maxsteps {max_steps} -show-inputs -show-outputs miter\n")
    script = "read_rtlil equiv_miter.il\ndesign -save equiv_base\n"
    for p in outputs:
        script += (
            "design -load equiv_base\n"
            f"log EQUIV-OUTPUT {p}\n"
            f"delete -port miter/o:* miter/w:gold_{p} miter/w:gate_{p} %u %d\n"
            "opt_clean -purge\n"
            + sat.format(p=p)
        )
    log = work / "equiv.log"
    text = run_yosys(script, cwd=work, log=log, timeout_s=timeout_s)
    seconds = time.monotonic() - start

    verdicts: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("EQUIV-OUTPUT "):
            current = line.split(maxsplit=1)[1].strip()
        elif current is not None and ("SUCCESS!" in line or "FAIL!" in line
                                      or "proof failed" in line):
            verdicts.setdefault(current, line.strip())
    missing = [p for p in outputs if p not in verdicts]
    if missing:
        raise YosysError(f"no verdict from the SAT solver for {', '.join(missing)}; see {log}")
    success = "no model found: SUCCESS!" if comb else "Induction step proven"
    failed = [p for p in outputs if success not in verdicts[p]]
    if failed:
        summary = "not equivalent at " + ", ".join(
            f"{p} ({verdicts.get(p, 'no verdict')})" for p in failed)
    else:
        summary = f"{len(outputs)} outputs proven equal"
    return EquivalenceResult(equivalent=not failed, seconds=seconds, log=log, summary=summary,
                             outputs=tuple(outputs), failed=tuple(failed))


def coarse_cell_counts(
    verilog: Path | str | Sequence[Path | str],
    *,
    top: str,
    work_dir: Path,
    timeout_s: float = 600,
) -> dict[str, int]:
    """Cell types and counts of ``top`` after ``synth -flatten -run begin:fine``.

    That is the word-level netlist after ``proc``, ``opt``, ``wreduce``, ``alumacc``, ``share``
    and ``opt`` (Yosys' coarse synthesis), before the fine-grained techmap: a comparator is
    still one ``$alu`` cell and a multiplexer one ``$mux`` cell whatever their width, and
    logic the optimiser can prove unused or duplicated is gone.  Counts of
    ``$scopeinfo`` (hierarchy bookkeeping, no hardware) are left out.
    """
    _check_name(top)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    names = _stage(_as_list(verilog), work / "count_src")
    script = (
        "".join(f"read_verilog -sv {n}\n" for n in names)
        + f"synth -flatten -top {top} -run begin:fine\n"
        "tee -q -o cell_counts.json stat -json\n"
    )
    run_yosys(script, cwd=work, log=work / "cell_counts.log", timeout_s=timeout_s)
    data = json.loads((work / "cell_counts.json").read_text())
    module = data.get("modules", {}).get(f"\\{top}") or data.get("design", {})
    cells = dict(module.get("cells_by_type", module.get("num_cells_by_type", {})))
    cells.pop("$scopeinfo", None)
    return {k: int(v) for k, v in sorted(cells.items())}
