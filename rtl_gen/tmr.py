"""Selective-TMR voters and their voting controller: the baseline the LCU is compared with.

Ahmadilivani 2025 §4.3.1 baselines.  A critical neuron computed three times (three array columns) is
voted on:

* :class:`WordVoter` (Ahmadilivani 2025 §5.3.3): the word that at least two copies agree on; when
  all three differ, the signed minimum;
* :class:`BitwiseVoter`: per-bit majority ``(a & b) | (a & c) | (b & c)``;
* :class:`VotingController`: the output buffer of the composed top with a controller that,
  after a layer, votes word triples in place (the shared
  :class:`rtl_gen.output_buffer.BufferController` with groups of three), the top's ``tmr``
  unit (configuration field ``tmr``).

Golden models: :mod:`golden.tmr`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux

from ftaccel.errors import ConfigError, check_int

from .output_buffer import BufferController, BufferHostSignature, WordCombiner, buffer_cycles

__all__ = ["WordVoter", "BitwiseVoter", "VOTERS", "VotingController", "TMRHostSignature",
           "voting_cycles"]


class _Voter(WordCombiner):
    def __init__(self, *, width: int = 8, registered: bool = False):
        super().__init__(width=width, copies=3, registered=registered)


class WordVoter(_Voter):
    """Word majority of three signed copies; the signed minimum when all three differ.

    Parameters
    ----------
    width : int
        Word width, 2 … 64 (8 and 16 tested).
    registered : bool
        ``False``: combinational, latency 0.  ``True``: registered output, latency 1 cycle
        (the stand-alone testable top).  Throughput one vote per cycle either way.

    Attributes
    ----------
    a, b, c : In(signed(width))
        The three copies of one critical neuron.
    out : Out(signed(width))

    Hardware: three equality comparators, two signed magnitude comparators (min of a and b,
    then min with c) and four word multiplexers.  Implements Ahmadilivani 2025 §5.3.3.
    """

    UNIT = "tmr_word_voter"

    def combine(self, m: Module):
        """The majority word, else the smallest."""
        a, b, c = self.a, self.b, self.c
        min_ab = Mux(a < b, a, b)
        smallest = Mux(min_ab < c, min_ab, c)
        # a is the majority if it agrees with either other copy; otherwise b==c decides;
        # otherwise no majority exists and the smallest activation is the safer choice.
        return Mux((a == b) | (a == c), a, Mux(b == c, b, smallest))


class BitwiseVoter(_Voter):
    """Bitwise majority of three signed copies: ``(a & b) | (a & c) | (b & c)``.

    Parameters and attributes as :class:`WordVoter`.  Hardware: one 3-input majority gate per
    bit, no comparator.  When all three words differ the output may be a word none of the
    copies holds (each bit is voted on its own).
    """

    UNIT = "tmr_bitwise_voter"

    def combine(self, m: Module):
        """The bitwise majority."""
        a, b, c = (x.as_unsigned() for x in (self.a, self.b, self.c))
        return ((a & b) | (a & c) | (b & c)).as_signed()


#: The voters by the name the configuration uses (``AcceleratorConfig.tmr``).
VOTERS = {"word": WordVoter, "bitwise": BitwiseVoter}


def voting_cycles(n_triples: int) -> int:
    """Cycles from the rising edge that samples ``start`` to the one that makes ``done`` visible.

    ``3·n + 4`` for ``n ≥ 1`` triples (3 cycles per triple: three reads and three writes on the
    buffer's single read and single write port, plus a 4-cycle fill and drain), 1 for
    ``n = 0`` (:func:`rtl_gen.output_buffer.buffer_cycles` with groups of three).
    """
    check_int("n_triples", n_triples, 0, 1 << 30)
    return buffer_cycles(n_triples, 3)


def TMRHostSignature(*, width: int, lanes: int, row_bits: int, addr_bits: int,
                     index_bits: int, count_bits: int) -> BufferHostSignature:
    """The top's ``tmr__*`` port: :class:`rtl_gen.output_buffer.BufferHostSignature` of triples.

    Members ``capture``, ``cap_clear``, ``triple_we``, ``triple_index``, ``triple_a``,
    ``triple_b``, ``triple_c``, ``n_triples``, ``start``, ``rd_row`` (host → unit), ``busy``,
    ``done``, ``cap_row``, ``rd_data[lanes]`` (unit → host).
    """
    return BufferHostSignature(width=width, lanes=lanes, row_bits=row_bits, addr_bits=addr_bits,
                               index_bits=index_bits, count_bits=count_bits, entry="triple",
                               group=3)


class VotingController(BufferController):
    """Output buffer voting critical triples after a layer (Ahmadilivani 2025 §5.3.3).

    The shared :class:`rtl_gen.output_buffer.BufferController` (buffer, capture port, word
    addresses, ownership, pipeline and forwarding are documented there) with entries of three
    words, *triples* (a critical neuron's output and its two copies' in one output row,
    computed by three distinct PE columns), combined by a voter (submodule ``voter``): the
    :class:`WordVoter` (Ahmadilivani 2025 §5.3.3: majority word, signed minimum when all three
    differ) or the
    :class:`BitwiseVoter`.  For ``j = 0 … n−1``, in order, the controller reads ``a_j``,
    ``b_j``, ``c_j``, votes and writes the voted word to ``a_j``, ``b_j`` and ``c_j``; the
    result is exactly :func:`golden.tmr.vote_buffer` on the flat view, also when triples share
    words.

    Timing (measured by tests/test_tmr_top.py)::

        cycle after start   1   2   3   4   5   6   7  ...  3n+1 3n+2 3n+3 3n+4
        read port           a0  b0  c0  a1  b1  c1  a2      -
        write port          -   -   -   a0  b0  c0  a1      a    b    c
        busy                1   1   1   1   1   1   1       1    1    1    0
        done                                                               1 (one cycle)

    * throughput: 3 cycles per triple (single read and single write port); latency of one
      triple: 6 cycles from its first read to its third write;
    * whole run: ``done`` rises :func:`voting_cycles` ``= 3n + 4`` cycles after the edge that
      samples ``start`` (1 cycle for ``n = 0``);
    * widths: words ``width`` bits signed, word addresses ``row_bits + lane_bits`` bits, the
      voter is combinational (latency 0) between the read and the write stage.

    Parameters
    ----------
    width : int
        Word width, 2 … 32 (the activation width, 8 or 16).
    depth : int
        Buffer rows (words when ``lanes = 1``), 2 … 65536.
    max_triples : int
        Triple-list entries, 1 … 65536.
    voter : str
        ``"word"`` or ``"bitwise"`` (:data:`VOTERS`).
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
    triple_wr_en, triple_wr_index, triple_wr_a, triple_wr_b, triple_wr_c : In
        Triple-list write port: entry ``triple_wr_index`` := the three word addresses.
    n_triples : In(unsigned)
        Number of triples to vote, sampled with ``start``.
    """

    def __init__(self, *, width: int = 8, depth: int = 64, max_triples: int = 16,
                 voter: str = "word", lanes: int = 1, capture: bool | None = None):
        if not isinstance(voter, str) or voter not in VOTERS:
            raise ConfigError("voter", voter, f"one of {', '.join(VOTERS)}")
        self._voter = voter
        super().__init__(width=width, depth=depth, max_entries=max_triples, lanes=lanes,
                         capture=capture, group=3, entry="triple",
                         combiner=lambda: VOTERS[voter](width=width), combiner_name="voter")

    @property
    def max_triples(self) -> int:
        """Triple-list entries."""
        return self._max_entries

    @property
    def voter(self) -> str:
        """The voter: ``"word"`` or ``"bitwise"``."""
        return self._voter

    UNIT = "tmr_controller"

    def _unit_config(self) -> dict:
        return {"voter": self._voter}
