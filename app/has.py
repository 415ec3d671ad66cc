"""HAS: hardware-aware scheduling of a layer's neurons on a faulty array (Shresthamali HAS).

A per-PE fault profile (:func:`golden.fault_models.pe_profile`: every PE's error rate
~ U(0, FR_max)) makes some PE columns worse than others.  In WS the output order decides which
PE column computes each neuron: with a *permutation* ``perm`` array column ``j`` computes
neuron ``perm[j]`` (PE column ``j mod C``, in tile ``j // C``), and the product is un-permuted
after (:class:`golden.network.LayerOptions`), so with no fault the result is bit-identical.
Shresthamali HAS searches the permutation with a genetic algorithm; here:

* :class:`Fitness`: top-1 accuracy of the network with the profile's error instances
  (:func:`golden.fault_models.profile_errors`: binomial per PE, pass and step; flip-to-0,
  flip-to-1 or bit flip of a random partial-sum bit) in the chosen layers, averaged over
  ``evaluations`` draws (Shresthamali HAS §4.4: 3).  The draws are seeded once per fitness object
  and shared by every individual (common random numbers): the fitness is deterministic, so the GA is
  reproducible and cached; the final accuracy is measured on fresh draws (:meth:`Fitness.accuracy`
  with other seeds), so the search cannot overfit its own draws. A layer's errors depend only on its
  shape, never on the permutation: a permutation moves neurons between columns, the errors stay with
  the PEs.
* :func:`ga`: Shresthamali HAS §4.4 as published: population 20, crossover rate 0.6 (order
  crossover, OX1, which keeps a permutation a permutation), mutation rate 0.2 (swap of two genes),
  truncation selection (the best 20 of parents and offspring become the next parents), 100
  generations, 3 runs, the best individual of the runs.  One chromosome per layer: "combined" is one
  individual holding every layer's permutation.  The identity is one of the initial individuals, so
  the search never ends below the unscheduled network on its own draws.
* Two cheap baselines: :func:`nvf_placement` (the most critical neurons on the most robust
  columns: columns ranked by the sum of their PEs' rates, neurons by NVF) and
  :func:`worst_bypass` (the same plus PE bypass, Ozen 2023 ch. 10, of the PEs whose rate is in the
  top ``share``; a bypassed PE's errors are dropped, since its partial-sum register is no
  longer on the path, and its weights are pruned).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ftaccel.errors import one_line, shown
from ftaccel.files import read_json
from ftaccel.golden.fault_models import ProfileErrors, profile_errors
from ftaccel.golden.network import LayerOptions, Model, product_layers, run, state_at

from .protect import FaultEngine

__all__ = ["Fitness", "GAResult", "ga", "nvf_placement", "worst_bypass", "column_rates",
           "check_profile", "check_permutation", "GA_DEFAULTS"]

#: Shresthamali HAS §4.4.
GA_DEFAULTS = {"population": 20, "crossover": 0.6, "mutation": 0.2, "generations": 100,
               "runs": 3, "evaluations": 3}


def check_profile(profile, cfg) -> np.ndarray:
    """The profile as an R×C float array of rates in [0, 1], or ValueError naming the shape."""
    p = np.asarray(profile, dtype=np.float64)
    if p.shape != (cfg.rows, cfg.cols):
        raise ValueError(f"fault profile must be {cfg.rows}×{cfg.cols} (rows × cols of the "
                         f"array), not {'×'.join(map(str, p.shape)) or 'a scalar'}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("fault profile rates must be probabilities 0 … 1")
    return p


def read_profile(path, cfg, what: str) -> tuple[np.ndarray, float | None]:
    """A per-PE fault profile file: its R×C rates and its ``fr_max`` (None when absent).

    The file is a ``profile.json`` of ``rtlgen schedule`` (``{"profile": rows, "fr_max": x}``) or
    the rows alone, read through the input door.  Raises ValueError (a :class:`FileProblem` for
    the file itself) with one line starting ``what path:``; ``fr_max`` must be a rate at least the
    profile's highest.
    """
    doc = read_json(path, what)  # FileProblem: a FIFO, non-UTF-8, deep nesting: one line each
    rows = doc.get("profile") if isinstance(doc, dict) else doc
    try:
        prof = check_profile(rows, cfg)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {path}: {one_line(exc)}") from None
    fr_max = doc.get("fr_max") if isinstance(doc, dict) else None
    if fr_max is not None and (type(fr_max) not in (int, float) or not prof.max() <= fr_max <= 1):
        raise ValueError(f"{what} {path}: fr_max {shown(fr_max)} must be a rate 0 … 1 at least "
                         f"the profile's highest ({prof.max():g})")
    return prof, fr_max


def check_permutation(perm, n: int, what: str = "permutation") -> np.ndarray:
    """``perm`` as an int64 array if it is a permutation of ``0 … n-1``, else ValueError."""
    p = np.asarray(perm)
    if p.shape != (n,) or p.dtype.kind not in "iu" or sorted(p.tolist()) != list(range(n)):
        raise ValueError(f"{what} is not a permutation of 0 … {n - 1}")
    return p.astype(np.int64)


def column_rates(profile) -> np.ndarray:
    """Per PE column, the sum of its PEs' rates.

    Every streamed value passes all R PEs of its column in WS, so this is the column's expected
    errors per value, up to the tiles.
    """
    return np.asarray(profile).sum(axis=0)


def nvf_placement(nvf_values, profile, cols: int) -> np.ndarray:
    """Most critical neurons on the most robust columns.

    Array columns ``j`` (PE column ``j mod C``) ranked by their column's rate, neurons by NVF
    (highest first).
    """
    v = np.asarray(nvf_values, dtype=np.float64)
    n = len(v)
    rate = column_rates(profile)[np.arange(n) % cols]
    slots = np.argsort(rate, kind="stable")
    neurons = np.argsort(-v, kind="stable")
    perm = np.empty(n, dtype=np.int64)
    perm[slots] = neurons
    return perm


def worst_bypass(profile, share: float) -> np.ndarray:
    """R×C bypass map of the ``share`` of PEs with the highest rates."""
    p = np.asarray(profile)
    k = int(round(share * p.size))
    bmap = np.zeros(p.shape, dtype=bool)
    if k:
        bmap.flat[np.argsort(-p, axis=None, kind="stable")[:k]] = True
    return bmap


def _drop_bypassed(e: ProfileErrors, bmap) -> ProfileErrors:
    if bmap is None:
        return e
    keep = ~np.asarray(bmap, dtype=bool)[e.row, e.col]
    return ProfileErrors(e.tile[keep], e.step[keep], e.row[keep], e.col[keep], e.bit[keep],
                         e.mode)


class Fitness:
    """Accuracy of ``model`` on ``x``/``labels`` with ``profile``'s errors, per layer permutation.

    The errors (``mode``) are in ``layers`` (product-layer indices), for a permutation per layer.

    ``evaluations`` error draws, seeded from ``seed``, shared by every call (common random
    numbers); ``bypass_map`` (with a ``cfg.bypass`` configuration) bypasses PEs and drops
    their errors.  The network runs from the first faulty layer on (recorded clean inputs).
    Uses :class:`app.protect.FaultEngine` (the fast fault model).
    """

    def __init__(self, model: Model, x, labels, cfg, profile, mode: str, layers, *,
                 evaluations: int = 3, seed: int = 0, bypass_map=None, bits=None):
        self.model, self.cfg, self.mode = model, cfg, mode
        self.profile = check_profile(profile, cfg)
        prods = product_layers(model)
        self.layers = sorted(int(i) for i in layers)
        if not self.layers or any(i not in prods for i in self.layers):
            raise ValueError(f"layers {layers!r}: product layers of {model.name} are {prods}")
        dw = [model.layers[i].name for i in self.layers if model.layers[i].kind == "dwconv"]
        if dw:
            raise ValueError(f"layers {', '.join(dw)}: depthwise, each channel its own "
                             f"one-column product; HAS has no columns to permute there")
        self.labels = np.asarray(labels)
        self.bypass_map = bypass_map
        self.bits = bits
        self._engine = FaultEngine
        start = self.layers[0]
        clean = run(model, np.asarray(x), self._engine(cfg), record=True, stop=start)
        # what the nodes from the first faulty layer on read (on a graph, maybe several)
        self.x0 = state_at(model, np.asarray(x), clean.outputs, start)
        self.start = start
        self.images = len(x)
        # M, K, N of every faulty layer for this batch
        shapes = model.shapes()
        self.dims = {}
        for i in self.layers:
            layer = model.layers[i]
            K, N = layer.matrix.shape
            m = int(np.prod(shapes[i][:-1])) if len(shapes[i]) > 1 else 1
            self.dims[i] = (self.images * m, K, N)
        self.seeds = [(seed, e) for e in range(evaluations)]
        self._errors = {s: self._draw(s) for s in self.seeds}
        self.calls = 0
        self._cache: dict = {}

    def _draw(self, s) -> dict:
        out = {}
        for i in self.layers:
            M, K, N = self.dims[i]
            rng = np.random.default_rng([*s, i])
            e = profile_errors(self.cfg, self.profile, M, K, N, self.mode, rng, bits=self.bits)
            out[i] = _drop_bypassed(e, self.bypass_map)
        return out

    def accuracy(self, perms: dict | None, seeds=None) -> np.ndarray:
        """Accuracy per error draw (``seeds``: other draws than the fitness' own)."""
        opts = {}
        for i in self.layers:
            units = {} if self.bypass_map is None else {"bypass_map": self.bypass_map}
            p = None if perms is None or perms.get(i) is None else perms[i]
            opts[i] = LayerOptions(permutation=p, units=units)
        accs = []
        for s in (self.seeds if seeds is None else seeds):
            errors = self._errors[s] if seeds is None else self._draw(s)
            eng = self._engine(self.cfg, errors=errors)
            lg = run(self.model, self.x0, eng, options=opts, start=self.start).logits
            accs.append(float(np.mean(np.argmax(lg, 1) == self.labels)))
        return np.array(accs)

    def __call__(self, perms: dict) -> float:
        """The mean accuracy under the per-layer permutations ``perms`` (cached per permutation)."""
        key = tuple(tuple(np.asarray(perms[i]).tolist()) for i in self.layers)
        if key not in self._cache:
            self.calls += 1
            self._cache[key] = float(self.accuracy(perms).mean())
        return self._cache[key]


@dataclass
class GAResult:
    """The best permutation per layer, its fitness, and per run the best fitness per generation."""

    perms: dict
    fitness: float
    identity_fitness: float
    history: list = field(default_factory=list)
    evaluations: int = 0
    settings: dict = field(default_factory=dict)


def _ox(a: np.ndarray, b: np.ndarray, rng) -> np.ndarray:
    """Order crossover (OX1): a slice of ``a``, the rest in ``b``'s order."""
    n = len(a)
    if n < 2:
        return a.copy()
    i, j = sorted(rng.choice(n + 1, 2, replace=False))
    child = np.full(n, -1, dtype=np.int64)
    child[i:j] = a[i:j]
    rest = b[~np.isin(b, a[i:j])]
    child[np.r_[0:i, j:n]] = rest
    return child


def ga(fitness: Fitness, *, population: int = 20, crossover: float = 0.6,
       mutation: float = 0.2, generations: int = 100, runs: int = 3, seed: int = 0,
       progress=None) -> GAResult:
    """The HAS genetic algorithm over one permutation per faulty layer (module docstring)."""
    sizes = {i: fitness.dims[i][2] for i in fitness.layers}
    ident = {i: np.arange(n) for i, n in sizes.items()}
    f_id = fitness(ident)
    best, best_f, history = ident, f_id, []
    for r in range(runs):
        rng = np.random.default_rng([seed, r])
        pop = [ident] + [{i: rng.permutation(n) for i, n in sizes.items()}
                         for _ in range(population - 1)]
        fit = [fitness(p) for p in pop]
        hist = [max(fit)]
        for g in range(generations):
            kids = []
            for _ in range(population):
                a, b = rng.choice(population, 2, replace=False)
                pa, pb = pop[a], pop[b]
                child = {i: (_ox(pa[i], pb[i], rng) if rng.random() < crossover
                             else pa[i].copy()) for i in sizes}
                if rng.random() < mutation:
                    for i, n in sizes.items():
                        if n > 1:
                            u, v = rng.choice(n, 2, replace=False)
                            child[i][[u, v]] = child[i][[v, u]]
                kids.append(child)
            allp = pop + kids
            allf = fit + [fitness(k) for k in kids]
            order = np.argsort(-np.asarray(allf), kind="stable")[:population]
            pop = [allp[k] for k in order]
            fit = [allf[k] for k in order]
            hist.append(fit[0])
            if progress:
                progress(r, g, fit[0])
        history.append(hist)
        if fit[0] > best_f:
            best, best_f = pop[0], fit[0]
    return GAResult(perms=best, fitness=best_f, identity_fitness=f_id, history=history,
                    evaluations=fitness.calls,
                    settings={"population": population, "crossover": crossover,
                              "mutation": mutation, "generations": generations, "runs": runs,
                              "seed": seed, "evaluations_per_fitness": len(fitness.seeds)})
