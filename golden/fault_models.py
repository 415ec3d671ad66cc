"""Network-level fault models and the fast fault model (README, Fault campaigns).

**The fast fault model.**  :func:`faulty_product` computes what the accelerator's array gives
for one layer's product ``A @ B`` with one fault in a PE register (:class:`Fault`: weight,
activation or partial-sum register, the MAC's product or sum; stuck-at-0/1 or a flip at a
cycle), in closed form per tile, vectorised over the batch (every streamed vector of a pass at
once), and the Sanity-Check alarms that fault raises.  It equals the cycle model
(:class:`golden.accelerator.AcceleratorModel`) bit for bit (``tests/test_fault_models.py``
holds the two against each other on a seeded sample of every site, mode, dataflow and unit),
because it follows the same registers through the same
schedule (:mod:`golden.schedule`):

* **WS / IS pass** (tile ``p``, array-side cycles: ``d`` input-unit stages, ``pre`` bypass-map
  cycles): its first vector streams in cycle ``s = pre + d + pass_starts[p]``
  (:func:`golden.array.pass_starts`) and its tile loads in the R cycles before (double-buffered:
  column c's shifts ``c`` cycles later); streamed slot ``j`` is in the moving register of PE
  (r, c) in cycle ``s + j + r + c + 1`` and its partial sum in PE (r, c)'s register one cycle
  later.  Hence:

  - *moving register* (WS ``act``, IS ``weight``) fault at (r, c): the sabotaged value is
    what PE (r, c) multiplies **and** what it passes right, so every column ``≥ c`` of row r
    sees it: for every slot (stuck-at) or the one slot in the register at the flip's cycle;
  - *the register the load chain runs through* (single-buffered: the stationary register, WS
    ``weight`` / IS ``act``; double-buffered: ``shadow``): loading shifts every value of the
    column through the PE, so a stuck-at corrupts the values of rows ``≥ r`` of that column;
    a flip during loading corrupts the one value passing through (destined for row
    ``R − i + r`` in the column's load cycle ``i``); a flip after loading is written back (the
    register holds it): single-buffered, every later slot of that pass multiplies with it;
    double-buffered, the swap (cycle ``s + r + c``) moves it into the stationary register for
    the whole pass, and a flip after the swap hits a stale copy and is harmless;
  - *double-buffered stationary register* (WS ``weight`` / IS ``act``, off the load chain): a
    stuck-at corrupts PE (r, c)'s value only; a flip from the cycle it first multiplies a pass's
    vector is held until the next pass's swap;
  - *partial-sum register*: ``wrap(sab(psum_in + Σ_{r'≤r} products) + Σ_{r'>r} products)``
    for the column, every slot or the one slot.

  K-tiles chain through ``psum_in`` (the loopback), so a corrupted partial sum of an early
  K-tile reaches the output; the spatial sanity column (WS) is one more stationary column,
  the temporal sanity vectors are more streamed slots, so faults reach them exactly as in the
  hardware, and the checks are evaluated per pass as the checkers do.
* **OS tile** ``i`` (tiles back to back, ``Kp = max(K, R)`` steps): step k is in PE (r, c) in
  cycle ``pre + i·Kp + k + r + c + 1``; activations move right, weights move down, the
  partial sum stays (a stuck-at acts on every step: a recurrence over k, vectorised over the
  tiles).

Other fault models, each with its own RNG stream so that a fault is reproducible alone:

* :data:`bit_errors` — Ozen 2023 Algorithm 6.1 (§6.3.1): the same function as
  :func:`golden.faults.inject_bit_errors`;
* :class:`TransientFault` — a flip-to-0 / flip-to-1 / bit flip for **one** cycle (the error
  instances of the HAS report's per-PE profiles); the cycle model accepts it like a :class:`Fault`;
* :func:`pe_profile` / :func:`profile_errors` / :func:`profile_product` — Shresthamali HAS
  §3.2.2–4.3: each PE's error rate ~ U(0, FR_max); per pass, the number of erroneous steps of a PE
  is Binomial(steps, rate); each error sabotages a random bit of that PE's partial sum in that step
  (flip-to-0, flip-to-1 or bit flip, the "partial products" of Shresthamali HAS §3.2.1).

**A drawn set of errors on the RTL.**  The RTL's fault hooks hold one fault at a time, but
the driver's program sets the hooks' inputs on every cycle.  Every error instance is a
one-cycle fault of one PE's partial-sum register (:func:`profile_faults` gives its cycle);
:func:`hook_program` writes them into a program, one per cycle: in an error's cycle ``t`` the
hooks hold ``enable = 1``, the PE, ``reg = psum``, the bit, ``cycle = t`` and the mode (a bit
flip is the hooks' flip at cycle ``t``; flip-to-0 / flip-to-1 are the hooks' stuck-at-0 /
stuck-at-1, enabled in that one cycle only), and ``enable = 0`` in every other cycle.
:func:`hooked_faults` reads the faults back from the program for the cycle model, so the fast
model, the cycle model and the RTL see the same errors (:class:`HookedErrorsEngine`; tested on
the RTL in ``tests/test_has.py``).  Two errors of different PEs can fall in the same cycle
(slot ``j`` of PE (r, c) is in its register in cycle ``s + j + r + c + 2``): the hooks cannot
hold both, so such draws are made under the constraint *one error per cycle*
(``profile_errors(..., one_per_cycle=True)``, :func:`one_per_cycle`): of the errors of one
cycle the first drawn is kept and the others dropped.  At the rates Shresthamali HAS uses (FR_max ≤
5e-3) this drops a small share; :func:`one_per_cycle` reports how many.

:class:`FastFaultEngine` is a :class:`golden.network.FunctionalEngine` that applies
``Product.fault`` (a :class:`Fault`) or ``Product.units["errors"]`` (profile errors) with
these functions, so :func:`golden.network.run` runs a whole faulty network with it, starting
at the faulty layer from recorded activations when the fault is in one layer.

**Only what a fault touches** (issue 24; campaigns): :func:`run_from` restarts a run at the
faulty layer from the recorded fault-free activations and, after a one-layer fault, runs the
later layers only on the images it changed; with stuck-at faults in every layer (WS without
checksums) each node runs only on the images whose inputs the faults changed, a faulty
product on the others from its cached fault-free accumulators plus what the fault changes.
With ``restrict`` (WS without checksums, :func:`restricted_applies`) the faulty product
computes only the output columns of the faulty PE's array column, the rest taken from the
fault-free accumulators (:func:`clean_acc`, cached per layer by the caller).  A one-cycle
fault is a change added to those accumulators in the rows it reaches (:func:`_flip_change`:
the accumulator wraps modulo 2^P), reading one lane or one row of the lowered input at a time,
and only those rows go through the output stage (:func:`_run_flip`); a stuck-at fault is
summed over every pass at once in BLAS products from the float32-lowered activations (a
stuck partial sum: one batched product for every K-tile and a recurrence on the P-bit
patterns).  All equal the full computation (``tests/test_campaign_speed.py``,
``tests/test_float_path.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ftaccel.enums import Dataflow, FaultMode, FaultRegister

from . import units as golden_units
from .array import cycle_count, os_first_step, os_tile_steps, pass_starts, temporal_stream_len
from .bits import wrap
from .faults import MODES, REGISTERS, Fault, inject_bit_errors
from .intmath import F32_EXACT, F64_EXACT, blas_threads, exact_matmul, float_matmul
from .mapping import tiles
from .network import (
    Conv2D,
    Dense,
    FunctionalEngine,
    Inference,
    LayerStats,
    LoweredConv,
    ModelError,
    Product,
    ProductResult,
    product_stats,
    run,
    run_node,
    state_at,
)
from .schedule import build_program, program_result
from .units import units_matrix

__all__ = ["sabotage_array", "TransientFault", "faulty_product", "FastFaultEngine",
           "bit_errors", "pe_profile", "profile_errors", "ProfileErrors",
           "profile_product", "PROFILE_MODES", "profile_faults", "one_per_cycle",
           "hook_program", "hooked_faults", "HookedErrorsEngine", "profile_acc",
           "restricted_applies", "clean_acc", "run_from"]

#: Error kinds of the HAS report's fault profiles (Table 1): flip-to-0, flip-to-1, bit flip.
PROFILE_MODES = {"flip-to-0": FaultMode.SA0, "flip-to-1": FaultMode.SA1,
                 "bitflip": FaultMode.FLIP}


def sabotage_array(values, width: int, bit: int, mode: str) -> np.ndarray:
    """:func:`golden.faults.sabotage` over an array.

    ``bit`` of every ``width``-bit signed value forced to 0 / 1 or inverted (a bit at or beyond
    ``width`` changes nothing).
    """
    v = np.asarray(values, dtype=np.int64)
    full = np.int64((1 << width) - 1)
    raw = v & full
    b = np.asarray(bit, dtype=np.int64)  # a scalar or one bit per value
    mask = np.where(b < width, np.left_shift(np.int64(1), np.clip(b, 0, 62)), 0) & full
    if mode == FaultMode.SA0:
        raw = raw & ~mask
    elif mode == FaultMode.SA1:
        raw = raw | mask
    elif mode == FaultMode.FLIP:
        raw = raw ^ mask
    else:
        raise ValueError(f"fault mode must be one of {MODES}, not {mode!r}")
    raw = raw & full
    return np.where(raw >> np.int64(width - 1) & 1, raw - (np.int64(1) << np.int64(width)), raw)


@dataclass(frozen=True)
class TransientFault(Fault):
    """A fault of ``mode`` (sa0 = flip-to-0, sa1 = flip-to-1, flip) active in one cycle only.

    The RTL's fault hooks hold a stuck-at for ever; this is the error instance of a per-PE
    fault profile (Shresthamali HAS), which the cycle model applies through the same saboteur.
    """

    def active(self, cycle: int) -> bool:
        """Whether the fault acts in ``cycle`` (its one cycle only)."""
        return cycle == self.cycle

    def controls(self) -> dict[str, int]:
        """Raise ValueError: a one-cycle stuck-at cannot be set through the RTL's fault controls."""
        raise ValueError("a one-cycle stuck-at cannot be set through the RTL's fault controls")


def _alarm_keys(cfg) -> tuple:
    return tuple(k for k, on in (("spatial", cfg.spatial), ("temporal", cfg.temporal)) if on)


def _stuck(f) -> bool:
    return f.mode != FaultMode.FLIP and not isinstance(f, TransientFault)


# -- WS / IS ---------------------------------------------------------------------------------

def _stationary_layout(cfg, M: int, N: int, temporal_batch):
    stream = M if cfg.dataflow is Dataflow.WS else N
    if cfg.temporal:
        nb = temporal_batch or cfg.temporal_batch_max
        slot = np.arange(stream) + np.arange(stream) // nb
        span = temporal_stream_len(stream, nb)
    else:
        nb, slot, span = stream, np.arange(stream), stream
    return stream, nb, slot, span


def _moving(cfg, X: np.ndarray, slot: np.ndarray, span: int, nb: int,
            X_gen: np.ndarray) -> np.ndarray:
    """The streamed vectors of a pass as the array sees them, ``[span, R]``.

    Data in their slots, and (temporal checksum) each batch's sanity vector, the negated sum of
    ``X_gen`` (the data the generator saw) wrapped to the streamed width, in the slot after it.
    """
    R = cfg.rows
    if not cfg.temporal and X.shape[1] == R:
        return X  # every slot a data vector and every row used: the vectors as they are
    Xs = np.zeros((span, R), dtype=np.int64)
    Xs[slot, :X.shape[1]] = X
    if cfg.temporal and len(slot):
        starts = np.arange(0, len(slot), nb)
        last = np.minimum(starts + nb, len(slot)) - 1  # each batch's last data vector
        sums = np.add.reduceat(X_gen, starts, axis=0)
        Xs[slot[last] + 1, :X.shape[1]] = wrap(-sums, cfg.stream_width)
    return Xs


def _ws_is_product(cfg, A, B, bias, faults, bmap, temporal_batch, errors=None, gen_A=None,
                   chk_B=None):
    R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
    NC = cfg.array_cols
    ws = cfg.dataflow is Dataflow.WS
    M, K = A.shape
    N = B.shape[1]
    stream, nb, slot, span = _stationary_layout(cfg, M, N, temporal_batch)
    early = cfg.bias_in_psum
    use_spatial, use_temporal = cfg.spatial, cfg.temporal
    keep = np.ones((R, NC), dtype=bool)
    if bmap is not None:
        keep[:, :C] = ~np.asarray(bmap, dtype=bool)
    stat_reg, move_reg = ((FaultRegister.WEIGHT, FaultRegister.ACT) if ws
                          else (FaultRegister.ACT, FaultRegister.WEIGHT))
    is_sanity = np.ones(span, dtype=bool)
    is_sanity[slot] = False
    out = np.zeros((M, N), dtype=np.int64)
    alarms = {"spatial": 0, "temporal": 0} if use_spatial and use_temporal else \
        {"spatial": 0} if use_spatial else {"temporal": 0} if use_temporal else {}
    kbits = cfg.temporal_check_bits
    state = None
    tl, starts = _schedule(cfg, M, K, N, span)  # starts: array-side cycles
    n_passes = len(tl)
    for p, tile in enumerate(tl):
        s = int(starts[p])
        t0 = s - R
        kr = tile.k1 - tile.k0
        stat = np.zeros((R, NC), dtype=np.int64)
        if ws:
            nc = tile.n1 - tile.n0
            stat[:kr, :nc] = B[tile.k0:tile.k1, tile.n0:tile.n1]
            X = A[:, tile.k0:tile.k1]
            X_gen = X if gen_A is None else gen_A[:, tile.k0:tile.k1]
            lane_bias = bias[tile.n0:tile.n1]
        else:
            nc = tile.m1 - tile.m0
            stat[:kr, :nc] = A[tile.m0:tile.m1, tile.k0:tile.k1].T
            X = X_gen = B[tile.k0:tile.k1, :].T
            lane_bias = np.zeros(nc, dtype=np.int64)
        if use_spatial:  # WS: Eq. 6.5 on the weights the array keeps; IS: Eq. 6.7 on its inputs
            chk = stat[:, :C]
            if ws and chk_B is not None:
                chk = np.zeros((R, C), dtype=np.int64)
                chk[:kr, :nc] = chk_B[tile.k0:tile.k1, tile.n0:tile.n1]
            elif not ws and gen_A is not None:  # the inputs the generator summed
                chk = np.zeros((R, C), dtype=np.int64)
                chk[:kr, :nc] = gen_A[tile.m0:tile.m1, tile.k0:tile.k1].T
            stat[:, C] = -np.where(keep[:, :C], chk, 0).sum(axis=1)
        Xs = _moving(cfg, X, slot, span, nb, X_gen)
        if not tile.first_k:
            psum_in = state
        else:
            psum_in = np.zeros((span, NC), dtype=np.int64)
            if early and ws:
                psum_in[:, :nc] = lane_bias
                if use_spatial:
                    psum_in[:, C] = -lane_bias.sum()
            elif early:  # IS: neuron n's bias enters with weight vector n, on every lane
                lane = np.zeros(span, dtype=np.int64)
                lane[slot] = bias
                if use_temporal:  # a sanity vector is its batch's sanity neuron: its bias
                    lane[is_sanity] = -np.add.reduceat(bias, np.arange(0, len(bias), nb))
                psum_in[:, :C] = lane[:, None]
                if use_spatial:
                    psum_in[:, C] = -C * lane
        eff = np.where(keep, stat, 0)
        new = psum_in + exact_matmul(Xs, eff)
        t_next = None if p == n_passes - 1 else int(starts[p + 1])
        for f in faults:
            _apply_stationary_fault(cfg, f, new, Xs, stat, eff, keep, psum_in, t0, s, span,
                                    t_next, stat_reg, move_reg, R, NC, P)
        if errors is not None:
            on = np.flatnonzero(errors.tile == p)
            rows_on = errors.row[on]
            # top row first (errors compose down a column); within a row every (step,
            # column) is distinct (a PE's erroneous steps are drawn without repetition), so
            # one row's errors are applied at once
            for r in np.unique(rows_on):
                sel = on[rows_on == r]
                j, c = errors.step[sel], errors.col[sel]
                lower = np.einsum("ek,ke->e", Xs[j, r + 1:], eff[r + 1:, c])
                upper = new[j, c] - lower
                new[j, c] = sabotage_array(wrap(upper, P), P, errors.bit[sel],
                                           errors.mode) + lower
        state = wrap(new, P)
        if use_spatial:
            sums = wrap(state[~is_sanity].sum(axis=1), P)
            alarms["spatial"] += int(np.count_nonzero(sums))
        if use_temporal:
            alarms["temporal"] += _temporal_alarms(state, slot, nb, lane_bias if early else
                                                   np.zeros(nc, np.int64), nc, use_spatial,
                                                   kbits)
        if tile.last_k:
            if ws:
                out[:, tile.n0:tile.n1] = state[slot, :nc]
            else:
                out[tile.m0:tile.m1, :] = state[slot, :nc].T
    if not early:
        out = out + np.asarray(bias, dtype=np.int64)[None, :]
    return out, alarms


@functools.lru_cache(maxsize=1024)
def _schedule(cfg, M: int, K: int, N: int, span: int):
    """``(tiles, first streamed cycle of each pass)`` of a WS/IS product, memoised.

    A campaign asks for the same few products' schedules for every fault; the configuration
    is a frozen, hashable dataclass.  The starts are read-only.
    """
    tl = tuple(tiles(cfg.dataflow, cfg.rows, cfg.cols, M, K, N))
    starts = cfg.config_cycles + cfg.input_stages + pass_starts(cfg, tl, span)
    starts.setflags(write=False)
    return tl, starts


def _temporal_alarms(state, slot, nb, lane_bias, nc, sanity_lane, kbits) -> int:
    """Batches whose lane sums (data + sanity vector) miss the expected ``(n + 1)·bias``.

    Sums are modulo 2**kbits, as :class:`golden.checksum.TemporalCheckerModel` counts them.  A
    batch's data vectors and its sanity vector occupy consecutive slots, so one ``reduceat`` sums
    every batch of the pass.
    """
    starts = slot[::nb]
    totals = np.add.reduceat(state, starts, axis=0)
    n = np.minimum(nb, len(slot) - np.arange(0, len(slot), nb)) + 1  # vectors per batch
    expected = np.zeros_like(totals)
    expected[:, :nc] = n[:, None] * lane_bias[None, :]
    if sanity_lane:
        expected[:, -1] = -n * int(lane_bias.sum())
    return int(np.count_nonzero(np.any(wrap(totals - expected, kbits) != 0, axis=1)))


#: Slot ``j`` of a WS/IS pass whose first vector streams in cycle ``s`` is in PE (r, c)'s
#: adder in cycle ``s + r + c + 1`` and in its partial-sum register one cycle later.
_SUM_DELAY = {FaultRegister.SUM: 1, FaultRegister.PSUM: 2}


def _apply_stationary_fault(cfg, f, new, Xs, stat, eff, keep, psum_in, t0, s, span, t_next,
                            stat_reg, move_reg, R, NC, P) -> None:
    """Add fault ``f``'s effect on one WS/IS pass to ``new`` (``[span, NC]``, unwrapped).

    ``t0``, ``s``: the first load cycle and the first streamed cycle of this pass; ``t_next``: the
    first streamed cycle of the next pass (None for the last pass).
    """
    r, c = f.row, f.col
    if r >= R or c >= NC:
        return
    width = cfg.register_width(f.register, c)
    stuck = _stuck(f)
    double = cfg.double_buffered
    if f.register == FaultRegister.SHADOW and not double:
        return  # no such register in a single-buffered PE
    # The register the load chain runs through: the shadow when double-buffered.
    chain_reg = FaultRegister.SHADOW if double else stat_reg
    if f.register == chain_reg:
        if stuck:  # every value loaded into rows ≥ r of the column passes through it
            alt = stat.copy()
            alt[r:, c] = sabotage_array(stat[r:, c], width, f.bit, f.mode)
            new[:, c] += exact_matmul(Xs, np.where(keep[:, c], alt[:, c], 0) - eff[:, c])
            return
        t = f.cycle
        load0 = t0 + (c if double else 0)  # the column's first shift (skewed when double)
        if load0 <= t < load0 + R:  # flipped while shifting through during the load
            dest = R - (t - load0) + r
            if dest < R:  # (a larger one is a value of the previous pass on its way out)
                new[:, c] += Xs[:, dest] * keep[dest, c] * (
                    int(sabotage_array(stat[dest, c], width, f.bit, f.mode)) - stat[dest, c])
        elif double:
            # Held in the shadow after the load, until the swap reads it (cycle s + r + c):
            # the whole pass multiplies with the flipped value.
            if load0 + R <= t <= s + r + c and keep[r, c]:
                delta = int(sabotage_array(stat[r, c], width, f.bit, f.mode)) - stat[r, c]
                new[:, c] += Xs[:, r] * delta
        elif s <= t and (t_next is None or t <= t_next - R):
            # written back: every product of this pass from cycle t until the next load
            # (whose first cycle still multiplies with it) uses the flipped value
            _flip_stationary_from(new, Xs, stat, keep, t - (s + r + c + 1), span, r, c, width,
                                  f)
    elif f.register == stat_reg:  # double-buffered: the stationary register only multiplies
        if stuck:
            if keep[r, c]:
                delta = sabotage_array(stat[r, c], width, f.bit, f.mode) - stat[r, c]
                new[:, c] += Xs[:, r] * delta
            return
        # It holds this pass's value from the cycle the first vector multiplies with it until
        # the next pass's first vector replaces it; a flip is written back (held) until then.
        base = s + r + c + 1
        if base <= f.cycle and (t_next is None or f.cycle < t_next + r + c + 1):
            _flip_stationary_from(new, Xs, stat, keep, f.cycle - base, span, r, c, width, f)
    elif f.register == move_reg:
        sel = slice(None) if stuck else _one_slot(f.cycle - (s + r + c + 1), span)
        if sel is None:
            return
        x = Xs[sel, r]
        delta = sabotage_array(x, width, f.bit, f.mode) - x
        new[sel, c:] += np.multiply.outer(delta, eff[r, c:])
    elif f.register == FaultRegister.PSUM:
        sel = slice(None) if stuck else _one_slot(
            f.cycle - (s + r + c + _SUM_DELAY[FaultRegister.PSUM]), span)
        if sel is None:
            return
        _sabotage_psum(new, Xs, eff, sel, r, c, P, f.bit, f.mode)
    else:  # MAC logic, in the cycle the PE multiplies the slot; bypass isolates it
        sel = slice(None) if stuck else _one_slot(
            f.cycle - (s + r + c + _SUM_DELAY[FaultRegister.SUM]), span)
        if sel is None or not keep[r, c]:
            return
        if f.register == FaultRegister.PRODUCT:
            prod = Xs[sel, r] * stat[r, c]
            new[sel, c] += sabotage_array(prod, width, f.bit, f.mode) - prod
        else:  # the adder's sum is what the partial-sum register stores
            _sabotage_psum(new, Xs, eff, sel, r, c, P, f.bit, f.mode)


def _flip_stationary_from(new, Xs, stat, keep, first, span, r, c, width, f) -> None:
    """A flipped stationary value (r, c), held: every slot from ``first`` on multiplies with it."""
    first = max(0, first)
    if first < span and keep[r, c]:
        delta = int(sabotage_array(stat[r, c], width, f.bit, f.mode)) - stat[r, c]
        new[first:, c] += Xs[first:, r] * delta


def _sabotage_psum(new, Xs, eff, sel, r, c, P, bit, mode) -> None:
    """The partial sum of column ``c`` leaving row ``r`` sabotaged for slots ``sel``.

    What is below row r is added after; what ``new`` already holds above it (earlier errors in rows
    above) is kept, so errors applied top row first compose as in the array.
    """
    lower = exact_matmul(Xs[sel, r + 1:], eff[r + 1:, c])
    upper = new[sel, c] - lower
    new[sel, c] = sabotage_array(wrap(upper, P), P, bit, mode) + lower


def _one_slot(j: int, span: int):
    return slice(j, j + 1) if 0 <= j < span else None


# -- only what a fault touches (WS without checksums) -----------------------------------------

def restricted_applies(cfg) -> bool:
    """Whether :func:`faulty_product` computes only the outputs a register fault can reach.

    WS without a checksum: a fault of PE (r, c) changes only the outputs of array column c (of
    columns ≥ c for the activation register, which passes its value right), and a one-cycle
    fault only those of the output tile whose passes run around its cycle; every other
    output is the fault-free accumulator.  With a checksum every column takes part in the
    alarms, so the whole product is computed.
    """
    return cfg.dataflow is Dataflow.WS and not cfg.spatial and not cfg.temporal


def clean_acc(cfg, A, B, bias, bypass_map=None) -> np.ndarray:
    """The fault-free accumulators of a WS product without checksums, in one exact BLAS product.

    What :func:`_ws_is_product` gives with no fault: the K-tiles' partial sums wrap in the
    ``acc_bits`` accumulator as they chain (wrapping is modular, so the wrap of the total), a
    bypassed PE (k mod R, n mod C) contributes nothing, the bias enters in the output stage.
    """
    B = np.asarray(B, dtype=np.int64)
    if bypass_map is not None and np.any(bypass_map):
        keep = ~np.asarray(bypass_map, dtype=bool)
        K, N = B.shape
        B = np.where(keep[np.arange(K)[:, None] % cfg.rows, np.arange(N)[None, :] % cfg.cols],
                     B, 0)
    A = np.asarray(A)
    ftype = _float_type(cfg, A, B)
    if ftype is not None:
        acc = float_matmul(A.astype(ftype, copy=False), B.astype(ftype)).astype(np.int64)
    else:
        acc = exact_matmul(A.astype(np.int64, copy=False), B)
    return wrap(acc, cfg.acc_bits) + np.asarray(bias, dtype=np.int64)[None, :]


def _float_type(cfg, A: np.ndarray, B: np.ndarray):
    """The float type whose BLAS product ``A @ B`` is exact, for float32-lowered ``A``; or None.

    ``A`` holds the streamed activations, ``a_width``-bit words (the previous layer's clamp
    and the quantised input bound them, as the array's registers do), so every partial sum of
    column n is at most ``2^(a_width−1) · Σ_k |b_kn|``: float32 to 2^24, float64 below 2^53.
    None for an integer ``A`` (:func:`golden.intmath.exact_matmul` decides) or beyond.
    """
    if A.dtype.kind != "f":
        return None
    top = float(1 << (cfg.a_width - 1)) * float(np.abs(B).sum(axis=0).max(initial=0))
    return np.float32 if top <= F32_EXACT else np.float64 if top < F64_EXACT else None


def _touched(cfg, f, M: int, K: int, N: int):
    """``(array columns, passes, output columns)`` register fault ``f`` can change (WS).

    ``passes``: per pass of :func:`_schedule`, whether the fault can act in it (a stuck-at
    fault: every pass; a one-cycle fault: the passes whose load, stream or drain can hold its
    cycle); the output columns are those of the output tiles of these passes.
    """
    R, C = cfg.rows, cfg.cols
    tl, starts = _schedule(cfg, M, K, N, M)
    if f.row >= R or f.col >= C:
        return np.zeros(0, np.int64), np.zeros(len(tl), bool), np.zeros(0, np.int64)
    # the activation register passes its (sabotaged) value right along the row
    J = np.arange(f.col, C) if f.register == FaultRegister.ACT else np.array([f.col])
    if _stuck(f):
        hit = np.ones(len(tl), dtype=bool)
    else:
        # a margin of R + C + 4 on both sides covers the load chain, the skew and the partial
        # sums' way down; a value written back in the last pass stays to the end
        nxt = np.r_[starts[1:], np.iinfo(np.int64).max // 4]
        lo = starts - R - C - 4
        hi = np.maximum(nxt, starts + M) + R + C + 4
        hit = (lo <= f.cycle) & (f.cycle <= hi)
    hit_n0 = {tl[p].n0 for p in np.flatnonzero(hit)}
    out_cols = sorted({t.n0 + int(j) for t in tl if t.n0 in hit_n0 for j in J
                       if t.n0 + j < t.n1})
    return J, hit, np.asarray(out_cols, dtype=np.int64)


def _ws_flip(cfg, A, B, bias, f, bmap, clean, hit) -> np.ndarray:
    """A one-cycle fault of PE (r, c) on WS without checksums: ``clean`` with its change.

    The change is :func:`_flip_change`'s; each output it reaches is
    ``wrap(clean − bias + change) + bias``.
    """
    out = clean.copy()
    bias = np.asarray(bias, dtype=np.int64)
    for n, (rows, d) in _flip_change(cfg, A, B, f, bmap, hit).items():
        out[rows, n] = wrap(clean[rows, n] - bias[n] + d, cfg.acc_bits) + bias[n]
    return out


def _flip_change(cfg, A, B, f, bmap, hit) -> dict:
    """What a one-cycle fault of PE (r, c) adds to the accumulators (WS without checksums).

    Without a checksum a one-cycle fault only adds to the partial sums it reaches: in each
    pass ``hit`` marks (:func:`_touched`), :func:`_apply_stationary_fault` writes its change
    into a zero ``[M, NC]`` array (a flipped stationary value adds ``Δw · x`` from its cycle
    on, a flipped activation ``Δx · w`` along the row, a product its own change); a sabotaged
    partial sum, which depends on the sum it hits, first gets that one sum: the tile's earlier
    K-tiles (fault-free, one row of A) plus the change so far, plus the pass's own rows.  The
    K-tiles after add fault-free, and the accumulator wraps modulo 2^P, so each output is
    ``wrap(clean − bias + change) + bias``.  Only rows with a change are touched: a flipped
    activation or partial sum changes one vector, a flipped weight the vectors after its
    cycle; no product over the M rows is formed, and ``A`` is read one K-tile's columns or one
    row at a time (a :class:`golden.network.LoweredConv` serves those without the whole
    matrix).  Returns output column → ``(rows, change)``: the sorted rows the fault reaches
    in that column and their summed changes (int64).  Equal to the pass-by-pass computation
    (``tests/test_campaign_speed.py``).
    """
    R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
    NC = cfg.array_cols
    M, K = A.shape
    N = B.shape[1]
    tl, starts = _schedule(cfg, M, K, N, M)
    keep = np.ones((R, NC), dtype=bool)
    if bmap is not None:
        keep[:, :C] = ~np.asarray(bmap, dtype=bool)
    sum_reg = f.register in (FaultRegister.PSUM, FaultRegister.SUM)
    change = {}  # output column → (rows, summed change) so far (a later pass's sums see it)
    for p in np.flatnonzero(hit):
        tile = tl[p]
        s = int(starts[p])
        t_next = None if p == len(tl) - 1 else int(starts[p + 1])
        kr, nc = tile.k1 - tile.k0, tile.n1 - tile.n0
        stat = np.zeros((R, NC), dtype=np.int64)
        stat[:kr, :nc] = B[tile.k0:tile.k1, tile.n0:tile.n1]
        eff = np.where(keep, stat, 0)
        Xs = _TileLanes(A, tile.k0, tile.k1, R)
        # column-major: a column's change is contiguous, and the columns the fault never
        # writes stay untouched (calloc) pages
        new = np.zeros((NC, M), dtype=np.int64).T
        j = f.cycle - (s + f.row + f.col + _SUM_DELAY[f.register]) if sum_reg else -1
        c = f.col
        before = 0
        if 0 <= j < M and c < nc:
            # the one partial sum the fault hits: the K-tiles before (fault-free, wrapped,
            # plus what the fault already changed in an earlier pass) and this pass's rows
            n = tile.n0 + c
            w = np.where(keep[np.arange(tile.k0) % R, c], B[:tile.k0, n], 0)
            prior = int(A[j, :tile.k0] @ w)
            rows, d = change.get(n, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
            prior += int(d[rows == j].sum())
            before = int(wrap(prior, P)) + int(Xs[j] @ eff[:, c])
            new[j, c] = before
        _apply_stationary_fault(cfg, f, new, Xs, stat, eff, keep, None, s - R, s, M, t_next,
                                FaultRegister.WEIGHT, FaultRegister.ACT, R, NC, P)
        if 0 <= j < M and c < nc:
            new[j, c] -= before
        # the fault writes column c, and a flipped activation the columns after it as it
        # passes right (_apply_stationary_fault)
        for col in range(c, nc if f.register == FaultRegister.ACT else min(c + 1, nc)):
            rows = np.flatnonzero(new[:, col])
            if not len(rows):
                continue
            n = tile.n0 + col
            if n not in change:
                change[n] = (rows, new[rows, col])
                continue
            old_rows, old = change[n]
            allr = np.union1d(old_rows, rows)
            tot = np.zeros(len(allr), dtype=np.int64)
            tot[np.searchsorted(allr, old_rows)] += old
            tot[np.searchsorted(allr, rows)] += new[rows, col]
            change[n] = (allr, tot)
    return change


class _TileLanes:
    """The vectors a WS pass streams, ``[M, R]``, read a lane or a row at a time.

    K-tile columns k0 … k1 of ``A`` (a :class:`golden.network.LoweredConv` or a matrix) and
    zero lanes past them, as the one-cycle fault rules (:func:`_apply_stationary_fault`) read
    them: no ``[M, R]`` copy is formed.
    """

    def __init__(self, A, k0: int, k1: int, R: int):
        self.A, self.k0, self.kr = A, k0, k1 - k0
        self.shape = (A.shape[0], R)

    def __getitem__(self, key):
        """``[rows, lane]`` (a lane past the tile: zeros) or ``[rows, lanes]`` (zero-padded)."""
        rows, lanes = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(lanes, int | np.integer):
            if lanes < self.kr:
                return self.A[rows, self.k0 + int(lanes)]
            return np.zeros(len(range(self.shape[0])[rows]), dtype=np.int64) \
                if isinstance(rows, slice) else np.int64(0)
        lo, hi, _ = lanes.indices(self.shape[1])
        got = self.A[rows, self.k0 + lo:self.k0 + max(lo, min(hi, self.kr))]
        pad = (hi - lo) - got.shape[-1]
        return np.concatenate([got, np.zeros((*got.shape[:-1], pad), np.int64)], axis=-1) \
            if pad > 0 else got


def _ws_stuck(cfg, A, B, bias, f, bmap, clean=None) -> np.ndarray:
    """A stuck-at fault of PE (r, c) over every pass at once (WS, no checksum).

    The pass-by-pass rules of :func:`_apply_stationary_fault`, summed over the K-tiles with
    BLAS products: a sabotaged stationary value (the load chain: rows ≥ r of column c; the
    double-buffered stationary register: row r), activation (row r, passed to columns ≥ c)
    or product (row r, column c; a padding row of the last K-tile adds ``sab(0)`` per slot)
    adds a change that only sums from there on, so ``out = wrap(clean + change)`` (wrapping
    is modular); a stuck partial sum (or adder sum) is a recurrence over the K-tiles, each
    tile ``wrap(sab(wrap(psum_in + rows ≤ r)) + rows > r)``, vectorised over the N-tiles.
    ``A`` may be the float32-lowered activations (:meth:`FastFaultEngine.lowers_float`): the
    columns a branch needs as integers are read as integers.  ``clean``: the fault-free
    accumulators (:func:`clean_acc`) when the caller has them cached; without them a stuck
    weight is one product with the faulty weights, and the other registers compute them.
    """
    R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
    M, K = A.shape
    N = B.shape[1]
    r, c = f.row, f.col
    keep = np.ones((R, C), dtype=bool) if bmap is None else ~np.asarray(bmap, dtype=bool)
    kk = np.arange(K)
    ns = np.arange(c, N, C)  # the output columns array column c computes
    bias = np.asarray(bias, dtype=np.int64)
    double = cfg.double_buffered
    chain_reg = FaultRegister.SHADOW if double else FaultRegister.WEIGHT
    width = cfg.register_width(f.register, c)
    if f.register in (chain_reg, FaultRegister.WEIGHT, FaultRegister.SHADOW):
        if f.register == FaultRegister.SHADOW and not double:
            return clean_acc(cfg, A, B, bias, bmap) if clean is None else clean.copy()
        # the load chain sabotages rows ≥ r of the column; the stationary register row r
        ks = kk[kk % R >= r] if f.register == chain_reg else kk[kk % R == r]
        Bk = B[np.ix_(ks, ns)]
        step, g = _stuck_change(Bk, width, f.bit, f.mode)
        D = np.where(keep[ks % R, c][:, None], step * g.astype(np.int64), 0)
        if clean is None:  # one product with the weights the array holds
            Bf = np.array(B, dtype=np.int64)
            Bf[np.ix_(ks, ns)] += D
            return clean_acc(cfg, A, Bf, bias, bmap)
        out = clean.copy()
        if D.any():  # (a bit stuck at the value every weight has changes nothing)
            cols = A[:, ks]
            ftype = _float_type(cfg, cols, D)  # (None for integer A: exact_matmul decides)
            change = exact_matmul(cols, D) if ftype is None else \
                float_matmul(cols.astype(ftype, copy=False), D.astype(ftype)).astype(np.int64)
            out[:, ns] = wrap(clean[:, ns] - bias[ns] + change, P) + bias[ns]
        return out
    out = clean_acc(cfg, A, B, bias, bmap) if clean is None else clean.copy()
    if f.register in (FaultRegister.ACT, FaultRegister.PRODUCT):
        if f.register == FaultRegister.PRODUCT and not keep[r, c]:
            return out
        # row r's K index of every K-tile: a strided view of A's columns, as integers
        Ak = A[:, r::R]
        Ak = Ak.astype(np.int32) if A.dtype.kind == "f" else Ak
        if f.register == FaultRegister.ACT:
            # the sabotaged activation passes right: columns ≥ c, each PE's own weight
            cols = np.flatnonzero(np.arange(N) % C >= c)
            Bsub = np.where(keep[r, cols % C][None, :], B[r::R][:, cols], 0)
            step, g = _stuck_change(Ak, width, f.bit, f.mode)
            if step and g.any():
                # g ∈ {−1, 0, 1}: every partial sum of column n is within Σ_k |b_kn|
                top = float(np.abs(Bsub).sum(axis=0).max(initial=0))
                ftype = np.float32 if top <= F32_EXACT else np.float64
                change = step * float_matmul(g.astype(ftype), Bsub.astype(ftype)
                                             ).astype(np.int64)
                out[:, cols] = wrap(out[:, cols] - bias[cols] + change, P) + bias[cols]
            return out
        # the product register of PE (r, c): one product per K-tile and output column;
        # sab(p) − p = step · (t1 + t2 · bit_b(p)) (:func:`_stuck_terms`), so
        # only the count of set bits is summed, over contiguous [|ns|, M] rows
        step, t1, t2 = _stuck_terms(width, f.bit, f.mode)
        if not step:
            return out
        w = B[r::R][:, ns].astype(Ak.dtype)
        ones = np.zeros((len(ns), M), dtype=Ak.dtype)
        for i in range(Ak.shape[1]):
            ones += (np.multiply.outer(w[i], Ak[:, i]) >> f.bit) & 1
        count = t1 * Ak.shape[1] + t2 * ones.astype(np.int64)
        if K % R and r >= K % R:  # the last K-tile's padding row multiplies zeros
            count += t1
        out[:, ns] = wrap(out[:, ns] - bias[ns] + step * count.T, P) + bias[ns]
        return out
    # the partial sum leaving row r (psum register, or the adder's sum it stores)
    if f.register == FaultRegister.SUM and not keep[r, c]:
        return out
    # The loopback chains the K-tiles: tile j leaves row r with v_j = s_(j−1) + (its rows
    # ≤ r) and passes on s_j = sab(v_j) + (its rows > r), so the state between two
    # sabotages gains the window of R rows from row r + 1 of one tile to row r of the next:
    # one [|ns|, R] @ [R, M] product per window (columns first, so that the recurrence runs
    # over contiguous M-long rows), exact in float32 while a window's R products stay
    # within 2^24 in magnitude (int8: R ≤ 1,024), else in float64 (the streamed values are
    # a_width-bit words: the width bounds them, as the array's registers do).  One window
    # at a time into the same buffers, which stay in cache.
    # The recurrence runs on unsigned words: wrapping is arithmetic modulo 2^P, and P ≤ 32
    # (≤ 64) bits wrap alike in uint32 (uint64) words, whose own wrap-around is free; only
    # the sabotage reads the pattern, and bit b < P of a word is that of its P-bit residue.
    # The signed value is read once at the end
    nk = -(-K // R)
    L = len(ns)
    # column c's weights, zero where row k mod R of the column is bypassed (the column's
    # K × |ns| weights only: a K × N mask took a fifth of a fault's time on ResNet-18)
    Bn = np.where(keep[kk % R, c][:, None], B[:, ns], 0)
    top = float(1 << (cfg.a_width - 1)) * float(np.abs(Bn).max(initial=0)) * R
    ftype = np.float32 if top <= F32_EXACT else np.float64
    itype, utype = (np.int32, np.uint32) if P <= 32 else (np.int64, np.uint64)
    Af = A.astype(ftype, copy=False)  # (read only)
    Bn = Bn.astype(ftype)
    part = np.empty((L, M), dtype=ftype)
    # a window's sum fits the signed word: |sum| ≤ top ≤ 2^53, and ≤ 2^24 in float32 (P ≤ 32
    # with float64 sums: the word's low 32 bits are read through int64)
    wide = ftype is np.float64 and itype is np.int32
    word = np.empty((L, M), dtype=np.int64 if wide else itype)
    uword = word.astype(utype) if wide else word.view(utype)
    m = utype((1 << f.bit) if f.bit < P else 0)
    state = np.zeros((L, M), dtype=utype)
    edges = [0] + [min(K, j * R + r + 1) for j in range(nk)] + [K]
    with blas_threads(L * R * M):
        for j in range(nk + 1):
            k0, k1 = edges[j], edges[j + 1]
            if k1 > k0:
                np.matmul(Bn[k0:k1].T, Af[:, k0:k1].T, out=part)
                word[...] = part
                if wide:
                    uword[...] = word  # (modulo 2^32)
                state += uword
            if j == nk:
                break
            if f.mode == FaultMode.SA0:
                state &= ~m
            elif f.mode == FaultMode.SA1:
                state |= m
            else:
                state ^= m
    acc = state.T.astype(np.int64) & ((1 << P) - 1)
    half = 1 << (P - 1)
    out[:, ns] = (acc ^ half) - half + bias[ns]
    return out


def _stuck_terms(width: int, bit: int, mode) -> tuple[int, int, int]:
    """``(step, t1, t2)`` with ``sab(v) − v = step · (t1 + t2 · bit_b(v))`` (one stuck bit).

    For every ``width``-bit signed value ``v`` (two's complement: ``bit_b`` of the int64 value
    is that of its pattern): stuck-at-0 clears a set bit (``−step`` where it is set),
    stuck-at-1 sets a clear one (``+step`` where it is clear), a flip does either; ``step`` is
    ``2^b``, negative for the sign bit (``b = width − 1``), whose setting subtracts
    ``2^width − 2^b``.  ``step`` is 0 for a bit at or beyond the width (nothing changes).
    Equal to :func:`sabotage_array` (``tests/test_campaign_speed.py``).
    """
    if bit >= width:
        return 0, 0, 0
    step = -(1 << bit) if bit == width - 1 else 1 << bit
    t1, t2 = {FaultMode.SA0: (0, -1), FaultMode.SA1: (1, -1), FaultMode.FLIP: (1, -2)}[mode]
    return step, t1, t2


def _stuck_change(values: np.ndarray, width: int, bit: int, mode):
    """``(step, g)``: ``sab(v) − v = step · g`` per value, ``g`` ∈ {−1, 0, 1} (int8).

    :func:`_stuck_terms` on an integer array whose values fit ``width`` bits (the registers'
    words: weights, activations); a product over ``g`` is small enough for float32.
    """
    step, t1, t2 = _stuck_terms(width, bit, mode)
    if not step:
        return 0, np.zeros(values.shape, dtype=np.int8)
    on = ((values >> bit) & 1).astype(np.int8)
    return step, (t1 + t2 * on).astype(np.int8)


def _ws_restricted(cfg, A, B, bias, f, bmap, temporal_batch, clean=None):
    """:func:`_ws_is_product` for one register fault, computing only what it touches.

    The passes the fault reaches, in the array columns it reaches; every
    other output is the fault-free accumulator ``clean`` (:func:`clean_acc`; computed here when
    not given).  Equal to the full computation (``tests/test_campaign_speed.py``).
    """
    M, K = A.shape
    N = B.shape[1]
    if _stuck(f) and f.row < cfg.rows and f.col < min(cfg.cols, N):
        # a stuck PE acts in every pass: it reaches output column f.col (at least)
        return _ws_stuck(cfg, A, B, bias, f, bmap, clean), {}
    J, hit, out_cols = _touched(cfg, f, M, K, N)
    clean = clean_acc(cfg, A, B, bias, bmap) if clean is None else clean
    if not len(out_cols):
        return clean.copy(), {}
    return _ws_flip(cfg, A, B, bias, f, bmap, clean, hit), {}


# -- OS ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _OSLayout:
    """An OS product as the array's NR × NC PEs compute it, sanity row and column included.

    ``A`` (M' × K) holds every M-tile's R rows (zero rows where the tile is short) and, with
    the temporal checksum, its sanity row (the negated sum of the tile's rows, wrapped to the
    sanity row's width); ``B`` (K × N') every N-tile's C columns and, with the spatial
    checksum, its sanity column (the negated sum).  ``rows`` / ``cols`` map the product's rows
    and columns into them.  Without a checksum ``A`` and ``B`` are the product's own operands.
    """

    A: np.ndarray
    B: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    NR: int
    NC: int


def _os_layout(cfg, A, B, gen_A=None, chk_B=None) -> _OSLayout:
    R, C = cfg.rows, cfg.cols
    M, K = A.shape
    N = B.shape[1]
    if cfg.checksum == "none":
        return _OSLayout(A, B, np.arange(M), np.arange(N), R, C)
    NR, NC = cfg.array_rows, cfg.array_cols
    nmt, nnt = -(-M // R), -(-N // C)
    rows = (np.arange(M) // R) * NR + np.arange(M) % R
    cols = (np.arange(N) // C) * NC + np.arange(N) % C
    Ax = np.zeros((nmt * NR, K), dtype=np.int64)
    Ax[rows] = A
    Bx = np.zeros((K, nnt * NC), dtype=np.int64)
    Bx[:, cols] = B
    if cfg.temporal:  # the sanity row: the negated sum of the tile's activations (Eq. 6.7)
        src = np.zeros_like(Ax)
        src[rows] = A if gen_A is None else gen_A
        sums = src.reshape(nmt, NR, K).sum(axis=1)
        Ax[NR - 1::NR] = wrap(-sums, cfg.sanity_row_width)
    if cfg.spatial:  # the sanity column: the negated sum of the tile's weights (Eq. 6.5)
        src = np.zeros_like(Bx)
        src[:, cols] = B if chk_B is None else chk_B
        Bx[:, NC - 1::NC] = -src.reshape(K, nnt, NC).sum(axis=2)
    return _OSLayout(Ax, Bx, rows, cols, NR, NC)


def _os_alarms(cfg, lay: _OSLayout, out_x: np.ndarray, bias) -> dict:
    """What the OS checkers flag on the array's sums ``out_x`` (M' × N', wrapped).

    The checkers add the bias (the output stage's, the sanity column's the negated sum): per
    tile, every data row's NC lanes sum to zero (spatial, Eq. 6.2), every lane's NR rows to
    NR·bias (temporal, Eq. 6.8).
    """
    if cfg.checksum == "none":
        return {}
    R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
    NR, NC = lay.NR, lay.NC
    nnt = out_x.shape[1] // NC
    bx = np.zeros(out_x.shape[1], dtype=np.int64)
    bx[lay.cols] = np.asarray(bias, dtype=np.int64)
    if cfg.spatial:
        bx[NC - 1::NC] = -bx.reshape(nnt, NC)[:, :C].sum(axis=1)
    seen = wrap(out_x + (bx[None, :] if cfg.output_stage else 0), P)
    alarms = {}
    per_tile = seen.reshape(-1, NR, nnt, NC)  # [m-tile, row, n-tile, lane]
    if cfg.spatial:
        sums = wrap(per_tile[:, :R].sum(axis=3), P)
        alarms["spatial"] = int(np.count_nonzero(sums))
    if cfg.temporal:
        k = cfg.temporal_check_bits
        expected = NR * (bx.reshape(nnt, NC) if cfg.output_stage else 0)
        diff = wrap(per_tile.sum(axis=1) - expected, k)  # [m-tile, n-tile, lane]
        alarms["temporal"] = int(np.count_nonzero(np.any(diff != 0, axis=2)))
    return alarms


def _os_product(cfg, A, B, bias, faults, bmap, gen_A=None, chk_B=None):
    lay = _os_layout(cfg, A, B, gen_A, chk_B)
    out_x = _os_faulty_sums(cfg, lay, faults, bmap)
    out = out_x[np.ix_(lay.rows, lay.cols)]
    return out + np.asarray(bias, dtype=np.int64)[None, :], _os_alarms(cfg, lay, out_x, bias)


def _os_faulty_sums(cfg, lay: _OSLayout, faults, bmap) -> np.ndarray:
    """The array's sums of an OS layout with ``faults`` applied (wrapped, no bias)."""
    A, B = lay.A, lay.B
    R, C, P = lay.NR, lay.NC, cfg.acc_bits  # the rows and columns of PEs built
    M, K = A.shape
    N = B.shape[1]
    Kp = os_tile_steps(cfg, K)
    pre = cfg.config_cycles + os_first_step(cfg)  # the array's first step
    out = exact_matmul(A, B)
    n_tiles_n = -(-N // C)
    rows_of = np.arange(M) % R
    cols_of = np.arange(N) % C
    for f in faults:
        r, c = f.row, f.col
        if r >= R or c >= C or f.register == FaultRegister.SHADOW:  # (OS PEs have no shadow)
            continue
        width = cfg.register_width(f.register, c, r)
        if _stuck(f):
            if f.register == FaultRegister.ACT:
                mr, nn = np.flatnonzero(rows_of == r), np.flatnonzero(cols_of >= c)
                da = sabotage_array(A[mr], width, f.bit, f.mode) - A[mr]
                out[np.ix_(mr, nn)] += exact_matmul(da, B[:, nn])
            elif f.register == FaultRegister.WEIGHT:
                mr, nn = np.flatnonzero(rows_of >= r), np.flatnonzero(cols_of == c)
                db = sabotage_array(B[:, nn], width, f.bit, f.mode) - B[:, nn]
                out[np.ix_(mr, nn)] += exact_matmul(A[mr], db)
            else:
                mr, nn = np.flatnonzero(rows_of == r), np.flatnonzero(cols_of == c)
                prods = A[mr][:, None, :] * B[:, nn].T[None, :, :]  # [m, n, K]
                tot = np.zeros((len(mr), len(nn)), dtype=np.int64)
                first = (mr[:, None] < R) & (nn[None, :] < C)  # the elements of tile 0
                if f.register == FaultRegister.PRODUCT:
                    # every step (padding included) adds the sabotaged product; before tile
                    # 0 reaches the PE it already adds sab(0) once per cycle since reset
                    zero = int(sabotage_array(0, width, f.bit, f.mode))
                    tot = sabotage_array(prods, width, f.bit, f.mode).sum(axis=2) \
                        + (Kp - K) * zero + np.where(first, (pre + r + c + 1) * zero, 0)
                elif f.register == FaultRegister.SUM:
                    # the held sum is sab(0) when tile 0 starts; later tiles restart at 0
                    tot = np.where(first, int(sabotage_array(0, P, f.bit, f.mode)), 0)
                    for k in range(Kp):
                        tot = wrap(tot + (prods[:, :, k] if k < K else 0), P)
                        tot = sabotage_array(tot, P, f.bit, f.mode)
                else:
                    for k in range(Kp):
                        tot = sabotage_array(tot, P, f.bit, f.mode)
                        if k < K:
                            tot = tot + prods[:, :, k]
                        tot = wrap(tot, P)
                out[np.ix_(mr, nn)] = tot
            continue
        # one step k of one tile i: cycle = pre + i·Kp + k + r + c + 1
        rel = f.cycle - pre - r - c - 1
        i, k = divmod(rel, Kp) if rel >= 0 else (0, rel)
        if i >= -(-M // R) * n_tiles_n:
            continue
        m = (i // n_tiles_n) * R + r
        n0 = (i % n_tiles_n) * C
        if m >= M:
            continue
        if f.register == FaultRegister.ACT and 0 <= k < K:
            nn = np.arange(n0 + c, min(N, n0 + C))
            out[m, nn] += (int(sabotage_array(A[m, k], width, f.bit, f.mode)) - A[m, k]) \
                * B[k, nn]
        elif f.register == FaultRegister.WEIGHT and 0 <= k < K and n0 + c < N:
            mm = np.arange(m, min(M, m - r + R))
            out[mm, n0 + c] += A[mm, k] * (int(sabotage_array(B[k, n0 + c], width, f.bit,
                                                              f.mode)) - B[k, n0 + c])
        elif f.register == FaultRegister.PSUM and n0 + c < N:
            # a flip before the first step is held until step 0 (nothing else is added)
            k = max(k, 0)
            prods = A[m] * B[:, n0 + c]
            upper = wrap(prods[:k].sum(), P)
            out[m, n0 + c] = int(sabotage_array(upper, P, f.bit, f.mode)) + prods[k:].sum()
        elif f.register == FaultRegister.PRODUCT and n0 + c < N:
            # before tile 0 (k < 0) and in padding steps the product is 0; the accumulator
            # keeps whatever the sabotaged product adds
            p = int(A[m, k]) * int(B[k, n0 + c]) if 0 <= k < K else 0
            out[m, n0 + c] += int(sabotage_array(p, width, f.bit, f.mode)) - p
        elif f.register == FaultRegister.SUM and n0 + c < N:
            prods = A[m] * B[:, n0 + c]
            if k < 0:  # the held sum sab(0) starts tile 0
                out[m, n0 + c] = int(sabotage_array(0, P, f.bit, f.mode)) + prods.sum()
            else:
                upper = wrap(prods[:k + 1].sum(), P)
                out[m, n0 + c] = int(sabotage_array(upper, P, f.bit, f.mode)) \
                    + prods[k + 1:].sum()
    out = wrap(out, P)
    if bmap is not None:  # a bypassed PE's pinned output is forced to zero (Fig. 10.2-B)
        out = np.where(np.asarray(bmap, bool)[rows_of[:, None], cols_of[None, :]], 0, out)
    return out


# -- the product -------------------------------------------------------------------------------

def faulty_product(cfg, A, B, bias=None, fault=None, *, bypass_map=None,
                   temporal_batch: int | None = None, errors=None, gen_A=None, chk_B=None,
                   restrict: bool = False, clean=None):
    """``(acc, alarms)`` of ``A @ B`` with faults and/or profile errors applied.

    ``acc`` is the accumulator outputs of ``A @ B`` (+ bias, M×N, int64) with ``fault`` (a
    :class:`Fault`, a :class:`TransientFault` or a list of them) and/or profile ``errors``
    (:class:`ProfileErrors`) applied, as the cycle model gives them; ``alarms`` is the number of
    output vectors (spatial) / batches (temporal) each checksum flags.

    ``A`` is what the array multiplies: the activations after the WS input units (see
    :func:`golden.network.units_matrix`).  The bias enters where the hardware adds it.  Unlike
    :func:`golden.array.matmul` nothing is checked for overflow: a faulty partial sum wraps in
    the accumulator exactly as in the hardware.

    ``gen_A`` / ``chk_B`` (with a checksum): the activations the sanity inputs were summed
    from (WS, OS: temporal; IS: spatial) and the weights the sanity neuron was computed from
    (WS: spatial, OS: spatial), when they differ from ``A`` / ``B`` (errors in stored values
    after checksum encoding, Ozen 2023 §6.3.1).

    ``restrict``: one register fault on WS without checksums computes only the outputs it can
    reach (:func:`restricted_applies`), the others taken from ``clean`` (the fault-free
    accumulators of this very ``A`` and ``B``, :func:`clean_acc`) or computed in one BLAS
    product; the result is the same.
    """
    B = np.asarray(B, dtype=np.int64)
    bias = np.zeros(B.shape[1], np.int64) if bias is None else np.asarray(bias, np.int64)
    faults = () if fault is None else tuple(fault) if isinstance(fault, (list, tuple)) \
        else (fault,)
    A = np.asarray(A)
    if A.dtype.kind == "f" and not (restrict and len(faults) == 1 and _stuck(faults[0])
                                    and gen_A is None and chk_B is None and errors is None
                                    and restricted_applies(cfg)):
        A = A.astype(np.int64)  # (float32 lowered activations serve the stuck-at path only)
    elif A.dtype.kind != "f":
        A = A.astype(np.int64, copy=False)
    if errors is not None:
        return profile_product(cfg, A, B, bias, errors, bypass_map=bypass_map,
                               temporal_batch=temporal_batch)
    if cfg.dataflow is Dataflow.OS:
        return _os_product(cfg, A, B, bias, faults, bypass_map, gen_A, chk_B)
    if restrict and len(faults) == 1 and gen_A is None and chk_B is None \
            and restricted_applies(cfg):
        return _ws_restricted(cfg, A, B, bias, faults[0], bypass_map, temporal_batch, clean)
    return _ws_is_product(cfg, A, B, bias, faults, bypass_map, temporal_batch, None, gen_A,
                          chk_B)


class FastFaultEngine(FunctionalEngine):
    """The functional engine with faults, in closed form.

    ``Product.fault`` (register faults), and in ``Product.units``: ``errors`` (a per-PE profile's
    error instances, :class:`ProfileErrors`), ``stored_weights`` (the K×N weights as stored, e.g.
    with bit errors; the sanity column keeps the clean ones) and ``act_errors`` (``(rate, seed)``:
    Algorithm 6.1 on the streamed activations before the input units; the temporal sanity vectors
    are summed from the clean ones). ``stored_weights`` are in array-column order (permute them
    with a neuron permutation).  Protected networks (:mod:`app.protect`): the split lanes and
    the LCU pairs (``split``, ``lcu_pairs``: corrected after the output stage, as the LCU
    controller corrects the output buffer) and the selective-TMR triples (``tmr_triples``,
    ``tmr_voter``: voted after the layer, as :class:`app.protect.VotingEngine` does).

    Without either it is the :class:`FunctionalEngine` (overflow-checked, exact) plus the
    checksum alarm counts the cycle engine reports (zero: the checks are exact); with
    ``checked=False`` a fault-free product takes the fast path too (for the layers after a
    faulty one in a campaign, whose model :func:`golden.network.check_fit` has proven free
    of overflow for every input).

    ``restrict`` (campaigns, issue 24): a register fault's product computes only the outputs
    the fault can reach (:func:`faulty_product`), and a fault-free product of a configuration
    without checksums (no alarm to count) takes the functional engine's one BLAS product.
    ``clean_cache`` (a dict the caller keeps, e.g. per protection and worker) holds the
    fault-free accumulators of product layer ``clean_input``, whose input must be the
    fault-free one (the layer a run from recorded activations starts at): computed once,
    reused by every fault of that layer.  At most ``CLEAN_CACHE_BYTES`` are kept.
    """

    name = "fast"
    #: The most bytes of fault-free accumulators one ``clean_cache`` holds.
    CLEAN_CACHE_BYTES = 512 << 20

    def __init__(self, cfg, *, checked: bool = True, restrict: bool = False,
                 clean_cache: dict | None = None, clean_input: int | None = None,
                 plain: bool = True):
        super().__init__(cfg, plain=plain)
        self.checked = checked
        self.restrict = restrict
        self.clean_cache = clean_cache
        self.clean_input = clean_input
        #: ``(images, batch)``: the product's rows are those of these images of the batch
        #: the cache was filled on (:func:`run_from` with stuck-at faults); None: all of them.
        self.clean_images = None

    def lowers_float(self, fault, units: dict) -> bool:
        """Whether a product with ``fault`` takes its lowered activations in float32.

        A stuck-at register fault on the restricted path (:func:`restricted_applies`, no
        input unit, no fault model's perturbation, ``a_width`` ≤ 24 bits so that float32
        holds every activation exactly): the fault-free accumulators are one float BLAS
        product of that matrix and the fault's change reads it directly (or, for the few
        columns whose bits it sabotages, as int64), so the int64 im2col of the layer
        (8 bytes a value) is never formed (:func:`golden.network.run_node`).
        """
        cfg = self.cfg
        if not (self.restrict and isinstance(fault, Fault) and _stuck(fault)
                and restricted_applies(cfg) and cfg.a_width <= 24):
            return False
        if any(k in units for k in _FAULT_UNITS):
            return False
        return not golden_units.filters_inputs(cfg, golden_units.options(cfg, units))

    def cached(self, index: int, bypass_map=None) -> bool:
        """Whether fault-free accumulators of product node ``index`` are cached (that map)."""
        bm = None if bypass_map is None else np.asarray(bypass_map, dtype=bool).tobytes()
        return self.clean_cache is not None and any(k[0] == index and k[3] == bm
                                                    for k in self.clean_cache)

    def _clean(self, p: Product, A, bmap):
        """The cached fault-free accumulators of ``p`` (its input the clean one), or None."""
        if self.clean_cache is None or p.index != self.clean_input \
                or not restricted_applies(self.cfg):
            return None
        rows = None
        shape = A.shape
        if self.clean_images is not None:
            images, batch = self.clean_images
            per = A.shape[0] // len(images)
            shape = (per * batch, A.shape[1])
            rows = (np.asarray(images)[:, None] * per + np.arange(per)).ravel()
        key = (p.index, p.part, shape, None if bmap is None or not np.any(bmap)
               else np.asarray(bmap, dtype=bool).tobytes())
        acc = self.clean_cache.get(key)
        if acc is None:
            if rows is not None:
                return None  # filled only from the whole batch: computed by the caller
            acc = clean_acc(self.cfg, A, p.B, p.bias, bmap)
            held = sum(v.nbytes for v in self.clean_cache.values())
            if held + acc.nbytes <= self.CLEAN_CACHE_BYTES:
                self.clean_cache[key] = acc
        return acc if rows is None else acc[rows]

    def product(self, p: Product) -> ProductResult:
        """The product ``p`` with its fault and/or errors applied, in closed form."""
        cfg = self.cfg
        units = dict(p.units)
        errors = units.pop("errors", None)
        stored = units.pop("stored_weights", None)
        act_errors = units.pop("act_errors", None)
        opts = golden_units.options(cfg, units)
        lcu = "lcu" in opts
        if p.fault is None and errors is None and stored is None and act_errors is None and (
                self.checked or lcu or (self.restrict and not cfg.spatial and not cfg.temporal)):
            res = super().product(dataclasses.replace(p, fault=None, units=units))
            res.alarms = {k: 0 for k in _alarm_keys(cfg)}
            return res
        A_in, B, gen_A, chk_B = p.A, p.B, None, None
        if act_errors is not None:  # (rate, seed): Algorithm 6.1 on the streamed inputs
            rate, seed = act_errors
            A_in = bit_errors(p.A, rate, cfg.a_width, np.random.default_rng(seed))
        A = units_matrix(cfg, A_in, opts)
        # the activations a sanity input was summed from (WS, OS: temporal; IS: spatial)
        summed = cfg.spatial if cfg.dataflow is Dataflow.IS else cfg.temporal
        if act_errors is not None and summed:
            gen_A = units_matrix(cfg, p.A, opts)
        if stored is not None:
            B, chk_B = np.asarray(stored, dtype=np.int64), p.B
        bmap = golden_units.bypass_map(opts)
        restrict = self.restrict and p.fault is not None and errors is None \
            and stored is None and act_errors is None
        acc, alarms = faulty_product(cfg, A, B, p.bias, p.fault, bypass_map=bmap,
                                     temporal_batch=golden_units.temporal_batch(opts),
                                     errors=errors, gen_A=gen_A, chk_B=chk_B,
                                     restrict=restrict,
                                     clean=self._clean(p, A, bmap) if restrict else None)
        # wide: a fault can push the wrapped accumulator plus its bias beyond gemmlowp's 32
        # bits; the fixed-point path then gives what the hardware's does
        q = p.requant.apply(acc, 0, cfg.a_width, wide=True,
                            **golden_units.requant_keywords(cfg, opts))
        # the LCU corrects and the voter votes the captured words after the layer (the
        # faults act on the array, before the output buffer)
        q = golden_units.correct(cfg, q, opts)
        M, K = p.A.shape
        cycles = cycle_count(cfg, M, K, p.B.shape[1], golden_units.temporal_batch(opts))
        return ProductResult(q=q, cycles=cycles, alarms=alarms)


    #: :meth:`plain_product` stands for this :meth:`product` (see the functional engine's).
    _plain_of = product

    def plain_product(self, layer, x, units: dict):
        """A fault-free product in floating point where :meth:`product` is the functional one.

        That is, without a fault model's ``errors`` / ``stored_weights`` / ``act_errors`` and
        when :meth:`product` would hand the product to :class:`FunctionalEngine` (``checked``,
        an LCU, or ``restrict`` without checksums); its alarms are zero.  None otherwise (the
        caller runs :meth:`product`).
        """
        cfg = self.cfg
        if any(k in units for k in ("errors", "stored_weights", "act_errors")):
            return None
        lcu = "lcu" in golden_units.options(cfg, units)
        if not (self.checked or lcu or (self.restrict and not cfg.spatial
                                        and not cfg.temporal)):
            return None
        res = super().plain_product(layer, x, units)
        if res is not None:
            res.alarms = {k: 0 for k in _alarm_keys(cfg)}
        return res


def run_from(model, x, outputs, logits, engine, *, start: int = 0, options=None,
             units: dict | None = None, one_layer: bool = False) -> Inference:
    """A faulty run that recomputes only what the fault touches (issue 24).

    ``outputs`` / ``logits``: the fault-free run's recorded node outputs and logits on images
    ``x`` (``run(..., record=True)``).  The run starts at node ``start`` from the recorded
    tensors (:func:`golden.network.state_at`).  With ``one_layer`` (the fault acts in node
    ``start`` only, as a one-cycle flip does), that node runs on every image, and the nodes after
    it only on the images whose output it changed: the others' logits are the fault-free
    ones.  Exact because every node after it is fault-free and computes each image from that
    image alone (the products row by row, the host nodes per image); their alarms are zero (the
    checksums of a fault-free product are exact), so only run where the fault-free run raised
    none.  The returned :class:`Inference` holds the stats of the nodes run.
    """
    if not one_layer and _stuck_only(model, engine, start, options, units):
        return _run_stuck(model, x, outputs, engine, start, options, units)
    if one_layer:
        flip = _run_flip(model, x, outputs, logits, engine, start, options, units)
        if flip is not None:
            return flip
    state = state_at(model, x, outputs, start)
    if not one_layer or start + 1 >= len(model.layers):
        return run(model, state, engine, options=options, units=units, start=start)
    first = run(model, state, engine, options=options, units=units, start=start,
                stop=start + 1)
    y = first.logits  # node start's output
    changed = np.flatnonzero(np.any((y != outputs[start]).reshape(len(y), -1), axis=1))
    out = np.array(logits, copy=True)
    layers = list(first.layers)
    if len(changed):
        rec = list(outputs)
        rec[start] = y
        rest_state = {k: v[changed] for k, v in state_at(model, x, rec, start + 1).items()}
        rest = run(model, rest_state, engine, options=options, units=units, start=start + 1)
        out[changed] = rest.logits
        layers += rest.layers
    return Inference(logits=out, layers=layers)


def _run_flip(model, x, outputs, logits, engine, start: int, options, units):
    """A one-cycle fault in product node ``start``, computed as a change to its recorded output.

    Where :func:`restricted_applies` and the fault is a one-cycle register fault of a dense or
    convolution node (no input unit, no permutation, no fault model's perturbation):
    :func:`_flip_change` gives the rows the fault reaches and what it adds there (reading the
    lowered input one K-tile's columns or one row at a time, :class:`golden.network.
    LoweredConv`), those rows alone go through the output stage and the corrections (both
    row by row: the LCU pairs and the voter's triples are columns of one row), and the nodes
    after run only on the images whose output changed.  Every other row is the recorded
    fault-free output, so nothing of size M × N is formed after the layer's cached fault-free
    accumulators.  None where it does not apply (the caller runs the node whole).
    """
    layer = model.layers[start]
    opt = None if callable(options) or not options else \
        options.get(start) or options.get(layer.name)
    f = None if opt is None else opt.fault
    if not (isinstance(engine, FastFaultEngine) and engine.restrict
            and engine.clean_input == start and restricted_applies(engine.cfg)
            and isinstance(layer, Conv2D | Dense) and isinstance(f, Fault) and not _stuck(f)
            and opt.permutation is None and len(model.sources(start)) == 1):
        return None
    cfg = engine.cfg
    merged = {**(units or {}), **opt.units}
    if any(k in merged for k in _FAULT_UNITS):
        return None
    opts = golden_units.options(cfg, merged)
    if golden_units.filters_inputs(cfg, opts):
        return None
    (src,) = model.sources(start)
    xin = np.asarray(x if src == -1 else outputs[src], dtype=np.int64)
    A = LoweredConv(layer, xin) if isinstance(layer, Conv2D) else layer.lower(xin)
    B = layer.matrix.astype(np.int64)
    bias = layer.bias.astype(np.int64)
    M, K = A.shape
    N = B.shape[1]
    bmap = golden_units.bypass_map(opts)
    p = Product(index=start, name=layer.name, A=A, B=B, bias=bias,
                requant=layer.requantisation(), fault=f, units=merged)
    saved = engine.clean_images
    engine.clean_images = None
    try:
        clean = engine._clean(p, A, bmap)  # this worker's fault-free accumulators of the layer
    finally:
        engine.clean_images = saved
    if clean is None:
        return None
    _, hit, out_cols = _touched(cfg, f, M, K, N)
    change = _flip_change(cfg, A, B, f, bmap, hit) if len(out_cols) else {}
    tb = golden_units.temporal_batch(opts)
    stats = [product_stats(LayerStats(index=start, name=layer.name, kind=layer.kind), layer,
                           p.requant, M, K, N, cycle_count(cfg, M, K, N, tb), {})]
    out = np.array(logits, copy=True)
    if not change:
        return Inference(logits=out, layers=stats)
    rows = functools.reduce(np.union1d, (r for r, _ in change.values()))
    acc = clean[rows]
    for n, (r, d) in change.items():
        at = np.searchsorted(rows, r)
        acc[at, n] = wrap(acc[at, n] - bias[n] + d, cfg.acc_bits) + bias[n]
    q = p.requant.apply(acc, 0, cfg.a_width, wide=True,
                        **golden_units.requant_keywords(cfg, opts))
    q = golden_units.correct(cfg, q, opts)
    y = outputs[start]
    per = M // len(y)  # rows of the lowered matrix per image
    ref = y.reshape(M, -1)[rows]
    moved = np.any(q != ref, axis=1)
    images = np.unique(rows[moved] // per)
    if len(images):
        yi = np.array(y[images], copy=True)
        flat = yi.reshape(len(images) * per, -1)
        sel = np.isin(rows // per, images)
        flat[np.searchsorted(images, rows[sel] // per) * per + rows[sel] % per] = q[sel]
        if start + 1 < len(model.layers):
            state = {k: (yi if k == start else v[images])
                     for k, v in state_at(model, x, outputs, start + 1).items()}
            rest = run(model, state, engine, options=options, units=units, start=start + 1)
            out[images] = rest.logits
            stats += rest.layers
        else:
            out[images] = yi
    return Inference(logits=out, layers=stats)


#: Units keys of a fault model's perturbations: their draws depend on the product's shape.
_FAULT_UNITS = ("errors", "stored_weights", "act_errors")


def _stuck_only(model, engine, start: int, options, units) -> bool:
    """Whether :func:`_run_stuck` applies: stuck-at register faults on WS without checksums.

    There every output row (image) of a product depends on that image alone, whatever the
    other rows are (no checksum mixes them, a stuck-at acts in every cycle, so a product of
    some images is those images' rows of the product of all), and the engine is the
    restricted fast fault model whose clean accumulators are cached per layer.
    """
    if not (isinstance(engine, FastFaultEngine) and engine.restrict
            and restricted_applies(engine.cfg) and not callable(options)):
        return False
    if any(k in (units or {}) for k in _FAULT_UNITS):
        return False
    for opt in (options or {}).values():
        if opt is None:
            continue
        if (opt.fault is not None and not _stuck(opt.fault)) \
                or any(k in opt.units for k in _FAULT_UNITS):
            return False
    return True


def _run_stuck(model, x, outputs, engine, start: int, options, units) -> Inference:
    """A run with stuck-at faults that recomputes only the images they changed (issue 24).

    Node by node from ``start``: a node without a fault runs only on the images whose inputs
    differ from the fault-free run (the others keep the recorded outputs); a faulty product
    runs on every image from the fault-free inputs (the engine takes the fault-free
    accumulators cached for the layer, :class:`FastFaultEngine` ``clean_input``, and adds
    what the fault changes) and again, from their faulty inputs, on the images an earlier
    fault changed.  Exact under :func:`_stuck_only`'s conditions (each image's row of a
    product depends on that image alone).  Its stats hold the nodes run.
    """
    x = np.asarray(x, dtype=np.int64)
    n = len(x)
    every = np.arange(n)
    cur: dict = {}  # node → its faulty output, for the nodes whose output changed
    changed: dict = {}  # node → the images whose output differs from the fault-free one
    stats = []
    none = np.zeros(0, dtype=np.int64)

    def part(i, srcs, images, faulty: bool):
        """Node i's output on ``images``: the fault-free inputs, or the current ones."""
        ins = [x if j == -1 else outputs[j] if not faulty else cur.get(j, outputs[j])
               for j in srcs]
        if len(images) < n:  # (all of them: no copy)
            ins = [v[images] for v in ins]
        y, st = run_node(model, i, ins, engine, options=options, units=units)
        stats.append(st)
        return y

    saved = engine.clean_input, engine.clean_images
    try:
        for i in range(start, len(model.layers)):
            layer = model.layers[i]
            srcs = model.sources(i)
            ch = functools.reduce(np.union1d, (changed.get(j, none) for j in srcs), none)
            opt = (options.get(i) or options.get(layer.name)) if options else None
            if opt is not None and opt.fault is not None:
                engine.clean_input = i
                bmap = {**(units or {}), **opt.units}.get("bypass_map")
                if bmap is not None and not np.any(bmap):
                    bmap = None
                if not engine.cached(i, bmap):  # the whole batch once: fills the cache
                    engine.clean_images = None
                    y = part(i, srcs, every, False)
                elif len(ch) == n:  # every image changed: none reads the cache
                    y = None
                else:
                    keep = np.setdiff1d(every, ch, assume_unique=True)
                    engine.clean_images = (keep, n)
                    y = np.array(outputs[i], copy=True)
                    y[keep] = part(i, srcs, keep, False)
                engine.clean_input, engine.clean_images = None, None
                if y is None:
                    y = part(i, srcs, every, True)
                elif len(ch):
                    y[ch] = part(i, srcs, ch, True)
            elif len(ch) == n:  # (every image: no copy of the fault-free output)
                y = part(i, srcs, every, True)
            elif len(ch):
                y = np.array(outputs[i], copy=True)
                y[ch] = part(i, srcs, ch, True)
            else:
                continue
            diff = np.flatnonzero(np.any((y != outputs[i]).reshape(n, -1), axis=1))
            if len(diff):
                changed[i], cur[i] = diff, y
    finally:
        engine.clean_input, engine.clean_images = saved
    last = len(model.layers) - 1
    return Inference(logits=cur.get(last, outputs[last]), layers=stats)


# -- bit errors at a rate (Algorithm 6.1) -------------------------------------------------------

#: Algorithm 6.1 (Ozen 2023 §6.3.1): the project's one bit-error injector,
#: :func:`golden.faults.inject_bit_errors`, under the name the campaigns use.
bit_errors = inject_bit_errors


# -- per-PE fault profiles (Shresthamali HAS)
# ----------------------------------------------------------------

def pe_profile(rows: int, cols: int, fr_max: float, rng: np.random.Generator) -> np.ndarray:
    """Shresthamali HAS §4.2: every PE's error rate drawn from U(0, FR_max), ``[rows, cols]``."""
    if not 0 <= fr_max <= 1:
        raise ValueError(f"invalid fr_max = {fr_max!r}: a probability 0 … 1")
    return rng.uniform(0.0, fr_max, size=(rows, cols))


@dataclass(frozen=True)
class ProfileErrors:
    """Error instances for one product.

    Per error, the pass (tile index in driver order), the streamed slot (WS/IS) or step (OS), the PE
    and the bit; all in one ``mode``.
    """

    tile: np.ndarray
    step: np.ndarray
    row: np.ndarray
    col: np.ndarray
    bit: np.ndarray
    mode: str

    def __len__(self) -> int:
        """The number of error instances."""
        return len(self.tile)


def profile_errors(cfg, profile: np.ndarray, M: int, K: int, N: int, mode: str,
                   rng: np.random.Generator, *, bits: tuple[int, int] | None = None,
                   temporal_batch: int | None = None,
                   one_per_cycle: bool = False) -> ProfileErrors:
    """Shresthamali HAS §4.3: error instances of one product ``M×K @ K×N`` drawn from ``profile``.

    Every PE works once per streamed slot of every pass (WS/IS) or per step of every tile
    (OS); per pass and PE the number of erroneous steps is Binomial(steps, rate), the steps
    drawn without repetition, each error on a bit uniform in ``bits`` (default: every bit of
    the partial sum) of that PE's partial-sum register in that step (WS/IS: the sum the PE
    passes down; OS: the sum it holds when it adds the step's product): ``mode`` is
    flip-to-0, flip-to-1 or bitflip.
    """
    if mode not in PROFILE_MODES:
        raise ValueError(f"invalid profile mode = {mode!r}: one of {', '.join(PROFILE_MODES)}")
    R, C = cfg.rows, cfg.cols
    profile = np.asarray(profile, dtype=np.float64)
    if profile.shape != (R, C):
        raise ValueError(f"fault profile must be {R}×{C}, not {profile.shape}")
    n_tiles = len(tiles(cfg.dataflow, R, C, M, K, N))
    steps = K if cfg.dataflow is Dataflow.OS else _stationary_layout(cfg, M, N, temporal_batch)[3]
    lo, hi = bits if bits is not None else (0, cfg.acc_bits - 1)
    counts = rng.binomial(steps, np.broadcast_to(profile, (n_tiles, R, C)))
    t_idx, r_idx, c_idx = np.nonzero(counts)
    n = counts[t_idx, r_idx, c_idx]
    tile = np.repeat(t_idx, n)
    row = np.repeat(r_idx, n)
    col = np.repeat(c_idx, n)
    step = np.concatenate([rng.choice(steps, size=k, replace=False) for k in n]) \
        if len(n) else np.zeros(0, np.int64)
    bit = rng.integers(lo, hi + 1, size=len(tile))
    errors = ProfileErrors(tile.astype(np.int64), step.astype(np.int64), row.astype(np.int64),
                           col.astype(np.int64), bit.astype(np.int64), PROFILE_MODES[mode])
    if one_per_cycle:
        errors = _one_per_cycle(cfg, errors, M, K, N, temporal_batch)[0]
    return errors


def _error_cycles(cfg, errors: ProfileErrors, M: int, K: int, N: int,
                  temporal_batch: int | None = None) -> np.ndarray:
    """The cycle of every error instance (:func:`profile_faults`), vectorised."""
    pre, d, R = cfg.config_cycles, cfg.input_stages, cfg.rows
    if cfg.dataflow is Dataflow.OS:
        # the partial sum the PE holds when it does step k (its register is read in cycle
        # pre + i·Kp + k + r + c + 1, then the product is added)
        return pre + os_first_step(cfg) + errors.tile * os_tile_steps(cfg, K) + errors.step \
            + errors.row + errors.col + 1
    span = _stationary_layout(cfg, M, N, temporal_batch)[3]
    starts = pre + d + pass_starts(cfg, tiles(cfg.dataflow, R, cfg.cols, M, K, N), span)
    return starts[errors.tile] + errors.step + errors.row + errors.col + 2


def _subset(e: ProfileErrors, keep) -> ProfileErrors:
    return ProfileErrors(e.tile[keep], e.step[keep], e.row[keep], e.col[keep], e.bit[keep],
                         e.mode)


def _one_per_cycle(cfg, errors, M, K, N, temporal_batch):
    cyc = _error_cycles(cfg, errors, M, K, N, temporal_batch)
    _, first = np.unique(cyc, return_index=True)
    keep = np.sort(first)
    return _subset(errors, keep), len(errors) - len(keep)


def one_per_cycle(cfg, errors: ProfileErrors, M: int, K: int, N: int,
                  temporal_batch: int | None = None) -> tuple[ProfileErrors, int]:
    """``(errors with at most one per cycle, how many were dropped)``.

    Of the errors that fall in one cycle, the first drawn is kept (see the module docstring:
    the RTL's fault hooks hold one fault at a time).
    """
    return _one_per_cycle(cfg, errors, M, K, N, temporal_batch)


def profile_faults(cfg, errors: ProfileErrors, M: int, K: int, N: int,
                   temporal_batch: int | None = None) -> list[TransientFault]:
    """The error instances as one-cycle faults on the cycle model's partial-sum registers.

    Each fault sits in the cycle the step's partial sum is in PE (r, c)'s register; for
    cross-checks.
    """
    cycles = _error_cycles(cfg, errors, M, K, N, temporal_batch)
    return [TransientFault(int(r), int(c), "psum", int(b), errors.mode, int(t))
            for r, c, b, t in zip(errors.row, errors.col, errors.bit, cycles, strict=True)]


def profile_product(cfg, A, B, bias, errors: ProfileErrors, *, bypass_map=None,
                    temporal_batch: int | None = None):
    """``(acc, alarms)`` with a profile's error instances applied (see :func:`profile_errors`).

    The partial sum of PE (r, c) in the erroneous step is sabotaged before row r + 1 adds to it;
    errors of one column compose from the top row down, as in the array.
    """
    A = np.asarray(A, np.int64)
    B = np.asarray(B, np.int64)
    if cfg.dataflow is Dataflow.OS:
        return _os_product_transients(cfg, A, B, bias, errors, bypass_map)
    return _ws_is_product(cfg, A, B, bias, (), bypass_map, temporal_batch, errors)


def profile_acc(cfg, A, B, bias, errors: ProfileErrors, bypass_map=None) -> np.ndarray | None:
    """The accumulators of ``A @ B`` with a profile's error instances, vectorised over the errors.

    Equal to :func:`profile_product` (tested), or ``None`` where this shortcut
    does not apply (only WS without checksums: the bias enters in the output stage and every
    streamed slot is a data row).

    Why it is exact: after a partial sum is sabotaged everything downstream only adds (modulo
    the accumulator width), so the result is the clean one plus every error's change
    ``δ = sabotage(u) − u``, where ``u`` is the partial sum at the error: the prefix of the
    output's dot product up to the error's K index plus the changes of the errors before it on
    the same output.  Errors on one output are taken in K order, level by level.
    """
    if cfg.dataflow is not Dataflow.WS or cfg.spatial or cfg.temporal:
        return None
    R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    M, K = A.shape
    N = B.shape[1]
    if bypass_map is not None and np.any(bypass_map):
        keep = ~np.asarray(bypass_map, dtype=bool)
        B = np.where(keep[np.arange(K)[:, None] % R, np.arange(N)[None, :] % C], B, 0)
    acc = np.rint(A.astype(np.float64) @ B.astype(np.float64)).astype(np.int64)
    nk = -(-K // R)
    nt, kt = errors.tile // nk, errors.tile % nk
    n = nt * C + errors.col
    m = errors.step
    k = np.minimum(kt * R + errors.row, K - 1)
    ok = (n < N) & (m < M)
    m, n, k, bit = m[ok], n[ok], k[ok], errors.bit[ok]
    if len(m):
        order = np.lexsort((k, n, m))
        m, n, k, bit = m[order], n[order], k[order], bit[order]
        # partial sum up to and including K index k of output (m, n)
        prods = A[m] * B[:, n].T
        prods[np.arange(K)[None, :] > k[:, None]] = 0
        u = prods.sum(axis=1)
        key = m * N + n
        first = np.r_[True, key[1:] != key[:-1]]
        level = np.arange(len(key)) - np.maximum.accumulate(np.where(first,
                                                                      np.arange(len(key)), 0))
        delta = np.zeros(len(key), dtype=np.int64)
        for lv in range(int(level.max()) + 1):
            sel = np.flatnonzero(level == lv)
            prior = np.zeros(len(sel), dtype=np.int64)
            for back in range(1, lv + 1):  # the changes of the earlier errors on the output
                prior += delta[sel - back]
            w = wrap(u[sel] + prior, P)
            delta[sel] = sabotage_array(w, P, bit[sel], errors.mode) - w
        np.add.at(acc, (m, n), delta)
    return wrap(acc, P) + np.asarray(bias, dtype=np.int64)[None, :]



def _os_product_transients(cfg, A, B, bias, errors: ProfileErrors, bmap):
    """OS with many one-step errors.

    Each output element with errors is recomputed by its recurrence over the steps (errors in
    different elements are independent); with a checksum, on the layout with the sanity row
    and column (:class:`_OSLayout`), whose PEs the profile leaves alone.
    """
    R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
    lay = _os_layout(cfg, A, B)
    Ax, Bx = lay.A, lay.B
    M, K = Ax.shape
    N = Bx.shape[1]
    out = exact_matmul(Ax, Bx)
    n_tiles_n = -(-N // lay.NC)
    mm = (errors.tile // n_tiles_n) * lay.NR + errors.row
    nn = (errors.tile % n_tiles_n) * lay.NC + errors.col
    ok = (mm < M) & (nn < N) & (errors.step < K)
    for m, n in sorted(set(zip(mm[ok].tolist(), nn[ok].tolist(), strict=True))):
        sel = ok & (mm == m) & (nn == n)
        prods = Ax[m] * Bx[:, n]
        tot = 0
        hits = dict(zip(errors.step[sel].tolist(), errors.bit[sel].tolist(), strict=True))
        for k in range(K):
            if k in hits:
                tot = int(sabotage_array(tot, P, hits[k], errors.mode))
            tot = int(wrap(np.int64(tot + prods[k]), P))
        out[m, n] = tot
    out = wrap(out, P)
    if bmap is not None:
        rows_of, cols_of = np.arange(M) % R, np.arange(N) % C
        out = np.where(np.asarray(bmap, bool)[rows_of[:, None], cols_of[None, :]], 0, out)
    res = out[np.ix_(lay.rows, lay.cols)] + np.asarray(bias, dtype=np.int64)[None, :]
    return res, _os_alarms(cfg, lay, out, bias)


# -- a drawn set of errors on the fault hooks, cycle by cycle -----------------------------------

def hook_program(cfg, program, faults):
    """``program`` with ``faults`` (one-cycle faults, distinct cycles) on the fault hooks.

    In the cycle ``t`` of a fault the hooks' controls arm it (``enable``, PE, register, bit,
    ``cycle = t``; mode ``flip`` for a bit flip, ``sa0`` / ``sa1`` for a flip-to-0 / flip-to-1
    enabled in that cycle only); in every other cycle ``enable = 0``.  Needs
    ``cfg.fault_hooks``; ValueError if two faults share a cycle or a cycle is outside the
    program.  Returns a new :class:`golden.schedule.Program` (the inputs copied).
    """
    if not cfg.fault_hooks:
        raise ValueError("errors on the fault hooks need a configuration with fault_hooks")
    faults = list(faults)
    cycles = [int(f.cycle) for f in faults]
    if len(set(cycles)) != len(cycles):
        raise ValueError("the fault hooks hold one fault per cycle: two errors share a cycle "
                         "(draw with one_per_cycle=True)")
    T = program.cycles
    inputs = dict(program.inputs)
    ctl = {name: np.zeros(T, dtype=np.int64) for name in
           ("enable", "row", "col", "reg", "bit", "mode", "cycle")}
    for f, t in zip(faults, cycles, strict=True):
        if not 0 <= t < T:
            raise ValueError(f"fault {f}: cycle {t} outside the program's {T} cycles")
        ctl["enable"][t] = 1
        ctl["row"][t], ctl["col"][t] = f.row, f.col
        ctl["reg"][t] = REGISTERS.index(f.register)
        ctl["bit"][t] = f.bit
        ctl["mode"][t] = MODES.index(f.mode)
        ctl["cycle"][t] = t
    for name, v in ctl.items():
        inputs[f"fault__{name}"] = v
    return dataclasses.replace(program, inputs=inputs)


def hooked_faults(program) -> list:
    """The faults a program's per-cycle fault-hook controls arm, as one-cycle faults.

    The controls as the RTL's :class:`rtl_gen.fault.FaultController` decodes them: in cycle
    ``t`` a fault is active if ``enable`` and (a stuck-at mode, or ``cycle == t``).  A stuck-at
    held for the whole program becomes one one-cycle fault per cycle (the same effect).
    """
    inp = program.inputs
    if "fault__enable" not in inp:
        return []
    en = np.asarray(inp["fault__enable"])
    mode = np.asarray(inp["fault__mode"])
    cyc = np.asarray(inp["fault__cycle"])
    t_all = np.arange(len(en))
    on = np.flatnonzero((en != 0) & ((mode != MODES.index(FaultMode.FLIP)) | (cyc == t_all)))
    return [TransientFault(int(inp["fault__row"][t]), int(inp["fault__col"][t]),
                           REGISTERS[int(inp["fault__reg"][t])], int(inp["fault__bit"][t]),
                           MODES[int(mode[t])], int(t)) for t in on]


class HookedErrorsEngine:
    """An engine that plays per-layer error draws through the fault hooks' per-cycle controls.

    ``inner``: a :class:`golden.network.CycleEngine` (the cycle model) or a
    :class:`tb.accelerator.RTLEngine` (the RTL), built for a configuration with ``fault_hooks``;
    ``errors``: per product-layer index, :class:`ProfileErrors` drawn for that layer's product
    with at most one error per cycle.  Each product's program gets the errors' one-cycle faults
    (:func:`hook_program`); the cycle model is given the faults read back from the program
    (:func:`hooked_faults`), the RTL plays the program: both see what the program drives.
    ``drawn`` counts the error instances played.
    """

    def __init__(self, inner, errors: dict):
        self.inner, self.cfg = inner, inner.cfg
        self.errors = dict(errors)
        self.name = f"{getattr(inner, 'name', 'engine')}+hooked-errors"
        self.drawn = 0

    def product(self, p):
        """The product ``p`` with its layer's errors on the fault hooks."""
        cfg = self.cfg
        if p.fault is not None:
            raise ModelError(f"layer {p.name}: a register fault and hooked errors at once")
        units = dict(p.units)
        units.pop("errors", None)
        program = build_program(cfg, p.A, p.B, bias=p.bias, **p.program_args(), **units)
        errs = self.errors.get(p.index)
        if errs is not None and len(errs):
            M, K = p.A.shape
            faults = profile_faults(cfg, errs, M, K, p.B.shape[1],
                                    golden_units.temporal_batch(golden_units.options(cfg, units)))
            program = hook_program(cfg, program, faults)
            self.drawn += len(faults)
        rec = self.inner.execute(program, hooked_faults(program) or None)
        return ProductResult(q=program_result(program, rec), cycles=int(program.cycles))
