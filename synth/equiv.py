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

For the median units (Ozen 2023 §8.4.2, §8.6.2) this module also holds the proofs and counts
themselves: behavioural references written independently of the Amaranth networks (medians by a full
bubble sort in a Verilog function: :func:`median_unit_reference`,
:func:`median_array_reference`), the proofs of every construction against them
(:func:`prove_median_unit`, :func:`prove_median_cores`, :func:`prove_median_array`) and the
comparators and multiplexers of the synthesised cores (:func:`median_cell_counts`) next to the
construction's own figures (:func:`rtl_gen.median.expected_counts`).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ftaccel.errors import is_int
from ftaccel.rtl_gen.median import (
    emit_median_array,
    emit_median_core,
    emit_median_unit,
    emit_windowed_median_lane,
    expected_counts,
)
from ftaccel.synth.yosys import YosysError, run_yosys

__all__ = ["EquivalenceResult", "prove_equivalent", "coarse_cell_counts", "COMPARATOR_CELLS",
           "MUX_CELLS", "PAPER_PER_WINDOW", "median_array_reference",
           "median_cell_counts", "median_unit_reference", "prove_median_array",
           "prove_median_cores", "prove_median_unit", "prove_windowed_median"]

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
        """True when the designs are equivalent."""
        return self.equivalent


def _as_list(files: Path | str | Sequence[Path | str]) -> list[Path]:
    if isinstance(files, (str, Path)):
        return [Path(files)]
    return [Path(f) for f in files]


def _stage(files: list[Path], dest: Path) -> list[str]:
    """Copy ``files`` under ``dest`` and return their names relative to ``dest.parent``.

    The Yosys sandbox sees only relative paths below its working directory.
    """
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
    outputs = _prepare_miter(work, gold_names, gold_top, gate_names, gate_top, comb, timeout_s)
    log = work / "equiv.log"
    text = run_yosys(_proof_script(outputs, comb, max_steps), cwd=work, log=log,
                     timeout_s=timeout_s)
    seconds = time.monotonic() - start
    verdicts = _verdicts(text)
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


def _prepare_miter(work: Path, gold_names: list[str], gold_top: str, gate_names: list[str],
                   gate_top: str, comb: bool, timeout_s: float) -> list[str]:
    """Build the miter of the designs and return the outputs to prove.

    Read, flatten and check each design on its own, join them in a miter, map it to gates and keep
    it as RTLIL (``equiv_miter.il``).
    """
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
    return outputs


def _proof_script(outputs: list[str], comb: bool, max_steps: int) -> str:
    """One SAT call per output, each on the miter cut down to that output's cone."""
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
    return script


def _verdicts(log_text: str) -> dict[str, str]:
    """Output → the solver's first verdict line for it."""
    verdicts: dict[str, str] = {}
    current = None
    for line in log_text.splitlines():
        if line.startswith("EQUIV-OUTPUT "):
            current = line.split(maxsplit=1)[1].strip()
        elif current is not None and ("SUCCESS!" in line or "FAIL!" in line
                                      or "proof failed" in line):
            verdicts.setdefault(current, line.strip())
    return verdicts


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


# ---------------------------------------------------------------------------------------------
# The median units (Ozen 2023 §8.4.2, §8.6.2): emitted Verilog, behavioural references, proofs,
# netlist counts
# ---------------------------------------------------------------------------------------------
def _sort_function(width: int, window: int) -> str:
    """A Verilog function returning the median by a complete bubble sort (no pruning)."""
    v = [f"v{i}" for i in range(window)]
    lines = [
        f"  function signed [{width - 1}:0] ref_median;",
        *[f"    input signed [{width - 1}:0] a{i};" for i in range(window)],
        f"    reg signed [{width - 1}:0] {', '.join(v)}, t;",
        "    begin",
        *[f"      v{i} = a{i};" for i in range(window)],
    ]
    for last in range(window - 1, 0, -1):
        for j in range(last):
            lines.append(f"      if (v{j} > v{j + 1}) begin t = v{j}; v{j} = v{j + 1}; "
                         f"v{j + 1} = t; end")
    lines += [f"      ref_median = v{window // 2};", "    end", "  endfunction"]
    return "\n".join(lines) + "\n"


def median_unit_reference(*, width: int, window: int, name: str) -> str:
    """Behavioural Median-``window`` with the ports of ``Median3``/``Median5``.

    The ports are ``x__0`` …, ``median``.
    """
    ports = [f"x__{i}" for i in range(window)] + ["median"]
    text = f"// Behavioural reference: median of {window} by bubble sort.\n"
    text += f"module {name}({', '.join(ports)});\n"
    text += "".join(f"  input [{width - 1}:0] x__{i};\n" for i in range(window))
    text += f"  output [{width - 1}:0] median;\n"
    text += _sort_function(width, window)
    args = ", ".join(f"$signed(x__{i})" for i in range(window))
    text += f"  assign median = ref_median({args});\nendmodule\n"
    return text


def median_array_reference(*, width: int, lanes: int, window: int, name: str) -> str:
    """Behavioural ``MedianArray`` with the same ports as the Amaranth one.

    Zero padding, bubble-sort median per lane, ``ctl.enable`` pass-through, one register stage with
    synchronous reset; ports ``i__data__*``, ``i__valid``, ``ctl__enable``, ``o__data__*``,
    ``o__valid``.
    """
    h = window // 2
    ports = (["clk", "rst", "i__valid", "ctl__enable", "o__valid"]
             + [f"i__data__{i}" for i in range(lanes)] + [f"o__data__{i}" for i in range(lanes)])
    text = f"// Behavioural reference: median array, window {window}, {lanes} lanes.\n"
    text += f"module {name}({', '.join(ports)});\n"
    text += "  input clk, rst, i__valid, ctl__enable;\n  output reg o__valid;\n"
    text += "".join(f"  input [{width - 1}:0] i__data__{i};\n" for i in range(lanes))
    text += "".join(f"  output reg [{width - 1}:0] o__data__{i};\n" for i in range(lanes))
    text += _sort_function(width, window)

    def at(j: int) -> str:
        return f"$signed(i__data__{j})" if 0 <= j < lanes else f"{width}'sd0"

    text += "  always @(posedge clk) begin\n    if (rst) begin\n      o__valid <= 1'b0;\n"
    text += "".join(f"      o__data__{i} <= {width}'d0;\n" for i in range(lanes))
    text += "    end else begin\n      o__valid <= i__valid;\n"
    for i in range(lanes):
        args = ", ".join(at(j) for j in range(i - h, i + h + 1))
        text += f"      o__data__{i} <= ctl__enable ? ref_median({args}) : i__data__{i};\n"
    text += "    end\n  end\nendmodule\n"
    return text


def prove_median_unit(*, width: int, window: int, work_dir: Path) -> EquivalenceResult:
    """Prove the pruned ``Median3``/``Median5`` network equal to the bubble-sort reference."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    path, name = emit_median_unit(width=width, window=window, out_dir=work)
    ref_name = f"ref_median{window}_{width}b"
    ref = work / f"{ref_name}.v"
    ref.write_text(median_unit_reference(width=width, window=window, name=ref_name))
    return prove_equivalent(ref, path, gold_top=ref_name, gate_top=name, work_dir=work / "proof")


def prove_median_cores(*, width: int, lanes: int, window: int, work_dir: Path,
                        gate: Path | None = None, gate_top: str | None = None
                        ) -> EquivalenceResult:
    """Prove the shared ``SlidingMedian`` core equal to the plain one (combinational).

    ``gate``/``gate_top`` replace the shared core by another Verilog module (used by the tests
    to check that a broken variant fails the proof).
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    plain, plain_top = emit_median_core(width=width, lanes=lanes, window=window, variant="plain",
                                        out_dir=work)
    if gate is None:
        gate, gate_top = emit_median_core(width=width, lanes=lanes, window=window,
                                          variant="shared", out_dir=work)
    return prove_equivalent(plain, gate, gold_top=plain_top, gate_top=gate_top,
                            work_dir=work / "proof")


def prove_median_array(*, width: int, lanes: int, window: int, variant: str, work_dir: Path,
                gold: str = "reference") -> EquivalenceResult:
    """Prove a whole ``MedianArray`` (padding, enable, register) equal to a reference.

    Equal cycle by cycle from reset to the behavioural reference (``gold="reference"``) or to the
    plain array (``gold="plain"``), by temporal induction.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    gate, gate_top = emit_median_array(width=width, lanes=lanes, window=window, variant=variant,
                                       out_dir=work)
    if gold == "reference":
        gold_top = f"ref_median_array_w{window}_{width}b_n{lanes}"
        gold_path = work / f"{gold_top}.v"
        gold_path.write_text(median_array_reference(width=width, lanes=lanes, window=window,
                                                     name=gold_top))
    elif gold == "plain":
        gold_path, gold_top = emit_median_array(width=width, lanes=lanes, window=window,
                                                variant="plain", out_dir=work)
    else:
        raise ValueError(f"gold must be 'reference' or 'plain', not {gold!r}")
    return prove_equivalent(gold_path, gate, gold_top=gold_top, gate_top=gate_top,
                            work_dir=work / "proof", sequential=True)



def prove_windowed_median(*, width: int, window: int, work_dir: Path,
                          gate: Path | None = None, gate_top: str | None = None,
                          max_steps: int = 8) -> EquivalenceResult:
    """Prove the comparator-sharing ``WindowedMedianLane`` equal to the plain one (IS / OS).

    Sequential: equal outputs cycle by cycle from reset, by temporal induction (``max_steps``
    deep; the shared lane's comparison flags are a function of its last ``window − 1`` inputs,
    so induction closes after ``window`` steps).  ``gate``/``gate_top`` replace the shared lane
    by another Verilog module (the tests check that a broken one fails).
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    plain, plain_top = emit_windowed_median_lane(width=width, window=window, variant="plain",
                                                 out_dir=work)
    if gate is None:
        gate, gate_top = emit_windowed_median_lane(width=width, window=window,
                                                   variant="shared", out_dir=work)
    return prove_equivalent(plain, gate, gold_top=plain_top, gate_top=gate_top,
                            work_dir=work / "proof", sequential=True, max_steps=max_steps)


def median_cell_counts(*, width: int, lanes: int, window: int, variant: str, work_dir: Path,
                       of: str = "core") -> dict:
    """Comparators and multiplexers read from the synthesised netlist.

    ``of="core"``: the ``SlidingMedian`` core (``lanes`` windows over ``lanes + window - 1``
    free inputs), where the counts must equal :func:`rtl_gen.median.expected_counts`.
    ``of="array"``: the whole ``MedianArray``; its zero padding makes some comparisons
    constant, which Yosys simplifies, and it adds ``lanes`` pass-through multiplexers for
    ``enable``.

    Returns ``{"comparators", "muxes", "expected": {...} (core only), "cells": {type: count}}``.
    """
    work = Path(work_dir)
    if of == "core":
        path, top = emit_median_core(width=width, lanes=lanes, window=window, variant=variant,
                                     out_dir=work)
    elif of == "array":
        path, top = emit_median_array(width=width, lanes=lanes, window=window, variant=variant,
                                      out_dir=work)
    else:
        raise ValueError(f"of must be 'core' or 'array', not {of!r}")
    cells = coarse_cell_counts(path, top=top, work_dir=work / f"count_{top}")
    result = {
        "comparators": sum(cells.get(c, 0) for c in COMPARATOR_CELLS),
        "muxes": sum(cells.get(c, 0) for c in MUX_CELLS),
        "cells": cells,
    }
    if of == "core":
        result["expected"] = expected_counts(lanes=lanes, window=window, variant=variant)
    return result


#: Comparators and multiplexers per window after the first, as the seed states them (Ozen 2023
#: §8.6.2–8.7: shared Median-3 "only two comparisons", "multiplexers from 4 … to 2"; shared
#: Median-5 "only 4 comparators … instead of 7"; the seed gives no multiplexer figure for the
#: shared Median-5, nor a plain Median-5 multiplexer count: ``None``).
PAPER_PER_WINDOW = {
    ("plain", 3): (3, 4), ("shared", 3): (2, 2),
    ("plain", 5): (7, None), ("shared", 5): (4, None),
}
