"""Golden model of the Lightweight Correction Unit (LCU) and its correction controller.

Ahmadilivani 2025 §4.3.1.3: a critical neuron is split into two halves whose requantized
outputs are bit-identical when no fault occurs (see :mod:`golden.split`).  The LCU takes the two
halves ``a`` and ``b`` and outputs ``a & b`` with the most significant *integer* bit (bit
``width − 2``; bit 6 of int8) forced to 0.  Why this corrects:

* a 0→1 flip in one copy is removed by the AND (the other copy still has the 0);
* a 1→0 flip in either copy passes, but only makes the value *smaller* — the seed's
  observation (Ahmadilivani 2025 §4.3.1) that 0→1 flips are the critical ones because they enlarge
  activations;
* a 0→1 flip of bit ``width − 2``, even in both copies, is removed by the mask, because a
  split half of a non-negative ``width``-bit activation never sets that bit.

The mask is only sound for **non-negative** values (post-ReLU activations).  A negative value
in two's complement has the sign bit set and, for ``−2**(width−2) ≤ x < 0``, bit ``width − 2``
set as well: the LCU then returns ``x − 2**(width−2)`` (−1 becomes −65 at int8), and values
below ``−2**(width−2)`` are unchanged by the mask.  Faults are no better: a 1→0 flip below the
sign bit still passes but now makes the *magnitude* larger (the value moves away from zero), and
a 1→0 flip of the sign bit in one copy turns the result into a large positive number (the AND
keeps the 0).  This module models that behaviour bit for bit; it does not hide it.

The mask is a parameter: ``mask`` is the bit pattern ANDed into the result (1 = keep), default
:func:`default_mask` (all ones except bit ``width − 2``).

Controller semantics (Ahmadilivani 2025 §4.3.1): after a layer finishes, for each critical pair
``(index_a, index_b)`` *in list order*, ``v = lcu(buf[index_a], buf[index_b])`` and ``v`` is
written to both places.  Pairs may share indices; they are processed strictly one after the
other, so a later pair sees the values written by earlier ones (:func:`correct_buffer`).

Banked buffer: the hardware buffer holds ``depth`` rows of ``lanes`` words (one
output vector per row).  A word's address is ``row · 2**lane_bits + lane``
(:func:`golden.output_buffer.buffer_address`); addresses whose lane is ``≥ lanes`` are holes
that read 0 and ignore writes.  Pairs are word addresses, and the correction is
:func:`correct_buffer` on the *flat view* (:func:`golden.output_buffer.rows_to_flat`, holes
0): a pair that names a hole computes ``lcu(x, 0) = 0``, so the flat model never writes
anything but 0 to a hole, which is what the hardware does by ignoring the write.
:func:`capture_then_correct` is the functional model (capture vectors, then one run) and
:class:`ControllerModel` the cycle-level model of every output port.
"""

from __future__ import annotations

import numpy as np

from ftaccel.errors import is_int

from .bits import signed_array, to_unsigned, wrap
from .output_buffer import (
    BufferControllerModel,
    buffer_ports,
    buffer_stimulus,
    flat_to_rows,
    lane_bits,
    rows_to_flat,
)

__all__ = ["default_mask", "check_mask", "lcu", "correct_buffer", "correct_columns",
           "capture_then_correct", "ControllerModel"]


def _check_width(width) -> None:
    if not is_int(width, numpy=True) or not 2 <= width <= 62:
        raise ValueError(f"invalid width = {width!r}: an integer from 2 to 62")


def default_mask(width: int) -> int:
    """All ones except bit ``width − 2`` (the most significant integer bit of a signed value)."""
    _check_width(width)
    return ((1 << width) - 1) & ~(1 << (width - 2))


def check_mask(mask, width: int) -> int:
    """Return the effective mask (``None`` → default); raise ``ValueError`` when out of range."""
    if mask is None:
        return default_mask(width)
    if not is_int(mask, numpy=True) \
            or not 0 <= int(mask) < (1 << width):
        raise ValueError(f"invalid mask = {mask!r}: an integer from 0 to 2**{width} - 1 "
                         "(bits set to 1 are kept)")
    return int(mask)


def lcu(a, b, *, width: int = 8, mask: int | None = None) -> np.ndarray:
    """LCU output for signed ``width``-bit ``a`` and ``b`` (element-wise, broadcasting).

    Returns ``wrap(to_unsigned(a) & to_unsigned(b) & mask)`` as int64.
    """
    _check_width(width)
    m = check_mask(mask, width)
    a = signed_array(a, "a", width)
    b = signed_array(b, "b", width)
    return wrap(to_unsigned(a, width) & to_unsigned(b, width) & m, width)


def correct_buffer(buffer, pairs, *, width: int = 8, mask: int | None = None) -> np.ndarray:
    """The output buffer after the controller has processed ``pairs`` in order.

    Parameters
    ----------
    buffer : int array [depth]
        Signed ``width``-bit words.
    pairs : int array [n, 2]
        Buffer indices ``(index_a, index_b)``, each in ``0 … depth − 1``; ``n`` may be 0.
    """
    buf = signed_array(buffer, "buffer", width).reshape(-1).copy()
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if p.size and (p.min() < 0 or p.max() >= buf.size):
        raise ValueError(f"invalid pairs: indices must be in 0 … {buf.size - 1}")
    m = check_mask(mask, width)
    for ia, ib in p:
        v = int(lcu(buf[ia], buf[ib], width=width, mask=m))
        buf[ia] = v
        buf[ib] = v
    return buf


# -- the banked output buffer and the controller around it -------------------------------------
def capture_then_correct(vectors, pairs, *, depth: int, lanes: int, width: int = 8,
                         mask: int | None = None, init=None,
                         first_row: int = 0) -> tuple[np.ndarray, int]:
    """The banked buffer after capturing ``vectors`` and one correction run of ``pairs``.

    Parameters
    ----------
    vectors : int array [k, lanes]
        Output vectors, captured in order into rows ``first_row, first_row + 1, …`` modulo
        ``depth`` (a later vector overwrites an earlier one on wrap-around).
    pairs : int array [n, 2]
        Word addresses (:func:`golden.output_buffer.buffer_address`), in
        ``0 … depth · 2**lane_bits − 1``.
    init : int array [depth, lanes], optional
        Buffer contents before the captures (default all 0, the memory's reset-free initial
        value in simulation).

    Returns
    -------
    (rows, next_row)
        ``rows`` ``[depth, lanes]`` after the run; ``next_row`` is where the capture counter
        points afterwards.  The correction is :func:`correct_buffer` on the flat view: a pair
        naming a hole reads 0 there, so it computes ``lcu(x, 0) = 0`` and the 0 written back
        to the hole changes nothing, which is also what the hardware (write ignored) does.
    """
    _check_width(width)
    lb = lane_bits(lanes)
    if not is_int(depth) or depth < 1:
        raise ValueError(f"invalid depth = {depth!r}: an integer >= 1")
    rows = np.zeros((depth, lanes), dtype=np.int64) if init is None else \
        signed_array(init, "init", width).reshape(depth, lanes).copy()
    vec = signed_array(vectors, "vectors", width).reshape(-1, lanes)
    row = int(first_row) % depth
    for v in vec:
        rows[row] = v
        row = (row + 1) % depth
    flat = rows_to_flat(rows, lanes)
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if p.size and (p.min() < 0 or p.max() >= depth << lb):
        raise ValueError(f"invalid pairs: word addresses must be in 0 … {(depth << lb) - 1}")
    return flat_to_rows(correct_buffer(flat, p, width=width, mask=mask), lanes), row


class ControllerModel(BufferControllerModel):
    """Cycle-level model of every output port of ``rtl_gen.lcu.CorrectionController``.

    :class:`golden.output_buffer.BufferControllerModel` with pairs (``pair_wr_*``,
    ``n_pairs``) combined by :func:`lcu`: the run is :func:`correct_buffer` applied at the
    edge that samples ``start``; ``busy`` for ``2n + 2`` rows, then ``done`` for one row
    (``controller_cycles``).  See the base class for what is modelled.
    """

    def __init__(self, *, width: int = 8, depth: int = 64, max_pairs: int = 16,
                 mask: int | None = None, lanes: int = 1, capture: bool | None = None):
        _check_width(width)
        self.mask = check_mask(mask, width)
        super().__init__(width=width, depth=depth, max_entries=max_pairs, lanes=lanes,
                         capture=capture, group=2, entry="pair", combine=None)
        self.max_pairs = max_pairs

    @property
    def plist(self) -> np.ndarray:
        """The pair list ``[max_pairs, 2]``."""
        return self.elist

    def combine_all(self, flat: np.ndarray, entries: np.ndarray) -> np.ndarray:
        """``flat`` after :func:`correct_buffer` of ``entries``."""
        return correct_buffer(flat, entries, width=self.width, mask=self.mask)


def correct_columns(q, pairs, *, width: int = 8, mask: int | None = None) -> np.ndarray:
    """A copy of the result ``q`` (rows × columns) with every column pair corrected, in order.

    The LCU of each row's two words is written to both columns, as the correction controller
    does on the output buffer after a layer (:class:`ControllerModel`); ``pairs``
    (``[n, 2]`` column indices) may be empty.
    """
    out = np.array(q, dtype=np.int64, copy=True)
    for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2):
        out[:, a] = out[:, b] = lcu(out[:, a], out[:, b], width=width, mask=mask)
    return out


# -- the unit's functions for the engines and the driver program (golden.units) ---------------
def stimulus(cfg, draft, opts):
    """Output-buffer capture, split lanes, correction runs and read-back.

    See :func:`golden.output_buffer.buffer_stimulus`; a correction run of n pairs shows
    ``done`` ``2n + 3`` cycles after ``lcu__start`` (:func:`rtl_gen.lcu.controller_cycles`).
    Split lanes are set in the cycle the output stage computes the split results
    (``cfg.output_latency`` cycles before they show).  Returns the buffer's
    :class:`golden.output_buffer.Readback`.
    """
    N = draft.out_cycle.shape[1]
    split = None if opts is None else opts.split
    split_v = np.zeros(N, dtype=bool) if split is None else np.asarray(split, dtype=bool)
    readback = buffer_stimulus(cfg, draft, None if opts is None else opts.pairs, prefix="lcu",
                               entry="pair", fields=("a", "b"), max_entries=cfg.lcu_max_pairs,
                               run_cycles=lambda n: 2 * n + 3)
    split_bits = np.zeros(draft.cycles, dtype=np.int64)
    hit = np.broadcast_to(split_v, draft.out_cycle.shape)
    np.bitwise_or.at(split_bits, draft.out_cycle[hit] - cfg.output_latency,
                     np.left_shift(1, draft.out_lane[hit]))
    draft.inputs["split"] = split_bits
    return readback


def output_ports(cfg) -> dict[str, tuple[int, bool]]:
    """The controller's flags and the buffer's read-back."""
    return buffer_ports("lcu", cfg.cols)


def requant_keywords(cfg, opts) -> dict:
    """The split lanes of the output stage (``shift + 1``, one bit narrower)."""
    if opts is None or opts.split is None:
        return {}
    return {"split": np.asarray(opts.split, dtype=bool)}


def correct(cfg, q, opts) -> np.ndarray:
    """``q`` with the options' pairs corrected (the controller's run, in closed form)."""
    if opts is None or opts.pairs is None or not len(opts.pairs):
        return q
    return correct_columns(q, opts.pairs, width=cfg.a_width, mask=cfg.lcu_mask)


def run_record(cfg, program, q, corrected, opts) -> dict:
    """Correction runs, pairs corrected (per result row) and words the correction changed."""
    pairs = 0 if opts.pairs is None else len(np.asarray(opts.pairs).reshape(-1, 2))
    return {"correction_runs": int(program.inputs["lcu__start"].sum()),
            "pairs": pairs * int(q.shape[0]),
            "words_changed": int(np.sum(corrected != q))}


def run_line(cfg, record: dict) -> str:
    """``LCU: 6 pairs corrected in 1 run(s); 0 words changed by the correction``."""
    return (f"LCU: {record['pairs']} pairs corrected in {record['correction_runs']} run(s); "
            f"{record['words_changed']} words changed by the correction")
