"""The driver's program: cycle-by-cycle port values that compute ``A @ B`` on the accelerator.

One :class:`Program` drives both the RTL (through :mod:`tb.player`) and the golden
:class:`golden.accelerator.AcceleratorModel`, so that the two see exactly the same stimulus, cycle
numbers included (transient faults are placed by cycle).  Tiles follow :mod:`golden.mapping`.

WS / IS pass (one tile of the stationary operand):
    R cycles of ``load`` (row R−1 of the tile first), then one streamed vector per cycle with
    ``in_valid`` (WS: the M rows of A; IS: the N columns of B).  Passes start every
    :func:`golden.array.pass_period` cycles (:func:`golden.array.pass_starts`).  Double-buffered
    (the default), a tile loads into the shadow registers during the R cycles before its pass's
    first vector, i.e. while the previous pass still streams, column c's data ``c`` cycles after
    column 0's, and ``swap`` rides with the first vector; single-buffered, it loads while the
    array is idle (:func:`golden.array.pass_gap`).  A K-tile after the first
    takes its ``psum_in`` from the previous pass's ``acc_out``: a *loopback* that the player
    and the model resolve at run time (the value is whatever the hardware produced, faults
    included).  WS adds the bias in the output stage; IS folds it into the first ``psum_in``
    (its output lanes are batch rows, not neurons).  Per-column output-stage values (the
    bias, the fixed-point multiplier's ``M0`` and shift) are driven lane by lane in the cycle
    the output stage's stage reads them, from where each result shows (``out_cycle``,
    ``out_lane``), so they follow the column tiles on every dataflow.
OS tile:
    max(K, R) steps back to back with no idle cycle between tiles (K < R is padded with zero
    steps so that the drain chain is free again, see :class:`rtl_gen.pe.OutputStationaryPE`),
    ``in_last`` on the final step; results leave R + C + 2 cycles later, row R−1 first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ftaccel import units as unit_registry
from ftaccel.enums import Dataflow
from ftaccel.errors import ConfigError, is_int

from . import units as golden_units
from .array import os_first_step, os_tile_steps, pass_starts, temporal_stream_len
from .checksum import bias_delta
from .faults import Fault
from .mapping import tiles
from .output_stage import MAX_RIGHT_SHIFT, MAX_SHIFT, Requant

__all__ = ["Program", "build_program", "assemble", "assemble_corrected", "program_result",
           "check_requant"]


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
    #: The read-back port of the output buffer: the LCU's or the TMR voter's.
    buffer_port: str = "lcu__rd_data"


def build_program(cfg, A, B, *, bias=None, relu: bool = False, shift: int = 0,
                  fault: Fault | None = None, requant: Requant | None = None,
                  **units) -> Program:
    """The driver's program for ``A`` (M×K activations) @ ``B`` (K×N weights).

    The product's passes are laid out per dataflow (:func:`_stationary_passes`,
    :func:`_os_tiles`); then every built unit adds its ports (its golden module's
    ``stimulus``, :mod:`golden.units`), the output stage its controls, and a unit that writes
    in front of the product (the bypass map) its ``prologue``.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The accelerator the program drives.
    A, B : int arrays
        M×K activations and K×N weights.
    bias : int array, optional
        N biases (default zero); where they enter: ``cfg.bias_in_psum``.
    relu, shift : bool, int
        Output-stage controls (with ``cfg.output_stage``).
    fault : Fault, optional
        Armed through the fault hooks' controls (with ``cfg.fault_hooks``).
    requant : Requant, optional
        The output stage's path in place of ``relu`` and ``shift``
        (:class:`golden.output_stage.Requant`): power-of-two, or fixed-point (needs
        ``cfg.requant = "multiplier"``), whose per-column ``multiplier`` and ``shift`` follow
        the product's column tiles as the bias does.  With the multiplier built and no fixed
        ``requant``, the ``requant`` ports select the power-of-two path.
    **units
        The units' run-time options as keywords (:mod:`ftaccel.units`: ``bypass_map``,
        ``afd``, ``median_enable``, ``temporal_batch``, ``checksum_threshold``,
        ``temporal_threshold``, ``bias_error`` / ``bias_flip``, ``split``, ``lcu_pairs``,
        ``tmr_triples``, ``tmr_voter``), checked once by
        :func:`ftaccel.units.check_options` against ``cfg`` and the product's shape; a unit
        without options given runs with its defaults (AFD enabled, one gate, γ = 2, drop;
        the median on; the largest temporal batch; exact checks; nothing bypassed,
        split, corrected or voted).  With the LCU or the TMR voter the whole output buffer
        is read back after the product (:func:`assemble_corrected`).

    Returns
    -------
    Program
        Stimulus, loopbacks, recorded output ports and where each result shows.

    Raises
    ------
    ConfigError
        An option the configuration cannot honour (a :class:`ValueError`).
    """
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    given = unit_registry.options_from_keywords(units)
    unit_registry.check_options(cfg, given, m=A.shape[0], n=B.shape[1])
    opts = golden_units.options(cfg, units)
    bias_v = (np.zeros(B.shape[1], dtype=np.int64) if bias is None
              else np.asarray(bias, dtype=np.int64))
    if cfg.dataflow is Dataflow.OS:
        d = _os_tiles(cfg, A, B, bias_v, opts)
    else:
        d = _stationary_passes(cfg, A, B, bias_v, opts)
    d.fault = fault
    readback = golden_units.stimulus(cfg, d, opts)
    if requant is not None:
        if relu or shift:
            raise ValueError("give either relu/shift or requant, not both")
        check_requant(cfg, requant, B.shape[1])
        if not requant.fixed:
            relu, shift = bool(requant.relu), int(requant.shift)
    if cfg.output_stage:
        _output_stage_stimulus(d, relu, shift)
    if cfg.requant == "multiplier":
        _requant_stimulus(cfg, d, B.shape[1], requant)
    pre = golden_units.prologue(cfg, d, opts)
    outputs = {"out_valid": (0, False), "acc_out": (cfg.cols, True)}
    if cfg.output_stage:
        outputs["q_out"] = (cfg.cols, True)
    program = Program(inputs={k: np.asarray(v, dtype=np.int64) for k, v in d.inputs.items()},
                      loopback=d.loopback, out_cycle=d.out_cycle, out_lane=d.out_lane,
                      cycles=d.cycles, outputs={**outputs, **golden_units.output_ports(cfg)},
                      sanity_cycle=d.sanity_cycle.astype(np.int64))
    if readback is not None:
        program.buffer_row = readback.buffer_row
        program.buffer_read_cycle = readback.read_cycle + pre
        program.buffer_port = readback.port
    return program


@dataclass
class _Draft:
    """A program under construction: per-cycle port values and where the results show.

    ``bias`` is the output stage's per-cycle bias (``[T, C]``), kept apart until the output
    stage's ports are added; ``hold`` names the ports whose value is constant for the whole
    program (they keep it while the bypass map is written in front).
    """

    inputs: dict[str, np.ndarray]
    cycles: int
    out_cycle: np.ndarray
    out_lane: np.ndarray
    bias: np.ndarray
    loopback: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    sanity_cycle: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hold: set[str] = field(default_factory=set)
    #: The product's fault, armed by the fault hooks' stimulus.
    fault: Fault | None = None

    @classmethod
    def empty(cls, cycles: int, M: int, N: int, lanes: int) -> _Draft:
        return cls(inputs={}, cycles=cycles, out_cycle=np.full((M, N), -1, dtype=np.int64),
                   out_lane=np.full((M, N), -1, dtype=np.int64),
                   bias=np.zeros((cycles, lanes)))

    def constant(self, port: str, value: int) -> None:
        """Add ``port`` holding ``value`` in every cycle."""
        self.inputs[port] = np.full(self.cycles, int(value))
        self.hold.add(port)

    def extend(self, extra: int) -> None:
        """Append ``extra`` idle cycles after the product.

        Ports zero, no loopback; the constant controls (:attr:`hold`) keep their value.
        """
        for name, arr in self.inputs.items():
            pad = np.zeros((extra,) + arr.shape[1:])
            if name in self.hold:
                pad[:] = arr[-1]
            self.inputs[name] = np.concatenate([arr, pad])
        self.bias = np.concatenate([self.bias, np.zeros((extra,) + self.bias.shape[1:])])
        self.loopback = {port: (source, np.concatenate([src, np.full(extra, -1)]))
                         for port, (source, src) in self.loopback.items()}
        self.cycles += extra


def _os_tiles(cfg, A: np.ndarray, B: np.ndarray, bias_v: np.ndarray, opts) -> _Draft:
    """OS: every output tile ``Kp`` steps back to back, ``in_last`` on its final step.

    ``Kp`` = :func:`golden.array.os_tile_steps`.  Its R result rows leave from ``L`` cycles
    later, one per cycle, row R−1 first (after the sanity row, with the temporal checksum).
    With windowed filters the activations (and ``in_first``, on each tile's first step) lead
    by ``cfg.filter_lead`` cycles.  The output stage takes each drained row's bias in the
    cycle it reads the row; the checkers add the same bias (and the sanity column's, the
    negated sum), so the sanity row and a bias error are driven there too.
    """
    M, K = A.shape
    N = B.shape[1]
    R, C, L = cfg.rows, cfg.cols, cfg.latency
    NR, ol = cfg.array_rows, cfg.output_latency
    tl = tiles(cfg.dataflow, R, C, M, K, N)
    Kp, t0, lead = os_tile_steps(cfg, K), os_first_step(cfg), cfg.filter_lead
    bias_error = bias_delta(cfg, opts.get("checksum"), bias_v)
    d = _Draft.empty(t0 + len(tl) * Kp + L + R - 1, M, N, C)
    T = d.cycles
    inp = d.inputs
    inp.update({"act_in": np.zeros((T, R)), "weight_in": np.zeros((T, C)),
                "in_last": np.zeros(T)})
    if lead:
        inp["in_first"] = np.zeros(T)
    if cfg.spatial:
        inp.update({"sanity_weight_in": np.zeros(T), "sanity_bias": np.zeros(T)})
    _checksum_ports(cfg, d, None)
    t = t0
    close = -1  # the cycle the previous tile's batch was checked
    for tile in tl:
        mr, nc = tile.m1 - tile.m0, tile.n1 - tile.n0
        inp["act_in"][t - lead:t - lead + K, :mr] = A[tile.m0:tile.m1, :].T
        if lead:
            inp["in_first"][t - lead] = 1
        inp["weight_in"][t:t + K, :nc] = B[:, tile.n0:tile.n1]
        t_last = t + Kp - 1
        inp["in_last"][t_last] = 1
        first_out = t_last + L
        b = bias_v[tile.n0:tile.n1]
        if cfg.spatial:  # the sanity neuron (Ozen 2023 Eq. 6.5): negated weight and bias sums
            inp["sanity_weight_in"][t:t + K] = -B[:, tile.n0:tile.n1].sum(axis=1)
        # drained rows: row R-1-i shows at first_out + i; the sanity row one cycle before
        drained = [(R - 1 - i, first_out + i) for i in range(R)]
        if NR > R:
            drained.append((None, first_out - 1))
        for r, shows in drained:
            at = shows - ol  # the cycle the output stage (and the checkers) read the row
            d.bias[at, :nc] = b
            if cfg.spatial:
                inp["sanity_bias"][at] = -b.sum()
            if bias_error is not None:
                m, col, delta = bias_error
                if tile.n0 <= col < tile.n1 and (m is None or (r is not None
                                                                and m == tile.m0 + r)):
                    d.bias[at, col - tile.n0] += delta
            if r is not None and r < mr:
                d.out_cycle[tile.m0 + r, tile.n0:tile.n1] = shows
                d.out_lane[tile.m0 + r, tile.n0:tile.n1] = np.arange(nc)
        if cfg.temporal:
            # every drained row carries the bias: the lanes sum to NR·bias over the tile
            at = first_out + R - 1 - ol  # row 0, the tile's last, closes the batch
            exp = d.inputs["temporal__expected"]
            exp[close + 1:at + 1, :nc] = NR * b
            if cfg.spatial:
                exp[close + 1:at + 1, -1] = -NR * int(b.sum())
            close = at
        t += Kp
    return d


def _stationary_passes(cfg, A: np.ndarray, B: np.ndarray, bias_v: np.ndarray, opts) -> _Draft:
    """WS / IS.

    Per stationary tile, R cycles of ``load`` and the streamed vectors (with the temporal checksum,
    one idle slot after every batch), passes starting at :func:`golden.array.pass_starts`. A K-tile
    after the first takes its ``psum_in`` from the previous pass's ``acc_out``.  The options the
    layout depends on: the bypass map (the sanity column leaves bypassed weights out), the
    temporal batch and a bias error.
    """
    bypass_map = golden_units.bypass_map(opts)
    bias_error = bias_delta(cfg, opts.get("checksum"), bias_v)
    ws = cfg.dataflow is Dataflow.WS
    M, K = A.shape
    N = B.shape[1]
    R, C, L = cfg.rows, cfg.cols, cfg.latency
    tl = tiles(cfg.dataflow, R, C, M, K, N)
    stream = M if ws else N
    # Slot of each streamed vector in a pass: with the temporal checksum one idle cycle
    # follows every batch of N vectors (the generator inserts the sanity vector there).
    nb = (golden_units.temporal_batch(opts) or cfg.temporal_batch_max) if cfg.temporal \
        else stream
    slot = np.arange(stream) + (np.arange(stream) // nb if cfg.temporal else 0)
    span = temporal_stream_len(stream, nb) if cfg.temporal else stream
    starts = pass_starts(cfg, tl, span)
    d = _Draft.empty(int(starts[-1]) + span + L, M, N, C)
    T = d.cycles
    d.inputs.update({"load": np.zeros(T), "load_data": np.zeros((T, C)),
                     "in_valid": np.zeros(T), "in_data": np.zeros((T, R)),
                     "psum_in": np.zeros((T, C))})
    if cfg.double_buffered:
        d.inputs["swap"] = np.zeros(T)
    _checksum_ports(cfg, d, nb)
    src = np.full(T, -1, dtype=np.int64)
    sanity_rows: list = []
    prev_out = -1
    for tile, s in zip(tl, starts.tolist(), strict=True):  # s: first streamed slot of the pass
        # (IS with windowed filters: the load leads the array by cfg.filter_lead cycles)
        _load_tile(cfg, d, tile, s - R - cfg.filter_lead, A, B, bypass_map)
        if cfg.double_buffered:
            d.inputs["swap"][s] = 1  # rides with the first vector: switch to this tile
        _stream_tile(cfg, d, tile, s, slot, A, B)
        lanes = slice(tile.n0, tile.n1) if ws else slice(tile.m0, tile.m1)  # IS: batch rows
        nc = lanes.stop - lanes.start
        if not tile.first_k:
            # Every slot, sanity ones included, chains its partial sum to the next pass.
            src[s:s + span] = prev_out + np.arange(span)
        elif cfg.bias_in_psum:
            _bias_into_psum(cfg, d, tile, s, span, slot, nb, bias_v, bias_error)
        out0 = s + L
        if cfg.temporal:
            # The checker sees the vector when the output stage takes it; its flags are
            # delayed to show with the results.
            _temporal_expected(d.inputs["temporal__expected"], out0 - cfg.requant_stages,
                               slot, nb,
                               bias_v[lanes] if cfg.bias_in_psum and ws else np.zeros(nc),
                               cfg.spatial)
            if tile.last_k:
                closing = slot[np.minimum(np.arange(nb - 1, stream + nb - 1, nb), stream - 1)]
                sanity_rows.append(out0 + closing + 1)
        if tile.last_k:
            _place_results(cfg, d, lanes, out0 + slot, bias_v)
        prev_out = out0
    d.loopback = {"psum_in": ("acc_out", src)}
    if cfg.spatial:
        d.loopback["sanity_psum_in"] = ("sanity_acc_out", src)
    if sanity_rows:
        d.sanity_cycle = np.concatenate(sanity_rows)
    return d


def _load_tile(cfg, d: _Draft, tile, t: int, A, B, bypass_map) -> None:
    """R cycles of ``load`` from cycle ``t``.

    The stationary tile, last PE row first (the chain shifts down), and the sanity column's weights
    with the spatial checksum.
    """
    R, C = cfg.rows, cfg.cols
    kr = tile.k1 - tile.k0
    stat = np.zeros((R, C))  # indexed [PE row, PE column]
    if cfg.dataflow is Dataflow.WS:
        stat[:kr, :tile.n1 - tile.n0] = B[tile.k0:tile.k1, tile.n0:tile.n1]
    else:
        stat[:kr, :tile.m1 - tile.m0] = A[tile.m0:tile.m1, tile.k0:tile.k1].T
    d.inputs["load"][t:t + R] = 1
    # Double-buffered, column c shifts c cycles after column 0 (rtl_gen.array).
    skew = cfg.double_buffered
    for c in range(C):
        at = t + (c if skew else 0)
        d.inputs["load_data"][at:at + R, c] = stat[::-1, c]
    if cfg.spatial and cfg.dataflow is Dataflow.WS:
        # Sanity neuron of this weight tile (Ozen 2023 Eq. 6.5): negated row sums, so every output
        # vector of the C + 1 columns sums to zero.  Weights of bypassed PEs are left out: the
        # array prunes them, and the invariant must hold for what the array computes.  (IS:
        # the sanity inputs are made in hardware as the tile loads, rtl_gen.checksum.)
        kept = stat if bypass_map is None else np.where(bypass_map, 0, stat)
        at = t + (C if skew else 0)
        d.inputs["sanity_load_data"][at:at + R] = -kept.sum(axis=1)[::-1]


def _stream_tile(cfg, d: _Draft, tile, s: int, slot: np.ndarray, A, B) -> None:
    """One streamed vector per slot from cycle ``s`` (WS: rows of A; IS: columns of B)."""
    kr = tile.k1 - tile.k0
    d.inputs["in_valid"][s + slot] = 1
    if cfg.dataflow is Dataflow.WS:
        d.inputs["in_data"][s + slot, :kr] = A[:, tile.k0:tile.k1]
    else:
        d.inputs["in_data"][s + slot, :kr] = B[tile.k0:tile.k1, :].T
    if cfg.temporal:
        d.inputs["temporal__last"][s + slot[-1]] = 1  # closes the pass's short last batch


def _bias_into_psum(cfg, d: _Draft, tile, s: int, span: int, slot: np.ndarray, nb: int,
                    bias_v: np.ndarray, bias_error) -> None:
    """The bias enters the first K-tile's partial sums, sanity vectors included.

    WS: each lane is a neuron; every slot, a sanity vector's too, gets the lane's bias (hence
    the temporal check's (n + 1)·bias).  IS: each slot is a neuron n, whose bias enters every
    lane (batch row); a temporal sanity vector is the sanity neuron of its batch (the negated
    sum of the batch's weight columns) and gets the negated sum of their biases (Ozen 2023 Eq. 6.5),
    so every lane's batch sums to zero.  The sanity column's partial sum is the negated sum of
    the lanes' (Eq. 6.5 / 6.7 alike); it keeps the true biases when a bias word is in error.
    """
    if cfg.dataflow is Dataflow.WS:
        nc = tile.n1 - tile.n0
        d.inputs["psum_in"][s:s + span, :nc] = _bias_slots(bias_v, tile, span, slot, bias_error)
        if cfg.spatial:  # the sanity neuron's bias: the negated sum (Eq. 6.5)
            d.inputs["sanity_psum_in"][s:s + span] = -bias_v[tile.n0:tile.n1].sum()
        return
    C = cfg.cols
    lane = np.zeros(span, dtype=np.int64)  # IS: the value every lane takes in each slot
    lane[slot] = bias_v
    if cfg.temporal:
        sanity = np.ones(span, dtype=bool)
        sanity[slot] = False
        sums = np.add.reduceat(bias_v, np.arange(0, len(bias_v), nb)) if len(bias_v) else []
        lane[sanity] = -np.asarray(sums, dtype=np.int64)
    vals = np.repeat(lane[:, None], C, axis=1)
    if bias_error is not None:
        m, col, delta = bias_error
        if m is None:  # the stored word: every lane (batch row) of neuron col's slot
            vals[slot[col], :] += delta
        elif tile.m0 <= m < tile.m1:
            vals[slot[col], m - tile.m0] += delta
    d.inputs["psum_in"][s:s + span, :] = vals
    if cfg.spatial:
        d.inputs["sanity_psum_in"][s:s + span] = -C * lane


def _place_results(cfg, d: _Draft, lanes: slice, cycles: np.ndarray,
                   bias_v: np.ndarray) -> None:
    """Record where the final K-tile's results show.

    WS without a checksum also gives the output stage their bias in the cycle it adds it
    (:attr:`ftaccel.config.AcceleratorConfig.output_latency` cycles before they show).
    """
    nc = lanes.stop - lanes.start
    if cfg.dataflow is Dataflow.WS:
        if not cfg.bias_in_psum:
            d.bias[cycles - cfg.output_latency, :nc] = bias_v[lanes]
        d.out_cycle[:, lanes] = cycles[:, None]
        d.out_lane[:, lanes] = np.arange(nc)[None, :]
    else:
        d.out_cycle[lanes, :] = cycles[None, :]
        d.out_lane[lanes, :] = np.arange(nc)[:, None]


# -- the ports the passes fill in, and the output stage -------------------------------------

def _checksum_ports(cfg, d: _Draft, batch: int | None) -> None:
    """The Sanity-Check ports, zero until the passes fill them in.

    The temporal batch size (WS / IS; ``batch`` None on OS) is held for the whole program (the
    thresholds are the unit's stimulus, :func:`golden.checksum.stimulus`).
    """
    T = d.cycles
    if cfg.spatial and cfg.dataflow is not Dataflow.OS:
        d.inputs["sanity_psum_in"] = np.zeros(T)
        if cfg.dataflow is Dataflow.WS:  # (IS makes its sanity inputs in hardware)
            d.inputs["sanity_load_data"] = np.zeros(T)
    if cfg.checksum != "none":
        d.inputs["checksum__clear"] = np.zeros(T)
    if cfg.temporal:
        if batch is not None:
            d.constant("temporal__batch", batch)
            d.inputs["temporal__last"] = np.zeros(T)
        d.inputs["temporal__expected"] = np.zeros((T, cfg.array_cols))


def _output_stage_stimulus(d: _Draft, relu: bool, shift: int) -> None:
    d.inputs["bias"] = d.bias
    d.constant("relu", int(bool(relu)))
    d.constant("shift", int(shift))


def check_requant(cfg, requant: Requant, n_out: int) -> Requant:
    """Check that ``requant`` can run on ``cfg`` for ``n_out`` output columns; return it.

    The one validation of a layer's output-stage parameters for the hardware (the API, the
    CLI's ``matmul`` and :func:`build_program` all call it).  Raises :class:`ConfigError`
    naming the field: a fixed-point path on a configuration without the multiplier, ``M0``
    outside ``0 … 2**31 − 1``, ``n`` outside ``0 … 62``, a per-column array of the wrong
    length, a zero point or clamp bound outside the ``a_width``-bit range, ``lo > hi``, or a
    power-of-two shift outside ``0 … 63``.
    """
    if not isinstance(requant, Requant):
        raise ConfigError("requant", requant, "a golden.output_stage.Requant")
    if not cfg.output_stage:
        raise ConfigError("output_stage", cfg.output_stage, "true to requantise")
    if not requant.fixed:
        if not is_int(requant.shift, numpy=True) or not 0 <= requant.shift <= MAX_SHIFT:
            raise ConfigError("requant shift", _shown(requant.shift),
                              f"one integer 0 … {MAX_SHIFT} on the power-of-two path")
        return requant
    if cfg.requant != "multiplier":
        raise ConfigError("requant", cfg.requant, "'multiplier' for a fixed-point multiplier "
                          "(a configuration field: the multiplier is hardware)")
    for name, lo, hi in (("multiplier", 0, (1 << 31) - 1), ("shift", 0, MAX_RIGHT_SHIFT)):
        v = np.asarray(getattr(requant, name))
        if v.dtype.kind not in "iu" or v.ndim > 1 or (v.ndim == 1 and v.shape != (n_out,)):
            raise ConfigError(f"requant {name}", _shown(v),
                              f"one integer or {n_out} (one per output column)")
        if v.size and (v.min() < lo or v.max() > hi):
            bad = int(v.min() if v.min() < lo else v.max())
            raise ConfigError(f"requant {name}", bad, f"integers {lo} … {hi}")
    lo_q, hi_q = -(1 << (cfg.a_width - 1)), (1 << (cfg.a_width - 1)) - 1
    lo, hi = requant.bounds(cfg.a_width)
    for name, v in (("zero_point", requant.zero_point), ("lo", lo), ("hi", hi)):
        if not is_int(v, numpy=True) or not lo_q <= v <= hi_q:
            raise ConfigError(f"requant {name}", _shown(v),
                              f"an integer {lo_q} … {hi_q} (a_width = {cfg.a_width})")
    if lo > hi:
        raise ConfigError("requant clamp", (int(lo), int(hi)), "lo ≤ hi")
    return requant


def _shown(v):
    """A value for an error message: a scalar as itself, an array by its shape and type."""
    a = np.asarray(v)
    if a.ndim == 0:
        return a.item() if a.dtype.kind in "iufb" else v
    return f"{a.size} values of {a.dtype}" if a.ndim == 1 else f"{a.dtype} array {a.shape}"


def _requant_stimulus(cfg, d: _Draft, N: int, requant: Requant | None) -> None:
    """The fixed-point path's ports (``cfg.requant = "multiplier"``).

    Each lane's ``multiplier`` and ``shift`` are those of the output column its result belongs
    to, driven in the cycle their stage reads them (:mod:`rtl_gen.output_stage`: the product
    ``output_latency − 1`` cycles, the rounding ``output_latency − 2`` cycles before the result
    shows); ``fixed``, ``zero_point``, ``lo`` and ``hi`` are held for the whole program.
    """
    fixed = requant is not None and requant.fixed
    lo, hi = requant.bounds(cfg.a_width) if fixed else (0, 0)
    d.constant("requant__fixed", int(fixed))
    d.constant("requant__zero_point", int(requant.zero_point) if fixed else 0)
    d.constant("requant__lo", int(lo))
    d.constant("requant__hi", int(hi))
    T, C = d.cycles, cfg.cols
    for port, value, before in (("multiplier", requant.multiplier if fixed else 0,
                                 cfg.output_latency - 1),
                                ("shift", requant.shift if fixed else 0,
                                 cfg.output_latency - 2)):
        per_col = np.broadcast_to(np.asarray(value, dtype=np.int64), (N,))
        arr = np.zeros((T, C), dtype=np.int64)
        hit = d.out_cycle >= 0
        arr[d.out_cycle[hit] - before, d.out_lane[hit]] = np.broadcast_to(
            per_col[None, :], d.out_cycle.shape)[hit]
        d.inputs[f"requant__{port}"] = arr


def assemble_corrected(program: Program, recorded: dict[str, np.ndarray]) -> np.ndarray:
    """The M×N result as read back from the output buffer after the LCU or the TMR voter runs."""
    rows = program.buffer_read_cycle[program.buffer_row]
    return recorded[program.buffer_port][rows, program.out_lane]


def program_result(program: Program, recorded: dict[str, np.ndarray]) -> np.ndarray:
    """The requantised M×N result a program leaves.

    Read back from the output buffer when the program reads one back (after the LCU's
    correction or the TMR vote), else from ``q_out``.
    """
    if program.buffer_row is not None:
        return np.asarray(assemble_corrected(program, recorded), dtype=np.int64)
    return np.asarray(assemble(program, recorded, "q_out"), dtype=np.int64)


def _bias_slots(bias_v, tile, span: int, slot: np.ndarray, bias_error) -> np.ndarray:
    """WS bias entering the first K-tile, ``[span, n-tile width]``.

    Every slot (sanity slots too) gets the bias of its neuron; ``bias_error = (m, n, delta)``
    corrupts the word of neuron n for row m only, or (``m = None``) the stored word, hence every
    slot.
    """
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


def assemble(program: Program, recorded: dict[str, np.ndarray], port: str = "acc_out"):
    """Gather the M×N result from recorded output ports (``acc_out`` or ``q_out``)."""
    rec = recorded[port]
    return rec[program.out_cycle, program.out_lane]
