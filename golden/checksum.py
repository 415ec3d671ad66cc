"""Sanity-Check linear checksums: host helpers, golden models and the detection study.

Seed 000 chapter 6 (L1024–L1315), SPEC §2.  Three parts, all plain numpy (no project import):

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

The error-detection study (Table 6.1, L1150–L1160, Lemmas 1–6, L1164–L1176)
    :func:`random_fc_layer`, :func:`detection_table`, :func:`aliasing_table`,
    :func:`rectangle_escape`: errors are injected into the inputs, weights, bias or outputs
    of a random integer FC layer *after* checksum encoding (as in the seed, L1195), and the
    spatial, temporal and combined checks are evaluated.

Widths of the extra values (the decision SPEC §2 leaves to us)
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
invariants still hold exactly modulo ``2^k`` (this is the seed's residue option, L1223, L1261),
at the price of aliasing measured by :func:`aliasing_table`.  Modulo 2^k the aliasing of bit
errors is structural, not the 2^-k of random words: a flip of bit i (error ±2^i) escapes iff
i ≥ k, so the high-order flips — the harmful ones — are the ones missed.

Recommended for the spatial checksum: the sanity column's weights at full width (one column
only), its partial sums kept at the accumulator width P and allowed to wrap, checks modulo 2^P.
No wider psum chain or adder tree, and no error of a single P-bit register is a multiple of
2^P, so every Table 6.1 guarantee still holds (tested: ``modulus="pow2"``, k = the widest
checked register).  :class:`FCLayer` models the wrapped variants (``wrap_input``,
``wrap_weight``) and :func:`detection_table` can run the temporal check in its own arithmetic
(``temporal_modulus``, ``temporal_k``).

A note on N
-----------
Eq. 6.8 writes the column sum as ``N·B[u]`` where N counts *all* vectors of the temporal batch,
the one that makes the inputs sum to zero included.  With N data vectors plus the sanity
vector (SPEC §2's wording) every one of the N + 1 outputs carries the bias, so the expected
constant is ``(N + 1)·B[u]`` (:func:`temporal_expected`); SPEC §2's "N·B[u]" is off by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ftaccel.rtl_gen.config import is_int

from .bits import MAX_BITS, flip_bit, signed_array, to_unsigned, wrap
from .faults import sample_size

__all__ = [
    "negated_sum_width", "sanity_column", "extend_weights", "temporal_sanity_input",
    "extend_inputs", "temporal_expected",
    "spatial_syndrome", "spatial_errors", "temporal_syndrome", "temporal_errors",
    "SpatialCheckerModel", "SanityInputGeneratorModel", "TemporalCheckerModel", "simulate",
    "TABLE_6_1", "FCLayer", "random_fc_layer", "alg61_bits", "inject",
    "detect", "detection_table", "aliasing_table", "rectangle_escape",
    "residue",
]


def _check_bits(name: str, bits, lo: int = 1, hi: int = MAX_BITS) -> int:
    if not is_int(bits, numpy=True) or not lo <= bits <= hi:
        raise ValueError(f"invalid {name} = {bits!r}: an integer from {lo} to {hi}")
    return int(bits)


def negated_sum_width(width: int, count: int) -> int:
    """Bits of the (negated) sum of ``count`` signed ``width``-bit values: w + ceil(log2(n+1)).

    The sum lies in ``[-n·2^(w-1), n·(2^(w-1)-1)]``, its negation in ``[-n·(2^(w-1)-1),
    n·2^(w-1)]``; both fit ``w + ceil(log2(n+1))`` bits, and for every n some operands need
    all of them (e.g. n copies of ``-2^(w-1)`` negated).
    """
    width = _check_bits("width", width)
    if not is_int(count, numpy=True) or count < 1:
        raise ValueError(f"invalid count = {count!r}: a positive integer")
    return width + math.ceil(math.log2(int(count) + 1))


def residue(x, kind: str, k: int | None):
    """``x`` reduced for a checker: ``"exact"`` (unchanged), ``"pow2"`` (mod 2^k as signed k
    bits: the RTL's residue mode) or ``"pow2m1"`` (mod 2^k − 1, symmetric representative; a
    study-only comparison, the RTL has no such mode)."""
    x = np.asarray(x, dtype=np.int64)
    if kind == "exact":
        return x
    k = _check_bits("residue_bits", k, 2)
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
    """The sanity neuron of a weight matrix: ``(s, s_bias)`` (000 Eq. 6.5, L1068–L1072).

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
    """The sanity input of a temporal batch: ``-sum_z batch[z, :]`` (000 Eq. 6.7, L1086).

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
    """``A`` (M×K) with a sanity input after every ``batch_size`` rows and after the last
    (possibly shorter) batch, as the :class:`SanityInputGeneratorModel` streams it when the
    last vector of the pass carries ``in_last``.

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
    """The temporal check constants ``count · bias[u]``, where ``count`` is the number of
    output vectors in the batch *including* the sanity vector (N + 1 for N data vectors)."""
    b = signed_array(bias, "bias")
    return np.int64(count) * b


# --------------------------------------------------------------------------------------------
# functional checks
# --------------------------------------------------------------------------------------------
def spatial_syndrome(out, *, expected=0, residue_bits: int | None = None):
    """Per output vector (row of ``out`` [T, n]): ``sum(out[t]) - expected``, exact or as a
    signed ``residue_bits``-bit residue (mod 2^k)."""
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

    Ports as in the RTL: inputs ``data`` [n], ``valid``, ``expected``, ``threshold``,
    ``clear``; outputs ``out_valid``, ``error``, ``alarm``, ``first_index``, ``checksum``.
    """

    def __init__(self, *, width: int, n: int, residue_bits: int | None = None,
                 index_bits: int = 16):
        self.width, self.n, self.k, self.index_bits = width, n, residue_bits, index_bits
        self.check_width = residue_bits if residue_bits is not None else \
            width + math.ceil(math.log2(n + 1))
        if self.check_width > MAX_BITS:
            raise ValueError(f"check width {self.check_width} exceeds {MAX_BITS} bits")
        self.out_valid = self.error = self.alarm = 0
        self.first_index = 0
        self.checksum = np.int64(0)
        self.count = 0

    def outputs(self) -> dict:
        return {"out_valid": self.out_valid, "error": self.error, "alarm": self.alarm,
                "first_index": self.first_index, "checksum": int(self.checksum)}

    def step(self, inputs: dict) -> None:
        w, cw = self.width, self.check_width
        data = wrap(np.asarray(inputs["data"], dtype=np.int64).reshape(self.n), w)
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
    """Golden model of :class:`rtl_gen.checksum.SanityInputGenerator`.

    Inputs ``in_data`` [n], ``in_valid``, ``in_last``, ``batch``, ``clear``; outputs
    ``out_data`` [n], ``out_valid``, ``out_sanity``, ``ready``, ``overrun``.
    """

    def __init__(self, *, width: int, n_lanes: int, batch_bits: int,
                 out_width: int | None = None):
        self.width, self.n, self.batch_bits = width, n_lanes, batch_bits
        self.out_width = out_width if out_width is not None else width + batch_bits
        self.acc = np.zeros(n_lanes, dtype=np.int64)
        self.count = 0
        self.pending = 0
        self.out_data = np.zeros(n_lanes, dtype=np.int64)
        self.out_valid = self.out_sanity = self.overrun = 0
        self.ready = 1

    def outputs(self) -> dict:
        return {"out_data": self.out_data.copy(), "out_valid": self.out_valid,
                "out_sanity": self.out_sanity, "ready": self.ready, "overrun": self.overrun}

    def step(self, inputs: dict) -> None:
        ow, bb = self.out_width, self.batch_bits
        data = wrap(np.asarray(inputs["in_data"], dtype=np.int64).reshape(self.n), self.width)
        valid = int(_index(inputs["in_valid"]) & 1)
        last = int(_index(inputs["in_last"]) & 1)
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

    Inputs ``data`` [n], ``valid``, ``last``, ``expected`` [n], ``threshold``, ``clear``;
    outputs ``checked``, ``error``, ``lane_errors`` (bit u = lane u failed), ``alarm``,
    ``first_index``.
    """

    def __init__(self, *, width: int, n_lanes: int, batch_bits: int,
                 residue_bits: int | None = None, index_bits: int = 16):
        self.width, self.n, self.batch_bits = width, n_lanes, batch_bits
        self.k, self.index_bits = residue_bits, index_bits
        self.acc_width = residue_bits if residue_bits is not None else width + batch_bits
        self.check_width = residue_bits if residue_bits is not None else self.acc_width + 1
        self.acc = np.zeros(n_lanes, dtype=np.int64)
        self.checked = self.error = self.alarm = 0
        self.lane_errors = 0
        self.first_index = 0
        self.batches = 0

    def outputs(self) -> dict:
        return {"checked": self.checked, "error": self.error, "lane_errors": self.lane_errors,
                "alarm": self.alarm, "first_index": self.first_index}

    def step(self, inputs: dict) -> None:
        aw, cw = self.acc_width, self.check_width
        data = wrap(np.asarray(inputs["data"], dtype=np.int64).reshape(self.n), self.width)
        valid = int(_index(inputs["valid"]) & 1)
        last = int(_index(inputs["last"]) & 1)
        clear = int(_index(inputs["clear"]) & 1)
        expected = wrap(np.asarray(inputs["expected"], dtype=np.int64).reshape(self.n), aw)
        threshold = int(to_unsigned(_index(inputs["threshold"]), cw))
        acc = np.zeros_like(self.acc) if clear else self.acc
        alarm = 0 if clear else self.alarm
        batches = 0 if clear else self.batches
        first = 0 if clear else self.first_index
        total = wrap(acc + data, aw)
        diff = wrap(total - expected, cw)
        fail = np.abs(diff) > threshold
        closing = valid and last
        lanes = int(sum(1 << u for u in range(self.n) if fail[u])) if closing else 0
        self.checked = int(closing)
        self.error = int(closing and lanes != 0)
        self.lane_errors = lanes
        if valid:
            acc = np.zeros_like(acc) if closing else total
        if self.error and not alarm:
            alarm, first = 1, batches
        self.acc, self.alarm, self.first_index = acc, alarm, first
        self.batches = (batches + int(closing)) % (1 << self.index_bits)


def simulate(model, inputs: dict) -> dict[str, np.ndarray]:
    """Run ``model`` over per-cycle ``inputs`` (port → [T] or [T, n]) and return what
    :func:`tb.runner.run_stream` records from the RTL: row ``t`` = outputs before cycle t's
    inputs are applied (reset state in row 0)."""
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


# --------------------------------------------------------------------------------------------
# the detection study: Table 6.1 by error injection
# --------------------------------------------------------------------------------------------
#: Table 6.1 (000:L1150–L1160): how many errors each checksum is guaranteed to detect, per
#: error location: 0 = none (Lemma 1), n = up to n errors, None = all errors (Lemma 4).
TABLE_6_1 = {
    "input": {"spatial": 0, "temporal": 1, "both": 1},
    "weight": {"spatial": 1, "temporal": 0, "both": 1},
    "bias": {"spatial": 1, "temporal": None, "both": None},
    "output": {"spatial": 1, "temporal": 1, "both": 3},
}
KINDS = tuple(TABLE_6_1)


def _bits_for(bound: int) -> int:
    """Signed width holding ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


@dataclass
class FCLayer:
    """A random integer FC layer with both checksums embedded (Eqs. 6.1–6.8).

    ``I`` (N×K), ``W`` (K×M), ``b`` (M) are the data; the ``*_ext`` tensors carry the sanity
    input row (row N), the sanity column (column M) and the sanity bias, exact (wide).  The
    ``*_width`` arrays give the register width of every element (data widths, widened for the
    sanity values by :func:`negated_sum_width`), which bounds the bit of an injected flip.

    ``wrap_input`` / ``wrap_weight`` store the sanity input row / sanity weight column wrapped
    to ``a_width`` / ``w_width`` bits instead (no widened hardware path, seed L1223): the
    temporal / spatial invariant then holds only modulo ``2^a_width`` / ``2^w_width``, so the
    matching check must run in residue mode with k at most that width.
    """

    I: np.ndarray
    W: np.ndarray
    b: np.ndarray
    a_width: int
    w_width: int
    bias_width: int
    wrap_input: bool = False
    wrap_weight: bool = False
    I_ext: np.ndarray = field(init=False)
    W_ext: np.ndarray = field(init=False)
    b_ext: np.ndarray = field(init=False)
    O_ext: np.ndarray = field(init=False)
    widths: dict = field(init=False)

    def __post_init__(self):
        N, K = self.I.shape
        M = self.W.shape[1]
        si = temporal_sanity_input(self.I, wrap_bits=self.a_width if self.wrap_input else None)
        self.I_ext = np.vstack([self.I, si[None, :]])
        s, _ = sanity_column(self.W, wrap_bits=self.w_width if self.wrap_weight else None)
        _, sb = sanity_column(self.W, self.b)
        self.W_ext = np.hstack([self.W, s[:, None]])
        self.b_ext = np.append(self.b, sb)
        self.O_ext = self.I_ext @ self.W_ext + self.b_ext[None, :]
        aw = np.full(N + 1, self.a_width)
        if not self.wrap_input:
            aw[N] = negated_sum_width(self.a_width, N)
        ww = np.full(M + 1, self.w_width)
        if not self.wrap_weight:
            ww[M] = negated_sum_width(self.w_width, M)
        bw = np.full(M + 1, self.bias_width)
        bw[M] = negated_sum_width(self.bias_width, M)
        ow = np.array([[_bits_for(K * (1 << (int(aw[z]) - 1)) * (1 << (int(ww[u]) - 1))
                                  + (1 << (int(bw[u]) - 1)))
                        for u in range(M + 1)] for z in range(N + 1)])
        self.widths = {"input": np.broadcast_to(aw[:, None], (N + 1, K)).copy(),
                       "weight": np.broadcast_to(ww[None, :], (K, M + 1)).copy(),
                       "bias": bw, "output": ow}

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(N, K, M)``: data vectors per temporal batch, inputs, neurons."""
        return self.I.shape[0], self.I.shape[1], self.W.shape[1]

    def tensor(self, kind: str) -> np.ndarray:
        return {"input": self.I_ext, "weight": self.W_ext, "bias": self.b_ext,
                "output": self.O_ext}[kind]

    def temporal_expected(self) -> np.ndarray:
        return temporal_expected(self.b_ext, self.I_ext.shape[0])


def random_fc_layer(rng: np.random.Generator, *, batch: int = 8, k_in: int = 8, m_out: int = 8,
                    a_width: int = 8, w_width: int = 8, bias_width: int = 16,
                    wrap_input: bool = False, wrap_weight: bool = False) -> FCLayer:
    """A layer with uniformly random signed data of the given widths (see :class:`FCLayer`
    for ``wrap_input`` / ``wrap_weight``)."""
    for name, v in (("batch", batch), ("k_in", k_in), ("m_out", m_out)):
        if not is_int(v) or not 1 <= v <= 256:
            raise ValueError(f"invalid {name} = {v!r}: an integer from 1 to 256")
    for name, v in (("a_width", a_width), ("w_width", w_width), ("bias_width", bias_width)):
        _check_bits(name, v, 2, 24)

    def draw(shape, w):
        return rng.integers(-(1 << (w - 1)), 1 << (w - 1), size=shape, dtype=np.int64)
    return FCLayer(I=draw((batch, k_in), a_width), W=draw((k_in, m_out), w_width),
                   b=draw(m_out, bias_width), a_width=a_width, w_width=w_width,
                   bias_width=bias_width, wrap_input=wrap_input, wrap_weight=wrap_weight)


def alg61_bits(values, bits, widths):
    """Algorithm 6.1 (000:L1201–L1220): sign bit → negate; else add 2^i if bit i is 0, subtract
    2^i if it is 1 (with scale 1: integer data)."""
    v = np.asarray(values, dtype=np.int64)
    b = np.asarray(bits, dtype=np.int64)
    w = np.asarray(widths, dtype=np.int64)
    bit_set = (v >> b) & 1
    return np.where(b == w - 1, -v, np.where(bit_set == 1, v - (np.int64(1) << b),
                                             v + (np.int64(1) << b)))


def inject(layer: FCLayer, kind: str, sites: np.ndarray, bits: np.ndarray,
           model: str = "flip") -> np.ndarray:
    """Faulty extended outputs ``[E, N+1, M+1]`` for E error cases.

    ``sites`` [E, m] are flat indices into the tensor of ``kind`` (distinct within a case),
    ``bits`` [E, m] the flipped bit of each.  The faulty tensor is propagated exactly:
    input / weight / bias errors through ``O = I_ext @ W_ext + b_ext``, output errors directly.
    """
    if kind not in KINDS:
        raise ValueError(f"invalid kind = {kind!r}: one of {', '.join(KINDS)}")
    corrupt = {"flip": flip_bit, "alg61": alg61_bits}.get(model)
    if corrupt is None:
        raise ValueError(f"invalid model = {model!r}: flip or alg61")
    X = layer.tensor(kind)
    E = len(sites)
    flat = np.broadcast_to(X.reshape(-1), (E, X.size)).copy()
    wflat = layer.widths[kind].reshape(-1)
    rows = np.arange(E)[:, None]
    flat[rows, sites] = corrupt(flat[rows, sites], bits, wflat[sites])
    Xf = flat.reshape((E,) + X.shape)
    if kind == "input":
        return Xf @ layer.W_ext + layer.b_ext
    if kind == "weight":
        return layer.I_ext @ Xf + layer.b_ext
    if kind == "bias":
        return (layer.I_ext @ layer.W_ext)[None] + Xf[:, None, :]
    return Xf


def detect(layer: FCLayer, O, *, threshold: int = 0, modulus: str = "exact",
           k: int | None = None, temporal_modulus: str | None = None,
           temporal_k: int | None = None):
    """``(spatial, temporal)`` alarms for faulty outputs ``O`` [E, N+1, M+1].

    Spatial: some output row (vector) whose sum deviates from 0 by more than ``threshold``;
    temporal: some column whose sum over the N+1 vectors deviates from ``(N+1)·b_ext[u]``.
    ``modulus``/``k`` select the checker arithmetic (see :func:`residue`);
    ``temporal_modulus``/``temporal_k``, if given, that of the temporal check alone.
    """
    O = np.asarray(O, dtype=np.int64)
    if temporal_modulus is None:
        temporal_modulus, temporal_k = modulus, k
    rows = residue(O.sum(axis=2), modulus, k)
    cols = residue(O.sum(axis=1) - layer.temporal_expected()[None, :], temporal_modulus,
                   temporal_k)
    return (np.abs(rows) > threshold).any(axis=1), (np.abs(cols) > threshold).any(axis=1)


def _cases(rng, layer: FCLayer, kind: str, m: int, samples: int | None,
           exhaustive_limit: int):
    """Error cases ``(sites [E, m], bits [E, m], population, exhaustive)``."""
    wflat = layer.widths[kind].reshape(-1)
    n_sites = wflat.size
    if m > n_sites:
        return None
    # population: m distinct sites, any bit at each
    if m == 1:
        population = int(wflat.sum())
    else:
        # sum over site subsets of the product of widths (elementary symmetric polynomial)
        e = [1] + [0] * m
        for w in wflat.tolist():
            for j in range(m, 0, -1):
                e[j] += e[j - 1] * w
        population = e[m]
    if m == 1 and population <= exhaustive_limit and samples is None:
        sites = np.repeat(np.arange(n_sites), wflat)
        bits = np.concatenate([np.arange(w) for w in wflat.tolist()])
        return sites[:, None], bits[:, None], population, True
    E = samples if samples is not None else sample_size(population)
    # Sites drawn without replacement with weights = widths (Efraimidis–Spirakis keys), so a
    # single error hits every (site, bit) pair with the same probability.
    keys = rng.random((E, n_sites)) ** (1.0 / wflat[None, :])
    sites = np.argsort(-keys, axis=1)[:, :m]
    bits = np.floor(rng.random((E, m)) * wflat[sites]).astype(np.int64)
    return sites, bits, population, False


def detection_table(rng: np.random.Generator, layer: FCLayer, *, max_errors: int = 3,
                    threshold: int = 0, modulus: str = "exact", k: int | None = None,
                    model: str = "flip", samples: int | None = None,
                    exhaustive_limit: int = 20000, temporal_modulus: str | None = None,
                    temporal_k: int | None = None) -> list[dict]:
    """Measured detection rates per error location and error count (Table 6.1 reproduced).

    For every kind in (input, weight, bias, output) and m = 1 … ``max_errors`` errors in
    distinct elements of that tensor, bit errors are injected (``model``: two's-complement
    ``"flip"`` or Algorithm 6.1's ``"alg61"``): exhaustively over (element, bit) for single
    errors when the population is at most ``exhaustive_limit``, else a uniform sample of
    :func:`sample_size` cases (or ``samples``).

    Each row: ``kind, errors, population, tried, exhaustive, masked`` (the extended outputs
    did not change), ``effective`` (they did), ``critical`` (a real, non-sanity output
    changed), detection rates over the effective cases ``spatial, temporal, both``, and
    ``sdc`` (critical cases neither checksum detected).  ``modulus``/``k`` (and
    ``temporal_modulus``/``temporal_k`` for the temporal check alone) as in :func:`detect`.
    """
    table = []
    for kind in KINDS:
        for m in range(1, max_errors + 1):
            got = _cases(rng, layer, kind, m, samples, exhaustive_limit)
            if got is None:
                continue
            sites, bits, population, exhaustive = got
            O = inject(layer, kind, sites, bits, model)
            delta = O - layer.O_ext[None]
            effective = (delta != 0).any(axis=(1, 2))
            N, _, M = layer.shape
            critical = (delta[:, :N, :M] != 0).any(axis=(1, 2))
            s, t = detect(layer, O, threshold=threshold, modulus=modulus, k=k,
                          temporal_modulus=temporal_modulus, temporal_k=temporal_k)
            n_eff = int(effective.sum())

            def rate(d, eff=effective, n=n_eff):
                return float(d[eff].sum() / n) if n else float("nan")
            table.append({
                "kind": kind, "errors": m, "population": population, "tried": len(sites),
                "exhaustive": exhaustive, "masked": int((~effective).sum()),
                "effective": n_eff, "critical": int(critical.sum()),
                "spatial": rate(s), "temporal": rate(t), "both": rate(s | t),
                "sdc": int((critical & ~(s | t)).sum()),
            })
    return table


def aliasing_table(rng: np.random.Generator, layer: FCLayer, ks, *,
                   modulus: str = "pow2", model: str = "flip", samples: int | None = None,
                   exhaustive_limit: int = 20000) -> list[dict]:
    """Escape (aliasing) rate of single errors against the residue width k.

    For each k and each error location: the fraction of *effective* single errors that
    escape the spatial check, the temporal check and both.  Plus ``random_word``: an output
    register replaced by a uniformly random value of its width (a multi-bit upset), where
    modulo 2^k the expected escape rate is about 2^-k.
    """
    cases = {}
    for kind in KINDS:
        sites, bits, _, _ = _cases(rng, layer, kind, 1, samples, exhaustive_limit)
        O = inject(layer, kind, sites, bits, model)
        eff = (O - layer.O_ext[None] != 0).any(axis=(1, 2))
        cases[kind] = O[eff]
    # random-word output errors
    E = samples or 20000
    O = np.broadcast_to(layer.O_ext, (E,) + layer.O_ext.shape).copy()
    wflat = layer.widths["output"].reshape(-1)
    site = rng.integers(0, wflat.size, E)
    half = np.int64(1) << (wflat[site] - 1)
    val = (rng.random(E) * (2.0 * half)).astype(np.int64) - half
    O.reshape(E, -1)[np.arange(E), site] = val
    eff = (O - layer.O_ext[None] != 0).any(axis=(1, 2))
    cases["random_word"] = O[eff]
    out = []
    for k in ks:
        kind_mod = "exact" if k is None else modulus
        row = {"k": k}
        for kind, Oe in cases.items():
            s, t = detect(layer, Oe, modulus=kind_mod, k=k)
            n = len(Oe)
            row[kind] = {"spatial": float((~s).sum() / n), "temporal": float((~t).sum() / n),
                         "both": float((~(s | t)).sum() / n), "n": n}
        out.append(row)
    return out


def rectangle_escape(layer: FCLayer, delta: int = 1, corner=(0, 0, 1, 1)) -> tuple[bool, bool]:
    """Four output errors on a rectangle, ``+d, -d, -d, +d`` at (z1,u1), (z1,u2), (z2,u1),
    (z2,u2): every row and column sum is unchanged, so both checksums miss it (the bound of
    Lemma 6 is tight).  Returns ``(spatial, temporal)`` detections (both False)."""
    z1, u1, z2, u2 = corner
    O = layer.O_ext.copy()
    O[z1, u1] += delta
    O[z1, u2] -= delta
    O[z2, u1] -= delta
    O[z2, u2] += delta
    s, t = detect(layer, O[None])
    return bool(s[0]), bool(t[0])
