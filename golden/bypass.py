"""Golden model of PE bypass (Ozen 2023 ch. 10).

Fault maps, hardware-aware masks, the pruned product the array computes, and the diagonal shift.

Notation.  A layer is ``Y = A @ B (+ bias)`` with ``A`` the M×K inputs (row ``b`` = batch
index, column ``k`` = input channel ``c_i``), ``B`` the K×N weights (row ``k`` = ``c_i``,
column ``n`` = output channel ``c_o``) and ``Y`` the M×N outputs.  The seed writes weights as
``C_o × C_i`` (Ozen 2023 §10.3.2), i.e. ``B`` transposed.  A *bypass map* is an R×C bool array,
``True`` = the PE at (row, column) is bypassed.

**What a bypassed PE does** (Fig. 10.2; :mod:`rtl_gen.pe` and
:class:`golden.accelerator.AcceleratorModel`):

* WS (Ozen 2023 §10.3.1): the PE forwards the received partial sum instead of adding its product, so
  every weight mapped to it is pruned, in every tile.  Activations still stream through.
* IS (Ozen 2023 §10.3.1): the same multiplexer; every *input* mapped to the PE is pruned.  The bias
  is folded into ``psum_in`` at the top of the column, so a bypassed PE forwards it too:
  ``Y = bias + (A masked) @ B``.
* OS (Ozen 2023 §10.3.1): AND gates force the PE's pinned output to zero, so every output mapped
  to it is zero; the output stage adds the bias afterwards: ``Y = where(mask, 0, A @ B) + bias``.

**Which variable goes to which PE**: Eqs. 10.3–10.5 (Ozen 2023 §10.3.2) through
:func:`golden.mapping.pe_map` (row index modulo R, column index modulo C).  The mask of a layer
is therefore the R×C map *replicated over the tiles and cropped* (Fig. 10.3, Ozen 2023 §10.3.2):

* WS, mask of ``B`` (K×N):  ``np.tile(map, ...)[:K, :N]``   (``B[k, n]`` → PE ``(k % R, n % C)``);
* IS, mask of ``A`` (M×K):  ``np.tile(map.T, ...)[:M, :K]`` (``A[b, k]`` → PE ``(k % R, b % C)``:
  the batch runs along the array's columns, so the map appears *transposed*);
* OS, mask of ``Y`` (M×N):  ``np.tile(map, ...)[:M, :N]``   (``Y[b, n]`` → PE ``(b % R, n % C)``).

**Fault maps** (Ozen 2023 §10.4): "PE Bypass Rate" is the fraction of PEs with at least one fault;
maps are independent Bernoulli variables per PE with that probability
(:func:`bernoulli_map`); :func:`fault_map` turns a list of located faults into the map of
PEs to bypass.

**Diagonal shift** (§10.3.4, Ozen 2023 §10.3.4).  What the seed says, and what this module does:

* §10.3.4: neurons (filters) of a layer may be reordered by permuting the *output* dimension of
  its weights, provided the *same* permutation is applied to the *input* dimension of the next
  layer's weights (for convolutions: output channels, then the next layer's input channels).
* Ozen 2023 §10.3.4: the permutation used is a *diagonal shift* of every layer's weight tensor "in
  the input (channel) and output (channel) dimensions"; an N×N array gives "N distinct permutations
  that yield unique pruning effect manifestations before starting to repeat in modulo N".
* Ozen 2023 §10.3.4: it is exact "since the same permutation pattern is applied to both the input
  and the output dimensions of the weight matrices at every layer"; it is a shifted index when
  weights are fetched from memory; for IS and OS it shifts "the single dimension" (channels) of the
  layer input and output tensors.  Ozen 2023 §10.3.4, §10.5.1: the device tries the N shifts (16 on
  16×16) and keeps the most accurate.

Here, shifting by ``s`` moves channel ``i`` of a dimension of length ``L`` to ``(i + s) mod L``
(``np.roll(x, s)``), with the same ``s`` for every layer:

* weights: :func:`diagonal_shift` rolls both dimensions of ``B``, ``B_s[(k+s)%K, (n+s)%N] =
  B[k, n]`` (input channels *and* output channels: a move along the diagonal);
* inputs: :func:`shift_inputs` rolls the channel dimension of ``A`` (the network input once;
  afterwards the previous layer's output is *already* shifted, Ozen 2023 §10.3.4);
* bias and outputs: :func:`shift_outputs` rolls the channel dimension; :func:`unshift_outputs`
  undoes it (only needed after the last layer).  The batch dimension is never permuted.

Then ``A_s @ B_s + bias_s = shift_outputs(A @ B + bias)`` exactly, for any sizes, so with an
empty map the unshifted result equals the plain layer bit for bit.  With a map, the variables
pruned are those whose *shifted* position lands on a bypassed PE (:func:`shifted_mask`).

*Convolutions* lowered by im2col with the same pixel of neighbouring channels adjacent
(Ozen 2023 §8.4.2, §2.3, §10.3.2) have ``K = pixels × C_i`` with ``k = pixel·C_i + c_i``: the
input-channel shift is then a roll *within each block* of ``C_i`` (keyword ``channels=C_i``); the
output dimension (filters) is rolled as a whole.

**How many distinct pruning patterns** (:func:`shift_period`).  When the rolled lengths are
multiples of the array dimension, shift ``s`` prunes exactly what the *map rolled by −s*
prunes without shift (WS: both axes; IS: rows only; OS: columns only), so the pattern depends
on ``s`` only modulo: WS ``lcm(R, C)``, IS ``R``, OS ``C`` — ``N`` for every dataflow on an N×N
array, the seed's claim.  An R×C WS array gives ``lcm(R, C)`` patterns (the map rolled by
``(s mod R, s mod C)``; e.g. 12 on 4×6).  These are the *possible* patterns: a map that is
itself invariant under some diagonal roll (the empty or full map, a full diagonal) gives fewer;
a map with one bypassed PE that some variable uses gives exactly the period.

*Decision for lengths that are not multiples* (the seed only treats N×N arrays with
filter/neuron counts divisible by N; Ozen 2023 ch. 10 leaves it open): the roll stays modulo the
true length ``L`` — a shifted memory index, no padding, the same tensor shapes and tiles, and the
permutations of consecutive layers stay consistent whatever the array shape.  The price: the
channels that wrap around land on PE rows/columns that break the regular pattern, so the pattern is
*not* the rolled map, and its period becomes ``L`` for that dimension instead of
``R`` (or ``C``): e.g. K = 5 on R = 4 has 5 row patterns.  Exactness is unaffected.
(Padding each channel dimension to a multiple of the array would restore the rolled-map
property but change shapes and, for R ≠ C, needs a multiple of ``lcm(R, C)`` to stay
consistent between layers, which can add tiles; not done.)

**Accumulator overflow.**  With ``acc_bits``, :func:`pruned_matmul` reports a partial sum
outside the accumulator range (:class:`golden.array.AccumulatorOverflow`) in the driver's tile
order, as :func:`golden.array.matmul` does: WS/IS check the running sums of the *pruned*
product (a bypassed PE forwards its partial sum unchanged, so pruning can create an overflow
the full product does not have, and remove one); OS checks only the outputs of PEs that are
not bypassed (a bypassed PE's accumulator may wrap, but its output is forced to zero).
"""

from __future__ import annotations

import math

import numpy as np

from ftaccel.errors import is_int

from .array import AccumulatorOverflow, check_running, checked_product
from .intmath import F64_EXACT, column_bound, exact_matmul, exact_matmul_amax
from .mapping import pe_map

__all__ = ["DATAFLOWS", "AccumulatorOverflow", "bernoulli_map", "fault_map", "bypass_rate",
           "check_map", "hardware_mask", "pruned_matmul", "shift_channels", "unshift_channels",
           "diagonal_shift", "shift_inputs", "shift_outputs", "unshift_outputs",
           "shifted_mask", "shifted_pruned_matmul", "shift_period"]

DATAFLOWS = ("ws", "is", "os")


# -- validation ---------------------------------------------------------------------------------


def _check_pos_int(name: str, v) -> int:
    if not is_int(v, numpy=True) or v < 1:
        raise ValueError(f"invalid {name} = {v!r}: a positive integer")
    return int(v)


def _check_dataflow(dataflow) -> str:
    if dataflow not in DATAFLOWS:
        raise ValueError(f"invalid dataflow = {dataflow!r}: one of {', '.join(DATAFLOWS)}")
    return dataflow


def _check_shift(s) -> int:
    if not is_int(s, numpy=True):
        raise ValueError(f"invalid shift s = {s!r}: an integer (taken modulo each length)")
    return int(s)


def _asarray(name: str, x) -> np.ndarray:
    try:
        return np.asarray(x)
    except ValueError:  # ragged nested lists
        raise ValueError(f"invalid {name}: a rectangular array") from None


def _int_matrix(name: str, x, ndim: int = 2) -> np.ndarray:
    arr = _asarray(name, x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"invalid {name}: an integer array, got dtype {arr.dtype}")
    if arr.ndim != ndim or 0 in arr.shape:
        raise ValueError(f"invalid {name}: a non-empty {ndim}-D array, got shape {arr.shape}")
    return arr.astype(np.int64)


def check_map(bypass_map) -> np.ndarray:
    """The bypass map as an R×C bool array.

    ``ValueError`` unless it is a non-empty 2-D array of bools or of the integers 0 and 1.
    """
    arr = _asarray("bypass_map", bypass_map)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"invalid bypass_map: a non-empty R×C array, got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.integer) or not np.isin(arr, (0, 1)).all():
            raise ValueError("invalid bypass_map: bools, or integers 0 (use) / 1 (bypass)")
        arr = arr.astype(bool)
    return arr


def _check_bias(bias, N: int) -> np.ndarray:
    if bias is None:
        return np.zeros(N, dtype=np.int64)
    b = _asarray("bias", bias)
    if b.dtype == bool or not np.issubdtype(b.dtype, np.integer) or b.shape != (N,):
        raise ValueError(f"invalid bias: None or {N} integers, got {b.dtype} of shape {b.shape}")
    return b.astype(np.int64)


def _check_channels(channels, K: int) -> int:
    if channels is None:
        return K
    if not is_int(channels, numpy=True) or channels < 1 or K % channels:
        raise ValueError(f"invalid channels = {channels!r}: a positive divisor of K = {K} "
                         "(input channels per im2col pixel block), or None")
    return int(channels)


def _operands(A, B):
    A = _int_matrix("A", A)
    B = _int_matrix("B", B)
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"invalid shapes: A is {A.shape[0]}×{A.shape[1]} and B is "
                         f"{B.shape[0]}×{B.shape[1]}; A's columns must equal B's rows")
    return A, B


# -- fault maps -----------------------------------------------------------------------------

def bernoulli_map(rows: int, cols: int, rate: float, rng) -> np.ndarray:
    """A random R×C bypass map: each PE bypassed independently with probability ``rate``.

    Ozen 2023 §10.4: PE bypass rate = fraction of PEs with at least one fault; PE fault patterns are
    independent Bernoulli variables per PE.  ``rate`` is in [0, 1] (0 → no PE, 1 → every PE);
    ``rng`` is a :class:`numpy.random.Generator` or an integer seed.  The map draws
    ``rows × cols`` uniforms in row-major order, so a seed reproduces the map.
    """
    rows = _check_pos_int("rows", rows)
    cols = _check_pos_int("cols", cols)
    if isinstance(rate, bool | np.bool_) or not isinstance(rate, int | float | np.integer
                                                           | np.floating) \
            or not 0.0 <= float(rate) <= 1.0:  # also rejects NaN
        raise ValueError(f"invalid rate = {rate!r}: a real number from 0 to 1")
    if is_int(rng, numpy=True) and rng >= 0:
        rng = np.random.default_rng(int(rng))
    elif not isinstance(rng, np.random.Generator):
        raise ValueError(f"invalid rng = {rng!r}: a numpy.random.Generator or a seed >= 0")
    # uniform in [0, 1): rate 0 never bypasses, rate 1 always does.
    return rng.random((rows, cols)) < float(rate)


def fault_map(rows: int, cols: int, faults) -> np.ndarray:
    """The bypass map that isolates every PE hit by at least one fault (Ozen 2023 §10.4).

    ``faults``: objects with ``row`` and ``col`` attributes (e.g. :class:`golden.faults.Fault`)
    or ``(row, col)`` pairs; each must lie inside the R×C array.
    """
    rows = _check_pos_int("rows", rows)
    cols = _check_pos_int("cols", cols)
    out = np.zeros((rows, cols), dtype=bool)
    for f in faults:
        r, c = (f.row, f.col) if hasattr(f, "row") else f
        inside = is_int(r, numpy=True) and is_int(c, numpy=True) and 0 <= r < rows and 0 <= c < cols
        if not inside:
            raise ValueError(f"invalid fault location ({r!r}, {c!r}): row 0 … {rows - 1}, "
                             f"column 0 … {cols - 1}")
        out[r, c] = True
    return out


def bypass_rate(bypass_map) -> float:
    """Fraction of bypassed PEs of a map."""
    return float(check_map(bypass_map).mean())


# -- hardware-aware masks and the pruned product ----------------------------------------------

def hardware_mask(dataflow: str, bypass_map, M: int, K: int, N: int) -> np.ndarray:
    """Which variables of an M×K @ K×N layer the map prunes (``True`` = pruned).

    Shaped like the tensor pinned in the PEs: ``B`` (K×N) for WS, ``A`` (M×K) for IS, ``Y``
    (M×N) for OS.  Entry = ``bypass_map`` at the PE of Eqs. 10.3–10.5
    (:func:`golden.mapping.pe_map`): the R×C map replicated over the tiles and cropped
    (Fig. 10.3, Ozen 2023 §10.3.2; for IS transposed, see the module docstring).
    """
    _check_dataflow(dataflow)
    bmap = check_map(bypass_map)
    M, K, N = (_check_pos_int(n, v) for n, v in (("M", M), ("K", K), ("N", N)))
    R, C = bmap.shape
    return bmap.reshape(-1)[pe_map(dataflow, R, C, M, K, N)]


def _prune(dataflow, A, B, mask, bias_v):
    """The hardware's result given a mask on the pinned tensor (no checks)."""
    if dataflow == "ws":
        return exact_matmul(A, np.where(mask, 0, B)) + bias_v[None, :]
    if dataflow == "is":
        return bias_v[None, :] + exact_matmul(np.where(mask, 0, A), B)
    return np.where(mask, 0, exact_matmul(A, B)) + bias_v[None, :]


def pruned_matmul(dataflow: str, A, B, bypass_map, bias=None, *,
                  acc_bits: int | None = None) -> np.ndarray:
    """The exact int64 M×N result the array computes with PEs bypassed by ``bypass_map``.

    * WS: ``A @ (B with pruned weights zeroed) + bias`` (bias added by the output stage);
    * IS: ``bias + (A with pruned inputs zeroed) @ B`` (bias enters at the top of the column
      and is forwarded by bypassed PEs);
    * OS: ``(A @ B with pruned outputs zeroed) + bias`` (bias added by the output stage).

    With no bias this is the ``acc_out`` of WS and OS; for IS ``acc_out`` includes the bias.
    With an all-``False`` map it equals ``A @ B + bias``.  ``acc_bits``: if given, partial sums
    are checked against a signed ``acc_bits``-bit accumulator in the driver's tile order and
    :class:`AccumulatorOverflow` is raised (see the module docstring for OS).  The products are
    :func:`golden.intmath.exact_matmul`'s (on the BLAS).
    """
    _check_dataflow(dataflow)
    A, B = _operands(A, B)
    bmap = check_map(bypass_map)
    M, K = A.shape
    N = B.shape[1]
    bias_v = _check_bias(bias, N)
    mask = hardware_mask(dataflow, bmap, M, K, N)
    if acc_bits is None:
        return _prune(dataflow, A, B, mask, bias_v)
    if not is_int(acc_bits, numpy=True) or not 2 <= acc_bits <= 62:
        raise ValueError(f"invalid acc_bits = {acc_bits!r}: an integer from 2 to 62, or None")
    return _checked_prune(dataflow, A, B, bmap, mask, bias_v, int(acc_bits))


def _checked_prune(dataflow, A, B, bmap, mask, bias_v, acc_bits):
    """:func:`_prune` with every partial sum checked (one product: the check's)."""
    R, C = bmap.shape
    if dataflow != "os":
        # A bypassed PE adds nothing, so the running sums down a column are those of the
        # masked operands: the array model's checked product is the pruned result (same tile
        # order, same messages; the bias enters as in a top without checksum).
        A_, B_ = (A, np.where(mask, 0, B)) if dataflow == "ws" else (np.where(mask, 0, A), B)
        return checked_product(dataflow, R, C, acc_bits, A_, B_, bias_v,
                               bias_in_psum=dataflow == "is")
    # OS: one product per cycle from zero in each PE; only outputs not bypassed are checked.
    # Their running sums lie within Σ_k max_m|a_mk|·|b_kn| (golden.intmath.column_bound):
    # formed and checked (check_running, in row chunks) only when that does not clear.
    hi = (1 << (acc_bits - 1)) - 1
    full, amax = exact_matmul_amax(A, B)
    bound = column_bound(amax, B)
    if not (bound.max() < F64_EXACT and bound.max() <= hi):
        check_running(A, B, acc_bits, "OS accumulation", live=~mask)
    return np.where(mask, 0, full) + bias_v[None, :]


# -- diagonal shift (§10.3.4) -----------------------------------------------------------------

def _dest(length: int, s: int, channels: int) -> np.ndarray:
    """Shifted position of each index: channel ``c`` of block ``p`` → ``(c + s) mod channels``."""
    p, c = np.divmod(np.arange(length), channels)
    return p * channels + (c + s) % channels


def shift_channels(x, s: int, *, axis: int = -1, channels: int | None = None) -> np.ndarray:
    """Roll the channel axis ``axis`` of ``x`` by ``s``: element ``i`` moves to ``(i + s) mod L``.

    With ``channels``, the axis is ``L / channels`` blocks (im2col pixels) of ``channels``
    channels, and the roll is applied inside each block.
    """
    s = _check_shift(s)
    x = _asarray("x", x)
    if x.ndim == 0:
        raise ValueError("invalid x: an array with at least one axis")
    if not is_int(axis, numpy=True) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"invalid axis = {axis!r} for a {x.ndim}-D array")
    L = x.shape[axis]
    ch = _check_channels(channels, L)
    # Gather form: y[j] = x[source of j]; the source of j is j shifted by −s.
    return np.take(x, _dest(L, -s, ch), axis=axis)


def unshift_channels(x, s: int, *, axis: int = -1, channels: int | None = None) -> np.ndarray:
    """Undo :func:`shift_channels` (a roll by ``−s``)."""
    return shift_channels(x, -_check_shift(s), axis=axis, channels=channels)


def diagonal_shift(B, s: int, *, channels: int | None = None) -> np.ndarray:
    """The weights ``B`` (K×N) shifted diagonally by ``s``: ``B_s[(k+s)%K, (n+s)%N] = B[k, n]``.

    Input channels (rows, within im2col blocks of ``channels``) and output channels (columns)
    are rolled by the same ``s`` (Ozen 2023 §10.3.4).
    """
    B = _int_matrix("B", B)
    return shift_channels(shift_channels(B, s, axis=0, channels=channels), s, axis=1)


def shift_inputs(A, s: int, *, channels: int | None = None) -> np.ndarray:
    """The layer inputs ``A`` (M×K) in the order the shifted weights expect.

    The channel axis is rolled by ``s``; the batch is not permuted.  Only the network's first layer
    needs it: a shifted layer's output is already in this order for the next layer (Ozen 2023
    §10.3.4).
    """
    A = _int_matrix("A", A)
    return shift_channels(A, s, axis=1, channels=channels)


def shift_outputs(Y, s: int) -> np.ndarray:
    """The output channels (last axis) rolled by ``s``: for a bias vector or an M×N output."""
    return shift_channels(Y, s, axis=-1)


def unshift_outputs(Y_s, s: int) -> np.ndarray:
    """Undo :func:`shift_outputs`: the output of a shifted layer in the original order."""
    return unshift_channels(Y_s, s, axis=-1)


def shifted_mask(dataflow: str, bypass_map, M: int, K: int, N: int, s: int, *,
                 channels: int | None = None) -> np.ndarray:
    """The mask of :func:`hardware_mask` for shift ``s``, on the *original* (unshifted) tensor.

    ``True`` where the variable's shifted position lands on a bypassed PE.  ``s = 0`` gives
    :func:`hardware_mask`.  Two shifts with equal masks give the same pruned result.
    """
    _check_dataflow(dataflow)
    s = _check_shift(s)
    K = _check_pos_int("K", K)
    N = _check_pos_int("N", N)
    ch = _check_channels(channels, K)
    hw = hardware_mask(dataflow, bypass_map, M, K, N)  # on the shifted tensor
    if dataflow == "ws":
        return hw[np.ix_(_dest(K, s, ch), _dest(N, s, N))]
    if dataflow == "is":
        return hw[:, _dest(K, s, ch)]
    return hw[:, _dest(N, s, N)]


def shifted_pruned_matmul(dataflow: str, A, B, bypass_map, s: int, bias=None, *,
                          channels: int | None = None,
                          acc_bits: int | None = None) -> np.ndarray:
    """The layer run with diagonal shift ``s`` on a bypassed array, in the original order.

    Computes what the device computes — shifted weights, inputs and bias through
    :func:`pruned_matmul` — and unshifts the output.  With an all-``False`` map it equals
    ``A @ B + bias`` for every ``s``; in general it equals :func:`pruned_matmul`'s formula
    with :func:`shifted_mask` in place of the unshifted mask.
    """
    _check_dataflow(dataflow)
    A, B = _operands(A, B)
    s = _check_shift(s)
    bias_v = _check_bias(bias, B.shape[1])
    _check_channels(channels, A.shape[1])
    Y_s = pruned_matmul(dataflow, shift_inputs(A, s, channels=channels),
                        diagonal_shift(B, s, channels=channels), bypass_map,
                        shift_outputs(bias_v, s), acc_bits=acc_bits)
    return unshift_outputs(Y_s, s)


def shift_period(dataflow: str, rows: int, cols: int, K: int, N: int, *,
                 channels: int | None = None) -> int:
    """Smallest ``T`` with ``shifted_mask(s + T) == shifted_mask(s)`` for every map and ``s``.

    Per rolled dimension: ``R`` (rows, input channels) if ``channels`` (default K) is a
    multiple of ``R``, else ``channels``; ``C`` (columns, output channels) if ``N`` is a
    multiple of ``C``, else ``N``.  WS rolls both (lcm), IS only the input channels, OS only
    the output channels.  N×N array, multiples: ``N`` for all three (Ozen 2023 §10.3.4).
    """
    _check_dataflow(dataflow)
    R, C, K, N = (_check_pos_int(n, v) for n, v in
                  (("rows", rows), ("cols", cols), ("K", K), ("N", N)))
    ch = _check_channels(channels, K)
    p_rows = R if ch % R == 0 else ch
    p_cols = C if N % C == 0 else N
    return {"ws": math.lcm(p_rows, p_cols), "is": p_rows, "os": p_cols}[dataflow]


# -- the unit's functions for the engines and the driver program (golden.units) ---------------
def prologue(cfg, draft, opts) -> int:
    """R cycles writing the bypass map (row r in cycle r) in front of the program; returns R.

    Every other port is shifted by R cycles: zero in front, except the constant controls
    (``draft.hold``), which hold their value from the first cycle on.  No map: nothing
    bypassed.
    """
    R, C = cfg.rows, cfg.cols
    given = None if opts is None else opts.map
    bmap = np.zeros((R, C), dtype=bool) if given is None else np.asarray(given, bool)
    for name, arr in draft.inputs.items():
        pad = np.zeros((R,) + arr.shape[1:])
        if name in draft.hold:
            pad[:] = arr[0]
        draft.inputs[name] = np.concatenate([pad, arr])
    T = draft.cycles
    zeros = np.zeros(T, dtype=np.int64)
    draft.inputs["bypass__we"] = np.concatenate([np.ones(R, dtype=np.int64), zeros])
    draft.inputs["bypass__row"] = np.concatenate([np.arange(R), zeros])
    draft.inputs["bypass__wdata"] = np.concatenate(
        [bmap.astype(np.int64) @ (1 << np.arange(C)), zeros])
    draft.loopback = {port: (source, np.concatenate([np.full(R, -1),
                                                     np.where(src >= 0, src + R, -1)]))
                      for port, (source, src) in draft.loopback.items()}
    draft.out_cycle = np.where(draft.out_cycle >= 0, draft.out_cycle + R, -1)
    draft.sanity_cycle = draft.sanity_cycle + R
    draft.cycles = T + R
    return R


def output_ports(cfg) -> dict[str, tuple[int, bool]]:
    """The map's read-back port."""
    return {"bypass__rdata": (0, False)}
