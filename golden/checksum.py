"""Sanity-Check linear checksums: host helpers and golden models of the checker units.

Ozen 2023 ch. 6.  Plain numpy; the error-detection study that
measures Table 6.1 with these helpers is a campaign (:mod:`golden.campaign`).

Host helpers (what software prepares before a product runs)
    :func:`sanity_column` / :func:`extend_weights` — the *sanity neuron*: one extra weight
    column holding the negated row sums of ``B`` and one extra bias holding the negated bias
    sum, so that every output row of ``A @ [B | s] + [bias | b_s]`` sums to zero (Eqs. 6.2–6.5).
    :func:`temporal_sanity_input` / :func:`extend_inputs` — the negated element-wise sum of a
    temporal batch of N input vectors, fed as vector N+1, so that every output column summed
    over the N+1 outputs equals ``(N+1)·bias[u]`` (Eqs. 6.6–6.8; see the note on N below).
    :func:`negated_sum_width` — how many bits those extra values need.

Golden models of the RTL units of :mod:`rtl_gen.checksum`, bit for bit and cycle by cycle
    :class:`SpatialCheckerModel`, :class:`SanityInputGeneratorModel`,
    :class:`TemporalCheckerModel`, driven by :func:`simulate` exactly as :mod:`tb.player`
    drives the RTL (row ``t`` of a recording = the registered outputs before the inputs of
    cycle ``t`` are applied); plus the functional checks :func:`spatial_syndrome`,
    :func:`temporal_syndrome` they must agree with.

Widths of the extra values (the decision Ozen 2023 ch. 6 leaves to us)
--------------------------------------------------------------
A negated sum of ``n`` signed ``w``-bit values lies in ``[-n·2^(w-1), n·2^(w-1)]`` and so needs
``w + ceil(log2(n + 1))`` bits (:func:`negated_sum_width`; ``w + ceil(log2 n)`` is one bit
short when n is a power of two: ``-(n × -2^(w-1)) = n·2^(w-1)``).  Hence:

* the sanity weight column of a C-column tile needs ``w_width + ceil(log2(C + 1))`` bits
  (8-bit weights, C = 8: 12 bits; C = 64: 15 bits), its bias ``bias_width + ceil(log2(C+1))``;
* the sanity input of a temporal batch of N vectors needs ``a_width + ceil(log2(N + 1))`` bits.

Either the hardware carries them at that width (exact checks; for the spatial checksum only
the one extra array column is wider, for the temporal checksum the *whole streamed-operand
path* would be), or they are stored wrapped to the data width (``wrap_bits=``) and every check
is done modulo ``2^k`` with ``k ≤`` that data width: wrapping is a ring homomorphism, so the
invariants still hold exactly modulo ``2^k`` (this is the seed's residue option, Ozen 2023 §6.3.1,
§6.3.3), at the price of aliasing measured by :func:`golden.campaign.aliasing_table`.  Modulo 2^k
the aliasing of bit errors is structural, not the 2^-k of random words: a flip of bit i (error ±2^i)
escapes iff i ≥ k, so the high-order flips — the harmful ones — are the ones missed.

Recommended for the spatial checksum: the sanity column's weights at full width (one column
only), its partial sums kept at the accumulator width P and allowed to wrap, checks modulo 2^P.
No wider psum chain or adder tree, and no error of a single P-bit register is a multiple of
2^P, so every Table 6.1 guarantee still holds (tested: ``modulus="pow2"``, k = the widest
checked register).  :class:`golden.campaign.FCLayer` models the wrapped variants
(``wrap_input``, ``wrap_weight``) and :func:`golden.campaign.detection_table` can run the
temporal check in its own arithmetic (``temporal_modulus``, ``temporal_k``).

A note on N
-----------
Eq. 6.8 writes the column sum as ``N·B[u]`` where N counts *all* vectors of the temporal batch,
the one that makes the inputs sum to zero included.  With N data vectors plus the sanity
vector (Ozen 2023 ch. 6's wording) every one of the N + 1 outputs carries the bias, so the expected
constant is ``(N + 1)·B[u]`` (:func:`temporal_expected`); Ozen 2023 ch. 6's "N·B[u]" is off by one.
"""

from __future__ import annotations

import math

import numpy as np

from ftaccel.enums import Dataflow, FaultMode
from ftaccel.errors import check_int, is_int

from .bits import MAX_BITS, signed_array, to_unsigned, wrap
from .faults import sabotage

__all__ = [
    "negated_sum_width", "sanity_column", "extend_weights", "temporal_sanity_input",
    "extend_inputs", "temporal_expected",
    "spatial_syndrome", "spatial_errors", "temporal_syndrome", "temporal_errors",
    "SpatialCheckerModel", "SanityInputGeneratorModel", "TemporalCheckerModel", "simulate",
    "residue", "TEMPORAL_OUTPUTS", "bias_delta", "SanityLoadGeneratorModel",
]


def negated_sum_width(width: int, count: int) -> int:
    """Bits of the (negated) sum of ``count`` signed ``width``-bit values: w + ceil(log2(n+1)).

    The sum lies in ``[-n·2^(w-1), n·(2^(w-1)-1)]``, its negation in ``[-n·(2^(w-1)-1),
    n·2^(w-1)]``; both fit ``w + ceil(log2(n+1))`` bits, and for every n some operands need
    all of them (e.g. n copies of ``-2^(w-1)`` negated).
    """
    width = check_int("width", width, 1, MAX_BITS, numpy=True)
    if not is_int(count, numpy=True) or count < 1:
        raise ValueError(f"invalid count = {count!r}: a positive integer")
    return width + math.ceil(math.log2(int(count) + 1))


def residue(x, kind: str, k: int | None):
    """``x`` reduced for a checker.

    ``"exact"`` (unchanged), ``"pow2"`` (mod 2^k as signed k bits: the RTL's residue mode) or
    ``"pow2m1"`` (mod 2^k − 1, symmetric representative; a study-only comparison, the RTL has no
    such mode).
    """
    x = np.asarray(x, dtype=np.int64)
    if kind == "exact":
        return x
    k = check_int("residue_bits", k, 2, MAX_BITS, numpy=True)
    if kind == "pow2":
        return wrap(x, k)
    if kind == "pow2m1":
        mod = (1 << k) - 1
        r = np.mod(x, mod)
        return np.where(r > mod // 2, r - mod, r)
    raise ValueError(f"invalid modulus kind = {kind!r}: one of exact, pow2, pow2m1")


# --------------------------------------------------------------------------------------------
# host helpers
# --------------------------------------------------------------------------------------------
def sanity_column(B, bias=None, *, w_width: int | None = None, bias_width: int | None = None,
                  wrap_bits: int | None = None):
    """The sanity neuron of a weight matrix: ``(s, s_bias)`` (Ozen 2023 Eq. 6.5).

    ``s[k] = -sum_u B[k, u]`` and ``s_bias = -sum_u bias[u]``, so that each row of
    ``A @ [B | s] + [bias | s_bias]`` sums to zero for every ``A`` (Eq. 6.2).

    Parameters
    ----------
    B : int array, shape (K, N)
        Weights, one neuron per column (N = the columns of one array tile, see
        :func:`extend_weights` for tiled products).
    bias : int array, shape (N,), optional
        Biases; ``None`` = zero (then ``s_bias`` = 0).
    w_width, bias_width : int, optional
        If given, ``B`` / ``bias`` are checked to be signed values of that width.  The exact
        ``s`` then needs :func:`negated_sum_width` ``(w_width, N)`` bits.
    wrap_bits : int, optional
        Return ``s`` and ``s_bias`` wrapped to this many bits (two's complement), for a
        sanity column stored at the array's own weight width; the invariant then holds only
        modulo ``2^wrap_bits`` (use a checker with ``residue_bits <= wrap_bits``).

    Returns
    -------
    s : int64 array, shape (K,)
    s_bias : int64 scalar
    """
    B = signed_array(B, "B", w_width)
    if B.ndim != 2 or 0 in B.shape:
        raise ValueError(f"invalid B: a non-empty K×N matrix, got shape {B.shape}")
    b = (np.zeros(B.shape[1], dtype=np.int64) if bias is None
         else signed_array(bias, "bias", bias_width))
    if b.shape != (B.shape[1],):
        raise ValueError(f"invalid bias: shape ({B.shape[1]},) to match B, got {b.shape}")
    s = -B.sum(axis=1)
    sb = -b.sum()
    if wrap_bits is not None:
        s, sb = wrap(s, wrap_bits), wrap(sb, wrap_bits)
    return s, np.int64(sb)


def extend_weights(B, bias=None, *, group: int | None = None, w_width: int | None = None,
                   bias_width: int | None = None, wrap_bits: int | None = None):
    """``B`` with a sanity column after every ``group`` columns (one per array tile).

    With an array of C real columns plus one sanity column, each column tile of the product
    needs its own sanity column (the checker sees only that tile's C + 1 lanes): ``group = C``.
    ``group = None`` adds a single sanity column for the whole matrix.

    Returns ``(B_ext, bias_ext, sanity)``: the extended K×(N + tiles) weights, the extended
    bias, and a boolean mask of the sanity columns.  Tile t occupies columns
    ``t·(group+1) … t·(group+1)+group`` with its sanity column last; the last tile may hold
    fewer real columns.
    """
    B = signed_array(B, "B", w_width)
    if B.ndim != 2 or 0 in B.shape:
        raise ValueError(f"invalid B: a non-empty K×N matrix, got shape {B.shape}")
    N = B.shape[1]
    b = np.zeros(N, dtype=np.int64) if bias is None else signed_array(bias, "bias", bias_width)
    if b.shape != (N,):
        raise ValueError(f"invalid bias: shape ({N},) to match B, got {b.shape}")
    if group is None:
        group = N
    if not is_int(group, numpy=True) or group < 1:
        raise ValueError(f"invalid group = {group!r}: a positive integer (the array's columns)")
    cols, biases, mask = [], [], []
    for n0 in range(0, N, group):
        Bt, bt = B[:, n0:n0 + group], b[n0:n0 + group]
        s, sb = sanity_column(Bt, bt, wrap_bits=wrap_bits)
        cols += [Bt, s[:, None]]
        biases += [bt, np.array([sb])]
        mask += [False] * Bt.shape[1] + [True]
    return np.hstack(cols), np.concatenate(biases), np.array(mask)


def temporal_sanity_input(batch, *, a_width: int | None = None, wrap_bits: int | None = None):
    """The sanity input of a temporal batch: ``-sum_z batch[z, :]`` (Ozen 2023 Eq. 6.7).

    ``batch`` is N×K (N input vectors).  Exact, the result needs
    :func:`negated_sum_width` ``(a_width, N)`` bits; ``wrap_bits`` wraps it to a narrower
    streamed-operand width (checks then hold modulo ``2^wrap_bits``).
    """
    X = signed_array(batch, "batch", a_width)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"invalid batch: an N×K matrix with N ≥ 1, got shape {X.shape}")
    s = -X.sum(axis=0)
    return wrap(s, wrap_bits) if wrap_bits is not None else s


def extend_inputs(A, batch_size: int, *, a_width: int | None = None,
                  wrap_bits: int | None = None):
    """``A`` (M×K) with the sanity inputs inserted.

    A sanity input follows every ``batch_size`` rows and the last (possibly shorter) batch, as the
    :class:`SanityInputGeneratorModel` streams it when the last vector of the pass carries
    ``in_last``.

    Returns ``(A_ext, last)``: the extended rows and a boolean per row marking the sanity
    vectors (the ``last`` flag a temporal checker closes its batch on).
    """
    A = signed_array(A, "A", a_width)
    if A.ndim != 2 or A.shape[0] == 0:
        raise ValueError(f"invalid A: an M×K matrix with M ≥ 1, got shape {A.shape}")
    if not is_int(batch_size, numpy=True) \
            or batch_size < 1:
        raise ValueError(f"invalid batch_size = {batch_size!r}: a positive integer")
    rows, last = [], []
    for m0 in range(0, A.shape[0], batch_size):
        blk = A[m0:m0 + batch_size]
        rows += [blk, temporal_sanity_input(blk, wrap_bits=wrap_bits)[None, :]]
        last += [False] * len(blk) + [True]
    return np.vstack(rows), np.array(last)


def temporal_expected(bias, count: int):
    """The temporal check constants ``count · bias[u]``.

    ``count`` is the number of output vectors in the batch *including* the sanity vector (N + 1 for
    N data vectors).
    """
    b = signed_array(bias, "bias")
    return np.int64(count) * b


# --------------------------------------------------------------------------------------------
# functional checks
# --------------------------------------------------------------------------------------------
def spatial_syndrome(out, *, expected=0, residue_bits: int | None = None):
    """Per output vector (row of ``out`` [T, n]).

    ``sum(out[t]) - expected``, exact or as a signed ``residue_bits``-bit residue (mod 2^k).
    """
    O = signed_array(out, "out")
    d = O.sum(axis=-1) - np.asarray(expected, dtype=np.int64)
    return d if residue_bits is None else wrap(d, residue_bits)


def spatial_errors(out, *, threshold: int = 0, expected=0, residue_bits: int | None = None):
    """Per output vector: does ``|syndrome|`` exceed ``threshold``? (Fig. 6.8)."""
    return np.abs(spatial_syndrome(out, expected=expected, residue_bits=residue_bits)) > threshold


def temporal_syndrome(out, last, *, expected, residue_bits: int | None = None):
    """Per closed batch and lane: ``sum of the batch's rows - expected`` ([B, n]).

    A batch is the run of rows up to and including a row with ``last`` set; rows after the
    final ``last`` (an open batch) are not checked.  ``expected`` is [n] or [B, n].
    """
    O = signed_array(out, "out")
    L = np.asarray(last, dtype=bool)
    ends = np.flatnonzero(L)
    if len(ends) == 0:
        return np.zeros((0, O.shape[1]), dtype=np.int64)
    csum = np.cumsum(O, axis=0)
    tot = csum[ends] - np.vstack([np.zeros((1, O.shape[1]), np.int64), csum[ends[:-1]]])
    d = tot - np.asarray(expected, dtype=np.int64)
    return d if residue_bits is None else wrap(d, residue_bits)


def temporal_errors(out, last, *, expected, threshold: int = 0,
                    residue_bits: int | None = None):
    """Per closed batch and lane: does ``|syndrome|`` exceed ``threshold``? (Fig. 6.9)."""
    return np.abs(temporal_syndrome(out, last, expected=expected,
                                    residue_bits=residue_bits)) > threshold


# --------------------------------------------------------------------------------------------
# cycle-level golden models of the RTL units
# --------------------------------------------------------------------------------------------
def _index(x) -> np.int64:
    return np.int64(np.asarray(x).reshape(-1)[0]) if np.ndim(x) else np.int64(x)


class SpatialCheckerModel:
    """Golden model of :class:`rtl_gen.checksum.SpatialChecker`, one :meth:`step` per cycle.

    Ports as in the RTL: inputs ``data`` [lanes], ``valid``, ``expected``, ``threshold``,
    ``clear``; outputs ``out_valid``, ``error``, ``alarm``, ``first_index``, ``checksum``.
    """

    def __init__(self, *, width: int, lanes: int, residue_bits: int | None = None,
                 index_bits: int = 16):
        self.width, self.lanes, self.k, self.index_bits = width, lanes, residue_bits, index_bits
        self.check_width = residue_bits if residue_bits is not None else \
            width + math.ceil(math.log2(lanes + 1))
        if self.check_width > MAX_BITS:
            raise ValueError(f"check width {self.check_width} exceeds {MAX_BITS} bits")
        self.out_valid = self.error = self.alarm = 0
        self.first_index = 0
        self.checksum = np.int64(0)
        self.count = 0

    def outputs(self) -> dict:
        """The checker's outputs after the last step, by port name."""
        return {"out_valid": self.out_valid, "error": self.error, "alarm": self.alarm,
                "first_index": self.first_index, "checksum": int(self.checksum)}

    def step(self, inputs: dict) -> None:
        """Advance one clock cycle with ``inputs`` (port name → value)."""
        w, cw = self.width, self.check_width
        data = wrap(np.asarray(inputs["data"], dtype=np.int64).reshape(self.lanes), w)
        valid = int(_index(inputs["valid"]) & 1)
        clear = int(_index(inputs["clear"]) & 1)
        expected = wrap(_index(inputs["expected"]), w)
        threshold = to_unsigned(_index(inputs["threshold"]), cw)
        diff = wrap(data.sum() - expected, cw)  # exact: cannot wrap (check_width covers it)
        fail = bool(abs(int(diff)) > int(threshold))
        alarm = 0 if clear else self.alarm
        count = 0 if clear else self.count
        first = 0 if clear else self.first_index
        self.out_valid = valid
        self.error = int(valid and fail)
        self.checksum = diff
        if valid and fail and not alarm:
            alarm, first = 1, count
        self.alarm, self.first_index = alarm, first
        self.count = (count + valid) % (1 << self.index_bits)


class SanityInputGeneratorModel:
    """Golden model of :class:`rtl_gen.checksum.SanityInputGenerator`, a vector stage.

    Ports as in the RTL: inputs ``i__data`` [lanes], ``i__valid``, ``last``, ``batch``,
    ``clear``; outputs ``o__data`` [lanes], ``o__valid``, ``sanity``, ``ready``, ``overrun``.
    """

    def __init__(self, *, width: int, lanes: int, batch_bits: int,
                 out_width: int | None = None):
        self.width, self.lanes, self.batch_bits = width, lanes, batch_bits
        self.out_width = out_width if out_width is not None else width + batch_bits
        self.acc = np.zeros(lanes, dtype=np.int64)
        self.count = 0
        self.pending = 0
        self.out_data = np.zeros(lanes, dtype=np.int64)
        self.out_valid = self.out_sanity = self.overrun = 0
        self.ready = 1

    def outputs(self) -> dict:
        """The generator's outputs after the last step, by port name."""
        return {"o__data": self.out_data.copy(), "o__valid": self.out_valid,
                "sanity": self.out_sanity, "ready": self.ready, "overrun": self.overrun}

    def step(self, inputs: dict) -> None:
        """Advance one clock cycle with ``inputs`` (port name → value)."""
        ow, bb = self.out_width, self.batch_bits
        data = wrap(np.asarray(inputs["i__data"], dtype=np.int64).reshape(self.lanes),
                    self.width)
        valid = int(_index(inputs["i__valid"]) & 1)
        last = int(_index(inputs["last"]) & 1)
        batch = int(to_unsigned(_index(inputs["batch"]), bb))
        clear = int(_index(inputs["clear"]) & 1)
        acc = np.zeros_like(self.acc) if clear else self.acc
        count = 0 if clear else self.count
        pending = 0 if clear else self.pending
        overrun = 0 if clear else self.overrun
        if pending:
            # The batch is complete: this cycle emits its negated sum; an input offered now
            # is not accepted (ready was low) and is recorded as an overrun.
            self.out_data = wrap(-acc, ow)
            self.out_valid, self.out_sanity = 1, 1
            self.acc = np.zeros_like(acc)
            self.count, self.pending = 0, 0
            self.overrun = overrun | valid
        else:
            self.out_data = data.copy()
            self.out_valid, self.out_sanity = valid, 0
            self.overrun = overrun
            if valid:
                closes = (batch != 0 and (count + 1) % (1 << bb) == batch) or last
                self.acc = wrap(acc + data, ow)
                self.count = 0 if closes else (count + 1) % (1 << bb)
                self.pending = int(closes)
            else:
                self.acc, self.count, self.pending = acc, count, 0
        self.ready = 1 - self.pending


class TemporalCheckerModel:
    """Golden model of :class:`rtl_gen.checksum.TemporalChecker`.

    Inputs ``data`` [lanes], ``valid``, ``last``, ``expected`` [lanes], ``threshold``,
    ``clear``; outputs ``checked``, ``error``, ``lane_errors`` (bit u = lane u failed),
    ``alarm``, ``first_index``.
    """

    def __init__(self, *, width: int, lanes: int, batch_bits: int,
                 residue_bits: int | None = None, index_bits: int = 16):
        self.width, self.lanes, self.batch_bits = width, lanes, batch_bits
        self.k, self.index_bits = residue_bits, index_bits
        self.acc_width = residue_bits if residue_bits is not None else width + batch_bits
        self.check_width = residue_bits if residue_bits is not None else self.acc_width + 1
        self.acc = np.zeros(lanes, dtype=np.int64)
        self.checked = self.error = self.alarm = 0
        self.lane_errors = 0
        self.first_index = 0
        self.batches = 0

    def outputs(self) -> dict:
        """The checker's outputs after the last step, by port name."""
        return {"checked": self.checked, "error": self.error, "lane_errors": self.lane_errors,
                "alarm": self.alarm, "first_index": self.first_index}

    def step(self, inputs: dict) -> None:
        """Advance one clock cycle with ``inputs`` (port name → value)."""
        aw, cw = self.acc_width, self.check_width
        data = wrap(np.asarray(inputs["data"], dtype=np.int64).reshape(self.lanes), self.width)
        valid = int(_index(inputs["valid"]) & 1)
        last = int(_index(inputs["last"]) & 1)
        clear = int(_index(inputs["clear"]) & 1)
        expected = wrap(np.asarray(inputs["expected"], dtype=np.int64).reshape(self.lanes), aw)
        threshold = int(to_unsigned(_index(inputs["threshold"]), cw))
        acc = np.zeros_like(self.acc) if clear else self.acc
        alarm = 0 if clear else self.alarm
        batches = 0 if clear else self.batches
        first = 0 if clear else self.first_index
        total = wrap(acc + data, aw)
        diff = wrap(total - expected, cw)
        fail = np.abs(diff) > threshold
        closing = valid and last
        lanes = int(sum(1 << u for u in range(self.lanes) if fail[u])) if closing else 0
        self.checked = int(closing)
        self.error = int(closing and lanes != 0)
        self.lane_errors = lanes
        if valid:
            acc = np.zeros_like(acc) if closing else total
        if self.error and not alarm:
            alarm, first = 1, batches
        self.acc, self.alarm, self.first_index = acc, alarm, first
        self.batches = (batches + int(closing)) % (1 << self.index_bits)


class SanityLoadGeneratorModel:
    """Golden model of :class:`rtl_gen.checksum.SanityLoadGenerator` (IS spatial checksum).

    :meth:`output` is what ``out`` shows this cycle for the lanes ``data`` and the bypass map
    ``bypass`` (``[R, lanes]`` bool, or None) presented now (combinational when not
    ``skewed``); :meth:`step` then advances the chain and the row counter with them and
    ``load``.
    """

    def __init__(self, *, lanes: int, rows: int, skewed: bool, bypass: bool):
        self.lanes, self.rows, self.skewed, self.bypass = lanes, rows, skewed, bypass
        self.chain = np.zeros(lanes, dtype=np.int64)
        self.row = np.zeros(lanes, dtype=np.int64)  # row[c]: the row index lane c + 1 sees
        self.count = 0

    def _kept(self, data, rows, bmap) -> np.ndarray:
        data = np.asarray(data, dtype=np.int64)[:self.lanes]
        if not self.bypass or bmap is None:
            return data
        lanes = np.arange(self.lanes)
        return np.where(np.asarray(bmap, bool)[rows, lanes], 0, data)

    def _rows_now(self) -> np.ndarray:
        row0 = self.rows - 1 - self.count
        return np.concatenate([[row0], self.row[:-1]]).astype(np.int64)

    def output(self, data, bmap=None) -> int:
        """``out`` this cycle."""
        if self.skewed:
            return int(-self.chain[-1])
        return int(-self._kept(data, np.full(self.lanes, self.rows - 1 - self.count),
                               bmap).sum())

    def step(self, data, load: int, bmap=None) -> None:
        """One clock cycle."""
        if self.skewed:
            kept = self._kept(data, self._rows_now(), bmap)
            partial = np.concatenate([[0], self.chain[:-1]])
            self.row = self._rows_now()
            self.chain = partial + kept
        if load:
            self.count = 0 if self.count == self.rows - 1 else self.count + 1


def simulate(model, inputs: dict) -> dict[str, np.ndarray]:
    """Run ``model`` over per-cycle ``inputs`` (port → [T] or [T, n]) and return its outputs.

    The record is what :func:`tb.runner.run_stream` records from the RTL: row ``t`` = outputs before
    cycle t's inputs are applied (reset state in row 0).
    """
    lengths = {len(v) for v in inputs.values()}
    if len(lengths) != 1:
        raise ValueError(f"stimulus ports have different lengths: {sorted(lengths)}")
    T = lengths.pop()
    rec: dict[str, list] = {}
    for t in range(T):
        for name, value in model.outputs().items():
            rec.setdefault(name, []).append(value)
        model.step({name: arr[t] for name, arr in inputs.items()})
    return {name: np.asarray(v, dtype=np.int64) for name, v in rec.items()}


# -- the unit's functions for the engines and the driver program (golden.units) ---------------
#: Output ports of the temporal checksum (all unsigned).
TEMPORAL_OUTPUTS = ("temporal__checked", "temporal__error", "temporal__lane_errors",
                    "temporal__alarm", "temporal__first", "temporal__overrun")


def bias_delta(cfg, opts, bias) -> tuple | None:
    """``(row, column, delta)`` of the options' bias error (Ozen 2023 Table 6.1's bias row).

    A ``bias_flip`` ``(column, bit, row)`` becomes the change the flipped bit makes to that
    column's word of ``bias`` (an ``acc_bits``-bit signed word); a ``bias_error`` is already
    ``(row, column, delta)``.  None without either.
    """
    if opts is None or (opts.bias_flip is None and opts.bias_error is None):
        return None
    if opts.bias_error is not None:
        return tuple(opts.bias_error)
    col, bit, row = opts.bias_flip
    word = int(bias[col])
    return row, col, sabotage(word, cfg.acc_bits, bit, FaultMode.FLIP) - word


def stimulus(cfg, draft, opts) -> None:
    """The checkers' thresholds, held for the whole program; the expected sums as residues.

    The sanity column's weights and the temporal batches are part of the passes' layout
    (:mod:`golden.schedule`); a threshold is the magnitude a syndrome may reach before it
    fails (0: the exact check, Ozen 2023 §6.3).
    """
    if cfg.spatial:
        draft.constant("checksum__threshold", opts.checksum_threshold or 0)
    if cfg.temporal:
        draft.constant("temporal__threshold", opts.temporal_threshold or 0)
        # the expected-sum port is temporal_check_bits wide: program the residue
        draft.inputs["temporal__expected"] = wrap(draft.inputs["temporal__expected"],
                                                  cfg.temporal_check_bits)


def output_ports(cfg) -> dict[str, tuple[int, bool]]:
    """The checkers' flags and the sanity column's sum."""
    out: dict[str, tuple[int, bool]] = {}
    if cfg.spatial:
        out.update({"sanity_acc_out": (0, True), "checksum__error": (0, False),
                    "checksum__alarm": (0, False), "checksum__first": (0, False),
                    "checksum__syndrome": (0, True)})
    if cfg.temporal:
        out.update({name: (0, False) for name in TEMPORAL_OUTPUTS
                    if name != "temporal__overrun" or cfg.dataflow is not Dataflow.OS})
    return out


def alarms(cfg, recorded) -> dict[str, int]:
    """Output vectors (spatial) and batches (temporal) a checker flagged in a recorded program."""
    out = {}
    if "checksum__error" in recorded:
        out["spatial"] = int(np.sum(recorded["checksum__error"]))
    if "temporal__error" in recorded:
        out["temporal"] = int(np.sum(recorded["temporal__error"]))
    return out
