"""``--verify-rtl``: a campaign's sampled faults replayed on the RTL equal the fast fault model.

Stuck-at and transient register faults and per-PE profile trials (the error instances on the
fault hooks, one per cycle) on digits-mlp, 4×4 WS, two images, Icarus; the same on Verilator
(marker ``verilator``).  Every check counts the compiled simulator models: one per
configuration, whatever the faults and protections.  A replay that leaves the errors off the
hooks must disagree (the comparison can fail).
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.app.campaign import (
    Plan,
    build_context,
    make_plan,
    parse_spec,
    population,
    verify_on_rtl,
)
from ftaccel.tb import replay
from ftaccel.tb.runner import SimulatorNotFound

BASE = {
    "campaign": {"name": "verify", "seed": 7, "chunk": 4},
    "network": {"model": "digits-mlp"},
    "data": {"images": 6},
    "accelerator": {"rows": 4, "cols": 4, "dataflow": "ws"},
    "protections": [{"kind": "none"}, {"kind": "sanity", "checksum": "both",
                                       "temporal_batch": 3}],
    "verify": {"images": 2},
}
REGISTER = {**BASE, "faults": {"model": "register", "modes": ["sa0", "sa1", "flip"]},
            "sample": {"method": "statistical", "margin": 0.4}}
PROFILE = {**BASE, "faults": {"model": "pe_profile", "mode": "bitflip"},
           "sample": {"method": "sweep", "rates": [0.0, 0.03], "trials": 2}}


def _quiet(*_a, **_k):
    pass


def _models(cache, sim: str) -> list:
    """The compiled simulator models in a cache folder."""
    return sorted((cache / "sim" / "models" / sim).glob("*/"))


def _register_plan(spec, ctx, seed: int) -> Plan:
    """The campaign's plan with one stuck-at fault of a high partial-sum bit added.

    A sample of 4×4 WS digits-mlp holds almost only flips (2,944 stuck-at faults among 5 M),
    so one stuck-at fault is put in: a stuck high bit reaches the logits, so the comparison
    sees real corruption.
    """
    plan = make_plan(spec, ctx)
    pop = population(spec, ctx)
    rng = np.random.default_rng(seed)
    stuck = [i for i in range(pop.n_stuck) if pop.describe(i)["register"] == "psum"
             and pop.describe(i)["bit"] >= 16]
    items = np.sort(np.append(np.asarray(plan.items), stuck[int(rng.integers(len(stuck)))]))
    return Plan(items, plan.chunk, plan.population, plan.sample)


def _check_register(tmp_path, monkeypatch, sim: str, protections: list) -> dict:
    seed = 7 + len(protections)
    print(f"seed {seed}")
    monkeypatch.setenv("FTACCEL_CACHE_DIR", str(tmp_path / "cache"))
    spec = parse_spec({**REGISTER, "protections": protections})
    ctx = build_context(spec)
    plan = _register_plan(spec, ctx, seed)
    v = verify_on_rtl(spec, plan, 2, sim=sim, context=ctx, log=_quiet)
    n = len(protections)
    assert v["simulator"] == sim and v["simulator_reason"] == f"--sim {sim}"
    assert v["by_kind"] == {"stuck-at": {"checked": n, "agree": n},
                            "transient": {"checked": n, "agree": n}}, v["cases"]
    products = [ctx.model.layers[i].name for i in ctx.products]
    for c in v["cases"]:
        want = products if c["kind"] == "stuck-at" else [ctx.model.layers[c["fault"]["layer"]].name]
        assert c["rtl_layers"] == want
    assert any(c["logits_changed"] for c in v["cases"] if c["kind"] == "stuck-at")
    # one compiled model per configuration, shared by both faults and kinds
    assert len(v["build_seconds"]) == n == len(_models(tmp_path / "cache", sim))
    return v


def test_stuck_at_and_transient_faults_agree_on_icarus(tmp_path, monkeypatch):
    _check_register(tmp_path, monkeypatch, "icarus", REGISTER["protections"])


def test_profile_trials_agree_on_icarus(tmp_path, monkeypatch):
    """A profile trial's error instances, one per cycle on the hooks: the fast model's logits."""
    monkeypatch.setenv("FTACCEL_CACHE_DIR", str(tmp_path / "cache"))
    spec = parse_spec(PROFILE)
    ctx = build_context(spec)
    v = verify_on_rtl(spec, make_plan(spec, ctx), 1, sim="icarus", context=ctx, log=_quiet)
    assert v["by_kind"] == {"profile": {"checked": 2, "agree": 2}}, v["cases"]
    assert all(c["trial"]["rate"] == 0.03 for c in v["cases"])  # a rate-0 trial is not picked
    assert all(c["errors_played"] > 20 for c in v["cases"])
    assert any(c["logits_changed"] for c in v["cases"])
    assert len(_models(tmp_path / "cache", "icarus")) == 2


def test_a_replay_without_the_errors_disagrees(tmp_path, monkeypatch):
    """The hooks left idle (errors not written into the program): the check must fail."""
    spec = parse_spec({**PROFILE, "protections": [{"kind": "none"}]})
    ctx = build_context(spec)
    monkeypatch.setattr(replay, "hook_program", lambda cfg, program, faults: program)
    v = verify_on_rtl(spec, make_plan(spec, ctx), 1, sim="icarus", context=ctx, log=_quiet)
    (case,) = v["cases"]
    assert case["logits_changed"] and not case["agree"] and v["agree"] == 0


def test_other_fault_models_are_reported_not_replayed():
    spec = parse_spec({**BASE, "faults": {"model": "bit_errors"},
                       "sample": {"method": "sweep", "rates": [0.01], "trials": 1}})
    v = verify_on_rtl(spec, None, 3)
    assert v["checked"] == 0 and v["simulator"] is None and "bit_errors" in v["note"]


def test_choose_sim(monkeypatch):
    """--sim, then $SIM, then Verilator when Icarus' estimate is longer than the builds needed."""
    from ftaccel.config import AcceleratorConfig

    cfgs = [AcceleratorConfig(rows=8, cols=8, fault_hooks=True),
            AcceleratorConfig(rows=8, cols=8, fault_hooks=True, bypass=True)]
    assert replay.choose_sim("verilator", "icarus", pe_cycles=1, configs=cfgs) == \
        ("verilator", "--sim verilator")
    assert replay.choose_sim(None, " Icarus ", pe_cycles=10**12, configs=cfgs) == \
        ("icarus", "$SIM icarus")
    with pytest.raises(SimulatorNotFound, match="unknown simulator 'vcs' \\(\\$SIM\\)"):
        replay.choose_sim(None, "vcs", pe_cycles=1, configs=cfgs)
    have = {"icarus": True, "verilator": True}
    cached = set()
    monkeypatch.setattr(replay, "simulator_available", lambda s: have[s])
    monkeypatch.setattr(replay, "verilator_cached", lambda c: c.name() in cached)
    build = replay.verilator_build_seconds(64) * 2
    small = int(build * replay.ICARUS_PE_CYCLES_PER_S) - 1
    assert replay.choose_sim(None, None, pe_cycles=small, configs=cfgs)[0] == "icarus"
    sim, why = replay.choose_sim(None, "", pe_cycles=small + 2, configs=cfgs)
    assert sim == "verilator" and "2 of 2 configuration(s) not cached" in why
    cached.update(c.name() for c in cfgs)  # built by an earlier campaign: no build to pay
    sim, why = replay.choose_sim(None, None, pe_cycles=1000, configs=cfgs)
    assert sim == "verilator" and "0 of 2" in why
    have["verilator"] = False
    assert replay.choose_sim(None, None, pe_cycles=10**12, configs=cfgs) == \
        ("icarus", "auto: Verilator is not installed")
    have.update(icarus=False, verilator=True)
    assert replay.choose_sim(None, None, pe_cycles=1, configs=cfgs) == \
        ("verilator", "auto: Icarus is not installed")


def test_the_model_cache_is_looked_up_without_building(tmp_path):
    """RTLEngine.built(): False before start() builds the model, True after; nothing built."""
    from ftaccel.config import AcceleratorConfig
    from ftaccel.tb.accelerator import RTLEngine

    eng = RTLEngine(AcceleratorConfig(rows=2, cols=2, fault_hooks=True), sim="icarus",
                    cache_dir=tmp_path)
    assert not eng.built() and not list((tmp_path / "models").glob("icarus/*/"))
    eng.start()
    assert eng.built() and len(list((tmp_path / "models").glob("icarus/*/"))) == 1


@pytest.mark.verilator
def test_stuck_at_and_transient_faults_agree_on_verilator(tmp_path, monkeypatch):
    """The same on Verilator: one build for both faults (kinds) of the one configuration."""
    _check_register(tmp_path, monkeypatch, "verilator", [{"kind": "none"}])


def test_a_bad_or_missing_simulator_stops_before_the_campaign(tmp_path, monkeypatch, capsys):
    """--sim / $SIM checked before anything is written: exit 2 unknown, 3 not installed."""
    from ftaccel.app.campaign import CampaignError, run_campaign
    from ftaccel.app.cli import main
    from ftaccel.tb import runner

    spec = tmp_path / "spec.toml"
    spec.write_text('[network]\nmodel = "digits-mlp"\n[data]\nimages = 4\n'
                    '[accelerator]\nrows = 4\ncols = 4\n[sample]\nmargin = 0.4\n')
    out = tmp_path / "out"
    with pytest.raises(CampaignError, match=r"--sim 'ghdl': choose one of icarus, verilator"):
        run_campaign(str(spec), out, workers=0, verify_rtl=1, sim="ghdl")
    monkeypatch.setenv("SIM", "ghdl")
    assert main(["campaign", str(spec), "-o", str(out), "--workers", "0",
                 "--verify-rtl", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "$SIM 'ghdl': choose one of icarus, verilator" in err[0], err
    monkeypatch.setattr(runner, "_verilator_root", lambda: None)
    assert main(["campaign", str(spec), "-o", str(out), "--workers", "0",
                 "--verify-rtl", "1", "--sim", "verilator"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Verilator is not installed" in err[0], err
    assert not out.exists()
