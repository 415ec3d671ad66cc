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

import numpy as np

__all__ = ["BufferControllerModel", "WORDS", "combine_in_order"]

#: Names of the words of one entry, as in :data:`rtl_gen.output_buffer.WORDS`.
WORDS = ("a", "b", "c")


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
        from .lcu import lane_bits

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
        from .lcu import flat_to_rows

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
