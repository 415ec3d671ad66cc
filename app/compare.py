"""``rtlgen compare``: one answer per protection, accuracy under faults beside its costs.

A compare spec is a campaign spec (:mod:`app.campaign`: the network, the data, the faults, the
sample and the ``[[protections]]`` — every kind the campaign knows, LCU/TMR at an NVF
threshold, HAS with its permutation, combinations such as ``sanity+bypass``) and a
``[compare]`` table::

    [compare]
    synth = "ppa"     # area, timing and power of every configuration (default); "area"; "none"
    rate = 0.002      # sweeps: the rate the table reports (default: the highest swept rate)

Several networks (a trained and an untrained one, say) are compared in one report by a
``[[models]]`` list in place of ``[network] model``; each entry names a model and may give its
own calibration data (the other ``[network]`` keys are shared)::

    [[models]]
    name = "qat"                 # the row prefix and the campaign folder's name
    model = "qat/model.npz"
    [[models]]
    name = "median3-trained"
    model = "median3/model.npz"

Every protection then runs on every model, a row per (model, protection) named
``MODEL/PROTECTION``, each model's campaign in ``DIR/campaign/MODEL`` (the same spec otherwise,
so the same seeds and fault draws on networks of one shape; the rows equal the separate
campaigns').  Besides each row's own figures (against its model's unprotected network), the
report gives the rate tolerated at equal loss against the **first** model's unprotected
fault-free accuracy (its ``none`` row is the reference, Ozen 2023 Fig. 8.14: a trained network's
tolerated rate against the untrained baseline's).

Every protection runs on the **same faults** (one campaign, ``DIR/campaign``, resumable), and
each distinct configuration is synthesised once (``synth.flow.synthesize`` with OpenSTA
timing and power at the default toggle rate; the figures are kept per configuration by
:mod:`synth.energy` and reused by every later run).  Per protection the report gives:

* the fault-free accuracy, the accuracy under faults (mean and 95 % interval) and its loss
  against the unprotected network's fault-free accuracy (and the ratio of the losses);
* the critical-SDC rate with its Wilson interval and sample size, and the detection coverage
  of error-caused mispredictions (Ozen 2023 Fig. 6.10);
* the rate tolerated at equal loss (sweeps: 1 percentage point absolute and 1 % relative,
  a crossing beyond the sweep written as ``<`` / ``>``; Ozen 2023 Figs. 8.13/8.14);
* cycles per inference and the extra cycles against the unprotected array, from the engine's
  cycle count of the fault-free run (the LCU controller's and the voter's runs after a layer
  are not counted: :class:`golden.network.FunctionalEngine`);
* area (µm², OSU 0.18 µm), power (mW) and Fmax (MHz) of the synthesised configuration, their
  overheads on the unprotected design, and the energy per inference (power × cycles / f,
  :func:`synth.energy.energy_per_inference`);
* the seeds' figure where one exists (area/power: :mod:`synth.seeds`; accuracy: README, Fault
  campaigns), beside the project's own on the same denominator.

Outputs: ``compare.json`` (complete, with the provenance), ``compare.md`` (one table) and
``pareto.png`` (accuracy under faults against area and against energy per inference; the
protections no other beats on both marked).  ``compare.json`` is written last.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path

from ftaccel.app.campaign import (
    CampaignError,
    buffer_depth,
    build_context,
    parse_spec,
    run_campaign,
)
from ftaccel.app.campaign_report import jsonable, rate_text, share_text
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import shown
from ftaccel.files import (
    FileProblem,
    check_folder,
    check_target,
    parse_toml,
    read_input,
    write_json,
    write_text,
)

__all__ = ["compare", "check_compare_folder", "load_compare", "pareto_front", "to_markdown",
           "COMPARE_FILES", "SYNTH_MODES", "ACCURACY_SEEDS"]

#: What ``[compare] synth`` may ask for.
SYNTH_MODES = ("ppa", "area", "none")
#: The files a compare folder holds besides ``campaign/`` and ``synth/``.
COMPARE_FILES = ("compare.json", "compare.md", "pareto.png")
_COMPARE_KEYS = ("synth", "rate")

#: The seeds' accuracy figures (README, Fault campaigns), per protection kind: what the seed
#: reports, its value and where; the project's own figure of the same kind is set beside it.
ACCURACY_SEEDS = {
    "sanity": ("error-caused misprediction coverage; false alarms", "100 %; none",
               "Ozen 2023 Fig. 6.10"),
    "afd": ("weight error rate tolerated at equal accuracy loss", "20× the baseline's",
            "Ozen 2023 Fig. 8.13"),
    "median": ("weight error rate tolerated at equal loss",
               "~10× (SqueezeNet), 20× (ResNet-18, Median-5)", "Ozen 2023 Fig. 8.14"),
    "bypass": ("accuracy loss at 50 % PE bypass rate (with HA dropconnect and calibration)",
               "≤ 0.61 % (MLP)", "Ozen 2023 §10.5.1, Figs. 10.5–10.7"),
    "lcu": ("accuracy loss vs unprotected at NVF ≥ 20 %",
            "2.14× / 3.38× / 3.36× lower (MLP-7, LeNet-5, AlexNet)",
            "Ahmadilivani 2025 Table 4.10"),
    "tmr": ("network size of selective TMR vs LCU", "LCU 15.15 % / 3.84 % / 0.6 % smaller",
            "Ahmadilivani 2025 §4.3.1"),
    "has": ("accuracy at FR_max 5e-3, flip-to-1 / bit flip in c0", "~55 % → ~85 %",
            "Shresthamali HAS §5.2"),
}
#: The synthesis report's unit of each protection kind (its seed rows).
_UNIT_OF = {"sanity": "checksum", "afd": "afd", "median": "median", "bypass": "bypass",
            "lcu": "lcu", "tmr": "tmr"}


# -- the spec ----------------------------------------------------------------------------------

def load_compare(spec_or_path) -> tuple[dict, dict]:
    """The normalised campaign spec and the ``[compare]`` options of a TOML file or a dict.

    A dict is taken exactly as the TOML file would give it (relative paths from the working
    folder).  :class:`app.campaign.CampaignError` names the key of anything invalid.
    """
    if isinstance(spec_or_path, dict):
        raw, base = dict(spec_or_path), Path.cwd()
    elif isinstance(spec_or_path, str | os.PathLike):
        p = Path(spec_or_path)
        try:
            raw = parse_toml(read_input(p, "spec"), f"spec {p}")
        except FileProblem as exc:
            raise CampaignError(str(exc)) from None
        base = p.parent
    else:
        raise CampaignError(f"spec {shown(spec_or_path)}: give a TOML file's path or a dict "
                            "of its tables")
    opts = raw.pop("compare", {})
    if not isinstance(opts, dict):
        raise CampaignError("spec key compare: must be a table")
    for key in opts:
        if key not in _COMPARE_KEYS:
            raise CampaignError(f"spec key compare.{key}: unknown key; known: "
                                f"{', '.join(_COMPARE_KEYS)}")
    models = raw.pop("models", None)
    specs = None
    if models is None:
        spec = parse_spec(raw, base=base)
    else:
        specs = _model_specs(raw, models, base)
        spec = next(iter(specs.values()))
    synth = opts.get("synth", "ppa")
    if synth not in SYNTH_MODES:
        raise CampaignError(f"spec key compare.synth: {shown(synth)}: one of "
                            f"{', '.join(SYNTH_MODES)}")
    out = {"synth": synth}
    rate = opts.get("rate")
    if spec["faults"]["model"] == "register":
        if rate is not None:
            raise CampaignError("spec key compare.rate: register faults have no rate (it "
                                "picks one rate of a sweep)")
    else:
        rates = spec["sample"]["rates"]
        if rate is None:
            rate = max(rates)
        if type(rate) not in (int, float) or float(rate) not in rates or rate == 0:
            raise CampaignError(f"spec key compare.rate: {shown(rate)}: one of the swept "
                                f"non-zero rates ({', '.join(f'{r:g}' for r in rates if r)})")
        out["rate"] = float(rate)
    if specs is not None:
        out["models"] = specs
    return spec, out


#: A ``[[models]]`` entry's keys; its name is a row prefix, a JSON key and a folder name.
_MODEL_KEYS = ("name", "model", "calib")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def _model_specs(raw: dict, models, base: Path) -> dict[str, dict]:
    """``{model name: campaign spec}`` of a ``[[models]]`` list: ``raw`` with each entry's model.

    CampaignError names the entry's key (``models[1].model``) of anything invalid.
    """
    if not isinstance(models, list) or not models or \
            not all(isinstance(m, dict) for m in models):
        raise CampaignError("spec key models: must be a non-empty list of tables "
                            "([[models]] entries with name and model)")
    if "model" in (raw.get("network") or {}):
        raise CampaignError("spec key network.model: give the networks in [[models]] entries, "
                            "not both")
    specs: dict[str, dict] = {}
    for k, m in enumerate(models):
        key = f"models[{k}]"
        for name in m:
            if name not in _MODEL_KEYS:
                raise CampaignError(f"spec key {key}.{name}: unknown key; known: "
                                    f"{', '.join(_MODEL_KEYS)}")
        for name in ("name", "model"):
            if not isinstance(m.get(name), str):
                raise CampaignError(f"spec key {key}.{name}: "
                                    + ("missing" if name not in m else
                                       f"{shown(m[name])}: must be a string"))
        if not _MODEL_NAME.fullmatch(m["name"]):
            raise CampaignError(f"spec key {key}.name: {shown(m['name'])}: letters, digits and "
                                "._+- (at most 64, not starting with a symbol)")
        if m["name"] in specs:
            raise CampaignError(f"spec key {key}.name: {shown(m['name'])}: given twice")
        one = {**raw, "network": {**(raw.get("network") or {}), "model": m["model"],
                                  **({"calib": m["calib"]} if "calib" in m else {})}}
        try:
            specs[m["name"]] = parse_spec(one, base=base)
        except CampaignError as exc:  # the entry's key, not the [network] key it was put in
            raise CampaignError(re.sub(r"^spec key network\.(model|calib)",
                                       lambda g, k=key: f"spec key {k}.{g.group(1)}",
                                       str(exc))) from None
    return specs


# -- the folder --------------------------------------------------------------------------------

def check_compare_folder(out: Path) -> None:
    """``out`` is new, empty, or a compare folder (its campaign resumes); else CampaignError."""
    try:
        check_folder(out, "-o")
        for name in COMPARE_FILES:
            check_target(out / name, "-o")
    except FileProblem as exc:
        raise CampaignError(str(exc)) from None
    if out.is_dir():
        extra = sorted(e.name for e in os.scandir(out)
                       if e.name not in (*COMPARE_FILES, "campaign", "synth"))
        if extra:
            raise CampaignError(f"-o {out}: not empty and not a compare folder (it holds "
                                f"{', '.join(extra[:3])}{' …' if len(extra) > 3 else ''}); "
                                "give a new folder")


# -- synthesis ---------------------------------------------------------------------------------

def _product(cfg: AcceleratorConfig, model) -> AcceleratorConfig:
    """The configuration as a product: no fault hooks, an LCU/TMR buffer for one inference.

    The fault hooks are verification infrastructure, not product area.  The campaign runs
    every image as one batch, so its cycle model needs an output buffer of one row per result
    vector of the whole batch (4,096 rows of C words for 300 digits: a quarter of a megabit of
    flip-flops); a product corrects one inference at a time, so the synthesised buffer holds
    one image's largest layer (:func:`app.campaign.buffer_depth`).
    """
    if cfg.fault_hooks:
        cfg = cfg.replace(fault_hooks=False)
    if cfg.lcu or cfg.tmr != "none":
        cfg = cfg.replace(lcu_depth=buffer_depth(model, 1, cfg))
    return cfg


def _cached(cfg: AcceleratorConfig, synth: str) -> dict | None:
    from ftaccel.synth.energy import lookup

    found = lookup(cfg.to_dict(), power=synth == "ppa")
    if found is None or not found.get("area_totals"):
        return None  # an entry of an older version, without its area
    if synth == "ppa" and found.get("fmax_mhz") is None:
        return None
    return found


def _require_tools(synth: str) -> None:
    """Yosys (and OpenSTA for ``ppa``) before any work: a missing tool fails at once (exit 3)."""
    from ftaccel.synth.yosys import yosys_version  # (heavy: the synthesis flow)

    yosys_version()
    if synth == "ppa":
        from ftaccel.synth.sta import require_sta

        require_sta()


def _synthesise(cfg: AcceleratorConfig, folder: Path, synth: str, log) -> dict:
    """Synthesise ``cfg`` into ``folder`` and return its cached figures."""
    from ftaccel.rtl_gen.accelerator import generate  # (heavy: Amaranth)
    from ftaccel.synth.flow import synthesize

    t0 = time.perf_counter()
    log(f"compare: synthesising {cfg.name()} ({'area, timing, power' if synth == 'ppa' else 'area'}"
        f") in {folder}", file=sys.stderr)
    gen = generate(cfg, folder / "rtl")
    synthesize(gen.verilog, gen.top, folder, timing=synth == "ppa", power=synth == "ppa")
    found = _cached(cfg, synth)
    if found is None:  # the flow stores every report; not finding it is a bug
        raise RuntimeError(f"synthesis of {cfg.name()} left no cache entry")
    found["synth_seconds"] = round(time.perf_counter() - t0, 1)
    return found


# -- the comparison ----------------------------------------------------------------------------

def pareto_front(points: dict) -> list[str]:
    """The names of ``points`` (name → ``(accuracy, cost)``) that no other point dominates.

    Higher accuracy and lower cost are better; ``q`` dominates ``p`` when it is at least as
    good on both and better on one.  Points with a missing value (None, NaN) take no part.
    """
    ok = {k: v for k, v in points.items()
          if v[0] is not None and v[1] is not None and not math.isnan(v[0])
          and not math.isnan(v[1])}
    front = []
    for p, (a, c) in ok.items():
        if not any((a2 >= a and c2 <= c) and (a2 > a or c2 < c)
                   for q, (a2, c2) in ok.items() if q != p):
            front.append(p)
    return front


def compare(spec, out, *, workers: int | None = None, scheduler: str | None = None,
            synth: str | None = None, progress: bool | None = None,
            command: str | None = None, log=print) -> dict:
    """Compare every protection of ``spec`` on the same faults; write ``out``; the report dict.

    Parameters
    ----------
    spec : path or dict
        A compare spec (a TOML file, or a plain dict exactly as the file would give it): a
        campaign spec and an optional ``[compare]`` table (module docstring).
    out : path
        The folder: ``campaign/`` (the campaign, resumed by the same call), ``synth/`` (the
        configurations not yet in the cache), ``compare.json``, ``compare.md``, ``pareto.png``.
    workers, scheduler, progress :
        As :func:`app.campaign.run_campaign`.
    synth : str, optional
        Overrides ``[compare] synth`` (``ppa``, ``area`` or ``none``).
    command : str, optional
        The command line recorded in the provenance.

    Raises
    ------
    app.campaign.CampaignError
        Bad spec, option or folder, before anything is written.
    synth.yosys.YosysError, synth.sta.StaError
        A missing or failing tool (checked before the campaign when a synthesis is needed).
    """
    t0 = time.perf_counter()
    spec, opts = load_compare(spec)
    if synth is not None:
        if synth not in SYNTH_MODES:
            raise CampaignError(f"--synth {shown(synth)}: one of {', '.join(SYNTH_MODES)}")
        opts["synth"] = synth
    out = Path(out)
    check_compare_folder(out)
    specs = opts.get("models") or {None: spec}
    configs_of = {}
    for m, one in specs.items():
        ctx = build_context(one)  # model, data and fit, before anything is written
        configs_of[m] = {p.name: _product(ctx.clean[p.name].cfg, ctx.model_of(p))
                         for p in ctx.protections}
    figures: dict[str, dict | None] = {}
    missing = []
    if opts["synth"] != "none":
        for cfg in (c for configs in configs_of.values() for c in configs.values()):
            key = cfg.name()
            if key not in figures:
                figures[key] = _cached(cfg, opts["synth"])
                if figures[key] is None:
                    missing.append(cfg)
        if missing:
            _require_tools(opts["synth"])
    camps = {m: run_campaign(one, out / "campaign" if m is None else out / "campaign" / m,
                             workers=workers, scheduler=scheduler, progress=progress,
                             command=command, log=log)
             for m, one in specs.items()}
    for cfg in missing:
        figures[cfg.name()] = _synthesise(cfg, out / "synth" / cfg.name(), opts["synth"], log)
    if None in camps:
        report = assemble(spec, opts, camps[None], configs_of[None], figures)
    else:
        report = assemble_models(specs, opts, camps, configs_of, figures)
    report["timing"] = {"seconds": round(time.perf_counter() - t0, 1),
                        "campaign_seconds": round(sum(
                            c.get("timing", {}).get("seconds") or 0 for c in camps.values()), 1),
                        "synthesised": [c.name() for c in missing],
                        "from_cache": sorted(k for k, v in figures.items()
                                             if v is not None and k not in
                                             {c.name() for c in missing})}
    report["plots"] = [write_pareto(out / "pareto.png", report)]
    write_text(out / "compare.md", to_markdown(report))
    write_json(out / "compare.json", jsonable(report))
    return report


def assemble(spec: dict, opts: dict, camp: dict, configs: dict, figures: dict) -> dict:
    """The compare report from the campaign's report and the synthesis figures."""
    from ftaccel.synth.energy import energy_per_inference

    rate = opts.get("rate")
    images = camp["images"]
    ff_none = camp["fault_free"]["none"]["accuracy"]
    rows: dict[str, dict] = {}
    for name, e in camp["protections"].items():
        ff = camp["fault_free"][name]
        kinds = ff["kind"].split("+")
        if rate is None:
            acc, crit = list(e["accuracy"]), e["critical_sdc"]
        else:
            pinned = (e.get("by_chip") or {}).get("pinned")
            by_rate = (pinned or e)["by_rate"][repr(rate)]
            acc = [by_rate["accuracy"], *by_rate["ci95"]]
            crit = by_rate["critical_sdc"]
        row = {"kind": ff["kind"], "config": configs[name].name(),
               "config_fields": configs[name].to_dict(),
               "fault_free_accuracy": ff["accuracy"], "accuracy": acc,
               "loss_pp": 100 * (ff_none - acc[0]), "critical_sdc": crit,
               "repaired": e["classes"]["repaired"], "faults": e["faults"],
               "misprediction_coverage": e.get("misprediction_coverage"),
               "false_alarms": ff["false_alarms"],
               "cycles_per_inference": ff["cycles_per_inference"],
               "extra_cycles_per_inference": ff["extra_cycles_per_inference"]}
        if rate is not None and "by_chip" in e:
            fresh = e["by_chip"]["fresh"]["by_rate"][repr(rate)]
            row["accuracy_fresh_chips"] = [fresh["accuracy"], *fresh["ci95"]]
        tol = camp.get("tolerated_rate")
        if tol:
            row["tolerated"] = {kind: {loss: tol[kind][loss][name] for loss in tol[kind]}
                                for kind in ("absolute", "relative")}
        fig = figures.get(configs[name].name())
        if fig:
            row["synthesis"] = _synthesis_figures(fig)
            if fig.get("power_total"):
                en = energy_per_inference(fig, cycles=ff["cycles"], images=images)
                row["energy"] = en.to_dict()
        row["seeds"] = _seed_rows(kinds, fig, configs[name].to_dict())
        rows[name] = row
    base = rows["none"]
    for row in rows.values():
        row["loss_ratio"] = (row["loss_pp"] / base["loss_pp"] if base["loss_pp"] > 0 else None)
        for key, sub in (("area_um2", "area"), ("power_mw", "power"), ("fmax_mhz", "fmax")):
            mine = (row.get("synthesis") or {}).get(key)
            ref = (base.get("synthesis") or {}).get(key)
            row.setdefault("overheads", {})[sub] = (100 * (mine / ref - 1) if mine and ref
                                                    else None)
        en, en0 = row.get("energy"), base.get("energy")
        row["overheads"]["energy"] = (100 * (en["per_inference_uj"] / en0["per_inference_uj"]
                                             - 1) if en and en0 else None)
    fronts = _fronts(rows)
    return {"format": "ftaccel-compare", "version": 1, "name": spec["campaign"]["name"],
            "model": camp["model"], "images": images, "config": camp["config"],
            "faults": spec["faults"], "plan": camp["plan"], "rate": rate,
            "synth": opts["synth"], "campaign": "campaign/campaign.json",
            "campaign_id": camp.get("campaign_id"), "sample_coverage":
                (camp.get("sample_coverage") or {}).get("every_class_covered"),
            "chips": camp.get("chips"), "protections": rows, "pareto": fronts,
            "provenance": camp.get("provenance"), "spec": spec,
            "synthesis_settings": _settings(figures)}


def _fronts(rows: dict) -> dict:
    """The rows no other beats on accuracy under faults and on each cost (area, energy, cycles)."""
    acc = {p: r["accuracy"][0] for p, r in rows.items()}
    fronts = {}
    for cost, get in (("area_um2", lambda r: (r.get("synthesis") or {}).get("area_um2")),
                      ("energy_uj", lambda r: (r.get("energy") or {}).get("per_inference_uj")),
                      ("cycles", lambda r: r["cycles_per_inference"])):
        pts = {p: (acc[p], get(r)) for p, r in rows.items()}
        if any(v[1] is not None for v in pts.values()):
            fronts[cost] = pareto_front(pts)
    return fronts


def assemble_models(specs: dict, opts: dict, camps: dict, configs_of: dict,
                    figures: dict) -> dict:
    """The report of a ``[[models]]`` comparison: a row per (model, protection).

    Each model's rows are :func:`assemble`'s of its own campaign, unchanged (their losses and
    tolerated rates against that model's unprotected network), named ``MODEL/PROTECTION``.
    Added to each: ``loss_pp_vs_reference`` and, for sweeps, ``tolerated_vs_reference``: the
    rate at which the row's mean accuracy falls 1 pp / 5 pp (and 1 % / 5 %) below the first
    model's unprotected fault-free accuracy (one level for every row), with its ratio to that
    model's own crossing; and ``tolerated_ratio_vs_reference``: the row's rate tolerated at
    equal loss from its *own* fault-free accuracy over the reference's (Ozen 2023 Fig. 8.14
    reads a trained network's tolerated rate against the baseline's so).
    """
    from ftaccel.app.campaign_report import ratio_of, tolerated_rates

    parts = {m: assemble(specs[m], opts, camps[m], configs_of[m], figures) for m in specs}
    ref = next(iter(specs))
    rows: dict[str, dict] = {}
    for m, part in parts.items():
        for p, row in part["protections"].items():
            rows[f"{m}/{p}"] = {"model": m, "protection": p, **row}
    base = camps[ref]
    ff_ref = base["fault_free"]["none"]["accuracy"]
    for row in rows.values():
        row["loss_pp_vs_reference"] = 100 * (ff_ref - row["accuracy"][0])
    if opts.get("rate") is not None:
        # the reference's unprotected row is "none" to tolerated_rates (its baseline); each
        # curve starts at its fault-free accuracy (rate 0), so that a model already below the
        # reference's level fault-free is "none", not "below the lowest swept rate"
        def curve(c: dict, p: str) -> dict:
            e = c["protections"][p]
            return {**e, "by_rate": {"0.0": {"accuracy": c["fault_free"][p]["accuracy"]},
                                     **e["by_rate"]}}

        summary = {"fault_free": {"none": base["fault_free"]["none"]},
                   "protections": {"none": curve(base, "none"),
                                   **{f"{m}/{p}": curve(c, p) for m, c in camps.items()
                                      for p in c["protections"]}}}
        tol = tolerated_rates(summary)
        ref_own = rows[f"{ref}/none"].get("tolerated") or {}
        for key, row in rows.items():
            row["tolerated_vs_reference"] = {
                kind: {loss: tol[kind][loss][key] for loss in tol[kind]}
                for kind in ("absolute", "relative")}
            # each network at its own equal loss, against the reference's (Fig. 8.14's ratio)
            own = row.get("tolerated") or {}
            row["tolerated_ratio_vs_reference"] = {
                kind: {loss: ratio_of(own[kind][loss], ref_own[kind][loss])
                       for loss in own.get(kind, {}) if loss in ref_own.get(kind, {})}
                for kind in ("absolute", "relative")}
    report = dict(parts[ref])
    report.update(
        model=", ".join(f"{m}: {camps[m]['model']}" for m in specs), protections=rows,
        pareto=_fronts(rows), reference=f"{ref}/none",
        campaign={m: f"campaign/{m}/campaign.json" for m in specs},
        campaign_id={m: camps[m].get("campaign_id") for m in specs},
        models={m: {"model": camps[m]["model"], "source": specs[m]["network"]["model"],
                    "fault_free_accuracy": camps[m]["fault_free"]["none"]["accuracy"]}
                for m in specs},
        spec={m: specs[m] for m in specs})
    return report


def _synthesis_figures(fig: dict) -> dict:
    tot = fig.get("area_totals") or {}
    pw = fig.get("power_total") or {}
    return {"area_um2": tot.get("area_um2"), "transistors": tot.get("transistors"),
            "power_mw": pw.get("total_mw"), "dynamic_mw": pw.get("dynamic_mw"),
            "leakage_mw": pw.get("leakage_mw"), "fmax_mhz": fig.get("fmax_mhz"),
            "clock_mhz": fig.get("clock_mhz"), "cache_entry": fig.get("entry")}


def _settings(figures: dict) -> dict | None:
    fig = next((f for f in figures.values() if f), None)
    if fig is None:
        return None
    from ftaccel.synth.seeds import TECHNOLOGY_GAP

    act = fig.get("activity") or {}
    return {"liberty": fig.get("liberty"), "clock_mhz": fig.get("clock_mhz"),
            "activity": ("DEFAULT toggle rate " + f"{act.get('default_input_rate'):g}"
                         if act.get("source") == "default" else act.get("workload")
                         or act.get("source")),
            "technology_gap": TECHNOLOGY_GAP}


def _seed_rows(kinds: list[str], fig: dict | None, config: dict) -> list[dict]:
    """The seeds' figures for these kinds: accuracy, and area and power beside ours."""
    from ftaccel.synth.seeds import figures_for

    out = []
    for kind in kinds:
        if kind in ACCURACY_SEEDS:
            what, value, source = ACCURACY_SEEDS[kind]
            out.append({"kind": kind, "metric": "accuracy", "what": what, "seed": value,
                        "source": source})
        unit = _UNIT_OF.get(kind)
        if unit is None:
            continue
        rows = [r for r in (fig or {}).get("beside_the_seeds") or []
                if r["unit"] == unit and r.get("seed")]
        if rows:
            for r in rows:
                s = r["seed"]
                mine = r.get("project_pct", {})
                value = mine.get("area_um2", mine.get("transistors")) if s["metric"] == \
                    "area" else mine.get(s["metric"] if s["metric"] != "delay" else "delay")
                out.append({"kind": kind, "metric": s["metric"],
                            "what": f"{s['metric']}, % of the {s['denominator']}",
                            "seed": s["text"], "source": s["source"], "project_pct": value})
        elif fig is None:  # no synthesis: the seed figures that apply, alone
            for f in figures_for(unit, config):
                out.append({"kind": kind, "metric": f.metric,
                            "what": f"{f.metric}, % of the {f.denominator}", "seed": f.text,
                            "source": f.source, "project_pct": None})
    return out


# -- the reports -------------------------------------------------------------------------------

def write_pareto(path: Path, report: dict) -> str:
    """``pareto.png``: accuracy under faults against area and energy (or cycles)."""
    import io

    import matplotlib  # heavy: only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ftaccel.files import atomic_write

    rows = report["protections"]
    panels = [(k, label) for k, label in (("area_um2", "area (µm², OSU 0.18 µm)"),
                                          ("energy_uj", "energy per inference (µJ)"),
                                          ("cycles", "cycles per inference"))
              if k in report["pareto"]][:2]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        front = set(report["pareto"][key])
        pts = []
        for p, r in rows.items():
            cost = {"area_um2": (r.get("synthesis") or {}).get("area_um2"),
                    "energy_uj": (r.get("energy") or {}).get("per_inference_uj"),
                    "cycles": r["cycles_per_inference"]}[key]
            if cost is None:
                continue
            m, lo, hi = r["accuracy"]
            pts.append((cost, 100 * m, p))
            on = p in front
            ax.errorbar(cost, 100 * m, yerr=[[100 * (m - lo)], [100 * (hi - m)]],
                        fmt="o" if on else "o", mfc="C3" if on else "white", mec="C3" if on
                        else "C0", ecolor="0.6", capsize=2, markersize=7)
        _labels(ax, pts)
        line = sorted((c, a) for c, a, p in pts if p in front)
        if len(line) > 1:
            ax.step([c for c, _ in line], [a for _, a in line], where="post", color="C3",
                    linewidth=0.8, alpha=0.6)
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy under faults (%, 95 % CI)")
        ax.grid(True, alpha=0.3)
        ax.set_title("filled: not dominated (higher accuracy, lower cost)", fontsize=8)
    what = f"at rate {report['rate']:g}" if report.get("rate") is not None else \
        "register faults"
    fig.suptitle(f"{report['model']}: accuracy under faults ({what}) vs cost")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return path.name


def _labels(ax, pts: list[tuple[float, float, str]]) -> None:
    """Name each point; a point close to one already named gets its label below, not above."""
    if not pts:
        return
    xs, ys = [c for c, _a, _p in pts], [a for _c, a, _p in pts]
    dx, dy = 0.06 * (max(xs) - min(xs) or 1), 0.04 * (max(ys) - min(ys) or 1)
    above: list[tuple[float, float]] = []
    for c, a, p in sorted(pts):
        crowded = any(abs(c - c2) < dx and abs(a - a2) < dy for c2, a2 in above)
        ax.annotate(p, (c, a), textcoords="offset points", xytext=(5, -11 if crowded else 4),
                    fontsize=7)
        if not crowded:
            above.append((c, a))


def _ci(v) -> str:
    if v is None or v[0] is None:
        return "—"
    m, lo, hi = v
    return f"{100 * m:.2f} % ({100 * lo:.2f}–{100 * hi:.2f})"


def _over(x) -> str:
    return "" if x is None or abs(x) < 5e-3 else f" ({x:+.1f} %)"


def _num(x, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _seed_text(row: dict) -> str:
    """The seeds' figures in one cell: ``what: seed X, ours Y (source)`` per figure."""
    parts = []
    for s in row["seeds"]:
        mine = ""
        if s["metric"] == "accuracy":
            mine = _own_accuracy_figure(s["kind"], row)
        elif s.get("project_pct") is not None:
            mine = f", ours {s['project_pct']:.2f} %"
        parts.append(f"{s['what']}: seed {s['seed']}{mine} ({s['source']})")
    return "<br>".join(parts) or "—"


def _own_accuracy_figure(kind: str, row: dict) -> str:
    """The project's figure of the kind the seed reports (accuracy seeds)."""
    if kind == "sanity" and row.get("misprediction_coverage"):
        c = row["misprediction_coverage"]
        return f", ours {100 * c['share']:.1f} %; {row['false_alarms']} false alarms"
    if kind in ("afd", "median") and row.get("tolerated"):
        t = row["tolerated"]["absolute"]["1"]
        r = t.get("ratio")
        return f", ours {('' if r['relation'] == '=' else r['relation'] + ' ')}" \
               f"{r['ratio']:.2g}× at 1 pp" if r else ", ours: ratio open (see the table)"
    if kind == "lcu" and row.get("loss_ratio"):
        return f", ours {1 / row['loss_ratio']:.2f}× lower" if row["loss_ratio"] > 0 else ""
    if kind == "has":
        return f", ours {100 * row['accuracy'][0]:.1f} % under faults"
    return ""


def to_markdown(r: dict) -> str:
    """``compare.md``: the setting, then one table of every protection beside the seeds."""
    from ftaccel.app.campaign_report import provenance_lines

    rows = r["protections"]
    cfg = AcceleratorConfig.from_dict(r["config"])
    f = r["faults"]
    shown_faults = ", ".join(f"{k}={v}" for k, v in f.items() if k not in ("model", "profile"))
    plan = r["plan"]
    lines = [f"# Protections compared: {r['name']}", "",
             f"- {r['model']} on {r['images']} images, accelerator `{cfg.name()}`; every "
             f"protection on the same faults: {f['model']} ({shown_faults})"]
    if plan["method"] == "sweep":
        lines.append(f"- sweep of {', '.join(f'{x:g}' for x in plan['rates'])}, "
                     f"{plan['trials']} trials each; the table is at rate {r['rate']:g} "
                     "(every rate in `campaign/campaign.md`)")
    else:
        lines.append(f"- {plan['method']} sample of {plan['size']:,} faults"
                     + (f" (±{100 * plan['margin']:g} % at {100 * plan['confidence']:g} %, "
                        "Ahmadilivani 2025 Eq. 4.7)" if plan["method"] == "statistical" else "")
                     + ("" if r.get("sample_coverage") in (None, True) else
                        "; not every site class reaches its Eq. 4.7 size (see "
                        "`campaign/campaign.md`)"))
    if r.get("chips"):
        lines.append(f"- HAS: pinned chip `{_relative(r['chips']['pinned']['file'])}`; the table's "
                     "accuracy is on that chip"
                     + ("; fresh chips in their own column" if r["chips"]["runs_on"] == "both"
                        else ""))
    if r.get("models"):
        lines.append("- models (a row per model and protection; each model's campaign in "
                     "`campaign/MODEL/`): " + "; ".join(
                         f"{m} `{_relative(v['source'])}` ({100 * v['fault_free_accuracy']:.2f} "
                         "% fault-free)" for m, v in r["models"].items())
                     + f"; the reference of equal loss is `{r['reference']}`")
    lines += provenance_lines(r.get("provenance"))
    st = r.get("synthesis_settings")
    if st:
        lib = st.get("liberty") or {}
        lines.append(f"- synthesis: Yosys + OpenSTA on `{lib.get('path', lib)}`"
                     + (f", power at {st['clock_mhz']:g} MHz with the {st['activity']}"
                        if st.get("clock_mhz") else " (area only)")
                     + f"; {st['technology_gap']}")
    fresh = any("accuracy_fresh_chips" in x for x in rows.values())
    tol = any("tolerated" in x for x in rows.values())
    vs_ref = any("tolerated_vs_reference" in x for x in rows.values())
    head = ["model / protection" if r.get("models") else "protection", "fault-free accuracy",
            "accuracy under faults (95 % CI)"]
    if fresh:
        head.append("on fresh chips (95 % CI)")
    head += ["loss vs unprotected fault-free (pp; × unprotected)",
             "critical SDC (n, 95 % CI)", "misprediction coverage (95 % CI)"
             + (", every rate" if r.get("rate") is not None else "")]
    if tol:
        head.append("rate tolerated at 1 pp / 1 % loss (× unprotected)")
    if vs_ref:
        head.append(f"× `{r['reference']}`'s tolerated rate, 1 pp below own fault-free; rate "
                    "tolerated 1 pp below its fault-free (× it)")
    head += ["cycles per inference (extra)", "area µm² (overhead)", "power mW (overhead)",
             "Fmax MHz", "energy µJ per inference (overhead)", "seeds (source; ours)"]
    lines += ["", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for p, x in rows.items():
        syn = x.get("synthesis") or {}
        ov = x["overheads"]
        cov = x.get("misprediction_coverage")
        cells = [p, f"{100 * x['fault_free_accuracy']:.2f} %", _ci(x["accuracy"])]
        if fresh:
            cells.append(_ci(x.get("accuracy_fresh_chips")))
        cells.append(f"{x['loss_pp']:.2f}" + (f" (×{x['loss_ratio']:.2f})"
                                               if x.get("loss_ratio") is not None else ""))
        cells.append(share_text(x["critical_sdc"]))
        cells.append("—" if not cov else f"{100 * cov['share']:.1f} % "
                     f"({100 * cov['ci95'][0]:.1f}–{100 * cov['ci95'][1]:.1f}), "
                     f"n={cov['faults']}")
        if tol:
            t = x.get("tolerated")
            cells.append("—" if not t else " / ".join(
                rate_text(t[k]["1"]) + _ratio(t[k]["1"].get("ratio"))
                for k in ("absolute", "relative")))
        if vs_ref:
            t = x.get("tolerated_vs_reference")
            own = (x.get("tolerated_ratio_vs_reference") or {}).get("absolute", {}).get("1")
            cells.append("—" if not t else ("open" if not own else _ratio(own).strip(" ()"))
                         + "; " + rate_text(t["absolute"]["1"])
                         + _ratio(t["absolute"]["1"].get("ratio")))
        cells.append(f"{x['cycles_per_inference']:,.1f} "
                     f"({x['extra_cycles_per_inference']:+,.1f})")
        cells.append(_num(syn.get("area_um2"), ",.0f") + _over(ov.get("area")))
        cells.append(_num(syn.get("power_mw"), ".1f") + _over(ov.get("power")))
        cells.append(_num(syn.get("fmax_mhz"), ".1f"))
        en = x.get("energy")
        cells.append("—" if not en else f"{en['per_inference_uj']:.4g}"
                     + _over(ov.get("energy")))
        cells.append(_seed_text(x))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Configurations (as synthesised: fault hooks left out): " + "; ".join(
        f"{p} `{x['config']}`" for p, x in rows.items()) + "."]
    lines += ["", "Not dominated (no other protection has higher accuracy under faults at lower "
                  "cost): " + "; ".join(f"{key}: {', '.join(v)}" for key, v in
                                        r["pareto"].items()) + "."]
    lines += ["", "Notes: shares are of faults (register campaigns) or trials (sweeps), with "
                  "their sample size and 95 % Wilson interval; `repaired` results (the "
                  "protection acted; output degraded, nothing got past it) are not critical "
                  "SDC. Cycles are the engine's count of the fault-free run (an LCU's or "
                  "voter's correction run after a layer is not counted). Energy = power × "
                  "cycles / f at the analysis clock; power at a stated default toggle rate "
                  "unless a workload was measured."]
    where = "campaign/MODEL" if r.get("models") else "campaign"
    lines += ["", "![pareto](pareto.png)", "",
              f"Every fault, protection and rate: `{where}/campaign.md`, "
              f"`{where}/trace.csv`."]
    return "\n".join(lines) + "\n"


def _relative(path: str) -> str:
    """``path`` from the working folder when it lies below it (the report is read there)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _ratio(x: dict | None) -> str:
    if not x:
        return ""
    rel = "" if x["relation"] == "=" else x["relation"]
    return f" ({rel}{x['ratio']:.2g}×)"
