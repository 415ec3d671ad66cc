"""Fault campaigns on networks.

Fault populations, protections, outcome classes, statistics (issue 15; README, Fault campaigns,
§10). Pure numpy: the runner (TOML spec, Dask, durable chunks, reports) is :mod:`app.campaign`.

**Protections** (:class:`Protection`) are configurations of the same accelerator plus run-time
unit options: ``none``; ``afd`` (anomaly suppression, 1/2 gates, drop/clip, γ = 2**shift);
``median`` (Median-3/5); ``sanity`` (Sanity-Check: spatial, temporal or both; detection
counted); ``bypass`` (PE bypass of the PEs known to be faulty: a stuck-at fault's PE — a
transient flip cannot be known in advance — or a profile's PEs at or above a rate threshold);
``lcu`` / ``tmr`` (the critical neurons protected by splitting + LCU or selective TMR,
:mod:`app.protect`: the protection carries its own *protected model* and per-layer options
— copies, placement permutation, split lanes, LCU pairs or TMR triples — and is judged on its
own schedule: more columns, more passes, every fault model drawn over them).

**Neuron permutation** (HAS, Shresthamali HAS): a campaign may run the network with a permutation of
each product layer's neurons (``rtlgen schedule``); it applies to every protection on the plain
model (``none``, ``afd``, ``median``, ``sanity``, ``bypass``).  ``lcu`` / ``tmr`` keep their own
placement (their models have more columns; the permutation names the original neurons). Stored
weights with bit errors are drawn in the model's column order and permuted with the product, so the
same weights are corrupted with or without a permutation.

**Fault models** (one *work item* each; every item draws its randomness from
``SeedSequence([seed, item id])``, never from a worker, so the results do not depend on how
the items are spread):

``register``
    One fault in a PE register (weight, activation, partial sum) or in the MAC logic
    (multiplier ``product``, adder ``sum``) of the R×C data array
    (:class:`golden.faults.Fault`).
    Stuck-at faults are permanent: they act in every product layer (the array is faulty).
    A flip acts once: it is drawn over (product layer, pass, streamed vector, PE, register,
    bit) — the cycles in which the register holds that layer's data; a flip in an idle
    cycle is masked by construction and is left out of the population — and its cycle is
    computed for each protection's own schedule (:func:`flip_cycle`), so every protection
    sees the same physical event.
``bit_errors``
    Algorithm 6.1 (Ozen 2023 §6.3.1) at a rate in the int8 weights (static: every product
    layer's stored weights) and/or activations (dynamic: every product layer's streamed
    input, drawn over the whole batch).  The Sanity-Check column and sanity vectors are
    computed from the error-free values (the seed injects after checksum encoding, Ozen 2023
    §6.3.1).
``pe_profile``
    the HAS report's per-PE fault profiles: rates ~ U(0, FR_max), binomial error instances per PE
    and step, flip-to-0 / flip-to-1 / bit flip on the PE's partial sum
    (:func:`golden.fault_models.profile_errors`), in every product layer.
``pe_bypass``
    Ozen 2023 ch. 10: a Bernoulli(rate) map of faulty PEs, all bypassed (accuracy vs bypass rate).

**Outcomes** (Ahmadilivani 2025 §6.1.1; ENFOR-SA): compared with the same protection's fault-free
run on the same images: ``masked`` (logits equal, no alarm); ``sdc`` (some logits differ, no top-1
prediction changed); ``critical`` (some top-1 prediction changed); ``detected`` (a Sanity-Check
alarm fired; which alarm is recorded, and whether the prediction changed, for the coverage of
error-caused mispredictions, Ozen 2023 Fig. 6.10); ``corrected`` (no effect under this protection
while the same fault changed the unprotected network's logits: the protection's unit corrected it);
``repaired`` (the protection *acted* — it bypassed the faulty PEs, or the copies of a protected
neuron disagreed and the LCU corrected or the voter voted — and nothing of the fault got past it,
yet the output differs from the fault-free one: a pruned PE's missing products, an LCU that lets a
1→0 flip through; degraded, not silently corrupted, so it is never counted as critical SDC; its
top-1 changes are counted apart). Whether the fault got past the protection is decided product by
product (:class:`WatchingEngine`): the faulty product, repaired, against the same product without
the fault but with the same repair (the same bypass map; the LCU and voter columns left out).  A
sweep's trials at rate 0 inject nothing: they are ``fault_free``, never counted as faults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from ftaccel import units
from ftaccel.golden import units as golden_units
from ftaccel.golden.array import pass_starts, temporal_stream_len
from ftaccel.golden.fault_models import (
    PROFILE_MODES,
    FastFaultEngine,
    bit_errors,
    pe_profile,
    profile_errors,
    run_from,
)
from ftaccel.golden.faults import Fault, sample_size
from ftaccel.golden.mapping import tiles
from ftaccel.golden.network import LayerOptions, Model, product_layers, run, state_at

__all__ = ["Protection", "PROTECTION_KINDS", "FAULT_MODELS", "OUTCOMES", "TRACE_OUTCOMES",
           "REPAIRING", "Context", "WatchingEngine", "RegisterPopulation", "flip_cycle",
           "classify", "evaluate_register_fault", "evaluate_trial", "statistical_size",
           "margin_of", "z_value", "wilson", "mean_ci", "layer_dims", "faulted_nodes"]

#: The protection kinds: ``none``, every unit's (:func:`ftaccel.units.protection_kinds`) and
#: ``has`` (a neuron permutation, no hardware).  Kinds combine with ``+`` (``sanity+bypass``).
PROTECTION_KINDS = (*units.protection_kinds(), "has")
#: Kinds that repair rather than detect: their acting is watched (:class:`WatchingEngine`).
REPAIRING = ("bypass", "lcu", "tmr")
FAULT_MODELS = ("register", "bit_errors", "pe_profile", "pe_bypass")
#: Outcome classes of a fault (the shares of a protection are over these).
OUTCOMES = ("masked", "sdc", "critical", "detected", "corrected", "repaired")
#: Every value of the trace's ``outcome``: a sweep's trials at rate 0 are ``fault_free``.
TRACE_OUTCOMES = (*OUTCOMES, "fault_free")


# -- protections -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Protection:
    """One protection: configuration changes and run-time unit options.

    ``kind`` is one kind or a combination joined by ``+`` (``sanity+bypass``): the kinds'
    configuration changes and unit options together.
    """

    name: str
    kind: str
    config: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    #: bypass: bypass the PEs known to be faulty (profile: rate ≥ ``threshold`` × FR_max)
    threshold: float = 0.5
    #: afd / median: the product layers (names) whose inputs the unit filters; the unit is
    #: switched off at run time for the others (None: every product layer)
    layers: tuple | None = None
    #: lcu / tmr: the protected model (copies added); lcu / tmr / has: its per-layer
    #: :class:`golden.network.LayerOptions` (placement permutation, split, lcu_pairs or
    #: tmr_triples); None: the campaign's model and permutation
    model: object = field(default=None, compare=False, repr=False)
    options: dict | None = field(default=None, compare=False, repr=False)
    #: lcu / tmr / has: what was protected (NVF threshold or file, critical and hidden
    #: neurons; the permutation file)
    info: dict = field(default_factory=dict, compare=False)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds this protection combines (one for a single kind)."""
        return tuple(self.kind.split("+"))

    def has(self, kind: str) -> bool:
        """Whether ``kind`` is one of this protection's kinds."""
        return kind in self.kinds

    @property
    def repairs(self) -> bool:
        """Whether it repairs (bypass, LCU, TMR): its acting is watched."""
        return any(self.has(k) for k in REPAIRING)

    def layer_units(self, model: Model) -> dict:
        """Per product layer, the unit options that switch this protection's filters off."""
        if self.layers is None or not (self.has("afd") or self.has("median")):
            return {}
        out = {}
        for i in product_layers(model):
            if model.layers[i].name in self.layers:
                continue
            off: dict = {}
            if self.has("afd"):
                off["afd"] = {**self.units["afd"], "enable": 0}
            if self.has("median"):
                off["median_enable"] = False
            out[i] = off
        return out

    @property
    def unit(self) -> str:
        """The unit(s) that detect or correct, as named in the trace."""
        names = {"afd": "afd", "median": f"median{self.config.get('median', '')}",
                 "sanity": "sanity", "bypass": "bypass", "lcu": "lcu", "tmr": "tmr"}
        return "+".join(names[k] for k in self.kinds if k in names)

    def cfg(self, base):
        """The configuration ``base`` with this protection's changes."""
        return base.replace(**self.config)


# -- statistics --------------------------------------------------------------------------------

def z_value(confidence: float) -> float:
    """Two-sided normal quantile: 1.96 for 95 %."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def statistical_size(population: int, margin: float, confidence: float) -> int:
    """Ahmadilivani 2025 Eq. 4.7 with t from the confidence level and p = 0.5 (the worst case)."""
    return sample_size(population, e=margin, t=z_value(confidence))


def margin_of(n: int, population: int, confidence: float) -> float:
    """The error margin ``e`` of a sample of ``n`` of ``population`` (Ahmadilivani 2025 Eq. 4.7).

    p = 0.5 (the worst case), with the finite-population correction of Eq. 4.7:
    ``e = t·sqrt(p(1−p)/n · (N−n)/(N−1))``; 0 when the sample is the whole population, 1 for
    an empty sample.
    """
    if n <= 0:
        return 1.0
    if n >= population:
        return 0.0
    t = z_value(confidence)
    fpc = (population - n) / (population - 1) if population > 1 else 0.0
    return float(t * math.sqrt(0.25 / n * fpc))


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (``(0, 1)`` for an empty sample)."""
    if n == 0:
        return (0.0, 1.0)
    z = z_value(confidence)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # at k = 0 and k = n the bound is exactly 0 or 1 (the formula leaves rounding dust)
    return (0.0 if k == 0 else max(0.0, mid - half), 1.0 if k == n else min(1.0, mid + half))


#: Student-t 97.5 % quantiles for 1 … 30 degrees of freedom (then the normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci(values) -> tuple[float, float, float]:
    """Mean and 95 % confidence interval (Student t) of independent trials."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if len(v) == 1:
        return (m, m, m)
    t = _T975[len(v) - 2] if len(v) - 1 <= len(_T975) else 1.96
    half = t * float(v.std(ddof=1)) / math.sqrt(len(v))
    return (m, m - half, m + half)


# -- context: the network, the data, the fault-free runs ---------------------------------------

def layer_dims(model: Model, n_images: int) -> list[tuple[int, int, int, int]]:
    """``(layer index, M, K, N)`` of every product node a campaign faults, for ``n_images``.

    Dense and convolution nodes: one M×K @ K×N product each on the array.  Depthwise nodes
    (C one-column products) and the host nodes (pooling, Add, Concat, ReLU, Clip, Flatten)
    run fault-free (:func:`faulted_nodes`).
    """
    out = []
    shapes = model.shapes()
    for i in product_layers(model):
        layer = model.layers[i]
        if layer.kind == "dwconv":
            continue
        new = shapes[i]
        B = layer.matrix
        M = n_images * (math.prod(new[:-1]) if len(new) > 1 else 1)
        out.append((i, M, B.shape[0], B.shape[1]))
    return out


def faulted_nodes(model: Model) -> dict[str, list[str]]:
    """Which nodes a campaign can fault (``faulted``) and which run fault-free, and why."""
    faulted = {i for i, *_ in layer_dims(model, 1)}
    out: dict[str, list[str]] = {"faulted": [], "depthwise": [], "host": []}
    for i, layer in enumerate(model.layers):
        key = "faulted" if i in faulted else "depthwise" if layer.kind == "dwconv" else "host"
        out[key].append(layer.name)
    return out


@dataclass
class Clean:
    """A protection's fault-free run: logits, predictions, every layer's output and cycles."""

    cfg: object
    units: dict
    logits: np.ndarray
    outputs: list
    alarms: int
    layers: list = field(default_factory=list)


class Context:
    """What every work item needs, built once per worker.

    The model, the quantised images, the labels, and each protection's configuration and fault-free
    run.  ``permutations`` (product-layer index → neuron permutation, ``rtlgen schedule``) apply
    to every protection on the campaign's model (not to ``lcu`` / ``tmr``, which have their own
    placement).
    """

    def __init__(self, model: Model, x: np.ndarray, labels: np.ndarray, base_cfg,
                 protections: list[Protection], permutations: dict | None = None,
                 profile: tuple | None = None):
        self.model, self.x, self.labels, self.base = model, x, labels, base_cfg
        #: the pinned chip of ``pe_profile`` faults: (R×C rates, its FR_max), or None
        self.profile = None if profile is None else (np.asarray(profile[0], np.float64),
                                                     float(profile[1]))
        self.protections = protections
        self.permutations = {int(k): np.asarray(v, dtype=np.int64)
                             for k, v in (permutations or {}).items()}
        self.dims = layer_dims(model, len(x))
        self.products = [d[0] for d in self.dims]
        self.clean: dict[str, Clean] = {}
        self.layer_units = {p.name: p.layer_units(self.model_of(p)) for p in protections}
        for p in protections:
            cfg = p.cfg(base_cfg)
            units = dict(p.units)
            if cfg.bypass:
                units.setdefault("bypass_map", np.zeros((cfg.rows, cfg.cols), bool))
            res = run(self.model_of(p), x, FastFaultEngine(cfg), units=units, record=True,
                      options=self.options(p))
            self.clean[p.name] = Clean(cfg, units, res.logits, res.outputs,
                                       sum(sum(st.alarms.values()) for st in res.layers),
                                       list(res.layers))

    def model_of(self, protection: Protection) -> Model:
        """The model ``protection`` runs: its protected model, or the campaign's."""
        return protection.model if protection.model is not None else self.model

    def dims_of(self, protection: Protection) -> list[tuple[int, int, int, int]]:
        """``(layer, M, K, N)`` of every product layer of the model ``protection`` runs."""
        if protection.model is None:
            return self.dims
        return layer_dims(protection.model, len(self.x))

    def base_options(self, protection: Protection) -> dict:
        """Per layer, the protection's own options, or the campaign's permutation."""
        if protection.options is not None:
            return dict(protection.options)
        return {i: LayerOptions(permutation=p) for i, p in self.permutations.items()}

    def options(self, protection: Protection, options: dict | None = None) -> dict | None:
        """Per-layer options of one run: ``options`` (faults, errors) over the protection's."""
        return _merge(options, self.layer_units[protection.name], self.base_options(protection))

    def accuracy(self, logits) -> float:
        """Top-1 accuracy of ``logits`` against the labels."""
        return float(np.mean(np.argmax(logits, axis=1) == self.labels))

    def cycles(self, protection: Protection) -> int:
        """Accelerator cycles of ``protection``'s fault-free run over every image."""
        return int(sum(st.cycles for st in self.clean[protection.name].layers))

    def run(self, protection: Protection, *, start: int = 0, options=None, units=None,
            one_layer: bool = False, full: bool = False):
        """The network run under ``protection`` from layer ``start`` on the fast fault engine.

        Only what the fault touches is recomputed (:func:`golden.fault_models.run_from`):
        the run starts at ``start`` from the recorded fault-free activations, the faulty
        product computes only the outputs the fault reaches (the rest from this worker's
        cache of fault-free accumulators, per protection), and with ``one_layer`` (the fault
        acts in layer ``start`` only) the later layers run only on the images it changed.
        ``full``: recompute everything from ``start`` (the reference the fast path is tested
        against).
        """
        return self.run_watched(protection, start=start, options=options, units=units,
                                one_layer=one_layer, full=full)[0]

    def run_watched(self, protection: Protection, *, start: int = 0, options=None,
                    units=None, one_layer: bool = False, full: bool = False):
        """:meth:`run`, and whether a repair acted and whether the fault got past it.

        Returns ``(inference, acted, leaked)``: for a repairing protection
        (:attr:`Protection.repairs`) as :class:`WatchingEngine` records them, which compares
        whole products and so runs every layer from ``start`` in full; ``(…, False, False)``
        for the others.
        """
        c = self.clean[protection.name]
        model = self.model_of(protection)
        units = {**c.units, **(units or {})}
        options = self.options(protection, options)
        # the clean runs were overflow-checked; check_fit bounds every partial sum for any
        # int8 input, so the faulty runs need not check again
        if protection.repairs:
            engine = WatchingEngine(c.cfg, checked=False)
            x = state_at(model, self.x, c.outputs, start)
            res = run(model, x, engine, units=units, options=options, start=start)
            return res, engine.acted, engine.leaked
        if full:
            x = state_at(model, self.x, c.outputs, start)
            return run(model, x, FastFaultEngine(c.cfg, checked=False), units=units,
                       options=options, start=start), False, False
        caches = self.__dict__.setdefault("_clean_acc", {})
        engine = FastFaultEngine(c.cfg, checked=False, restrict=True,
                                 clean_cache=caches.setdefault(protection.name, {}),
                                 clean_input=start)
        return run_from(model, self.x, c.outputs, c.logits, engine, start=start,
                        options=options, units=units,
                        one_layer=one_layer and not c.alarms), False, False


def _merge(options: dict | None, layer_units: dict, base: dict | None = None) -> dict | None:
    """Per-layer options of a run.

    ``options`` (fault, units of the fault model) over a protection's per-layer unit switches
    over ``base`` (per layer: the permutation and units of a placement or protection).
    """
    if not layer_units and not base:
        return options
    out = dict(options or {})
    for i in set(layer_units) | set(base or {}) | set(out):
        o = out.get(i) or LayerOptions()
        b = (base or {}).get(i) or LayerOptions()
        perm = o.permutation if o.permutation is not None else b.permutation
        out[i] = LayerOptions(fault=o.fault, units={**b.units, **layer_units.get(i, {}),
                                                    **o.units}, permutation=perm)
    return out


# -- watching a repair -------------------------------------------------------------------------

#: Units keys that carry a fault model's perturbation (not a protection's).
_FAULT_KEYS = ("errors", "stored_weights", "act_errors")
#: Units keys of the corrections after a layer: the LCU's pairs, the voter's triples.
_GROUP_KEYS = ("lcu_pairs", "tmr_triples")


class WatchingEngine(FastFaultEngine):
    """The fast fault model, watching whether a repair acted and whether the fault got past it.

    Results are the fast model's, bit for bit.  Per product it also records:

    ``acted``
        PEs were bypassed (a non-empty bypass map), or the copies of a protected neuron
        disagreed before the LCU corrected or the voter voted them (in a fault-free run they
        are bit-identical: Ahmadilivani 2025 §4.3.1, the split halves; the TMR copies).
    ``leaked``
        In a product that carries the fault, the repaired result differs from the same product
        computed without the fault but with the same repair (the same bypass map and
        corrections) in a column no correction covers: the fault reached the output past the
        protection.  Columns of a pair or triple are the correction's own: what it leaves there
        (an LCU passes a 1→0 flip) is the repair's degradation.
    """

    def __init__(self, cfg, *, checked: bool = True):
        super().__init__(cfg, checked=checked)
        self.acted = False
        self.leaked = False

    def product(self, p):
        """The product ``p`` (as :class:`golden.fault_models.FastFaultEngine`), watched."""
        import dataclasses

        units = dict(p.units)
        groups = {k: units.pop(k) for k in _GROUP_KEYS
                  if units.get(k) is not None and len(units[k])}
        bmap = units.get("bypass_map")
        if bmap is not None and np.any(bmap):
            self.acted = True
        res = super().product(dataclasses.replace(p, units=units))
        if not groups and not self._faulty(p, units):
            return res
        opts = golden_units.options(self.cfg, {**units, **groups})
        raw = res.q
        res.q = golden_units.correct(self.cfg, raw, opts)  # the engine's own order: after
        covered = np.zeros(raw.shape[1], dtype=bool)
        for g in groups.values():
            g = np.asarray(g, dtype=np.int64).reshape(len(g), -1)
            covered[g.ravel()] = True
            if np.any(raw[:, g] != raw[:, g[:, :1]]):
                self.acted = True
        if self._faulty(p, units):
            clean_units = {k: v for k, v in units.items() if k not in _FAULT_KEYS}
            ref = super().product(dataclasses.replace(p, fault=None, units=clean_units)).q
            ref = golden_units.correct(self.cfg, ref, opts)
            if np.any((res.q != ref)[:, ~covered]):
                self.leaked = True
        return res

    @staticmethod
    def _faulty(p, units) -> bool:
        return p.fault is not None or any(units.get(k) is not None for k in _FAULT_KEYS)


# -- register-fault population -----------------------------------------------------------------

def _reg_bits(cfg, registers) -> list[tuple[str, int]]:
    return [(reg, b) for reg in registers for b in range(cfg.register_width(reg, 0))]


def passes_of(cfg, M: int, K: int, N: int) -> tuple[int, int]:
    """(passes or tiles, streamed vectors or steps per pass) of a product."""
    n = len(tiles(cfg.dataflow, cfg.rows, cfg.cols, M, K, N))
    return n, (K if cfg.dataflow == "os" else M if cfg.dataflow == "ws" else N)


def flip_cycle(cfg, M: int, K: int, N: int, register: str, row: int, col: int, tile: int,
               j: int, temporal_batch: int | None = None) -> int:
    """The cycle in which PE (row, col)'s ``register`` holds streamed vector ``j`` of pass ``tile``.

    The cycle counts from the start of the layer's program (OS: step j of tile ``tile``) for
    configuration ``cfg``; a stationary register and the MAC logic are hit in the cycle that vector
    is multiplied (a flipped stationary value is then held).
    """
    R = cfg.rows
    pre = cfg.config_cycles
    if cfg.dataflow == "os":
        return pre + tile * max(K, R) + j + row + col + 1
    stream = M if cfg.dataflow == "ws" else N
    if cfg.temporal:
        nb = temporal_batch or cfg.temporal_batch_max
        span, slot = temporal_stream_len(stream, nb), j + j // nb
    else:
        span, slot = stream, j
    starts = pass_starts(cfg, tiles(cfg.dataflow, R, cfg.cols, M, K, N), span)
    s = pre + cfg.input_stages + int(starts[tile])
    return s + slot + row + col + 1 + (1 if register == "psum" else 0)


class RegisterPopulation:
    """Every register fault of the campaign, indexable.

    Stuck-at faults (PE, register, bit, mode) first, then flips (product layer, pass, vector, PE,
    register, bit). Sites are the R×C data PEs and their bits those of the plain configuration
    ``cfg``: the faults every protection shares (the Sanity-Check's own column and widened bits are
    left out).
    """

    def __init__(self, cfg, dims, registers=("weight", "act", "psum"),
                 modes=("sa0", "sa1", "flip"), layers=None):
        self.cfg = cfg
        self.rb = _reg_bits(cfg, registers)
        self.stuck_modes = [m for m in modes if m != "flip"]
        R, C = cfg.rows, cfg.cols
        self.n_stuck = R * C * len(self.rb) * len(self.stuck_modes)
        self.segments = []  # (layer, M, K, N, passes, per_pass, count)
        if "flip" in modes:
            for (li, M, K, N) in dims:
                if layers is not None and li not in layers:
                    continue
                n_pass, per = passes_of(cfg, M, K, N)
                self.segments.append((li, M, K, N, n_pass, per,
                                      n_pass * per * R * C * len(self.rb)))
        self.size = self.n_stuck + sum(s[-1] for s in self.segments)

    def __len__(self) -> int:
        """The number of register faults."""
        return self.size

    def class_sizes(self) -> dict[tuple[str, str], int]:
        """The population of each site class: ``(register, "stuck-at" | "flip") → faults``."""
        R, C = self.cfg.rows, self.cfg.cols
        out: dict[tuple[str, str], int] = {}
        for reg, _bit in self.rb:
            if self.stuck_modes:
                key = (reg, "stuck-at")
                out[key] = out.get(key, 0) + R * C * len(self.stuck_modes)
            for (_li, _M, _K, _N, n_pass, per, _count) in self.segments:
                key = (reg, "flip")
                out[key] = out.get(key, 0) + n_pass * per * R * C
        return out

    def describe(self, index: int) -> dict:
        """The fault with this index as a dict (layer None = every product layer)."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        R, C = self.cfg.rows, self.cfg.cols
        nrb = len(self.rb)
        if index < self.n_stuck:
            rest, mode = divmod(index, len(self.stuck_modes))
            rest, k = divmod(rest, nrb)
            r, c = divmod(rest, C)
            reg, bit = self.rb[k]
            return {"row": r, "col": c, "register": reg, "bit": bit,
                    "mode": self.stuck_modes[mode], "layer": None, "tile": None, "vector": None}
        index -= self.n_stuck
        for (li, M, K, N, _n_pass, per, count) in self.segments:
            if index < count:
                rest, k = divmod(index, nrb)
                rest, c = divmod(rest, C)
                rest, r = divmod(rest, R)
                tile, j = divmod(rest, per)
                reg, bit = self.rb[k]
                return {"row": r, "col": c, "register": reg, "bit": bit, "mode": "flip",
                        "layer": li, "tile": tile, "vector": j, "dims": (M, K, N)}
            index -= count
        raise IndexError(index)


# -- outcome classes ---------------------------------------------------------------------------

def classify(clean_logits, logits, alarm: bool, baseline_changed: bool | None,
             repaired: bool = False) -> dict:
    """Outcome of one fault under one protection, with the counts it rests on.

    ``repaired``: the protection acted and nothing of the fault got past it
    (:class:`WatchingEngine`); a changed output is then ``repaired``, not SDC.
    """
    changed = np.any(logits != clean_logits, axis=1)
    top1 = np.argmax(logits, axis=1) != np.argmax(clean_logits, axis=1)
    if alarm:
        outcome = "detected"
    elif not changed.any():
        outcome = "corrected" if baseline_changed else "masked"
    elif repaired:
        outcome = "repaired"
    elif top1.any():
        outcome = "critical"
    else:
        outcome = "sdc"
    return {"outcome": outcome, "logits_changed": int(changed.sum()),
            "top1_changed": int(top1.sum())}


def _alarm_name(spatial: int, temporal: int) -> str:
    return "both" if spatial and temporal else "spatial" if spatial else \
        "temporal" if temporal else ""


def _row(ctx: Context, prot: Protection, ran, baseline_changed, extra: dict,
         fault_free: bool = False) -> dict:
    res, acted, leaked = ran
    clean = ctx.clean[prot.name]
    sp = sum(st.alarms.get("spatial", 0) for st in res.layers)
    tp = sum(st.alarms.get("temporal", 0) for st in res.layers)
    cls = classify(clean.logits, res.logits, bool(sp or tp), baseline_changed,
                   repaired=acted and not leaked)
    if fault_free:  # nothing was injected: a fault-free trial, not a masked fault
        cls["outcome"] = "fault_free"
    acc = ctx.accuracy(res.logits)
    unit = prot.unit if cls["outcome"] in ("detected", "corrected", "repaired") else ""
    return {**extra, "protection": prot.name, **cls, "alarm": _alarm_name(sp, tp),
            "spatial_alarms": sp, "temporal_alarms": tp, "unit": unit,
            "acted": int(bool(acted)) if prot.repairs else "", "accuracy": acc,
            "accuracy_drop": ctx.accuracy(clean.logits) - acc}


def _ordered(ctx: Context) -> list[Protection]:
    """The baseline first: its result tells which faults a protection corrected."""
    return sorted(ctx.protections, key=lambda p: p.kind != "none")


def evaluate_register_fault(ctx: Context, desc: dict, fault_id: int, *,
                            full: bool = False) -> list[dict]:
    """One register fault under every protection: one trace row each.

    ``full``: recompute every layer from the faulty one for every image (the reference of
    :meth:`Context.run`'s fast path).
    """
    rows, base_changed = [], None
    for prot in _ordered(ctx):
        clean = ctx.clean[prot.name]
        cfg = clean.cfg
        units = {}
        if prot.has("bypass") and desc["layer"] is None:
            # a permanent fault is known (tested) and its PE bypassed; a flip is not
            bmap = np.zeros((cfg.rows, cfg.cols), bool)
            bmap[desc["row"], desc["col"]] = True
            units["bypass_map"] = bmap
        if desc["layer"] is None:
            f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], desc["mode"])
            opts = {i: LayerOptions(fault=f) for i in ctx.products}
            start, cycle = 0, None
        else:
            M, K, N = desc["dims"]
            cycle = flip_cycle(cfg, M, K, N, desc["register"], desc["row"], desc["col"],
                               desc["tile"], desc["vector"],
                               clean.units.get("temporal_batch"))
            f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], "flip", cycle)
            opts = {desc["layer"]: LayerOptions(fault=f)}
            start = desc["layer"]
        ran = ctx.run_watched(prot, start=start, options=opts, units=units,
                              one_layer=desc["layer"] is not None, full=full)
        extra = {"fault_id": fault_id, "model": "register", "site": desc["register"],
                 "pe_row": desc["row"], "pe_col": desc["col"], "register": desc["register"],
                 "bit": desc["bit"], "mode": desc["mode"], "cycle": -1 if cycle is None
                 else cycle, "layer": "all" if desc["layer"] is None else
                 ctx.model.layers[desc["layer"]].name,
                 "tile": -1 if desc["tile"] is None else desc["tile"],
                 "vector": -1 if desc["vector"] is None else desc["vector"],
                 "rate": math.nan, "trial": -1, "chip": ""}
        row = _row(ctx, prot, ran, base_changed, extra)
        if prot.kind == "none":
            base_changed = row["logits_changed"] > 0
        rows.append(row)
    return rows


#: Which chip a ``pe_profile`` trial runs on: a profile drawn for the trial, or the pinned one.
CHIPS = ("fresh", "pinned")


def trial_profile(ctx: Context, cfg, rate: float, chip: str, rng) -> np.ndarray:
    """The R×C per-PE rates of one ``pe_profile`` trial.

    ``fresh``: Shresthamali HAS §4.2, every PE's rate drawn U(0, ``rate``); ``pinned``: the
    campaign's pinned chip (``[faults] profile``) with its rates scaled by ``rate`` / its FR_max, so
    that its weak PEs stay its weak PEs at every swept rate and the profile's own FR_max runs it
    exactly as written.
    """
    if chip == "pinned":
        prof, fr_max = ctx.profile
        return prof * (rate / fr_max) if fr_max > 0 else prof * 0.0
    return pe_profile(cfg.rows, cfg.cols, rate, rng)


def evaluate_trial(ctx: Context, kind: str, rate: float, trial: int, seed: int,
                   fault_id: int, *, targets=("weights",), profile_mode: str = "bitflip",
                   bits=None, chip: str = "fresh") -> list[dict]:
    """One trial of a rate-driven fault model under every protection.

    Each protection replays the same seeded generator, so bit errors, profiles and bypass maps
    are the same draws for all; a profile's error instances are drawn over each protection's
    own steps (a temporal checksum streams more vectors), so they agree where the schedules
    agree.  ``chip`` (``pe_profile``): a profile drawn for the trial or the pinned one
    (:func:`trial_profile`).  A trial at rate 0 injects nothing: its rows are ``fault_free``.
    """
    rows, base_changed = [], None
    for prot in _ordered(ctx):
        rng = np.random.default_rng(np.random.SeedSequence([seed, fault_id]))
        clean = ctx.clean[prot.name]
        cfg = clean.cfg
        opts, units = {}, {}
        model = ctx.model_of(prot)
        base = ctx.base_options(prot)
        if kind == "bit_errors":
            for i in ctx.products:
                layer = model.layers[i]
                lu = {}
                if "weights" in targets:
                    sw = bit_errors(layer.matrix, rate, model.w_bits, rng)
                    perm = base[i].permutation if i in base else None
                    # drawn in the model's column order; the product runs permuted
                    lu["stored_weights"] = sw if perm is None else sw[:, np.asarray(perm)]
                if "activations" in targets:
                    lu["act_errors"] = (rate, int(rng.integers(1 << 62)))
                opts[i] = LayerOptions(units=lu)
        elif kind == "pe_profile":
            prof = trial_profile(ctx, cfg, rate, chip, rng)
            for (i, M, K, N) in ctx.dims_of(prot):
                errs = profile_errors(cfg, prof, M, K, N, profile_mode, rng, bits=bits,
                                      temporal_batch=clean.units.get("temporal_batch"))
                opts[i] = LayerOptions(units={"errors": errs})
            if prot.has("bypass"):
                units["bypass_map"] = (prof > 0) & (prof >= prot.threshold * rate)
        elif kind == "pe_bypass":
            units["bypass_map"] = rng.random((cfg.rows, cfg.cols)) < rate
        else:
            raise ValueError(f"fault model {kind!r}")
        if kind == "pe_bypass" and not cfg.bypass:
            continue  # bypass needs the bypass hardware: only protections that have it
        ran = ctx.run_watched(prot, options=opts, units=units)
        extra = {"fault_id": fault_id, "model": kind, "site": "+".join(targets)
                 if kind == "bit_errors" else "pe", "pe_row": -1, "pe_col": -1,
                 "register": "psum" if kind == "pe_profile" else "",
                 "bit": -1, "mode": profile_mode if kind == "pe_profile" else
                 "flip" if kind == "bit_errors" else "bypass", "cycle": -1, "layer": "all",
                 "tile": -1, "vector": -1, "rate": rate, "trial": trial,
                 "chip": chip if kind == "pe_profile" else ""}
        row = _row(ctx, prot, ran, base_changed, extra, fault_free=rate == 0)
        if kind == "pe_bypass":
            row["bypass_rate"] = float(np.mean(units["bypass_map"]))
        if prot.kind == "none":
            base_changed = row["logits_changed"] > 0
        rows.append(row)
    return rows


__all__ += ["PROFILE_MODES", "Clean", "CHIPS", "trial_profile"]
