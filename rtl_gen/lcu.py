"""Lightweight Correction Unit (LCU) and its correction controller (seed 001 §4.3.1, SPEC §5).

A critical neuron is split into two columns whose requantized outputs are bit-identical when no
fault occurs (:mod:`golden.split`).  After a layer finishes, the controller reads each pair of
output-buffer words, the LCU combines them (001 L1768–L1770)::

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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError, check_int, is_int

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


class LCU(wiring.Component):
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

    Implements 001 §4.3.1.3, L1768–L1770: one AND gate per bit, the cleared bit needs none.
    """

    def __init__(self, *, width: int = 8, mask: int | None = None, registered: bool = False):
        check_int("width", width, 2, 64)
        if not isinstance(registered, bool):
            raise ConfigError("registered", registered, "true or false")
        self._mask = _check_mask(mask, width)
        self._width = width
        self._registered = registered
        super().__init__({
            "a": In(signed(width)),
            "b": In(signed(width)),
            "out": Out(signed(width)),
        })

    @property
    def width(self) -> int:
        """The word width in bits."""
        return self._width

    @property
    def mask(self) -> int:
        """The mask ANDed into the result."""
        return self._mask

    @property
    def registered(self) -> bool:
        """Whether the output is registered."""
        return self._registered

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "lcu", "width": self._width, "mask": self._mask,
                "registered": self._registered}

    def elaborate(self, platform):
        """The unit's netlist."""
        m = Module()
        # AND on the bit patterns: a bit survives only if both halves agree it is 1.
        corrected = (self.a.as_unsigned() & self.b.as_unsigned() & self._mask).as_signed()
        domain = m.d.sync if self._registered else m.d.comb
        domain += self.out.eq(corrected)
        return m


def controller_cycles(n_pairs: int) -> int:
    """Cycles from the rising edge that samples ``start`` to the one that makes ``done`` visible.

    ``2·n + 3`` for ``n ≥ 1`` pairs (2 cycles per pair plus a 3-cycle pipeline fill/drain),
    1 for ``n = 0``.  In :func:`tb.runner.run_stream` terms: ``start`` in input row ``t`` gives
    ``done`` in output row ``t + controller_cycles(n)`` and ``busy`` in the rows between.
    """
    check_int("n_pairs", n_pairs, 0, 1 << 30)
    return 1 if n_pairs == 0 else 2 * n_pairs + 3


class LCUHostSignature(wiring.Signature):
    """The output buffer and correction controller as the host of the composed top sees them.

    These are the top's ``lcu__*`` ports; :meth:`rtl_gen.accelerator.Accelerator` wires them.

    Members
    -------
    capture : Out(1)
        Capture the output vector the output stage shows this cycle (with ``out_valid``).
    cap_clear : Out(1)
        The next capture goes to row 0.
    pair_we, pair_index, pair_a, pair_b : Out
        Pair-list write: entry ``pair_index`` := ``(pair_a, pair_b)`` (word addresses).
    n_pairs, start : Out
        Start a correction run over the first ``n_pairs`` entries.
    rd_row : Out(unsigned(row_bits))
        Buffer row to read back.
    busy, done : In(1)
        The run is in progress / complete (one-cycle pulse).
    cap_row : In(unsigned(row_bits))
        The row the next capture goes to.
    rd_data : In(signed(width)).array(lanes)
        The row read one cycle earlier (0 if that read was issued while busy).
    """

    def __init__(self, *, width: int, lanes: int, row_bits: int, addr_bits: int,
                 index_bits: int, count_bits: int):
        self._params = (width, lanes, row_bits, addr_bits, index_bits, count_bits)
        super().__init__({
            "capture": Out(1), "cap_clear": Out(1),
            "pair_we": Out(1), "pair_index": Out(unsigned(index_bits)),
            "pair_a": Out(unsigned(addr_bits)), "pair_b": Out(unsigned(addr_bits)),
            "n_pairs": Out(unsigned(count_bits)), "start": Out(1),
            "rd_row": Out(unsigned(row_bits)),
            "busy": In(1), "done": In(1), "cap_row": In(unsigned(row_bits)),
            "rd_data": In(signed(width)).array(lanes),
        })

    def __eq__(self, other) -> bool:
        """Equal for the same parameters."""
        return isinstance(other, LCUHostSignature) and self._params == other._params

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((LCUHostSignature, self._params))


class CorrectionController(wiring.Component):
    """Output buffer with LCU correction of critical pairs after a layer (001 L1720, SPEC §5).

    **Buffer.**  One ``lib.memory.Memory`` of ``depth`` *rows*, each row ``lanes`` signed
    ``width``-bit words (``data.ArrayLayout``), with **one write port and one read port** (the
    cheapest SRAM, a simple dual-port 1R1W).  The write port has one enable per word
    (granularity one element = ``width`` bits, like the byte enables of an SRAM macro), so a
    single word of a row can be written without reading the row first.  The read port returns
    a whole row, non-transparent (a read in the cycle of a write to the same row returns the
    old row, as many SRAM macros do).  ``lanes = 1`` is the word-wide buffer of the first
    version: same ports, same timing.

    **Word addresses.**  Word ``(row, lane)`` has the address ``row · 2**lane_bits + lane``
    with ``lane_bits = ceil(log2(lanes))`` (0 for one lane): the lane is the low
    ``lane_bits`` bits and the row the high ``row_bits`` bits, plain bit slices, no divider
    (:func:`golden.lcu.buffer_address`).  All word addresses (host word writes, the pair list)
    use this encoding, ``addr_bits = row_bits + lane_bits`` bits.  When ``lanes`` is not a
    power of two, lanes ``lanes … 2**lane_bits − 1`` of a row do not exist (*holes*): a write
    to a hole is ignored (no word enable) and a read of a hole returns 0.  Hence a pair that
    names a hole computes ``LCU(x, 0) = 0`` and writes 0 to its other word, exactly what
    :func:`golden.lcu.correct_buffer` gives on the flat view ``flat[row · 2**lane_bits + lane]``
    with the holes held at 0.  Rows ``depth … 2**row_bits − 1`` (``depth`` not a power of two)
    do not exist either: do not address them (writes are lost, reads return unspecified data).

    **Capture port** (``capture=True``, the default when ``lanes > 1``): while idle, ``cap_en``
    writes the whole vector ``cap_data[lanes]`` into row ``cap_row``, an internal counter that
    then advances by one, wrapping modulo ``depth``; ``cap_clear`` sets the counter to 0, and a
    capture in the same cycle goes to row 0 (the counter then shows 1).  A capture takes the
    write port: a host word write in the same cycle is **ignored**.  While ``busy`` the capture
    port (``cap_en`` and ``cap_clear``) is ignored like every other host input: the composed
    top produces no output vectors then.  With the capture port, the host reads whole rows
    (``buf_rd_row`` → ``buf_rd_rows``) instead of words; without it (``capture=False``, the
    default for one lane) it reads words (``buf_rd_addr`` → ``buf_rd_data``).

    **Ownership.**  The host owns the buffer ports while the controller is idle; while
    ``busy`` the controller owns them: host writes and captures are ignored and host reads
    return unspecified data.  A second memory of ``max_pairs`` entries holds the pair list
    (word addresses), loaded through the ``pair_wr_*`` port while idle (writes while busy are
    ignored; load an entry at least one cycle before ``start``).  A capture or host write in
    the cycle of ``start`` is seen by the run.

    **Correction.**  ``start`` (sampled while idle) latches ``n_pairs`` (clamped to
    ``max_pairs``).  For ``j = 0 … n−1``, in order, the controller reads the row of ``a_j``
    and selects its lane, then the same for ``b_j``, computes ``v = LCU(buf[a_j], buf[b_j])``
    and writes ``v`` to ``a_j`` and then ``b_j`` (one word enable each, the other lanes of the
    row are untouched).  The result is exactly :func:`golden.lcu.correct_buffer` on the flat
    view, also when pairs share indices: the pipeline forwards ``v_{j−1}`` when pair ``j``
    reads a word that pair ``j−1`` has not yet written (``a_j ∈ {a_{j−1}, b_{j−1}}``,
    ``b_j = b_{j−1}``; words, not rows, are compared, because a write touches one word only).

    Timing (checked by tests/test_lcu.py)::

        cycle after start   1     2     3     4     5     6   ...  2n+1  2n+2  2n+3
        read port           a0    b0    a1    b1    a2    b2        -     -
        write port          -     -     a0    b0    a1    b1        a_n-1 b_n-1
        busy                1     1     1     1     1     1         1     1     0
        done                                                                    1 (one cycle)

    * capture: one vector (``lanes`` words) per cycle, written at the edge that samples it;
    * correction throughput: 2 cycles per pair, set by the single read and single write port
      (each pair needs two reads and two writes); both ports are busy every cycle in steady
      state; latency of one pair: 4 cycles from its first read to its second write;
    * whole run: ``done`` rises :func:`controller_cycles` ``= 2n + 3`` cycles after the edge
      that samples ``start`` (1 cycle for ``n = 0``); the buffer can be read from that cycle on;
    * read-back: one row (or word) per cycle, one cycle of read latency (the data is the
      memory's output register, a word read adds a lane multiplexer behind it).

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
    buf_wr_en, buf_wr_addr, buf_wr_data : In
        Host word write port (idle only; a capture in the same cycle wins).
    buf_rd_addr : In(unsigned(addr_bits)), buf_rd_data : Out(signed(width))
        Word read port (``capture=False`` only), one cycle of read latency.
    cap_en, cap_clear : In(1), cap_data : In(signed(width)).array(lanes)
        Capture port (``capture=True`` only).
    cap_row : Out(unsigned(row_bits))
        The row the next capture goes to (``capture=True`` only); 0 after reset.
    buf_rd_row : In(unsigned(row_bits)), buf_rd_rows : Out(signed(width)).array(lanes)
        Row read port (``capture=True`` only), one cycle of read latency; holes read 0.
    pair_wr_en, pair_wr_index, pair_wr_a, pair_wr_b : In
        Pair-list write port: entry ``pair_wr_index`` := ``(pair_wr_a, pair_wr_b)`` (word
        addresses).
    n_pairs : In(unsigned)
        Number of pairs to process, sampled with ``start``.
    start : In(1)
    busy : Out(1)
        High from the cycle after ``start`` until the last write-back.
    done : Out(1)
        One-cycle pulse when the run is complete.
    """

    def __init__(self, *, width: int = 8, depth: int = 64, max_pairs: int = 16,
                 mask: int | None = None, lanes: int = 1, capture: bool | None = None):
        check_int("width", width, 2, 32)
        check_int("depth", depth, 2, 1 << 16)
        check_int("max_pairs", max_pairs, 1, 1 << 16)
        check_int("lanes", lanes, 1, 256)
        if capture is not None and not isinstance(capture, bool):
            raise ConfigError("capture", capture, "None (lanes > 1), true or false")
        self._mask = _check_mask(mask, width)
        self._width = width
        self._depth = depth
        self._max_pairs = max_pairs
        self._lanes = lanes
        self._capture = lanes > 1 if capture is None else capture
        self._lane_bits = (lanes - 1).bit_length()
        self._row_bits = (depth - 1).bit_length()
        self._addr_bits = self._row_bits + self._lane_bits
        self._index_bits = max(1, (max_pairs - 1).bit_length())
        self._count_bits = max_pairs.bit_length()
        addr = unsigned(self._addr_bits)
        members = {
            "buf_wr_en": In(1),
            "buf_wr_addr": In(addr),
            "buf_wr_data": In(signed(width)),
        }
        if self._capture:
            members.update({
                "cap_en": In(1),
                "cap_clear": In(1),
                "cap_data": In(signed(width)).array(lanes),
                "cap_row": Out(unsigned(self._row_bits)),
                "buf_rd_row": In(unsigned(self._row_bits)),
                "buf_rd_rows": Out(signed(width)).array(lanes),
            })
        else:
            members.update({
                "buf_rd_addr": In(addr),
                "buf_rd_data": Out(signed(width)),
            })
        members.update({
            "pair_wr_en": In(1),
            "pair_wr_index": In(unsigned(self._index_bits)),
            "pair_wr_a": In(addr),
            "pair_wr_b": In(addr),
            "n_pairs": In(unsigned(self._count_bits)),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
        })
        super().__init__(members)

    @property
    def width(self) -> int:
        """Word width in bits."""
        return self._width

    @property
    def depth(self) -> int:
        """Buffer rows."""
        return self._depth

    @property
    def max_pairs(self) -> int:
        """Pair-list entries."""
        return self._max_pairs

    @property
    def mask(self) -> int:
        """The LCU mask in use."""
        return self._mask

    @property
    def lanes(self) -> int:
        """Words per row."""
        return self._lanes

    @property
    def capture(self) -> bool:
        """The capture port and row read port are built (instead of the word read port)."""
        return self._capture

    @property
    def host_signature(self) -> LCUHostSignature:
        """The composed top's ``lcu`` port for this controller (capture model only)."""
        return LCUHostSignature(width=self._width, lanes=self._lanes, row_bits=self._row_bits,
                                addr_bits=self._addr_bits, index_bits=self._index_bits,
                                count_bits=self._count_bits)

    @property
    def lane_bits(self) -> int:
        """Low bits of a word address that select the lane, ``ceil(log2(lanes))``."""
        return self._lane_bits

    @property
    def row_bits(self) -> int:
        """High bits of a word address that select the row, ``ceil(log2(depth))``."""
        return self._row_bits

    @property
    def addr_bits(self) -> int:
        """Width of a word address, ``row_bits + lane_bits``."""
        return self._addr_bits

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "lcu_controller", "width": self._width, "depth": self._depth,
                "max_pairs": self._max_pairs, "mask": self._mask, "lanes": self._lanes,
                "capture": self._capture}

    def elaborate(self, platform):
        """The controller's netlist."""
        # One function on purpose: the correction pipeline's read, LCU and write stages share
        # the forwarding registers (va, v, fwd_b, wa, wb) and the buffer's single write port
        # with the host side, and the hazards between them are only checkable side by side.
        m = Module()
        lanes, lane_bits = self._lanes, self._lane_bits
        addr = unsigned(self._addr_bits)
        pair_layout = data.StructLayout({"a": addr, "b": addr})

        m.submodules.buffer = buf = memory.Memory(
            shape=data.ArrayLayout(signed(self._width), lanes), depth=self._depth, init=[])
        buf_wr = buf.write_port(granularity=1)  # one enable per word (element)
        buf_rd = buf.read_port()  # non-transparent: forwarding below covers the hazards
        m.submodules.pair_list = plist = memory.Memory(
            shape=pair_layout, depth=self._max_pairs, init=[])
        pair_wr = plist.write_port()
        pair_rd = plist.read_port()
        m.submodules.lcu = lcu = LCU(width=self._width, mask=self._mask)

        def row_of(word_addr):
            return word_addr[lane_bits:]

        def write_word(word_addr, value):
            # The word goes to every lane; the enable of its lane alone lets it in.  The
            # shifted one is 2**lane_bits bits wide: slicing it to `lanes` drops the holes.
            en = Const(1, 1) if lane_bits == 0 else (Const(1, 1) << word_addr[:lane_bits])
            m.d.comb += [buf_wr.addr.eq(row_of(word_addr)), buf_wr.en.eq(en[:lanes]),
                         buf_wr.data.eq(Cat(*([value] * lanes)))]

        # Word address on the read port this cycle; its lane is registered alongside the
        # memory's output register to pick the word out of the row one cycle later.
        rd_addr = Signal(addr, name="rd_word_addr")
        rd_lane = Signal(lane_bits, name="rd_lane")
        rd_word = Signal(signed(self._width), name="rd_word")
        m.d.comb += buf_rd.addr.eq(row_of(rd_addr))
        m.d.sync += rd_lane.eq(rd_addr[:lane_bits])
        if lanes == 1:
            m.d.comb += rd_word.eq(buf_rd.data[0])
        else:
            with m.Switch(rd_lane):
                for i in range(lanes):
                    with m.Case(i):
                        m.d.comb += rd_word.eq(buf_rd.data[i])
                # other cases: holes, rd_word keeps its default 0

        index = unsigned(self._count_bits)
        n_run = Signal(index, name="n_run")          # pairs in this run
        j = Signal(index, name="pair_index")          # pair being read
        phase = Signal(1, name="phase")               # 0: read a_j, 1: read b_j
        issuing = Signal(1, name="issuing")           # read phases still to come
        have_prev = Signal(1, name="have_prev")       # pair j-1 exists in this run (forwarding)
        w0 = Signal(1, name="write_a")                # write a_j this cycle
        w1 = Signal(1, name="write_b")                # write b_j this cycle
        wa = Signal(addr, name="wa")
        wb = Signal(addr, name="wb")
        va = Signal(signed(self._width), name="va")   # word at a_j, after forwarding
        v = Signal(signed(self._width), name="v")     # corrected word of the last pair
        fwd_b = Signal(1, name="fwd_b")               # word at b_j must come from v

        m.d.comb += [
            pair_wr.addr.eq(self.pair_wr_index),
            pair_wr.data.a.eq(self.pair_wr_a),
            pair_wr.data.b.eq(self.pair_wr_b),
            pair_wr.en.eq(self.pair_wr_en & ~self.busy),
        ]
        if self._capture:
            m.d.comb += [self.buf_rd_rows[i].eq(buf_rd.data[i]) for i in range(lanes)]
        else:
            m.d.comb += self.buf_rd_data.eq(rd_word)
        pair = pair_rd.data
        m.d.sync += self.done.eq(0)

        with m.If(~self.busy):
            # Host owns the buffer; the pair list is addressed at entry 0 so that it is ready
            # in the first cycle after start.
            m.d.comb += pair_rd.addr.eq(0)
            if self._capture:
                m.d.comb += rd_addr.eq(Cat(Const(0, lane_bits), self.buf_rd_row))
                target = Signal(unsigned(self._row_bits), name="cap_target")
                m.d.comb += target.eq(Mux(self.cap_clear, 0, self.cap_row))
                with m.If(self.cap_en):
                    # The output vector cannot wait, so it takes the write port.
                    m.d.comb += [buf_wr.addr.eq(target), buf_wr.en.eq((1 << lanes) - 1)]
                    m.d.comb += [buf_wr.data[i].eq(self.cap_data[i]) for i in range(lanes)]
                    if self._depth == 1 << self._row_bits:
                        m.d.sync += self.cap_row.eq(target + 1)  # wraps by truncation
                    else:
                        m.d.sync += self.cap_row.eq(
                            Mux(target == self._depth - 1, 0, target + 1))
                with m.Else():
                    with m.If(self.cap_clear):
                        m.d.sync += self.cap_row.eq(0)
                    with m.If(self.buf_wr_en):
                        write_word(self.buf_wr_addr, self.buf_wr_data)
            else:
                m.d.comb += rd_addr.eq(self.buf_rd_addr)
                with m.If(self.buf_wr_en):
                    write_word(self.buf_wr_addr, self.buf_wr_data)
            with m.If(self.start):
                clamped = Mux(self.n_pairs > self._max_pairs, self._max_pairs, self.n_pairs)
                m.d.sync += [n_run.eq(clamped), j.eq(0), phase.eq(0), have_prev.eq(0),
                             w0.eq(0), w1.eq(0)]
                with m.If(clamped == 0):
                    m.d.sync += self.done.eq(1)
                with m.Else():
                    m.d.sync += [self.busy.eq(1), issuing.eq(1)]
        with m.Else():
            # Pair entry j is on the pair-list read port in both phases: address j in phase 0
            # (data in phase 1) and the prefetch of j+1 in phase 1 (data in the next phase 0).
            m.d.comb += pair_rd.addr.eq(Mux(phase, j + 1, j))
            with m.If(issuing & ~phase):
                m.d.comb += rd_addr.eq(pair.a)
                m.d.sync += phase.eq(1)
            with m.If(issuing & phase):
                m.d.comb += rd_addr.eq(pair.b)
                # Word at a_j arrives now.  Pair j-1 wrote a_{j-1} in the cycle a_j was read
                # (old data returned) and writes b_{j-1} only now: take v_{j-1} on a match.
                hit_a = have_prev & ((pair.a == wa) | (pair.a == wb))
                m.d.sync += [
                    va.eq(Mux(hit_a, v, rd_word)),
                    # b_j is read in the cycle b_{j-1} is written: forward v_{j-1} on a match.
                    fwd_b.eq(have_prev & (pair.b == wb)),
                    wa.eq(pair.a),
                    wb.eq(pair.b),
                    have_prev.eq(1),
                    phase.eq(0),
                    j.eq(j + 1),
                ]
                with m.If(j + 1 == n_run):
                    m.d.sync += issuing.eq(0)
            m.d.sync += [w0.eq(issuing & phase), w1.eq(w0)]
            m.d.comb += [
                lcu.a.eq(va),
                lcu.b.eq(Mux(fwd_b, v, rd_word)),
            ]
            with m.If(w0):
                write_word(wa, lcu.out)
                m.d.sync += v.eq(lcu.out)
            with m.If(w1):
                write_word(wb, v)
                with m.If(~issuing & ~w0):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
