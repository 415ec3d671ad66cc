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

from .array import latency, pass_gap
from .faults import Fault
from .mapping import tiles

__all__ = ["Program", "build_program", "assemble", "FAULT_PORTS"]

FAULT_PORTS = ("fault_enable", "fault_row", "fault_col", "fault_reg", "fault_bit",
               "fault_mode", "fault_cycle")


@dataclass
class Program:
    """Stimulus and bookkeeping for one product.

    ``inputs[port]`` is ``[T]`` or ``[T, n]``; ``loopback[port] = (source_port, src)`` means
    that in cycle t with ``src[t] >= 0`` the port takes the value the source output port
    showed in cycle ``src[t]``.  ``out_cycle[m, n]`` / ``out_lane[m, n]`` locate element
    ``C[m, n]`` in the recorded outputs.
    """

    inputs: dict[str, np.ndarray]
    loopback: dict[str, tuple[str, np.ndarray]]
    out_cycle: np.ndarray
    out_lane: np.ndarray
    cycles: int
    outputs: dict[str, tuple[int, bool]] = field(default_factory=dict)


def build_program(cfg, A, B, *, bias=None, relu: bool = False, shift: int = 0,
                  fault: Fault | None = None, bypass_map=None, afd=None,
                  median_enable: bool = True) -> Program:
    """The driver's program for ``A`` (M×K activations) @ ``B`` (K×N weights).

    ``bypass_map`` (R×C bool, with ``cfg.bypass``) is written first, one row per cycle;
    ``afd`` (with ``cfg.afd``) is a dict of ``shift``, ``gates``, ``mode``, ``enable``
    (default: enabled, one gate, γ = 2, drop); ``median_enable`` switches the median filter.
    """
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    M, K = A.shape
    N = B.shape[1]
    R, C = cfg.rows, cfg.cols
    bias_v = np.zeros(N, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    L = latency(cfg)
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
    else:
        ws = cfg.dataflow == "ws"
        stream = M if ws else N
        gap = pass_gap(cfg, stream)
        T = (len(tl) - 1) * (R + stream + gap) + R + stream + L
        inp = {"load": np.zeros(T), "load_data": np.zeros((T, C)), "in_valid": np.zeros(T),
               "in_data": np.zeros((T, R)), "psum_in": np.zeros((T, C))}
        checksum = getattr(cfg, "checksum", "none") == "spatial"
        if checksum:
            inp.update({"sanity_load_data": np.zeros(T), "sanity_psum_in": np.zeros(T),
                        "checksum_threshold": np.zeros(T), "checksum_clear": np.zeros(T)})
        bias_t = np.zeros((T, C))
        src = np.full(T, -1, dtype=np.int64)
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
            inp["in_valid"][s:s + stream] = 1
            if ws:
                inp["in_data"][s:s + stream, :kr] = A[:, tile.k0:tile.k1]
            else:
                inp["in_data"][s:s + stream, :kr] = B[tile.k0:tile.k1, :].T
            if not tile.first_k:
                src[s:s + stream] = prev_out + np.arange(stream)
            elif not ws:
                inp["psum_in"][s:s + stream, :] = bias_v[:, None]  # IS: bias of neuron n
            out0 = s + L
            if tile.last_k:
                if ws:
                    nc = tile.n1 - tile.n0
                    bias_t[out0 - 1:out0 - 1 + stream, :nc] = bias_v[tile.n0:tile.n1]
                    out_cycle[:, tile.n0:tile.n1] = (out0 + np.arange(M))[:, None]
                    out_lane[:, tile.n0:tile.n1] = np.arange(nc)[None, :]
                else:
                    mr = tile.m1 - tile.m0
                    out_cycle[tile.m0:tile.m1, :] = (out0 + np.arange(N))[None, :]
                    out_lane[tile.m0:tile.m1, :] = np.arange(mr)[:, None]
            prev_out = out0
            t = s + stream + gap
        loopback = {"psum_in": ("acc_out", src)}
        if checksum:
            loopback["sanity_psum_in"] = ("sanity_acc_out", src)

    if cfg.output_stage:
        inp["bias"] = bias_t
        inp["relu"] = np.full(T, int(bool(relu)))
        inp["shift"] = np.full(T, int(shift))
    if cfg.fault_hooks:
        ports = fault.ports() if fault is not None else {}
        for name in FAULT_PORTS:
            inp[name] = np.full(T, ports.get(name, 0))
    if getattr(cfg, "afd", False):
        ctl = {"shift": 1, "gates": 1, "mode": 0, "enable": 1, **(afd or {})}
        for name in ("shift", "gates", "mode", "enable"):
            inp[f"afd_{name}"] = np.full(T, int(ctl[name]))
    if getattr(cfg, "median", 0):
        inp["median_enable"] = np.full(T, int(bool(median_enable)))
    inputs = {k: np.asarray(v, dtype=np.int64) for k, v in inp.items()}
    outputs = {"out_valid": (0, False), "acc_out": (C, True)}
    if cfg.output_stage:
        outputs["q_out"] = (C, True)
    if getattr(cfg, "checksum", "none") == "spatial":
        outputs.update({"sanity_acc_out": (0, True), "checksum_error": (0, False),
                        "checksum_alarm": (0, False), "checksum_first": (0, False),
                        "checksum_syndrome": (0, True)})
    if getattr(cfg, "bypass", False):
        inputs, loopback, out_cycle, T = _prepend_bypass_map(cfg, inputs, loopback, out_cycle,
                                                              T, bypass_map)
        outputs["bypass_rdata"] = (0, False)
    return Program(inputs=inputs, loopback=loopback, out_cycle=out_cycle, out_lane=out_lane,
                   cycles=T, outputs=outputs)


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
                                                         "checksum_")):
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
