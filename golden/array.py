"""Golden model of the systolic array's arithmetic and the closed formulas of its timing.

``cfg`` below is an :class:`ftaccel.config.AcceleratorConfig`; its derived quantities
(latency, widths, which units are built) are read from its properties, never recomputed here.

* :func:`matmul` — the exact product, accumulated tile by tile in the driver's order
  (:mod:`golden.mapping`), with every partial sum checked against the accumulator range:
  overflow is reported (:class:`AccumulatorOverflow`), never wrapped silently.
* :func:`latency`, :func:`cycle_count` — the cycle model: closed formulas, written apart from
  the schedule builder so that a test can hold the two (and the RTL) against each other.

The register-level model of the whole top (input units, array, output stage, checkers) is the
accelerator's: :class:`golden.accelerator.AcceleratorModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import units as golden_units
from .mapping import ceil_div, tiles
from .output_stage import output_stage

__all__ = ["AccumulatorOverflow", "MatmulResult", "matmul", "checked_product", "latency",
           "cycle_count", "pass_gap", "pass_period", "pass_starts", "temporal_batch_max",
           "temporal_stream_len"]


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

    Raises
    ------
    AccumulatorOverflow
        A running partial sum leaves the ``acc_bits``-bit range (tile order of
        :func:`golden.mapping.tiles`).
    """
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    M, K = A.shape
    N = B.shape[1]
    bias_v = np.zeros(N, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    out = np.zeros((M, N), dtype=np.int64)
    P = acc_bits
    early = bias_in_psum
    if early:
        out += bias_v[None, :]
        _check(out, P, "bias")
    for t in tiles(dataflow, rows, cols, M, K, N):
        a = A[t.m0:t.m1, t.k0:t.k1]
        b = B[t.k0:t.k1, t.n0:t.n1]
        block = out[t.m0:t.m1, t.n0:t.n1]
        if dataflow == "os":
            # The PE adds one product per cycle: check every running sum along K.
            running = np.cumsum(a[:, :, None] * b[None, :, :], axis=1)
            _check(running, P, "OS accumulation")
            block += running[:, -1, :]
        else:
            # Partial sums run down a column, one product per PE row.
            running = block[:, None, :] + np.cumsum(a[:, :, None] * b[None, :, :], axis=1)
            _check(running, P, f"{dataflow.upper()} column reduction")
            block[...] = running[:, -1, :]
    if not early:
        out += bias_v[None, :]
    return out


def latency(cfg) -> int:
    """Cycles from an input vector to its output vector at the top's ports.

    :attr:`ftaccel.config.AcceleratorConfig.latency`: **R + C + 1** for WS / IS, **R + C + 2**
    for OS (from the cycle carrying ``in_last`` to the first result row), plus one cycle per
    input unit and per sanity column.
    """
    return cfg.latency


def temporal_batch_max(cfg) -> int:
    """Largest run-time batch size N: ``2**temporal_batch_bits − 1`` data vectors."""
    return cfg.temporal_batch_max


def temporal_stream_len(stream: int, batch: int) -> int:
    """Cycles a pass of ``stream`` vectors occupies with a temporal batch of ``batch``.

    One sanity vector (an idle cycle at the ports) after every batch, the short last one included:
    ``stream + ceil(stream / batch)``, a throughput of N/(N+1) (000 L1253).
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

    The first pass streams after its R load cycles; each pass loads in the R cycles before its
    first vector.  ``tile_list``: :func:`golden.mapping.tiles` (``first_k`` says whether a pass
    chains the previous one's partial sums).
    """
    starts = np.zeros(len(tile_list), dtype=np.int64)
    s = cfg.rows
    for p, tile in enumerate(tile_list):
        if p:
            s += pass_period(cfg, stream_len, not tile.first_k)
        starts[p] = s
    return starts


def cycle_count(cfg, M: int, K: int, N: int, temporal_batch: int | None = None) -> int:
    """Cycles the driver takes for an M×K @ K×N product.

    Counted from the first input to the last output inclusive (see :mod:`golden.schedule`); with the
    temporal checksum, for batches of ``temporal_batch`` vectors (default
    :func:`temporal_batch_max`).
    """
    R, C = cfg.rows, cfg.cols
    L = cfg.latency
    if cfg.dataflow == "os":
        n_tiles = ceil_div(M, R) * ceil_div(N, C)
        return cfg.config_cycles + n_tiles * max(K, R) + L + R - 1
    stream = M if cfg.dataflow == "ws" else N
    if cfg.temporal:
        stream = temporal_stream_len(stream, temporal_batch or cfg.temporal_batch_max)
    starts = pass_starts(cfg, tiles(cfg.dataflow, R, C, M, K, N), stream)
    return cfg.config_cycles + int(starts[-1]) + stream + L
