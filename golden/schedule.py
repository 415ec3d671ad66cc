"""The driver's program: cycle-by-cycle port values that compute ``A @ B`` on the accelerator.

One :class:`Program` drives both the RTL (through :mod:`tb.player`) and the golden
:class:`golden.array.ArrayCycleModel`, so that the two see exactly the same stimulus, cycle
numbers included (transient faults are placed by cycle).  Tiles follow :mod:`golden.mapping`.

WS / IS pass (one tile of the stationary operand):
    R cycles of ``load`` (row R−1 of the tile first), then one streamed vector per cycle with
    ``in_valid`` (WS: the M rows of A; IS: the N columns of B), then
    :func:`golden.array.pass_gap` idle cycles before the next load.  A K-tile after the first
    takes its ``psum_in`` from the previous pass's ``acc_out``: a *loopback* that the player
    and the model resolve at run time (the value is whatever the hardware produced, faults
    included).  WS adds the bias in the output stage; IS folds it into the first ``psum_in``
    (its output lanes are batch rows, not neurons).
OS tile:
    max(K, R) steps back to back with no idle cycle between tiles (K < R is padded with zero
    steps so that the drain chain is free again, see :class:`rtl_gen.pe.OutputStationaryPE`),
    ``in_last`` on the final step; results leave R + C + 2 cycles later, row R−1 first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ftaccel.rtl_gen.config import FAULT_CONTROLS, is_int

from .array import pass_gap, temporal_stream_len
from .bits import wrap
from .faults import Fault
from .lcu import buffer_address
from .mapping import tiles

__all__ = ["Program", "build_program", "assemble", "assemble_corrected", "TEMPORAL_OUTPUTS"]

#: Output ports of the temporal checksum (all unsigned).
TEMPORAL_OUTPUTS = ("temporal_checked", "temporal_error", "temporal_lanes", "temporal_alarm",
                    "temporal_first", "temporal_overrun")


@dataclass
class Program:
    """Stimulus and bookkeeping for one product.

    ``inputs[port]`` is ``[T]`` or ``[T, n]``; ``loopback[port] = (source_port, src)`` means
    that in cycle t with ``src[t] >= 0`` the port takes the value the source output port
    showed in cycle ``src[t]``.  ``out_cycle[m, n]`` / ``out_lane[m, n]`` locate element
    ``C[m, n]`` in the recorded outputs; ``sanity_cycle`` lists the cycles in which the
    temporal checksum's sanity vectors of the final K-tile passes show at the outputs.
    """

    inputs: dict[str, np.ndarray]
    loopback: dict[str, tuple[str, np.ndarray]]
    out_cycle: np.ndarray
    out_lane: np.ndarray
    cycles: int
    outputs: dict[str, tuple[int, bool]] = field(default_factory=dict)
    sanity_cycle: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: With the LCU: output-buffer row of ``C[m, n]`` (its word is that row's lane
    #: ``out_lane[m, n]``) and the cycle in which the read-back of buffer row r shows.
    buffer_row: np.ndarray | None = None
    buffer_read_cycle: np.ndarray | None = None


def build_program(cfg, A, B, *, bias=None, relu: bool = False, shift: int = 0,
                  fault: Fault | None = None, bypass_map=None, afd=None,
                  median_enable: bool = True, temporal_batch: int | None = None,
                  bias_error=None, split=None, lcu_pairs=None) -> Program:
    """The driver's program for ``A`` (M×K activations) @ ``B`` (K×N weights).

    ``bypass_map`` (R×C bool, with ``cfg.bypass``) is written first, one row per cycle;
    ``afd`` (with ``cfg.afd``) is a dict of ``shift``, ``gates``, ``mode``, ``enable``
    (default: enabled, one gate, γ = 2, drop); ``median_enable`` switches the median filter.
    ``temporal_batch`` (with the temporal checksum) is N, the data vectors per temporal batch
    (default the largest, :func:`golden.array.temporal_batch_max`).  ``bias_error`` models a
    corrupted bias word on the way into the array (a fault outside the PEs, for the Table 6.1
    campaign): ``(m, n, delta)`` adds ``delta`` to the bias entering output ``C[m, n]``
    (``m = None``: every row), while the checkers' expected constants keep the true bias.
    With ``cfg.lcu``: ``split`` (N bools) marks the columns that are split copies (their
    output-stage lanes use ``shift + 1`` and one bit less, :mod:`golden.split`); every result
    vector is captured into the output buffer, then ``lcu_pairs`` (column pairs ``(c1, c2)``)
    are corrected in every row of the result, ``lcu_max_pairs`` at a time, and the whole
    buffer is read back (:func:`assemble_corrected`).
    """
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    M, K = A.shape
    N = B.shape[1]
    R, C = cfg.rows, cfg.cols
    bias_v = np.zeros(N, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    L = cfg.latency
    tl = tiles(cfg.dataflow, R, C, M, K, N)
    out_cycle = np.full((M, N), -1, dtype=np.int64)
    out_lane = np.full((M, N), -1, dtype=np.int64)

    if cfg.dataflow == "os":
        Kp = max(K, R)
        T = len(tl) * Kp + L + R - 1
        inp = {"act_in": np.zeros((T, R)), "weight_in": np.zeros((T, C)), "in_last": np.zeros(T)}
        bias_t = np.zeros((T, C))
        t = 0
        for tile in tl:
            mr, nc = tile.m1 - tile.m0, tile.n1 - tile.n0
            inp["act_in"][t:t + K, :mr] = A[tile.m0:tile.m1, :].T
            inp["weight_in"][t:t + K, :nc] = B[:, tile.n0:tile.n1]
            t_last = t + Kp - 1
            inp["in_last"][t_last] = 1
            first_out = t_last + L
            for i in range(R):
                r = R - 1 - i  # the drain chain empties bottom row first
                bias_t[first_out - 1 + i, :nc] = bias_v[tile.n0:tile.n1]
                if r < mr:
                    out_cycle[tile.m0 + r, tile.n0:tile.n1] = first_out + i
                    out_lane[tile.m0 + r, tile.n0:tile.n1] = np.arange(nc)
            t += Kp
        loopback: dict[str, tuple[str, np.ndarray]] = {}
        sanity_cycle = np.zeros(0, dtype=np.int64)
    else:
        ws = cfg.dataflow == "ws"
        stream = M if ws else N
        # Slot of each streamed vector in a pass: with the temporal checksum one idle cycle
        # follows every batch of N vectors (the generator inserts the sanity vector there).
        tb = cfg.temporal
        nb = _temporal_batch(cfg, temporal_batch) if tb else stream
        slot = np.arange(stream) + (np.arange(stream) // nb if tb else 0)
        span = temporal_stream_len(stream, nb) if tb else stream
        gap = pass_gap(cfg, span)
        T = (len(tl) - 1) * (R + span + gap) + R + span + L
        inp = {"load": np.zeros(T), "load_data": np.zeros((T, C)), "in_valid": np.zeros(T),
               "in_data": np.zeros((T, R)), "psum_in": np.zeros((T, C))}
        checksum = cfg.spatial
        if checksum:
            inp.update({"sanity_load_data": np.zeros(T), "sanity_psum_in": np.zeros(T),
                        "checksum_threshold": np.zeros(T)})
        if cfg.checksum != "none":
            inp["checksum_clear"] = np.zeros(T)
        NC = C + int(checksum)
        if tb:
            inp.update({"temporal_batch": np.full(T, nb), "temporal_last": np.zeros(T),
                        "temporal_expected": np.zeros((T, NC)),
                        "temporal_threshold": np.zeros(T)})
        early = cfg.bias_in_psum
        if bias_error is not None and not (ws and early):
            raise ValueError("bias_error needs the WS dataflow with a checksum (the bias then "
                             "enters through psum_in)")
        bias_t = np.zeros((T, C))
        src = np.full(T, -1, dtype=np.int64)
        sanity_rows: list = []
        t = 0
        prev_out = -1
        for tile in tl:
            kr = tile.k1 - tile.k0
            # stationary tile, indexed [PE row, PE column]
            stat = np.zeros((R, C))
            if ws:
                stat[:kr, :tile.n1 - tile.n0] = B[tile.k0:tile.k1, tile.n0:tile.n1]
            else:
                stat[:kr, :tile.m1 - tile.m0] = A[tile.m0:tile.m1, tile.k0:tile.k1].T
            for i in range(R):
                inp["load"][t + i] = 1
                inp["load_data"][t + i] = stat[R - 1 - i]  # the chain shifts down: last row first
            if checksum:
                # Sanity neuron of this weight tile (000 Eq. 6.5): negated row sums, so every
                # output vector of the C + 1 columns sums to zero.  Weights of bypassed PEs
                # are left out: the array prunes them, and the invariant must hold for what
                # the array computes, not for the weights it was given.
                kept = stat if bypass_map is None else np.where(bypass_map, 0, stat)
                inp["sanity_load_data"][t:t + R] = -kept.sum(axis=1)[::-1]
            s = t + R
            inp["in_valid"][s + slot] = 1
            if ws:
                inp["in_data"][s + slot, :kr] = A[:, tile.k0:tile.k1]
            else:
                inp["in_data"][s + slot, :kr] = B[tile.k0:tile.k1, :].T
            if ws:
                cols = slice(tile.n0, tile.n1)
                nc = tile.n1 - tile.n0
            else:
                cols = slice(tile.m0, tile.m1)  # IS: output lane i is batch row m0 + i
                nc = tile.m1 - tile.m0
            if tb:
                inp["temporal_last"][s + slot[-1]] = 1  # closes the pass's short last batch
            if not tile.first_k:
                # Every slot, sanity ones included, chains its partial sum to the next pass.
                src[s:s + span] = prev_out + np.arange(span)
            elif early:
                # The bias enters the first K-tile's partial sums, sanity vectors included
                # (each also gets the bias once, hence (n + 1)·bias below).
                if ws:
                    inp["psum_in"][s:s + span, :nc] = _bias_slots(bias_v, tile, span, slot,
                                                                  bias_error)
                    if checksum:  # the sanity neuron's bias: the negated sum (Eq. 6.5)
                        inp["sanity_psum_in"][s:s + span] = -bias_v[cols].sum()
                else:
                    inp["psum_in"][s + slot, :] = bias_v[:, None]  # IS: bias of neuron n
            out0 = s + L
            if tb:
                _temporal_expected(inp["temporal_expected"], out0, slot, nb,
                                   bias_v[cols] if early and ws else np.zeros(nc), checksum)
            if tile.last_k and tb:
                closing = slot[np.minimum(np.arange(nb - 1, stream + nb - 1, nb), stream - 1)]
                sanity_rows.append(out0 + closing + 1)
            if tile.last_k:
                if ws:
                    if not early:
                        bias_t[out0 - 1 + slot, :nc] = bias_v[cols]
                    out_cycle[:, cols] = (out0 + slot)[:, None]
                    out_lane[:, cols] = np.arange(nc)[None, :]
                else:
                    out_cycle[cols, :] = (out0 + slot)[None, :]
                    out_lane[cols, :] = np.arange(nc)[:, None]
            prev_out = out0
            t = s + span + gap
        loopback = {"psum_in": ("acc_out", src)}
        sanity_cycle = (np.concatenate(sanity_rows) if sanity_rows
                        else np.zeros(0, dtype=np.int64))
        if checksum:
            loopback["sanity_psum_in"] = ("sanity_acc_out", src)

    if cfg.lcu:
        inp, T, buffer_row, read_cycle = _lcu_program(cfg, inp, T, out_cycle, out_lane, N,
                                                      split, lcu_pairs)
        bias_t = np.concatenate([bias_t, np.zeros((T - len(bias_t), C))])
        loopback = {port: (source, np.concatenate([src, np.full(T - len(src), -1)]))
                    for port, (source, src) in loopback.items()}
    elif split is not None or lcu_pairs is not None:
        raise ValueError("split and lcu_pairs need a configuration with lcu")
    if cfg.output_stage:
        inp["bias"] = bias_t
        inp["relu"] = np.full(T, int(bool(relu)))
        inp["shift"] = np.full(T, int(shift))
    if cfg.fault_hooks:
        values = fault.controls() if fault is not None else {}
        for name in FAULT_CONTROLS:
            inp[f"fault_{name}"] = np.full(T, values.get(name, 0))
    if cfg.afd:
        ctl = {"shift": 1, "gates": 1, "mode": 0, "enable": 1, **(afd or {})}
        for name in ("shift", "gates", "mode", "enable"):
            inp[f"afd_{name}"] = np.full(T, int(ctl[name]))
    if cfg.median:
        inp["median_enable"] = np.full(T, int(bool(median_enable)))
    inputs = {k: np.asarray(v, dtype=np.int64) for k, v in inp.items()}
    if cfg.temporal:  # the expected-sum port is k bits wide: program the residue
        inputs["temporal_expected"] = wrap(inputs["temporal_expected"], cfg.temporal_check_bits)
    outputs = {"out_valid": (0, False), "acc_out": (C, True)}
    if cfg.output_stage:
        outputs["q_out"] = (C, True)
    if cfg.spatial:
        outputs.update({"sanity_acc_out": (0, True), "checksum_error": (0, False),
                        "checksum_alarm": (0, False), "checksum_first": (0, False),
                        "checksum_syndrome": (0, True)})
    if cfg.temporal:
        outputs.update({name: (0, False) for name in TEMPORAL_OUTPUTS})
    pre = 0  # cycles the bypass map is written in, in front of everything else
    if cfg.bypass:
        inputs, loopback, out_cycle, T = _prepend_bypass_map(cfg, inputs, loopback, out_cycle,
                                                              T, bypass_map)
        pre = cfg.rows
        sanity_cycle = sanity_cycle + pre
        outputs["bypass_rdata"] = (0, False)
    program = Program(inputs=inputs, loopback=loopback, out_cycle=out_cycle, out_lane=out_lane,
                      cycles=T, outputs=outputs, sanity_cycle=sanity_cycle.astype(np.int64))
    if cfg.lcu:
        program.buffer_row = buffer_row
        program.buffer_read_cycle = read_cycle + pre
        program.outputs.update({"lcu_busy": (0, False), "lcu_done": (0, False),
                                "lcu_cap_row": (0, False), "lcu_rd_data": (C, True)})
    return program


def _temporal_batch(cfg, batch) -> int:
    nmax = cfg.temporal_batch_max
    if batch is None:
        return nmax
    if not is_int(batch, numpy=True) or not (
            1 <= batch <= nmax):
        raise ValueError(f"invalid temporal_batch = {batch!r}: an integer from 1 to {nmax} "
                         f"(temporal_batch_bits = {cfg.temporal_batch_bits})")
    return int(batch)


def _lcu_program(cfg, inp: dict, T: int, out_cycle, out_lane, N: int, split, lcu_pairs):
    """Output-buffer capture, split lanes, correction runs and read-back (``cfg.lcu``).

    Every cycle that shows result vectors is captured, in order, one buffer row each (rows
    counted from ``lcu_cap_clear`` in cycle 0).  After the product, for each chunk of at most
    ``lcu_max_pairs`` (row, pair) entries: one cycle per pair-list write, ``lcu_start``,
    then :func:`golden.lcu`-style ``2n + 3`` cycles until ``done``.  Then one buffer row is
    read per cycle.  Returns the extended inputs, T, the buffer row of each result and the
    cycle in which each buffer row's read-back shows.
    """
    C = cfg.cols
    split_v = np.zeros(N, dtype=bool) if split is None else np.asarray(split, dtype=bool)
    if split_v.shape != (N,):
        raise ValueError(f"split must be {N} booleans (one per output column), not "
                         f"shape {split_v.shape}")
    pairs = np.zeros((0, 2), np.int64) if lcu_pairs is None else np.asarray(lcu_pairs, np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or (pairs.size and (
            pairs.min() < 0 or pairs.max() >= N)):
        raise ValueError(f"lcu_pairs must be (column, column) pairs with columns 0 … {N - 1}")
    captured = np.unique(out_cycle)
    buffer_row = np.searchsorted(captured, out_cycle)
    if len(captured) > cfg.lcu_depth:
        raise ValueError(f"the result needs {len(captured)} output-buffer rows; lcu_depth is "
                         f"{cfg.lcu_depth}")
    addr = buffer_address(buffer_row, out_lane, C)  # word address of C[m, n]
    words = np.concatenate([np.stack([addr[:, a], addr[:, b]], axis=1) for a, b in pairs]) \
        if len(pairs) else np.zeros((0, 2), np.int64)
    chunks = [words[i:i + cfg.lcu_max_pairs] for i in range(0, len(words), cfg.lcu_max_pairs)]
    extra = sum(3 * len(ch) + 4 for ch in chunks) + len(captured) + 1
    T2 = T + extra
    for name, arr in list(inp.items()):
        inp[name] = np.concatenate([arr, np.zeros((extra,) + arr.shape[1:])])
    for name in ("lcu_capture", "lcu_cap_clear", "lcu_pair_we", "lcu_pair_index", "lcu_pair_a",
                 "lcu_pair_b", "lcu_n_pairs", "lcu_start", "lcu_rd_row", "split"):
        inp[name] = np.zeros(T2)
    inp["lcu_cap_clear"][0] = 1
    inp["lcu_capture"][captured] = 1
    # Lane bits of the split results, set in the cycle the output stage computes them (one
    # cycle before they show).
    split_bits = np.zeros(T2, dtype=np.int64)
    hit = np.broadcast_to(split_v, out_cycle.shape)
    np.bitwise_or.at(split_bits, out_cycle[hit] - 1, np.left_shift(1, out_lane[hit]))
    inp["split"] = split_bits
    t = T
    for ch in chunks:
        for i, (a, b) in enumerate(ch):
            inp["lcu_pair_we"][t] = 1
            inp["lcu_pair_index"][t], inp["lcu_pair_a"][t], inp["lcu_pair_b"][t] = i, a, b
            t += 1
        inp["lcu_start"][t] = 1
        inp["lcu_n_pairs"][t] = len(ch)
        t += 2 * len(ch) + 4  # done shows 2n + 3 rows after start; one spare cycle
    read_cycle = np.arange(len(captured)) + t + 1
    inp["lcu_rd_row"][t:t + len(captured)] = np.arange(len(captured))
    return inp, T2, buffer_row, read_cycle


def assemble_corrected(program: Program, recorded: dict[str, np.ndarray]) -> np.ndarray:
    """The M×N result as read back from the output buffer after the LCU runs (``cfg.lcu``)."""
    rows = program.buffer_read_cycle[program.buffer_row]
    return recorded["lcu_rd_data"][rows, program.out_lane]


def _bias_slots(bias_v, tile, span: int, slot: np.ndarray, bias_error) -> np.ndarray:
    """WS bias entering the first K-tile, ``[span, n-tile width]``: every slot (sanity slots
    too) gets the bias of its neuron; ``bias_error = (m, n, delta)`` corrupts the word of
    neuron n for row m only, or (``m = None``) the stored word, hence every slot."""
    b = np.repeat(bias_v[None, tile.n0:tile.n1], span, axis=0)
    if bias_error is not None:
        m, col, delta = bias_error
        if tile.n0 <= col < tile.n1:
            b[slice(None) if m is None else slot[m], col - tile.n0] += delta
    return b


def _temporal_expected(exp: np.ndarray, out0: int, slot: np.ndarray, batch: int, bias,
                       sanity_lane: bool) -> None:
    """Program the temporal checker's expected lane sums for one pass.

    Batch j's sanity vector takes the slot after its last data vector, ``slot + 1``; it shows
    at the output ports in cycle ``out0 + slot + 1`` and is checked in the cycle before,
    when every lane expects ``(n_j + 1)·bias`` (n_j data
    vectors and the sanity vector each carry the bias once; the sanity lane's bias is the
    negated sum).  The value is held from the previous batch's check to this one's.
    """
    nc = len(bias)
    n_vec = len(slot)
    start = out0 - 1
    for j in range(0, n_vec, batch):
        n_j = min(batch, n_vec - j)
        close = out0 + slot[j + n_j - 1]  # checked one cycle before it shows: slot + 1 − 1
        exp[start:close + 1, :nc] = (n_j + 1) * np.asarray(bias)
        if sanity_lane:
            exp[start:close + 1, -1] = -(n_j + 1) * int(np.sum(bias))
        start = close + 1


def _prepend_bypass_map(cfg, inputs, loopback, out_cycle, T, bypass_map):
    """R cycles writing the bypass map (row r in cycle r) in front of the program."""
    R, C = cfg.rows, cfg.cols
    bmap = np.zeros((R, C), dtype=bool) if bypass_map is None else np.asarray(bypass_map, bool)
    if bmap.shape != (R, C):
        raise ValueError(f"bypass map must be {R}×{C}, not {bmap.shape}")
    pre = R
    out = {}
    for name, arr in inputs.items():
        pad = np.zeros((pre,) + arr.shape[1:], dtype=np.int64)
        if name in ("relu", "shift") or name.startswith(("fault_", "afd_", "median_",
                                                         "checksum_", "temporal_")):
            pad[:] = arr[0]  # static controls hold their value from the first cycle
        out[name] = np.concatenate([pad, arr])
    weights = 1 << np.arange(C)
    out["bypass_we"] = np.concatenate([np.ones(pre, np.int64), np.zeros(T, np.int64)])
    out["bypass_row"] = np.concatenate([np.arange(pre), np.zeros(T, np.int64)])
    out["bypass_wdata"] = np.concatenate([bmap.astype(np.int64) @ weights,
                                          np.zeros(T, np.int64)])
    shifted = {port: (src_port, np.concatenate([np.full(pre, -1), np.where(src >= 0, src + pre,
                                                                             -1)]))
               for port, (src_port, src) in loopback.items()}
    return out, shifted, np.where(out_cycle >= 0, out_cycle + pre, -1), T + pre


def assemble(program: Program, recorded: dict[str, np.ndarray], port: str = "acc_out"):
    """Gather the M×N result from recorded output ports (``acc_out`` or ``q_out``)."""
    rec = recorded[port]
    return rec[program.out_cycle, program.out_lane]
