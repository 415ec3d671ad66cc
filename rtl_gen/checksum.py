"""Sanity-Check hardware: spatial checker, sanity-input generator, temporal checker.

Ozen 2023 §6.3.3, Figs. 6.7–6.9; ch. 6.  Three stand-alone units that the
accelerator top composes with one extra array column (see each class for where it sits):

* :class:`SpatialChecker` (Fig. 6.8): adder tree over the C + 1 output lanes of one output
  vector (C neurons + the sanity neuron), magnitude, comparison with a run-time threshold,
  per-vector ``error``, sticky ``alarm`` with the index of the first failing vector.
* :class:`SanityInputGenerator` (Fig. 6.9, blue): forwards the input vectors to the array and,
  after a temporal batch of N of them, emits their negated element-wise sum as one extra
  vector (throughput N/(N+1)).
* :class:`TemporalChecker` (Fig. 6.9, yellow): one check accumulator per output lane over the
  N + 1 outputs of a batch, compared with programmable expected constants and a threshold.

Arithmetic.  Every unit is exact (wide enough never to wrap, widths in the docstrings) unless
``residue_bits = k`` is given: then the checks are computed modulo 2^k with k-bit adders
(Ozen 2023 §6.3.3), which aliases: an error that is a multiple of 2^k escapes (measured by
:func:`golden.checksum.aliasing_table`, bench/bench_checksum.py).

The lanes arrive aligned: the array's deskew registers put all C lanes of a vector on the
same cycle (WS/IS; in OS each drained row is aligned too), so the synchronisation stage of
Fig. 6.8 (Ozen 2023 §6.3.3) is not needed and not built.

Where they sit (WS, Fig. 6.7)::

    in_data ─► SanityInputGenerator ─► array, C + 1 columns ─► acc_out ─┬─► SpatialChecker
               (sanity ─► delayed like the valid flag ─► last)        └─► TemporalChecker

Column C of the array holds the sanity neuron (:func:`golden.checksum.sanity_column`, which
needs ``w_width + ceil(log2(C+1))`` weight bits).  If that column's partial sums are kept at
the accumulator width P and allowed to wrap, run both checkers with ``residue_bits = P``: the
invariants are exact modulo 2^P and every error in a P-bit register is still detected.  The
generator's sanity vector needs ``a_width + batch_bits`` bits through the whole streamed
path, or ``out_width = a_width`` with a temporal check modulo 2^a_width (cheaper, aliases:
see bench/bench_checksum.py).

Golden models (bit-exact, cycle by cycle): :mod:`golden.checksum`.
"""

from __future__ import annotations

import math

from amaranth.hdl import C as C_
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.errors import ConfigError, check_int, is_int

from .vector import LaneParameters, VectorSignature

__all__ = ["SpatialChecker", "SanityInputGenerator", "TemporalChecker", "spatial_check_width",
           "ChecksumControlSignature", "TemporalControlSignature", "SanityLoadGenerator",
           "SanityRowInput", "MAX_CHECK_WIDTH"]

#: Widest internal value (the golden models compute in int64).
MAX_CHECK_WIDTH = 62
MAX_LANES = 257  # a 256-column array plus its sanity column



def spatial_check_width(width: int, n: int, residue_bits: int | None) -> int:
    """Width of the spatial syndrome.

    ``k`` in residue mode, else ``width + ceil(log2(n+1))`` (the sum of n lanes and the subtracted
    ``expected``, n + 1 values of ``width`` bits).
    """
    if residue_bits is not None:
        return residue_bits
    return width + math.ceil(math.log2(n + 1))


def _tree_sum(m: Module, terms: list, name: str, bits: int | None):
    """Balanced adder tree over ``terms`` (log2 depth, not a chain).

    ``bits = None``: exact, every node one bit wider than its widest operand.  ``bits = k``:
    every node is a k-bit adder (wraps modulo 2^k), the residue arithmetic of Ozen 2023 §6.3.3.
    """
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            a, b = terms[i], terms[i + 1]
            shape = signed(max(len(a), len(b)) + 1) if bits is None else unsigned(bits)
            s = Signal(shape, name=f"{name}_l{level}_{i // 2}")
            m.d.comb += s.eq(a + b)  # truncated to k bits in residue mode: the wrap we want
            nxt.append(s)
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
        level += 1
    return terms[0]


def _check_residue_and_index(width, residue_bits, index_bits) -> None:
    """Shared validation of the checkers' residue width and vector-index width."""
    if residue_bits is not None and (not is_int(residue_bits)
                                     or not 2 <= residue_bits <= width):
        raise ConfigError("residue_bits", residue_bits,
                                  f"None or an integer from 2 to width={width}")
    if not is_int(index_bits) or not 1 <= index_bits <= 32:
        raise ConfigError("index_bits", index_bits, "an integer from 1 to 32")


class ChecksumControlSignature(wiring.Signature):
    """The Sanity-Check's host port on the composed top (``checksum__*``), as the host sees it.

    Parameters
    ----------
    check_width : int or None
        Width of the spatial syndrome and threshold; ``None`` without the spatial checksum
        (then only ``clear`` exists).

    Members
    -------
    clear : Out(1)
        Clears both checkers' alarms and counters and the generator's batch in progress.
    threshold : Out(unsigned(check_width))
        Spatial check threshold (:class:`SpatialChecker`).
    error, alarm : In(1)
        The output vector shown now failed / some vector failed since ``clear``.
    first : In(unsigned(16))
        Index of the first failing output vector.
    syndrome : In(signed(check_width))
        Sum of the C + 1 lanes of the output vector shown now.
    """

    def __init__(self, check_width: int | None):
        self._cw = check_width
        members = {"clear": Out(1)}
        if check_width is not None:
            members.update({"threshold": Out(unsigned(check_width)), "error": In(1),
                            "alarm": In(1), "first": In(unsigned(16)),
                            "syndrome": In(signed(check_width))})
        super().__init__(members)

    def __eq__(self, other) -> bool:
        """Equal for the same check width."""
        return isinstance(other, ChecksumControlSignature) and self._cw == other._cw

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((ChecksumControlSignature, self._cw))


class TemporalControlSignature(wiring.Signature):
    """The temporal checksum's host port on the composed top (``temporal__*``).

    Parameters
    ----------
    batch_bits : int or None
        Width of ``batch``; None on OS, whose batch is a tile's R rows (no ``batch``, ``last``
        or ``overrun``: the sanity input is a PE row, not a vector in the stream).
    check_bits : int
        Width of the expected sums and threshold (the check's modulus exponent).
    lanes : int
        Checked lanes (the array's PE columns, sanity column included).

    Members
    -------
    batch : Out(unsigned(batch_bits))
        N, data vectors per temporal batch (:class:`SanityInputGenerator`).
    last : Out(1)
        With ``in_valid``: the vector closes its batch (the pass's short last batch).
    expected : Out(signed(check_bits)).array(lanes)
        Expected lane sums of the batch closing now (:class:`TemporalChecker`).
    threshold : Out(unsigned(check_bits))
    checked, error, alarm : In(1)
    lane_errors : In(unsigned(lanes))
        Bit u: lane u of the batch just checked failed.
    first : In(unsigned(16))
        Index of the first failing batch.
    overrun : In(1)
        A vector arrived while the generator emitted a sanity vector, and was dropped.
    """

    def __init__(self, batch_bits: int | None, check_bits: int, lanes: int):
        self._params = (batch_bits, check_bits, lanes)
        members = {
            "expected": Out(signed(check_bits)).array(lanes),
            "threshold": Out(unsigned(check_bits)),
            "checked": In(1), "error": In(1), "lane_errors": In(unsigned(lanes)),
            "alarm": In(1), "first": In(unsigned(16)),
        }
        if batch_bits is not None:
            members.update({"batch": Out(unsigned(batch_bits)), "last": Out(1),
                            "overrun": In(1)})
        super().__init__(members)

    def __eq__(self, other) -> bool:
        """Equal for the same parameters."""
        return isinstance(other, TemporalControlSignature) and self._params == other._params

    def __hash__(self) -> int:
        """The hash of the signature's parameters."""
        return hash((TemporalControlSignature, self._params))


class SpatialChecker(LaneParameters, wiring.Component):
    """Spatial (weight) checksum check over the lanes of one output vector (Fig. 6.8).

    Sits at the accelerator's output, after the array (and after the bias if bias errors are
    to be covered): ``data[u]`` = lane u of the output vector, the last lane being the sanity
    neuron's output.  Fault-free, the lanes of every vector sum to ``expected`` (0 for the
    sanity neuron of :func:`golden.checksum.sanity_column`), Eq. 6.2.

    Parameters
    ----------
    width : int
        Lane width (the accumulator width; 2 … 60).
    lanes : int
        Number of lanes, C + 1 (1 … 257).
    residue_bits : int or None
        ``None``: exact (syndrome ``width + ceil(log2(lanes+1))`` bits, never wraps).  ``k``
        (2 … width): only the k low bits of every lane enter k-bit adders; the check holds
        modulo 2^k and an error that is a multiple of 2^k escapes.  ``k = width`` costs no
        adder growth and still detects every error in a single ``width``-bit register.
    index_bits : int
        Width of the vector counter and ``first_index`` (1 … 32; wraps at 2^index_bits).

    Attributes
    ----------
    data : In(signed(width)).array(lanes)
        The output vector's lanes, all on the same cycle (no synchronisation stage).
    valid : In(1)
        ``data`` holds a vector to check.
    expected : In(signed(width))
        The fault-free lane sum (0 for WS with a sanity neuron; a run-time input so that IS,
        where the lanes are batch rows, can check a non-zero constant).  Low k bits used in
        residue mode.
    threshold : In(unsigned(check_width))
        A vector fails when ``|sum(data) - expected| > threshold`` (0: exact check, Ozen 2023
        §6.2.4).
    clear : In(1)
        Clears ``alarm``, ``first_index`` and the vector counter *before* this cycle's vector
        is considered: a vector presented with ``clear`` is vector 0 of the new run.
    out_valid : Out(1)
        ``valid`` delayed by one cycle.
    error : Out(1)
        The vector presented one cycle earlier was valid and failed.
    alarm : Out(1)
        Sticky: some vector failed since the last ``clear`` (or reset).
    first_index : Out(unsigned(index_bits))
        Index (counting valid vectors from 0 after ``clear``) of the first failing vector;
        meaningful while ``alarm`` is set.
    checksum : Out(signed(check_width))
        The syndrome ``sum(data) - expected`` (mod 2^k in residue mode) of the vector presented
        one cycle earlier, whether valid or not: for threshold profiling (Ozen 2023 §6.3.1) and
        diagnosis.

    Latency **1 cycle** (the seed's +1, Ozen 2023 §6.3.3): all outputs are registered and describe
    the input of the previous cycle.  Throughput one vector per cycle.  Hardware: a (lanes+1)-input
    balanced adder tree (``expected`` enters as a negated leaf), an absolute value, one comparator,
    an ``index_bits`` counter and ``index_bits + 3 + check_width`` flip-flops.
    """

    def __init__(self, *, width: int = 26, lanes: int = 9, residue_bits: int | None = None,
                 index_bits: int = 16):
        check_int("width", width, 2, 60)
        check_int("lanes", lanes, 1, MAX_LANES)
        _check_residue_and_index(width, residue_bits, index_bits)
        cw = spatial_check_width(width, lanes, residue_bits)
        if cw > MAX_CHECK_WIDTH:
            raise ConfigError("width", width, f"at most {MAX_CHECK_WIDTH} bits of syndrome "
                              f"(width + ceil(log2(lanes+1)) = {cw}); use residue_bits")
        self._width, self._lanes, self._k = width, lanes, residue_bits
        self._ib, self._cw = index_bits, cw
        super().__init__({
            "data": In(signed(width)).array(lanes),
            "valid": In(1),
            "expected": In(signed(width)),
            "threshold": In(unsigned(cw)),
            "clear": In(1),
            "out_valid": Out(1),
            "error": Out(1),
            "alarm": Out(1),
            "first_index": Out(unsigned(index_bits)),
            "checksum": Out(signed(cw)),
        })

    @property
    def residue_bits(self) -> int | None:
        """The residue check's k, or None (exact)."""
        return self._k

    @property
    def index_bits(self) -> int:
        """Width of the vector counter and ``first_index``."""
        return self._ib

    @property
    def check_width(self) -> int:
        """Width of the syndrome and threshold."""
        return self._cw

    @property
    def latency(self) -> int:
        """Cycles from a vector to its ``error`` flag."""
        return 1

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "checksum_spatial", "width": self._width, "lanes": self._lanes,
                "residue_bits": self._k, "index_bits": self._ib}

    def elaborate(self, platform):
        """The checker's netlist."""
        m = Module()
        k, cw = self._k, self._cw
        if k is None:
            leaves = list(self.data) + [-self.expected]
        else:
            # Residue mode: only the k low bits take part; the wrap is exact modulo 2^k.
            leaves = [d[:k] for d in self.data] + [(-self.expected)[:k]]
        total = _tree_sum(m, leaves, "tree", k)
        diff = Signal(signed(cw))
        m.d.comb += diff.eq(total if k is None else total.as_signed())
        fail = Signal()
        m.d.comb += fail.eq(abs(diff) > self.threshold)

        # clear acts before this cycle's vector: the state it would see after a reset.
        alarm = Mux(self.clear, 0, self.alarm)
        count = Signal(self._ib)
        cur_count = Mux(self.clear, 0, count)
        first = Mux(self.clear, 0, self.first_index)
        hit = self.valid & fail
        m.d.sync += [
            self.out_valid.eq(self.valid),
            self.error.eq(hit),
            self.checksum.eq(diff),
            count.eq(cur_count + self.valid),
            self.alarm.eq(alarm | hit),
            self.first_index.eq(Mux(hit & ~alarm, cur_count, first)),
        ]
        return m


class SanityInputGenerator(LaneParameters, wiring.Component):
    """Sanity-input generator of the temporal checksum (Fig. 6.9, blue; Ozen 2023 §6.3.3).

    A vector stage (:mod:`rtl_gen.vector`).

    Sits in front of the array's streamed-operand input (WS: activations; IS: weight columns,
    where it builds the sanity neuron on the fly).  It forwards each input vector one cycle
    later and accumulates it lane by lane; when a temporal batch is complete it emits the
    negated element-wise sum as one extra vector, flagged by ``sanity``.  Fault-free, the
    N + 1 vectors of a batch then sum to zero lane by lane (Eq. 6.7).

    A batch closes after ``batch`` data vectors (a shared counter, as in the seed), or earlier
    on a vector carrying ``last`` (the short last batch of a pass).  ``batch = 0``: only
    ``last`` closes a batch; with no ``last`` either, the unit is a plain one-cycle pipeline
    register (temporal checking off at run time).

    Parameters
    ----------
    width : int
        Input lane width (2 … 32).
    lanes : int
        Vector length (the array's streamed inputs, 1 … 256).
    batch_bits : int
        Width of ``batch``: a batch holds at most 2^batch_bits − 1 data vectors (1 … 16).
    out_width : int or None
        Width of ``o.data``.  ``None``: ``width + batch_bits``, which holds the negated sum
        of any batch exactly (:func:`golden.checksum.negated_sum_width`).  A value from
        ``width`` up wraps the sanity vector to that width (residue mode: the temporal check
        then holds only modulo 2^out_width; data vectors always pass unchanged).

    Attributes
    ----------
    i : In(VectorSignature(width, lanes))
        The input vectors.
    last : In(1)
        With ``i.valid``: this vector is the last of its batch.
    batch : In(unsigned(batch_bits))
        N, data vectors per batch (0: closed by ``in_last`` only).  Hold it constant within a
        batch.
    clear : In(1)
        Drops the batch in progress (accumulators, counter, a pending sanity vector and
        ``overrun``) *before* this cycle's input, which starts a new batch.
    o : Out(VectorSignature(out_width, lanes))
        The forwarded vector, or the sanity vector.
    sanity : Out(1)
        ``o.data`` is the sanity vector (closes the batch): delay it with ``o.valid``
        through the array to the temporal checker's ``last``.
    ready : Out(1)
        Low in the cycle in which the sanity vector is being emitted: an input offered then is
        not accepted.  The driver leaves one idle cycle after every batch (after the vector
        that closes it), which is the throughput cost 1/(N+1) of the seed.
    overrun : Out(1)
        Sticky: a valid input arrived while ``ready`` was low and was dropped.

    Latency **1 cycle** (input vector t appears at ``o.data`` in cycle t + 1; the sanity
    vector of a batch one cycle after its last data vector).  Throughput: N data vectors per
    N + 1 cycles.  Hardware: ``lanes`` adders and ``out_width``-bit accumulators, one
    ``out_width``-bit negation per lane (shared output multiplexer), a ``batch_bits`` counter.
    """

    def __init__(self, *, width: int = 8, lanes: int = 8, batch_bits: int = 6,
                 out_width: int | None = None):
        check_int("width", width, 2, 32)
        check_int("lanes", lanes, 1, 256)
        check_int("batch_bits", batch_bits, 1, 16)
        if out_width is None:
            out_width = width + batch_bits
        if not is_int(out_width) or not width <= out_width <= width + batch_bits:
            raise ConfigError("out_width", out_width,
                                      f"None or an integer from width={width} to "
                                      f"width+batch_bits={width + batch_bits}")
        self._width, self._lanes, self._bb, self._ow = width, lanes, batch_bits, out_width
        super().__init__({
            "i": In(VectorSignature(width, lanes)),
            "last": In(1),
            "batch": In(unsigned(batch_bits)),
            "clear": In(1),
            "o": Out(VectorSignature(out_width, lanes)),
            "sanity": Out(1),
            "ready": Out(1, init=1),
            "overrun": Out(1),
        })

    @property
    def batch_bits(self) -> int:
        """Width of ``batch``."""
        return self._bb

    @property
    def out_width(self) -> int:
        """Width of ``o.data``."""
        return self._ow

    @property
    def latency(self) -> int:
        """Cycles from an input vector to its output."""
        return 1

    @property
    def exact(self) -> bool:
        """The sanity vector is never wrapped (``out_width = width + batch_bits``)."""
        return self._ow == self._width + self._bb

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "checksum_sanity_input", "width": self._width, "lanes": self._lanes,
                "batch_bits": self._bb, "out_width": self._ow}

    def elaborate(self, platform):
        """The generator's netlist."""
        m = Module()
        ow = self._ow
        count = Signal(self._bb)
        pending = Signal()
        acc = [Signal(signed(ow), name=f"acc{i}") for i in range(self._lanes)]

        cur_count = Mux(self.clear, 0, count)
        cur_pending = Signal()
        m.d.comb += cur_pending.eq(~self.clear & pending)
        overrun = Mux(self.clear, 0, self.overrun)
        closes = Signal()
        m.d.comb += closes.eq(((self.batch != 0) & (cur_count + 1 == self.batch))
                              | self.last)
        take = Signal()  # an input vector is accepted this cycle
        m.d.comb += take.eq(self.i.valid & ~cur_pending)

        for i in range(self._lanes):
            cur = Mux(self.clear, 0, acc[i])
            # ow-bit accumulator: exact when ow = width + batch_bits, a residue otherwise.
            nxt = Mux(cur_pending, 0, Mux(take, cur + self.i.data[i], cur))
            m.d.sync += [
                acc[i].eq(nxt),
                self.o.data[i].eq(Mux(cur_pending, -cur, self.i.data[i])),
            ]
        next_pending = take & closes
        m.d.sync += [
            count.eq(Mux(cur_pending | (take & closes), 0, Mux(take, cur_count + 1, cur_count))),
            pending.eq(next_pending),
            self.ready.eq(~next_pending),
            self.o.valid.eq(cur_pending | self.i.valid),
            self.sanity.eq(cur_pending),
            self.overrun.eq(overrun | (cur_pending & self.i.valid)),
        ]
        return m


class TemporalChecker(LaneParameters, wiring.Component):
    """Temporal (input) checksum check: per-lane accumulators over a batch (Fig. 6.9, yellow).

    Sits at the accelerator's output beside the :class:`SpatialChecker`.  Lane u accumulates
    the outputs of one temporal batch (N data vectors + the sanity vector); the vector with
    ``last`` set (the generator's ``sanity``, delayed by the array's latency: the seed's
    "control signals delayed", Ozen 2023 §6.3.3) closes the batch, and every lane's sum is compared
    with
    ``expected[u]`` (``(N+1)·bias[u]`` if the checked outputs include the bias, else 0,
    :func:`golden.checksum.temporal_expected`).

    Parameters
    ----------
    width : int
        Lane width (the accumulator width; 2 … 60).
    lanes : int
        Output lanes (1 … 257).
    batch_bits : int
        A batch has at most 2^batch_bits vectors, sanity vector included (1 … 16); exact check
        accumulators are ``width + batch_bits`` bits.
    residue_bits : int or None
        ``k`` (2 … width): k-bit accumulators, check modulo 2^k (aliasing as for the spatial
        checker).
    index_bits : int
        Width of the batch counter and ``first_index`` (1 … 32).

    Attributes
    ----------
    data : In(signed(width)).array(lanes)
    valid : In(1)
    last : In(1)
        With ``valid``: this vector closes the batch.
    expected : In(signed(acc_width)).array(lanes)
        Expected lane sums of a batch, sampled with the closing vector.  In residue mode the
        port is k bits wide: program ``expected mod 2^k`` (:func:`golden.bits.wrap`).
    threshold : In(unsigned(check_width))
        A lane fails when ``|sum - expected| > threshold``.
    clear : In(1)
        Clears the accumulators (a batch in progress is dropped), ``alarm``, ``first_index``
        and the batch counter before this cycle's vector.
    checked : Out(1)
        A batch was closed by the vector of the previous cycle (its result is below).
    error : Out(1)
        That batch failed in some lane.
    lane_errors : Out(unsigned(lanes))
        Bit u: lane u of that batch failed (0 when ``checked`` is low).  With the spatial
        checker's failing vector it locates a single error (row × column, Ozen 2023 §6.2.4).
    alarm : Out(1)
        Sticky: some batch failed since ``clear``.
    first_index : Out(unsigned(index_bits))
        Index of the first failing batch (batches counted from 0 after ``clear``).

    Latency **1 cycle** from the closing vector to ``checked``/``error``.  Throughput one vector
    per cycle (batches back to back).  A batch longer than 2^batch_bits vectors may wrap the
    exact accumulators (not detected as such).  Hardware: ``lanes`` adders + accumulators,
    ``lanes`` subtract/abs/compare, an ``index_bits`` batch counter.
    """

    def __init__(self, *, width: int = 26, lanes: int = 9, batch_bits: int = 6,
                 residue_bits: int | None = None, index_bits: int = 16):
        check_int("width", width, 2, 60)
        check_int("lanes", lanes, 1, MAX_LANES)
        check_int("batch_bits", batch_bits, 1, 16)
        _check_residue_and_index(width, residue_bits, index_bits)
        aw = residue_bits if residue_bits is not None else width + batch_bits
        cw = residue_bits if residue_bits is not None else aw + 1
        if cw > MAX_CHECK_WIDTH:
            raise ConfigError("width", width, f"at most {MAX_CHECK_WIDTH} bits of check "
                              f"(width + batch_bits + 1 = {cw}); use residue_bits")
        self._width, self._lanes, self._bb, self._k, self._ib = (width, lanes, batch_bits,
                                                                  residue_bits, index_bits)
        self._aw, self._cw = aw, cw
        super().__init__({
            "data": In(signed(width)).array(lanes),
            "valid": In(1),
            "last": In(1),
            "expected": In(signed(aw)).array(lanes),
            "threshold": In(unsigned(cw)),
            "clear": In(1),
            "checked": Out(1),
            "error": Out(1),
            "lane_errors": Out(unsigned(lanes)),
            "alarm": Out(1),
            "first_index": Out(unsigned(index_bits)),
        })

    @property
    def batch_bits(self) -> int:
        """Width of the batch counter of the exact accumulators."""
        return self._bb

    @property
    def residue_bits(self) -> int | None:
        """The residue check's k, or None (exact)."""
        return self._k

    @property
    def index_bits(self) -> int:
        """Width of the batch counter and ``first_index``."""
        return self._ib

    @property
    def acc_width(self) -> int:
        """Width of the check accumulators."""
        return self._aw

    @property
    def check_width(self) -> int:
        """Width of the difference and threshold."""
        return self._cw

    @property
    def latency(self) -> int:
        """Cycles from a batch's last vector to its flags."""
        return 1

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": "checksum_temporal", "width": self._width, "lanes": self._lanes,
                "batch_bits": self._bb, "residue_bits": self._k, "index_bits": self._ib}

    def elaborate(self, platform):
        """The checker's netlist."""
        m = Module()
        aw, cw, k = self._aw, self._cw, self._k
        closing = Signal()
        m.d.comb += closing.eq(self.valid & self.last)
        fails = []
        for u in range(self._lanes):
            acc = Signal(signed(aw), name=f"acc{u}")
            cur = Mux(self.clear, 0, acc)
            total = Signal(signed(aw), name=f"total{u}")
            lane = self.data[u] if k is None else self.data[u][:k].as_signed()
            m.d.comb += total.eq(cur + lane)  # aw bits: exact, or the k-bit residue
            diff = Signal(signed(cw), name=f"diff{u}")
            m.d.comb += diff.eq(total - self.expected[u])
            fail = Signal(name=f"fail{u}")
            m.d.comb += fail.eq(abs(diff) > self.threshold)
            fails.append(fail)
            m.d.sync += acc.eq(Mux(self.valid, Mux(self.last, 0, total), cur))
        lanes = Signal(self._lanes)
        m.d.comb += lanes.eq(Mux(closing, Cat(*fails), 0))
        hit = closing & lanes.any()
        alarm = Mux(self.clear, 0, self.alarm)
        batches = Signal(self._ib)
        cur_batches = Mux(self.clear, 0, batches)
        first = Mux(self.clear, 0, self.first_index)
        m.d.sync += [
            self.checked.eq(closing),
            self.error.eq(hit),
            self.lane_errors.eq(lanes),
            batches.eq(cur_batches + closing),
            self.alarm.eq(alarm | hit),
            self.first_index.eq(Mux(hit & ~alarm, cur_batches, first)),
        ]
        return m


class SanityLoadGenerator(wiring.Component):
    """IS spatial checksum: the sanity column's stationary inputs, made as the tile loads.

    On IS the array's columns are batch rows, so the extra PE column holds a sanity *input*
    (Ozen 2023 Eq. 6.7): row r's value is the negated sum of the C loaded activations of row r,
    those of bypassed PEs left out (the array prunes them).  Activations are run-time data, so the
    sum is made in hardware from the load lanes as the array takes them (after the input units), not
    by the host:

    * ``skewed`` (double-buffered array: column c loads c cycles after column 0): a systolic
      chain of ``lanes`` adders, each adding its lane to the partial sum of the lane before
      and registering it; the sum of row r's C values leaves the chain exactly when the
      sanity column (c = C) loads row r, C cycles after column 0;
    * not skewed (single-buffered: every column loads together): one adder tree, no register.

    Parameters
    ----------
    width : int
        Activation width.
    lanes : int
        C, the array's columns.
    rows : int
        R, for the bypass map's row of each loaded value (the first value loaded ends in row
        R − 1).
    skewed : bool
        Column c's load is c cycles after column 0's.
    bypass : bool
        Leave the values of bypassed PEs out (``bypass_map``).

    Attributes
    ----------
    data : In(signed(width)).array(lanes)
        The array's ``stat_data`` lanes.
    load : In(1)
        Column 0's load flag as the array takes it (counts the rows, with ``bypass``).
    bypass_map : In(rows · lanes)
        Bit ``r·lanes + c`` bypasses PE (r, c) (with ``bypass``).
    out : Out(signed(width + ceil(log2(lanes + 1))))
        The sanity column's ``stat`` value, exact.

    Latency: aligned with the sanity column's load (see above).  Hardware: ``lanes`` adders,
    with ``skewed`` ``lanes`` registers of the output width (and of the row index with
    ``bypass``), with ``bypass`` a row counter and one multiplexer per lane.
    """

    def __init__(self, *, width: int, lanes: int, rows: int, skewed: bool, bypass: bool):
        check_int("width", width, 2, 32)
        check_int("lanes", lanes, 1, 256)
        check_int("rows", rows, 1, 256)
        self._width, self._lanes, self._rows = width, lanes, rows
        self._skewed, self._bypass = bool(skewed), bool(bypass)
        self._ow = width + math.ceil(math.log2(lanes + 1))
        members = {"data": In(signed(width)).array(lanes), "load": In(1),
                   "out": Out(signed(self._ow))}
        if bypass:
            members["bypass_map"] = In(rows * lanes)
        super().__init__(members)

    @property
    def out_width(self) -> int:
        """Width of ``out``: the negated sum of ``lanes`` values, exact."""
        return self._ow

    def elaborate(self, platform):
        """The chain or the tree."""
        m = Module()
        R, C, ow = self._rows, self._lanes, self._ow
        row0 = None
        if self._bypass:
            count = Signal(range(max(R, 2)), name="load_count")
            with m.If(self.load):
                m.d.sync += count.eq(Mux(count == R - 1, 0, count + 1))
            row0 = Signal(range(max(R, 2)), name="row0")
            m.d.comb += row0.eq(R - 1 - count)  # the first value loaded ends in row R - 1

        def kept(c, row):
            x = self.data[c]
            if row is None:
                return x
            # bit row·C + c of the map, selected by the lane's row
            bit = self.bypass_map.bit_select(row * C + c, 1)
            return Mux(bit, 0, x)

        if not self._skewed:
            total = sum((kept(c, row0) for c in range(C)), start=C_(0, signed(ow)))
            m.d.comb += self.out.eq(-total)
            return m
        partial, row = C_(0, signed(ow)), row0
        for c in range(C):
            acc = Signal(signed(ow), name=f"chain{c}")
            m.d.sync += acc.eq(partial + kept(c, row))
            partial = acc
            if row is not None:
                nxt = Signal.like(row0, name=f"row{c + 1}")
                m.d.sync += nxt.eq(row)
                row = nxt
        m.d.comb += self.out.eq(-partial)
        return m


class SanityRowInput(wiring.Component):
    """OS temporal checksum: the sanity row's activation, the negated sum of a step's R lanes.

    On OS a tile's R batch rows are processed side by side, so the temporal batch of Ozen 2023
    Eq. 6.7 is the tile and its sanity input one more PE row: at every step it receives the
    negated sum of the R activations streamed that step (after the input units).  Combinational
    (an adder tree; the array's skew registers follow).  ``out_width``: ``width +
    ceil(log2(lanes + 1))`` keeps it exact; ``width`` wraps it (residue mode: the temporal
    check then holds modulo 2**width).
    """

    def __init__(self, *, width: int, lanes: int, out_width: int):
        check_int("width", width, 2, 32)
        check_int("lanes", lanes, 1, 256)
        exact = width + math.ceil(math.log2(lanes + 1))
        if not is_int(out_width) or not width <= out_width <= exact:
            raise ConfigError("out_width", out_width, f"an integer from {width} to {exact}")
        self._lanes, self._exact = lanes, exact
        super().__init__({"data": In(signed(width)).array(lanes),
                          "out": Out(signed(out_width))})

    def elaborate(self, platform):
        """The adder tree and the negation, truncated to the output width."""
        m = Module()
        total = _tree_sum(m, list(self.data), "rowsum", None)
        neg = Signal(signed(self._exact + 1), name="negated")
        m.d.comb += [neg.eq(-total), self.out.eq(neg)]  # truncation: the residue's wrap
        return m
