"""Stimulus builders and runners for the Sanity-Check units (:mod:`rtl_gen.checksum`).

Each unit is emitted as its own registered top and played with :func:`tb.runner.run_stream`;
:func:`run_unit` returns the RTL recording *and* the golden model's recording of the same
stimulus (:func:`golden.checksum.simulate`), so a test compares every output port in every
cycle.  The stimulus builders produce fault-free traffic the way the accelerator would
(output vectors of a layer carrying a sanity neuron; input batches followed by their sanity
vector), and inject single bit errors at known cycles.

``lane_errors`` is recorded as an int64: keep ``lanes ≤ 62`` in simulations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftaccel.golden.bits import flip_bit, wrap
from ftaccel.golden.checksum import (
    SanityInputGeneratorModel,
    SpatialCheckerModel,
    TemporalCheckerModel,
    sanity_column,
    simulate,
    temporal_expected,
)
from ftaccel.rtl_gen.checksum import SanityInputGenerator, SpatialChecker, TemporalChecker
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.tb.runner import default_sim, run_stream, sim_cache_dir

__all__ = ["UNITS", "module_name", "make_unit", "run_unit", "layer_outputs",
           "spatial_stimulus", "batch_schedule", "generator_stimulus", "array_outputs",
           "temporal_stimulus_from"]

#: unit kind -> (component class, golden model class, output ports {name: (n or 0, signed)})
UNITS = {
    "spatial": (SpatialChecker, SpatialCheckerModel),
    "generator": (SanityInputGenerator, SanityInputGeneratorModel),
    "temporal": (TemporalChecker, TemporalCheckerModel),
}


def module_name(kind: str, params: dict) -> str:
    """A Verilog module name that encodes the parameters (one build per parameter set)."""
    short = {"width": "w", "lanes": "n", "residue_bits": "k", "index_bits": "i",
             "batch_bits": "b", "out_width": "o"}
    parts = [f"{short[k]}{0 if v is None else v}" for k, v in sorted(params.items())]
    return f"checksum_{kind}_" + "_".join(parts)


def make_unit(kind: str, **params):
    """``(component, golden model)`` of one unit kind with ``params``."""
    if kind not in UNITS:
        raise ValueError(f"invalid unit kind {kind!r}: one of {', '.join(UNITS)}")
    cls, model = UNITS[kind]
    return cls(**params), model(**params)


def _outputs(kind: str, dut) -> dict[str, tuple[int, bool]]:
    if kind == "spatial":
        return {"out_valid": (0, False), "error": (0, False), "alarm": (0, False),
                "first_index": (0, False), "checksum": (0, True)}
    if kind == "generator":
        return {"o__data": (dut.lanes, True), "o__valid": (0, False),
                "sanity": (0, False), "ready": (0, False), "overrun": (0, False)}
    return {"checked": (0, False), "error": (0, False), "lane_errors": (0, False),
            "alarm": (0, False), "first_index": (0, False)}


def run_unit(kind: str, params: dict, inputs: dict[str, np.ndarray], *,
             build_root: Path | None = None, sim: str | None = None):
    """Play ``inputs`` on the RTL of one unit; return ``(rtl, golden)`` recordings.

    Both are dicts ``port -> [T]`` / ``[T, n]``; row t = registered outputs before the inputs
    of cycle t (row 0: the reset state), so the answer to input row t is in row t + 1.
    """
    sim = (sim or default_sim()).lower()
    dut, model = make_unit(kind, **params)
    name = module_name(kind, params)
    # the unit's Verilog goes to the caller's folder, else the user's cache (never the package)
    bdir = (Path(build_root) if build_root else sim_cache_dir() / "units") / name
    path = write_verilog(dut, name, dut.config(), bdir / f"{name}.v")
    res = run_stream(verilog=[path], toplevel=name, inputs=inputs,
                     outputs=_outputs(kind, dut), build_dir=bdir / sim, sim=sim)
    return res.outputs, simulate(model, inputs)


# --------------------------------------------------------------------------------------------
# spatial: output vectors of a layer with a sanity neuron
# --------------------------------------------------------------------------------------------
def layer_outputs(rng: np.random.Generator, T: int, *, cols: int, k_in: int = 8,
                  a_width: int = 8, w_width: int = 8, bias: bool = True):
    """``T`` fault-free output vectors of ``A @ [B | s] + [bias | s_b]``.

    C real lanes and the sanity lane, which sum to zero (Eq. 6.2). Returns ``(vectors [T, C+1], lane
    width)``.

    Activations mix full-range values and runs of extremes (most negative operands), so the
    sanity lane reaches the top of its range now and then.
    """
    lo_a, hi_a = -(1 << (a_width - 1)), 1 << (a_width - 1)
    lo_w, hi_w = -(1 << (w_width - 1)), 1 << (w_width - 1)
    B = rng.integers(lo_w, hi_w, (k_in, cols))
    B[:, : max(1, cols // 4)] = lo_w  # extreme weights: the sanity column's worst case
    b = rng.integers(-1000, 1000, cols) if bias else np.zeros(cols, dtype=np.int64)
    s, sb = sanity_column(B, b)
    A = rng.integers(lo_a, hi_a, (T, k_in))
    A[rng.random(T) < 0.1] = lo_a
    out = A @ np.hstack([B, s[:, None]]) + np.append(b, sb)[None, :]
    width = int(np.abs(out).max()).bit_length() + 2
    return out, width


def spatial_stimulus(rng: np.random.Generator, vectors: np.ndarray, *, width: int,
                     errors: int = 0, clears: int = 0, gaps: float = 0.2,
                     threshold: int | np.ndarray = 0, max_bit: int | None = None):
    """A spatial-checker stimulus.

    ``vectors`` presented with random idle cycles (``gaps``), ``errors`` single bit flips (random
    vector, lane and bit below ``max_bit``, default ``width``) and ``clears`` clear pulses.

    Returns ``(inputs, flips)`` with ``flips`` a list of ``(cycle, lane, bit)``.
    """
    V = np.asarray(vectors, dtype=np.int64)
    n = V.shape[1]
    slots = []
    for v in range(len(V)):
        while rng.random() < gaps:
            slots.append(-1)
        slots.append(v)
    slots.append(-1)
    T = len(slots)
    idx = np.array(slots)
    valid = (idx >= 0).astype(np.int64)
    data = np.where(valid[:, None] == 1, V[np.maximum(idx, 0)],
                    rng.integers(-(1 << (width - 1)), 1 << (width - 1), (T, n)))
    flips = []
    cyc = rng.choice(np.flatnonzero(valid), size=min(errors, int(valid.sum())), replace=False)
    for c in sorted(cyc.tolist()):
        lane, bit = int(rng.integers(0, n)), int(rng.integers(0, max_bit or width))
        data[c, lane] = flip_bit(data[c, lane], bit, width)
        flips.append((c, lane, bit))
    clear = np.zeros(T, dtype=np.int64)
    if clears:
        clear[rng.choice(T, size=clears, replace=False)] = 1
    inputs = {"data": data, "valid": valid, "expected": np.zeros(T, dtype=np.int64),
              "threshold": np.broadcast_to(np.asarray(threshold, np.int64), (T,)).copy(),
              "clear": clear}
    return inputs, flips


# --------------------------------------------------------------------------------------------
# temporal: batches, the generator, the array, the checker
# --------------------------------------------------------------------------------------------
def batch_schedule(M: int, batch: int, *, gaps: float = 0.0, rng=None):
    """Driver timing for M input vectors in temporal batches of ``batch``.

    The row index of the vector offered in each cycle (-1 = idle), and ``last`` per cycle.

    One idle cycle follows the vector that closes each batch (the generator's sanity slot,
    ``ready`` low); the last vector carries ``last`` when M is not a multiple of
    ``batch`` (always when ``batch = 0``).  ``gaps`` adds random extra idle cycles.
    """
    size = batch or M  # batch 0: one batch, closed by last
    rows, last = [], []
    for m in range(M):
        while rng is not None and rng.random() < gaps:
            rows.append(-1)
            last.append(0)
        closes = (m + 1) % size == 0 or m == M - 1
        rows.append(m)
        last.append(int(m == M - 1 and (batch == 0 or (m + 1) % batch != 0)))
        if closes:
            rows.append(-1)  # the sanity vector's slot
            last.append(0)
    return np.array(rows), np.array(last)


def generator_stimulus(A: np.ndarray, batch: int, *, rng=None, gaps: float = 0.0,
                       tail: int = 2) -> dict[str, np.ndarray]:
    """Generator inputs that stream the rows of ``A`` in batches of ``batch``.

    Protocol kept: no input while ``ready`` is low; then ``tail`` idle cycles.
    """
    rows, last = batch_schedule(len(A), batch, gaps=gaps, rng=rng)
    rows = np.concatenate([rows, -np.ones(tail, dtype=np.int64)])
    last = np.concatenate([last, np.zeros(tail, dtype=np.int64)])
    T = len(rows)
    valid = (rows >= 0).astype(np.int64)
    data = np.where(valid[:, None] == 1, np.asarray(A)[np.maximum(rows, 0)], 0)
    return {"i__data": data, "i__valid": valid, "last": last * valid,
            "batch": np.full(T, batch), "clear": np.zeros(T, dtype=np.int64)}


def array_outputs(gen_rec: dict[str, np.ndarray], W: np.ndarray, bias: np.ndarray,
                  *, latency: int = 3):
    """What the array would deliver for the generator's recorded output stream.

    Each valid ``o__data`` row times ``W`` plus ``bias``, ``latency`` cycles later, with ``valid``
    and ``last`` (= ``sanity``) delayed alongside. Returns ``(data [T, n], valid, last)``.
    """
    x = gen_rec["o__data"]
    v = gen_rec["o__valid"]
    s = gen_rec["sanity"]
    T = len(v) + latency
    data = np.zeros((T, W.shape[1]), dtype=np.int64)
    valid = np.zeros(T, dtype=np.int64)
    last = np.zeros(T, dtype=np.int64)
    y = x @ W + bias[None, :]
    data[latency:] = np.where(v[:, None] == 1, y, 0)
    valid[latency:] = v
    last[latency:] = s * v
    return data, valid, last


def temporal_stimulus_from(data, valid, last, bias, *, threshold: int = 0,
                           residue_bits: int | None = None):
    """Temporal-checker inputs for an output stream.

    ``expected`` per cycle is the bias times the number of vectors of the batch the cycle belongs to
    (so a short last batch has its own constant), computed from the ``last`` flags; wrapped to
    ``residue_bits`` (the port is that wide in residue mode).
    """
    T, n = data.shape
    expected = np.zeros((T, n), dtype=np.int64)
    start = 0
    for t in range(T):
        if valid[t] and last[t]:
            count = int(valid[start:t + 1].sum())
            expected[start:t + 1] = temporal_expected(bias, count)[None, :]
            start = t + 1
    if residue_bits is not None:
        expected = wrap(expected, residue_bits)
    return {"data": data, "valid": valid, "last": last, "expected": expected,
            "threshold": np.full(T, threshold), "clear": np.zeros(T, dtype=np.int64)}
