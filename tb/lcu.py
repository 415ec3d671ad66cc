"""Stimulus builders and runners for the LCU (:mod:`rtl_gen.lcu`) and its correction controller.

* :func:`fault_scenarios` builds named sets of three copies of a value with bit flips injected
  on the copies' outputs; the LCU sees copies 0 and 1, the TMR voters (:mod:`tb.tmr`) all
  three, so both protections meet *the same* faults.
* :func:`run_lcu` plays ``(a, b)`` rows on the registered LCU and returns the outputs aligned
  with the input rows.
* :func:`run_controller` plays one or more *jobs* on :class:`rtl_gen.lcu.CorrectionController`:
  load the buffer (optional), load the pair list, pulse ``start``, wait (optionally poking the
  host ports while busy, which the controller must ignore), read the whole buffer back.  It
  returns, per job, the buffer read back and the measured cycles from ``start`` to ``done``.
* :class:`BufferScript` builds a per-cycle stimulus for the banked buffer (``lanes`` words per
  row) operation by operation: captures of whole output vectors (with ``cap_clear``, and
  colliding host writes), host word writes, pair-list loads, correction runs (optionally
  poking every input while busy, and capturing in the cycle of ``start``), read-back; with
  a generator, every other cycle also reads a random row (or word), so reads are checked all
  along.  :func:`run_buffer_script` plays it and returns every output port, to compare row by
  row with :class:`golden.lcu.ControllerModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ftaccel.golden.bits import flip_bit
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.rtl_gen.lcu import LCU, CorrectionController, controller_cycles
from ftaccel.tb.runner import default_sim, run_stream

__all__ = ["SCENARIOS", "fault_scenarios", "generate_lcu", "run_lcu", "ControllerJob",
           "controller_stimulus", "generate_controller", "run_controller", "BufferScript",
           "run_buffer_script"]

#: Fault scenarios of :func:`fault_scenarios`, in order.
SCENARIOS = (
    "clean",            # no fault, non-negative split-half values
    "one_0to1",         # one copy (0 or 1), one bit that is 0 flipped to 1 (sign bit included)
    "one_1to0",         # one copy, one bit that is 1 flipped to 0
    "both_msb_0to1",    # copies 0 and 1, bit width-2 flipped 0->1 in both
    "two_same_bit",     # copies 0 and 1, the same random bit flipped in both
    "two_diff_bits",    # copies 0 and 1, a different random bit flipped in each
    "negative_clean",   # no fault, negative values (the LCU's unsound domain)
    "negative_one",     # negative values, one random bit flipped in one copy
)


def _bit_where(rng: np.random.Generator, v: np.ndarray, width: int, value: int) -> np.ndarray:
    """A random bit position per element of ``v`` where the bit equals ``value``."""
    bits = (np.asarray(v, dtype=np.int64)[:, None] >> np.arange(width)) & 1
    ok = bits == value
    if not ok.any(axis=1).all():
        raise ValueError(f"some values have no bit equal to {value}")
    keys = np.where(ok, rng.random(ok.shape), -1.0)
    return keys.argmax(axis=1)


def fault_scenarios(rng: np.random.Generator, n: int, *, width: int) -> dict[str, dict]:
    """``n`` cases per scenario of :data:`SCENARIOS`.

    Each scenario is a dict with ``clean`` ``[n]`` (the fault-free value, the same in all
    three copies), ``copies`` ``[n, 3]`` (after the faults), ``bits`` ``[n, 2]`` (flipped bit
    in copy 0 / copy 1, −1 for none).  Clean non-negative values are split halves:
    ``0 … 2**(width−2) − 1``, edges 0 and the maximum always included; negative ones cover
    ``−2**(width−1) … −1`` with both edges.
    """
    half_max = (1 << (width - 2)) - 1
    lo = -(1 << (width - 1))

    def halves(k, low=0):
        v = rng.integers(low, half_max + 1, size=k)
        v[: min(k, 2)] = [low, half_max][: min(k, 2)]
        return v

    def negatives(k):
        v = rng.integers(lo, 0, size=k)
        v[: min(k, 3)] = [lo, -1, -(1 << (width - 2))][: min(k, 3)]
        return v

    out = {}
    for name in SCENARIOS:
        if name == "one_1to0":
            clean = halves(n, low=1)  # a value with at least one 1 bit
        elif name.startswith("negative"):
            clean = negatives(n)
        else:
            clean = halves(n)
        copies = np.repeat(clean[:, None], 3, axis=1)
        bits = np.full((n, 2), -1, dtype=np.int64)
        which = rng.integers(0, 2, size=n)  # copy hit by a single fault
        rows = np.arange(n)
        if name in ("one_0to1", "one_1to0", "negative_one"):
            if name == "negative_one":
                bit = rng.integers(0, width, size=n)
            else:
                bit = _bit_where(rng, clean, width, 0 if name == "one_0to1" else 1)
            copies[rows, which] = flip_bit(clean, bit, width)
            bits[rows, which] = bit
        elif name in ("both_msb_0to1", "two_same_bit", "two_diff_bits"):
            if name == "both_msb_0to1":
                b0 = b1 = np.full(n, width - 2)
            elif name == "two_same_bit":
                b0 = b1 = rng.integers(0, width, size=n)
            else:
                b0 = rng.integers(0, width, size=n)
                b1 = (b0 + rng.integers(1, width, size=n)) % width
            copies[:, 0] = flip_bit(clean, b0, width)
            copies[:, 1] = flip_bit(clean, b1, width)
            bits[:, 0], bits[:, 1] = b0, b1
        out[name] = {"clean": clean.astype(np.int64), "copies": copies.astype(np.int64),
                     "bits": bits}
    return out


# -- LCU ------------------------------------------------------------------------------------
def _lcu_name(width: int, mask: int | None) -> str:
    return f"lcu_w{width}" + ("" if mask is None else f"_m{mask:x}")


def generate_lcu(*, width: int, mask: int | None = None, build_dir: Path) -> tuple[Path, str]:
    """Emit the registered LCU; return ``(path, module name)``."""
    dut = LCU(width=width, mask=mask, registered=True)
    name = _lcu_name(width, mask)
    return write_verilog(dut, name, dut.config(), Path(build_dir) / f"{name}.v"), name


def run_lcu(a, b, *, width: int, mask: int | None = None, build_dir: Path,
            sim: str | None = None) -> np.ndarray:
    """LCU outputs for rows ``(a[t], b[t])``, aligned.

    Element ``t`` answers input row ``t`` (recorded one cycle later; one idle row is appended to
    read the last answer).
    """
    sim = (sim or default_sim()).lower()
    path, name = generate_lcu(width=width, mask=mask, build_dir=build_dir)
    a = np.append(np.asarray(a, dtype=np.int64), 0)
    b = np.append(np.asarray(b, dtype=np.int64), 0)
    res = run_stream(verilog=[path], toplevel=name, inputs={"a": a, "b": b},
                     outputs={"out": (0, True)}, build_dir=Path(build_dir) / sim, sim=sim)
    return res.outputs["out"][1:]


# -- controller -----------------------------------------------------------------------------
@dataclass
class ControllerJob:
    """One controller run.

    ``init``: buffer contents to write first (``None`` keeps what the previous job left);
    ``pairs``: ``[n, 2]`` buffer indices; ``n_pairs``: the value put on the port (default
    ``len(pairs)``; larger values test the clamp to ``max_pairs``); ``poke``: while busy, drive
    random host buffer writes, pair-list writes and ``start`` pulses every cycle (all must be
    ignored).
    """

    pairs: np.ndarray
    init: np.ndarray | None = None
    n_pairs: int | None = None
    poke: bool = False
    rng_seed: int = 0
    # filled in by controller_stimulus: row indices of the job's events
    rows: dict = field(default_factory=dict)


_CTRL_INPUTS = ("buf_wr_en", "buf_wr_addr", "buf_wr_data", "buf_rd_addr", "pair_wr_en",
                "pair_wr_index", "pair_wr_a", "pair_wr_b", "n_pairs", "start")


def controller_stimulus(jobs: list[ControllerJob], *, width: int, depth: int,
                        max_pairs: int) -> dict[str, np.ndarray]:
    """Per-cycle rows for ``jobs`` played back to back (fills ``job.rows``)."""
    rows: list[dict[str, int]] = []

    def row(**kw):
        rows.append(kw)
        return len(rows) - 1

    for job in jobs:
        pairs = np.asarray(job.pairs, dtype=np.int64).reshape(-1, 2)
        n_port = len(pairs) if job.n_pairs is None else job.n_pairs
        n_run = min(n_port, max_pairs)
        if len(pairs) > max_pairs:
            raise ValueError(f"{len(pairs)} pairs do not fit max_pairs = {max_pairs}")
        if n_run > len(pairs):
            raise ValueError("n_pairs (after the clamp) exceeds the pairs given")
        rng = np.random.default_rng(job.rng_seed)
        if job.init is not None:
            for i, v in enumerate(np.asarray(job.init, dtype=np.int64)):
                row(buf_wr_en=1, buf_wr_addr=i, buf_wr_data=int(v))
        for i, (a, b) in enumerate(pairs):
            row(pair_wr_en=1, pair_wr_index=i, pair_wr_a=int(a), pair_wr_b=int(b))
        start = row(start=1, n_pairs=n_port)
        wait = controller_cycles(n_run) + 1
        lo, hi = -(1 << (width - 1)), 1 << (width - 1)
        for k in range(1, wait + 1):
            busy_row = k < controller_cycles(n_run)
            if job.poke and busy_row:
                row(buf_wr_en=1, buf_wr_addr=int(rng.integers(0, depth)),
                    buf_wr_data=int(rng.integers(lo, hi)), buf_rd_addr=int(rng.integers(0, depth)),
                    pair_wr_en=1, pair_wr_index=int(rng.integers(0, max_pairs)),
                    pair_wr_a=int(rng.integers(0, depth)), pair_wr_b=int(rng.integers(0, depth)),
                    start=1, n_pairs=int(rng.integers(0, max_pairs + 1)))
            else:
                row()
        first_read = len(rows)
        for i in range(depth):
            row(buf_rd_addr=i)
        row()
        job.rows = {"start": start, "first_read": first_read, "end": len(rows)}
    stim = {k: np.zeros(len(rows), dtype=np.int64) for k in _CTRL_INPUTS}
    for t, r in enumerate(rows):
        for k, v in r.items():
            stim[k][t] = v
    return stim


def _ctrl_name(width: int, depth: int, max_pairs: int, mask: int | None, lanes: int = 1,
               capture: bool | None = None) -> str:
    cap = lanes > 1 if capture is None else capture
    return (f"lcu_ctrl_w{width}_d{depth}_p{max_pairs}" + ("" if mask is None else f"_m{mask:x}")
            + ("" if lanes == 1 else f"_l{lanes}") + ("_cap" if cap else ""))


def generate_controller(*, width: int, depth: int, max_pairs: int, mask: int | None = None,
                        lanes: int = 1, capture: bool | None = None,
                        build_dir: Path) -> tuple[Path, str]:
    """Emit the correction controller; return ``(path, module name)``."""
    dut = CorrectionController(width=width, depth=depth, max_pairs=max_pairs, mask=mask,
                               lanes=lanes, capture=capture)
    name = _ctrl_name(width, depth, max_pairs, mask, lanes, capture)
    return write_verilog(dut, name, dut.config(), Path(build_dir) / f"{name}.v"), name


def run_controller(jobs: list[ControllerJob], *, width: int, depth: int, max_pairs: int,
                   mask: int | None = None, build_dir: Path,
                   sim: str | None = None) -> list[dict]:
    """Play ``jobs``; per job return ``{"buffer", "cycles", "busy_cycles", "done_rows"}``.

    ``cycles`` is the measured number of cycles from the edge that samples ``start`` to the
    first output row showing ``done`` (compare with :func:`rtl_gen.lcu.controller_cycles`);
    ``busy_cycles`` counts the rows with ``busy`` high in between; ``done_rows`` lists every
    row of the job with ``done`` high (must be exactly one).
    """
    sim = (sim or default_sim()).lower()
    path, name = generate_controller(width=width, depth=depth, max_pairs=max_pairs, mask=mask,
                                     build_dir=build_dir)
    stim = controller_stimulus(jobs, width=width, depth=depth, max_pairs=max_pairs)
    res = run_stream(verilog=[path], toplevel=name, inputs=stim,
                     outputs={"buf_rd_data": (0, True), "busy": (0, False), "done": (0, False)},
                     build_dir=Path(build_dir) / sim, sim=sim)
    data, busy, done = (res.outputs[k] for k in ("buf_rd_data", "busy", "done"))
    results = []
    for job in jobs:
        s, r0, end = job.rows["start"], job.rows["first_read"], job.rows["end"]
        done_rows = [int(t) for t in np.flatnonzero(done[s + 1:end]) + s + 1]
        results.append({
            "buffer": data[r0 + 1: r0 + 1 + depth].copy(),
            "cycles": (done_rows[0] - s) if done_rows else None,
            "busy_cycles": int(busy[s + 1:end].sum()),
            "done_rows": done_rows,
        })
    return results


# -- banked buffer with capture port ----------------------------------------------------------
class BufferScript:
    """Per-cycle input rows for :class:`rtl_gen.lcu.CorrectionController`, built op by op.

    Rows are dicts ``port -> value`` (``cap_data``: a list of ``lanes`` values); ports not
    named are 0.  With ``rng``, a row that does not read anything reads a random row (capture
    interface) or word (word interface), so that idle reads are checked in every cycle.
    """

    def __init__(self, *, width: int, depth: int, max_pairs: int, lanes: int,
                 capture: bool | None = None, rng: np.random.Generator | None = None):
        self.width, self.depth, self.max_pairs, self.lanes = width, depth, max_pairs, lanes
        self.capture = lanes > 1 if capture is None else capture
        self.lane_bits = (lanes - 1).bit_length()
        self.words = depth << self.lane_bits
        self.rng = rng
        self.rows: list[dict] = []

    def _read_port(self) -> str:
        return "buf_rd_row" if self.capture else "buf_rd_addr"

    def row(self, **kw) -> int:
        """Append one cycle; return its row index."""
        port = self._read_port()
        if self.rng is not None and port not in kw:
            kw[port] = int(self.rng.integers(0, self.depth if self.capture else self.words))
        self.rows.append(kw)
        return len(self.rows) - 1

    def capture_vector(self, vector, *, clear: bool = False, write=None) -> int:
        """Capture one vector.

        ``write=(addr, value)`` drives a host write in the same cycle (which the capture makes the
        controller ignore).
        """
        kw = {"cap_en": 1, "cap_clear": int(clear),
              "cap_data": [int(v) for v in np.asarray(vector).reshape(self.lanes)]}
        if write is not None:
            kw.update(buf_wr_en=1, buf_wr_addr=int(write[0]), buf_wr_data=int(write[1]))
        return self.row(**kw)

    def clear(self) -> int:
        """Append a cycle that clears the capture; return its row index."""
        return self.row(cap_clear=1)

    def write(self, addr: int, value: int) -> int:
        """Append a cycle that writes ``value`` to buffer word ``addr``; return its row index."""
        return self.row(buf_wr_en=1, buf_wr_addr=int(addr), buf_wr_data=int(value))

    def load_pairs(self, pairs) -> None:
        """Append one cycle per pair that writes ``pairs`` into the pair list."""
        for i, (a, b) in enumerate(np.asarray(pairs, dtype=np.int64).reshape(-1, 2)):
            self.row(pair_wr_en=1, pair_wr_index=i, pair_wr_a=int(a), pair_wr_b=int(b))

    def start(self, n_pairs: int, *, poke: bool = False, also: dict | None = None) -> int:
        """Pulse ``start`` (with ``also`` in the same row) and wait until ``done`` is visible.

        With ``poke``, drive random values on every input while busy. Returns the start row.
        """
        s = self.row(start=1, n_pairs=int(n_pairs), **(also or {}))
        n = min(int(n_pairs), self.max_pairs)
        cycles = controller_cycles(n)
        lo, hi = -(1 << (self.width - 1)), 1 << (self.width - 1)
        rng = self.rng if self.rng is not None else np.random.default_rng(0)
        for k in range(1, cycles + 1):
            if poke and k < cycles:  # rows k < cycles are the busy ones
                kw = dict(buf_wr_en=1, buf_wr_addr=int(rng.integers(0, self.words)),
                          buf_wr_data=int(rng.integers(lo, hi)), pair_wr_en=1,
                          pair_wr_index=int(rng.integers(0, self.max_pairs)),
                          pair_wr_a=int(rng.integers(0, self.words)),
                          pair_wr_b=int(rng.integers(0, self.words)),
                          start=1, n_pairs=int(rng.integers(0, self.max_pairs + 1)))
                if self.capture:
                    kw.update(cap_en=1, cap_clear=int(rng.integers(0, 2)),
                              cap_data=[int(v) for v in rng.integers(lo, hi, self.lanes)])
                self.row(**kw)
            else:
                self.row()
        return s

    def read_back(self) -> int:
        """Read every row (capture interface) or word, in order.

        Return the first read row (its data is recorded one row later).
        """
        port = self._read_port()
        first = len(self.rows)
        for i in range(self.depth if self.capture else self.words):
            self.row(**{port: i})
        return first

    def stimulus(self) -> dict[str, np.ndarray]:
        """The per-cycle input rows as port arrays, one more row to record the last answer."""
        ports = ["buf_wr_en", "buf_wr_addr", "buf_wr_data", "pair_wr_en", "pair_wr_index",
                 "pair_wr_a", "pair_wr_b", "n_pairs", "start", self._read_port()]
        if self.capture:
            ports += ["cap_en", "cap_clear"]
        t = len(self.rows) + 1  # one more row to record the answer to the last one
        stim = {k: np.zeros(t, dtype=np.int64) for k in ports}
        if self.capture:
            stim["cap_data"] = np.zeros((t, self.lanes), dtype=np.int64)
        for i, r in enumerate(self.rows):
            for k, v in r.items():
                stim[k][i] = v
        return stim


def run_buffer_script(stim: dict[str, np.ndarray], *, width: int, depth: int, max_pairs: int,
                      lanes: int, capture: bool | None = None, mask: int | None = None,
                      build_dir: Path, sim: str | None = None) -> dict[str, np.ndarray]:
    """Play ``stim`` (:meth:`BufferScript.stimulus`) and return every output port by row."""
    sim = (sim or default_sim()).lower()
    cap = lanes > 1 if capture is None else capture
    path, name = generate_controller(width=width, depth=depth, max_pairs=max_pairs, mask=mask,
                                     lanes=lanes, capture=capture, build_dir=build_dir)
    outputs = {"busy": (0, False), "done": (0, False)}
    if cap:
        outputs.update({"cap_row": (0, False), "buf_rd_rows": (lanes, True)})
    else:
        outputs["buf_rd_data"] = (0, True)
    res = run_stream(verilog=[path], toplevel=name, inputs=stim, outputs=outputs,
                     build_dir=Path(build_dir) / sim, sim=sim)
    return res.outputs
