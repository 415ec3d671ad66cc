"""``rtlgen campaign``: fault campaigns on networks, exact, resumable and at scale (issue 15).

A campaign is one TOML file (``examples/campaign-digits.toml``): the network and data, the
accelerator, the protections to compare, the fault model and how faults are drawn.  The
numerical core (fault models, the fast fault model, outcome classes, statistics) is
:mod:`app.netcampaign` / :mod:`golden.fault_models`; this module runs it:

* **Critical neurons and HAS.**  ``network.permutation`` (a file written by ``rtlgen
  schedule``, relative to the spec; ``--permutation`` replaces it) runs every protection on the
  plain model with that neuron permutation, checked like ``infer --permutation`` and recorded
  in the report; ``kind = "lcu"`` / ``"tmr"`` protect the critical neurons (``nvf_threshold``
  in percent, or ``protected``: a folder written by ``rtlgen protect``, its placement checked
  on this accelerator) and are judged beside the others on their own schedule.
* **Plan.**  The work items (one register fault, or one trial of a rate) are fixed by the
  spec alone: a statistical sample (001 Eq. 4.7, margin and confidence from the spec) drawn
  with the spec's seed, the whole population, or every (rate, trial) of a sweep.  Items are
  grouped in chunks of ``campaign.chunk``; every item draws its own randomness from
  ``SeedSequence([seed, item])``, so the results are the same for any number of workers.
* **Durability.**  The client (never a worker) writes each finished chunk to
  ``DIR/chunks/chunk-NNNNNN.csv`` through a temporary file, ``fsync`` and an atomic rename:
  a chunk is on disk whole or not at all.  ``DIR/spec.json`` holds the spec and its hash;
  the same command started again skips the chunks on disk (no fault lost or duplicated),
  and a folder that belongs to another spec is refused.
* **Scale.**  Chunks run on Dask ``distributed``: a ``LocalCluster`` with one single-threaded
  worker process per core by default, ``scheduler=ADDRESS`` for an existing cluster,
  ``workers=0`` in this process.  Every worker builds the context (model, data, each
  protection's fault-free run) once.  A tqdm bar shows faults per second and the time left.
* **Reports.**  ``trace.csv`` (and ``trace.parquet`` when ``pyarrow`` is installed): one row
  per (item, protection), a superset of ENFOR-SA's columns; ``campaign.json`` (complete),
  ``campaign.md`` (tables) and PNG plots (accuracy vs rate with 95 % bands; outcome shares
  per site).  ``verify_rtl=K`` re-runs K sampled register faults on the RTL (a configuration
  with fault hooks, a few images) and reports the agreement with the fast model.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftaccel.app.netcampaign import (
    FAULT_MODELS,
    OUTCOMES,
    PROFILE_MODES,
    Context,
    Protection,
    RegisterPopulation,
    evaluate_register_fault,
    evaluate_trial,
    faulted_nodes,
    mean_ci,
    statistical_size,
    wilson,
)
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.faults import MODES, REGISTERS

__all__ = ["CampaignError", "load_spec", "parse_spec", "Campaign", "run_campaign",
           "TRACE_COLUMNS"]

SPEC_VERSION = 1

#: Trace columns: ENFOR-SA's (fault id, site, PE, register, bit, mode, cycle, layer, outcome)
#: and more.  ``cycle`` is the protection's own schedule; -1 where it does not apply.
TRACE_COLUMNS = ("fault_id", "protection", "model", "site", "pe_row", "pe_col", "register",
                 "bit", "mode", "cycle", "layer", "tile", "vector", "rate", "trial",
                 "outcome", "alarm", "spatial_alarms", "temporal_alarms", "unit",
                 "logits_changed", "top1_changed", "accuracy", "accuracy_drop",
                 "bypass_rate", "population_index")


class CampaignError(ValueError):
    """Bad campaign input; the message names the spec key (exit 2)."""


# -- the spec ----------------------------------------------------------------------------------

_KNOWN = {
    "campaign": {"name", "seed", "chunk"},
    "network": {"model", "calib", "permutation"},
    "data": {"source", "images"},
    "faults": {"model", "registers", "modes", "layers", "targets", "mode", "bits"},
    "sample": {"method", "margin", "confidence", "rates", "trials"},
    "verify": {"images"},
}
_PROTECTION_KEYS = {"name", "kind", "gates", "mode", "gamma", "window", "variant", "checksum",
                    "temporal_batch", "temporal_mode", "threshold", "layers", "nvf_threshold",
                    "protected", "voter", "lcu_mode", "nvf_images"}


def _err(key: str, msg: str) -> CampaignError:
    return CampaignError(f"spec key {key}: {msg}")


def _get(d: dict, key: str, path: str, kind, default=None, required=False):
    if key not in d:
        if required:
            raise _err(f"{path}.{key}", "missing")
        return default
    v = d[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _err(f"{path}.{key}", f"must be {names}, not {v!r}")
    return v


def load_spec(path, *, permutation=None) -> dict:
    """Read and validate a campaign spec (TOML); :class:`CampaignError` names the key.

    ``permutation`` (``rtlgen campaign --permutation FILE``) replaces the spec's
    ``network.permutation``.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise CampaignError(f"spec {p}: cannot read ({exc.strerror})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"spec {p}: not TOML ({exc})") from None
    return parse_spec(raw, base=p.parent, permutation=permutation)


def parse_spec(raw: dict, base: Path | None = None, *, permutation=None) -> dict:
    """The normalised spec (every default filled in) of a parsed TOML document.

    ``network.permutation`` (a path relative to the spec) is read here and its layers kept in
    the spec, so the spec's hash covers the permutation itself; it is checked against the
    model when the campaign's context is built.  ``permutation`` (a path) overrides it (the
    command line's ``--permutation``).
    """
    for section in raw:
        if section not in _KNOWN and section not in ("accelerator", "protections"):
            raise _err(section, f"unknown section; known: {', '.join(sorted(_KNOWN))}, "
                                "accelerator, protections")
    for section, keys in _KNOWN.items():
        sec = raw.get(section, {})
        if not isinstance(sec, dict):
            raise _err(section, "must be a table")
        for key in sec:
            if key not in keys:
                raise _err(f"{section}.{key}", f"unknown key; known: {', '.join(sorted(keys))}")
    c = raw.get("campaign", {})
    spec: dict = {"version": SPEC_VERSION}
    spec["campaign"] = {"name": _get(c, "name", "campaign", str, "campaign"),
                        "seed": _get(c, "seed", "campaign", int, 1),
                        "chunk": _get(c, "chunk", "campaign", int, 16)}
    if spec["campaign"]["chunk"] < 1:
        raise _err("campaign.chunk", "must be at least 1")
    n = raw.get("network", {})
    model = _get(n, "model", "network", str, required=True)
    spec["network"] = {"model": _path(model, base), "calib": _path(_get(n, "calib", "network",
                                                                        str), base)}
    if permutation is not None:
        spec["network"]["permutation"] = _read_permutation(Path(permutation), "--permutation")
    else:
        perm = _get(n, "permutation", "network", str)
        if perm is not None:
            path = Path(perm) if base is None or Path(perm).is_absolute() else base / perm
            spec["network"]["permutation"] = _read_permutation(
                path, "spec key network.permutation")
    d = raw.get("data", {})
    spec["data"] = {"source": _path(_get(d, "source", "data", str, "digits"), base),
                    "images": _get(d, "images", "data", int)}
    if spec["data"]["images"] is not None and spec["data"]["images"] < 1:
        raise _err("data.images", "must be at least 1")
    acc = raw.get("accelerator", {})
    if not isinstance(acc, dict):
        raise _err("accelerator", "must be a table of configuration fields")
    try:
        cfg = AcceleratorConfig.from_dict({k: v for k, v in acc.items()})
    except ConfigError as exc:
        key = exc.value if exc.field == "configuration key" else exc.field
        raise _err(f"accelerator.{key}", str(exc)) from None
    if cfg.checksum != "none" or cfg.afd or cfg.median or cfg.lcu or cfg.fault_hooks:
        raise _err("accelerator", "give the plain accelerator here; checksums, AFD, median, "
                                  "the LCU and TMR are protections ([[protections]])")
    spec["accelerator"] = cfg.to_dict()
    spec["protections"] = _protections(raw.get("protections", [{"kind": "none"}]), cfg, base)
    f = raw.get("faults", {})
    kind = _get(f, "model", "faults", str, "register")
    if kind not in FAULT_MODELS:
        raise _err("faults.model", f"{kind!r}: one of {', '.join(FAULT_MODELS)}")
    faults: dict = {"model": kind}
    if kind == "register":
        # The shadow register exists only in the double-buffered WS/IS PE.
        present = [r for r in REGISTERS if r != "shadow" or cfg.double_buffered]
        faults["registers"] = _choices(f, "registers", present, present)
        faults["modes"] = _choices(f, "modes", MODES, list(MODES))
        faults["layers"] = _get(f, "layers", "faults", list)
    elif kind == "bit_errors":
        faults["targets"] = _choices(f, "targets", ("weights", "activations"), ["weights"])
    elif kind == "pe_profile":
        mode = _get(f, "mode", "faults", str, "bitflip")
        if mode not in PROFILE_MODES:
            raise _err("faults.mode", f"{mode!r}: one of {', '.join(PROFILE_MODES)}")
        faults["mode"] = mode
        bits = _get(f, "bits", "faults", list)
        if bits is not None and (len(bits) != 2 or not all(isinstance(b, int) for b in bits)
                                 or not 0 <= bits[0] <= bits[1] < cfg.acc_bits):
            raise _err("faults.bits", f"[low, high] within 0 … {cfg.acc_bits - 1}")
        faults["bits"] = bits
    for key in f:
        if key != "model" and key not in faults:
            raise _err(f"faults.{key}", f"does not apply to fault model {kind!r}")
    spec["faults"] = faults
    s = raw.get("sample", {})
    method = _get(s, "method", "sample", str, "statistical" if kind == "register" else "sweep")
    if kind == "register" and method not in ("statistical", "exhaustive"):
        raise _err("sample.method", f"{method!r}: statistical or exhaustive for register faults")
    if kind != "register" and method != "sweep":
        raise _err("sample.method", f"{method!r}: fault model {kind!r} needs a sweep of rates")
    sample: dict = {"method": method}
    if method == "statistical":
        sample["margin"] = float(_get(s, "margin", "sample", (int, float), 0.01))
        sample["confidence"] = float(_get(s, "confidence", "sample", (int, float), 0.95))
        if not 0 < sample["margin"] < 1:
            raise _err("sample.margin", "must be between 0 and 1")
        if not 0 < sample["confidence"] < 1:
            raise _err("sample.confidence", "must be between 0 and 1")
    elif method == "sweep":
        rates = _get(s, "rates", "sample", list, required=True)
        if not rates or not all(isinstance(r, int | float) and not isinstance(r, bool)
                                and 0 <= r <= 1 for r in rates):
            raise _err("sample.rates", "a non-empty list of rates between 0 and 1")
        sample["rates"] = [float(r) for r in rates]
        sample["trials"] = _get(s, "trials", "sample", int, 10)
        if sample["trials"] < 1:
            raise _err("sample.trials", "must be at least 1")
    for key in s:
        if key not in sample:
            raise _err(f"sample.{key}", f"does not apply to method {method!r}")
    spec["sample"] = sample
    spec["verify"] = {"images": _get(raw.get("verify", {}), "images", "verify", int, 2)}
    return spec


def _path(value, base):
    """Relative data/model paths are relative to the spec file (built-in names stay)."""
    if value is None or base is None or value in ("digits", "digits-mlp", "digits-cnn"):
        return value
    parts = [str((base / v).resolve()) if not Path(v).is_absolute() and (base / v).exists()
             else v for v in value.split(",")]
    return ",".join(parts)


def _read_permutation(path: Path, what: str) -> dict:
    """The permutation file's layers (``rtlgen schedule``), structure checked; the file named."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise CampaignError(f"{what} {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise CampaignError(f"{what} {path}: not JSON ({str(exc).splitlines()[0]})") from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers or not all(
            isinstance(e, dict) and "permutation" in e for e in layers):
        raise CampaignError(f"{what} {path}: not a permutation file (rtlgen schedule): no "
                            "'layers' list of {{layer, permutation}}")
    return {"file": str(path.resolve()), "what": what,
            "layers": [{"layer": e.get("layer"), "permutation": e["permutation"]}
                       for e in layers]}


def _file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _critical_spec(p: dict, q: dict, path: str, kind: str, base) -> None:
    """``lcu`` / ``tmr`` keys: an NVF threshold, or a protected model written by ``protect``."""
    thr = _get(p, "nvf_threshold", path, (int, float))
    prot = _get(p, "protected", path, str)
    if (thr is None) == (prot is None):
        raise _err(f"{path}.nvf_threshold", "give nvf_threshold (percent, 0 … 100) or "
                                            "protected (a folder written by rtlgen protect)")
    if kind == "tmr":
        q["voter"] = _get(p, "voter", path, str, "word")
        if q["voter"] not in ("word", "bitwise"):
            raise _err(f"{path}.voter", f"{q['voter']!r}: word or bitwise")
    else:
        q["lcu_mode"] = _get(p, "lcu_mode", path, str, "halve")
        if q["lcu_mode"] not in ("halve", "exact"):
            raise _err(f"{path}.lcu_mode", f"{q['lcu_mode']!r}: halve or exact")
    if thr is not None:
        if not math.isfinite(thr) or not 0 <= thr <= 100:
            raise _err(f"{path}.nvf_threshold", f"{thr!r}: a percentage from 0 to 100")
        q["nvf_threshold"] = float(thr)
        q["nvf_images"] = _get(p, "nvf_images", path, int, 500)
        if q["nvf_images"] < 1:
            raise _err(f"{path}.nvf_images", "must be at least 1")
        return
    if "voter" in p or "lcu_mode" in p:
        key = "voter" if "voter" in p else "lcu_mode"
        raise _err(f"{path}.{key}", "comes from the protected model's protection.json")
    folder = Path(prot) if base is None or Path(prot).is_absolute() else base / prot
    if folder.is_file():
        folder = folder.parent
    files = (folder / "protection.json", folder / "model.npz")
    for f in files:
        if not f.is_file():
            raise _err(f"{path}.protected", f"{folder}: no {f.name} (a folder written by "
                                            "rtlgen protect)")
    try:
        doc = json.loads(files[0].read_text())
    except ValueError:
        raise _err(f"{path}.protected", f"{files[0]}: not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != "ftaccel-protection":
        raise _err(f"{path}.protected", f"{files[0]}: not a protection file (rtlgen protect)")
    if doc.get("method") != kind:
        raise _err(f"{path}.protected", f"{folder} is protected by {doc.get('method')!r}, "
                                        f"not {kind!r}")
    q["protected"] = str(folder.resolve())
    q["protected_hash"] = _file_hash(*files)
    q["protected_config"] = dict(doc.get("config") or {})


def _choices(d, key, allowed, default):
    v = _get(d, key, "faults", list, default)
    bad = [x for x in v if x not in allowed]
    if bad or not v:
        raise _err(f"faults.{key}", f"{bad or v!r}: a non-empty list of {', '.join(allowed)}")
    return list(v)


def _protections(items, cfg, base=None) -> list[dict]:
    if not isinstance(items, list) or not items:
        raise _err("protections", "a non-empty array of tables ([[protections]])")
    out, names = [], set()
    for i, p in enumerate(items):
        path = f"protections[{i}]"
        if not isinstance(p, dict):
            raise _err(path, "must be a table")
        for key in p:
            if key not in _PROTECTION_KEYS:
                raise _err(f"{path}.{key}", f"unknown key; known: "
                                            f"{', '.join(sorted(_PROTECTION_KEYS))}")
        kind = _get(p, "kind", path, str, required=True)
        q: dict = {"kind": kind}
        if kind == "none":
            pass
        elif kind == "afd":
            q["gates"] = _get(p, "gates", path, int, 1)
            q["mode"] = _get(p, "mode", path, str, "drop")
            gamma = _get(p, "gamma", path, (int, float), 2)
            if q["gates"] not in (1, 2):
                raise _err(f"{path}.gates", "1 or 2")
            if q["mode"] not in ("drop", "clip"):
                raise _err(f"{path}.mode", "drop or clip")
            shift = math.log2(gamma) if gamma > 0 else math.nan
            if not math.isfinite(shift) or shift != int(shift):
                raise _err(f"{path}.gamma", f"{gamma!r}: a power of two (γ = 2**shift)")
            if abs(shift) > cfg.a_width:
                raise _err(f"{path}.gamma", f"2**{int(shift)} beyond ±{cfg.a_width} bits")
            q["gamma"] = gamma
        elif kind == "median":
            q["window"] = _get(p, "window", path, int, 3)
            q["variant"] = _get(p, "variant", path, str, "plain")
            if q["window"] not in (3, 5):
                raise _err(f"{path}.window", "3 or 5")
        elif kind == "sanity":
            q["checksum"] = _get(p, "checksum", path, str, "both")
            q["temporal_mode"] = _get(p, "temporal_mode", path, str, "residue")
            q["temporal_batch"] = _get(p, "temporal_batch", path, int, 15)
            if q["checksum"] not in ("spatial", "temporal", "both"):
                raise _err(f"{path}.checksum", "spatial, temporal or both")
            if not 1 <= q["temporal_batch"] <= 255:
                raise _err(f"{path}.temporal_batch", "1 … 255")
        elif kind == "bypass":
            q["threshold"] = float(_get(p, "threshold", path, (int, float), 0.5))
        elif kind in ("lcu", "tmr"):
            _critical_spec(p, q, path, kind, base)
        else:
            raise _err(f"{path}.kind", f"{kind!r}: one of none, afd, median, sanity, bypass, "
                                       "lcu, tmr")
        if kind in ("afd", "median"):
            layers = _get(p, "layers", path, list)
            if layers is not None and not all(isinstance(x, str) for x in layers):
                raise _err(f"{path}.layers", "a list of product-layer names")
            q["layers"] = layers
        for key in p:
            if key not in q and key not in ("name", "kind") and not (
                    kind in ("lcu", "tmr") and key == "protected"):
                raise _err(f"{path}.{key}", f"does not apply to kind {kind!r}")
        q["name"] = _get(p, "name", path, str, _default_name(q))
        if q["name"] in names:
            raise _err(f"{path}.name", f"{q['name']!r} used twice")
        names.add(q["name"])
        try:
            to_protection(q, cfg).cfg(cfg)
        except ConfigError as exc:
            raise _err(path, str(exc)) from None
        out.append(q)
    if not any(q["kind"] == "none" for q in out):  # outcomes are judged against the baseline
        out.insert(0, {"kind": "none", "name": "none"})
    return out


def _default_name(q: dict) -> str:
    k = q["kind"]
    if k == "afd":
        return f"afd-{q['gates']}g-{q['mode']}-g{q['gamma']:g}"
    if k == "median":
        return f"median{q['window']}"
    if k == "sanity":
        return f"sanity-{q['checksum']}"
    if k in ("lcu", "tmr"):
        return f"{k}-nvf{q['nvf_threshold']:g}" if "nvf_threshold" in q else f"{k}-protected"
    return k


def to_protection(q: dict, cfg=None) -> Protection:
    """A spec protection as a :class:`app.netcampaign.Protection`.

    ``lcu`` / ``tmr``: the configuration only; :func:`build_context` adds the protected model.
    ``cfg`` (the base accelerator) sets the exact LCU's all-ones mask width.
    """
    kind = q["kind"]
    if kind == "afd":
        shift = int(math.log2(q["gamma"]))
        return Protection(q["name"], kind, {"afd": True},
                          {"afd": {"shift": shift, "gates": q["gates"],
                                   "mode": int(q["mode"] == "clip"), "enable": 1}},
                          layers=_tuple(q.get("layers")))
    if kind == "median":
        return Protection(q["name"], kind, {"median": q["window"],
                                            "median_variant": q["variant"]},
                          layers=_tuple(q.get("layers")))
    if kind == "sanity":
        bits = max(1, int(q["temporal_batch"]).bit_length())
        cfg = {"checksum": q["checksum"], "temporal_mode": q["temporal_mode"],
               "temporal_batch_bits": bits}
        units = {"temporal_batch": q["temporal_batch"]} if q["checksum"] != "spatial" else {}
        return Protection(q["name"], kind, cfg, units)
    if kind == "bypass":
        return Protection(q["name"], kind, {"bypass": True}, {}, q["threshold"])
    if kind == "lcu":  # the protected model and its options come with the context
        a_width = 8 if cfg is None else cfg.a_width
        changes = q.get("protected_config") or (
            {"lcu": True} if q.get("lcu_mode", "halve") == "halve" else
            {"lcu": True, "lcu_mask": (1 << a_width) - 1})
        return Protection(q["name"], kind, dict(changes))
    return Protection(q["name"], kind)


def _tuple(x):
    return None if x is None else tuple(x)


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# -- the context and the work ------------------------------------------------------------------

_CONTEXTS: dict = {}


def build_context(spec: dict, images: int | None = None) -> Context:
    """The network, data and fault-free runs of ``spec`` (cached per process)."""
    key = (spec_hash(spec), images)
    if key in _CONTEXTS:
        return _CONTEXTS[key]
    from ftaccel.app.datasets import digits, load_data
    from ftaccel.app.network import open_model

    cfg = AcceleratorConfig.from_dict(spec["accelerator"])
    src = spec["data"]["source"]
    ds = digits("test") if src == "digits" else load_data(src)
    ds = ds.head(images or spec["data"]["images"])
    cal = load_data(spec["network"]["calib"]).images if spec["network"]["calib"] else None
    if cal is None and spec["network"]["model"].endswith(".onnx"):
        cal = ds.images
    net = open_model(spec["network"]["model"], a_width=cfg.a_width, w_width=cfg.w_width,
                      calibration=cal)
    x = net.check(cfg, ds.images)
    prots = [to_protection(q, cfg) for q in spec["protections"]]
    nvf_cache: dict = {}
    for k, q in enumerate(spec["protections"]):
        if q["kind"] in ("lcu", "tmr"):
            prots[k] = _critical_protection(q, k, prots[k], net, cfg, cal, nvf_cache)
            # LCU and TMR voter share the output buffer: make it hold every layer's result
            prots[k] = _buffer_sized(prots[k], len(ds.images), cfg)
    perms = None
    if spec["network"].get("permutation"):
        from ftaccel.app.critical import CriticalError, permutation_layers

        pm = spec["network"]["permutation"]
        try:
            opts = permutation_layers({"layers": pm["layers"]}, net.model,
                                      f"{pm['what']} {pm['file']}")
        except CriticalError as exc:
            raise CampaignError(str(exc)) from None
        perms = {i: o.permutation for i, o in opts.items()}
    ctx = Context(net.model, x, ds.labels, cfg, prots, permutations=perms)
    _CONTEXTS.clear()  # one campaign per worker process at a time
    _CONTEXTS[key] = ctx
    return ctx


def _critical_protection(q: dict, k: int, prot: Protection, net, cfg, cal, cache: dict):
    """``prot`` with its protected model and options (``lcu`` / ``tmr``).

    From an NVF threshold (the NVF analysed on ``nvf_images`` training images: the digits
    training split for the built-in models, else the calibration images) or from a folder
    written by ``rtlgen protect`` (its placement checked on this accelerator).
    """
    import dataclasses

    from ftaccel.app.critical import CriticalError, protection_options
    from ftaccel.app.protect import PlacementError, check_placement, protect
    from ftaccel.golden.network import Model, product_layers

    path = f"protections[{k}]"
    if "nvf_threshold" in q:
        from ftaccel.app.nvf import nvf

        n_img = q["nvf_images"]
        if n_img not in cache:
            if net.name in ("digits-mlp", "digits-cnn") or cal is None:
                from ftaccel.app.datasets import digits

                imgs = digits("train").images[:n_img]
            else:
                imgs = cal[:n_img]
            cache[n_img] = nvf(net.model, net.model.quantize_input(imgs))
        res = cache[n_img]
        crit = res.critical(q["nvf_threshold"] / 100, hidden_only=True)
        try:
            pr = protect(net.model, crit, q["kind"], cfg, voter=q.get("voter", "word"),
                         lcu_mode=q.get("lcu_mode", "halve"))
        except PlacementError as exc:
            raise _err(f"{path}.nvf_threshold", str(exc)) from None
        info = {"nvf_threshold": q["nvf_threshold"], "nvf_images": n_img,
                "protected_neurons": pr.protected_neurons, "neurons": pr.neurons,
                "original_neurons": pr.original_neurons,
                "critical": {net.model.layers[i].name: list(map(int, lp.critical))
                             for i, lp in pr.layers.items()}}
        return dataclasses.replace(prot, config=dict(pr.config), model=pr.model,
                                   options=pr.options(), info=info)
    folder = Path(q["protected"])
    try:
        model = Model.load(folder / "model.npz")
        options = protection_options(folder / "protection.json", model)
    except (CriticalError, ValueError, KeyError, OSError) as exc:
        raise _err(f"{path}.protected", str(exc).splitlines()[0]) from None
    if model.name != net.name or len(model.layers) != len(net.model.layers):
        raise _err(f"{path}.protected", f"{folder}: a protection of {model.name}, not of "
                                        f"the campaign's {net.name}")
    doc = json.loads((folder / "protection.json").read_text())
    groups = {int(e["layer"]): e["groups"] for e in doc.get("layers", [])}
    try:
        for i, o in options.items():
            check_placement(groups.get(i, []), o.permutation, cfg.cols, cfg.dataflow,
                            layer=model.layers[i].name)
    except PlacementError as exc:
        raise _err(f"{path}.protected", f"on this accelerator: {exc}") from None
    hidden = sum(model.layers[i].matrix.shape[1] for i in product_layers(model)[:-1])
    info = {"protected": str(folder), "protected_neurons": doc.get("protected_neurons"),
            "neurons": hidden, "original_neurons": doc.get("original_neurons")}
    return dataclasses.replace(prot, model=model, options=options, info=info)


def _buffer_sized(prot: Protection, n_images: int, cfg) -> Protection:
    """``prot`` with ``lcu_depth`` raised to the output-buffer rows its largest layer needs.

    The LCU controller or the TMR voter corrects a layer's result in the output buffer (one row
    of C words per output vector and column tile); the fast model does not need it, the cycle
    model and the RTL (``--verify-rtl``) do.
    """
    import dataclasses

    from ftaccel.app.netcampaign import layer_dims

    rows = max(M * -(-N // cfg.cols) for (_i, M, _K, N) in layer_dims(prot.model, n_images))
    depth = max(64, 1 << (rows - 1).bit_length())
    if depth <= cfg.lcu_depth:
        return prot
    return dataclasses.replace(prot, config={**prot.config, "lcu_depth": depth})


def _check_protection_layers(spec: dict, ctx: Context) -> None:
    names = {ctx.model.layers[i].name for i in ctx.products}
    for i, q in enumerate(spec["protections"]):
        bad = [x for x in q.get("layers") or [] if x not in names]
        if bad:
            raise _err(f"protections[{i}].layers", f"{bad!r}: not product layers of the model "
                                                   f"({', '.join(sorted(names))})")


def _layers(spec: dict, ctx: Context):
    names = spec["faults"].get("layers")
    if names is None:
        return None
    out = []
    for name in names:
        idx = [i for i in ctx.products if ctx.model.layers[i].name == name or str(i) == str(name)]
        if not idx:
            known = ", ".join(ctx.model.layers[i].name for i in ctx.products)
            raise _err("faults.layers", f"{name!r} is not a product layer of the model "
                                        f"({known})")
        out += idx
    return out


def population(spec: dict, ctx: Context) -> RegisterPopulation:
    f = spec["faults"]
    return RegisterPopulation(ctx.base, ctx.dims, f["registers"], f["modes"], _layers(spec, ctx))


@dataclass
class Plan:
    """The campaign's work: ``items`` (register: population indices; sweep: (rate, trial))."""

    items: list
    chunk: int
    population: int | None
    sample: dict

    @property
    def chunks(self) -> int:
        return -(-len(self.items) // self.chunk)

    def chunk_items(self, c: int) -> list:
        lo = c * self.chunk
        return [(lo + i, item) for i, item in enumerate(self.items[lo:lo + self.chunk])]


def make_plan(spec: dict, ctx: Context) -> Plan:
    s = spec["sample"]
    chunk = spec["campaign"]["chunk"]
    if spec["faults"]["model"] != "register":
        items = [(float(r), t) for r in s["rates"] for t in range(s["trials"])]
        return Plan(items, chunk, None, {"method": "sweep", "rates": s["rates"],
                                         "trials": s["trials"], "items": len(items)})
    pop = population(spec, ctx)
    if s["method"] == "exhaustive":
        if len(pop) > 10_000_000:
            raise _err("sample.method", f"exhaustive: {len(pop):,} faults; use statistical")
        return Plan(list(range(len(pop))), chunk, len(pop),
                    {"method": "exhaustive", "size": len(pop)})
    n = statistical_size(len(pop), s["margin"], s["confidence"])
    rng = np.random.default_rng(np.random.SeedSequence([spec["campaign"]["seed"], 0x5A3B1E]))
    idx = np.sort(rng.choice(len(pop), size=n, replace=False)).tolist()
    return Plan(idx, chunk, len(pop), {"method": "statistical", "size": n,
                                       "margin": s["margin"], "confidence": s["confidence"],
                                       "population": len(pop)})


def run_chunk(spec: dict, items: list) -> list[dict]:
    """Evaluate one chunk's items (``(fault id, item)``) on every protection: trace rows.

    Runs in a worker; depends only on the spec and the items (every item seeded alone).
    """
    ctx = build_context(spec)
    f = spec["faults"]
    rows = []
    if f["model"] == "register":
        pop = population(spec, ctx)
        for fid, index in items:
            for row in evaluate_register_fault(ctx, pop.describe(index), fid):
                row["population_index"] = index
                rows.append(row)
    else:
        for fid, (rate, trial) in items:
            for row in evaluate_trial(ctx, f["model"], rate, trial, spec["campaign"]["seed"],
                                      fid, targets=tuple(f.get("targets", ("weights",))),
                                      profile_mode=f.get("mode", "bitflip"),
                                      bits=f.get("bits")):
                rows.append(row)
    return [{k: row.get(k, "") for k in TRACE_COLUMNS} for row in rows]


# -- storage -----------------------------------------------------------------------------------

def _rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TRACE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


_INT_COLS = {"fault_id", "pe_row", "pe_col", "bit", "cycle", "tile", "vector", "trial",
             "spatial_alarms", "temporal_alarms", "logits_changed", "top1_changed",
             "population_index"}
_FLOAT_COLS = {"rate", "accuracy", "accuracy_drop", "bypass_rate"}


def _read_chunk(path: Path) -> list[dict]:
    rows = []
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            for k in _INT_COLS:
                r[k] = int(r[k]) if r[k] != "" else ""
            for k in _FLOAT_COLS:
                r[k] = float(r[k]) if r[k] != "" else ""
            rows.append(r)
    return rows


class Campaign:
    """One campaign folder: its spec, plan and finished chunks."""

    def __init__(self, spec: dict, out_dir):
        self.spec = spec
        self.dir = Path(out_dir)
        self.hash = spec_hash(spec)

    @property
    def chunk_dir(self) -> Path:
        """The folder of finished chunks."""
        return self.dir / "chunks"

    def chunk_path(self, c: int) -> Path:
        """The CSV file of chunk ``c``."""
        return self.chunk_dir / f"chunk-{c:06d}.csv"

    def claim(self) -> None:
        """Create the folder for this spec, or check that it is this spec's (resume)."""
        from ftaccel.files import UnsafeTarget, check_target, write_json

        if self.dir.exists() and not self.dir.is_dir():
            raise CampaignError(f"-o {self.dir}: exists and is not a folder")
        meta = self.dir / "spec.json"
        if meta.exists():
            try:
                old = json.loads(meta.read_text())
            except (OSError, ValueError):
                raise CampaignError(f"-o {self.dir}: unreadable spec.json; not a campaign "
                                    "folder this tool can resume") from None
            if old.get("hash") != self.hash:
                raise CampaignError(f"-o {self.dir}: the folder belongs to a different "
                                    f"campaign spec (hash {old.get('hash')} ≠ {self.hash}); "
                                    "use another folder or remove it")
            return
        if self.dir.exists() and any(self.dir.iterdir()):
            raise CampaignError(f"-o {self.dir}: folder is not empty and holds no campaign")
        try:
            for name in ("spec.json", "campaign.json", "campaign.md", "trace.csv"):
                check_target(self.dir / name)
        except UnsafeTarget as exc:
            raise CampaignError(str(exc)) from None
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        write_json(meta, {"hash": self.hash, "spec": self.spec})

    def done(self) -> set[int]:
        """The indices of the finished chunks."""
        if not self.chunk_dir.exists():
            return set()
        return {int(p.stem.split("-")[1]) for p in self.chunk_dir.glob("chunk-*.csv")}

    def save_chunk(self, c: int, rows: list[dict]) -> None:
        """Write chunk ``c``'s ``rows`` atomically."""
        from ftaccel.files import write_text

        write_text(self.chunk_path(c), _rows_to_csv(rows))  # temp file, fsync, rename

    def rows(self, plan: Plan) -> list[dict]:
        """Every row of the finished chunks of ``plan``, in chunk order."""
        rows = []
        for c in range(plan.chunks):
            rows += _read_chunk(self.chunk_path(c))
        return rows


# -- running -----------------------------------------------------------------------------------

def run_campaign(spec_or_path, out_dir, *, workers: int | None = None,
                 scheduler: str | None = None, verify_rtl: int = 0, progress: bool | None = None,
                 sim: str | None = None, permutation=None, log=print) -> dict:
    """Run (or resume) a campaign into ``out_dir``; return the ``campaign.json`` dict.

    ``workers``: Dask worker processes on this machine (default: every core; 0 = run in this
    process); ``scheduler``: address of an existing Dask scheduler (overrides ``workers``);
    ``permutation``: a permutation file (``rtlgen schedule``) replacing the spec's.
    """
    if isinstance(spec_or_path, dict):
        spec = spec_or_path
        if permutation is not None:
            spec = {**spec, "network": {**spec["network"], "permutation": _read_permutation(
                Path(permutation), "--permutation")}}
    else:
        spec = load_spec(spec_or_path, permutation=permutation)
    camp = Campaign(spec, out_dir)
    t_ctx = time.perf_counter()
    ctx = build_context(spec)  # validates model, data and fit before anything is written
    _layers(spec, ctx)
    _check_protection_layers(spec, ctx)
    plan = make_plan(spec, ctx)
    t_ctx = time.perf_counter() - t_ctx
    camp.claim()
    todo = [c for c in range(plan.chunks) if c not in camp.done()]
    resumed = plan.chunks - len(todo)
    if resumed:
        log(f"resuming: {resumed} of {plan.chunks} chunks already done", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=len(plan.items), initial=sum(min(plan.chunk, len(plan.items) - c *
                                                      plan.chunk) for c in camp.done()),
               unit="fault", desc=spec["campaign"]["name"], file=sys.stderr, smoothing=0.1,
               disable=(None if progress is None else not progress))
    t0 = time.perf_counter()
    n_workers = 0
    try:
        if scheduler is None and (workers == 0 or not todo):
            for c in todo:
                camp.save_chunk(c, run_chunk(spec, plan.chunk_items(c)))
                bar.update(len(plan.chunk_items(c)))
        else:
            n_workers = _run_dask(camp, plan, todo, bar, workers, scheduler)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    rows = camp.rows(plan)
    report = summarise(spec, ctx, plan, rows)
    ran = {fid for c in todo for fid, _ in plan.chunk_items(c)}
    inferences = sum(r["fault_id"] in ran for r in rows) * len(ctx.x)
    report["timing"] = {"seconds": round(seconds, 3), "context_seconds": round(t_ctx, 3),
                        "chunks_run": len(todo), "chunks_resumed": resumed,
                        "workers": n_workers,
                        "items_per_second": round(len(ran) / max(seconds, 1e-9), 3),
                        "fault_inferences_per_minute": round(inferences / max(seconds, 1e-9)
                                                             * 60)}
    if verify_rtl:
        report["verify_rtl"] = verify_on_rtl(spec, plan, verify_rtl, sim=sim, log=log)
    write_reports(camp, report, rows)
    return report


def _run_dask(camp: Campaign, plan: Plan, todo: list[int], bar, workers, scheduler) -> int:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        spec_f = client.scatter(camp.spec, broadcast=True)
        futures = {client.submit(run_chunk, spec_f, plan.chunk_items(c), pure=False,
                                 key=f"campaign-{camp.hash}-{c}"): c for c in todo}
        for fut in as_completed(futures):
            c = futures[fut]
            camp.save_chunk(c, fut.result())
            bar.update(len(plan.chunk_items(c)))
        return len(client.scheduler_info().get("workers", {}))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- summaries ---------------------------------------------------------------------------------

def summarise(spec: dict, ctx: Context, plan: Plan, rows: list[dict]) -> dict:
    """Everything ``campaign.json`` holds besides the trace."""
    prots = [q["name"] for q in spec["protections"]]
    clean = {p.name: {"accuracy": ctx.accuracy(ctx.clean[p.name].logits),
                      "false_alarms": ctx.clean[p.name].alarms,
                      "config": ctx.clean[p.name].cfg.name(),
                      "hidden_neurons": _hidden(ctx.model_of(p)),
                      "permuted": p.options is None and bool(ctx.permutations),
                      **({"protection": p.info} if p.info else {})}
             for p in ctx.protections}
    out = {"spec": spec, "spec_hash": spec_hash(spec), "images": len(ctx.x),
           "model": ctx.model.name, "config": ctx.base.to_dict(), "plan": plan.sample,
           "population": plan.population, "items": len(plan.items), "chunks": plan.chunks,
           "fault_free": clean, "protections": {}}
    # only the array's dense/conv products take faults; say which nodes ran fault-free
    out["nodes"] = faulted_nodes(ctx.model)
    pm = spec["network"].get("permutation")
    if pm:
        out["permutation"] = {"file": pm["file"], "layers": {
            ctx.model.layers[i].name: p.tolist() for i, p in ctx.permutations.items()},
            "applies_to": [p.name for p in ctx.protections if p.options is None]}
    by_prot = {p: [r for r in rows if r["protection"] == p] for p in prots}
    base = {r["fault_id"]: r for r in by_prot.get("none", [])}
    for p in prots:
        rs = by_prot[p]
        n = len(rs)
        if not n:  # e.g. pe_bypass: only protections with the bypass hardware take part
            continue
        counts = {o: sum(r["outcome"] == o for r in rs) for o in OUTCOMES}
        entry = {"faults": n, "outcomes": counts,
                 "shares": {o: (counts[o] / n if n else None) for o in OUTCOMES},
                 "ci95": {o: wilson(counts[o], n) for o in OUTCOMES},
                 "accuracy": mean_ci([r["accuracy"] for r in rs]) if rs else None,
                 "alarms": {a: sum(r["alarm"] == a for r in rs)
                            for a in ("spatial", "temporal", "both")}}
        # coverage of error-caused mispredictions (000 Fig. 6.10): among the faults that
        # change a top-1 prediction of the unprotected network, how many this one detects
        crit = [r for r in rs if base.get(r["fault_id"], {}).get("top1_changed", 0) > 0]
        if crit:
            det = sum(r["outcome"] == "detected" for r in crit)
            entry["misprediction_coverage"] = {"faults": len(crit), "detected": det,
                                               "share": det / len(crit),
                                               "ci95": wilson(det, len(crit))}
        entry["detected_without_output_change"] = sum(
            r["outcome"] == "detected" and r["logits_changed"] == 0 for r in rs)
        if spec["faults"]["model"] == "register":
            entry["by_site"] = {reg: {o: sum(r["outcome"] == o for r in rs
                                             if r["register"] == reg) for o in OUTCOMES}
                                for reg in spec["faults"]["registers"]}
            entry["accuracy_by_site"] = {reg: mean_ci([r["accuracy"] for r in rs
                                                       if r["register"] == reg])
                                         for reg in spec["faults"]["registers"]}
        else:
            entry["by_rate"] = {}
            for rate in spec["sample"]["rates"]:
                rr = [r for r in rs if r["rate"] == rate]
                if not rr:
                    continue
                m, lo, hi = mean_ci([r["accuracy"] for r in rr])
                entry["by_rate"][repr(rate)] = {
                    "trials": len(rr), "accuracy": m, "ci95": [lo, hi],
                    "outcomes": {o: sum(r["outcome"] == o for r in rr) for o in OUTCOMES},
                    **({"bypass_rate": float(np.mean([r["bypass_rate"] for r in rr]))}
                       if rr[0]["bypass_rate"] != "" else {})}
        out["protections"][p] = entry
    if spec["faults"]["model"] != "register":
        out["tolerated_rate"] = tolerated_rates(out, [0.01, 0.05])
    return out


def _hidden(model) -> int:
    from ftaccel.golden.network import product_layers

    return int(sum(model.layers[i].matrix.shape[1] for i in product_layers(model)[:-1]))


def tolerated_rates(summary: dict, losses) -> dict:
    """Per accuracy loss (vs the unprotected fault-free accuracy).

    The rate at which each protection's mean accuracy falls to that loss (log-linear interpolation
    between swept rates; None if never within the sweep), and its ratio to the baseline's (000 Figs.
    8.13/8.14: "error rate tolerated at equal accuracy loss").
    """
    ref = summary["fault_free"]["none"]["accuracy"]
    out = {}
    for loss in losses:
        row = {}
        for p, e in summary["protections"].items():
            pts = sorted((float(r), v["accuracy"]) for r, v in e.get("by_rate", {}).items())
            row[p] = _crossing(pts, ref - loss)
        base = row.get("none")
        out[f"{loss:g}"] = {p: {"rate": r, "ratio": (r / base if r and base else None)}
                            for p, r in row.items()}
    return out


def _crossing(pts, level):
    prev = None
    for rate, acc in pts:
        if acc < level:
            if prev is None:
                return None
            (r0, a0), r1, a1 = prev, rate, acc
            if r0 <= 0:
                return r1
            f = (a0 - level) / (a0 - a1)
            return float(10 ** (math.log10(r0) + f * (math.log10(r1) - math.log10(r0))))
        prev = (rate, acc)
    return None


# -- reports -----------------------------------------------------------------------------------

def write_reports(camp: Campaign, report: dict, rows: list[dict]) -> None:
    from ftaccel.files import write_json, write_text

    rows = sorted(rows, key=lambda r: (r["fault_id"], r["protection"]))
    write_text(camp.dir / "trace.csv", _rows_to_csv(rows))
    report["trace"] = ["trace.csv"]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # the CSV holds the same rows
        pass
    else:
        table = pa.Table.from_pylist([{k: (None if v == "" else v) for k, v in r.items()}
                                      for r in rows])
        buf = io.BytesIO()
        pq.write_table(table, buf)
        from ftaccel.files import atomic_write

        with atomic_write(camp.dir / "trace.parquet") as fh:
            fh.write(buf.getvalue())
        report["trace"].append("trace.parquet")
    report["plots"] = write_plots(camp.dir, report)
    write_json(camp.dir / "campaign.json", _jsonable(report))
    write_text(camp.dir / "campaign.md", to_markdown(report))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def write_plots(folder: Path, report: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ftaccel.files import atomic_write

    made = []
    prots = report["protections"]
    if any("by_rate" in e for e in prots.values()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for p, e in prots.items():
            pts = sorted((float(r), v) for r, v in e.get("by_rate", {}).items())
            if not pts:
                continue
            x = [r for r, _ in pts]
            key = "bypass_rate" if all("bypass_rate" in v for _, v in pts) else None
            if key:
                x = [v[key] for _, v in pts]
            y = [100 * v["accuracy"] for _, v in pts]
            lo = [100 * v["ci95"][0] for _, v in pts]
            hi = [100 * v["ci95"][1] for _, v in pts]
            ax.plot(x, y, marker="o", label=p)
            ax.fill_between(x, lo, hi, alpha=0.2)
        model = report["spec"]["faults"]["model"]
        if model != "pe_bypass" and min(float(r) for e in prots.values()
                                        for r in e.get("by_rate", {}) or [1]) > 0:
            ax.set_xscale("log")
        ax.set_xlabel({"bit_errors": "bit-error rate", "pe_profile": "FR_max",
                       "pe_bypass": "PE bypass rate"}.get(model, "rate"))
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{report['model']}: accuracy vs rate (95 % CI)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        made.append(_save(fig, folder / "accuracy_vs_rate.png", atomic_write))
        plt.close(fig)
    if any("by_site" in e for e in prots.values()):
        sites = report["spec"]["faults"]["registers"]
        fig, axes = plt.subplots(1, len(prots), figsize=(2.6 * len(prots) + 1, 3.8),
                                 sharey=True, squeeze=False)
        colors = dict(zip(OUTCOMES, ("#9ecae1", "#fdd0a2", "#e6550d", "#31a354", "#756bb1"),
                          strict=True))
        for ax, (p, e) in zip(axes[0], prots.items(), strict=True):
            bottom = np.zeros(len(sites))
            for o in OUTCOMES:
                tot = np.array([max(1, sum(e["by_site"][s].values())) for s in sites])
                v = np.array([e["by_site"][s][o] for s in sites]) / tot * 100
                ax.bar(sites, v, bottom=bottom, color=colors[o], label=o)
                bottom += v
            ax.set_title(p, fontsize=9)
        axes[0][0].set_ylabel("share of faults (%)")
        axes[0][-1].legend(fontsize=7, loc="upper right")
        fig.suptitle(f"{report['model']}: outcomes per fault site")
        made.append(_save(fig, folder / "outcomes_by_site.png", atomic_write))
        plt.close(fig)
    return made


def _save(fig, path: Path, atomic_write) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return path.name


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def to_markdown(r: dict) -> str:
    spec = r["spec"]
    cfg = AcceleratorConfig.from_dict(r["config"])
    lines = [f"# Fault campaign: {spec['campaign']['name']}", "",
             f"- model: {r['model']} on {r['images']} images; accelerator `{cfg.name()}`",
             f"- fault model: {spec['faults']['model']} "
             f"({', '.join(f'{k}={v}' for k, v in spec['faults'].items() if k != 'model')})"]
    if r.get("nodes"):
        nd = r["nodes"]
        free = [f"{', '.join(nd[k])} ({what})" for k, what in
                (("depthwise", "depthwise products"), ("host", "host operations")) if nd[k]]
        lines.append(f"- faults injected into the array's products of {', '.join(nd['faulted'])}"
                     + (f"; fault-free: {'; '.join(free)}" if free else ""))
    if r.get("permutation"):
        pm = r["permutation"]
        lines.append(f"- neuron permutation (HAS): `{pm['file']}`, layers "
                     f"{', '.join(pm['layers'])}; applied to {', '.join(pm['applies_to'])} "
                     "(LCU/TMR keep their own placement)")
    for p, ff in r["fault_free"].items():
        info = ff.get("protection")
        if info:
            src = (f"NVF ≥ {info['nvf_threshold']:g} %" if "nvf_threshold" in info
                   else f"`{info['protected']}`")
            lines.append(f"- {p}: {info.get('protected_neurons')} critical neurons ({src}); "
                         f"{info.get('original_neurons')} → {ff['hidden_neurons']} hidden "
                         "neurons")
    plan = r["plan"]
    if plan["method"] == "statistical":
        lines.append(f"- statistical sample (001 Eq. 4.7): {plan['size']:,} of "
                     f"{plan['population']:,} faults, error margin ±{100 * plan['margin']:g} % at "
                     f"{100 * plan['confidence']:g} % confidence")
    elif plan["method"] == "exhaustive":
        lines.append(f"- exhaustive: all {plan['size']:,} faults")
    else:
        lines.append(f"- sweep: rates {', '.join(f'{x:g}' for x in plan['rates'])}, "
                     f"{plan['trials']} trials each")
    t = r.get("timing", {})
    if t and not t["chunks_run"]:
        lines.append(f"- resumed: all {t['chunks_resumed']} chunks were already done")
    elif t:
        lines.append(f"- time: {t['seconds']:.1f} s on {t['workers'] or 'this'} "
                     f"{'worker(s)' if t['workers'] else 'process'}; "
                     f"{t['fault_inferences_per_minute']:,} fault-inferences per minute")
    lines += ["", "| protection | fault-free accuracy | " + " | ".join(OUTCOMES)
              + " | mean accuracy (95 % CI) |", "|---|---:|" + "---:|" * len(OUTCOMES) + "---:|"]
    for p, e in r["protections"].items():
        acc = e["accuracy"]
        acc_s = "—" if acc is None else f"{100 * acc[0]:.2f} % ({100 * acc[1]:.2f}–" \
                                        f"{100 * acc[2]:.2f})"
        lines.append(f"| {p} | {_pct(r['fault_free'][p]['accuracy'])} | "
                     + " | ".join(f"{e['outcomes'][o]} ({_pct(e['shares'][o])})"
                                  for o in OUTCOMES) + f" | {acc_s} |")
    cov = [(p, e["misprediction_coverage"]) for p, e in r["protections"].items()
           if "misprediction_coverage" in e and r["fault_free"][p]["config"] !=
           r["fault_free"]["none"]["config"] and "_cs" in r["fault_free"][p]["config"]]
    if cov:
        lines += ["", "Sanity-Check (000 Fig. 6.10: 100 % of error-caused mispredictions "
                      "detected, no false alarm):", "",
                  "| protection | faults changing a top-1 prediction (unprotected) | detected "
                  "| coverage (95 % CI) | false alarms (fault-free) |",
                  "|---|---:|---:|---:|---:|"]
        for p, c in cov:
            lines.append(f"| {p} | {c['faults']} | {c['detected']} | {_pct(c['share'])} "
                         f"({_pct(c['ci95'][0])}–{_pct(c['ci95'][1])}) | "
                         f"{r['fault_free'][p]['false_alarms']} |")
    sites = [(p, e["accuracy_by_site"]) for p, e in r["protections"].items()
             if e.get("accuracy_by_site")]
    if sites:
        names = list(sites[0][1])
        lines += ["", "Mean top-1 accuracy under a fault, per site (95 % CI); product and sum "
                      "are MAC logic, which PE bypass isolates:", "",
                  "| site | " + " | ".join(p for p, _ in sites) + " |",
                  "|---|" + "---:|" * len(sites)]
        for site in names:
            cells = []
            for _, by in sites:
                m, lo, hi = by[site]
                cells.append("—" if m != m else f"{100 * m:.2f} % ({100 * lo:.2f}–"
                                                 f"{100 * hi:.2f})")
            lines.append(f"| {site} | " + " | ".join(cells) + " |")
    sweep = [(p, e["by_rate"]) for p, e in r["protections"].items() if e.get("by_rate")]
    if sweep:
        rates = sorted({float(x) for _, br in sweep for x in br})
        lines += ["", "Mean top-1 accuracy per rate (95 % CI over the trials):", "",
                  "| rate | " + " | ".join(p for p, _ in sweep) + " |",
                  "|---:|" + "---:|" * len(sweep)]
        for rate in rates:
            cells = []
            for _, br in sweep:
                v = br.get(repr(rate))
                cells.append("—" if v is None else f"{100 * v['accuracy']:.2f} % "
                             f"({100 * v['ci95'][0]:.2f}–{100 * v['ci95'][1]:.2f})")
            lines.append(f"| {rate:g} | " + " | ".join(cells) + " |")
    if "tolerated_rate" in r:
        seed = {"bit_errors": " (000 Figs. 8.13/8.14: AFD 20×, median 10–20× the baseline's "
                              "weight error rate)",
                "pe_bypass": " (000 Figs. 10.5–10.7)"}.get(spec["faults"]["model"], "")
        lines += ["", f"Rate at which the mean accuracy has lost 1 % / 5 % of the unprotected "
                      f"fault-free accuracy, and its ratio to the baseline's{seed}:", "",
                  "| accuracy loss | " + " | ".join(r["protections"]) + " |",
                  "|---|" + "---:|" * len(r["protections"])]
        for loss, row in r["tolerated_rate"].items():
            cells = []
            for p in r["protections"]:
                v = row.get(p, {})
                cells.append("—" if v.get("rate") is None else f"{v['rate']:.2g}" + (
                    f" ({v['ratio']:.2g}×)" if v.get("ratio") else ""))
            lines.append(f"| {100 * float(loss):g} % | " + " | ".join(cells) + " |")
    if "verify_rtl" in r:
        v = r["verify_rtl"]
        lines += ["", f"RTL check: {v.get('agree', 0)} of {v.get('checked', 0)} runs agree "
                      f"with the fast model ({v.get('note', '')})"]
    if r.get("plots"):
        lines += [""] + [f"![{p}]({p})" for p in r["plots"]]
    return "\n".join(lines) + "\n"


# -- RTL check ---------------------------------------------------------------------------------

def verify_on_rtl(spec: dict, plan: Plan, k: int, *, sim: str | None = None, log=print) -> dict:
    """Re-run ``k`` sampled register faults on the RTL under every protection.

    The runs use the first ``verify.images`` images and compare logits and alarm counts with the
    fast model.

    A flip's (pass, vector) is taken modulo the smaller batch's passes and vectors.
    """
    from ftaccel.app.netcampaign import flip_cycle
    from ftaccel.app.protect import VotingEngine
    from ftaccel.golden.faults import Fault
    from ftaccel.golden.network import LayerOptions, run
    from ftaccel.tb.accelerator import RTLEngine

    if spec["faults"]["model"] != "register":
        return {"checked": 0, "agree": 0, "note": "only register faults exist in the RTL's "
                                                  "fault hooks"}
    n_img = spec["verify"]["images"]
    ctx = build_context(spec, images=n_img)
    big = build_context(spec)
    pop = population(spec, big)
    rng = np.random.default_rng(np.random.SeedSequence([spec["campaign"]["seed"], 0xE71]))
    picks = rng.choice(len(plan.items), size=min(k, len(plan.items)), replace=False)
    engines = {}
    cases = []
    for i in picks:
        desc = pop.describe(plan.items[int(i)])
        for prot in ctx.protections:
            clean = ctx.clean[prot.name]
            cfg = clean.cfg.replace(fault_hooks=True)
            if desc["layer"] is None:
                f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], desc["mode"])
                opts = {li: LayerOptions(fault=f) for li in ctx.products}
            else:
                (li, M, K, N) = next(d for d in ctx.dims if d[0] == desc["layer"])
                from ftaccel.app.netcampaign import passes_of

                n_pass, per = passes_of(cfg, M, K, N)
                cyc = flip_cycle(cfg, M, K, N, desc["register"], desc["row"], desc["col"],
                                 desc["tile"] % n_pass, desc["vector"] % per,
                                 clean.units.get("temporal_batch"))
                f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], "flip", cyc)
                opts = {li: LayerOptions(fault=f)}
            units = dict(clean.units)
            if prot.kind == "bypass" and desc["layer"] is None:
                bmap = np.zeros((cfg.rows, cfg.cols), bool)
                bmap[desc["row"], desc["col"]] = True
                units["bypass_map"] = bmap
            key = cfg.name()
            if key not in engines:
                engines[key] = RTLEngine(cfg, sim=sim)
            # the protection's placement / the campaign's permutation; TMR votes host-side
            opts = ctx.options(prot, opts)
            model = ctx.model_of(prot)
            eng = VotingEngine(engines[key]) if prot.kind == "tmr" else engines[key]
            t0 = time.perf_counter()
            rtl = run(model, ctx.x, eng, units=units, options=opts)
            t_rtl = time.perf_counter() - t0
            t0 = time.perf_counter()
            from ftaccel.golden.fault_models import FastFaultEngine

            fast = run(model, ctx.x, FastFaultEngine(clean.cfg), units=units, options=opts)
            t_fast = time.perf_counter() - t0
            same = bool(np.array_equal(rtl.logits, fast.logits)) and \
                [st.alarms for st in rtl.layers] == [st.alarms for st in fast.layers]
            cases.append({"fault": {k2: v for k2, v in desc.items() if k2 != "dims"},
                          "cycle": f.cycle, "protection": prot.name, "agree": same,
                          "rtl_seconds": round(t_rtl, 3), "fast_seconds": round(t_fast, 5)})
            log(f"verify-rtl: fault {f} under {prot.name}: "
                f"{'agrees' if same else 'DIFFERS'} ({t_rtl:.1f} s RTL)", file=sys.stderr)
    agree = sum(c["agree"] for c in cases)
    return {"checked": len(cases), "agree": agree, "images": n_img,
            "share": agree / len(cases) if cases else None, "cases": cases,
            "note": f"{n_img} images; flips mapped modulo the smaller batch's passes/vectors"}
