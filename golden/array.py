"""Golden model of the systolic array's arithmetic and the closed formulas of its timing.

``cfg`` below is an :class:`ftaccel.config.AcceleratorConfig`; its derived quantities
(latency, widths, which units are built) are read from its properties, never recomputed here.

* :func:`matmul` — the exact product (:func:`golden.intmath.exact_matmul`, on the BLAS), with
  every partial sum the driver's tile order forms (:mod:`golden.mapping`) checked against the
  accumulator range: proven in range by a cheap bound, or formed and checked where the bound
  does not clear; overflow is reported (:class:`AccumulatorOverflow`), never wrapped silently.
* :func:`latency`, :func:`cycle_count` — the cycle model: closed formulas, written apart from
  the schedule builder so that a test can hold the two (and the RTL) against each other.

The register-level model of the whole top (input units, array, output stage, checkers) is the
accelerator's: :class:`golden.accelerator.AcceleratorModel`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from . import units as golden_units
from .intmath import (
    F32_EXACT,
    F64_EXACT,
    column_bound,
    exact_matmul,
    exact_matmul_amax,
    float_matmul,
)
from .mapping import ceil_div, tiles
from .output_stage import MAX_SHIFT, output_stage

__all__ = ["AccumulatorOverflow", "MatmulResult", "matmul", "checked_product", "check_running",
           "float_plan", "float_product", "float_stage",
           "latency", "cycle_count", "pass_gap", "pass_period", "pass_starts",
           "temporal_batch_max", "temporal_stream_len", "os_tile_steps", "os_first_step"]


@dataclass
class MatmulResult:
    """One product ``A @ B`` as an engine computed it: the one result of every matmul function.

    :func:`matmul` (functional), :func:`golden.accelerator.run_matmul` (cycle model) and
    :func:`tb.accelerator.rtl_matmul` (the RTL; its :class:`tb.accelerator.RTLRun` adds the
    program and the recorded ports) all return it.  ``acc, q = result`` unpacks the two
    arrays.

    Attributes
    ----------
    acc : ndarray
        The M×N accumulators (int64; with the bias where the hardware adds it).
    q : ndarray or None
        The M×N requantised outputs (``a_width`` bits), None without the output stage.
    cycles : int
        Cycles of the driver's program (:func:`cycle_count`).
    alarms : dict
        Per checksum built (``spatial``, ``temporal``), the output vectors / batches it
        flagged.
    """

    acc: np.ndarray
    q: np.ndarray | None
    cycles: int
    alarms: dict = field(default_factory=dict)

    def __iter__(self):
        """``acc, q = result``."""
        return iter((self.acc, self.q))


class AccumulatorOverflow(ArithmeticError):
    """A partial sum left the configured accumulator range."""


def _acc_range(acc_bits: int) -> tuple[int, int]:
    return -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1


def _check(x: np.ndarray, acc_bits: int, what: str) -> None:
    lo, hi = _acc_range(acc_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        bad = x.max() if x.max() > hi else x.min()
        raise AccumulatorOverflow(
            f"{what}: partial sum {int(bad)} does not fit the {acc_bits}-bit accumulator "
            f"[{lo}, {hi}]; raise max_k or acc_width")


def matmul(cfg, A: np.ndarray, B: np.ndarray, bias=None, *, relu: bool = False,
           shift: int = 0) -> MatmulResult:
    """Exact ``A @ B (+ bias)``, checked for accumulator overflow in driver order.

    Bias enters where the hardware adds it (``cfg.bias_in_psum``): WS and OS in the output
    stage (after the whole reduction, with one extra bit, so it cannot overflow the
    accumulator); IS, and WS with a checksum, through ``psum_in`` ahead of the first K-tile
    (so it is part of every partial sum checked).  The output stage (``relu``, ``shift``)
    gives ``q``; the cycles are :func:`cycle_count`'s; a fault-free product raises no alarm
    (the checks are exact).  No unit runs here: the network engines apply the units
    (:class:`golden.network.FunctionalEngine`).
    """
    acc = checked_product(cfg.dataflow, cfg.rows, cfg.cols, cfg.acc_bits, A, B, bias,
                          bias_in_psum=cfg.bias_in_psum)
    q = output_stage(acc, 0, relu, shift, cfg.a_width) if cfg.output_stage else None
    quiet = {port: np.zeros(1, np.int64) for port in golden_units.output_ports(cfg)}
    (M, K), N = np.shape(A), acc.shape[1]
    return MatmulResult(acc=acc, q=q, cycles=cycle_count(cfg, M, K, N),
                        alarms=golden_units.alarms(cfg, quiet))


def checked_product(dataflow: str, rows: int, cols: int, acc_bits: int, A, B, bias=None, *,
                    bias_in_psum: bool) -> np.ndarray:
    """:func:`matmul` for an array given by its shape and accumulator width alone.

    Every running partial sum must fit the signed ``acc_bits``-bit accumulator, in the order the
    hardware forms them (:func:`golden.mapping.tiles`): OS, each PE's sum along K; WS / IS, the
    sums down a column, continuing from the previous K-tile's result (and from the bias when
    ``bias_in_psum``).  Each such sum has magnitude at most ``|bias_n| + Σ_k max_m|a_mk|·|b_kn|``
    (:func:`golden.intmath.column_bound`, O(M·K + K·N)): when that clears the range for every
    column, nothing can overflow and the product is one :func:`golden.intmath.exact_matmul`;
    otherwise each tile is bounded the same way and only a tile whose bound does not clear has
    its running sums formed and checked (:func:`check_running`, in row chunks).

    Raises
    ------
    AccumulatorOverflow
        A running partial sum leaves the ``acc_bits``-bit range (the first tile, in the order of
        :func:`golden.mapping.tiles`, with its largest sum if that is too large, else its
        smallest).
    """
    A, B = _int_operand(A), _int_operand(B)
    M, K = A.shape
    N = B.shape[1]
    bias_v = np.zeros(N, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    P = acc_bits
    hi = _acc_range(P)[1]
    early = bias_in_psum
    if early and M:
        _check(bias_v, P, "bias")
    # The product first (it reads A's maxima on its way); it is the answer when the bound
    # clears, which it does for every layer whose K fits the accumulator (cfg.max_k).
    prod, amax = exact_matmul_amax(A, B)
    bound = column_bound(amax, B)
    if early:
        bound = bound + np.abs(bias_v.astype(np.float64))
    if not bound.size or _clears(float(bound.max()), hi):
        prod += bias_v[None, :]  # the same sum wherever the bias enters
        return prod
    out = np.zeros((M, N), dtype=np.int64)
    if early:
        out += bias_v[None, :]
    for t in tiles(dataflow, rows, cols, M, K, N):
        a = A[t.m0:t.m1, t.k0:t.k1]
        b = B[t.k0:t.k1, t.n0:t.n1]
        block = out[t.m0:t.m1, t.n0:t.n1]
        # OS: the PE adds one product per cycle from zero; WS / IS: the partial sums run
        # down a column, one product per PE row, from the previous K-tile's result.
        start = None if dataflow == "os" else block
        tb = column_bound(amax[t.k0:t.k1], b)
        if start is not None and block.size:
            tb = tb + float(np.abs(block).max())
        if not tb.size or _clears(float(tb.max()), hi):
            block += exact_matmul(a, b)
        elif dataflow == "os":
            block += check_running(a, b, P, "OS accumulation")
        else:
            block[...] = check_running(a, b, P, f"{dataflow.upper()} column reduction",
                                       start=block)
    if not early:
        out += bias_v[None, :]
    return out


def float_plan(amax: float, B: np.ndarray, bias, requant, *, acc_bits: int,
               bias_in_psum: bool, wsum=None):
    """The floating-point type that computes ``requant(A @ B + bias)`` exactly, or None.

    ``amax``: a bound on ``|a_mk|`` (the layer input's largest magnitude, its padding value
    included), ``B`` the K×N integer weights, ``requant`` the output stage
    (:class:`golden.output_stage.Requant`).  Every partial sum the BLAS forms for column n,
    in any order, has magnitude at most ``S_n = amax · Σ_k |b_kn|`` (the bound of
    :mod:`golden.intmath`, with the width of the data instead of a scan of the lowered
    matrix); binary32 holds every integer up to 2^24 and binary64 up to 2^53 (IEEE 754-2019
    §3.6), and an operation whose exact result is such an integer returns it unrounded
    (§4.3).  Returns

    * ``np.float32`` when the product and, on the power-of-two path, the output stage's
      ``acc + bias`` and rounding addend ``+ 2^(shift−1)`` stay within 2^24;
    * ``np.float64`` when they stay below 2^53;
    * None when they do not, or when the bound does not prove that no partial sum leaves the
      signed ``acc_bits``-bit accumulator (:func:`checked_product` then checks in driver order
      and raises where one does), or when ``amax`` is not finite.

    The fixed-point output stage (gemmlowp's 62-bit products) runs in int64 after the product;
    only the product's bound decides its type.  ``wsum``: ``Σ_k |b_kn|`` per column (float64),
    when the caller keeps it.
    """
    if not np.isfinite(amax) or amax >= F64_EXACT:
        return None
    if wsum is None:
        wsum = np.abs(np.asarray(B, dtype=np.float64)).sum(axis=0)
    pbound = amax * wsum
    babs = np.abs(np.asarray(bias, dtype=np.float64))
    acc = pbound + babs if bias_in_psum else pbound
    hi = _acc_range(acc_bits)[1]
    if acc.size and not _clears(float(acc.max()), hi):
        return None
    if bias_in_psum and babs.size and not _clears(float(babs.max()), hi):
        return None
    top = float(pbound.max()) if pbound.size else 0.0
    if not requant.fixed:
        shift = int(requant.shift)
        if not 0 <= shift <= MAX_SHIFT:
            return None  # output_stage refuses it
        top = float((pbound + babs).max()) + (float(1 << (shift - 1)) if shift else 0.0) \
            if pbound.size else 0.0
    if top <= F32_EXACT:
        return np.float32
    if top < F64_EXACT:
        return np.float64
    return None


def float_product(A: np.ndarray, B: np.ndarray, bias, requant, a_width: int) -> np.ndarray:
    """``requant(A @ B + bias)`` with ``A`` and ``B`` floating-point arrays holding integers.

    The type (float32 or float64) must be the one :func:`float_plan` gave for these operands:
    then the BLAS product is the exact integer product (no partial sum beyond the type's
    exact range) and, on the power-of-two path, so is every step of
    :func:`golden.output_stage.output_stage` done in the same type: ``y = acc + bias``,
    ``max(y, 0)``, ``floor((y + 2^(s−1)) · 2^−s)`` (a scaling by a power of two and a floor
    are exact on integers), the clamp to ``a_width`` bits.  The fixed-point path converts
    the exact accumulators to int64 and applies :meth:`golden.output_stage.Requant.apply`.
    ``B`` may be an ``(M, K) @ (K, N)`` product's right operand or anything ``np.matmul``
    takes.  Returns the requantised outputs (int64, M×N).
    """
    ftype = A.dtype.type
    return float_stage(float_matmul(A, B.astype(ftype, copy=False)), bias, requant, a_width)


def float_stage(acc: np.ndarray, bias, requant, a_width: int) -> np.ndarray:
    """``requant(acc + bias)`` on exact floating-point accumulators (``acc`` overwritten).

    ``acc``'s type must be the one :func:`float_plan` gave: see :func:`float_product`.
    Returns int64.
    """
    if requant.fixed:
        return requant.apply(acc.astype(np.int64), bias, a_width)
    ftype = acc.dtype.type
    shift = int(requant.shift)
    # one addend per column: the bias and the rounding half (exact: float_plan bounded the sum)
    acc += (np.asarray(bias, dtype=np.float64) + (2.0 ** (shift - 1) if shift else 0.0)
            ).astype(ftype)
    if shift:
        acc *= ftype(2.0 ** -shift)
        np.floor(acc, out=acc)
    # ReLU folds into the clamp: the rounding shift is monotone and maps 0 to 0, so
    # round(max(y, 0)) = max(round(y), 0)
    lo = 0 if requant.relu else -(1 << (a_width - 1))
    np.clip(acc, lo, (1 << (a_width - 1)) - 1, out=acc)
    return acc.astype(np.int64)


def _int_operand(x) -> np.ndarray:
    """``x`` as an integer array, any integer dtype kept (the product widens it exactly)."""
    arr = np.asarray(x)
    return arr if arr.dtype.kind in "iu" else np.asarray(x, dtype=np.int64)


def _clears(bound: float, hi: int) -> bool:
    """Whether a float64 bound proves ``|sum| ≤ hi`` (below 2^53 the bound is exact)."""
    return bound < F64_EXACT and bound <= hi


#: Running sums formed at once by :func:`check_running` (int64: 32 MiB).
_RUNNING_CHUNK = 1 << 22


def check_running(a, b, acc_bits: int, what: str, *, start=None, live=None) -> np.ndarray:
    """Every running sum ``start + Σ_{k' ≤ k} a_mk' · b_k'n`` checked against the accumulator.

    ``a`` (M×K) and ``b`` (K×N) integers; ``start`` (M×N) the sums the first product adds to
    (default zero); ``live`` (M×N bool) the outputs whose sums are checked (default all).  The
    running sums are formed for a chunk of rows at a time (at most :data:`_RUNNING_CHUNK`
    values), so memory stays bounded; the extremes over every chunk decide, as one check over
    all of them would.  Returns the final sums (M×N int64).

    Raises
    ------
    AccumulatorOverflow
        A checked sum outside ``[-2^(acc_bits−1), 2^(acc_bits−1) − 1]``: the largest if it is too
        large, else the smallest, in a message naming ``what``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    M, K = a.shape
    N = b.shape[1]
    last = np.zeros((M, N), dtype=np.int64) if start is None else \
        np.array(start, dtype=np.int64)
    if not K:  # no product, no running sum
        return last
    top, bot = None, None
    step = max(1, _RUNNING_CHUNK // max(1, K * N))
    for m0 in range(0, M, step):
        running = np.cumsum(a[m0:m0 + step, :, None] * b[None, :, :], axis=1)
        if start is not None:
            running += last[m0:m0 + step, None, :]
        last[m0:m0 + step] = running[:, -1, :]
        if live is not None:
            # a sum of an output not checked counts as 0, inside every range: the extremes
            # beyond the range are those of the checked sums
            running = np.where(np.asarray(live[m0:m0 + step], bool)[:, None, :], running, 0)
        if running.size:
            hi_c, lo_c = int(running.max()), int(running.min())
            top = hi_c if top is None else max(top, hi_c)
            bot = lo_c if bot is None else min(bot, lo_c)
    if top is not None:
        _check(np.array([bot, top], dtype=np.int64), acc_bits, what)
    return last


def latency(cfg) -> int:
    """Cycles from an input vector to its output vector at the top's ports.

    :attr:`ftaccel.config.AcceleratorConfig.latency`: **R + C + 1** for WS / IS, **R + C + 2**
    for OS (from the cycle carrying ``in_last`` to the first result row), plus one cycle per
    input unit and per sanity column, and three with the fixed-point multiplier.
    """
    return cfg.latency


def temporal_batch_max(cfg) -> int:
    """Largest run-time batch size N: ``2**temporal_batch_bits − 1`` data vectors."""
    return cfg.temporal_batch_max


def temporal_stream_len(stream: int, batch: int) -> int:
    """Cycles a pass of ``stream`` vectors occupies with a temporal batch of ``batch``.

    One sanity vector (an idle cycle at the ports) after every batch, the short last one included:
    ``stream + ceil(stream / batch)``, a throughput of N/(N+1) (Ozen 2023 §6.3.3).
    """
    return stream + ceil_div(stream, batch)


def pass_gap(cfg, stream_len: int) -> int:
    """Idle cycles between a single-buffered WS/IS pass's last streamed vector and the next load.

    The next load may start once the last vector's wavefront has left PE (R−1, C−1):
    R + C − 2 idle cycles.  When K-tiles chain their partial sums, the first result of a
    pass must also be out before the next pass streams it back in (``L − R − stream_len``).
    """
    return max(cfg.rows + cfg.array_cols - 2, cfg.latency - cfg.rows - stream_len, 0)


def pass_period(cfg, stream_len: int, chained: bool) -> int:
    """Cycles from one WS/IS pass's first streamed vector to the next pass's.

    Single-buffered: ``R`` load cycles + the stream + :func:`pass_gap`.  Double-buffered
    (:attr:`ftaccel.config.AcceleratorConfig.double_buffered`): the longest of

    * the stream itself (passes back to back, no bubble);
    * ``2R − 1``: column c's shadows may shift from the cycle the previous pass's swap reaches
      their bottom PE (``R − 1`` cycles after its top one) and need R cycles; the next swap
      must follow the last shift;
    * ``L`` when the pass chains the previous K-tile's partial sums (``chained``): its first
      result must have left the top before it streams back in.
    """
    R = cfg.rows
    if not cfg.double_buffered:
        return R + stream_len + pass_gap(cfg, stream_len)
    return max(stream_len, 2 * R - 1, cfg.latency if chained else 0)


def pass_starts(cfg, tile_list, stream_len: int) -> np.ndarray:
    """Program cycle of the first streamed vector of each WS/IS pass (config cycles excluded).

    The first pass streams after its R load cycles (and, on IS with windowed filters, after the
    load's lead :attr:`ftaccel.config.AcceleratorConfig.filter_lead`: the load enters that
    many cycles before the array takes it); each pass loads in the R cycles before its first
    vector.  ``tile_list``: :func:`golden.mapping.tiles` (``first_k`` says whether a pass
    chains the previous one's partial sums).
    """
    # two periods only (a pass chains the previous one's sums or not): computed once, since
    # a configuration's latency is a sum over its units and a campaign asks per fault
    period = {chained: pass_period(cfg, stream_len, chained) for chained in (False, True)}
    steps = np.fromiter((period[not t.first_k] if p else cfg.rows + cfg.filter_lead
                         for p, t in enumerate(tile_list)), dtype=np.int64,
                        count=len(tile_list))
    return np.cumsum(steps)


def os_tile_steps(cfg, K: int) -> int:
    """Steps of one OS tile: ``max(K, NR)`` (a shorter K is padded with zero steps).

    The drain chain needs NR cycles (:attr:`ftaccel.config.AcceleratorConfig.array_rows`, the
    sanity row included) before it takes the next tile's results.
    """
    return max(K, cfg.array_rows)


def os_first_step(cfg) -> int:
    """Program cycle of the first OS step at the array (config cycles excluded).

    The windowed filters' activations enter :attr:`ftaccel.config.AcceleratorConfig.
    filter_lead` cycles before the array takes them, so the array starts that late.
    """
    return cfg.filter_lead


def cycle_count(cfg, M: int, K: int, N: int, temporal_batch: int | None = None) -> int:
    """Cycles the driver takes for an M×K @ K×N product.

    Counted from the first input to the last output inclusive (see :mod:`golden.schedule`); with the
    temporal checksum, for batches of ``temporal_batch`` vectors (default
    :func:`temporal_batch_max`).
    """
    # memoised: a campaign asks for the same few products' counts for every fault, and the
    # pass schedule costs milliseconds (the configuration is a frozen, hashable dataclass)
    return _cycle_count(cfg, int(M), int(K), int(N),
                        None if temporal_batch is None else int(temporal_batch))


@functools.lru_cache(maxsize=4096)
def _cycle_count(cfg, M: int, K: int, N: int, temporal_batch: int | None) -> int:
    R, C = cfg.rows, cfg.cols
    L = cfg.latency
    if cfg.dataflow == "os":
        n_tiles = ceil_div(M, R) * ceil_div(N, C)
        return cfg.config_cycles + os_first_step(cfg) + n_tiles * os_tile_steps(cfg, K) + L \
            + R - 1
    stream = M if cfg.dataflow == "ws" else N
    if cfg.temporal:
        stream = temporal_stream_len(stream, temporal_batch or cfg.temporal_batch_max)
    starts = pass_starts(cfg, tiles(cfg.dataflow, R, C, M, K, N), stream)
    return cfg.config_cycles + int(starts[-1]) + stream + L
