"""Output buffer with an in-place group controller: shared by the LCU and the TMR voter.

After a layer, a controller walks a list of *entries*, each ``group`` word addresses of the
output buffer, combines the ``group`` words with a combinational unit and writes the result back
to every one of them:

* the LCU (:class:`rtl_gen.lcu.CorrectionController`, Ahmadilivani 2025 §4.3.1): ``group = 2`` (a
  split neuron's two halves), combiner :class:`rtl_gen.lcu.LCU`;
* selective TMR (:class:`rtl_gen.tmr.VotingController`, Ahmadilivani 2025 §5.3.3): ``group = 3`` (a
  neuron and its two copies), combiner :class:`rtl_gen.tmr.WordVoter` or
  :class:`rtl_gen.tmr.BitwiseVoter`.

:class:`BufferController` is the buffer, the entry list and the pipeline they share; the two
units set the group, the combiner and the port names (``pair_*`` / ``triple_*``).  Golden
model: :class:`golden.output_buffer.BufferControllerModel`.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ftaccel.errors import ConfigError, check_bool, check_int

__all__ = ["BufferController", "BufferHostSignature", "WORDS", "WordCombiner", "buffer_cycles"]

#: Names of the words of one entry, in order (``a``, ``b`` for a pair, ``a``, ``b``, ``c``
#: for a triple).
WORDS = ("a", "b", "c")


def buffer_cycles(n_entries: int, group: int) -> int:
    """Cycles from the rising edge that samples ``start`` to the one that makes ``done`` visible.

    ``group·n + group + 1`` for ``n ≥ 1`` entries (``group`` cycles per entry, set by the single
    read port and the single write port, plus a ``group + 1``-cycle pipeline fill and drain),
    1 for ``n = 0``.  LCU pairs: ``2n + 3``; TMR triples: ``3n + 4``.
    """
    check_int("n_entries", n_entries, 0, 1 << 30)
    check_int("group", group, 2, len(WORDS))
    return 1 if n_entries == 0 else group * n_entries + group + 1


class BufferHostSignature(wiring.Signature):
    """The output buffer and its controller as the host of the composed top sees them.

    The top's ``lcu__*`` (``entry = "pair"``, two words) and ``tmr__*`` (``entry = "triple"``,
    three words) ports.

    Members
    -------
    capture : Out(1)
        Capture the output vector the output stage shows this cycle (with ``out_valid``).
    cap_clear : Out(1)
        The next capture goes to row 0.
    <entry>_we, <entry>_index, <entry>_a, <entry>_b [, <entry>_c] : Out
        Entry-list write: entry ``<entry>_index`` := the word addresses.
    n_<entry>s, start : Out
        Start a run over the first ``n_<entry>s`` entries.
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
                 index_bits: int, count_bits: int, entry: str = "pair", group: int = 2):
        self._params = (width, lanes, row_bits, addr_bits, index_bits, count_bits, entry, group)
        members = {"capture": Out(1), "cap_clear": Out(1),
                   f"{entry}_we": Out(1), f"{entry}_index": Out(unsigned(index_bits))}
        members.update({f"{entry}_{w}": Out(unsigned(addr_bits)) for w in WORDS[:group]})
        members.update({
            f"n_{entry}s": Out(unsigned(count_bits)), "start": Out(1),
            "rd_row": Out(unsigned(row_bits)),
            "busy": In(1), "done": In(1), "cap_row": In(unsigned(row_bits)),
            "rd_data": In(signed(width)).array(lanes),
        })
        super().__init__(members)

    def __eq__(self, other) -> bool:
        """Equal for the same parameters."""
        return isinstance(other, BufferHostSignature) and self._params == other._params

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((BufferHostSignature, self._params))



class WordCombiner(wiring.Component):
    """A combiner of ``copies`` signed words of one neuron into one (the LCU's AND, a TMR vote).

    Parameters
    ----------
    width : int
        Word width in bits, 2 … 64.
    copies : int
        Inputs ``a``, ``b`` (and ``c``): the neuron's copies.
    registered : bool
        ``False``: combinational, latency 0 (inside the buffer controllers).  ``True``: the
        output is registered, latency 1 cycle (the stand-alone testable top).  Throughput one
        word per cycle either way.

    A subclass names itself in ``UNIT`` and computes the word in :meth:`combine`.
    """

    #: The ``unit`` name in the Verilog header.
    UNIT = ""

    def __init__(self, *, width: int, copies: int, registered: bool):
        check_int("width", width, 2, 64)
        check_bool("registered", registered)
        self._width = width
        self._registered = registered
        members = {name: In(signed(width)) for name in WORDS[:copies]}
        super().__init__({**members, "out": Out(signed(width))})

    @property
    def width(self) -> int:
        """The word width in bits."""
        return self._width

    @property
    def registered(self) -> bool:
        """Whether the output is registered."""
        return self._registered

    def _unit_config(self) -> dict:
        """What a subclass adds to :meth:`config`."""
        return {}

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": self.UNIT, "width": self._width, **self._unit_config(),
                "registered": self._registered}

    def combine(self, m: Module):
        """The combined word (a value of ``signed(width)``)."""
        raise NotImplementedError

    def elaborate(self, platform):
        """The unit's netlist: the combined word, registered or not."""
        m = Module()
        domain = m.d.sync if self._registered else m.d.comb
        domain += self.out.eq(self.combine(m))
        return m


class BufferController(wiring.Component):
    """Output buffer combining word groups in place after a layer (Ahmadilivani 2025 §4.3.1).

    **Buffer.**  One ``lib.memory.Memory`` of ``depth`` *rows*, each row ``lanes`` signed
    ``width``-bit words (``data.ArrayLayout``), with **one write port and one read port** (the
    cheapest SRAM, a simple dual-port 1R1W).  The write port has one enable per word
    (granularity one element = ``width`` bits, like the byte enables of an SRAM macro), so a
    single word of a row can be written without reading the row first.  The read port returns
    a whole row, non-transparent (a read in the cycle of a write to the same row returns the
    old row, as many SRAM macros do).

    **Word addresses.**  Word ``(row, lane)`` has the address ``row · 2**lane_bits + lane``
    with ``lane_bits = ceil(log2(lanes))`` (0 for one lane): the lane is the low
    ``lane_bits`` bits and the row the high ``row_bits`` bits, plain bit slices, no divider
    (:func:`golden.output_buffer.buffer_address`).  All word addresses (host word writes, the entry
    list) use this encoding, ``addr_bits = row_bits + lane_bits`` bits.  When ``lanes`` is not
    a power of two, lanes ``lanes … 2**lane_bits − 1`` of a row do not exist (*holes*): a write
    to a hole is ignored (no word enable) and a read of a hole returns 0, exactly the flat
    view of :mod:`golden.output_buffer` with the holes held at 0.  Rows ``depth … 2**row_bits
    − 1`` (``depth`` not a power of two) do not exist either: do not address them.

    **Capture port** (``capture=True``, the default when ``lanes > 1``): while idle, ``cap_en``
    writes the whole vector ``cap_data[lanes]`` into row ``cap_row``, an internal counter that
    then advances by one, wrapping modulo ``depth``; ``cap_clear`` sets the counter to 0, and a
    capture in the same cycle goes to row 0.  A capture takes the write port: a host word write
    in the same cycle is **ignored**.  With the capture port, the host reads whole rows
    (``buf_rd_row`` → ``buf_rd_rows``); without it (``capture=False``) it reads words
    (``buf_rd_addr`` → ``buf_rd_data``).

    **Ownership.**  The host owns the buffer ports while the controller is idle; while
    ``busy`` the controller owns them: host writes, captures and entry-list writes are ignored
    and host reads return unspecified data.  Load an entry at least one cycle before
    ``start``; a capture or host write in the cycle of ``start`` is seen by the run.

    **Run.**  ``start`` (sampled while idle) latches ``n_<entry>s`` (clamped to
    ``max_entries``).  For ``j = 0 … n−1``, in order, the controller reads the ``group`` words
    of entry ``j`` (one per cycle), computes ``v = combiner(words)`` and writes ``v`` to each of
    the words in turn (one word enable each, the other lanes of the row untouched).  The result
    is the sequential semantics of the golden model (entry ``j`` sees the writes of entries
    ``< j``), also when entries share words: the pipeline forwards ``v_{j−1}`` when word ``p``
    of entry ``j`` is read no later than entry ``j−1`` writes the same word (its word ``i ≥ p``).

    Timing (``group = g``; checked by tests/test_lcu.py and tests/test_tmr_top.py)::

        cycle after start   1    …  g     g+1 … 2g    …   gn+1 … gn+g  gn+g+1
        read port           w0(0) … wg-1(0) w0(1) …       -
        write port          -               w0(0) …       w0(n-1) … wg-1(n-1)
        busy                1                              1          0
        done                                                          1 (one cycle)

    * throughput: ``g`` cycles per entry, both memory ports busy every cycle in steady state;
    * whole run: ``done`` rises :func:`buffer_cycles` ``= g·n + g + 1`` cycles after the edge
      that samples ``start`` (1 cycle for ``n = 0``); the buffer can be read from that cycle on;
    * read-back: one row (or word) per cycle, one cycle of read latency.

    Parameters
    ----------
    width : int
        Word width, 2 … 32 (the activation width, 8 or 16).
    depth : int
        Buffer rows (words when ``lanes = 1``), 2 … 65536.
    max_entries : int
        Entry-list length, 1 … 65536.
    lanes : int
        Words per row, 1 … 256 (the accelerator's column count ``C``: one output vector).
    capture : bool or None
        Capture port and row read port instead of the word read port; ``None`` (default):
        ``lanes > 1``.
    group : int
        Words per entry, 2 or 3.
    entry : str
        Name of an entry in the port names (``"pair"``, ``"triple"``).
    combiner : callable
        ``combiner()`` returns the combinational unit: a component with signed ``width``-bit
        inputs named :data:`WORDS` ``[:group]`` and an output ``out``.
    combiner_name : str
        Its submodule name (the area flow attributes it by this name).

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
    <entry>_wr_en, <entry>_wr_index, <entry>_wr_a, <entry>_wr_b [, <entry>_wr_c] : In
        Entry-list write port (word addresses).
    n_<entry>s : In(unsigned)
        Number of entries to process, sampled with ``start``.
    start : In(1)
    busy : Out(1)
        High from the cycle after ``start`` until the last write-back.
    done : Out(1)
        One-cycle pulse when the run is complete.
    """

    def __init__(self, *, width: int = 8, depth: int = 64, max_entries: int = 16,
                 lanes: int = 1, capture: bool | None = None, group: int = 2,
                 entry: str = "pair", combiner: Callable[[], wiring.Component],
                 combiner_name: str = "combiner"):
        check_int("width", width, 2, 32)
        check_int("depth", depth, 2, 1 << 16)
        check_int(f"max_{entry}s", max_entries, 1, 1 << 16)
        check_int("lanes", lanes, 1, 256)
        check_int("group", group, 2, len(WORDS))
        if capture is not None and not isinstance(capture, bool):
            raise ConfigError("capture", capture, "None (lanes > 1), true or false")
        self._width = width
        self._depth = depth
        self._max_entries = max_entries
        self._lanes = lanes
        self._group = group
        self._entry = entry
        self._combiner = combiner
        self._combiner_name = combiner_name
        self._capture = lanes > 1 if capture is None else capture
        self._lane_bits = (lanes - 1).bit_length()
        self._row_bits = (depth - 1).bit_length()
        self._addr_bits = self._row_bits + self._lane_bits
        self._index_bits = max(1, (max_entries - 1).bit_length())
        self._count_bits = max_entries.bit_length()
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
        members.update({f"{entry}_wr_en": In(1),
                        f"{entry}_wr_index": In(unsigned(self._index_bits))})
        members.update({f"{entry}_wr_{w}": In(addr) for w in WORDS[:group]})
        members.update({
            f"n_{entry}s": In(unsigned(self._count_bits)),
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
    def lanes(self) -> int:
        """Words per row."""
        return self._lanes

    @property
    def group(self) -> int:
        """Words per entry."""
        return self._group

    @property
    def capture(self) -> bool:
        """The capture port and row read port are built (instead of the word read port)."""
        return self._capture

    #: The ``unit`` name in the Verilog header (each controller names itself).
    UNIT = "output_buffer"

    def _unit_config(self) -> dict:
        """What a subclass adds to :meth:`config` (its combiner's parameters)."""
        return {}

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": self.UNIT, "width": self._width, "depth": self._depth,
                f"max_{self._entry}s": self._max_entries, **self._unit_config(),
                "lanes": self._lanes, "capture": self._capture}

    @property
    def host_signature(self) -> BufferHostSignature:
        """The composed top's port for this controller (capture model only)."""
        return BufferHostSignature(width=self._width, lanes=self._lanes,
                                   row_bits=self._row_bits, addr_bits=self._addr_bits,
                                   index_bits=self._index_bits, count_bits=self._count_bits,
                                   entry=self._entry, group=self._group)

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

    def elaborate(self, platform):
        """The buffer's and controller's netlist."""
        # One function on purpose: the pipeline's read, combine and write stages share the
        # forwarding registers (v<w>, v, fwd, w<w>) and the buffer's single write port with
        # the host side, and the hazards between them are only checkable side by side.
        m = Module()
        lanes, lane_bits, g, entry = self._lanes, self._lane_bits, self._group, self._entry
        words = WORDS[:g]
        last = g - 1
        addr = unsigned(self._addr_bits)
        entry_layout = data.StructLayout({w: addr for w in words})

        m.submodules.buffer = buf = memory.Memory(
            shape=data.ArrayLayout(signed(self._width), lanes), depth=self._depth, init=[])
        buf_wr = buf.write_port(granularity=1)  # one enable per word (element)
        buf_rd = buf.read_port()  # non-transparent: forwarding below covers the hazards
        m.submodules[f"{entry}_list"] = elist = memory.Memory(
            shape=entry_layout, depth=self._max_entries, init=[])
        list_wr = elist.write_port()
        list_rd = elist.read_port()
        comb_unit = self._combiner()
        m.submodules[self._combiner_name] = comb_unit

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

        count = unsigned(self._count_bits)
        n_run = Signal(count, name=f"n_run_{entry}s")     # entries in this run
        j = Signal(count, name=f"{entry}_index")           # entry being read
        phase = Signal(range(g), name="phase")             # word of entry j read this cycle
        issuing = Signal(1, name="issuing")                # read phases still to come
        have_prev = Signal(1, name="have_prev")            # entry j-1 exists (forwarding)
        wr = [Signal(1, name=f"write_{w}") for w in words]  # write word w of entry j-1
        waddr = [Signal(addr, name=f"w{w}") for w in words]
        vals = [Signal(signed(self._width), name=f"v{w}") for w in words[:-1]]
        v = Signal(signed(self._width), name="v")          # combined word of the last entry
        fwd_last = Signal(1, name=f"fwd_{words[-1]}")       # last word must come from v

        m.d.comb += [
            list_wr.addr.eq(getattr(self, f"{entry}_wr_index")),
            list_wr.en.eq(getattr(self, f"{entry}_wr_en") & ~self.busy),
        ]
        m.d.comb += [getattr(list_wr.data, w).eq(getattr(self, f"{entry}_wr_{w}"))
                     for w in words]
        if self._capture:
            m.d.comb += [self.buf_rd_rows[i].eq(buf_rd.data[i]) for i in range(lanes)]
        else:
            m.d.comb += self.buf_rd_data.eq(rd_word)
        ent = list_rd.data
        m.d.sync += self.done.eq(0)

        with m.If(~self.busy):
            # Host owns the buffer; the entry list is addressed at entry 0 so that it is
            # ready in the first cycle after start.
            m.d.comb += list_rd.addr.eq(0)
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
                n_in = getattr(self, f"n_{entry}s")
                clamped = Mux(n_in > self._max_entries, self._max_entries, n_in)
                m.d.sync += [n_run.eq(clamped), j.eq(0), phase.eq(0), have_prev.eq(0)]
                m.d.sync += [w.eq(0) for w in wr]
                with m.If(clamped == 0):
                    m.d.sync += self.done.eq(1)
                with m.Else():
                    m.d.sync += [self.busy.eq(1), issuing.eq(1)]
        with m.Else():
            # Entry j is on the list's read port in every phase: address j in phases
            # 0 … g−2 (data in the next phase) and the prefetch of j+1 in phase g−1 (data in
            # the next entry's phase 0).
            m.d.comb += list_rd.addr.eq(Mux(phase == last, j + 1, j))
            for p in range(g):
                with m.If(issuing & (phase == p)):
                    m.d.comb += rd_addr.eq(getattr(ent, words[p]))
                    if p > 0:
                        # Word p−1 of entry j arrives now.  Entry j−1 wrote its word i in the
                        # cycle i after its last read; those with i ≥ p−1 were not visible
                        # to this read (written in the same cycle or later): take v_{j−1}.
                        mine = getattr(ent, words[p - 1])
                        hit = have_prev & Cat(*[mine == waddr[i]
                                                for i in range(p - 1, g)]).any()
                        m.d.sync += vals[p - 1].eq(Mux(hit, v, rd_word))
                    if p < last:
                        m.d.sync += phase.eq(p + 1)
                    else:
                        # The last word arrives in the next entry's phase 0, when waddr
                        # already holds entry j: decide its forwarding now.
                        m.d.sync += [
                            fwd_last.eq(have_prev & (getattr(ent, words[last]) == waddr[last])),
                            have_prev.eq(1),
                            phase.eq(0),
                            j.eq(j + 1),
                        ]
                        m.d.sync += [waddr[i].eq(getattr(ent, words[i])) for i in range(g)]
                        with m.If(j + 1 == n_run):
                            m.d.sync += issuing.eq(0)
            m.d.sync += wr[0].eq(issuing & (phase == last))
            m.d.sync += [wr[i].eq(wr[i - 1]) for i in range(1, g)]
            m.d.comb += [getattr(comb_unit, words[i]).eq(vals[i]) for i in range(last)]
            m.d.comb += getattr(comb_unit, words[last]).eq(Mux(fwd_last, v, rd_word))
            with m.If(wr[0]):
                write_word(waddr[0], comb_unit.out)
                m.d.sync += v.eq(comb_unit.out)
            for i in range(1, g):
                with m.If(wr[i]):
                    write_word(waddr[i], v)
            earlier = Cat(*wr[:last]).any()
            with m.If(wr[last] & ~issuing & ~earlier):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
