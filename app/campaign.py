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
  spec alone: a statistical sample (Ahmadilivani 2025 Eq. 4.7, margin and confidence from the spec)
  drawn with the spec's seed, the whole population, or every (rate, trial) of a sweep.  Items are
  grouped in chunks of ``campaign.chunk``; every item draws its own randomness from
  ``SeedSequence([seed, item])``, so the results are the same for any number of workers.
* **Durability and integrity** (:mod:`app.campaign_store`).  The folder is claimed under a
  lock, ``spec.json`` first: the spec and the campaign's identity (the spec, the contents of
  every file it names, the tool's version).  The client (never a worker) writes each finished
  chunk to ``DIR/chunks/chunk-NNNNNN.json`` through a temporary file, ``fsync`` and an atomic
  rename, with its identity, fault ids and a checksum; the same command started again uses
  only the chunks that verify and computes the others again (no fault lost or duplicated).
  A folder of another campaign, or whose files changed, is refused saying what differs.
* **Limits.**  Everything is validated before the folder is touched; the planned work is
  capped by ``campaign.max_items`` and its estimate printed; names are unique and a repeated
  list entry is refused.
* **Scale.**  Chunks run on Dask ``distributed``: a ``LocalCluster`` with one single-threaded
  worker process per core by default, ``scheduler=ADDRESS`` for an existing cluster,
  ``workers=0`` in this process.  Every worker builds the context (model, data, each
  protection's fault-free run) once, or receives the client's (checked against the
  campaign's input hashes).  A tqdm bar shows faults per second and the time left.
  By default the first chunk runs here, timed: the rest stays in this process when its
  estimated time is shorter than a cluster's start-up saves, and a campaign estimated longer
  than an hour prints the estimate and the speed measured; ``campaign.json`` (``timing``)
  and ``campaign.md`` say which runner ran and why.  The LocalCluster's workers get glibc
  malloc settings (:data:`WORKER_MALLOC`) that keep freed arrays in the process.
* **Reports.**  ``trace.csv`` (and ``trace.parquet`` when ``pyarrow`` is installed): one row
  per (item, protection), a superset of ENFOR-SA's columns; ``campaign.json`` (complete),
  ``campaign.md`` (tables) and PNG plots (accuracy vs rate with 95 % bands; outcome shares
  per site).  ``verify_rtl=K`` replays K sampled faults (stuck-at, transient, or per-PE
  profile trials) on the RTL of every protection (fault hooks, a few images, one simulator
  model per configuration; Icarus or Verilator, chosen and said) and reports the agreement
  with the fast model per fault kind, and the build and run times.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftaccel import units
from ftaccel.app.campaign_report import (
    summarise,
    to_markdown,
    tolerated_rates,
    write_plots,
    write_reports,
)
from ftaccel.app.campaign_store import (
    TRACE_COLUMNS,
    Campaign,
    CampaignError,
    Identity,
    hash_inputs,
    identity,
    input_files,
    spec_hash,
)
from ftaccel.app.netcampaign import (
    FAULT_MODELS,
    PROFILE_MODES,
    PROTECTION_KINDS,
    Context,
    Protection,
    RegisterPopulation,
    evaluate_register_fault,
    evaluate_trial,
    flip_cycle,
    passes_of,
    statistical_size,
    trial_profile,
)
from ftaccel.app.protect import VotingEngine
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError, one_line, shown
from ftaccel.files import FileProblem, hash_input, parse_toml, read_input, read_json
from ftaccel.golden.fault_models import FastFaultEngine, one_per_cycle, profile_errors
from ftaccel.golden.faults import MODES, Fault
from ftaccel.golden.network import LayerOptions, run

__all__ = ["CampaignError", "load_spec", "parse_spec", "Campaign", "run_campaign",
           "TRACE_COLUMNS", "Plan", "make_plan", "build_context", "run_chunk", "spec_hash",
           "identity", "Identity", "input_files", "summarise", "tolerated_rates", "write_reports",
           "write_plots", "to_markdown", "verify_on_rtl", "MAX_ITEMS", "MAX_ITEMS_LIMIT",
           "resolve_spec", "provenance", "population"]

SPEC_VERSION = 1

#: Default cap on the planned work items (faults, or trials of a sweep): ``campaign.max_items``.
MAX_ITEMS = 1_000_000
#: Highest ``campaign.max_items``: the plan is held in memory (about 30 bytes an item).
MAX_ITEMS_LIMIT = 10_000_000
#: Populations above this are sampled block-wise (numpy would permute them whole).
_BLOCK_SAMPLING = 1 << 24
#: A protection's name: it is a trace value, a Markdown column and a JSON key.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


# -- the spec ----------------------------------------------------------------------------------

_KNOWN = {
    "campaign": {"name", "seed", "chunk", "max_items"},
    "network": {"model", "calib", "permutation"},
    "data": {"source", "images"},
    "faults": {"model", "registers", "modes", "layers", "targets", "mode", "bits", "profile",
               "chips"},
    "sample": {"method", "margin", "confidence", "rates", "trials"},
    "verify": {"images"},
}
#: A protection entry's own keys (the units' keys come from the registry,
#: :func:`ftaccel.units.protection_keys`), and the kinds each applies to.
_ENTRY_KEYS = {"name": None, "kind": None, "layers": ("afd", "median"),
               "nvf_threshold": ("lcu", "tmr"), "nvf_images": ("lcu", "tmr"),
               "protected": ("lcu", "tmr"), "permutation": ("has",)}


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
        raise _err(f"{path}.{key}", f"must be {names}, not {shown(v)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise _err(f"{path}.{key}", f"must be a finite number, not {v!r}")
    return v


def _int_in(d: dict, key: str, path: str, lo: int, hi: int, default=None, required=False):
    """An integer ``lo … hi`` (or the default)."""
    v = _get(d, key, path, int, default, required)
    if v is not None and not lo <= v <= hi:
        top = "2**63 − 1" if hi == (1 << 63) - 1 else f"{hi:,}"
        raise _err(f"{path}.{key}", f"{shown(v)}: an integer from {lo:,} to {top}")
    return v


def _unique(values: list, key: str) -> None:
    """Refuse a repeated entry: a list names each thing once (a repeat would count twice)."""
    seen = []
    for v in values:
        if v in seen:
            raise _err(key, f"{shown(v)} given twice; name each entry once")
        seen.append(v)


def load_spec(path, *, permutation=None) -> dict:
    """Read and validate a campaign spec (TOML); :class:`CampaignError` names the key.

    ``permutation`` (``rtlgen campaign --permutation FILE``) replaces the spec's
    ``network.permutation``.
    """
    p = Path(path)
    try:
        raw = parse_toml(read_input(p, "spec"), f"spec {p}")
    except FileProblem as exc:
        raise CampaignError(str(exc)) from None
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
    if not isinstance(raw, dict):
        raise _err("(top)", "a TOML document of tables")
    c = raw.get("campaign", {})
    spec: dict = {"version": SPEC_VERSION}
    name = _get(c, "name", "campaign", str, "campaign")
    if not name or len(name) > 200 or not name.isprintable():
        raise _err("campaign.name", f"{shown(name)}: 1 … 200 printable characters")
    spec["campaign"] = {"name": name,
                        "seed": _int_in(c, "seed", "campaign", 0, (1 << 63) - 1, 1),
                        "chunk": _int_in(c, "chunk", "campaign", 1, 1_000_000, 16),
                        "max_items": _int_in(c, "max_items", "campaign", 1, MAX_ITEMS_LIMIT,
                                             MAX_ITEMS)}
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
                    "images": _int_in(d, "images", "data", 1, 10_000_000)}
    acc = raw.get("accelerator", {})
    if not isinstance(acc, dict):
        raise _err("accelerator", "must be a table of configuration fields")
    try:
        cfg = AcceleratorConfig.from_dict({k: v for k, v in acc.items()})
    except ConfigError as exc:
        key = exc.value if exc.field == "configuration key" else exc.field
        raise _err(f"accelerator.{key}", str(exc)) from None
    if (cfg.checksum != "none" or cfg.afd or cfg.median or cfg.lcu or cfg.fault_hooks
            or cfg.tmr != "none"):
        raise _err("accelerator", "give the plain accelerator here; checksums, AFD, median, "
                                  "the LCU and TMR are protections ([[protections]])")
    if cfg.flow != "none":
        raise _err("accelerator.flow", f"{cfg.flow!r}: the fast fault model runs dense "
                                       "arrays only (flow = \"none\")")
    spec["accelerator"] = cfg.to_dict()
    spec["protections"] = _protections(raw.get("protections", [{"kind": "none"}]), cfg, base)
    f = raw.get("faults", {})
    kind = _get(f, "model", "faults", str, "register")
    if kind not in FAULT_MODELS:
        raise _err("faults.model", f"{kind!r}: one of {', '.join(FAULT_MODELS)}")
    faults: dict = {"model": kind}
    if kind == "register":
        # the sites this configuration's PE has (the unit registry says, e.g. the shadow
        # register only in the double-buffered WS/IS PE)
        present = [str(s) for s in units.fault_sites(cfg)]
        faults["registers"] = _choices(f, "registers", present, present)
        faults["modes"] = _choices(f, "modes", MODES, list(MODES))
        layers = _get(f, "layers", "faults", list)
        if layers is not None:
            if not layers or not all(isinstance(x, str) or type(x) is int for x in layers):
                raise _err("faults.layers", "a non-empty list of product-layer names or "
                                            "indices")
            _unique(layers, "faults.layers")
        faults["layers"] = layers
    elif kind == "bit_errors":
        faults["targets"] = _choices(f, "targets", ("weights", "activations"), ["weights"])
    elif kind == "pe_profile":
        mode = _get(f, "mode", "faults", str, "bitflip")
        if mode not in PROFILE_MODES:
            raise _err("faults.mode", f"{mode!r}: one of {', '.join(PROFILE_MODES)}")
        faults["mode"] = mode
        bits = _get(f, "bits", "faults", list)
        if bits is not None and (len(bits) != 2 or not all(type(b) is int for b in bits)
                                 or not 0 <= bits[0] <= bits[1] < cfg.acc_bits):
            raise _err("faults.bits", f"[low, high] within 0 … {cfg.acc_bits - 1}")
        faults["bits"] = bits
        prof = _get(f, "profile", "faults", str)
        if prof is not None:
            where = Path(prof) if base is None or Path(prof).is_absolute() else base / prof
            faults["profile"] = _read_profile(where, cfg)
        chips = _get(f, "chips", "faults", str, "pinned" if prof is not None else "fresh")
        if chips not in ("fresh", "pinned", "both"):
            raise _err("faults.chips", f"{shown(chips)}: fresh (a profile drawn per trial), "
                                       "pinned (the profile of faults.profile) or both")
        if chips != "fresh" and prof is None:
            raise _err("faults.chips", f"{chips!r} needs faults.profile (the pinned chip: a "
                                       "profile.json of rtlgen schedule)")
        faults["chips"] = chips
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
        # the two-sided quantile needs 0.5 + confidence / 2 < 1 in floating point
        if not 0 < sample["confidence"] <= 0.999999:
            raise _err("sample.confidence", f"{sample['confidence']!r}: a probability "
                                            "above 0 and at most 0.999999")
    elif method == "sweep":
        pinned = faults.get("profile")
        # a pinned chip runs at its own FR_max unless rates are swept (its rates scaled)
        rates = _get(s, "rates", "sample", list, [pinned["fr_max"]] if pinned else None,
                     required=pinned is None)
        if not rates or not all(type(r) in (int, float) and 0 <= r <= 1 for r in rates):
            raise _err("sample.rates", "a non-empty list of rates between 0 and 1")
        sample["rates"] = [float(r) for r in rates]
        _unique(sample["rates"], "sample.rates")
        sample["trials"] = _int_in(s, "trials", "sample", 1, MAX_ITEMS_LIMIT, 10)
    for key in s:
        if key not in sample:
            raise _err(f"sample.{key}", f"does not apply to method {method!r}")
    spec["sample"] = sample
    if kind == "pe_bypass" and not cfg.bypass and not any(
            "bypass" in q["kind"].split("+") for q in spec["protections"]):
        raise _err("protections", "pe_bypass faults need the bypass hardware: add a "
                                  "protection of kind \"bypass\" (or accelerator.bypass)")
    spec["verify"] = {"images": _int_in(raw.get("verify", {}), "images", "verify", 1, 10_000,
                                        2)}
    return spec


_BUILTIN_NAMES = ("digits", "digits-test", "digits-train", "digits-mlp", "digits-cnn")


def _path(value, base):
    """Relative data/model paths are relative to the spec file (built-in names stay).

    Always the spec's folder, never the working folder: the file a spec names is the one
    used, and a missing one is reported with its full path.
    """
    if value is None or base is None or value in _BUILTIN_NAMES:
        return value
    parts = [v if not v or Path(v).is_absolute() else str((base / v).resolve())
             for v in value.split(",")]
    return ",".join(parts)


def _read_permutation(path: Path, what: str) -> dict:
    """The permutation file's layers (``rtlgen schedule``), structure checked; the file named.

    Read through the input door; a permutation must be a list of integers (a float is
    refused, not truncated); that it permutes each layer's neurons is checked on the model.
    """
    try:
        doc = read_json(path, what)
    except FileProblem as exc:
        raise CampaignError(str(exc)) from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers or not all(
            isinstance(e, dict) and "permutation" in e for e in layers):
        raise CampaignError(f"{what} {path}: not a permutation file (rtlgen schedule): no "
                            "'layers' list of {layer, permutation}")
    for e in layers:
        perm = e["permutation"]
        if not isinstance(perm, list) or not all(type(v) is int for v in perm):
            raise CampaignError(f"{what} {path}: layer {shown(e.get('layer'))}: the "
                                "permutation must be a list of integers")
    return {"file": str(path.resolve()), "what": what,
            "layers": [{"layer": e.get("layer"), "permutation": e["permutation"]}
                       for e in layers]}


def _read_profile(path: Path, cfg) -> dict:
    """``faults.profile``: the pinned chip's R×C per-PE rates and FR_max, read and checked.

    A ``profile.json`` of ``rtlgen schedule`` (``{"profile": rows, "fr_max": x}``), or the rows
    alone; without ``fr_max`` the chip's highest rate stands for it.  Kept in the spec, so the
    campaign's identity covers the profile itself.
    """
    from ftaccel.app.has import read_profile

    try:
        prof, fr_max = read_profile(path, cfg, "spec key faults.profile")
    except ValueError as exc:  # FileProblem included
        raise CampaignError(str(exc)) from None
    if fr_max is None:
        fr_max = float(prof.max())
    return {"file": str(path.resolve()), "fr_max": float(fr_max), "profile": prof.tolist()}


def _file_hash(*paths: Path, what: str) -> str:
    """SHA-256 (16 hex digits) over the files' contents, read through the input door."""
    h = hashlib.sha256()
    try:
        for p in paths:
            h.update(bytes.fromhex(hash_input(p, what)))
    except FileProblem as exc:
        raise CampaignError(str(exc)) from None
    return h.hexdigest()[:16]


def _critical_spec(p: dict, q: dict, path: str, kind: str, base) -> None:
    """``lcu`` / ``tmr`` keys: an NVF threshold, or a protected model written by ``protect``."""
    thr = _get(p, "nvf_threshold", path, (int, float))
    prot = _get(p, "protected", path, str)
    if (thr is None) == (prot is None):
        raise _err(f"{path}.nvf_threshold", "give nvf_threshold (percent, 0 … 100) or "
                                            "protected (a folder written by rtlgen protect)")
    if thr is not None:
        if not math.isfinite(thr) or not 0 <= thr <= 100:
            raise _err(f"{path}.nvf_threshold", f"{thr!r}: a percentage from 0 to 100")
        q["nvf_threshold"] = float(thr)
        q["nvf_images"] = _int_in(p, "nvf_images", path, 1, 1_000_000, 500)
        return
    if "nvf_images" in p:
        raise _err(f"{path}.nvf_images", "applies to nvf_threshold (the NVF analysis), not to "
                                         "a protected folder")
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
        doc = read_json(files[0], f"spec key {path}.protected")
    except FileProblem as exc:
        raise CampaignError(str(exc)) from None
    if not isinstance(doc, dict) or doc.get("format") != "ftaccel-protection":
        raise _err(f"{path}.protected", f"{files[0]}: not a protection file (rtlgen protect)")
    if doc.get("method") != kind:
        raise _err(f"{path}.protected", f"{folder} is protected by {doc.get('method')!r}, "
                                        f"not {kind!r}")
    q["protected"] = str(folder.resolve())
    q["protected_hash"] = _file_hash(*files, what=f"spec key {path}.protected")
    cfg_changes = doc.get("config") or {}
    if not isinstance(cfg_changes, dict):
        raise _err(f"{path}.protected", f"{files[0]}: 'config' must be an object of "
                                        "configuration fields")
    q["protected_config"] = dict(cfg_changes)


def _choices(d, key, allowed, default):
    """A non-empty list of ``allowed`` names, each given once (a repeat is refused)."""
    v = _get(d, key, "faults", list, default)
    bad = [x for x in v if not isinstance(x, str) or x not in allowed]
    if bad or not v:
        raise _err(f"faults.{key}", f"{shown(bad or v)}: a non-empty list of "
                                    f"{', '.join(allowed)}")
    _unique(v, f"faults.{key}")
    return list(v)


def _protections(items, cfg, base=None) -> list[dict]:
    """The normalised ``[[protections]]``: kinds, names, configuration changes, unit options.

    A kind is ``none``, a unit's (:func:`ftaccel.units.protection_kinds`), ``has`` (a neuron
    permutation) or several joined by ``+`` (``sanity+bypass``).  Each unit's keys are checked
    by the unit (:func:`ftaccel.units.protection_spec`), the error prefixed with the key.
    """
    if not isinstance(items, list) or not items:
        raise _err("protections", "a non-empty array of tables ([[protections]])")
    out, names = [], set()
    for i, p in enumerate(items):
        q = _protection(p, f"protections[{i}]", cfg, base)
        if q["name"] in names:
            raise _err(f"protections[{i}].name", f"{q['name']!r} used twice (give each "
                                                 "protection its own name)")
        names.add(q["name"])
        out.append(q)
    if not any(q["kind"] == "none" for q in out):  # outcomes are judged against the baseline
        out.insert(0, {"kind": "none", "name": "none", "config": {}, "units": {}})
    return out


def _kinds(p: dict, path: str) -> list[str]:
    """The entry's kinds: one, or several joined by ``+`` (each once; one placement at most)."""
    kind = _get(p, "kind", path, str, required=True)
    known = PROTECTION_KINDS
    kinds = kind.split("+")
    for k in kinds:
        if k not in known:
            raise _err(f"{path}.kind", f"{shown(kind)}: one of {', '.join(known)}, or several "
                                       "joined by + (e.g. \"sanity+bypass\")")
    if len(kinds) > 1:
        if "none" in kinds:
            raise _err(f"{path}.kind", f"{kind!r}: none is the unprotected baseline; it "
                                       "combines with nothing")
        _unique(kinds, f"{path}.kind")
        placed = [k for k in kinds if k in ("lcu", "tmr", "has")]
        if len(placed) > 1:
            raise _err(f"{path}.kind", f"{kind!r}: {' and '.join(placed)} each place the "
                                       "neurons their own way; combine at most one of them")
    return kinds


def _protection(p, path: str, cfg, base) -> dict:
    """One normalised protection entry (:func:`_protections`)."""
    if not isinstance(p, dict):
        raise _err(path, "must be a table")
    kinds = _kinds(p, path)
    unit_keys = {k: kind for kind in kinds if kind not in ("none", "has")
                 for k in units.protection_keys(kind)}
    owner = {k: kind for kind in units.protection_kinds() for k in units.protection_keys(kind)}
    for key in p:
        if key in _ENTRY_KEYS or key in unit_keys:
            continue
        if key in owner:
            raise _err(f"{path}.{key}", f"does not apply to kind {'+'.join(kinds)!r} (a key "
                                        f"of kind {owner[key]!r})")
        known = ", ".join(sorted({*_ENTRY_KEYS, *owner}))
        raise _err(f"{path}.{key}", f"unknown key; known: {known}")
    for key, applies in _ENTRY_KEYS.items():
        if key in p and applies is not None and not any(k in applies for k in kinds):
            raise _err(f"{path}.{key}", f"does not apply to kind {'+'.join(kinds)!r}")
    q: dict = {"kind": "+".join(kinds)}
    changes: dict = {}
    keywords: dict = {}
    for kind in kinds:
        if kind in ("none", "has"):
            continue
        given = {k: p[k] for k in units.protection_keys(kind) if k in p}
        for key, value in given.items():  # one key at a time first: the error names it
            try:
                units.protection_spec(kind, {key: value}, cfg)
            except ConfigError as exc:
                raise _err(f"{path}.{key}", str(exc)) from None
        try:
            c, kw = units.protection_spec(kind, given, cfg)
        except ConfigError as exc:
            raise _err(path, str(exc)) from None
        q.update(given)
        changes.update(c)
        keywords.update(kw)
    if "bypass" in kinds:
        q["threshold"] = float(p.get("threshold", 0.5))
    if any(k in kinds for k in ("lcu", "tmr")):
        placed = "lcu" if "lcu" in kinds else "tmr"
        if "protected" in p and any(k in p for k in units.protection_keys(placed)):
            key = next(k for k in units.protection_keys(placed) if k in p)
            raise _err(f"{path}.{key}", "comes from the protected model's protection.json")
        _critical_spec(p, q, path, placed, base)
        if q.get("protected_config") is not None:  # the protected folder's own changes
            changes = {k: v for k, v in changes.items() if k not in ("lcu", "lcu_mask", "tmr")}
            changes.update(q["protected_config"])
    if "has" in kinds:
        perm = _get(p, "permutation", path, str, required=True)
        where = Path(perm) if base is None or Path(perm).is_absolute() else base / perm
        q["permutation"] = _read_permutation(where, f"spec key {path}.permutation")
    if "afd" in kinds or "median" in kinds:
        layers = _get(p, "layers", path, list)
        if layers is not None:
            if not layers or not all(isinstance(x, str) for x in layers):
                raise _err(f"{path}.layers", "a non-empty list of product-layer names")
            _unique(layers, f"{path}.layers")
        q["layers"] = layers
    q["config"], q["units"] = changes, keywords
    q["name"] = _get(p, "name", path, str, _default_name(q, kinds, p))
    if not _NAME.fullmatch(q["name"]):
        raise _err(f"{path}.name", f"{shown(q['name'])}: 1 … 64 letters, digits and "
                                   "._+- (it names a trace value and a report column)")
    # "none" is the unprotected baseline every outcome is judged against: only the
    # protection of kind none may carry it, and that one must
    if (q["name"] == "none") != (q["kind"] == "none"):
        raise _err(f"{path}.name", f"{q['name']!r}: the unprotected baseline (kind "
                                   "\"none\") is named \"none\", and no other "
                                   "protection may be")
    try:
        cfg.replace(**changes)
    except ConfigError as exc:
        raise _err(path, str(exc)) from None
    return q


def _default_name(q: dict, kinds: list[str], given: dict) -> str:
    """``kind`` and the values ``given`` to its unit (``afd-2-clip-8``), kinds joined by ``+``."""
    parts = []
    for kind in kinds:
        if kind in ("lcu", "tmr"):
            parts.append(f"{kind}-nvf{q['nvf_threshold']:g}" if "nvf_threshold" in q
                         else f"{kind}-protected")
            continue
        keys = units.protection_keys(kind) if kind not in ("none", "has") else ()
        values = [given[k] for k in keys if k in given]
        parts.append("-".join([kind, *(f"{v:g}" if isinstance(v, float) else str(v)
                                        for v in values)]))
    name = "+".join(parts)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)[:64]


def to_protection(q: dict, cfg=None) -> Protection:
    """A spec protection as a :class:`app.netcampaign.Protection`.

    ``lcu`` / ``tmr`` / ``has``: the configuration and options only; :func:`build_context`
    adds the protected model or the permutation.
    """
    return Protection(q["name"], q["kind"], dict(q.get("config") or {}),
                      dict(q.get("units") or {}), q.get("threshold", 0.5),
                      layers=_tuple(q.get("layers")))


def _tuple(x):
    return None if x is None else tuple(x)


# -- the context and the work ------------------------------------------------------------------

_CONTEXTS: dict = {}


def _input_hashes(spec: dict) -> dict:
    """``{path: {"key", "sha256"}}`` of every file the spec names (through the input door)."""
    return hash_inputs(spec)


def build_context(spec: dict, images: int | None = None, *,
                  inputs: dict | None = None) -> Context:
    """The network, data and fault-free runs of ``spec`` (cached per process).

    Every file the spec names is hashed before and after it is read: a file that changes
    while it is read, or (``inputs``: the hashes the campaign started with, given to the
    workers) that is not the campaign's, raises :class:`CampaignError` naming it.  The
    context carries the hashes it was built from (``ctx.input_hashes``).  Labels must be
    classes of the model (as ``infer`` checks).
    """
    from ftaccel.app.datasets import check_labels, digits, load_data
    from ftaccel.app.network import open_model

    if inputs is not None:  # a worker: the context built for these inputs can be reused
        key = (spec_hash(spec), images, json.dumps(inputs, sort_keys=True))
        if key in _CONTEXTS:
            return _CONTEXTS[key]
    t_build = time.perf_counter()
    before = _input_hashes(spec)
    if inputs is not None:
        _same_inputs(inputs, before, "since the campaign started")
    key = (spec_hash(spec), images, json.dumps(before, sort_keys=True))
    if key in _CONTEXTS:
        return _CONTEXTS[key]
    cfg = AcceleratorConfig.from_dict(spec["accelerator"])
    src = spec["data"]["source"]
    ds = digits("test") if src == "digits" else load_data(src)
    ds = ds.head(images or spec["data"]["images"])
    cal = load_data(spec["network"]["calib"]).images if spec["network"]["calib"] else None
    if cal is None and spec["network"]["model"].endswith(".onnx"):
        cal = ds.images
    net = open_model(spec["network"]["model"], a_width=cfg.a_width, w_width=cfg.w_width,
                      calibration=cal)
    check_labels(ds, net.model.classes, net.name, "spec key data.source")
    x = net.check(cfg, ds.images)
    prots = [to_protection(q, cfg) for q in spec["protections"]]
    nvf_cache: dict = {}
    for k, q in enumerate(spec["protections"]):
        if prots[k].has("lcu") or prots[k].has("tmr"):
            prots[k] = _critical_protection(q, k, prots[k], net, cfg, cal, nvf_cache)
            # LCU and TMR voter share the output buffer: make it hold every layer's result
            prots[k] = _buffer_sized(prots[k], len(ds.images), cfg)
        elif prots[k].has("has"):
            import dataclasses

            opts = _permutation(q["permutation"], net.model)
            prots[k] = dataclasses.replace(prots[k], options=opts,
                                           info={"permutation": q["permutation"]["file"]})
    perms = None
    if spec["network"].get("permutation"):
        opts = _permutation(spec["network"]["permutation"], net.model)
        perms = {i: o.permutation for i, o in opts.items()}
    _same_inputs(before, _input_hashes(spec), "while it was being read")
    pin = spec["faults"].get("profile")
    ctx = Context(net.model, x, ds.labels, cfg, prots, permutations=perms,
                  profile=None if pin is None else (pin["profile"], pin["fr_max"]))
    ctx.input_hashes = before
    ctx.build_seconds = time.perf_counter() - t_build
    _CONTEXTS.clear()  # one campaign per worker process at a time
    _CONTEXTS[key] = ctx
    if inputs is not None:
        _CONTEXTS[(spec_hash(spec), images, json.dumps(inputs, sort_keys=True))] = ctx
    return ctx


def _permutation(pm: dict, model) -> dict:
    """``{layer: LayerOptions(permutation=…)}`` of a permutation read into the spec (checked)."""
    from ftaccel.app.critical import CriticalError, permutation_layers

    try:
        return permutation_layers({"layers": pm["layers"]}, model, f"{pm['what']} {pm['file']}")
    except CriticalError as exc:
        raise CampaignError(str(exc)) from None


def _same_inputs(want: dict, got: dict, when: str) -> None:
    for path, f in want.items():
        now = got.get(path)
        if now is None or now["sha256"] != f["sha256"]:
            raise CampaignError(f"spec key {f['key']}: {path} changed {when}; its results "
                                "would not be this campaign's (restore it, or run the new "
                                "file in a new folder)")


def _critical_protection(q: dict, k: int, prot: Protection, net, cfg, cal, cache: dict):
    """``prot`` with its protected model and options (``lcu`` / ``tmr``).

    From an NVF threshold (the NVF analysed on ``nvf_images`` training images: the digits
    training split for the built-in models, else the calibration images) or from a folder
    written by ``rtlgen protect`` (its placement checked on this accelerator).
    """
    import dataclasses

    from ftaccel.app.critical import CriticalError, _product_index, protection_options
    from ftaccel.app.critical import read_json as read_json_object
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
            pr = protect(net.model, crit, "lcu" if prot.has("lcu") else "tmr", cfg,
                         voter=q.get("voter", "word"), lcu_mode=q.get("lcu_mode", "halve"))
        except PlacementError as exc:
            raise _err(f"{path}.nvf_threshold", str(exc)) from None
        info = {"nvf_threshold": q["nvf_threshold"], "nvf_images": n_img,
                "protected_neurons": pr.protected_neurons, "neurons": pr.neurons,
                "original_neurons": pr.original_neurons,
                "critical": {net.model.layers[i].name: list(map(int, lp.critical))
                             for i, lp in pr.layers.items()}}
        return dataclasses.replace(prot, config={**prot.config, **pr.config}, model=pr.model,
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
    try:
        doc = read_json_object(folder / "protection.json", f"spec key {path}.protected")
        groups = {}
        for e in doc.get("layers", []):
            g = e.get("groups")
            if not isinstance(g, list) or not all(
                    isinstance(x, list) and all(type(v) is int for v in x) for x in g):
                raise CriticalError(f"spec key {path}.protected {folder}: layer "
                                    f"{shown(e.get('layer'))}: 'groups' must be lists of "
                                    "column indices")
            groups[_product_index(model, e.get("layer"), f"spec key {path}.protected")] = g
    except CriticalError as exc:
        raise CampaignError(str(exc)) from None
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

    depth = buffer_depth(prot.model, n_images, cfg)
    if depth <= cfg.lcu_depth:
        return prot
    return dataclasses.replace(prot, config={**prot.config, "lcu_depth": depth})


def buffer_depth(model, n_images: int, cfg) -> int:
    """Output-buffer rows (a power of two, at least 64) for ``n_images`` of ``model``'s layers.

    One row per result vector (:meth:`AcceleratorConfig.result_vectors`) of the largest
    product; the LCU controller and the TMR voter correct a layer's result there
    (Ahmadilivani 2025 §4.3.1).
    """
    from ftaccel.app.netcampaign import layer_dims

    rows = max(cfg.result_vectors(M, N) for (_i, M, _K, N) in layer_dims(model, n_images))
    return max(64, 1 << (rows - 1).bit_length())


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
            raise _err("faults.layers", f"{shown(name)} is not a product layer of the model "
                                        f"({known})")
        if idx[0] in out:  # a name and an index of the same layer: its faults twice
            raise _err("faults.layers", f"{shown(name)} names layer "
                                        f"{ctx.model.layers[idx[0]].name} given before")
        out += idx[:1]
    return out


def population(spec: dict, ctx: Context) -> RegisterPopulation:
    """The register-fault population of ``spec`` on the context's model and array."""
    f = spec["faults"]
    return RegisterPopulation(ctx.base, ctx.dims, f["registers"], f["modes"], _layers(spec, ctx))


@dataclass
class Plan:
    """The campaign's work.

    ``items``: register faults: population indices (a ``range`` when exhaustive, a sorted
    array of distinct indices when sampled); sweeps: ``(rate, trial)`` pairs.
    """

    items: object
    chunk: int
    population: int | None
    sample: dict

    @property
    def chunks(self) -> int:
        """The number of chunks."""
        return -(-len(self.items) // self.chunk)

    def chunk_items(self, c: int) -> list:
        """``(fault id, item)`` of chunk ``c``, as plain Python values."""
        lo = c * self.chunk
        return [(lo + i, item if isinstance(item, tuple) else int(item))
                for i, item in enumerate(self.items[lo:lo + self.chunk])]


def _over_cap(spec: dict, key: str, n: int, what: str) -> None:
    cap = spec["campaign"].get("max_items", MAX_ITEMS)
    if n > cap:
        raise _err(key, f"the plan has {n:,} {what}, above campaign.max_items = {cap:,} (raise "
                        f"it, up to {MAX_ITEMS_LIMIT:,}, or plan less work)")


def make_plan(spec: dict, ctx: Context) -> Plan:
    """The work items of ``spec``, fixed by the spec alone, within ``campaign.max_items``.

    A statistical sample (Ahmadilivani 2025 Eq. 4.7) is drawn without replacement with the spec's
    seed: every index at most once.
    """
    s = spec["sample"]
    chunk = spec["campaign"]["chunk"]
    if spec["faults"]["model"] != "register":
        both = spec["faults"].get("chips") == "both"
        _over_cap(spec, "sample.trials", len(s["rates"]) * s["trials"] * (2 if both else 1),
                  "trials")
        if both:  # the pinned chip and fresh chips, the same trials each
            items = [(float(r), t, c) for r in s["rates"] for c in ("pinned", "fresh")
                     for t in range(s["trials"])]
        else:
            items = [(float(r), t) for r in s["rates"] for t in range(s["trials"])]
        return Plan(items, chunk, None, {"method": "sweep", "rates": s["rates"],
                                         "trials": s["trials"], "items": len(items),
                                         **({"chips": spec["faults"]["chips"]}
                                            if "chips" in spec["faults"] else {})})
    pop = population(spec, ctx)
    if len(pop) == 0:
        raise _err("faults", "the fault population is empty")
    if s["method"] == "exhaustive":
        _over_cap(spec, "sample.method", len(pop), "faults (exhaustive)")
        return Plan(range(len(pop)), chunk, len(pop),
                    {"method": "exhaustive", "size": len(pop)})
    n = statistical_size(len(pop), s["margin"], s["confidence"])
    _over_cap(spec, "sample.margin", n, f"faults (sampled from {len(pop):,})")
    rng = np.random.default_rng(np.random.SeedSequence([spec["campaign"]["seed"], 0x5A3B1E]))
    idx = sample_indices(rng, len(pop), n)
    return Plan(idx, chunk, len(pop), {"method": "statistical", "size": n,
                                       "margin": s["margin"], "confidence": s["confidence"],
                                       "population": len(pop)})


def sample_indices(rng: np.random.Generator, population: int, n: int) -> np.ndarray:
    """``n`` distinct indices of ``range(population)``, uniformly, sorted.

    numpy's ``choice(replace=False)`` (Floyd's algorithm for small samples; a shuffle of the
    whole population when ``n > population / 50``).  Above 2**24 that shuffle would hold the
    population in memory, so the range is cut in blocks: the count drawn from each block is
    multivariate-hypergeometric (the counts of a uniform ``n``-subset), then each block's
    indices are drawn without replacement: the same distribution in O(n) memory.
    """
    if population <= _BLOCK_SAMPLING or n <= population // 50:
        return np.sort(rng.choice(population, size=n, replace=False))
    B = _BLOCK_SAMPLING
    sizes = np.full(population // B, B, dtype=np.int64)
    if population % B:
        sizes = np.append(sizes, population % B)
    counts = rng.multivariate_hypergeometric(sizes, n, method="marginals")
    parts = [b * B + np.sort(rng.choice(int(size), size=int(k), replace=False))
             for b, (size, k) in enumerate(zip(sizes, counts, strict=True)) if k]
    return np.concatenate(parts)


def _taking_part(spec: dict, ctx: Context) -> list[str]:
    """The protections every item has a trace row for (pe_bypass: those with bypass)."""
    if spec["faults"]["model"] == "pe_bypass":
        return [p.name for p in ctx.protections if ctx.clean[p.name].cfg.bypass]
    return [p.name for p in ctx.protections]


def run_chunk(spec: dict, items: list, inputs: dict | None = None) -> list[dict]:
    """Evaluate one chunk's items (``(fault id, item)``) on every protection: trace rows.

    Runs in a worker; depends only on the spec, the input files (``inputs``: their hashes,
    checked) and the items (every item seeded alone).
    """
    ctx = build_context(spec, inputs=inputs)
    f = spec["faults"]
    rows = []
    if f["model"] == "register":
        pop = population(spec, ctx)
        for fid, index in items:
            for row in evaluate_register_fault(ctx, pop.describe(index), fid):
                row["population_index"] = index
                rows.append(row)
    else:
        for fid, item in items:
            rate, trial = item[:2]
            chip = item[2] if len(item) > 2 else f.get("chips", "fresh")
            for row in evaluate_trial(ctx, f["model"], rate, trial, spec["campaign"]["seed"],
                                      fid, targets=tuple(f.get("targets", ("weights",))),
                                      profile_mode=f.get("mode", "bitflip"),
                                      bits=f.get("bits"), chip=chip):
                rows.append(row)
    return [{k: row.get(k, "") for k in TRACE_COLUMNS} for row in rows]


# -- running -----------------------------------------------------------------------------------

def _check_options(workers, verify_rtl, scheduler, sim=None) -> None:
    """The run options, checked like the spec (the CLI and the API say the same)."""
    if workers is not None and (type(workers) is not int or workers < 0):
        raise CampaignError(f"--workers {shown(workers)}: must be 0 (this process) or more")
    if type(verify_rtl) is not int or verify_rtl < 0:
        raise CampaignError(f"--verify-rtl {shown(verify_rtl)}: must be 0 or more")
    if verify_rtl:
        _check_sim(sim)
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise CampaignError("--scheduler: empty address; give HOST:PORT or tcp://HOST:PORT "
                            "of a running Dask scheduler")


def _check_sim(sim) -> None:
    """The RTL check's simulator (``--sim``, else ``$SIM``) before any work: named, installed.

    An unknown name is bad input (:class:`CampaignError`); a named simulator that is not
    installed raises :class:`tb.runner.SimulatorNotFound` (a missing tool) now, not after the
    campaign.
    """
    from ftaccel.tb.runner import SIMULATORS, ensure_simulator  # (heavy: cocotb) with a check

    for given, where in ((sim, "--sim"), (os.environ.get("SIM"), "$SIM")):
        if given is None or (where == "$SIM" and not given.strip()):
            continue
        name = given.strip().lower() if isinstance(given, str) else given
        if name not in SIMULATORS:
            raise CampaignError(f"{where} {shown(given)}: choose one of {', '.join(SIMULATORS)}")
        ensure_simulator(name)
        return


_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")


def _connect(scheduler: str):
    """A Dask client of the scheduler at ``scheduler``, or CampaignError saying why not.

    The address is parsed and, for a network address, the port reached first (a plain TCP
    connection, 10 s), so that a wrong address fails at once and nothing is written.
    """
    import socket

    from distributed import Client
    from distributed.comm.addressing import normalize_address, parse_address, parse_host_port

    where = f"--scheduler {shown(scheduler)}"
    try:
        scheme, loc = parse_address(normalize_address(scheduler.strip()))
        if scheme not in _SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(_SCHEMES)}")
        host, port = parse_host_port(loc) if scheme != "inproc" else (None, None)
    except (ValueError, TypeError) as exc:
        raise CampaignError(f"{where}: not a Dask scheduler address ({one_line(exc)})") \
            from None
    if host is not None:
        if not 0 < int(port) < 65536:
            raise CampaignError(f"{where}: port {port} is not 1 … 65535")
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as exc:
            raise CampaignError(f"{where}: cannot connect to {host}:{port} "
                                f"({exc.strerror or one_line(exc) or type(exc).__name__})") \
                from None
    try:
        return Client(scheduler.strip(), timeout=30)
    except (OSError, TimeoutError, ValueError, RuntimeError) as exc:
        raise CampaignError(f"{where}: not a usable Dask scheduler ({one_line(exc)})") \
            from None


def resolve_spec(spec_or_path, *, permutation=None) -> dict:
    """The normalised spec of a TOML file, a plain dict, or a spec :func:`parse_spec` returned.

    A plain dict is taken exactly as the TOML file would give it (its relative paths are
    relative to the working folder); anything else is refused with one
    :class:`CampaignError`, never a ``KeyError``.
    """
    if isinstance(spec_or_path, dict):
        spec = spec_or_path
        if spec.get("version") != SPEC_VERSION or not _normalised(spec):
            # a raw TOML-shaped dict: validate it (a "version" key is not a TOML section)
            spec = parse_spec(spec, base=Path.cwd())
        if permutation is not None:
            spec = {**spec, "network": {**spec["network"], "permutation": _read_permutation(
                Path(permutation), "--permutation")}}
        return spec
    if not isinstance(spec_or_path, str | os.PathLike):
        raise CampaignError(f"spec {shown(spec_or_path)}: give a TOML file's path or a dict "
                            "of its tables")
    return load_spec(spec_or_path, permutation=permutation)


def _normalised(spec: dict) -> bool:
    """Whether ``spec`` has the shape :func:`parse_spec` returns (every section, typed)."""
    try:
        return (all(isinstance(spec[k], dict) for k in (*_KNOWN, "accelerator"))
                and isinstance(spec["protections"], list)
                and all(isinstance(q, dict) and {"kind", "name", "config", "units"} <= set(q)
                        for q in spec["protections"])
                and spec_hash(spec) is not None)
    except (KeyError, TypeError, ValueError):
        return False


def run_campaign(spec_or_path, out_dir, *, workers: int | None = None,
                 scheduler: str | None = None, verify_rtl: int = 0, progress: bool | None = None,
                 sim: str | None = None, permutation=None, command: str | None = None,
                 log=print) -> dict:
    """Run (or resume) a campaign into ``out_dir``; return the ``campaign.json`` dict.

    ``spec_or_path``: a TOML spec's path, or a plain dict exactly as the TOML file gives it
    (``{"network": {"model": "digits-mlp"}, "faults": {...}, ...}``; relative paths from the
    working folder).  ``workers``: Dask worker processes on this machine (default: this
    process when the first chunk, timed, says the rest is small, else every core; 0 = run in
    this process); ``scheduler``: address of an existing Dask scheduler (overrides
    ``workers``); ``permutation``: a permutation file (``rtlgen schedule``) replacing the
    spec's; ``command``: the command line recorded in the provenance.

    Everything is checked before the folder is touched: the spec, the files it names (their
    contents hashed into the campaign's identity), the data's labels against the model, the
    plan against ``campaign.max_items`` (the estimate is printed), the folder (a second
    writer, or another campaign's folder, is refused) and the scheduler.  The folder is then
    claimed (:class:`app.campaign_store.Campaign`); every chunk on disk is verified and
    those that do not verify are computed again.  A run that fails or is interrupted before
    its first chunk removes what it created.
    """
    _check_options(workers, verify_rtl, scheduler, sim)
    spec = resolve_spec(spec_or_path, permutation=permutation)
    t_ctx = time.perf_counter()
    ctx = build_context(spec)  # validates model, data and fit before anything is written
    _layers(spec, ctx)
    _check_protection_layers(spec, ctx)
    plan = make_plan(spec, ctx)
    prots = _taking_part(spec, ctx)
    ident = identity(spec, files=ctx.input_hashes)
    t_ctx = time.perf_counter() - t_ctx
    camp = Campaign(spec, out_dir, ident, log=log)
    camp.check()
    # the scheduler before the plan is printed: a bad address is the only line on stderr
    client = _connect(scheduler) if scheduler is not None else None
    unit = "trials" if spec["faults"]["model"] != "register" else "faults"
    log(f"plan: {len(plan.items):,} {unit} × {len(prots)} protections × {len(ctx.x):,} "
        f"images = {len(plan.items) * len(prots) * len(ctx.x):,} fault-inferences in "
        f"{plan.chunks:,} chunks of {plan.chunk}", file=sys.stderr)
    try:
        camp.claim()
        try:
            report, rows = _run_claimed(camp, spec, ctx, plan, prots, workers, client,
                                        progress, log)
            report["timing"]["context_seconds"] = round(t_ctx, 3)
            if verify_rtl:
                report["verify_rtl"] = verify_on_rtl(spec, plan, verify_rtl, sim=sim, log=log,
                                                     context=ctx)
            report["provenance"] = provenance(
                spec, ctx, command=command,
                sim=report["verify_rtl"].get("simulator") if verify_rtl else None)
            write_reports(camp.dir, report, rows)
        except BaseException:
            camp.abandon()  # removes the folder only if this run made it and saved nothing
            raise
        camp.release()
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
    return report


def _run_claimed(camp: Campaign, spec, ctx, plan: Plan, prots, workers, client, progress,
                 log) -> tuple[dict, list[dict]]:
    """The chunks still to do (verified store), then every row: (report, rows)."""
    done = camp.done(plan, prots)
    todo = [c for c in range(plan.chunks) if c not in done]
    resumed = len(done)
    if resumed:
        log(f"resuming: {resumed} of {plan.chunks} chunks already done", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=len(plan.items), initial=sum(len(plan.chunk_items(c)) for c in done),
               unit="fault", desc=spec["campaign"]["name"], file=sys.stderr, smoothing=0.1,
               disable=(None if progress is None else not progress))
    t0 = time.perf_counter()
    n_workers = 0
    inputs = camp.ident.files
    runner = _Runner("in-process", "--workers 0") if workers == 0 and client is None else \
        _Runner("dask", "--scheduler" if client is not None else f"--workers {workers}") \
        if client is not None or workers else _Runner("in-process", "nothing to compute")
    try:
        if todo and client is None and workers is None:
            # the default: time the first chunk here, then decide (small campaigns never pay
            # for a cluster; long ones say how long they will take)
            runner = _first_chunk(camp, spec, plan, todo, bar, inputs, log)
            todo_rest = todo[1:]
        else:
            todo_rest = todo
        if runner.kind == "in-process":
            for c in todo_rest:
                items = plan.chunk_items(c)
                camp.save_chunk(c, items, run_chunk(spec, items, inputs))
                bar.update(len(items))
        else:
            n_workers = _run_dask(camp, plan, todo_rest, bar, workers, client, inputs, ctx)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    rows, bad = camp.rows(plan, prots)
    if bad:  # changed on disk while the campaign ran: compute them again here
        for c in bad:
            items = plan.chunk_items(c)
            camp.save_chunk(c, items, run_chunk(spec, items, inputs))
        rows, bad = camp.rows(plan, prots)
        if bad:
            raise CampaignError(f"-o {camp.dir}: chunk {bad[0]} ({camp.chunk_path(bad[0])}) "
                                "does not verify even after computing it again; is another "
                                "program writing the folder?")
    classes = population(spec, ctx).class_sizes() if spec["faults"]["model"] == "register" \
        else None
    report = summarise(spec, ctx, plan, rows, classes=classes)
    report["campaign_id"] = camp.hash
    report["inputs"] = camp.ident.files
    report["chunks_rejected"] = camp.rejected
    ran = {fid for c in todo for fid, _ in plan.chunk_items(c)}
    inferences = sum(r["fault_id"] in ran for r in rows) * len(ctx.x)
    report["timing"] = {"seconds": round(seconds, 3), "chunks_run": len(todo),
                        "chunks_resumed": resumed, "workers": n_workers,
                        "runner": runner.kind, "runner_reason": runner.reason,
                        "items_per_second": round(len(ran) / max(seconds, 1e-9), 3),
                        "fault_inferences_per_minute": round(inferences / max(seconds, 1e-9)
                                                             * 60)}
    return report, rows


#: Seconds a LocalCluster of this machine's cores takes to start and receive the context
#: (measured on 2 cores under load: 3–6 s); the default runner starts one only for work
#: that it shortens by more than this.
CLUSTER_START_SECONDS = 6.0
#: Estimated campaigns longer than this print their estimate and measured speed.
LONG_CAMPAIGN_SECONDS = 3600.0
#: glibc settings of the Dask worker processes.  Dask's default (``MALLOC_TRIM_THRESHOLD_`` =
#: 64 KiB) makes glibc return every large array to the OS when it is freed and map it again in
#: the next task: on digits-cnn 9× the page faults of one process and 2.4× its CPU time.  Keep
#: freed memory up to 1 GiB, and serve arrays up to 32 MiB (glibc's upper limit for the
#: threshold) from the heap rather than fresh mappings.
WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}
#: Dask settings of the LocalCluster workers: no statistical profiler, and the event loop's
#: periodic checks (its tick, the memory and system monitors) every 1–2 s instead of every
#: 20–500 ms.  Each wakes a thread that takes the GIL from the fault model: the same
#: digits-cnn chunk took 3–4 % longer as a task with the profiler on, and about 3 % longer
#: again with the default intervals, than with these settings (where it takes what it takes
#: in one process).  A blocked loop is still reported (the tick's limit is 3 s) and the
#: worker's memory limit still enforced, once a second.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False,
                 "distributed.admin.tick.interval": "1s",
                 "distributed.worker.memory.monitor-interval": "1s",
                 "distributed.admin.system-monitor.interval": "2s"}


@dataclass
class _Runner:
    """Which runner ran the chunks and why (``campaign.json`` timing, ``campaign.md``)."""

    kind: str
    reason: str


def _first_chunk(camp: Campaign, spec, plan: Plan, todo: list[int], bar, inputs,
                 log) -> _Runner:
    """The default runner: chunk ``todo[0]`` here, timed; then in-process or Dask for the rest.

    The rest runs in this process when its estimated time is shorter than what starting a
    cluster (:func:`cluster_startup_seconds`) saves, or there is one core; otherwise on a
    LocalCluster of every core.  A campaign estimated longer than
    :data:`LONG_CAMPAIGN_SECONDS` prints the estimate and the speed measured.
    """
    first = todo[0]
    items = plan.chunk_items(first)
    t0 = time.perf_counter()
    ctx = build_context(spec, inputs=inputs)
    camp.save_chunk(first, items, run_chunk(spec, items, inputs))
    dt = max(time.perf_counter() - t0, 1e-9)
    bar.update(len(items))
    rest_items = sum(len(plan.chunk_items(c)) for c in todo[1:])
    per_item = dt / max(len(items), 1)
    estimate = per_item * rest_items
    cores = os.cpu_count() or 1
    rate = len(items) * len(ctx.x) * len(_taking_part(spec, ctx)) / dt * 60
    startup = cluster_startup_seconds(ctx)
    if not todo[1:]:
        runner, total = _Runner("in-process", "one chunk"), estimate
    elif cores < 2:
        runner, total = _Runner("in-process", "one core"), estimate
    elif estimate < startup + estimate / cores:
        runner, total = _Runner("in-process", f"estimated {estimate:.1f} s of work, less than "
                                              f"a cluster's start-up ({startup:.1f} s) saves"), \
            estimate
    else:
        runner, total = _Runner("dask", f"estimated {estimate:.1f} s of work on {cores} cores "
                                        f"(cluster start-up {startup:.1f} s)"), \
            startup + estimate / cores
    if total > LONG_CAMPAIGN_SECONDS:
        log(f"estimate: {_duration(total)} more ({runner.kind}, {cores} cores); measured in "
            f"the first chunk: {60 / per_item:,.0f} faults/minute, {rate:,.0f} "
            f"fault-inferences/minute", file=sys.stderr)
    return runner


def cluster_startup_seconds(ctx: Context) -> float:
    """What starting a LocalCluster costs before its first result: :data:`CLUSTER_START_SECONDS`.

    The workers receive ``ctx`` rather than building it (:func:`_run_dask`).
    """
    return CLUSTER_START_SECONDS


def _duration(seconds: float) -> str:
    h, m = divmod(int(seconds) // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {int(seconds) % 60:02d} s"


def _install_context(key, ctx) -> None:
    """On a worker: use ``ctx`` (the client's, already checked) for the chunks of ``key``."""
    _CONTEXTS.clear()  # one campaign per worker process at a time
    _CONTEXTS[key] = ctx


def _shippable(ctx: Context) -> Context:
    """``ctx`` without this process's caches (they are rebuilt where needed)."""
    import copy

    out = copy.copy(ctx)
    out.__dict__.pop("_clean_acc", None)
    return out


def _run_dask(camp: Campaign, plan: Plan, todo: list[int], bar, workers, client,
              inputs, ctx: Context | None = None) -> int:
    """The chunks ``todo`` on Dask (``client``, or a LocalCluster of ``workers``).

    A LocalCluster's workers get :data:`WORKER_MALLOC` (set before they start) and
    :data:`WORKER_CONFIG`; every worker gets ``ctx`` (this process's context) rather than
    building its own.
    """
    import dask
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if client is None:
        n = workers or os.cpu_count() or 1
        environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}),
                   **WORKER_MALLOC}
        # the workers' own logs (a heartbeat lost while the cluster stops on an interrupt,
        # say) are many lines each; a worker's failure reaches the client as an exception
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                              **WORKER_CONFIG}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.CRITICAL)
        client = Client(cluster)
    try:
        if ctx is not None:
            # every worker gets this process's context (model, data, fault-free runs),
            # checked against the campaign's input hashes here: building it again in each
            # worker (an ONNX model's quantisation, every protection's fault-free run) took
            # 50–70 s per worker on ResNet-8; a worker that joins later builds its own
            key = (spec_hash(camp.spec), None, json.dumps(inputs, sort_keys=True))
            client.run(_install_context, key, _shippable(ctx))
        spec_f = client.scatter(camp.spec, broadcast=True)
        futures = {client.submit(run_chunk, spec_f, plan.chunk_items(c), inputs, pure=False,
                                 key=f"campaign-{camp.hash}-{c}"): c for c in todo}
        for fut in as_completed(futures):
            c = futures[fut]
            items = plan.chunk_items(c)
            camp.save_chunk(c, items, fut.result())
            bar.update(len(items))
        return len(client.scheduler_info().get("workers", {}))
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                client.close()
            cluster.close()


# -- provenance --------------------------------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def provenance(spec: dict, ctx: Context, *, command: str | None = None,
               sim: str | None = None) -> dict:
    """Where a campaign's results come from, for ``campaign.json`` and ``compare.json``.

    The model (name, the spec's file and its sha256, and the sha256 of the quantised model
    actually run), the data (source, file hashes, the sha256 of the quantised images and
    labels used), every protection's configuration, permutation or protected folder, the
    pinned profile, the engine (the fast fault model; the simulator of an RTL check), the
    tool's version, the seed and the command line.
    """
    import ftaccel

    files = getattr(ctx, "input_hashes", {}) or {}

    def hashed(key: str) -> dict:
        return {p: f["sha256"] for p, f in files.items() if f["key"].startswith(key)}

    net = spec["network"]
    return {
        "model": {"name": ctx.model.name, "source": net["model"],
                  "files": hashed("network.model"), "sha256": _sha(ctx.model.to_bytes()),
                  "calibration": net.get("calib")},
        "data": {"source": spec["data"]["source"], "images": len(ctx.x),
                 "files": hashed("data.source"),
                 "sha256": _sha(np.ascontiguousarray(ctx.x).tobytes()
                                + np.ascontiguousarray(ctx.labels).tobytes())},
        "accelerator": ctx.base.to_dict(),
        "protections": {p.name: {"kind": p.kind, "config": ctx.clean[p.name].cfg.name(),
                                 **({"info": p.info} if p.info else {})}
                        for p in ctx.protections},
        "permutation": (net.get("permutation") or {}).get("file"),
        "profile": (spec["faults"].get("profile") or {}).get("file"),
        "engine": "fast fault model (golden.fault_models.FastFaultEngine, bit-exact with the "
                  "cycle model)",
        "simulator": sim, "version": ftaccel.__version__,
        "seed": spec["campaign"]["seed"],
        "command": command or "(Python API)",
    }


# -- RTL check ---------------------------------------------------------------------------------

#: The kinds of fault :func:`verify_on_rtl` replays on the RTL (the fault hooks, one build per
#: configuration for all of them).
VERIFY_KINDS = ("stuck-at", "transient", "profile")


def _verify_picks(spec: dict, plan: Plan, k: int, pop) -> list[tuple[str, int, object]]:
    """``(kind, fault id, item)`` of ``k`` plan items, spread evenly over the kinds it holds.

    Register campaigns hold stuck-at faults (population indices below ``pop.n_stuck``) and
    transients (one-cycle flips); ``pe_profile`` campaigns hold trials (rate-0 trials inject
    nothing and are not picked).  Drawn without replacement with the campaign's seed.
    """
    rng = np.random.default_rng(np.random.SeedSequence([spec["campaign"]["seed"], 0xE71]))
    items, n = plan.items, len(plan.items)
    if spec["faults"]["model"] == "register":
        # plan.items is sorted (a range, or sorted sampled indices): stuck-at ones come first
        split = min(n, pop.n_stuck) if isinstance(items, range) else \
            int(np.searchsorted(np.asarray(items), pop.n_stuck))
        groups = [("stuck-at", np.arange(0, split)), ("transient", np.arange(split, n))]
    else:
        groups = [("profile", np.array([i for i, it in enumerate(items) if it[0] > 0],
                                       dtype=np.int64))]
    groups = [(kind, g) for kind, g in groups if len(g)]
    picks = []
    for j, (kind, g) in enumerate(groups):
        take = min(len(g), k // len(groups) + (1 if j < k % len(groups) else 0))
        for pos in np.sort(g[rng.choice(len(g), size=take, replace=False)]):
            item = items[int(pos)]
            picks.append((kind, int(pos), item if isinstance(item, tuple) else int(item)))
    return picks


def _register_case(ctx: Context, prot: Protection, desc: dict):
    """``(fault, options, units, RTL layers)`` of a register fault on the verify batch.

    A flip's (pass, vector) is taken modulo the smaller batch's passes and vectors; it acts in
    its layer only, so only that layer runs on the RTL.
    """
    clean = ctx.clean[prot.name]
    cfg = clean.cfg
    units = dict(clean.units)
    if desc["layer"] is None:
        f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], desc["mode"])
        if prot.has("bypass"):  # a permanent fault is known (tested) and its PE bypassed
            bmap = np.zeros((cfg.rows, cfg.cols), bool)
            bmap[desc["row"], desc["col"]] = True
            units["bypass_map"] = bmap
        return f, {li: LayerOptions(fault=f) for li in ctx.products}, units, None
    li = desc["layer"]
    (_li, M, K, N) = next(d for d in ctx.dims if d[0] == li)
    n_pass, per = passes_of(cfg, M, K, N)
    cyc = flip_cycle(cfg, M, K, N, desc["register"], desc["row"], desc["col"],
                     desc["tile"] % n_pass, desc["vector"] % per,
                     clean.units.get("temporal_batch"))
    f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], "flip", cyc)
    return f, {li: LayerOptions(fault=f)}, units, {li}


def _profile_case(spec: dict, ctx: Context, prot: Protection, fid: int, item: tuple):
    """``(errors, options, units, RTL layers, dropped)`` of a ``pe_profile`` trial.

    The trial's chip and error instances drawn as :func:`app.netcampaign.evaluate_trial` draws
    them (the same seed and fault id), over the verify batch's products, with at most one
    error per cycle (the hooks hold one fault at a time; Shresthamali HAS §4.3): ``dropped``
    counts the errors that shared a cycle.  The layers with an error run on the RTL (every
    layer when none was drawn).
    """
    f = spec["faults"]
    rate = item[0]
    chip = item[2] if len(item) > 2 else f.get("chips", "fresh")
    clean = ctx.clean[prot.name]
    cfg = clean.cfg
    rng = np.random.default_rng(np.random.SeedSequence([spec["campaign"]["seed"], fid]))
    prof = trial_profile(ctx, cfg, rate, chip, rng)
    tb = clean.units.get("temporal_batch")
    errors, dropped = {}, 0
    for (i, M, K, N) in ctx.dims_of(prot):
        e = profile_errors(cfg, prof, M, K, N, f.get("mode", "bitflip"), rng,
                           bits=f.get("bits"), temporal_batch=tb)
        e, d = one_per_cycle(cfg, e, M, K, N, tb)
        errors[i], dropped = e, dropped + d
    units = dict(clean.units)
    if prot.has("bypass"):
        units["bypass_map"] = (prof > 0) & (prof >= prot.threshold * rate)
    opts = {i: LayerOptions(units={"errors": e}) for i, e in errors.items()}
    hit = {i for i, e in errors.items() if len(e)}
    return errors, opts, units, hit or None, dropped


def verify_on_rtl(spec: dict, plan: Plan, k: int, *, sim: str | None = None, log=print,
                  context: Context | None = None) -> dict:
    """Replay ``k`` sampled faults on the RTL under every protection; compare with the fast model.

    The faults are spread evenly over the kinds the plan holds (:data:`VERIFY_KINDS`):
    stuck-at and transient register faults, or ``pe_profile`` trials (their error instances
    played on the fault hooks, one per cycle: :mod:`tb.replay`).  Every run uses the first
    ``verify.images`` images and must give the fast fault model's logits and alarm counts
    bit for bit.  The layers the fault acts in run on the RTL, the others on the fast model
    (a transient: its layer; a stuck-at: every layer; a profile trial: the layers with an
    error instance); each case records which.

    The fault is a run-time input (the hooks' ports, in the stimulus), so one simulator model
    per configuration serves every fault and protection (built once, cached across runs).
    ``sim``: ``"icarus"`` / ``"verilator"``; default ``$SIM``, else
    :func:`tb.replay.choose_sim` (Verilator when installed and Icarus' estimated time is
    longer than its builds).  The report gives the simulator and why, the build (or cache
    look-up) seconds per configuration and the run seconds.  ``context``: the campaign's
    (:func:`build_context`), else built here.
    """
    # (heavy: cocotb and the simulator runner) only with an RTL check
    from ftaccel.tb.accelerator import RTLEngine
    from ftaccel.tb.replay import FaultReplayEngine, choose_sim

    kind = spec["faults"]["model"]
    if kind not in ("register", "pe_profile"):
        return {"checked": 0, "agree": 0, "simulator": None,
                "note": f"{kind} faults change stored operands or bypass PEs, not registers: "
                        "the RTL's fault hooks replay register faults and per-PE profiles"}
    n_img = spec["verify"]["images"]
    big = context if context is not None else build_context(spec)
    # the campaign's model, quantised on the campaign's data (an ONNX model without
    # network.calib is calibrated on them), its protections, on the first n_img images
    ctx = Context(big.model, big.x[:n_img], big.labels[:n_img], big.base, big.protections,
                  permutations=big.permutations, profile=big.profile)
    pop = population(spec, big) if kind == "register" else None
    picks = _verify_picks(spec, plan, k, pop)
    # every (fault, protection) case first: the simulator is chosen on their total size
    todo = []
    for fkind, fid, item in picks:
        desc = pop.describe(item) if kind == "register" else None
        for prot in ctx.protections:
            if desc is not None:
                fault, opts, units, layers = _register_case(ctx, prot, desc)
                errors, dropped = {}, 0
            else:
                errors, opts, units, layers, dropped = _profile_case(spec, ctx, prot, fid, item)
                fault = None
            todo.append((fkind, fid, item, desc, prot, fault, errors, dropped, opts, units,
                         layers))
    hooks = {p.name: ctx.clean[p.name].cfg.replace(fault_hooks=True) for p in ctx.protections}
    pe_cycles = sum(st.cycles * hooks[c[4].name].rows * hooks[c[4].name].cols
                    for c in todo for st in ctx.clean[c[4].name].layers
                    if c[10] is None or st.index in c[10])
    configs = {h.name(): h for h in hooks.values()}
    sim, why = choose_sim(sim, os.environ.get("SIM"), pe_cycles=pe_cycles,
                          configs=list(configs.values()))
    log(f"verify-rtl: {len(picks)} faults × {len(ctx.protections)} protections on {sim} "
        f"({why}); {len(configs)} configuration(s), {n_img} images", file=sys.stderr)
    engines: dict[str, RTLEngine] = {}
    builds: dict[str, float] = {}
    cases = []
    for (fkind, fid, item, desc, prot, fault, errors, dropped, opts, units, layers) in todo:
        cfg = hooks[prot.name]
        key = cfg.name()
        if key not in engines:
            engines[key] = RTLEngine(cfg, sim=sim)
            builds[key] = engines[key].start()  # generation + model build, or the cache's
            log(f"verify-rtl: {key} ready on {sim} in {builds[key]:.1f} s", file=sys.stderr)
        clean = ctx.clean[prot.name]
        opts = ctx.options(prot, opts)  # the protection's placement / the permutation
        model = ctx.model_of(prot)
        replay = FaultReplayEngine(engines[key], errors=errors, rtl_layers=layers,
                                   fallback=FastFaultEngine(clean.cfg))
        eng = VotingEngine(replay) if prot.has("tmr") else replay
        t0 = time.perf_counter()
        rtl = run(model, ctx.x, eng, units=units, options=opts)
        t_rtl = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = run(model, ctx.x, FastFaultEngine(clean.cfg), units=units, options=opts)
        t_fast = time.perf_counter() - t0
        same = bool(np.array_equal(rtl.logits, fast.logits)) and \
            [st.alarms for st in rtl.layers] == [st.alarms for st in fast.layers]
        ran = sorted(set(replay.ran))
        case = {"kind": fkind, "fault_id": fid, "protection": prot.name, "agree": same,
                "rtl_layers": [model.layers[i].name for i in ran],
                "rtl_seconds": round(t_rtl, 3), "fast_seconds": round(t_fast, 5)}
        if desc is not None:
            case["fault"] = {k2: v for k2, v in desc.items() if k2 != "dims"}
            case["cycle"] = fault.cycle
            what = (f"{desc['mode']} {desc['register']}[{desc['bit']}] of PE ({desc['row']}, "
                    f"{desc['col']})" + ("" if fault.cycle is None else
                                         f" at cycle {fault.cycle} of its layer"))
        else:
            case["trial"] = {"rate": item[0], "trial": item[1],
                             "chip": item[2] if len(item) > 2 else spec["faults"]["chips"]}
            case["errors_played"] = replay.played
            case["errors_dropped"] = dropped
            what = f"trial rate {item[0]:g} #{item[1]} ({replay.played} errors)"
        case["logits_changed"] = int(np.any(fast.logits != clean.logits, axis=1).sum())
        cases.append(case)
        log(f"verify-rtl: {fkind} {what} under {prot.name}: "
            f"{'agrees' if same else 'DIFFERS'} ({t_rtl:.1f} s RTL, {len(ran)} layer(s))",
            file=sys.stderr)
    agree = sum(c["agree"] for c in cases)
    by_kind = {kd: {"checked": sum(c["kind"] == kd for c in cases),
                    "agree": sum(c["agree"] for c in cases if c["kind"] == kd)}
               for kd in VERIFY_KINDS if any(c["kind"] == kd for c in cases)}
    return {"checked": len(cases), "agree": agree, "images": n_img,
            "share": agree / len(cases) if cases else None, "by_kind": by_kind,
            "simulator": sim, "simulator_reason": why,
            "build_seconds": {key: round(s, 3) for key, s in builds.items()},
            "run_seconds": round(sum(c["rtl_seconds"] for c in cases), 3),
            "fast_seconds": round(sum(c["fast_seconds"] for c in cases), 5),
            "cases": cases,
            "note": f"{n_img} images; flips mapped modulo the smaller batch's passes/vectors; "
                    "the layers a fault acts in run on the RTL, the rest on the fast model"}
