"""Lightweight Correction Unit (LCU) and its correction controller (Ahmadilivani 2025 §4.3.1).

A critical neuron is split into two columns whose requantized outputs are bit-identical when no
fault occurs (:mod:`golden.split`).  After a layer finishes, the controller reads each pair of
output-buffer words, the LCU combines them (Ahmadilivani 2025 §4.3.1)::

    out = a & b & mask        mask default: all ones except bit width-2

and the result is written back to both places.  The AND removes any 0→1 flip confined to one
copy; 1→0 flips pass but only shrink the value; the mask removes 0→1 flips of the most
significant integer bit, which a split half of a non-negative activation never sets.  The mask
is only sound for non-negative (post-ReLU) values; :mod:`golden.lcu` documents exactly what
happens to negative ones (e.g. −1 becomes −65 at int8).

The controller's buffer holds whole output vectors (``lanes`` words per row, one write enable
per word) so that the accelerator can capture one requantised vector per cycle; words are
addressed as ``row · 2**lane_bits + lane`` (:class:`CorrectionController`).
"""

from __future__ import annotations

from amaranth.hdl import Module

from ftaccel.errors import ConfigError, check_int, is_int

from .output_buffer import BufferController, BufferHostSignature, WordCombiner, buffer_cycles

__all__ = ["LCU", "CorrectionController", "LCUHostSignature", "controller_cycles",
           "default_mask"]


def default_mask(width: int) -> int:
    """All ones except bit ``width − 2``, the most significant integer bit of a signed word."""
    return ((1 << width) - 1) & ~(1 << (width - 2))


def _check_mask(mask, width: int) -> int:
    if mask is None:
        return default_mask(width)
    if not is_int(mask) or not 0 <= mask < (1 << width):
        raise ConfigError("mask", mask,
                          f"None or an integer from 0 to {(1 << width) - 1} (1 = bit kept)")
    return mask


class LCU(WordCombiner):
    """Lightweight Correction Unit: ``out = a & b & mask`` on two signed words.

    Parameters
    ----------
    width : int
        Word width in bits, 2 … 64 (8 and 16 tested).
    mask : int or None
        Bits kept (1) or forced to 0; ``None`` gives :func:`default_mask` (bit ``width − 2``
        cleared: bit 6 of int8, bit 14 of int16).
    registered : bool
        ``False`` (default): purely combinational, latency 0, as used inside
        :class:`CorrectionController`.  ``True``: the output is registered, latency 1 cycle,
        throughput one pair per cycle (the testable stand-alone top, with ``clk``/``rst``).

    Attributes
    ----------
    a, b : In(signed(width))
        The two split halves of one critical neuron.
    out : Out(signed(width))
        The corrected word (0 after reset when registered).

    Implements Ahmadilivani 2025 §4.3.1: one AND gate per bit, the cleared bit needs none.
    """

    UNIT = "lcu"

    def __init__(self, *, width: int = 8, mask: int | None = None, registered: bool = False):
        check_int("width", width, 2, 64)
        self._mask = _check_mask(mask, width)
        super().__init__(width=width, copies=2, registered=registered)

    @property
    def mask(self) -> int:
        """The mask ANDed into the result."""
        return self._mask

    def _unit_config(self) -> dict:
        return {"mask": self._mask}

    def combine(self, m: Module):
        """``a & b & mask`` on the bit patterns: a bit survives only if both halves say 1."""
        return (self.a.as_unsigned() & self.b.as_unsigned() & self._mask).as_signed()


def controller_cycles(n_pairs: int) -> int:
    """Cycles from the rising edge that samples ``start`` to the one that makes ``done`` visible.

    ``2·n + 3`` for ``n ≥ 1`` pairs (2 cycles per pair plus a 3-cycle pipeline fill/drain),
    1 for ``n = 0`` (:func:`rtl_gen.output_buffer.buffer_cycles` with groups of two).  In
    :func:`tb.runner.run_stream` terms: ``start`` in input row ``t`` gives ``done`` in output
    row ``t + controller_cycles(n)`` and ``busy`` in the rows between.
    """
    check_int("n_pairs", n_pairs, 0, 1 << 30)
    return buffer_cycles(n_pairs, 2)


def LCUHostSignature(*, width: int, lanes: int, row_bits: int, addr_bits: int,
                     index_bits: int, count_bits: int) -> BufferHostSignature:
    """The top's ``lcu__*`` port: :class:`rtl_gen.output_buffer.BufferHostSignature` of pairs.

    Members ``capture``, ``cap_clear``, ``pair_we``, ``pair_index``, ``pair_a``, ``pair_b``,
    ``n_pairs``, ``start``, ``rd_row`` (host → unit), ``busy``, ``done``, ``cap_row``,
    ``rd_data[lanes]`` (unit → host).
    """
    return BufferHostSignature(width=width, lanes=lanes, row_bits=row_bits, addr_bits=addr_bits,
                               index_bits=index_bits, count_bits=count_bits, entry="pair",
                               group=2)


class CorrectionController(BufferController):
    """Output buffer with LCU correction of critical pairs after a layer (Ahmadilivani 2025 §4.3.1).

    The shared :class:`rtl_gen.output_buffer.BufferController` (buffer, capture port, word
    addresses, ownership, pipeline and forwarding are documented there) with entries of two
    words, *pairs*, combined by the :class:`LCU` (submodule ``lcu``).  For ``j = 0 … n−1``, in
    order, the controller reads ``a_j`` then ``b_j``, computes ``v = LCU(buf[a_j], buf[b_j])``
    and writes ``v`` to ``a_j`` and then ``b_j``; the result is exactly
    :func:`golden.lcu.correct_buffer` on the flat view, also when pairs share indices.

    Timing (checked by tests/test_lcu.py)::

        cycle after start   1     2     3     4     5     6   ...  2n+1  2n+2  2n+3
        read port           a0    b0    a1    b1    a2    b2        -     -
        write port          -     -     a0    b0    a1    b1        a_n-1 b_n-1
        busy                1     1     1     1     1     1         1     1     0
        done                                                                    1 (one cycle)

    * capture: one vector (``lanes`` words) per cycle, written at the edge that samples it;
    * correction throughput: 2 cycles per pair, set by the single read and single write port;
      latency of one pair: 4 cycles from its first read to its second write;
    * whole run: ``done`` rises :func:`controller_cycles` ``= 2n + 3`` cycles after the edge
      that samples ``start`` (1 cycle for ``n = 0``);
    * read-back: one row (or word) per cycle, one cycle of read latency.

    Parameters
    ----------
    width : int
        Word width, 2 … 32 (the activation width, 8 or 16).
    depth : int
        Buffer rows (words when ``lanes = 1``), 2 … 65536.
    max_pairs : int
        Pair-list entries, 1 … 65536.
    mask : int or None
        LCU mask (see :class:`LCU`).
    lanes : int
        Words per row, 1 … 256 (the accelerator's column count ``C``: one output vector).
    capture : bool or None
        Capture port and row read port instead of the word read port; ``None`` (default):
        ``lanes > 1``.

    Attributes
    ----------
    buf_wr_en, buf_wr_addr, buf_wr_data, buf_rd_addr, buf_rd_data, cap_en, cap_clear, cap_data,
    cap_row, buf_rd_row, buf_rd_rows, start, busy, done
        See :class:`rtl_gen.output_buffer.BufferController`.
    pair_wr_en, pair_wr_index, pair_wr_a, pair_wr_b : In
        Pair-list write port: entry ``pair_wr_index`` := ``(pair_wr_a, pair_wr_b)`` (word
        addresses).
    n_pairs : In(unsigned)
        Number of pairs to process, sampled with ``start``.
    """

    def __init__(self, *, width: int = 8, depth: int = 64, max_pairs: int = 16,
                 mask: int | None = None, lanes: int = 1, capture: bool | None = None):
        super().__init__(width=width, depth=depth, max_entries=max_pairs, lanes=lanes,
                         capture=capture, group=2, entry="pair",
                         combiner=lambda: LCU(width=width, mask=self._mask),
                         combiner_name="lcu")
        self._mask = _check_mask(mask, width)

    @property
    def max_pairs(self) -> int:
        """Pair-list entries."""
        return self._max_entries

    @property
    def mask(self) -> int:
        """The LCU mask in use."""
        return self._mask

    UNIT = "lcu_controller"

    def _unit_config(self) -> dict:
        return {"mask": self._mask}
