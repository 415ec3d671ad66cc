"""Complementary sparsity and the flow-controlling array: golden models (Ozen 2023 §12.5.2, ch. 12).

A weight matrix ``W`` (K×N: inputs × neurons, the ``B`` of ``A @ B``) is *complementary
sparse* for a group shape ``gl × gk`` when every aligned block of ``gl`` consecutive rows by
``gk`` consecutive columns holds at most one nonzero weight (Ozen 2023 Eqs. 12.2, 12.5, §12.2.3):

* superposition, Ozen 2023 §12.2.1 (Fig. 12.1): groups ``1 × k`` — k neighbouring neurons never
  share an input, so they pack into one column;
* shortened, Ozen 2023 §12.2.2 (Fig. 12.2, Eq. 12.5): groups ``l × 1`` — l neighbouring inputs of a
  neuron hold at most one nonzero, so they pack into one row;
* two-dimensional, Ozen 2023 §12.2.3 (Fig. 12.3): groups ``l̂ × k̂`` (square, ``√g × √g``, as in the
  seed's experiments, Ozen 2023 §12.6.1).

:func:`pack` stores each group as one weight plus *extension bits* (the position of the
nonzero inside the group: ``ceil(log2 gl)`` row bits and ``ceil(log2 gk)`` column bits,
Ozen 2023 §12.5.1), giving a dense ``ceil(K/gl) × ceil(N/gk)`` matrix; :func:`unpack` inverts
it.  :func:`check_packable` names the first group that breaks the rule; :func:`prune` makes a
trained layer complementary-sparse by keeping the largest-magnitude weight of every group (the
seed's mask rule, Ozen 2023 §12.4.1 step 1); training the pattern in (the mask recomputed at every
step, the masked weights' gradients scaled by β, Eqs. 12.9–12.10) is the training path's
``sparse`` method (:mod:`app.train`).  :func:`packed_matmul` computes the product the
way the flow-controlling MACs do (Ozen 2023 §12.5.2: each packed weight picks one activation and
updates one partial sum), and equals ``A @ unpack(P)`` exactly.

The rest models the hardware of :mod:`rtl_gen.flow`: :func:`build_flow_program` is the
driver's cycle-by-cycle stimulus for the flow-controlling accelerator, :class:`FlowArrayModel`
its register-level model (compared with the RTL port by port, cycle by cycle),
:func:`flow_cycle_count` the closed-form cycle count, :func:`flow_dense_layer` one
network layer pruned, packed and run, beside the same layer dense, and :class:`FlowEngine` the
network runner's engine (``engine.product``) for a flow-controlling array.

``cfg`` is an :class:`ftaccel.config.AcceleratorConfig` with ``flow != "none"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from ftaccel.config import flow_lanes
from ftaccel.errors import ConfigError

from .accelerator import play
from .array import AccumulatorOverflow
from .bits import wrap
from .mapping import ceil_div
from .output_stage import output_stage
from .schedule import Program, assemble

__all__ = [
    "Packed", "NotPackable", "layer_shape", "ext_bits", "check_packable", "is_packable",
    "pack", "unpack", "group_mask", "prune", "packed_matmul",
    "check_fits", "check_group", "check_overflow",
    "flow_latency", "flow_cycle_count", "build_flow_program",
    "FlowArrayModel", "simulate_flow", "run_flow_matmul", "flow_dense_layer",
    "FlowEngine",
]


class NotPackable(ConfigError):
    """A weight matrix with two or more nonzeros in one group; names the group and where."""

    def __init__(self, what: str, shape: tuple[int, int], gl: int, gk: int,
                 group: tuple[int, int], positions: list[tuple[int, int]]):
        self.group = group
        self.positions = positions
        r0, c0 = group[0] * gl, group[1] * gk
        where = ", ".join(f"({r}, {c})" for r, c in positions[:4])
        if gk == 1:
            block = f"rows {r0}…{r0 + gl - 1} of column {c0}"
        elif gl == 1:
            block = f"columns {c0}…{c0 + gk - 1} of row {r0}"
        else:
            block = f"rows {r0}…{r0 + gl - 1} × columns {c0}…{c0 + gk - 1}"
        super().__init__(what, f"{shape[0]}×{shape[1]} matrix",
                         f"not packable for {gl}×{gk} groups: {block} hold "
                         f"{len(positions)} nonzero weights (at {where}); at most one per group")


def layer_shape(flow: str, group: int) -> tuple[int, int]:
    """Group shape ``(gl, gk)`` of a layer packed for ``flow`` with group size ``group``.

    Shortened ``(g, 1)``, superposition ``(1, g)``, twodim ``(√g, √g)`` (g a square), none ``(1,
    1)``.
    """
    if flow not in ("none", "shortened", "superposition", "twodim"):
        raise ConfigError("flow", flow, "one of none, shortened, superposition, twodim")
    if isinstance(group, bool) or not isinstance(group, int | np.integer) or group < 1:
        raise ConfigError("group", group, "a positive integer")
    group = int(group)
    if flow == "none" and group != 1:
        raise ConfigError("group", group, "1 for a dense layer")
    if flow == "twodim" and math.isqrt(group) ** 2 != group:
        raise ConfigError("group", group, "a square (4, 9, 16, …) for two-dimensional groups")
    return flow_lanes(flow, group)


def ext_bits(n: int) -> int:
    """Extension bits selecting one of ``n`` positions: ``ceil(log2 n)`` (Ozen 2023 §12.5.1)."""
    return (int(n) - 1).bit_length()


def _check_shape(gl: int, gk: int) -> tuple[int, int]:
    for name, v in (("gl", gl), ("gk", gk)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ConfigError(name, v, "a positive integer (group rows / columns)")
    return int(gl), int(gk)


def _blocks(W: np.ndarray, gl: int, gk: int) -> np.ndarray:
    """``W`` zero-padded to whole groups, as ``[Kp, Np, gl*gk]`` (row-major inside a group)."""
    K, N = W.shape
    Kp, Np = ceil_div(K, gl), ceil_div(N, gk)
    pad = np.zeros((Kp * gl, Np * gk), dtype=W.dtype)
    pad[:K, :N] = W
    return pad.reshape(Kp, gl, Np, gk).transpose(0, 2, 1, 3).reshape(Kp, Np, gl * gk)


def _matrix(W, what: str) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 2 or W.size == 0:
        raise ConfigError(what, f"shape {W.shape}", "a non-empty matrix (2-D)")
    return W


def check_packable(W, gl: int, gk: int, what: str = "B") -> None:
    """Raise :class:`NotPackable` naming the first group (row-major) with two nonzeros."""
    W = _matrix(W, what)
    gl, gk = _check_shape(gl, gk)
    counts = np.count_nonzero(_blocks(W, gl, gk), axis=2)
    bad = np.argwhere(counts > 1)
    if len(bad):
        i, q = (int(x) for x in bad[0])
        sub = W[i * gl:(i + 1) * gl, q * gk:(q + 1) * gk]
        pos = [(i * gl + int(r), q * gk + int(c)) for r, c in np.argwhere(sub != 0)]
        raise NotPackable(what, W.shape, gl, gk, (i, q), pos)


def is_packable(W, gl: int, gk: int) -> bool:
    """True if every ``gl × gk`` group of ``W`` holds at most one nonzero."""
    try:
        check_packable(W, gl, gk)
    except NotPackable:
        return False
    return True


@dataclass(frozen=True)
class Packed:
    """A complementary-sparse K×N matrix in the dense format with extension bits.

    ``values[i, q]`` is the nonzero weight of group (i, q) (0 for an empty group), at original
    position ``(i*gl + ext_row[i, q], q*gk + ext_col[i, q])``.  Empty groups have extension 0,
    so a dense layer (``gl = gk = 1``) runs with fixed multiplexer positions (Ozen 2023 §12.5.2).
    """

    values: np.ndarray
    ext_row: np.ndarray
    ext_col: np.ndarray
    shape: tuple[int, int]
    gl: int
    gk: int

    def __post_init__(self):
        """Check that the packed arrays have the shape of the groups; ConfigError otherwise."""
        K, N = self.shape
        Kp, Np = ceil_div(K, self.gl), ceil_div(N, self.gk)
        for name in ("values", "ext_row", "ext_col"):
            if np.shape(getattr(self, name)) != (Kp, Np):
                raise ConfigError(f"packed {name}", np.shape(getattr(self, name)),
                                  f"shape {(Kp, Np)} for a {K}×{N} matrix in {self.gl}×"
                                  f"{self.gk} groups")
        rows = np.arange(Kp)[:, None] * self.gl + self.ext_row
        cols = np.arange(Np)[None, :] * self.gk + self.ext_col
        ok = ((self.ext_row >= 0) & (self.ext_row < self.gl) & (self.ext_col >= 0)
              & (self.ext_col < self.gk) & (rows < K) & (cols < N))
        if np.any((self.values != 0) & ~ok):
            i, q = (int(x) for x in np.argwhere((self.values != 0) & ~ok)[0])
            raise ConfigError("packed extension bits", (int(self.ext_row[i, q]),
                                                        int(self.ext_col[i, q])),
                              f"a position inside group ({i}, {q}) and inside {K}×{N}")

    @property
    def rows(self) -> np.ndarray:
        """Original row of every packed weight (``[Kp, Np]``)."""
        return np.arange(self.values.shape[0])[:, None] * self.gl + self.ext_row

    @property
    def cols(self) -> np.ndarray:
        """Original column of every packed weight (``[Kp, Np]``)."""
        return np.arange(self.values.shape[1])[None, :] * self.gk + self.ext_col

    def ext_word(self, lanes_in: int) -> np.ndarray:
        """The extension bits as the PE stores them.

        Row select in the low ``ceil(log2 lanes_in)`` bits, column select above (Ozen 2023 §12.5.2:
        dedicated fields).
        """
        return self.ext_row | (self.ext_col << ext_bits(lanes_in))


def pack(W, gl: int, gk: int, what: str = "B") -> Packed:
    """Pack a complementary-sparse ``W`` (checked) into :class:`Packed`."""
    W = _matrix(W, what)
    check_packable(W, gl, gk, what)
    gl, gk = int(gl), int(gk)
    blocks = _blocks(np.asarray(W, dtype=np.int64), gl, gk)
    pos = np.argmax(blocks != 0, axis=2)  # 0 for an empty group: fixed mux position
    values = np.take_along_axis(blocks, pos[..., None], axis=2)[..., 0]
    return Packed(values=values, ext_row=pos // gk, ext_col=pos % gk, shape=W.shape,
                  gl=gl, gk=gk)


def unpack(p: Packed) -> np.ndarray:
    """The K×N sparse matrix a :class:`Packed` stands for."""
    K, N = p.shape
    W = np.zeros((ceil_div(K, p.gl) * p.gl, ceil_div(N, p.gk) * p.gk), dtype=np.int64)
    W[p.rows, p.cols] = p.values
    return W[:K, :N]


def group_mask(W, gl: int, gk: int) -> np.ndarray:
    """Boolean K×N mask with one ``True`` per ``gl × gk`` group, at the largest magnitude.

    Ties go to the first position in row-major order.  This is the mask Θ of Ozen 2023 §12.4.1 (Fig.
    12.4 step 1).
    """
    W = _matrix(W, "W")
    gl, gk = _check_shape(gl, gk)
    K, N = W.shape
    blocks = _blocks(W, gl, gk)
    keep = np.argmax(np.abs(blocks), axis=2)
    mask = np.zeros(blocks.shape, dtype=bool)
    np.put_along_axis(mask, keep[..., None], True, axis=2)
    Kp, Np = blocks.shape[:2]
    return mask.reshape(Kp, Np, gl, gk).transpose(0, 2, 1, 3).reshape(Kp * gl, Np * gk)[:K, :N]


def prune(W, gl: int, gk: int) -> np.ndarray:
    """Keep the largest-magnitude weight of every ``gl × gk`` group, zero the rest.

    :func:`group_mask` applied once to a trained layer: a greedy, group-local choice.  Works
    on floats and integers; the result is packable by construction.
    """
    W = _matrix(W, "W")
    return np.where(group_mask(W, gl, gk), W, 0).astype(W.dtype)


def packed_matmul(A, p: Packed) -> np.ndarray:
    """``A @ W`` from the packed form, as the flow-controlling MACs compute it.

    The weight of group (i, q) multiplies activation ``A[:, rows[i, q]]`` (input multiplexer) and
    adds into output ``cols[i, q]`` (partial-sum multiplexer). int64, exact.
    """
    A = np.asarray(A, dtype=np.int64)
    K, N = p.shape
    if A.ndim != 2 or A.shape[1] != K:
        raise ConfigError("A", f"shape {A.shape}", f"M×{K} (A's columns must equal W's rows)")
    M = A.shape[0]
    Apad = np.zeros((M, p.values.shape[0] * p.gl), dtype=np.int64)
    Apad[:, :K] = A
    contrib = Apad[:, p.rows] * p.values[None]  # [M, Kp, Np]
    out = np.zeros((ceil_div(N, p.gk) * p.gk, M), dtype=np.int64)
    np.add.at(out, p.cols.ravel(), contrib.reshape(M, -1).T)
    return out.T[:, :N]


# -- the hardware: fit, timing, driver program, register-level model -----------------------

def _lanes(cfg) -> tuple[int, int]:
    if getattr(cfg, "flow", "none") == "none":
        raise ConfigError("flow", "none", "shortened, superposition or twodim for the "
                          "flow-controlling array")
    return flow_lanes(cfg.flow, cfg.flow_group)


def check_fits(cfg, p: Packed) -> None:
    """Check that the layer's groups fit the multiplexers the hardware was built for.

    A smaller group uses a subset of the multiplexer inputs (Ozen 2023 §12.5.2); else
    :class:`ConfigError`.
    """
    check_group(cfg, p.gl, p.gk)


def check_group(cfg, gl: int, gk: int) -> None:
    """:func:`check_fits` for a group shape ``gl × gk`` (before packing)."""
    L, Kk = _lanes(cfg)
    if gl > L or gk > Kk:
        need = []
        if gl > L:
            need.append(f"{gl} activation lanes per PE (it has {L})")
        if gk > Kk:
            need.append(f"{gk} partial-sum lanes per PE (it has {Kk})")
        raise ConfigError("group", f"{gl}×{gk}",
                          f"at most {L}×{Kk} (rows × columns) on the {cfg.flow}-"
                          f"{cfg.flow_group} hardware, which was not built for this group: "
                          f"the layer needs {' and '.join(need)}")


def flow_latency(cfg) -> int:
    """Cycles from a vector at ``act_data`` to its result at ``acc_out``.

    R partial-sum registers down a column plus the output-stage register, **R + 1** (no deskew: the
    activations are broadcast along a row, so all columns finish together).
    """
    return cfg.rows + 1


def _gap(cfg) -> int:
    # A load shifts every weight register of a column at once: it must wait until the last
    # vector has used the bottom row (R − 1 cycles after it entered), and never share a cycle
    # with a streamed vector.
    return max(cfg.rows - 2, 0)


def flow_cycle_count(cfg, M: int, K: int, N: int, gl: int = 1, gk: int = 1) -> int:
    """Cycles for ``M×K @ K×N`` packed in ``gl × gk`` groups, first load to last output inclusive.

    ``P·(R + M) + (P − 1)·max(R − 2, 0) + R + 1`` with ``P = ceil(ceil(N/gk)/C) ·
    ceil(ceil(K/gl)/R)`` passes. The group shrinks the number of passes, hence the throughput boost
    equal to the group size (Ozen 2023 §12.5.2).
    """
    R, C = cfg.rows, cfg.cols
    P = ceil_div(ceil_div(N, gk), C) * ceil_div(ceil_div(K, gl), R)
    return P * (R + M) + (P - 1) * _gap(cfg) + flow_latency(cfg)


def build_flow_program(cfg, A, p: Packed, *, bias=None, relu: bool = False,
                       shift: int = 0) -> Program:
    """Cycle-by-cycle port values computing ``A @ unpack(p)`` on the flow-controlling top.

    The same :class:`golden.schedule.Program` as the composed top's: its inputs, loopbacks,
    recorded outputs and where each result shows (gathered with
    :func:`golden.schedule.assemble`).

    Tiles of the packed matrix, WS order: for each N-tile (C packed columns), for each K-tile
    (R packed rows): R cycles of ``load`` (row R−1 first; weight and extension bits shift down
    the column), then the M activation vectors, one per cycle, row r's lane j carrying input
    ``(kt·R + r)·gl + j`` (zero beyond the layer or the group), then ``max(R−2, 0)`` idle
    cycles.  K-tiles after the first take ``psum_in`` from the previous pass's ``acc_out``
    (loopback).  The bias of an output lane is set in the cycle its final sum enters the
    output stage.
    """
    check_fits(cfg, p)
    A = np.asarray(A, dtype=np.int64)
    K, N = p.shape
    if A.ndim != 2 or A.shape[1] != K:
        raise ConfigError("A", f"shape {A.shape}", f"M×{K} (A's columns must equal B's rows)")
    M = A.shape[0]
    R, C = cfg.rows, cfg.cols
    L, Kk = _lanes(cfg)
    Kp, Np = p.values.shape
    lat = flow_latency(cfg)
    n_k, n_n = ceil_div(Kp, R), ceil_div(Np, C)
    T = flow_cycle_count(cfg, M, K, N, p.gl, p.gk)
    z = lambda *s: np.zeros((T, *s), dtype=np.int64)  # noqa: E731
    inp = {"load": z(), "weight_data": z(C), "ext_data": z(C), "in_valid": z(),
           "act_data": z(R * L), "psum_in": z(C * Kk)}
    if cfg.output_stage:
        inp.update({"bias": z(C * Kk), "relu": np.full(T, int(relu), np.int64),
                    "shift": np.full(T, int(shift), np.int64)})
    bias_v = np.zeros(N, np.int64) if bias is None else np.asarray(bias, np.int64)
    src = np.full(T, -1, dtype=np.int64)
    out_cycle = np.zeros((M, N), dtype=np.int64)
    out_lane = np.zeros((M, N), dtype=np.int64)
    ext = p.ext_word(L)
    # Activation lanes of every packed row: A padded to Kp·R groups of L lanes.
    Ag = np.zeros((M, n_k * R, L), dtype=np.int64)
    Apad = np.zeros((M, Kp * p.gl), dtype=np.int64)
    Apad[:, :K] = A
    Ag[:, :Kp, :p.gl] = Apad.reshape(M, Kp, p.gl)
    t = 0
    for nt in range(n_n):
        q0, q1 = nt * C, min(Np, nt * C + C)
        prev_stream = None
        for kt in range(n_k):
            i0 = kt * R
            for i in range(R):  # row R−1 of the tile first: it shifts furthest
                row = i0 + R - 1 - i
                inp["load"][t] = 1
                if row < Kp:
                    inp["weight_data"][t, :q1 - q0] = p.values[row, q0:q1]
                    inp["ext_data"][t, :q1 - q0] = ext[row, q0:q1]
                t += 1
            stream = np.arange(t, t + M)
            inp["in_valid"][stream] = 1
            inp["act_data"][stream] = Ag[:, i0:i0 + R, :].reshape(M, R * L)
            if prev_stream is not None:
                src[stream] = prev_stream + lat
            if kt == n_k - 1:
                for c in range(q1 - q0):
                    for j in range(p.gk):
                        n = (q0 + c) * p.gk + j
                        if n < N:
                            out_cycle[:, n] = stream + lat
                            out_lane[:, n] = c * Kk + j
                            if cfg.output_stage:
                                inp["bias"][stream + lat - 1, c * Kk + j] = bias_v[n]
            prev_stream = stream
            t += M + _gap(cfg)
    outputs = {"out_valid": (0, False), "acc_out": (C * Kk, True)}
    if cfg.output_stage:
        outputs["q_out"] = (C * Kk, True)
    loop = {"psum_in": ("acc_out", src)} if n_k > 1 else {}
    return Program(inputs=inp, loopback=loop, out_cycle=out_cycle, out_lane=out_lane,
                       cycles=T, outputs=outputs)


class FlowArrayModel:
    """Register-level model of :class:`rtl_gen.flow.FlowAccelerator`, one :meth:`step` per cycle.

    Skew registers on the activation lanes (row r delayed r cycles, then broadcast to the row), per
    PE ``weight_reg``, ``ext_reg`` and ``psum_reg[k]``, the output stage, and the ``in_valid`` delay
    line. Same registers, reset values (zero) and wrap-around as the RTL.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.R, self.C, self.P = cfg.rows, cfg.cols, cfg.acc_bits
        self.L, self.Kk = _lanes(cfg)
        self.bl = ext_bits(self.L)
        R, C = self.R, self.C
        self.weight = np.zeros((R, C), np.int64)
        self.ext = np.zeros((R, C), np.int64)
        self.psum = np.zeros((R, C, self.Kk), np.int64)
        self.acts = [np.zeros((R, self.L), np.int64) for _ in range(R)]  # newest first
        self.valid = [0] * flow_latency(cfg)
        self.acc_out = np.zeros(C * self.Kk, np.int64)
        self.q_out = np.zeros(C * self.Kk, np.int64)

    def outputs(self) -> dict:
        """The top's output ports after the last step, by port name."""
        return {"acc_out": self.acc_out.copy(), "q_out": self.q_out.copy(),
                "out_valid": self.valid[-1]}

    def step(self, inp: dict) -> None:
        """Advance one clock cycle with ``inp`` (port name → value) on the top's input ports."""
        R, C, L, Kk = self.R, self.C, self.L, self.Kk
        act_now = np.asarray(inp["act_data"], np.int64).reshape(R, L)
        # Row r sees the vector presented r cycles ago (its skew registers, zero at reset).
        seen = np.stack([(act_now if r == 0 else self.acts[r - 1])[r] for r in range(R)])
        row_sel = self.ext & ((1 << self.bl) - 1)
        col_sel = self.ext >> self.bl
        a_sel = np.take_along_axis(seen, row_sel, axis=1) if L > 1 else seen[:, :1]
        prod = a_sel * self.weight  # [R, C]
        above = np.concatenate([np.asarray(inp["psum_in"], np.int64).reshape(1, C, Kk),
                                self.psum[:-1]], axis=0)
        new = above.copy()
        rr, cc = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
        new[rr, cc, col_sel] = wrap(above[rr, cc, col_sel] + prod, self.P)
        bottom = self.psum[-1].reshape(C * Kk)
        if self.cfg.output_stage:
            self.q_out = output_stage(bottom, np.asarray(inp["bias"], np.int64),
                                      bool(inp["relu"]), int(inp["shift"]), self.cfg.a_width)
        self.acc_out = bottom.copy()
        self.psum = new
        if int(inp["load"]):
            self.weight = np.vstack([np.asarray(inp["weight_data"], np.int64)[None],
                                     self.weight[:-1]])
            self.ext = np.vstack([np.asarray(inp["ext_data"], np.int64)[None], self.ext[:-1]])
        self.acts = [act_now] + self.acts[:-1]
        self.valid = [int(inp["in_valid"])] + self.valid[:-1]


def simulate_flow(cfg, program: Program) -> dict[str, np.ndarray]:
    """What the flow-controlling top's output ports show for ``program``, cycle by cycle.

    Same layout as :func:`tb.runner.run_stream`'s record.
    """
    return play(FlowArrayModel(cfg), program)


def check_overflow(cfg, A, p: Packed) -> None:
    """Check that every partial sum the hardware forms fits the accumulator.

    Partial sums are taken in the hardware's order (packed rows top to bottom, K-tiles chained);
    overflow is reported, never wrapped (README, Networks).
    """
    lo, hi = -(1 << (cfg.acc_bits - 1)), (1 << (cfg.acc_bits - 1)) - 1
    A = np.asarray(A, dtype=np.int64)
    M = A.shape[0]
    K, N = p.shape
    Apad = np.zeros((M, p.values.shape[0] * p.gl), dtype=np.int64)
    Apad[:, :K] = A
    run = np.zeros((M, p.values.shape[1] * p.gk), dtype=np.int64)
    rows, cols = p.rows, p.cols
    for i in range(p.values.shape[0]):
        run[:, cols[i]] += Apad[:, rows[i]] * p.values[i]
        if run.min(initial=0) < lo or run.max(initial=0) > hi:
            bad = run.max() if run.max() > hi else run.min()
            raise AccumulatorOverflow(
                f"packed row {i}: partial sum {int(bad)} does not fit the {cfg.acc_bits}-bit "
                f"accumulator [{lo}, {hi}]; raise max_k or acc_width")


def run_flow_matmul(cfg, A, p: Packed, *, bias=None, relu: bool = False, shift: int = 0):
    """``(acc, q, program)`` of the packed product on the golden cycle model.

    ``q`` is None without the output stage; raises :class:`AccumulatorOverflow` before simulating.
    """
    check_overflow(cfg, A, p)
    prog = build_flow_program(cfg, A, p, bias=bias, relu=relu, shift=shift)
    rec = simulate_flow(cfg, prog)
    q = assemble(prog, rec, "q_out") if cfg.output_stage else None
    return assemble(prog, rec), q, prog


def flow_dense_layer(cfg, A, W, *, bias=None, relu: bool = True, shift: int = 0,
                     group: int | None = None, simulate: bool = False) -> dict:
    """One dense layer ``A @ W`` pruned, packed and run on the flow-controlling array.

    The layer is pruned to complementary sparsity, packed and run on the flow-controlling array,
    beside the same layer dense on the same array.

    ``W`` (K×N, integers of ``w_width`` bits) is pruned with :func:`prune` for the hardware's
    own group shape (``cfg.flow``, ``group`` or ``cfg.flow_group``), packed and multiplied
    with :func:`packed_matmul`; the output stage (bias, ReLU, requantisation) follows.  With
    ``simulate=True`` the packed product also runs through the register-level model
    (:func:`run_flow_matmul`), slower but cycle-exact.

    Returns a dict: ``pruned`` (the sparse K×N weights), ``packed``, ``acc``/``q`` (flow),
    ``dense_acc``/``dense_q`` (unpruned), ``kept`` (fraction of weights kept), ``cycles`` and
    ``dense_cycles`` (:func:`flow_cycle_count`), ``speedup``.
    """
    g = cfg.flow_group if group is None else group
    gl, gk = layer_shape(cfg.flow, g)
    A = np.asarray(A, dtype=np.int64)
    W = np.asarray(W, dtype=np.int64)
    sparse = prune(W, gl, gk)
    p = pack(sparse, gl, gk)
    check_fits(cfg, p)
    b = np.zeros(W.shape[1], np.int64) if bias is None else np.asarray(bias, np.int64)
    if simulate:
        acc, _, _ = run_flow_matmul(cfg, A, p)
    else:
        check_overflow(cfg, A, p)
        acc = packed_matmul(A, p)
    dense_acc = A @ W
    M, K = A.shape
    N = W.shape[1]
    cycles = flow_cycle_count(cfg, M, K, N, gl, gk)
    dense_cycles = flow_cycle_count(cfg, M, K, N, 1, 1)
    return {
        "pruned": sparse, "packed": p, "acc": acc,
        "q": output_stage(acc, b, relu, shift, cfg.a_width),
        "dense_acc": dense_acc, "dense_q": output_stage(dense_acc, b, relu, shift, cfg.a_width),
        "kept": float(np.count_nonzero(sparse)) / max(1, np.count_nonzero(W)),
        "cycles": cycles, "dense_cycles": dense_cycles, "speedup": dense_cycles / cycles,
    }


class FlowEngine:
    """A network engine for the flow-controlling array.

    It has the ``engine.product(product)`` interface of the network runner: chosen product layers
    are pruned to complementary sparsity, packed and run in the packed form; the others run dense on
    the same array (fixed multiplexer positions, Ozen 2023 §12.5.2).

    Parameters
    ----------
    cfg : AcceleratorConfig
        A configuration with ``flow != "none"`` (and the output stage).
    layers : dict or callable, optional
        Layer index or name → group size (1 = dense); or a callable ``(index, name) -> group``.
        Default: every product layer with the hardware's group ``cfg.flow_group``.
    simulate : bool
        Run each product through the register-level model (:func:`run_flow_matmul`) instead
        of :func:`packed_matmul` (same numbers, cycle-exact, slower).

    ``product(p)`` takes any object with ``index``, ``name``, ``A``, ``B``, ``bias``,
    ``relu``, ``shift`` (and ``fault``/``units``, which must be empty: the reliability units
    are not built into the flow-controlling array) and returns an object with ``q`` (M×N
    requantised outputs), ``cycles`` (:func:`flow_cycle_count`), ``alarms`` (empty),
    ``group`` and ``pruned`` (the sparse weights used).  The pruned weights of every layer
    are also kept in ``self.pruned`` (index → K×N).
    """

    name = "flow"

    def __init__(self, cfg, layers=None, *, simulate: bool = False):
        _lanes(cfg)
        self.cfg = cfg
        self.layers = layers
        self.simulate = bool(simulate)
        self.pruned: dict[int, np.ndarray] = {}

    def group_for(self, index: int, name: str) -> int:
        """The group size of product layer ``index`` (``name``), from ``layers`` or the default."""
        if self.layers is None:
            return self.cfg.flow_group
        if callable(self.layers):
            return int(self.layers(index, name) or 1)
        return int(self.layers.get(index, self.layers.get(name, 1)) or 1)

    def product(self, p):
        """The product ``p`` pruned, packed and run on the flow-controlling array."""
        if getattr(p, "fault", None) is not None or getattr(p, "units", None):
            raise ConfigError("layer options", "fault/units", "none on the flow-controlling "
                              "array (the reliability units are not built into it)")
        g = self.group_for(p.index, p.name)
        res = flow_dense_layer(self.cfg, p.A, p.B, bias=p.bias, relu=p.relu, shift=p.shift,
                               group=g, simulate=self.simulate)
        self.pruned[p.index] = res["pruned"]
        return SimpleNamespace(q=res["q"], cycles=res["cycles"], alarms={}, group=g,
                               pruned=res["pruned"])
