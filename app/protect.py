"""Protecting a network's critical neurons on the array.

Neuron splitting + LCU, or selective TMR, with mapping-aware placement (Ahmadilivani 2025 §4.3.1;
Ahmadilivani 2025 §4.3.1; issue 16).

:func:`protect` turns a quantised :class:`golden.network.Model` and, per product layer, a list
of critical neurons (e.g. NVF ≥ a threshold, :mod:`app.nvf`) into a :class:`Protected`
network: a new model whose protected layers have extra output columns (the copies) and whose
next product layer reads them, plus per layer the :class:`golden.network.LayerOptions` the
runner needs (``permutation``, and the units' ``split`` / ``lcu_pairs`` or ``tmr_triples``).

**LCU** (method ``"lcu"``): each critical neuron ``c`` gets one copy (its weights and bias
again); both columns are *split* lanes (``shift + 1``, saturation one bit narrower, see
:mod:`golden.split`: the halving is done in requantisation so the two halves are bit-identical
without a fault); the LCU corrects the pair and writes the result to both places; the next
layer reads both halves through the original outgoing weights (its weight rows for the copy
equal the original's), so it sees ``2h`` where the unprotected network has ``q``.  **This is
not bit-identical to the unprotected network**: ``2h − q ∈ {−1, 0, 1}``
(:func:`golden.split.next_layer_bound` bounds the effect on the next layer); the thesis'
halving cannot be exact in integers.  It is bit-identical across the engines (golden, cycle,
RTL), and with no fault it equals :func:`reference_logits` of the split network.  LCU needs
post-ReLU outputs (the mask clears bit ``a_width − 2``): critical neurons of a layer without
ReLU are left unprotected and listed in ``skipped``.

``lcu_mode="exact"`` is the variant that *is* bit-identical: the copy keeps the original
shift (no halving, no split lanes), the LCU keeps every bit (``lcu_mask`` all ones: a pure
AND, which still removes any 0→1 flip confined to one copy) and the copy's rows in the next
layer are zero.  It gives up only the mask's protection of bit ``a_width − 2`` against a 0→1
flip in *both* copies.

**TMR** (method ``"tmr"``): two copies of each critical neuron, identical to it (no halving);
after the layer the voter (``word``: Ahmadilivani 2025 §5.3.3, majority, minimum when all three
differ;
``bitwise``: bit majority; :mod:`golden.tmr`) writes the voted word to the three places; the
copies' rows in the next layer's weights are zero.  **Bit-identical to the unprotected
network** with no fault.  The voter is applied by :class:`VotingEngine` around any engine
(golden, cycle, RTL): when the configuration has the voter on the top (``tmr`` set to the
protection's voter, :attr:`Protected.config`), the triples go to the inner engine, and the
cycle model and the RTL vote on chip (:class:`rtl_gen.tmr.VotingController`), the functional
engine in closed form; otherwise the vote is done on the host after the product (fallback).

The *last* product layer (the logits) is never protected: copies would become extra class
scores.  Thesis Table 4.10 counts hidden neurons only.

**Placement** (:func:`place`, :func:`check_placement`).  A permanent PE fault corrupts every
value its PE computes, so the copies of one neuron must never be computed by the same PE:
WS pins output column ``j`` to PE column ``j mod C`` (Eq. 10.3) in every tile; OS computes
output ``(m, j)`` in PE ``(m mod R, j mod C)`` (Eq. 10.5), so the copies of one output share a
PE exactly when their columns agree mod C.  Both: the copies' array columns must differ mod C.
IS pins a *batch row* to a column (Eq. 10.4): every copy of one output passes the same PE
column, so no placement separates them; protecting an IS configuration is a
:class:`PlacementError`.  :func:`place` finds a permutation of the protected layer's columns
(array column ``j`` computes column ``perm[j]``; un-permuted after, so nothing changes without
a fault) that satisfies the rule, and :func:`check_placement` raises for any violation.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from ftaccel.enums import Dataflow
from ftaccel.golden import units as golden_units
from ftaccel.golden.array import cycle_count
from ftaccel.golden.bypass import pruned_matmul
from ftaccel.golden.fault_models import faulty_product, profile_acc
from ftaccel.golden.network import (
    Add,
    Concat,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    FunctionalEngine,
    LayerOptions,
    Model,
    ModelError,
    Product,
    ProductResult,
    product_layers,
    requant_columns,
)
from ftaccel.golden.tmr import vote_columns

from .nvf import flip_bits

__all__ = ["PlacementError", "LayerProtection", "Protected", "protect", "place",
           "check_placement", "VotingEngine", "METHODS", "VOTERS", "LCU_MODES"]

METHODS = ("lcu", "tmr")
LCU_MODES = ("halve", "exact")
VOTERS = ("word", "bitwise")


class PlacementError(ValueError):
    """Two copies of one protected neuron would be computed by the same PE."""


# -- placement ---------------------------------------------------------------------------------

def check_placement(groups, perm, cols: int, dataflow: str, *, layer: str = "") -> None:
    """Raise :class:`PlacementError` if two columns of one group share a PE column (WS) or PE (OS).

    A group is a neuron and its copies; always raised for IS (see the module docstring).

    ``groups``: per protected neuron, its model column indices (original first); ``perm``:
    array column ``j`` computes model column ``perm[j]`` (``None``: identity).
    """
    where = f"layer {layer}: " if layer else ""
    if dataflow == Dataflow.IS and len(groups):
        raise PlacementError(f"{where}dataflow is pins a batch row, not a neuron, to a PE "
                             "column (Eq. 10.4): the copies of a neuron always share a column; "
                             "protect on ws or os")
    n = 1 + max((max(g) for g in groups), default=-1)
    perm = np.arange(n) if perm is None else np.asarray(perm)
    pos = np.empty(len(perm), dtype=np.int64)
    pos[perm] = np.arange(len(perm))
    for g in groups:
        cols_of = [int(pos[c]) % cols for c in g]
        if len(set(cols_of)) != len(cols_of):
            unit = "PE column" if dataflow == Dataflow.WS else "PE (in every row)"
            raise PlacementError(
                f"{where}neuron {g[0]} and its copies (columns {list(map(int, g))}) run in array "
                f"columns {[int(pos[c]) for c in g]}: {unit} {cols_of} shared, one fault "
                "corrupts both copies")


def place(groups, n: int, cols: int, dataflow: str, *, layer: str = "") -> np.ndarray:
    """A permutation of ``n`` columns placing the columns of every group in distinct PE columns.

    Array column ``j`` computes ``perm[j]``; identity where that already holds.

    Greedy: every conflicting copy swaps places with the nearest column whose move breaks no
    group; :class:`PlacementError` if none is found (e.g. ``cols`` smaller than a group).
    """
    where = f"layer {layer}: " if layer else ""
    if dataflow == Dataflow.IS and len(groups):
        check_placement(groups, None, cols, dataflow, layer=layer)
    if any(len(g) > cols for g in groups):
        raise PlacementError(f"{where}{max(len(g) for g in groups)} copies of a neuron need "
                             f"as many PE columns; the array has {cols}")
    group_of = {int(c): i for i, g in enumerate(groups) for c in g}
    perm = np.arange(n)
    pos = np.arange(n)

    def ok(gi: int) -> bool:
        res = [int(pos[c]) % cols for c in groups[gi]]
        return len(set(res)) == len(res)

    def swap(a: int, b: int) -> None:  # model columns a and b trade array columns
        pa, pb = int(pos[a]), int(pos[b])
        perm[pa], perm[pb] = b, a
        pos[a], pos[b] = pb, pa

    for g in groups:
        for c in g[1:]:
            taken = {int(pos[o]) % cols for o in g if o != c}
            if int(pos[c]) % cols not in taken:
                continue
            for j in sorted(range(n), key=lambda j: (abs(j - int(pos[c])), j)):
                if j % cols in taken:
                    continue
                other = int(perm[j])
                swap(c, other)
                og = group_of.get(other)
                if og is None or ok(og):
                    break
                swap(c, other)  # undo: the move broke the other neuron's group
            else:
                raise PlacementError(f"{where}no placement keeps neuron {g[0]}'s copies in "
                                     f"distinct PE columns on {cols} columns")
    check_placement(groups, perm, cols, dataflow, layer=layer)
    return perm


# -- the protected network ---------------------------------------------------------------------

@dataclass
class LayerProtection:
    """One protected layer.

    ``critical`` neurons (original indices), ``groups`` (per neuron its model columns, original
    first), ``permutation`` and the units in array-column order.
    """

    layer: int
    name: str
    critical: list
    groups: list
    permutation: np.ndarray
    units: dict

    def options(self) -> LayerOptions:
        """The layer's run-time options: permutation and units."""
        return LayerOptions(permutation=self.permutation, units=dict(self.units))

    def to_dict(self) -> dict:
        """The layer's protection as a JSON-ready dict."""
        u = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
             for k, v in self.units.items()}
        return {"layer": self.layer, "name": self.name, "critical": list(map(int, self.critical)),
                "groups": [list(map(int, g)) for g in self.groups],
                "permutation": self.permutation.tolist(), "units": u}


@dataclass
class Protected:
    """A protected network: the model, per protected layer its options, what was skipped."""

    model: Model
    method: str
    voter: str
    layers: dict
    skipped: dict = field(default_factory=dict)
    original_neurons: int = 0
    lcu_mode: str = "halve"

    @property
    def config(self) -> dict:
        """Configuration fields the protected network needs on the accelerator."""
        if self.method == "tmr":
            return {"tmr": self.voter, "lcu": False}
        if self.lcu_mode == "exact":
            return {"lcu": True, "lcu_mask": (1 << self.model.a_bits) - 1}
        return {"lcu": True}

    def options(self) -> dict:
        """Per layer index, the :class:`LayerOptions` to run the protected model with."""
        return {i: lp.options() for i, lp in self.layers.items()}

    @property
    def protected_neurons(self) -> int:
        """The number of critical neurons protected."""
        return sum(len(lp.critical) for lp in self.layers.values())

    @property
    def neurons(self) -> int:
        """Hidden neurons of the protected network (original + copies)."""
        extra = 1 if self.method == "lcu" else 2
        return self.original_neurons + extra * self.protected_neurons

    def to_dict(self) -> dict:
        """The protection as a JSON-ready dict (format ``ftaccel-protection``)."""
        return {"format": "ftaccel-protection", "version": 1, "model": self.model.name,
                "method": self.method, "voter": self.voter if self.method == "tmr" else None,
                "lcu_mode": self.lcu_mode if self.method == "lcu" else None,
                "config": self.config,
                "original_neurons": self.original_neurons, "neurons": self.neurons,
                "protected_neurons": self.protected_neurons,
                "skipped": {str(k): v for k, v in self.skipped.items()},
                "layers": [lp.to_dict() for lp in self.layers.values()]}

    def to_json(self) -> str:
        """The protection as JSON text."""
        return json.dumps(self.to_dict(), indent=1)


def _hidden_neurons(model: Model) -> int:
    prods = product_layers(model)
    return int(sum(model.layers[i].matrix.shape[1] for i in prods[:-1]))


def _consumer(model: Model, li: int) -> tuple[int, tuple | None] | str:
    """The product node that reads ``li``'s neurons, and the Flatten on the way (order, shape).

    The path from ``li`` may pass only through single-reader host nodes that keep channels
    apart (pooling, ReLU, Clip, Flatten); otherwise the reason the copies cannot be added.
    """
    shapes = model.shapes()
    flatten = None
    j = li
    while True:
        readers = model.readers(j)
        if len(readers) != 1:
            return (f"its output is read by {len(readers)} nodes (a branch): the copies would "
                    f"reach each") if readers else "no product layer reads it"
        j = readers[0]
        layer = model.layers[j]
        if isinstance(layer, Flatten):
            flatten = (layer.order, shapes[model.sources(j)[0]])
        elif isinstance(layer, Dense | Conv2D):
            return j, flatten
        elif isinstance(layer, DepthwiseConv2D | Add | Concat):
            return (f"its output reaches {layer.kind} node {layer.name}, whose channels the "
                    f"copies would change")


def _extend_consumer(model: Model, li: int, copies: np.ndarray, mode: str) -> tuple[int, object]:
    """The next product layer after ``li`` with input channels for the copies of ``copies``.

    ``copies`` are original channel indices; the new rows equal the originals (``mode="copy"``) or
    zero.
    """
    C = model.layers[li].matrix.shape[1]
    found = _consumer(model, li)
    if isinstance(found, str):
        raise ValueError(f"layer {model.layers[li].name}: {found}")
    j, flatten = found
    layer = model.layers[j]
    w = layer.weights
    if isinstance(layer, Conv2D):
        extra = w[:, :, copies] if mode == "copy" else np.zeros_like(w[:, :, copies])
        return j, dataclasses.replace(layer, weights=np.concatenate([w, extra], axis=2))
    if flatten is None or len(flatten[1]) == 1:
        extra = w[copies] if mode == "copy" else np.zeros_like(w[copies])
        return j, dataclasses.replace(layer, weights=np.concatenate([w, extra], axis=0))
    order, (H, W, _) = flatten
    if order == "hwc":
        w4 = w.reshape(H, W, C, -1)
        ax = 2
    else:
        w4 = w.reshape(C, H, W, -1)
        ax = 0
    sel = np.take(w4, copies, axis=ax)
    extra = sel if mode == "copy" else np.zeros_like(sel)
    w4 = np.concatenate([w4, extra], axis=ax)
    return j, dataclasses.replace(layer, weights=w4.reshape(-1, w.shape[1]))


def protect(model: Model, critical: dict, method: str, cfg, *, voter: str = "word",
            lcu_mode: str = "halve") -> Protected:
    """Protect ``critical`` (``{layer index: [neuron, ...]}``) by ``method`` on ``cfg``'s array.

    The array's ``cols`` and ``dataflow`` decide the placement.  See the module docstring.
    """
    if lcu_mode not in LCU_MODES:
        raise ValueError(f"invalid lcu_mode = {lcu_mode!r}: one of {', '.join(LCU_MODES)}")
    if method not in METHODS:
        raise ValueError(f"invalid method = {method!r}: one of {', '.join(METHODS)}")
    if voter not in VOTERS:
        raise ValueError(f"invalid voter = {voter!r}: one of {', '.join(VOTERS)}")
    if not model.quantized:
        raise ValueError(f"model {model.name} is not quantised")
    if method == "lcu" and model.fixed:
        raise ModelError(f"model {model.name} has fixed-point output stages (scales as its "
                         f"quantiser gave them); the LCU's split lanes halve by one more "
                         f"power-of-two shift, which the multiplier path does not have: protect "
                         f"it with tmr")
    prods = product_layers(model)
    layers = list(model.layers)
    out, skipped = {}, {}
    for li in sorted(critical):
        crit = sorted({int(c) for c in critical[li]})
        if not crit:
            continue
        if li not in prods:
            raise ValueError(f"layer {li} is not a product layer")
        layer = layers[li]
        N = layer.matrix.shape[1]
        if crit[0] < 0 or crit[-1] >= N:
            raise ValueError(f"layer {layer.name}: neuron {crit[-1]} not in 0 … {N - 1}")
        if li == prods[-1]:
            skipped[li] = {"neurons": crit, "why": "logits layer: copies would be class scores"}
            continue
        if isinstance(layer, DepthwiseConv2D):
            skipped[li] = {"neurons": crit, "why": "depthwise: each channel is its own "
                                                   "one-column product, no column to copy to"}
            continue
        path = _consumer(_with(model, layers), li)
        if isinstance(path, str):
            skipped[li] = {"neurons": crit, "why": path}
            continue
        if method == "lcu" and not layer.relu:
            skipped[li] = {"neurons": crit, "why": "no ReLU: the LCU is only sound for "
                                                   "non-negative outputs"}
            continue
        c = np.asarray(crit)
        reps = 1 if method == "lcu" else 2
        copies = np.repeat(c, reps)
        w = layer.weights
        # the consumer first, while the layers still fit together
        halve = method == "lcu" and lcu_mode == "halve"
        j, nxt = _extend_consumer(_with(model, layers), li, copies, "copy" if halve else "zero")
        layers[j] = nxt
        rq = layer.requant
        if rq is not None:  # a per-channel multiplier follows its copies
            rq = requant_columns(rq, np.concatenate([np.arange(N), copies]))
        layers[li] = dataclasses.replace(
            layer, weights=np.concatenate([w, np.take(w, copies, axis=-1)], axis=-1),
            bias=np.concatenate([layer.bias, layer.bias[copies]]), requant=rq)
        Np = N + len(copies)
        groups = [[int(ci)] + [N + reps * k + r for r in range(reps)]
                  for k, ci in enumerate(crit)]
        perm = place(groups, Np, cfg.cols, cfg.dataflow, layer=layer.name)
        pos = np.empty(Np, dtype=np.int64)
        pos[perm] = np.arange(Np)
        if method == "lcu":
            split = np.zeros(Np, dtype=bool)
            if halve:
                split[pos[np.concatenate(groups)]] = True
            units = {"split": split,
                     "lcu_pairs": np.array([[pos[a], pos[b]] for a, b in groups], np.int64)}
        else:
            units = {"tmr_triples": np.array([[pos[x] for x in g] for g in groups], np.int64),
                     "tmr_voter": voter}
        out[li] = LayerProtection(li, layer.name, crit, groups, perm, units)
    pm = _with(model, layers)
    return Protected(model=pm, method=method, voter=voter, layers=out, skipped=skipped,
                     original_neurons=_hidden_neurons(model), lcu_mode=lcu_mode)


def _with(model: Model, layers) -> Model:
    """``model`` with other ``layers``, every other field kept.

    A fixed-point model's scales too: the copies of a neuron have its scale.
    """
    return dataclasses.replace(model, layers=tuple(layers), info=dict(model.info))


# -- the voter around any engine ---------------------------------------------------------------

class VotingEngine:
    """Any engine plus the selective-TMR voter.

    ``units["tmr_triples"]`` (array-column triples) are voted after the product
    (:func:`golden.tmr.word_vote` or ``bitwise_vote``, ``units["tmr_voter"]``) and the voted word
    written to the three places. Other units pass through to ``inner`` (so the LCU runs in the inner
    engine: the hardware's).  When the inner engine's configuration has that voter on the top
    (``cfg.tmr``), the triples pass through too: the vote is the hardware's (on chip in the
    cycle model and the RTL).  :attr:`on_chip` counts the products voted on chip.
    """

    def __init__(self, inner=None, cfg=None):
        self.inner = inner if inner is not None else FunctionalEngine(cfg)
        self.cfg = self.inner.cfg
        self.name = getattr(self.inner, "name", "engine")
        self.on_chip = 0

    def product(self, p: Product) -> ProductResult:
        """The inner engine's product ``p``, with the TMR triples voted."""
        units = dict(p.units)
        triples = units.pop("tmr_triples", None)
        voter = units.pop("tmr_voter", "word")
        if triples is not None and len(triples) and getattr(self.cfg, "tmr", "none") == voter:
            self.on_chip += 1
            return self.inner.product(dataclasses.replace(
                p, units={**units, "tmr_triples": triples, "tmr_voter": voter}))
        res = self.inner.product(dataclasses.replace(p, units=units))
        if triples is None or not len(triples):
            return res
        q = vote_columns(res.q, triples, width=self.cfg.a_width, voter=voter)
        return ProductResult(q=q, cycles=res.cycles, alarms=res.alarms)


# -- a fast engine for fault campaigns on protected networks -----------------------------------

class FaultEngine:
    """Closed-form engine for campaigns on protected networks (Fig. 4.17, HAS).

    Per product: the accumulators (exact, or with a PE fault through the fast fault model
    :func:`golden.fault_models.faulty_product`: ``fault``, a register :class:`Fault` in every
    product layer, permanent; ``errors``, per layer index the per-PE profile's error
    instances), the output stage with the split lanes, then ``flips`` (per layer index,
    ``(rows, array column, bit)``: bit flips in the neuron outputs as they leave the array,
    Ahmadilivani 2025's fault model), then the LCU pairs (mask ``cfg.lcu_mask``) and the TMR votes,
    in the order the hardware applies them.  With no fault it equals :class:`VotingEngine` around
    the functional engine (tested).
    """

    name = "fast-protected"

    def __init__(self, cfg, *, fault=None, flips=None, errors=None):
        self.cfg = cfg
        self.fault = fault
        self.flips = flips or {}
        self.errors = errors or {}

    def product(self, p: Product) -> ProductResult:
        """The product ``p`` with the engine's faults, flips, LCU corrections and TMR votes."""
        cfg = self.cfg
        opts = golden_units.options(cfg, p.units)
        bmap = golden_units.bypass_map(opts)
        fault = p.fault or self.fault
        errors = self.errors.get(p.index)
        acc = None
        if fault is None and errors is not None:  # the vectorised shortcut where it applies
            acc = profile_acc(cfg, p.A, p.B, p.bias, errors, bmap)
        if acc is not None:
            pass
        elif fault is not None or errors is not None:
            acc, _ = faulty_product(cfg, p.A, p.B, p.bias, fault, errors=errors, bypass_map=bmap)
        elif bmap is not None and np.any(bmap):
            acc = pruned_matmul(cfg.dataflow, p.A, p.B, bmap, p.bias, acc_bits=cfg.acc_bits)
        else:
            acc = np.rint(p.A.astype(np.float64) @ p.B.astype(np.float64)).astype(np.int64)
            acc += p.bias
        # wide: a fault can push the accumulator beyond gemmlowp's 32 bits (the hardware's
        # fixed-point path still gives a value)
        q = p.requant.apply(acc, 0, cfg.a_width, wide=True,
                            **golden_units.requant_keywords(cfg, opts))
        if p.index in self.flips:
            rows, col, bit = self.flips[p.index]
            col = col - p.part  # a depthwise node's channel c is column 0 of its product c
            if 0 <= col < q.shape[1]:
                q[rows, col] = flip_bits(q[rows, col], bit, cfg.a_width)
        q = golden_units.correct(cfg, q, opts)  # the LCU pairs, then the TMR votes
        M, K = p.A.shape
        return ProductResult(q=q, cycles=cycle_count(cfg, M, K, p.B.shape[1],
                                                     golden_units.temporal_batch(opts)))
