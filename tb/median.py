"""Testbench of the median units: stimulus and simulation against the golden model.

* Stimulus (:func:`build_stimulus`): random full-range vectors, vectors full of ties, vectors
  of extremes (most negative / most positive / zero), constant vectors with one spike error and
  ramps with one spike, ``enable`` low rows (pass-through), gaps in ``in_valid``; every row is
  one cycle, back to back.
* Simulation (:func:`simulate_array`): emits ``MedianArray`` Verilog, plays the stimulus with
  :func:`tb.runner.run_stream` and returns the recorded outputs next to the golden model's
  (:func:`golden.median.median_array_stream`).

The formal proofs against behavioural references and the netlist counts live with the other
proofs, in :mod:`synth.equiv`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ftaccel.golden.median import median_array_stream
from ftaccel.rtl_gen.median import emit_median_array
from ftaccel.tb.runner import run_stream

__all__ = ["MedianStimulus", "build_stimulus", "simulate_array"]


# -- stimulus -----------------------------------------------------------------------------------

@dataclass
class MedianStimulus:
    """Median-array stimulus, one row per cycle, with the spikes injected into it.

    Rows drive ``data`` → ``i.data``, ``valid`` → ``i.valid``, ``enable`` → ``ctl.enable``.
    ``spikes`` lists ``(row, lane, clean_row)``: row ``row`` of ``data`` equals ``clean_row`` except
    at ``lane``, where a spike error was injected.
    """

    data: np.ndarray
    valid: np.ndarray
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


def build_stimulus(rng: np.random.Generator, *, lanes: int, width: int,
                   rows_per_kind: int = 16) -> MedianStimulus:
    """Random, tie, extreme, spike and pass-through rows, back to back (one per cycle)."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    k = rows_per_kind
    blocks = []
    # Random full-range vectors.
    blocks.append(rng.integers(lo, hi + 1, size=(k, lanes)))
    # Ties: a tiny alphabet makes equal values in most windows.
    alphabet = np.array(sorted({lo, -1, 0, 1, hi}))
    blocks.append(alphabet[rng.integers(len(alphabet), size=(k, lanes))])
    # Extremes only (and zero, the padding value).
    blocks.append(np.array([lo, hi, 0])[rng.integers(3, size=(k, lanes))])
    data = np.concatenate(blocks)
    spikes: list[tuple[int, int, np.ndarray]] = []
    spike_rows = []
    for r in range(2 * k):
        if r % 2 == 0:
            # Constant vector: every window whose other elements are correct must give c.
            clean = np.full(lanes, rng.integers(lo, hi + 1), dtype=np.int64)
        else:
            # Ramp (sorted values): the median must stay between the clean neighbours.
            clean = np.sort(rng.integers(lo // 2, hi // 2 + 1, size=lanes))
        lane = int(rng.integers(lanes))
        row = clean.copy()
        row[lane] = _spike_value(rng, int(clean[lane]), width)
        spikes.append((len(data) + len(spike_rows), lane, clean))
        spike_rows.append(row)
    data = np.concatenate([data, np.array(spike_rows, dtype=np.int64).reshape(-1, lanes)])
    # Pass-through rows (enable low) of random data, then a few rows to drain the register.
    passthrough = rng.integers(lo, hi + 1, size=(k, lanes))
    data = np.concatenate([data, passthrough, np.zeros((2, lanes), dtype=np.int64)])
    rows = len(data)
    enable = np.ones(rows, dtype=np.int64)
    enable[rows - k - 2: rows - 2] = 0
    enable[rng.random(rows) < 0.05] = 0  # and a few isolated switches
    valid = (rng.random(rows) < 0.9).astype(np.int64)
    valid[-2:] = 0
    return MedianStimulus(data=data.astype(np.int64), valid=valid, enable=enable, spikes=spikes)


def simulate_array(*, width: int, lanes: int, window: int, variant: str,
                   stimulus: MedianStimulus, build_dir: Path, sim: str | None = None):
    """Run ``MedianArray`` on ``stimulus``.

    Return ``(rtl, golden)``, each a dict with the unit's outputs ``o__data`` ``[T, lanes]`` and
    ``o__valid`` ``[T]``.
    """
    build_dir = Path(build_dir)
    path, name = emit_median_array(width=width, lanes=lanes, window=window, variant=variant,
                                   out_dir=build_dir)
    res = run_stream(
        verilog=[path], toplevel=name,
        inputs={"i__data": stimulus.data, "i__valid": stimulus.valid,
                "ctl__enable": stimulus.enable},
        outputs={"o__data": (lanes, True), "o__valid": (0, False)},
        build_dir=build_dir / "sim", sim=sim,
    )
    o_data, o_valid = median_array_stream(stimulus.data, stimulus.valid, stimulus.enable,
                                          window)
    rtl = {"o__data": res.outputs["o__data"].reshape(len(o_data), lanes),
           "o__valid": res.outputs["o__valid"]}
    return rtl, {"o__data": o_data, "o__valid": o_valid}
