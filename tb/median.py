"""Verification of the median units: stimulus, simulation, behavioural references, proofs, counts.

* Stimulus (:func:`build_stimulus`): random full-range vectors, vectors full of ties, vectors
  of extremes (most negative / most positive / zero), constant vectors with one spike error and
  ramps with one spike, ``enable`` low rows (pass-through), gaps in ``in_valid``; every row is
  one cycle, back to back.
* Simulation (:func:`simulate_array`): emits ``MedianArray`` Verilog, plays the stimulus with
  :func:`tb.runner.run_stream` and returns the recorded outputs next to the golden model's
  (:func:`golden.median.median_array_stream`).
* Behavioural references in Verilog (:func:`reference_unit_verilog`,
  :func:`reference_array_verilog`): medians by a full bubble sort in a Verilog function, written
  independently of the Amaranth networks, for the formal proofs.
* Proofs (:func:`prove_unit`, :func:`prove_core_variants`, :func:`prove_array`) through
  :func:`synth.equiv.prove_equivalent`.
* Netlist counts (:func:`median_cell_counts`): comparators and multiplexers of the synthesised
  core, next to the construction's figures (:func:`rtl_gen.median.expected_counts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ftaccel.golden.median import median_array_stream
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.rtl_gen.median import Median3, Median5, MedianArray, SlidingMedian, expected_counts
from ftaccel.synth.equiv import (
    COMPARATOR_CELLS,
    MUX_CELLS,
    EquivalenceResult,
    coarse_cell_counts,
    prove_equivalent,
)
from ftaccel.tb.runner import run_stream

__all__ = [
    "MedianStimulus",
    "build_stimulus",
    "emit_array",
    "emit_core",
    "emit_unit",
    "simulate_array",
    "reference_unit_verilog",
    "reference_array_verilog",
    "prove_unit",
    "prove_core_variants",
    "prove_array",
    "median_cell_counts",
    "count_table",
    "PAPER_PER_WINDOW",
]


# -- Verilog emission ---------------------------------------------------------------------------

def array_name(width: int, n: int, window: int, variant: str) -> str:
    return f"median_array_w{window}_{variant}_{width}b_n{n}"


def emit_array(*, width: int, n: int, window: int, variant: str, out_dir: Path) -> tuple[Path, str]:
    """Write ``MedianArray`` Verilog under ``out_dir``; return ``(path, module name)``."""
    dut = MedianArray(width=width, n=n, window=window, variant=variant)
    name = array_name(width, n, window, variant)
    path = write_verilog(dut, name, dut.config(), Path(out_dir) / f"{name}.v")
    return path, name


def emit_core(*, width: int, n: int, window: int, variant: str, out_dir: Path) -> tuple[Path, str]:
    """Write the combinational ``SlidingMedian`` core; return ``(path, module name)``."""
    dut = SlidingMedian(width=width, n=n, window=window, variant=variant)
    name = f"sliding_median_w{window}_{variant}_{width}b_n{n}"
    config = {"unit": "sliding_median", "width": width, "n": n, "window": window,
              "variant": variant}
    path = write_verilog(dut, name, config, Path(out_dir) / f"{name}.v")
    return path, name


def emit_unit(*, width: int, window: int, out_dir: Path) -> tuple[Path, str]:
    """Write a ``Median3`` or ``Median5`` unit; return ``(path, module name)``."""
    unit = {3: Median3, 5: Median5}[window](width=width)
    name = f"median{window}_{width}b"
    path = write_verilog(unit, name, {"unit": f"median{window}", "width": width},
                         Path(out_dir) / f"{name}.v")
    return path, name


# -- stimulus -----------------------------------------------------------------------------------

@dataclass
class MedianStimulus:
    """One row per cycle.  ``spikes`` lists ``(row, lane, clean_row)``: row ``row`` of
    ``data_in`` equals ``clean_row`` except at ``lane``, where a spike error was injected."""

    data_in: np.ndarray
    in_valid: np.ndarray
    enable: np.ndarray
    spikes: list[tuple[int, int, np.ndarray]] = field(default_factory=list)


def _spike_value(rng: np.random.Generator, clean: int, width: int) -> int:
    """A large error: flip the most significant magnitude bit or jump to an extreme."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    kind = rng.integers(3)
    if kind == 0:
        return hi if clean < 0 else lo
    flipped = clean ^ (1 << (width - 2))  # the bit below the sign: a big numerical jump
    if kind == 1:
        return flipped
    return hi if rng.integers(2) else lo


def build_stimulus(rng: np.random.Generator, *, n: int, width: int,
                   rows_per_kind: int = 16) -> MedianStimulus:
    """Random, tie, extreme, spike and pass-through rows, back to back (one per cycle)."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    k = rows_per_kind
    blocks = []
    # Random full-range vectors.
    blocks.append(rng.integers(lo, hi + 1, size=(k, n)))
    # Ties: a tiny alphabet makes equal values in most windows.
    alphabet = np.array(sorted({lo, -1, 0, 1, hi}))
    blocks.append(alphabet[rng.integers(len(alphabet), size=(k, n))])
    # Extremes only (and zero, the padding value).
    blocks.append(np.array([lo, hi, 0])[rng.integers(3, size=(k, n))])
    data = np.concatenate(blocks)
    spikes: list[tuple[int, int, np.ndarray]] = []
    spike_rows = []
    for r in range(2 * k):
        if r % 2 == 0:
            # Constant vector: every window whose other elements are correct must give c.
            clean = np.full(n, rng.integers(lo, hi + 1), dtype=np.int64)
        else:
            # Ramp (sorted values): the median must stay between the clean neighbours.
            clean = np.sort(rng.integers(lo // 2, hi // 2 + 1, size=n))
        lane = int(rng.integers(n))
        row = clean.copy()
        row[lane] = _spike_value(rng, int(clean[lane]), width)
        spikes.append((len(data) + len(spike_rows), lane, clean))
        spike_rows.append(row)
    data = np.concatenate([data, np.array(spike_rows, dtype=np.int64).reshape(-1, n)])
    # Pass-through rows (enable low) of random data, then a few rows to drain the register.
    passthrough = rng.integers(lo, hi + 1, size=(k, n))
    data = np.concatenate([data, passthrough, np.zeros((2, n), dtype=np.int64)])
    rows = len(data)
    enable = np.ones(rows, dtype=np.int64)
    enable[rows - k - 2: rows - 2] = 0
    enable[rng.random(rows) < 0.05] = 0  # and a few isolated switches
    in_valid = (rng.random(rows) < 0.9).astype(np.int64)
    in_valid[-2:] = 0
    return MedianStimulus(data_in=data.astype(np.int64), in_valid=in_valid, enable=enable,
                          spikes=spikes)


def simulate_array(*, width: int, n: int, window: int, variant: str, stimulus: MedianStimulus,
                   build_dir: Path, sim: str | None = None):
    """Run ``MedianArray`` on ``stimulus``; return ``(rtl, golden)``, each a dict with
    ``data_out`` ``[T, n]`` and ``out_valid`` ``[T]``."""
    build_dir = Path(build_dir)
    path, name = emit_array(width=width, n=n, window=window, variant=variant, out_dir=build_dir)
    res = run_stream(
        verilog=[path], toplevel=name,
        inputs={"data_in": stimulus.data_in, "in_valid": stimulus.in_valid,
                "enable": stimulus.enable},
        outputs={"data_out": (n, True), "out_valid": (0, False)},
        build_dir=build_dir / "sim", sim=sim,
    )
    data_out, out_valid = median_array_stream(stimulus.data_in, stimulus.in_valid,
                                              stimulus.enable, window)
    rtl = {"data_out": res.outputs["data_out"].reshape(len(data_out), n),
           "out_valid": res.outputs["out_valid"]}
    return rtl, {"data_out": data_out, "out_valid": out_valid}


# -- behavioural references in Verilog ------------------------------------------------------------

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


def reference_unit_verilog(*, width: int, window: int, name: str) -> str:
    """Behavioural Median-``window`` with the ports of ``Median3``/``Median5``
    (``x__0`` …, ``median``)."""
    ports = [f"x__{i}" for i in range(window)] + ["median"]
    text = f"// Behavioural reference: median of {window} by bubble sort.\n"
    text += f"module {name}({', '.join(ports)});\n"
    text += "".join(f"  input [{width - 1}:0] x__{i};\n" for i in range(window))
    text += f"  output [{width - 1}:0] median;\n"
    text += _sort_function(width, window)
    args = ", ".join(f"$signed(x__{i})" for i in range(window))
    text += f"  assign median = ref_median({args});\nendmodule\n"
    return text


def reference_array_verilog(*, width: int, n: int, window: int, name: str) -> str:
    """Behavioural ``MedianArray``: zero padding, bubble-sort median per lane, ``enable``
    pass-through, one register stage with synchronous reset; same ports as the Amaranth one."""
    h = window // 2
    ports = (["clk", "rst", "in_valid", "enable", "out_valid"]
             + [f"data_in__{i}" for i in range(n)] + [f"data_out__{i}" for i in range(n)])
    text = f"// Behavioural reference: median array, window {window}, {n} lanes.\n"
    text += f"module {name}({', '.join(ports)});\n"
    text += "  input clk, rst, in_valid, enable;\n  output reg out_valid;\n"
    text += "".join(f"  input [{width - 1}:0] data_in__{i};\n" for i in range(n))
    text += "".join(f"  output reg [{width - 1}:0] data_out__{i};\n" for i in range(n))
    text += _sort_function(width, window)

    def at(j: int) -> str:
        return f"$signed(data_in__{j})" if 0 <= j < n else f"{width}'sd0"

    text += "  always @(posedge clk) begin\n    if (rst) begin\n      out_valid <= 1'b0;\n"
    text += "".join(f"      data_out__{i} <= {width}'d0;\n" for i in range(n))
    text += "    end else begin\n      out_valid <= in_valid;\n"
    for i in range(n):
        args = ", ".join(at(j) for j in range(i - h, i + h + 1))
        text += f"      data_out__{i} <= enable ? ref_median({args}) : data_in__{i};\n"
    text += "    end\n  end\nendmodule\n"
    return text


# -- proofs -------------------------------------------------------------------------------------

def prove_unit(*, width: int, window: int, work_dir: Path) -> EquivalenceResult:
    """Prove the pruned ``Median3``/``Median5`` network equal to the bubble-sort reference."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    path, name = emit_unit(width=width, window=window, out_dir=work)
    ref_name = f"ref_median{window}_{width}b"
    ref = work / f"{ref_name}.v"
    ref.write_text(reference_unit_verilog(width=width, window=window, name=ref_name))
    return prove_equivalent(ref, path, gold_top=ref_name, gate_top=name, work_dir=work / "proof")


def prove_core_variants(*, width: int, n: int, window: int, work_dir: Path,
                        gate: Path | None = None, gate_top: str | None = None
                        ) -> EquivalenceResult:
    """Prove the shared ``SlidingMedian`` core equal to the plain one (combinational).

    ``gate``/``gate_top`` replace the shared core by another Verilog module (used by the tests
    to check that a broken variant fails the proof)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    plain, plain_top = emit_core(width=width, n=n, window=window, variant="plain", out_dir=work)
    if gate is None:
        gate, gate_top = emit_core(width=width, n=n, window=window, variant="shared",
                                   out_dir=work)
    return prove_equivalent(plain, gate, gold_top=plain_top, gate_top=gate_top,
                            work_dir=work / "proof")


def prove_array(*, width: int, n: int, window: int, variant: str, work_dir: Path,
                gold: str = "reference") -> EquivalenceResult:
    """Prove a whole ``MedianArray`` (padding, enable, register) equal, cycle by cycle from
    reset, to the behavioural reference (``gold="reference"``) or to the plain array
    (``gold="plain"``), by temporal induction."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    gate, gate_top = emit_array(width=width, n=n, window=window, variant=variant, out_dir=work)
    if gold == "reference":
        gold_top = f"ref_median_array_w{window}_{width}b_n{n}"
        gold_path = work / f"{gold_top}.v"
        gold_path.write_text(reference_array_verilog(width=width, n=n, window=window,
                                                     name=gold_top))
    elif gold == "plain":
        gold_path, gold_top = emit_array(width=width, n=n, window=window, variant="plain",
                                         out_dir=work)
    else:
        raise ValueError(f"gold must be 'reference' or 'plain', not {gold!r}")
    return prove_equivalent(gold_path, gate, gold_top=gold_top, gate_top=gate_top,
                            work_dir=work / "proof", sequential=True)


# -- netlist counts -----------------------------------------------------------------------------

def median_cell_counts(*, width: int, n: int, window: int, variant: str, work_dir: Path,
                       of: str = "core") -> dict:
    """Comparators and multiplexers read from the synthesised netlist.

    ``of="core"``: the ``SlidingMedian`` core (``n`` windows over ``n + window - 1`` free
    inputs), where the counts must equal :func:`rtl_gen.median.expected_counts`.
    ``of="array"``: the whole ``MedianArray``; its zero padding makes some comparisons
    constant, which Yosys simplifies, and it adds ``n`` pass-through multiplexers for
    ``enable``.

    Returns ``{"comparators", "muxes", "expected": {...} (core only), "cells": {type: count}}``.
    """
    work = Path(work_dir)
    if of == "core":
        path, top = emit_core(width=width, n=n, window=window, variant=variant, out_dir=work)
    elif of == "array":
        path, top = emit_array(width=width, n=n, window=window, variant=variant, out_dir=work)
    else:
        raise ValueError(f"of must be 'core' or 'array', not {of!r}")
    cells = coarse_cell_counts(path, top=top, work_dir=work / f"count_{top}")
    result = {
        "comparators": sum(cells.get(c, 0) for c in COMPARATOR_CELLS),
        "muxes": sum(cells.get(c, 0) for c in MUX_CELLS),
        "cells": cells,
    }
    if of == "core":
        result["expected"] = expected_counts(n=n, window=window, variant=variant)
    return result


#: Comparators and multiplexers per window after the first, as the seed states them (000
#: L1714–L1727: shared Median-3 "only two comparisons", "multiplexers from 4 … to 2"; shared
#: Median-5 "only 4 comparators … instead of 7"; the seed gives no multiplexer figure for the
#: shared Median-5, nor a plain Median-5 multiplexer count: ``None``).
PAPER_PER_WINDOW = {
    ("plain", 3): (3, 4), ("shared", 3): (2, 2),
    ("plain", 5): (7, None), ("shared", 5): (4, None),
}


def count_table(*, width: int = 8, ns: tuple[int, ...] = (1, 4, 8, 16), work_dir: Path) -> list:
    """Netlist comparator/multiplexer counts of the cores for each window, variant and ``n``,
    with the marginal cost of one more window and the seed's figure beside it.

    Returns a list of dicts: ``window, variant, n, comparators, muxes, expected_comparators,
    expected_muxes, per_window (comparators, muxes) from the last two n, paper_per_window``.
    """
    rows = []
    for window in (3, 5):
        for variant in ("plain", "shared"):
            prev = None
            for n in ns:
                c = median_cell_counts(width=width, n=n, window=window, variant=variant,
                                       work_dir=work_dir)
                per_window = None
                if prev is not None:
                    dn = n - prev[0]
                    per_window = ((c["comparators"] - prev[1]) / dn, (c["muxes"] - prev[2]) / dn)
                rows.append({
                    "window": window, "variant": variant, "n": n,
                    "comparators": c["comparators"], "muxes": c["muxes"],
                    "expected_comparators": c["expected"]["comparators"],
                    "expected_muxes": c["expected"]["muxes"],
                    "per_window": per_window,
                    "paper_per_window": PAPER_PER_WINDOW[variant, window],
                })
                prev = (n, c["comparators"], c["muxes"])
    return rows
