"""``rtlgen compare`` and the campaign statistics it rests on (issue 25).

The tolerated-rate crossing and its bounds, Wilson intervals at the edges, fault-free trials at
rate 0, the ``repaired`` class against the cycle model, the pinned chip against the fast
fault model run by hand, the registry's protection kinds and combinations, ``compare`` end to
end (CLI and ``ftaccel.compare`` with a dict), its Pareto marking, and bad input.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

import ftaccel
from ftaccel.app.campaign import (
    CampaignError,
    build_context,
    load_spec,
    parse_spec,
    run_campaign,
)
from ftaccel.app.campaign_report import crossing, ratio_of, share
from ftaccel.app.cli import main
from ftaccel.app.compare import load_compare, pareto_front
from ftaccel.app.netcampaign import (
    WatchingEngine,
    margin_of,
    statistical_size,
    wilson,
    z_value,
)
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.array import cycle_count
from ftaccel.golden.fault_models import FastFaultEngine, pe_profile, profile_errors
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import CycleEngine, FunctionalEngine, LayerOptions, Product, run
from ftaccel.golden.output_stage import Requant


def _write(folder: Path, text: str, name: str = "spec.toml") -> Path:
    p = folder / name
    p.write_text(text)
    return p


def _trace(folder: Path) -> list[dict]:
    with (folder / "trace.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


# -- the rate tolerated at equal loss ------------------------------------------------------------

def _loglinear(r0, a0, r1, a1, level):
    """The crossing written independently: numpy's interpolation on log10(rate)."""
    return float(10 ** np.interp(level, [a1, a0], [math.log10(r1), math.log10(r0)]))


def test_crossing_between_two_swept_rates_is_log_linear():
    pts = [(1e-3, 0.95), (1e-2, 0.80), (1e-1, 0.30)]
    c = crossing(pts, 0.5)
    assert c["relation"] == "=" and c["rate"] == pytest.approx(_loglinear(1e-2, 0.80, 1e-1,
                                                                          0.30, 0.5))


def test_crossing_below_the_lowest_swept_rate_is_said_so():
    # already past the level at the lowest rate: below it, not at it
    assert crossing([(1e-3, 0.80), (1e-2, 0.50)], 0.9) == {"rate": 1e-3, "relation": "<"}
    # with the fault-free point: between 0 and the lowest non-zero rate (no log there)
    assert crossing([(0.0, 0.97), (1e-3, 0.83), (2e-3, 0.7)], 0.96) == {"rate": 1e-3,
                                                                        "relation": "<"}
    # the fault-free accuracy itself below the level: no rate is tolerated
    assert crossing([(0.0, 0.90), (1e-3, 0.80)], 0.95)["relation"] == "none"


def test_crossing_above_the_highest_swept_rate_and_flat_curves():
    assert crossing([(1e-3, 0.97), (1e-2, 0.96)], 0.9) == {"rate": 1e-2, "relation": ">"}
    assert crossing([(1e-3, 0.9), (1e-2, 0.9)], 0.8) == {"rate": 1e-2, "relation": ">"}  # flat
    assert crossing([(1e-3, 0.5), (1e-2, 0.5)], 0.8) == {"rate": 1e-3, "relation": "<"}
    assert crossing([], 0.8) is None


def test_crossing_exactly_at_a_point():
    assert crossing([(1e-3, 0.95), (1e-2, 0.90), (1e-1, 0.5)], 0.90) == {"rate": 1e-2,
                                                                        "relation": "="}
    assert crossing([(1e-3, 0.9), (1e-2, 0.9)], 0.9) == {"rate": 1e-3, "relation": "="}


def test_the_ratio_keeps_the_bounds_of_both_crossings():
    eq, lo, hi = ({"rate": r, "relation": rel} for r, rel in ((4e-3, "="), (1e-3, "<"),
                                                              (1e-2, ">")))
    assert ratio_of(eq, {"rate": 2e-3, "relation": "="}) == {"ratio": 2.0, "relation": "="}
    assert ratio_of(eq, lo) == {"ratio": 4.0, "relation": ">"}    # baseline below 1e-3
    assert ratio_of(hi, {"rate": 2e-3, "relation": "="}) == {"ratio": 5.0, "relation": ">"}
    assert ratio_of(lo, {"rate": 2e-3, "relation": "="}) == {"ratio": 0.5, "relation": "<"}
    assert ratio_of(lo, lo) is None and ratio_of(hi, hi) is None  # open either way
    assert ratio_of(eq, {"rate": 0.0, "relation": "none"}) is None


# -- intervals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 7, 40, 371])
def test_wilson_at_zero_and_at_n(n):
    z = z_value(0.95)
    lo, hi = wilson(0, n)
    assert lo == 0 and hi == pytest.approx(z * z / (n + z * z))  # the closed form at k = 0
    lo, hi = wilson(n, n)
    assert hi == 1 and lo == pytest.approx(n / (n + z * z))
    s = share(0, n)  # a class with no members: a count, a share and a real interval
    assert s["count"] == 0 and s["share"] == 0 and s["ci95"][1] > 0 and s["n"] == n
    assert share(0, 0)["share"] is None and share(0, 0)["ci95"] == [0.0, 1.0]


@pytest.mark.parametrize("population", [200, 10_752, 10**6])
def test_margin_inverts_eq_4_7(population):
    for e in (0.01, 0.05, 0.1):
        n = statistical_size(population, e, 0.95)
        assert margin_of(n, population, 0.95) <= e + 1e-12
        assert margin_of(max(1, n - 5), population, 0.95) > margin_of(n, population, 0.95)
    assert margin_of(population, population, 0.95) == 0 and margin_of(0, population, 0.95) == 1


# -- Pareto --------------------------------------------------------------------------------------

def test_pareto_front_of_a_hand_made_set():
    pts = {"a": (0.90, 100.0),   # cheapest
           "b": (0.95, 150.0),   # better and dearer: on the front
           "c": (0.93, 200.0),   # dominated by b
           "d": (0.95, 150.0),   # equal to b: neither dominates the other
           "e": (0.99, 400.0),   # best
           "f": (0.80, 100.0),   # dominated by a (same cost, lower accuracy)
           "g": (0.99, None)}    # no cost: takes no part
    assert sorted(pareto_front(pts)) == ["a", "b", "d", "e"]
    assert pareto_front({}) == [] and pareto_front({"x": (0.5, 1.0)}) == ["x"]


# -- the repaired class --------------------------------------------------------------------------

def _triple_product(cfg, fault):
    rng = np.random.default_rng(4)
    A = rng.integers(0, 20, (6, 8))
    col = rng.integers(-20, 20, (8, 1))
    B = np.hstack([col, col, col, rng.integers(-20, 20, (8, 1))])  # three copies, one other
    return Product(index=0, name="t", A=A, B=B, bias=np.zeros(4, np.int64),
                   requant=Requant(shift=4, relu=True), fault=fault,
                   units={"tmr_triples": np.array([[0, 1, 2]])})


def test_the_watching_engine_sees_a_vote_act_and_a_fault_get_past():
    print("seed 4")
    cfg = AcceleratorConfig(rows=8, cols=4)
    clean = FastFaultEngine(cfg).product(_triple_product(cfg, None)).q
    for col, acted, leaked in ((1, True, False), (3, False, True)):
        p = _triple_product(cfg, Fault(0, col, "weight", 6, "sa1"))
        eng = WatchingEngine(cfg, checked=False)
        q = eng.product(p).q
        assert np.array_equal(q, FastFaultEngine(cfg, checked=False).product(p).q)
        assert (eng.acted, eng.leaked) == (acted, leaked)
        # a fault in one copy is voted away; in the unprotected column it reaches the output
        assert np.array_equal(q[:, :3], clean[:, :3]) and \
            np.array_equal(q[:, 3], clean[:, 3]) == (col != 3)


REPAIR = """
[campaign]
seed = 2
chunk = 16
[network]
model = "digits-mlp"
[data]
images = 10
[accelerator]
rows = 4
cols = 4
[[protections]]
kind = "bypass"
[faults]
model = "register"
registers = ["weight", "psum"]
modes = ["sa0", "sa1"]
[sample]
method = "statistical"
margin = 0.15
confidence = 0.9
"""


def test_bypass_outcomes_are_repaired_only_when_nothing_gets_past(tmp_path):
    """Against the cycle model: the faulty PE bypassed, with and without its fault."""
    spec = _write(tmp_path, REPAIR)
    run_campaign(spec, tmp_path / "out", workers=0, progress=False)
    ctx = build_context(load_spec(spec))
    cfg = ctx.clean["bypass"].cfg
    seen = set()
    for r in _trace(tmp_path / "out"):
        if r["protection"] != "bypass":
            continue
        bmap = np.zeros((4, 4), bool)
        bmap[int(r["pe_row"]), int(r["pe_col"])] = True
        f = Fault(int(r["pe_row"]), int(r["pe_col"]), r["register"], int(r["bit"]), r["mode"])
        opts = {i: LayerOptions(fault=f) for i in ctx.products}
        got = run(ctx.model, ctx.x, CycleEngine(cfg.replace(fault_hooks=True)),
                  units={"bypass_map": bmap}, options=opts).logits
        pruned = run(ctx.model, ctx.x, FunctionalEngine(cfg), units={"bypass_map": bmap}).logits
        clean = ctx.clean["bypass"].logits
        assert r["acted"] == "1"
        if np.array_equal(got, clean):
            assert r["outcome"] in ("masked", "corrected")
        elif not np.array_equal(got, pruned):  # the fault got past the bypass
            assert r["outcome"] in ("critical", "sdc"), r
        if r["register"] == "weight":  # a bypassed PE's weight never reaches the output
            assert np.array_equal(got, pruned)
            assert r["outcome"] == ("repaired" if not np.array_equal(got, clean) else
                                    r["outcome"])
        seen.add(r["outcome"])
    assert "repaired" in seen and ({"critical", "sdc"} & seen)


# -- protections from the registry ---------------------------------------------------------------

BASE = {"network": {"model": "digits-mlp"}, "data": {"images": 8},
        "accelerator": {"rows": 4, "cols": 4},
        "faults": {"model": "register", "modes": ["sa1"], "registers": ["psum"]},
        "sample": {"method": "statistical", "margin": 0.3, "confidence": 0.8}}


def _spec(*protections, **sections) -> dict:
    return {**BASE, **sections, "protections": [{"kind": "none"}, *protections]}


def test_a_combination_takes_each_kinds_keys_and_changes():
    spec = parse_spec(_spec({"kind": "sanity+bypass", "checksum": "spatial", "threshold": 0.3}))
    q = spec["protections"][1]
    assert q["name"] == "sanity-spatial+bypass-0.3" and q["kind"] == "sanity+bypass"
    assert q["config"] == {"checksum": "spatial", "temporal_mode": "residue",
                           "temporal_batch_bits": 4, "bypass": True}
    assert q["threshold"] == 0.3


@pytest.mark.parametrize("protection,key,words", [
    ({"kind": "sanity+quantum"}, "protections[1].kind", "one of none"),
    ({"kind": "none+bypass"}, "protections[1].kind", "combines with nothing"),
    ({"kind": "lcu+tmr", "nvf_threshold": 5}, "protections[1].kind", "at most one"),
    ({"kind": "bypass+bypass"}, "protections[1].kind", "given twice"),
    ({"kind": "afd", "gamma": 3}, "protections[1].gamma", "invalid afd gamma = 3"),
    ({"kind": "bypass", "window": 3}, "protections[1].window", "kind 'median'"),
    ({"kind": "sanity", "gamma": 2}, "protections[1].gamma", "does not apply"),
    ({"kind": "has"}, "protections[1].permutation", "missing"),
    ({"kind": "tmr", "nvf_threshold": 5, "lcu_mode": "exact"}, "protections[1].lcu_mode",
     "does not apply"),
    ({"kind": "bypass", "nvf_images": 3}, "protections[1].nvf_images", "does not apply"),
])
def test_bad_protections_name_their_key(protection, key, words):
    with pytest.raises(CampaignError) as err:
        parse_spec(_spec(protection))
    assert str(err.value).startswith(f"spec key {key}") and words in str(err.value)


def test_run_campaign_takes_a_plain_dict_and_refuses_garbage_with_one_error(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    rep = run_campaign(_spec({"kind": "bypass"}), "out", workers=0, progress=False)
    assert set(rep["protections"]) == {"none", "bypass"}
    for bad in (42, None, ["x"], {"network": "digits-mlp"}, {"campaign": {"seed": "x"}},
                {**BASE, "protections": {"kind": "none"}}, {"version": 1, "network": {}}):
        with pytest.raises(CampaignError):
            run_campaign(bad, tmp_path / "o2", workers=0, progress=False)
    assert not (tmp_path / "o2").exists()


# -- the pinned chip -----------------------------------------------------------------------------

PINNED = """
[campaign]
seed = 6
chunk = 4
[network]
model = "digits-mlp"
[data]
images = 16
[accelerator]
rows = 4
cols = 4
[[protections]]
kind = "has"
permutation = "perm.json"
[faults]
model = "pe_profile"
mode = "flip-to-1"
profile = "chip.json"
chips = "{chips}"
[sample]
method = "sweep"
rates = [0.005, 0.01]
trials = 2
"""


def _chip_files(folder: Path) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(12)
    prof = pe_profile(4, 4, 0.01, rng)
    (folder / "chip.json").write_text(json.dumps({"profile": prof.tolist(), "fr_max": 0.01}))
    perms = {"fc1": rng.permutation(64).tolist(), "fc2": rng.permutation(32).tolist()}
    (folder / "perm.json").write_text(json.dumps(
        {"layers": [{"layer": k, "permutation": v} for k, v in perms.items()]}))
    return prof, perms


def test_a_pinned_chip_runs_every_trial_on_its_profile_and_fresh_chips_draw_theirs(tmp_path):
    """Each trial replayed by hand on the fast fault model: pinned (scaled) and fresh chips."""
    print("seed 6, profile seed 12")
    prof, perms = _chip_files(tmp_path)
    spec = _write(tmp_path, PINNED.format(chips="both"))
    rep = run_campaign(spec, tmp_path / "out", workers=0, progress=False)
    ctx = build_context(load_spec(spec))
    rows = _trace(tmp_path / "out")
    assert {r["chip"] for r in rows} == {"pinned", "fresh"} and len(rows) == 2 * 2 * 2 * 2
    idx = {ctx.model.layers[i].name: i for i in ctx.products}
    for r in rows:
        rng = np.random.default_rng(np.random.SeedSequence([6, int(r["fault_id"])]))
        rate = float(r["rate"])
        chip = prof * (rate / 0.01) if r["chip"] == "pinned" else pe_profile(4, 4, rate, rng)
        permuted = r["protection"] == "has"
        opts = {}
        for (i, M, K, N) in ctx.dims:
            errs = profile_errors(ctx.base, chip, M, K, N, "flip-to-1", rng)
            opts[i] = LayerOptions(units={"errors": errs}, permutation=np.asarray(
                perms[ctx.model.layers[i].name]) if permuted and ctx.model.layers[i].name
                in perms else None)
        res = run(ctx.model, ctx.x, FastFaultEngine(ctx.base), options=opts)
        assert float(r["accuracy"]) == pytest.approx(ctx.accuracy(res.logits)), r
    assert set(idx) >= set(perms)
    for p in ("none", "has"):
        assert set(rep["protections"][p]["by_chip"]) == {"pinned", "fresh"}
    md = (tmp_path / "out" / "campaign.md").read_text()
    assert "both the pinned chip and fresh chips" in md and "chip.json" in md
    assert "none (pinned)" in md and "has (fresh)" in md


def test_a_pinned_profile_is_checked(tmp_path):
    _chip_files(tmp_path)
    spec = PINNED.format(chips="pinned")
    (tmp_path / "chip.json").write_text(json.dumps({"profile": [[0.1] * 3] * 4}))
    with pytest.raises(CampaignError, match="faults.profile .*must be 4×4"):
        load_spec(_write(tmp_path, spec))
    with pytest.raises(CampaignError, match="faults.chips"):
        load_spec(_write(tmp_path, spec.replace('profile = "chip.json"\n', "")))


# -- compare end to end --------------------------------------------------------------------------

TINY = """
[campaign]
name = "tiny compare"
seed = 3
chunk = 8
[network]
model = "digits-mlp"
[data]
images = 10
[accelerator]
rows = 4
cols = 4
[[protections]]
kind = "none"
[[protections]]
kind = "sanity"
checksum = "both"
temporal_batch = 3
[[protections]]
kind = "sanity+bypass"
checksum = "spatial"
[faults]
model = "pe_profile"
mode = "flip-to-1"
[sample]
method = "sweep"
rates = [0.0, 0.01, 0.05]
trials = 2
[compare]
synth = "none"
rate = 0.01
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    spec = _write(tmp, TINY)
    assert main(["compare", str(spec), "-o", str(tmp / "out"), "--workers", "0"]) == 0
    return spec, tmp / "out"


def test_compare_end_to_end(tiny):
    spec, out = tiny
    for name in ("compare.json", "compare.md", "pareto.png", "campaign/campaign.json",
                 "campaign/trace.csv"):
        assert (out / name).is_file(), name
    rep = json.loads((out / "compare.json").read_text())
    camp = json.loads((out / "campaign" / "campaign.json").read_text())
    assert set(rep["protections"]) == {"none", "sanity-both-3", "sanity-spatial+bypass"}
    ctx = build_context(load_compare(spec)[0])
    assert rep["protections"]["none"]["loss_pp"] > 0  # the faults matter at this rate
    for p, row in rep["protections"].items():
        br = camp["protections"][p]["by_rate"]["0.01"]
        assert row["accuracy"] == [br["accuracy"], *br["ci95"]]
        assert row["critical_sdc"] == br["critical_sdc"]
        assert row["fault_free_accuracy"] == camp["fault_free"][p]["accuracy"]
        # cycles: golden.array.cycle_count of every product layer of the fault-free run
        cfg = AcceleratorConfig.from_dict(row["config_fields"])
        tb = 3 if p == "sanity-both-3" else None
        cycles = sum(cycle_count(cfg, M, K, N, tb) for (_i, M, K, N) in ctx.dims)
        assert row["cycles_per_inference"] == pytest.approx(cycles / 10)
        assert row["tolerated"]["absolute"]["1"]["text"]
    assert rep["protections"]["none"]["extra_cycles_per_inference"] == 0
    assert rep["protections"]["sanity-both-3"]["extra_cycles_per_inference"] > 0
    assert rep["pareto"]["cycles"] and "area_um2" not in rep["pareto"]
    assert rep["provenance"]["command"].startswith("rtlgen compare ")
    md = (out / "compare.md").read_text()
    assert md.count("\n| ") == 1 + 1 + 3 - 1 and "rate 0.01" in md  # one table: head + 3 rows


def test_compare_takes_a_plain_dict_and_resumes(tiny, tmp_path, monkeypatch):
    import tomllib

    spec, out = tiny
    raw = tomllib.loads(spec.read_text())
    monkeypatch.chdir(tmp_path)
    rep = ftaccel.compare(raw, "o", workers=0, progress=False, log=lambda *a, **k: None)
    ref = json.loads((out / "compare.json").read_text())
    for p, row in ref["protections"].items():
        assert rep["protections"][p]["accuracy"] == row["accuracy"]
        assert rep["protections"][p]["critical_sdc"] == row["critical_sdc"]
    again = ftaccel.compare(raw, "o", workers=0, progress=False, log=lambda *a, **k: None)
    assert again["campaign_id"] == rep["campaign_id"]


@pytest.mark.parametrize("edit,words", [
    (("[compare]", "[compare]\nbogus = 1"), "compare.bogus"),
    (('synth = "none"', 'synth = "gates"'), "compare.synth"),
    (("rate = 0.01", "rate = 0.02"), "compare.rate"),
    (("rate = 0.01", "rate = 0"), "compare.rate"),
    (('kind = "sanity+bypass"', 'kind = "sanity+ecc"'), "protections[2].kind"),
])
def test_bad_compare_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, edit, words):
    spec = _write(tmp_path, TINY.replace(*edit))
    assert main(["compare", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "out").exists()
    with pytest.raises(CampaignError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_compare(spec)


def test_compare_refuses_a_foreign_folder(tmp_path, capsys):
    spec = _write(tmp_path, TINY)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    assert main(["compare", str(spec), "-o", str(tmp_path / "out")]) == 2
    assert "not a compare folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine.txt"]


# -- the demo's headline -------------------------------------------------------------------------

def test_the_demo_headline_is_the_compare_report(tiny):
    from ftaccel.app.demo import compare_protections

    spec, out = tiny
    said = []
    got = compare_protections(spec, out, say=said.append)  # the folder resumes: no new trials
    rep = json.loads((out / "compare.json").read_text())
    assert said[0].startswith("[6/6] 3 protections of digits-mlp") and "rate 0.01" in said[0]
    for p, row in rep["protections"].items():
        line = next(s for s in said if s.strip().startswith(p + " "))
        m, lo, hi = row["accuracy"]
        assert f"{m:.1%} ({lo:.1%}–{hi:.1%})" in line
        assert f"{row['critical_sdc']['count']}/{row['critical_sdc']['n']} " in line
        assert got["protections"][p]["accuracy"] == row["accuracy"]
    # synth = "none": no area or energy, so no front is printed (cycles alone are no headline)
    assert not any(s.strip().startswith("not dominated") for s in said)
    assert got["pareto"] == rep["pareto"]


def test_a_bad_demo_compare_spec_is_refused_before_the_demo(tmp_path, capsys):
    spec = _write(tmp_path, TINY.replace('synth = "none"', 'synth = "gates"'))
    assert main(["demo", "--rows", "2", "--cols", "2", "-o", str(tmp_path / "d"), "--compare",
                 str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].count("--compare") == 1 and "compare.synth" in err[0], err
    assert not (tmp_path / "d").exists()


def test_an_unreachable_scheduler_writes_nothing(tmp_path, capsys):
    spec = _write(tmp_path, TINY)
    assert main(["compare", str(spec), "-o", str(tmp_path / "out"), "--scheduler",
                 "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scheduler" in err[0] and "cannot connect" in err[0], err
    assert not (tmp_path / "out").exists()
