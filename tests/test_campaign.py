"""Tests of rtlgen campaign.

Spec validation, outcomes against the cycle model, durability and resume (SIGKILL), workers,
reports.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ftaccel.app.campaign import (
    TRACE_COLUMNS,
    CampaignError,
    build_context,
    load_spec,
    run_campaign,
)
from ftaccel.app.cli import main
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import CycleEngine, FunctionalEngine, LayerOptions, run

SMALL = """
[campaign]
name = "small"
seed = {seed}
chunk = 3

[network]
model = "digits-mlp"

[data]
images = 12

[accelerator]
rows = 4
cols = 4
dataflow = "ws"

[[protections]]
kind = "none"

[[protections]]
kind = "sanity"
checksum = "both"
temporal_batch = 3

[[protections]]
kind = "bypass"

[[protections]]
kind = "afd"
gates = 2
mode = "clip"
gamma = 8
layers = ["fc2"]

[faults]
model = "register"
modes = ["sa0", "sa1", "flip"]

[sample]
method = "statistical"
margin = 0.25
confidence = 0.9
"""


def _write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _trace(folder: Path) -> list[dict]:
    with (folder / "trace.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small campaign run in this process (workers = 0)."""
    tmp = tmp_path_factory.mktemp("campaign")
    spec = _write(tmp, SMALL.format(seed=7))
    report = run_campaign(spec, tmp / "out", workers=0, progress=False)
    return spec, tmp / "out", report


def test_reports_are_complete(small_run):
    spec, out, report = small_run
    for name in ("campaign.json", "campaign.md", "trace.csv", "trace.parquet",
                 "outcomes_by_site.png", "spec.json"):
        assert (out / name).is_file(), name
    rows = _trace(out)
    assert tuple(rows[0]) == TRACE_COLUMNS
    ids = sorted({int(r["fault_id"]) for r in rows})
    assert ids == list(range(report["items"]))
    prots = [q["name"] for q in report["spec"]["protections"]]
    # every fault exactly once under every protection
    assert sorted((int(r["fault_id"]), r["protection"]) for r in rows) == \
        sorted((i, p) for i in ids for p in prots)
    data = json.loads((out / "campaign.json").read_text())
    assert data["plan"]["method"] == "statistical" and data["plan"]["margin"] == 0.25
    for p in prots:
        assert sum(data["protections"][p]["outcomes"].values()) == report["items"]
    assert "±25 % at 90 % confidence" in (out / "campaign.md").read_text()
    import pyarrow.parquet as pq

    assert pq.read_table(out / "trace.parquet").num_rows == len(rows)


def _outcome(clean_logits, logits, alarms, base_changed):
    """The outcome rule written out again, for the independent check."""
    if alarms:
        return "detected"
    if (np.argmax(logits, 1) != np.argmax(clean_logits, 1)).any():
        return "critical"
    if (logits != clean_logits).any():
        return "sdc"
    return "corrected" if base_changed else "masked"


def test_outcomes_equal_the_cycle_model(small_run):
    """Every traced fault re-run on the cycle model from layer 0 gives the same outcome.

    The fault is injected at the cycle the trace gives for that protection.
    """
    spec_path, out, report = small_run
    spec = load_spec(spec_path)
    ctx = build_context(spec)
    rows = _trace(out)
    by_fault: dict = {}
    for r in rows:
        by_fault.setdefault(int(r["fault_id"]), {})[r["protection"]] = r
    checked = set()
    for fid in sorted(by_fault)[:3]:
        base_changed = None
        for prot in sorted(ctx.protections, key=lambda p: p.kind != "none"):
            r = by_fault[fid][prot.name]
            c = ctx.clean[prot.name]
            stuck = r["mode"] != "flip"
            f = Fault(int(r["pe_row"]), int(r["pe_col"]), r["register"], int(r["bit"]),
                      r["mode"], 0 if stuck else int(r["cycle"]))
            layers = [i for i in ctx.products if stuck or ctx.model.layers[i].name == r["layer"]]
            opts = {i: LayerOptions(fault=f, units=ctx.layer_units[prot.name].get(i, {}))
                    for i in layers}
            for i, u in ctx.layer_units[prot.name].items():
                opts.setdefault(i, LayerOptions(units=u))
            units = dict(c.units)
            if prot.kind == "bypass" and stuck:
                units["bypass_map"] = np.zeros((4, 4), bool)
                units["bypass_map"][f.row, f.col] = True
            res = run(ctx.model, ctx.x, CycleEngine(c.cfg.replace(fault_hooks=True)),
                      units=units, options=opts)
            alarms = sum(sum(st.alarms.values()) for st in res.layers)
            got = _outcome(c.logits, res.logits, alarms, base_changed)
            assert got == r["outcome"], (fid, prot.name, r)
            if prot.kind == "none":
                base_changed = bool((res.logits != c.logits).any())
            checked.add(r["outcome"])
    assert len(checked) >= 2  # the sample is not all of one class


def test_same_spec_resumes_and_another_is_refused(small_run, tmp_path):
    spec, out, report = small_run
    before = (out / "trace.csv").read_text()
    again = run_campaign(spec, out, workers=0, progress=False)
    assert again["timing"]["chunks_run"] == 0
    assert (out / "trace.csv").read_text() == before
    other = _write(tmp_path, SMALL.format(seed=8))
    with pytest.raises(CampaignError, match="different campaign: the spec differs in "
                                            "campaign.seed"):
        run_campaign(other, out, workers=0, progress=False)


def test_results_do_not_depend_on_the_workers(small_run, tmp_path):
    """Two Dask worker processes give the same trace as this process, byte for byte.

    One is a LocalCluster of the runner's own, the other is reached by its scheduler address.
    """
    from distributed import LocalCluster

    spec, out, _ = small_run
    run_campaign(spec, tmp_path / "dask", workers=2, progress=False)
    assert (tmp_path / "dask" / "trace.csv").read_text() == (out / "trace.csv").read_text()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        rep = run_campaign(spec, tmp_path / "sched", scheduler=cluster.scheduler_address,
                           progress=False)
    assert rep["timing"]["workers"] == 2
    assert (tmp_path / "sched" / "trace.csv").read_text() == (out / "trace.csv").read_text()


def test_a_killed_campaign_resumes_without_loss_or_duplicates(small_run, tmp_path):
    spec, out, report = small_run
    folder = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ftaccel.app.cli", "campaign", str(spec), "-o",
           str(folder), "--workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((folder / "chunks").glob("chunk-*.json")
                                                  if (folder / "chunks").exists() else [])) < 2:
            time.sleep(0.05)
        assert proc.poll() is None, "the campaign finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(list((folder / "chunks").glob("chunk-*.json")))
    assert 2 <= done < report["chunks"]
    assert not (folder / "campaign.json").exists()
    assert main(["campaign", str(spec), "-o", str(folder), "--workers", "0"]) == 0
    assert (folder / "trace.csv").read_text() == (out / "trace.csv").read_text()


SWEEP = """
[campaign]
seed = 3
chunk = 2
[network]
model = "digits-mlp"
[data]
images = 30
[accelerator]
rows = 4
cols = 4
[[protections]]
kind = "bypass"
[faults]
model = "{model}"
{extra}
[sample]
method = "sweep"
rates = [0.0, {rate}]
trials = 2
"""


@pytest.mark.parametrize("model,extra,rate", [
    ("bit_errors", 'targets = ["weights", "activations"]', 0.02),
    ("pe_profile", 'mode = "flip-to-1"\nbits = [8, 20]', 0.01),
    ("pe_bypass", "", 0.3),
])
def test_sweeps(tmp_path, model, extra, rate):
    spec = _write(tmp_path, SWEEP.format(model=model, extra=extra, rate=rate))
    report = run_campaign(spec, tmp_path / "out", workers=0, progress=False)
    rows = _trace(tmp_path / "out")
    assert (tmp_path / "out" / "accuracy_vs_rate.png").is_file()
    zero = [r for r in rows if float(r["rate"]) == 0.0]
    # rate 0 injects nothing: fault-free runs, equal to the clean run, never counted as faults
    assert zero and all(r["outcome"] == "fault_free" and r["logits_changed"] == "0"
                        for r in zero)
    hit = [r for r in rows if float(r["rate"]) == rate]
    assert any(r["outcome"] != "masked" for r in hit)
    e = report["protections"]["bypass"]["by_rate"][repr(rate)]
    assert e["trials"] == 2 and e["ci95"][0] <= e["accuracy"] <= e["ci95"][1]
    for name, prot in report["protections"].items():
        assert prot["faults"] == len([r for r in hit if r["protection"] == name])
        assert prot["fault_free_trials"] == 2 and sum(prot["outcomes"].values()) == 2
        assert report["protections"][name]["by_rate"]["0.0"]["fault_free"]
    if model == "pe_bypass":  # every hit bypasses PEs: the protection acted
        assert all(r["acted"] == "1" for r in hit if r["protection"] == "bypass")
        assert all(r["outcome"] in ("repaired", "masked") for r in hit
                   if r["protection"] == "bypass")
    if model == "pe_bypass":  # independently: the seeded map, the functional engine
        ctx = build_context(load_spec(spec))
        for r in hit:
            rng = np.random.default_rng(np.random.SeedSequence([3, int(r["fault_id"])]))
            bmap = rng.random((4, 4)) < rate
            cfg = ctx.clean["bypass"].cfg
            res = run(ctx.model, ctx.x, FunctionalEngine(cfg), units={"bypass_map": bmap})
            assert float(r["accuracy"]) == pytest.approx(ctx.accuracy(res.logits))
            assert float(r["bypass_rate"]) == pytest.approx(bmap.mean())


@pytest.mark.parametrize("edit,key", [
    (("[faults]", "[faults]\nbogus = 1"), "faults.bogus"),
    (("kind = \"bypass\"", "kind = \"quantum\""), "protections[2].kind"),
    (("kind = \"bypass\"", "kind = \"lcu\""), "protections[2].nvf_threshold"),
    (("kind = \"bypass\"", "kind = \"tmr\"\nnvf_threshold = 120"),
     "protections[2].nvf_threshold"),
    (("kind = \"bypass\"", "kind = \"tmr\"\nprotected = \"nowhere\""),
     "protections[2].protected"),
    (("kind = \"bypass\"", "kind = \"tmr\"\nnvf_threshold = 5\nlcu_mode = \"exact\""),
     "protections[2].lcu_mode"),
    (("model = \"digits-mlp\"", "model = \"digits-mlp\"\npermutation = \"nope.json\""),
     "network.permutation"),
    (("rows = 4", "rows = 0"), "accelerator.rows"),
    (("margin = 0.25", "margin = 2"), "sample.margin"),
    (("method = \"statistical\"", "method = \"sweep\""), "sample.method"),
    (("gamma = 8", "gamma = 3"), "protections[3].gamma"),
    (("layers = [\"fc2\"]", "layers = [\"nope\"]"), "protections[3].layers"),
    (("[sample]", "[samples]"), "samples"),
    (("model = \"register\"", "model = \"cosmic\""), "faults.model"),
])
def test_invalid_spec_exits_2_naming_the_key(tmp_path, capsys, edit, key):
    text = SMALL.format(seed=1).replace(*edit)
    spec = _write(tmp_path, text)
    assert main(["campaign", str(spec), "-o", str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err
    assert not (tmp_path / "out").exists()


def test_not_toml_and_foreign_folder_exit_2(tmp_path, capsys):
    bad = _write(tmp_path, "[campaign\nseed=1")
    assert main(["campaign", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "not TOML" in capsys.readouterr().err
    spec = _write(tmp_path, SMALL.format(seed=1))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    assert main(["campaign", str(spec), "-o", str(tmp_path / "full"), "--workers", "0"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "x.txt").read_text() == "mine"


def test_example_spec_is_valid():
    spec = load_spec(Path(__file__).parent.parent / "examples" / "campaign-digits.toml")
    assert spec["faults"]["model"] == "register" and spec["sample"]["margin"] == 0.05


@pytest.mark.slow
def test_verify_rtl_agrees(tmp_path, capsys):
    """--verify-rtl re-runs sampled faults on the RTL: every run agrees (exit 0)."""
    text = SMALL.format(seed=11).replace(
        '[[protections]]\nkind = "bypass"\n', '').replace(
        'margin = 0.25', 'margin = 0.4') + "\n[verify]\nimages = 2\n"
    spec = _write(tmp_path, text)
    assert main(["campaign", str(spec), "-o", str(tmp_path / "out"), "--workers", "0",
                 "--verify-rtl", "1"]) == 0
    v = json.loads((tmp_path / "out" / "campaign.json").read_text())["verify_rtl"]
    assert v["checked"] == 3 and v["agree"] == 3


PERM_SWEEP = """
[campaign]
seed = 5
chunk = 3
[network]
model = "digits-mlp"
{perm}
[data]
images = 20
[accelerator]
rows = 4
cols = 4
[faults]
model = "pe_profile"
mode = "bitflip"
[sample]
method = "sweep"
rates = [0.0, 0.01]
trials = 3
"""


@pytest.fixture(scope="module")
def schedule(tmp_path_factory):
    """A permutation written by ``rtlgen schedule`` (tiny GA) for a 4×4 array."""
    out = tmp_path_factory.mktemp("sched") / "sched"
    assert main(["schedule", "--model", "digits-mlp", "--rows", "4", "--cols", "4",
                 "--fr-max", "0.01", "--generations", "2", "--runs", "1", "--population", "4",
                 "--images", "40", "--test-images", "20", "-o", str(out)]) == 0
    return out / "permutation.json"


def test_campaign_with_a_permutation(tmp_path, schedule):
    """Campaign --permutation, checked three ways.

    No error: the unpermuted network; with a profile: the fast model run with the permutation
    directly; the spec field gives the same; the report records the permutation.
    """
    from ftaccel.golden.fault_models import FastFaultEngine, pe_profile, profile_errors

    print("seed 5")
    spec = _write(tmp_path, PERM_SWEEP.format(perm=""))
    assert main(["campaign", str(spec), "-o", str(tmp_path / "plain"), "--workers", "0"]) == 0
    assert main(["campaign", str(spec), "-o", str(tmp_path / "perm"), "--workers", "0",
                 "--permutation", str(schedule)]) == 0
    plain, perm = _trace(tmp_path / "plain"), _trace(tmp_path / "perm")
    rep = json.loads((tmp_path / "perm" / "campaign.json").read_text())
    doc = json.loads(schedule.read_text())
    assert rep["permutation"]["layers"] == {e["layer"]: e["permutation"] for e in doc["layers"]}
    assert rep["fault_free"]["none"]["accuracy"] == json.loads(
        (tmp_path / "plain" / "campaign.json").read_text())["fault_free"]["none"]["accuracy"]
    for a, b in zip(plain, perm, strict=True):
        if float(a["rate"]) == 0.0:  # no error: the permuted network is the plain one
            assert a["accuracy"] == b["accuracy"] and b["outcome"] == "fault_free"
    # with errors: the fast fault model with the permutation, drawn as the campaign draws
    ctx = build_context(load_spec(spec))
    opts_perm = {i: np.asarray(e["permutation"]) for i, e in enumerate(doc["layers"])}
    hit = [r for r in perm if float(r["rate"]) > 0]
    assert hit and any(r["outcome"] != "masked" for r in hit)
    for r in hit:
        rng = np.random.default_rng(np.random.SeedSequence([5, int(r["fault_id"])]))
        cfg = ctx.base
        prof = pe_profile(4, 4, float(r["rate"]), rng)
        opts = {i: LayerOptions(permutation=opts_perm[i], units={"errors": profile_errors(
            cfg, prof, M, K, N, "bitflip", rng)}) for (i, M, K, N) in ctx.dims}
        res = run(ctx.model, ctx.x, FastFaultEngine(cfg), options=opts)
        assert float(r["accuracy"]) == pytest.approx(ctx.accuracy(res.logits))
    # the spec's own field (a path relative to the spec) gives the same trace
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "p.json").write_text(schedule.read_text())
    spec2 = _write(tmp_path / "s", PERM_SWEEP.format(perm='permutation = "p.json"'))
    assert main(["campaign", str(spec2), "-o", str(tmp_path / "perm2"), "--workers", "0"]) == 0
    assert [r["accuracy"] for r in _trace(tmp_path / "perm2")] == [r["accuracy"] for r in perm]


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["layers"][0]["permutation"].__setitem__(0, 1), "not a permutation"),
    (lambda d: d["layers"][0].__setitem__("layer", "fc9"), "fc9"),
    (lambda d: d.pop("layers"), "layers"),
])
def test_bad_permutation_exits_2(tmp_path, capsys, schedule, edit, needle):
    doc = json.loads(schedule.read_text())
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    spec = _write(tmp_path, PERM_SWEEP.format(perm=""))
    assert main(["campaign", str(spec), "-o", str(tmp_path / "out"), "--workers", "0",
                 "--permutation", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "--permutation" in err[0], err
    assert not (tmp_path / "out").exists()
    spec = _write(tmp_path, PERM_SWEEP.format(perm='permutation = "bad.json"'))
    assert main(["campaign", str(spec), "-o", str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "network.permutation" in err[0], err
    assert not (tmp_path / "out").exists()


CRITICAL = """
[campaign]
seed = 9
chunk = 4
[network]
model = "digits-mlp"
[data]
images = 6
[accelerator]
rows = 4
cols = 4
[[protections]]
kind = "none"
[[protections]]
kind = "lcu"
nvf_threshold = 5
[[protections]]
kind = "tmr"
nvf_threshold = 5
[[protections]]
kind = "lcu"
name = "lcu-file"
protected = "prot"
[faults]
model = "register"
registers = ["psum", "act"]
[sample]
method = "statistical"
margin = 0.3
confidence = 0.8
"""


def test_lcu_and_tmr_protections_in_a_campaign_equal_the_cycle_model(tmp_path):
    """LCU / TMR protections in a campaign, beside the others.

    From an NVF threshold or a protected model from rtlgen protect; the fast path against the
    cycle model (the TMR voter around it) on a sample of the trace.
    """
    from ftaccel.app.protect import VotingEngine

    print("seed 9")
    assert main(["protect", "--model", "digits-mlp", "--rows", "4", "--cols", "4",
                 "--method", "lcu", "--nvf-threshold", "5", "-o",
                 str(tmp_path / "prot")]) == 0
    spec = _write(tmp_path, CRITICAL)
    report = run_campaign(spec, tmp_path / "out", workers=0, progress=False)
    ff = report["fault_free"]
    for name in ("lcu-nvf5", "tmr-nvf5", "lcu-file"):
        assert name in report["protections"]
        assert ff[name]["protection"]["protected_neurons"] > 0
    assert ff["tmr-nvf5"]["hidden_neurons"] > ff["lcu-nvf5"]["hidden_neurons"] > \
        ff["none"]["hidden_neurons"]
    md = (tmp_path / "out" / "campaign.md").read_text()
    assert "lcu-nvf5" in md and "critical neurons" in md
    ctx = build_context(load_spec(spec))
    rows = _trace(tmp_path / "out")
    sample = [r for r in rows if r["protection"] != "none"]
    rng = np.random.default_rng(9)
    changed = 0
    for k in rng.choice(len(sample), size=min(8, len(sample)), replace=False):
        r = sample[int(k)]
        prot = next(p for p in ctx.protections if p.name == r["protection"])
        c = ctx.clean[prot.name]
        stuck = r["mode"] != "flip"
        f = Fault(int(r["pe_row"]), int(r["pe_col"]), r["register"], int(r["bit"]),
                  r["mode"], 0 if stuck else int(r["cycle"]))
        layers = [i for i in ctx.products if stuck or ctx.model.layers[i].name == r["layer"]]
        opts = ctx.options(prot, {i: LayerOptions(fault=f) for i in layers})
        fast = ctx.run(prot, options={i: LayerOptions(fault=f) for i in layers}).logits
        eng = CycleEngine(c.cfg.replace(fault_hooks=True))
        if prot.kind == "tmr":
            eng = VotingEngine(eng)
        cyc = run(ctx.model_of(prot), ctx.x, eng, units=c.units, options=opts).logits
        assert np.array_equal(fast, cyc), r
        assert float(r["accuracy"]) == pytest.approx(ctx.accuracy(cyc))
        changed += not np.array_equal(cyc, c.logits)
    assert changed >= 1


def test_shadow_register_sites_exist_only_in_the_double_buffered_pe(tmp_path, capsys):
    """Default register sites follow the configuration; asking for a missing one exits 2."""
    text = SMALL.format(seed=3)
    spec = load_spec(_write(tmp_path, text))
    assert "shadow" in spec["faults"]["registers"]  # the default WS PE is double-buffered
    single = text.replace('dataflow = "ws"', 'dataflow = "ws"\ndouble_buffer = false')
    assert "shadow" not in load_spec(_write(tmp_path, single, "s.toml"))["faults"]["registers"]
    bad = single.replace('model = "register"', 'model = "register"\nregisters = ["shadow"]')
    out = tmp_path / "out"
    assert main(["campaign", str(_write(tmp_path, bad, "b.toml")), "-o", str(out),
                 "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "faults.registers" in err[0], err
    assert not out.exists()
