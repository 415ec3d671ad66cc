"""Golden cycle model of the output buffer and its in-place group controller.

Model of :class:`rtl_gen.output_buffer.BufferController`, shared by the LCU (pairs,
:class:`golden.lcu.ControllerModel`) and selective TMR (triples,
:class:`golden.tmr.VotingControllerModel`).  The buffer holds ``depth`` rows of ``lanes``
words; a word's address is ``row · 2**lane_bits + lane`` (:func:`golden.lcu.buffer_address`),
holes (lane ≥ ``lanes``) read 0 and ignore writes.  A run combines the words of each entry in
list order and writes the result to all of them (:meth:`BufferControllerModel.combine_all`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ftaccel.errors import is_int

__all__ = ["BufferControllerModel", "WORDS", "combine_in_order", "lane_bits", "buffer_address",
           "rows_to_flat", "flat_to_rows", "Readback", "buffer_stimulus", "buffer_ports"]

#: Names of the words of one entry, as in :data:`rtl_gen.output_buffer.WORDS`.
WORDS = ("a", "b", "c")


# -- banked addressing: rows of `lanes` words ------------------------------------------------
def lane_bits(lanes: int) -> int:
    """Low bits of a word address that select the lane: ``ceil(log2(lanes))``, 0 for one lane."""
    if not is_int(lanes, numpy=True) or not 1 <= lanes <= 256:
        raise ValueError(f"invalid lanes = {lanes!r}: an integer from 1 to 256")
    return (int(lanes) - 1).bit_length()


def buffer_address(row, lane, lanes: int) -> np.ndarray:
    """Word address of ``(row, lane)`` in a buffer of ``lanes`` words per row (broadcasting).

    ``row · 2**lane_bits + lane`` with ``lane_bits = ceil(log2(lanes))``: the lane is the low
    bits, so both fields are bit slices in hardware.  Addresses whose lane is ``≥ lanes``
    (when ``lanes`` is not a power of two) are *holes*: they exist in the address space, read
    0 and ignore writes.
    """
    lb = lane_bits(lanes)
    row = np.asarray(row, dtype=np.int64)
    lane = np.asarray(lane, dtype=np.int64)
    if row.size and row.min() < 0:
        raise ValueError("invalid row: must be >= 0")
    if lane.size and (lane.min() < 0 or lane.max() >= lanes):
        raise ValueError(f"invalid lane: 0 … {lanes - 1}")
    return (row << lb) + lane


def rows_to_flat(rows, lanes: int) -> np.ndarray:
    """The flat word view ``[depth · 2**lane_bits]`` of ``rows [depth, lanes]`` (holes 0)."""
    lb = lane_bits(lanes)
    r = np.asarray(rows, dtype=np.int64).reshape(-1, lanes)
    flat = np.zeros((r.shape[0], 1 << lb), dtype=np.int64)
    flat[:, :lanes] = r
    return flat.reshape(-1)


def flat_to_rows(flat, lanes: int) -> np.ndarray:
    """Rows ``[depth, lanes]`` of the flat word view (the holes dropped)."""
    lb = lane_bits(lanes)
    f = np.asarray(flat, dtype=np.int64)
    if f.size % (1 << lb):
        raise ValueError(f"invalid flat buffer: its length must be a multiple of {1 << lb}")
    return f.reshape(-1, 1 << lb)[:, :lanes].copy()


def combine_in_order(flat: np.ndarray, entries, combine: Callable) -> np.ndarray:
    """``flat`` after ``combine`` of each entry's words, written back to all of them, in order.

    ``entries`` ``[n, g]`` word indices; a later entry sees the values written by earlier ones.
    """
    buf = np.asarray(flat, dtype=np.int64).reshape(-1).copy()
    e = np.asarray(entries, dtype=np.int64)
    if e.size and (e.min() < 0 or e.max() >= buf.size):
        raise ValueError(f"invalid entries: indices must be in 0 … {buf.size - 1}")
    for idx in e.reshape(len(e), -1):
        v = int(combine(*(buf[i] for i in idx)))
        buf[idx] = v
    return buf


class BufferControllerModel:
    """Cycle-level model of every output port of ``rtl_gen.output_buffer.BufferController``.

    :meth:`run` takes the same per-cycle input rows as :func:`tb.runner.run_stream` and returns
    the output rows it would record (row ``t`` = the registers after the edge of cycle
    ``t − 1``; row 0 the reset state), plus a validity mask for the read data: reads issued
    while ``busy`` return unspecified data.  The run itself is functional (all entries
    combined at the edge that samples ``start``): nothing the host can observe depends on the
    order of the controller's internal accesses, because the host's ports are ignored, and its
    reads unspecified, until ``done``.  Timing: ``busy`` for ``g·n + g`` rows, then ``done``
    for one row (:func:`rtl_gen.output_buffer.buffer_cycles`).

    Modelled exactly: capture (``cap_en``/``cap_clear``/``cap_row``, priority over a host write
    in the same cycle), host word writes (holes ignored), non-transparent reads, entry-list
    writes (entry 0 read at the ``start`` edge is the old one, later entries see a same-cycle
    write), the ``n_<entry>s`` clamp, and every input ignored while busy.  Not modelled: rows
    ``≥ depth`` (unspecified in hardware).

    Parameters
    ----------
    width, depth, max_entries, lanes, capture, group, entry
        As :class:`rtl_gen.output_buffer.BufferController`.
    combine : callable
        ``combine(*words) -> int``: the combiner on ``group`` signed words.
    """

    def __init__(self, *, width: int, depth: int, max_entries: int, lanes: int,
                 capture: bool | None, group: int, entry: str, combine: Callable):
        self.width, self.depth, self.max_entries, self.lanes = width, depth, max_entries, lanes
        self.group, self.entry, self.combine = group, entry, combine
        self.capture = lanes > 1 if capture is None else bool(capture)
        self.lane_bits = lane_bits(lanes)
        self.flat = np.zeros(depth << self.lane_bits, dtype=np.int64)
        self.elist = np.zeros((max_entries, group), dtype=np.int64)
        self.busy = self.done = self.cap_row = self.timer = 0
        self.rd_row: np.ndarray | None = np.zeros(lanes, dtype=np.int64)  # reads row 0 in reset
        self.rd_word: int | None = 0

    def combine_all(self, flat: np.ndarray, entries: np.ndarray) -> np.ndarray:
        """``flat`` after one run over ``entries`` (:func:`combine_in_order`)."""
        return combine_in_order(flat, entries, self.combine)

    def outputs(self) -> dict:
        """What the output ports show now (``None``: unspecified read data)."""
        out = {"busy": self.busy, "done": self.done}
        if self.capture:
            out["cap_row"] = self.cap_row
            out["buf_rd_rows"] = self.rd_row
        else:
            out["buf_rd_data"] = self.rd_word
        return out

    def _word(self, a: int) -> int | None:
        if a >= self.flat.size:
            return None  # a row that does not exist: unspecified
        return int(self.flat[a])  # holes are held at 0

    def _write_word(self, a: int, value: int) -> None:
        if a < self.flat.size and (a & ((1 << self.lane_bits) - 1)) < self.lanes:
            self.flat[a] = value

    def step(self, x: dict) -> None:
        """One rising edge with input row ``x`` (missing ports are 0)."""
        def g(port: str) -> int:
            return int(x.get(port, 0))

        if self.busy:
            self.rd_row = self.rd_word = None
            self.timer -= 1
            self.done = int(self.timer == 0)
            self.busy = int(self.timer > 0)
            return
        lb = self.lane_bits
        # reads see the buffer before this edge's write (non-transparent)
        if self.capture:
            r = g("buf_rd_row")
            self.rd_row = flat_to_rows(self.flat[r << lb:(r + 1) << lb], self.lanes)[0] \
                if r < self.depth else None
        else:
            self.rd_word = self._word(g("buf_rd_addr"))
        if self.capture and g("cap_en"):
            target = 0 if g("cap_clear") else self.cap_row
            cap = np.asarray(x["cap_data"], dtype=np.int64).reshape(self.lanes)
            self.flat[target << lb: (target << lb) + self.lanes] = cap
            self.cap_row = (target + 1) % self.depth
        else:
            if self.capture and g("cap_clear"):
                self.cap_row = 0
            if g("buf_wr_en"):
                self._write_word(g("buf_wr_addr"), g("buf_wr_data"))
        e = self.entry
        used = self.elist.copy()
        if g(f"{e}_wr_en") and g(f"{e}_wr_index") < self.max_entries:
            self.elist[g(f"{e}_wr_index")] = [g(f"{e}_wr_{w}") for w in WORDS[:self.group]]
        used[1:] = self.elist[1:]  # entry 0 was read at this edge, the others later
        self.done = 0
        if g("start"):
            n = min(g(f"n_{e}s"), self.max_entries)
            if n == 0:
                self.done = 1
            else:
                self.flat = self.combine_all(self.flat, used[:n])
                self.busy, self.timer = 1, self.group * n + self.group

    def run(self, inputs: dict) -> tuple[dict, dict]:
        """Outputs for the per-cycle ``inputs`` (``port -> [T]`` or ``[T, n]``).

        Returns ``(outputs, valid)``: ``outputs[port]`` int64 ``[T]`` or ``[T, lanes]``;
        ``valid[port]`` bool ``[T]``, False where the value is unspecified (read data only).
        """
        t_len = len(next(iter(inputs.values())))
        rows, valid = [], []
        for t in range(t_len):
            o = self.outputs()
            rows.append(o)
            valid.append({k: v is not None for k, v in o.items()})
            self.step({k: v[t] for k, v in inputs.items()})
        outputs, ok = {}, {}
        for k in rows[0]:
            ok[k] = np.array([v[k] for v in valid], dtype=bool)
            if k == "buf_rd_rows":
                outputs[k] = np.array([np.zeros(self.lanes, np.int64) if r[k] is None else r[k]
                                       for r in rows], dtype=np.int64)
            else:
                outputs[k] = np.array([0 if r[k] is None else r[k] for r in rows],
                                      dtype=np.int64)
        return outputs, ok


# -- the buffer in the driver program (the LCU's and the TMR voter's stimulus) ----------------
class Readback(NamedTuple):
    """Where the buffered result is read back.

    Each result's buffer row, the cycle each row's read-back shows, and the read-back port.
    """

    buffer_row: np.ndarray
    read_cycle: np.ndarray
    port: str


def buffer_ports(prefix: str, lanes: int) -> dict[str, tuple[int, bool]]:
    """The output ports of a buffer controller's host group ``prefix`` (``lcu``, ``tmr``)."""
    return {f"{prefix}__busy": (0, False), f"{prefix}__done": (0, False),
            f"{prefix}__cap_row": (0, False), f"{prefix}__rd_data": (lanes, True)}


def buffer_stimulus(cfg, draft, groups, *, prefix: str, entry: str, fields: tuple[str, ...],
                    max_entries: int, run_cycles: Callable[[int], int]) -> Readback:
    """The shared output buffer's capture, correction runs and read-back (LCU or TMR voter).

    Every cycle that shows result vectors is captured, in order, one buffer row each (rows
    counted from ``{prefix}__cap_clear`` in cycle 0).  ``groups`` lists column groups (pairs or
    triples) corrected in every result row; as word addresses, after the product, for each
    chunk of at most ``max_entries`` (row, group) entries: one cycle per list write, ``start``,
    then ``run_cycles(n)`` cycles until ``done`` and one spare.  Then one buffer row is read
    per cycle.  The columns and the buffer's depth are checked by the unit's options
    (:func:`ftaccel.units.check_options`).
    """
    k = len(fields)
    cols = (np.zeros((0, k), np.int64) if groups is None
            else np.asarray(groups, np.int64).reshape(-1, k))
    captured = np.unique(draft.out_cycle)
    buffer_row = np.searchsorted(captured, draft.out_cycle)
    addr = buffer_address(buffer_row, draft.out_lane, cfg.cols)  # word address of C[m, n]
    words = (np.concatenate([np.stack([addr[:, c] for c in g], axis=1) for g in cols])
             if len(cols) else np.zeros((0, k), np.int64))
    chunks = [words[i:i + max_entries] for i in range(0, len(words), max_entries)]
    t = draft.cycles
    draft.extend(sum(len(ch) + run_cycles(len(ch)) + 1 for ch in chunks) + len(captured) + 1)
    inp = draft.inputs
    ports = ("capture", "cap_clear", f"{entry}_we", f"{entry}_index",
             *(f"{entry}_{f}" for f in fields), f"n_{entry}s", "start", "rd_row")
    for name in ports:
        inp[f"{prefix}__{name}"] = np.zeros(draft.cycles)
    inp[f"{prefix}__cap_clear"][0] = 1
    inp[f"{prefix}__capture"][captured] = 1
    for ch in chunks:
        for i, word in enumerate(ch):
            inp[f"{prefix}__{entry}_we"][t] = 1
            inp[f"{prefix}__{entry}_index"][t] = i
            for f, w in zip(fields, word, strict=True):
                inp[f"{prefix}__{entry}_{f}"][t] = w
            t += 1
        inp[f"{prefix}__start"][t] = 1
        inp[f"{prefix}__n_{entry}s"][t] = len(ch)
        t += run_cycles(len(ch)) + 1  # done shows run_cycles(n) rows after start; one spare
    inp[f"{prefix}__rd_row"][t:t + len(captured)] = np.arange(len(captured))
    return Readback(buffer_row, np.arange(len(captured)) + t + 1, f"{prefix}__rd_data")
