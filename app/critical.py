"""Critical neurons and fault-aware scheduling.

The logic of ``rtlgen nvf``, ``rtlgen protect`` and ``rtlgen schedule`` (issue 16; Ahmadilivani 2025
§4.3.1, §7).

Every command validates its inputs (model, data, threshold, profile, output folder) before any
work, then writes its reports through :class:`ftaccel.files.OutputSet` (all or nothing).  Bad
input raises :class:`CriticalError` (the CLI's exit 2) naming the option.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.network import ModelError

__all__ = ["CriticalError", "run_nvf", "nvf_markdown", "open_network", "load_images",
           "run_protect", "check_threshold", "permutation_options", "permutation_layers",
           "protection_options",
           "read_json", "run_schedule", "schedule_markdown"]


class CriticalError(ValueError):
    """Bad input to nvf / protect / schedule: one line naming the option."""


def open_network(model: str, config: AcceleratorConfig, calib: str | None = None):
    """The :class:`app.network.Network` named by ``--model`` (built-in, ``.npz``, ``.onnx``)."""
    from ftaccel.app.datasets import load_data
    from ftaccel.app.network import open_model

    cal = load_data(calib).images if calib else None
    return open_model(model, a_width=config.a_width, w_width=config.w_width, calibration=cal)


def load_images(data: str | None, split: str, images: int | None, *, labels: bool = True):
    """``--data`` (default the digits ``split``), the first ``images`` of it.

    ``labels``: the data must have them (else an ``.npz`` of images alone is accepted).
    """
    from ftaccel.app.datasets import digits, load_data

    if images is not None and images < 1:
        raise CriticalError(f"--images {images}: must be at least 1")
    ds = load_data(data, labels=labels) if data else digits(split)
    return ds.head(images)


def _claim(outs, out: Path, names) -> None:
    if out.exists() and not out.is_dir():
        raise CriticalError(f"-o {out}: exists and is not a folder")
    outs.claim_folder(out, "-o", files=names)


# -- nvf -------------------------------------------------------------------------------------------

def nvf_markdown(res, table, table_hidden) -> str:
    """``nvf.md``: Table 4.10's analogue, then per layer the neurons sorted by NVF.

    The table covers all neurons and hidden only.
    """
    lines = [f"# NVF of {res.model}", "",
             f"{len(res.neurons)} neurons (product-layer output columns), {res.images} images, "
             f"{res.bits} bits per output ({'sign bit included' if res.sign else 'no sign bit'})"
             f", {res.evaluations:,} flipped evaluations in {res.seconds:.2f} s.", "",
             "NVF = P(top-1 changes | one bit flip in the neuron's output) "
             "(Ahmadilivani 2025 Algorithm 4.2, enumerated).", "",
             "## Critical neurons per threshold (Table 4.10 analogue)", "",
             "| NVF ≥ | neurons | share | hidden neurons | share |", "|---|---|---|---|---|"]
    for a, b in zip(table, table_hidden, strict=True):
        lines.append(f"| {a['threshold']} % | {a['neurons']} | {100 * a['share']:.2f} % | "
                     f"{b['neurons']} | {100 * b['share']:.2f} % |")
    lines += ["", "Thesis (Ahmadilivani 2025 Table 4.10, hidden neurons), NVF ≥ 20 %: "
              "MLP-7 17.86 %, LeNet-5 3.99 %, AlexNet 0.6 %; no neuron reaches 50 %.", ""]
    lines += critical_neuron_lines(res, [r["threshold"] for r in table if r["threshold"] > 0])
    lines += ["", "## Per neuron", ""]
    for layer in sorted({n.layer for n in res.neurons}):
        ns = sorted((n for n in res.neurons if n.layer == layer), key=lambda n: -n.nvf)
        lines += [f"### layer {layer} `{ns[0].layer_name}`"
                  f"{' (logits)' if ns[0].last else ''}: mean NVF "
                  f"{100 * np.mean([n.nvf for n in ns]):.2f} %", "",
                  "| neuron | NVF | per bit (LSB … MSB), % |", "|---|---|---|"]
        for n in ns:
            lines.append(f"| {n.neuron} | {100 * n.nvf:.2f} % | "
                         f"{' '.join(f'{100 * b:.1f}' for b in n.per_bit)} |")
        lines.append("")
    return "\n".join(lines)


def critical_neuron_lines(res, thresholds) -> list[str]:
    """``nvf.md``'s list of the critical neurons: per threshold, each layer's neuron indices.

    The hidden neurons (the ones ``rtlgen protect`` and a campaign's ``nvf_threshold``
    protect) and the logits apart; a threshold no neuron reaches is left out.
    """
    lines = ["## Critical neurons", "",
             "The neurons with NVF ≥ each threshold, by layer (hidden layers are what "
             "`rtlgen protect --nvf-threshold` and a campaign's `nvf_threshold` protect).", "",
             "| NVF ≥ | critical neurons (layer: neuron indices) |", "|---|---|"]
    names = {n.layer: n.layer_name for n in res.neurons}
    last = {n.layer for n in res.neurons if n.last}
    for t in thresholds:
        crit = res.critical(t / 100)
        if not crit:
            continue
        cells = [f"{names[i]}{' (logits)' if i in last else ''}: "
                 f"{', '.join(map(str, sorted(v)))}" for i, v in sorted(crit.items())]
        lines.append(f"| {t} % | {'; '.join(cells)} |")
    return lines


def run_nvf(model: str, out_dir, *, config: AcceleratorConfig, data: str | None = None,
            calib: str | None = None, images: int | None = 500, sign: bool = True,
            pixels: int | None = 1, seed: int = 0, log=print):
    """``rtlgen nvf``: NVF of every neuron, ``nvf.json`` and ``nvf.md`` in ``out_dir``.

    The analysis runs on the training split by default (as the thesis does, Ahmadilivani 2025
    §4.3.1).  NVF compares each flip with the network's own prediction: ``data`` needs no labels.
    """
    from ftaccel.app.nvf import nvf
    from ftaccel.files import OutputSet

    check_seed(seed)
    if pixels is not None and pixels < 1:
        raise CriticalError(f"--pixels {pixels}: must be at least 1 (--all-pixels for "
                            "every pixel)")
    out = Path(out_dir)
    with OutputSet() as outs:
        _claim(outs, out, ("nvf.json", "nvf.md"))
        ds = load_images(data, "train", images, labels=False)
        net = open_network(model, config, calib)
        try:
            x = net.check(config, ds.images)
        except ModelError as exc:
            raise CriticalError(str(exc)) from None
        res = nvf(net.model, x, sign=sign, pixels=pixels, seed=seed)
        res.info = {"data": ds.name}
        d = res.to_dict()
        outs.mkdir(out)
        outs.write_json(out / "nvf.json", d)
        md = nvf_markdown(res, d["table"], d["table_hidden"])
        outs.write_text(out / "nvf.md", md)
    log(md.split("## Per neuron")[0].rstrip(), file=sys.stdout)
    return res


# -- protect ---------------------------------------------------------------------------------------

def check_threshold(value: float, what: str = "--nvf-threshold") -> float:
    """A threshold in percent, 0 … 100, as a fraction."""
    import math

    if not math.isfinite(value) or not 0 <= value <= 100:
        raise CriticalError(f"{what} {value:g}: a percentage from 0 to 100")
    return value / 100


def check_seed(value, what: str = "--seed") -> int:
    """A seed of numpy's generators: an integer 0 … 2**63 − 1 (a negative one is refused)."""
    if type(value) is not int or not 0 <= value < 1 << 63:
        raise CriticalError(f"{what} {value!r}: must be 0 … 2**63 − 1")
    return value


def read_json(path, what: str) -> dict:
    """The JSON object in ``path`` (through the input door), or CriticalError naming ``what``.

    Not a regular file, not UTF-8, not JSON, nested too deeply or an integer too long to
    read: one line each.
    """
    from ftaccel.files import FileProblem
    from ftaccel.files import read_json as read_json_file

    try:
        data = read_json_file(path, what)
    except FileProblem as exc:
        raise CriticalError(str(exc)) from None
    if not isinstance(data, dict):
        raise CriticalError(f"{what} {path}: a JSON object expected")
    return data


def run_protect(model: str, out_dir, *, config: AcceleratorConfig, method: str,
                threshold: float, nvf_file=None, voter: str = "word", lcu_mode: str = "halve",
                data: str | None = None, calib: str | None = None, images: int | None = 500,
                seed: int = 0, log=print):
    """``rtlgen protect``: critical neurons protected by ``method`` on ``config``'s array.

    Critical neurons are those with NVF ≥ ``threshold`` percent, from ``nvf_file`` or computed,
    protected with mapping-aware placement.  Writes ``model.npz`` (the protected model),
    ``protection.json`` (per layer the critical neurons, copies, permutation and units, and the
    configuration changes), ``config.json`` (the accelerator configuration to run it on: with
    ``lcu``, or with ``tmr`` set to ``voter`` for TMR) and ``protect.md``.
    """
    from ftaccel.app.nvf import NVFResult, nvf
    from ftaccel.app.protect import LCU_MODES, METHODS, VOTERS, PlacementError, protect
    from ftaccel.files import OutputSet
    from ftaccel.golden.network import product_layers

    frac = check_threshold(threshold)
    check_seed(seed)
    for name, v, ok in (("--method", method, METHODS), ("--voter", voter, VOTERS),
                        ("--lcu-mode", lcu_mode, LCU_MODES)):
        if v not in ok:
            raise CriticalError(f"{name} {v!r}: one of {', '.join(ok)}")
    out = Path(out_dir)
    names = ("model.npz", "protection.json", "config.json", "protect.md")
    with OutputSet() as outs:
        _claim(outs, out, names)
        net = open_network(model, config, calib)
        try:
            net.check(config)
        except ModelError as exc:
            raise CriticalError(str(exc)) from None
        if nvf_file is not None:
            try:
                res = NVFResult.from_dict(read_json(nvf_file, "--nvf"))
            except (KeyError, TypeError, ValueError) as exc:
                raise CriticalError(f"--nvf {nvf_file}: {exc}") from None
            sizes = {i: net.model.layers[i].matrix.shape[1]
                     for i in product_layers(net.model)}
            if res.model != net.name or any(n.layer not in sizes or n.neuron >= sizes[n.layer]
                                            for n in res.neurons):
                raise CriticalError(f"--nvf {nvf_file}: an analysis of model {res.model}, "
                                    f"not of {net.name}")
        else:
            ds = load_images(data, "train", images)
            res = nvf(net.model, net.check(config, ds.images), seed=seed)
        crit = res.critical(frac)
        try:
            pr = protect(net.model, crit, method, config, voter=voter, lcu_mode=lcu_mode)
        except PlacementError as exc:
            raise CriticalError(str(exc)) from None
        cfg2 = config.replace(**pr.config)
        outs.mkdir(out)
        outs.stage(out / "model.npz", pr.model.to_bytes())
        d = pr.to_dict()
        d["nvf_threshold_percent"] = threshold
        outs.write_json(out / "protection.json", d)
        outs.write_json(out / "config.json", cfg2.to_dict())
        md = protect_markdown(pr, threshold)
        outs.write_text(out / "protect.md", md)
    log(md)
    return pr


def protect_markdown(pr, threshold: float) -> str:
    extra = "1 copy (split halves, LCU)" if pr.method == "lcu" else \
        f"2 copies ({pr.voter} voter)"
    lines = [f"# {pr.model.name} protected by {pr.method.upper()} at NVF ≥ {threshold:g} %", "",
             f"{pr.protected_neurons} critical neurons, {extra} each: {pr.original_neurons} → "
             f"{pr.neurons} hidden neurons (+{100 * (pr.neurons / pr.original_neurons - 1):.2f}"
             " %).", "", "| layer | critical neurons | copies in array columns |",
             "|---|---|---|"]
    for lp in pr.layers.values():
        pos = np.argsort(lp.permutation)
        cols = "; ".join(f"{g[0]}→{[int(pos[c]) for c in g]}" for g in lp.groups)
        lines.append(f"| {lp.name} | {len(lp.critical)} | {cols} |")
    for li, s in pr.skipped.items():
        lines.append(f"| layer {li} | {len(s['neurons'])} left unprotected | {s['why']} |")
    if pr.config:
        lines += ["", f"Configuration changes: {pr.config} (written to config.json)."]
    if pr.method == "tmr":
        lines += ["", f"The {pr.voter} voter runs on chip after each protected layer (the "
                      "configuration's `tmr` voting controller votes the captured output "
                      "buffer; the golden engine votes in closed form, and a configuration "
                      "without the voter falls back to a host-side vote)."]
    return "\n".join(lines) + "\n"


# -- permutation and protection files for infer ------------------------------------------------

def _product_index(model, key, what: str) -> int:
    from ftaccel.golden.network import product_layers

    for i in product_layers(model):
        if key == i or key == model.layers[i].name:
            return i
    raise CriticalError(f"{what}: layer {key!r} is not a product layer of {model.name}")


def permutation_options(path, model, what: str = "--permutation") -> dict:
    """``{layer: LayerOptions(permutation=...)}`` from a permutation file.

    ``rtlgen schedule`` writes one: ``{"layers": [{"layer": name or index, "permutation": [...]},
    ...]}``.
    """
    return permutation_layers(read_json(path, what), model, f"{what} {path}")


def permutation_layers(doc: dict, model, what: str) -> dict:
    """``{layer: LayerOptions(permutation=...)}`` from a permutation document (checked).

    ``doc`` is what ``rtlgen schedule`` writes; :class:`CriticalError` (``what`` names the
    option or spec key and the file) if a layer is unknown or a permutation is not one.
    """
    from ftaccel.golden.network import LayerOptions

    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers:
        raise CriticalError(f"{what}: no 'layers' list")
    out = {}
    for entry in layers:
        if not isinstance(entry, dict) or "permutation" not in entry:
            raise CriticalError(f"{what}: every layer needs a 'permutation'")
        i = _product_index(model, entry.get("layer"), what)
        perm = entry["permutation"]
        n = model.layers[i].matrix.shape[1]
        if (not isinstance(perm, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                  for v in perm)
                or sorted(perm) != list(range(n))):
            raise CriticalError(f"{what}: layer {model.layers[i].name}: not a "
                                f"permutation of its {n} neurons 0 … {n - 1}")
        if i in out:
            raise CriticalError(f"{what}: layer {model.layers[i].name} given twice")
        out[i] = LayerOptions(permutation=np.asarray(perm, dtype=np.int64))
    return out


def protection_options(path, model) -> dict:
    """``{layer: LayerOptions}`` from ``protection.json`` for the protected ``model``."""
    from ftaccel.golden.network import LayerOptions

    what = f"--protection {path}"
    d = read_json(path, "--protection")
    if d.get("format") != "ftaccel-protection":
        raise CriticalError(f"{what}: not a protection file (rtlgen protect)")
    layers = d.get("layers", [])
    if not isinstance(layers, list):
        raise CriticalError(f"{what}: 'layers' must be a list")
    out = {}
    for entry in layers:
        if not isinstance(entry, dict) or not {"layer", "permutation", "units"} <= set(entry):
            raise CriticalError(f"{what}: every layer needs 'layer', 'permutation' and "
                                "'units'")
        i = _product_index(model, entry.get("layer"), what)
        name = model.layers[i].name
        if i in out:
            raise CriticalError(f"{what}: layer {name} given twice")
        n = model.layers[i].matrix.shape[1]
        perm = _int_list(entry["permutation"], f"{what}: layer {name}: permutation")
        if sorted(perm) != list(range(n)):
            raise CriticalError(f"{what}: layer {name} has {n} columns: is --model the "
                                "protected model.npz?")
        out[i] = LayerOptions(permutation=np.asarray(perm, dtype=np.int64),
                              units=_protection_units(entry["units"], n, f"{what}: layer "
                                                                         f"{name}"))
    return out


#: The run-time units a protection file may give a layer (app.protect), with their shapes.
_PROTECTION_UNITS = {"split": None, "lcu_pairs": 2, "tmr_triples": 3, "tmr_voter": None}


def _int_list(v, what: str) -> list:
    """``v`` if it is a list of integers (a float is refused, never truncated)."""
    if not isinstance(v, list) or not all(type(x) is int for x in v):
        raise CriticalError(f"{what}: a list of integers")
    return v


def _protection_units(units, n: int, what: str) -> dict:
    """A protection file's units for a layer of ``n`` columns, every value checked."""
    from ftaccel.app.protect import VOTERS

    if not isinstance(units, dict):
        raise CriticalError(f"{what}: 'units' must be an object")
    out = {}
    for key, v in units.items():
        if key not in _PROTECTION_UNITS:
            raise CriticalError(f"{what}: unknown unit {key!r}; known: "
                                f"{', '.join(_PROTECTION_UNITS)}")
        if key == "tmr_voter":
            if v not in VOTERS:
                raise CriticalError(f"{what}: tmr_voter {v!r}: one of {', '.join(VOTERS)}")
            out[key] = v
        elif key == "split":
            if not isinstance(v, list) or len(v) != n or not all(type(x) is bool for x in v):
                raise CriticalError(f"{what}: split must be {n} true/false values")
            out[key] = np.asarray(v, dtype=bool)
        else:
            width = _PROTECTION_UNITS[key]
            if not isinstance(v, list) or not all(
                    isinstance(g, list) and len(g) == width
                    and all(type(x) is int and 0 <= x < n for x in g) for g in v):
                raise CriticalError(f"{what}: {key} must be a list of {width}-column groups "
                                    f"of columns 0 … {n - 1}")
            out[key] = np.asarray(v, dtype=np.int64).reshape(-1, width)
    return out


# -- Fig. 4.17: accuracy loss, critical faults and size over NVF thresholds ------------------------

def _fault_sites(pm, prods, rng, count: int | None, shapes):
    """Neuron-output flips ``(layer, array column, pixel, bit)`` over the hidden neurons of ``pm``.

    The hidden neurons are array columns of model ``pm``: ``count`` drawn uniformly, or (``None``)
    every column and bit, each column at one seeded random pixel of a convolution.
    """
    sizes = np.array([pm.layers[i].matrix.shape[1] for i in prods[:-1]])
    if count is None:
        flat = np.repeat(np.arange(sizes.sum()), 8)
        bits = np.tile(np.arange(8), sizes.sum())
    else:
        flat = rng.integers(0, sizes.sum(), count)
        bits = rng.integers(0, 8, count)
    u = rng.random(sizes.sum())[flat]
    layer_of = np.searchsorted(np.cumsum(sizes), flat, side="right")
    col = flat - np.concatenate([[0], np.cumsum(sizes)])[layer_of]
    out = []
    for li, c, v, b in zip(layer_of, col, u, bits, strict=True):
        idx = prods[li]
        shp = shapes[idx]
        pixels = int(np.prod(shp[:-1])) if len(shp) > 1 else 1
        out.append((idx, int(c), int(v * pixels), int(b)))
    return out


def fig417(net, x, labels, cfg, res, *, thresholds=None, neuron_faults: int | None = None,
           pe_faults: int = 60, seed: int = 0, progress=None) -> dict:
    """The Fig. 4.17 analogue for one network.

    Per NVF threshold and protection (none, LCU, TMR), under one bit flip in a random hidden
    neuron's output (Ahmadilivani 2025's fault model; the flip hits every image, at one pixel of a
    conv channel) and under a permanent stuck-at in a random PE's partial-sum register (every
    product layer;
    ``neuron_faults=None``: every hidden neuron and bit, no sampling noise): accuracy loss (clean
    accuracy of the unprotected network minus accuracy under the fault, averaged over faults,
    percentage points), share of critical (image, fault) pairs (top-1 differs from the protection's
    own clean top-1), hidden neurons and array cycles. The same seeds for every threshold and
    protection (common random numbers).
    """
    from ftaccel.app.nvf import THRESHOLDS
    from ftaccel.app.protect import FaultEngine, protect
    from ftaccel.golden.faults import Fault
    from ftaccel.golden.network import product_layers, run, state_at

    m = net.model
    prods = product_layers(m)
    thresholds = THRESHOLDS if thresholds is None else thresholds
    clean_ref = run(m, x, FaultEngine(cfg)).logits
    base_acc = float(np.mean(np.argmax(clean_ref, 1) == labels))
    pe_list = []
    prng = np.random.default_rng([seed, 1])
    for _ in range(pe_faults):
        pe_list.append(Fault(int(prng.integers(cfg.rows)), int(prng.integers(cfg.cols)), "psum",
                             int(prng.integers(cfg.acc_bits)), ["sa0", "sa1"][prng.integers(2)]))
    cache: dict = {}

    def evaluate(method: str | None, crit: dict) -> dict:
        key = (method, tuple(sorted((k, tuple(v)) for k, v in crit.items() if k != prods[-1])))
        if method is None:
            key = (None, ())
        if key in cache:
            return cache[key]
        if method is None:
            pm, opts, cfg2, neurons = m, None, cfg, None
        else:
            pr = protect(m, crit, method, cfg)
            pm, opts, cfg2, neurons = pr.model, pr.options(), cfg.replace(**pr.config), pr.neurons
        clean = run(pm, x, FaultEngine(cfg2), options=opts, record=True)
        golden = np.argmax(clean.logits, 1)
        pshapes = pm.shapes()
        rng = np.random.default_rng([seed, 0])
        loss, crit_share = [], []
        for li, col, pix, bit in _fault_sites(pm, prods, rng, neuron_faults, pshapes):
            shp = pshapes[li]
            per = int(np.prod(shp[:-1])) if len(shp) > 1 else 1
            rows = np.arange(len(x)) * per + pix
            start_x = state_at(pm, x, clean.outputs, li)  # what the nodes from li on read
            eng = FaultEngine(cfg2, flips={li: (rows, col, bit)})
            lg = run(pm, start_x, eng, options=opts, start=li).logits
            pred = np.argmax(lg, 1)
            loss.append(base_acc - float(np.mean(pred == labels)))
            crit_share.append(float(np.mean(pred != golden)))
        pe_loss, pe_crit = [], []
        for f in pe_list:
            lg = run(pm, x, FaultEngine(cfg2, fault=f), options=opts).logits
            pred = np.argmax(lg, 1)
            pe_loss.append(base_acc - float(np.mean(pred == labels)))
            pe_crit.append(float(np.mean(pred != golden)))
        hidden = sum(pm.layers[i].matrix.shape[1] for i in prods[:-1])
        out = {"neurons": int(neurons or hidden),
               "cycles": int(sum(st.cycles for st in clean.layers)),
               "clean_accuracy": float(np.mean(golden == labels)),
               "neuron_flip": {"loss": float(np.mean(loss)),
                               "critical": float(np.mean(crit_share))},
               "pe_stuck": {"loss": float(np.mean(pe_loss)) if pe_loss else None,
                            "critical": float(np.mean(pe_crit)) if pe_crit else None}}
        cache[key] = out
        if progress:
            progress(f"{m.name} {method or 'none'} {sum(len(v) for v in crit.values())} "
                     f"critical: {out}")
        return out

    none = evaluate(None, {})
    rows = []
    for t in thresholds:
        crit = res.critical(t / 100, hidden_only=True)
        row = {"threshold": t, "critical": sum(len(v) for v in crit.values()),
               "share": sum(len(v) for v in crit.values()) / none["neurons"],
               "none": none}
        for method in ("lcu", "tmr"):
            row[method] = evaluate(method, crit) if crit else none
        rows.append(row)
    return {"model": m.name, "images": len(x), "base_accuracy": base_acc,
            "neuron_faults": neuron_faults, "pe_faults": pe_faults, "seed": seed,
            "config": cfg.to_dict(), "rows": rows}


# -- schedule (HAS) --------------------------------------------------------------------------------

def _read_profile_any(path, cfg):
    from ftaccel.app.has import read_profile

    try:
        return read_profile(path, cfg, "--profile")
    except ValueError as exc:  # FileProblem included
        raise CriticalError(str(exc)) from None


def run_schedule(model: str, out_dir, *, config: AcceleratorConfig, profile=None,
                 fr_max: float | None = None, profile_seed: int = 0, mode: str = "flip-to-1",
                 layers: str | None = None, method: str = "ga", generations: int = 100,
                 runs: int = 3, population: int = 20, images: int = 200,
                 test_images: int | None = None, draws: int = 10, seed: int = 0,
                 calib: str | None = None, progress: bool | None = None, log=print):
    """``rtlgen schedule``: a permutation of each faulty layer's neurons for a per-PE fault profile.

    the HAS genetic algorithm (Shresthamali HAS §4.4), or the NVF-guided placement; writes
    ``permutation.json`` (for ``rtlgen infer --permutation`` and a campaign's ``has`` protection),
    ``schedule.md``,
    ``fitness.png`` (GA: the best fitness per generation of every run) and, for a drawn
    profile, ``profile.json`` (the chip, for a campaign's ``[faults] profile``).  The fitness
    uses the first ``images`` training images; the accuracy before and after is measured on
    the test split (``test_images``) with ``draws`` fresh error draws on the chip the schedule
    was made for, and on ``draws`` fresh chips (profiles drawn U(0, FR_max)), each with a 95 %
    interval of the mean and of the paired gain; ``schedule.md`` says when the gain lies
    inside the spread.  ``progress``: a tqdm bar of the GA (None: on a terminal).
    """
    from ftaccel.app.datasets import digits
    from ftaccel.app.has import Fitness, ga, nvf_placement
    from ftaccel.app.nvf import nvf
    from ftaccel.files import OutputSet
    from ftaccel.golden.fault_models import PROFILE_MODES, pe_profile
    from ftaccel.golden.network import product_layers

    if (profile is None) == (fr_max is None):
        raise CriticalError("give --profile FILE or --fr-max RATE (a profile drawn U(0, RATE))")
    if fr_max is not None and not 0 <= fr_max <= 1:
        raise CriticalError(f"--fr-max {fr_max:g}: a probability 0 … 1")
    if mode not in PROFILE_MODES:
        raise CriticalError(f"--mode {mode!r}: one of {', '.join(PROFILE_MODES)}")
    if method not in ("ga", "nvf"):
        raise CriticalError(f"--method {method!r}: ga or nvf")
    check_seed(seed)
    check_seed(profile_seed, "--profile-seed")
    for name, v in (("--generations", generations), ("--runs", runs), ("--images", images),
                    ("--test-images", 1 if test_images is None else test_images),
                    ("--draws", draws)):
        if type(v) is not int or v < 1:
            raise CriticalError(f"{name} {v}: must be at least 1")
    if type(population) is not int or population < 2:
        raise CriticalError(f"--population {population}: must be at least 2")
    if config.dataflow == "is":
        raise CriticalError("--dataflow is: a column holds a batch row (Eq. 10.4), the neuron "
                            "order does not decide which PEs compute a neuron; use ws or os")
    if profile is not None:
        prof, file_max = _read_profile_any(profile, config)
        chip_max = float(file_max if file_max is not None else prof.max())
    else:
        prof = pe_profile(config.rows, config.cols, fr_max, np.random.default_rng(profile_seed))
        chip_max = float(fr_max)
    out = Path(out_dir)
    names = ("permutation.json", "schedule.md") + (("fitness.png",) if method == "ga" else ()) \
        + (("profile.json",) if profile is None else ())
    with OutputSet() as outs:
        _claim(outs, out, names)
        net = open_network(model, config, calib)
        try:
            net.check(config)
        except ModelError as exc:
            raise CriticalError(str(exc)) from None
        m = net.model
        prods = product_layers(m)
        if layers:
            chosen = [_product_index(m, int(t) if t.strip().isdigit() else t.strip(),
                                     "--layers") for t in layers.split(",")]
        else:
            chosen = prods
        train = digits("train").head(images)
        test = digits("test").head(test_images)
        xf = m.quantize_input(train.images)
        fit = Fitness(m, xf, train.labels, config, prof, mode, chosen, seed=seed)
        extra: dict = {}
        if method == "ga":
            res = _ga_with_progress(ga, fit, population=population, generations=generations,
                                    runs=runs, seed=seed, progress=progress)
            perms = res.perms
            extra = {"ga": {**res.settings, "history": res.history,
                            "fitness_calls": res.evaluations, "fitness": res.fitness,
                            "identity_fitness": res.identity_fitness,
                            "images": images, "mode": mode}}
        else:
            nres = nvf(m, xf, seed=seed)
            perms = {i: nvf_placement(nres.layer_values(i), prof, config.cols) for i in chosen}
        xt = m.quantize_input(test.images)
        ftest = Fitness(m, xt, test.labels, config, prof, mode, chosen, seed=seed,
                        evaluations=1)
        fresh = [(10_000 + seed, e) for e in range(draws)]
        on_chip = _before_after(ftest.accuracy(None, seeds=fresh),
                                ftest.accuracy(perms, seeds=fresh))
        before_f, after_f = [], []
        for k in range(draws):  # fresh chips: a new profile each, one error draw on it
            rng = np.random.default_rng([20_000 + seed, k])
            chip = pe_profile(config.rows, config.cols, chip_max, rng)
            fk = Fitness(m, xt, test.labels, config, chip, mode, chosen, seed=30_000 + k,
                         evaluations=1)
            before_f.append(float(fk.accuracy(None)[0]))
            after_f.append(float(fk.accuracy(perms)[0]))
        on_fresh = _before_after(np.array(before_f), np.array(after_f))
        doc = {"format": "ftaccel-permutation", "version": 2, "model": m.name,
               "method": method, "mode": mode, "config": config.to_dict(),
               "profile": prof.tolist(), "fr_max": chip_max,
               "profile_source": str(profile) if profile is not None else
               f"drawn U(0, {fr_max:g}) with seed {profile_seed} (profile.json)",
               "layers": [{"layer": m.layers[i].name, "index": i,
                           "permutation": perms[i].tolist()} for i in chosen],
               "accuracy": {"images": len(test), "draws": draws, "profile": on_chip,
                            "fresh_chips": on_fresh,
                            # the former keys, for readers of version 1
                            "before": on_chip["before"]["mean"],
                            "after": on_chip["after"]["mean"]},
               **extra}
        outs.mkdir(out)
        outs.write_json(out / "permutation.json", doc)
        if profile is None:
            outs.write_json(out / "profile.json", {"profile": prof.tolist(), "fr_max": fr_max,
                                                    "seed": profile_seed})
        if method == "ga":
            outs.stage(out / "fitness.png", _fitness_png(doc))
        md = schedule_markdown(doc, [m.layers[i].name for i in chosen])
        outs.write_text(out / "schedule.md", md)
    log(md)
    return doc


def _ga_with_progress(ga, fit, *, population, generations, runs, seed, progress):
    """The HAS report's GA with a tqdm bar over runs × generations (stderr)."""
    from tqdm import tqdm

    with tqdm(total=runs * generations, unit="gen", desc="HAS GA", file=sys.stderr,
              disable=None if progress is None else not progress) as bar:
        def step(r, g, best):
            bar.set_postfix_str(f"run {r + 1}/{runs}, best fitness {100 * best:.2f} %")
            bar.update(1)

        return ga(fit, population=population, generations=generations, runs=runs, seed=seed,
                  progress=step)


def _before_after(before, after) -> dict:
    """Mean accuracy before and after, and the paired gain, each with its 95 % t interval."""
    from ftaccel.app.netcampaign import mean_ci

    def ci(v):
        m, lo, hi = mean_ci(v)
        return {"mean": m, "ci95": [lo, hi], "std": float(np.std(v)),
                "values": [float(x) for x in v]}

    gain = ci(np.asarray(after) - np.asarray(before))
    return {"before": ci(before), "after": ci(after), "gain": gain,
            "gain_inside_spread": bool(gain["ci95"][0] <= 0 <= gain["ci95"][1])}


def _fitness_png(doc: dict) -> bytes:
    """The best fitness per generation of every GA run, and the identity's fitness."""
    import io

    import matplotlib  # heavy: only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = doc["ga"]
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for r, hist in enumerate(g["history"]):
        ax.plot(range(len(hist)), [100 * v for v in hist], label=f"run {r + 1}")
    ax.axhline(100 * g["identity_fitness"], color="grey", linestyle=":",
               label="unscheduled (identity)")
    ax.set_xlabel("generation")
    ax.set_ylabel("best fitness: accuracy (%)")
    ax.set_title(f"HAS GA on {doc['model']} ({doc['mode']}, FR_max {doc['fr_max']:g})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def schedule_markdown(doc: dict, layer_names: list[str]) -> str:
    """``schedule.md``: settings, fitness, accuracy before/after on the chip and fresh chips."""
    acc = doc["accuracy"]

    def pct(c):
        return f"{100 * c['mean']:.2f} % ({100 * c['ci95'][0]:.2f}–{100 * c['ci95'][1]:.2f})"

    lines = [f"# HAS schedule of {doc['model']} ({doc['method']}, {doc['mode']}, layers "
             f"{', '.join(layer_names)})", "",
             f"- chip: {doc['profile_source']}; FR_max {doc['fr_max']:g}; "
             f"{len(doc['profile'])}×{len(doc['profile'][0])} per-PE rates "
             f"(highest {max(map(max, doc['profile'])):.3g})"]
    g = doc.get("ga")
    if g:
        lines += [f"- GA (Shresthamali HAS §4.4): population {g['population']}, "
                  f"crossover {g['crossover']}, "
                  f"mutation {g['mutation']}, {g['generations']} generations, {g['runs']} runs, "
                  f"fitness = accuracy on {g['images']} training images averaged over "
                  f"{g['evaluations_per_fitness']} error draws (common to every individual), "
                  f"seed {g['seed']}; {g['fitness_calls']:,} fitness evaluations",
                  f"- fitness: unscheduled {100 * g['identity_fitness']:.2f} % → best "
                  f"{100 * g['fitness']:.2f} %; per run, first → last generation: "
                  + "; ".join(f"{100 * h[0]:.2f} → {100 * h[-1]:.2f} %" for h in g["history"]),
                  "", "![fitness per generation](fitness.png)"]
    else:
        lines.append("- NVF-guided placement: the most critical neurons on the columns with "
                     "the lowest summed rates")
    lines += ["", f"Accuracy on {acc['images']} test images (95 % intervals of the mean over "
                  f"{acc['draws']} draws; the gain paired draw by draw):", "",
              "| chip | unscheduled | scheduled | gain (pp) |", "|---|---:|---:|---:|"]
    notes = []
    for key, short, what in (
            ("profile", "the chip it was made for",
             f"the chip it was made for, {acc['draws']} fresh error draws"),
            ("fresh_chips", "fresh chips",
             f"{acc['draws']} fresh chips (profiles drawn U(0, {doc['fr_max']:g}))")):
        c = acc[key]
        gain = c["gain"]
        lines.append(f"| {what} | {pct(c['before'])} | {pct(c['after'])} | "
                     f"{100 * gain['mean']:+.2f} ({100 * gain['ci95'][0]:+.2f} … "
                     f"{100 * gain['ci95'][1]:+.2f}) |")
        if c["gain_inside_spread"]:
            notes.append(f"on {short} the gain is inside the spread: its 95 % interval "
                         "includes 0, so this schedule is not shown to help there")
    if notes:
        lines += [""] + [f"Note: {n}." for n in notes]
    return "\n".join(lines) + "\n"
