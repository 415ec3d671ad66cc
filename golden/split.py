"""Neuron splitting for the LCU (and triplication for the TMR baseline): host-side mapping + golden.

Ahmadilivani 2025 §4.3.1.3 (Fig. 4.15): a critical neuron is split into two neurons with
*halved input parameters* (weights and bias); both feed the next layer through the *unchanged*
outgoing weights, so the next layer sees ``½y + ½y = y``.

**Integer realisation (Ahmadilivani 2025 §4.3.1).**  In an int8 network the halving is realised in
requantization, not in the weights: both copies of a critical column get the *original*
weights and bias, and a requantization shift one larger than the original column's, so their
int8 output is the original output shifted right by one (rounded).  The two copies therefore
compute exactly the same thing and are **bit-identical when no fault occurs**, which is what
the LCU (``a & b``) needs.  The copies also saturate to the ``a_width − 1``-bit signed range
(``[−64, 63]`` for int8): a split half of a non-negative activation then never sets bit
``a_width − 2``, the bit the LCU clears.  Without that narrower saturation an original output
of 127 (or any saturated one) would halve to 64 … 127, and the LCU would clear bit 6 of a
*correct* value (64 → 0).  So the output stage must support, per column, ``shift + 1`` and
saturation to ``a_width − 1`` bits; :func:`layer_forward` models exactly that (``out_bits``).

**Placement.**  The copy of critical column ``c`` is appended as column ``N + i`` (``i`` its
position in ``critical``); original column indices are unchanged, so the next layer's weight
matrix only gains rows: ``next_weights' = vstack(next_weights, next_weights[critical])``.  The
LCU pair of column ``c`` is ``(c, N + i)``; :func:`buffer_groups` turns column pairs into
output-buffer indices.

**Rounding (measured, see tests/test_lcu.py).**  Let ``q`` be the original column's output and
``h`` each copy's output.  The next layer receives ``2h`` instead of ``q``, and
``2h − q ∈ {−1, 0, +1}`` for every accumulator value and shift (checked exhaustively over all
accumulator values that reach saturation, int8 with shifts 0 … 12 and int16 with shifts 0 … 4,
with and without ReLU; e.g. shift 0, y = 127: q = 127, h = 63, 2h − q = −1).  Hence,
fault-free, the next layer's accumulator for output ``u`` deviates from the unsplit network's
by at most ``D_u = Σ_{c ∈ critical} |W2[c, u]|`` (:func:`next_layer_bound`),
and its requantized output (shift ``s2``) by at most ``ceil(D_u / 2**s2)`` (rounding, ReLU and
saturation never amplify a difference).  Random
layers reach the accumulator bound exactly; with the usual shifts (``2**s2 ≥ D_u``) the next
layer's int8 output differs by at most 1.

Output-stage semantics assumed (same as ``golden/output_stage.py``; this module keeps
a private copy because golden modules import nothing of the project):
``y = acc + bias``; ``y = max(y, 0)`` with ReLU; ``q = (y + 2**(s−1)) >> s`` (arithmetic, round
half up) if ``s > 0`` else ``q = y``; ``q`` saturated to the signed ``a_width`` range.

Selective TMR (the baseline, :func:`triplicate_layer`): each critical column gets two extra
copies with identical weights, bias, shift and saturation (no halving needed: the voter picks
one word); the copies' rows of the next layer's weights are zero, so only the voted value,
written back to the original column's place, feeds the next layer: the network is unchanged
bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ftaccel.errors import is_int

__all__ = ["CopiedLayer", "layer_forward", "split_layer", "triplicate_layer", "buffer_groups",
           "next_layer_bound"]


def _int_array(x, name: str, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"invalid {name}: an integer array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"invalid {name}: a {ndim}-D array, got shape {arr.shape}")
    return arr.astype(np.int64)


def _check_a_width(a_width) -> None:
    if not is_int(a_width) or not 3 <= a_width <= 32:
        raise ValueError(f"invalid a_width = {a_width!r}: an integer from 3 to 32")


def _per_column(x, n: int, name: str, lo: int, hi: int) -> np.ndarray:
    arr = _int_array(x, name)
    if arr.ndim == 0:
        arr = np.full(n, int(arr), dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"invalid {name}: a scalar or {n} values, got shape {arr.shape}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"invalid {name}: values from {lo} to {hi}")
    return arr


def _output_stage(acc: np.ndarray, bias: np.ndarray, shift: np.ndarray, out_bits: np.ndarray,
                  relu: bool) -> np.ndarray:
    """Bias, ReLU, round-half-up right shift, saturation; per-column ``shift``/``out_bits``."""
    y = acc + bias
    if relu:
        y = np.maximum(y, 0)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    q = np.right_shift(y + half, shift)  # arithmetic shift on int64: floor division
    lo = -np.left_shift(np.int64(1), out_bits - 1)
    hi = np.left_shift(np.int64(1), out_bits - 1) - 1
    return np.clip(q, lo, hi)


def layer_forward(x, weights, bias, shift, *, relu: bool = True, a_width: int = 8,
                  out_bits=None) -> np.ndarray:
    """Requantized output ``[M, N]`` of one fully connected int layer.

    ``x`` is ``[M, K]`` (or ``[K]``), ``weights`` ``[K, N]``, ``bias`` ``[N]``; ``shift`` and
    ``out_bits`` (saturation width, default ``a_width``) are scalars or per-column ``[N]``.
    """
    _check_a_width(a_width)
    w = _int_array(weights, "weights", 2)
    k, n = w.shape
    xa = _int_array(x, "x")
    if xa.ndim == 1:
        xa = xa[None, :]
    if xa.ndim != 2 or xa.shape[1] != k:
        raise ValueError(f"invalid x: shape [M, {k}], got {xa.shape}")
    b = _int_array(bias, "bias", 1)
    if b.shape != (n,):
        raise ValueError(f"invalid bias: {n} values, got shape {b.shape}")
    s = _per_column(shift, n, "shift", 0, 40)
    ob = _per_column(a_width if out_bits is None else out_bits, n, "out_bits", 2, a_width)
    acc = xa @ w
    return _output_stage(acc, b[None, :], s[None, :], ob[None, :], relu)


def _check_critical(critical, n: int) -> np.ndarray:
    c = _int_array(critical, "critical").reshape(-1)
    if c.size and (c.min() < 0 or c.max() >= n):
        raise ValueError(f"invalid critical: column indices from 0 to {n - 1}")
    if np.unique(c).size != c.size:
        raise ValueError("invalid critical: each column at most once")
    return c


def _check_next(next_weights, n: int) -> np.ndarray | None:
    if next_weights is None:
        return None
    w2 = _int_array(next_weights, "next_weights", 2)
    if w2.shape[0] != n:
        raise ValueError(f"invalid next_weights: {n} rows (one per output), got {w2.shape}")
    return w2


def _frozen(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.setflags(write=False)
    return a


@dataclass(frozen=True)
class CopiedLayer:
    """A layer whose critical columns have copies: split halves (LCU) or a triple (TMR).

    One class for both protections (Ahmadilivani 2025 §4.3.1.3 and its selective-TMR
    baseline): they differ only in the copies' requantisation and the size of their groups.

    Attributes
    ----------
    weights : int64 [K, N + copies]
        Original weights, then the copies' columns.
    bias : int64 [N + copies]
    shift : int64 [N + copies]
        Requantization shift per column (split halves: original + 1 for both).
    out_bits : int64 [N + copies]
        Saturation width per column: ``a_width``, or ``a_width − 1`` for split halves.
    groups : int64 [k, 2 or 3]
        Per critical column, its columns: the LCU's pairs ``(c, N + i)`` or the voter's
        triples ``(c, N + 2i, N + 2i + 1)``.
    next_weights : int64 [N + copies, P] or None
        The next layer's weights: split copies' rows equal the original's, TMR copies' rows
        are zero.
    """

    weights: np.ndarray
    bias: np.ndarray
    shift: np.ndarray
    out_bits: np.ndarray
    relu: bool
    a_width: int
    critical: np.ndarray
    groups: np.ndarray
    next_weights: np.ndarray | None

    @property
    def n_outputs(self) -> int:
        """The number of output columns, copies included."""
        return int(self.weights.shape[1])

    @property
    def pairs(self) -> np.ndarray:
        """The LCU's column pairs (a split layer's :attr:`groups`)."""
        return self._groups(2, "pairs")

    @property
    def triples(self) -> np.ndarray:
        """The voter's column triples (a triplicated layer's :attr:`groups`)."""
        return self._groups(3, "triples")

    def _groups(self, k: int, what: str) -> np.ndarray:
        if self.groups.shape[1] != k:
            raise AttributeError(f"this layer's copies form groups of {self.groups.shape[1]}, "
                                 f"not {what}")
        return self.groups

    def forward(self, x) -> np.ndarray:
        """Requantized outputs ``[M, N + copies]`` of the layer (fault-free)."""
        return layer_forward(x, self.weights, self.bias, self.shift, relu=self.relu,
                             a_width=self.a_width, out_bits=self.out_bits)


def split_layer(weights, bias, shift, critical, *, next_weights=None, relu: bool = True,
                a_width: int = 8) -> CopiedLayer:
    """Split the ``critical`` columns of a layer (see the module docstring).

    Raises ``ValueError`` if ``relu`` is false: the LCU's mask is only sound for non-negative
    activations, so splitting a layer without ReLU would make correct values wrong.
    """
    _check_a_width(a_width)
    if not relu:
        raise ValueError("invalid relu = False: LCU correction is only sound for non-negative "
                         "(post-ReLU) outputs; protect this layer with TMR instead")
    w = _int_array(weights, "weights", 2)
    n = w.shape[1]
    b = _int_array(bias, "bias", 1)
    if b.shape != (n,):
        raise ValueError(f"invalid bias: {n} values, got shape {b.shape}")
    s = _per_column(shift, n, "shift", 0, 39)
    c = _check_critical(critical, n)
    w2 = _check_next(next_weights, n)
    k = c.size
    new_shift = np.concatenate([s, s[c] + 1])
    # Halving realised in requantization: both halves have shift + 1 (and the original weights
    # and bias), so they are bit-identical without faults.
    new_shift[c] += 1
    out_bits = np.full(n + k, a_width, dtype=np.int64)
    # A half saturates one bit narrower, so bit a_width-2 (cleared by the LCU) is always 0 in a
    # fault-free non-negative half.
    out_bits[c] = a_width - 1
    out_bits[n:] = a_width - 1
    pairs = np.stack([c, n + np.arange(k, dtype=np.int64)], axis=1).reshape(k, 2)
    return CopiedLayer(
        weights=_frozen(np.concatenate([w, w[:, c]], axis=1)),
        bias=_frozen(np.concatenate([b, b[c]])),
        shift=_frozen(new_shift), out_bits=_frozen(out_bits), relu=True, a_width=a_width,
        critical=_frozen(c.copy()), groups=_frozen(pairs),
        next_weights=_frozen(None if w2 is None else np.concatenate([w2, w2[c]], axis=0)),
    )


def triplicate_layer(weights, bias, shift, critical, *, next_weights=None, relu: bool = True,
                     a_width: int = 8) -> CopiedLayer:
    """Selective TMR: two extra identical copies of each critical column (works without ReLU)."""
    _check_a_width(a_width)
    w = _int_array(weights, "weights", 2)
    n = w.shape[1]
    b = _int_array(bias, "bias", 1)
    if b.shape != (n,):
        raise ValueError(f"invalid bias: {n} values, got shape {b.shape}")
    s = _per_column(shift, n, "shift", 0, 40)
    c = _check_critical(critical, n)
    w2 = _check_next(next_weights, n)
    k = c.size
    rep = np.repeat(c, 2)
    triples = np.stack([c, n + 2 * np.arange(k), n + 2 * np.arange(k) + 1], axis=1).reshape(k, 3)
    nw = None
    if w2 is not None:
        nw = np.concatenate([w2, np.zeros((2 * k, w2.shape[1]), dtype=np.int64)], axis=0)
    return CopiedLayer(
        weights=_frozen(np.concatenate([w, w[:, rep]], axis=1)),
        bias=_frozen(np.concatenate([b, b[rep]])), shift=_frozen(np.concatenate([s, s[rep]])),
        out_bits=_frozen(np.full(n + 2 * k, a_width, dtype=np.int64)),
        relu=bool(relu), a_width=a_width, critical=_frozen(c.copy()),
        groups=_frozen(triples.astype(np.int64)), next_weights=_frozen(nw),
    )


def _buffer_index(cols: np.ndarray, n_out: int, batch: int, base: int,
                  row_stride: int | None) -> np.ndarray:
    for name, v, lo in (("batch", batch, 1), ("base", base, 0)):
        if not is_int(v) or v < lo:
            raise ValueError(f"invalid {name} = {v!r}: an integer >= {lo}")
    stride = n_out if row_stride is None else row_stride
    if not is_int(stride) or stride < n_out:
        raise ValueError(f"invalid row_stride = {stride!r}: an integer >= {n_out} "
                         "(the outputs per row)")
    rows = np.arange(batch, dtype=np.int64)[:, None, None] * stride
    return (base + rows + cols[None, :, :]).reshape(-1, cols.shape[1])


def buffer_groups(layer: CopiedLayer, *, batch: int = 1, base: int = 0,
                  row_stride: int | None = None) -> np.ndarray:
    """Output-buffer indices of the layer's groups, ``[batch · k, 2 or 3]``.

    The pairs the correction controller corrects or the triples the voting controller votes.
    The buffer is assumed to hold the layer's output ``[batch, N + copies]`` row-major: output
    ``(m, col)`` at ``base + m · row_stride + col`` (``row_stride`` defaults to
    ``N + copies``).  Groups are listed row by row, then in the order of ``critical``.
    """
    return _buffer_index(layer.groups, layer.n_outputs, batch, base, row_stride)


def next_layer_bound(layer: CopiedLayer) -> np.ndarray:
    """``D_u = Σ_{c ∈ critical} |W2[c, u]|``.

    Largest fault-free deviation of the next layer's accumulator caused by splitting (``2h − q ∈
    {−1, 0, 1}`` per critical column).
    """
    if layer.next_weights is None:
        raise ValueError("invalid layer: split without next_weights")
    w2 = layer.next_weights[: layer.n_outputs - layer.critical.size]
    return np.abs(w2[layer.critical]).sum(axis=0)
