"""``rtlgen compare`` on several networks (issue 28 item 4): a row per (model, protection).

A trained and an untrained network in one report: the rows equal the separate campaigns of
each model run by hand (same spec, same seeds), the reference's own row has the same tolerated
rate against itself as in its campaign, the Markdown table has a row per pair, and bad
``[[models]]`` entries are one line naming their key, with nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from ftaccel.app.campaign import CampaignError, parse_spec, run_campaign
from ftaccel.app.cli import main
from ftaccel.app.compare import load_compare
from ftaccel.golden.network import Model

SPEC = """
[campaign]
name = "two-models"
seed = 5
chunk = 4
[[models]]
name = "base"
model = "digits-mlp"
[[models]]
name = "other"
model = "other.npz"
calib = "digits-train"
[data]
images = 24
[accelerator]
rows = 4
cols = 4
[[protections]]
kind = "none"
[[protections]]
kind = "median"
window = 3
[faults]
model = "bit_errors"
targets = ["weights"]
[sample]
method = "sweep"
rates = [0.0, 1e-5, 1e-4, 1e-3, 0.05]
trials = 2
[compare]
synth = "none"
rate = 0.05
"""


def _other_model(path: Path, seed: int) -> None:
    """digits-mlp (float) with noise on its first layer's weights (a 'retrained' copy)."""
    with resources.files("ftaccel.app").joinpath("models", "digits-mlp.npz").open("rb") as fh:
        m = Model.load(fh)
    rng = np.random.default_rng(seed)
    first = m.layers[0]
    w = first.weights + rng.normal(0, 0.2 * np.std(first.weights), first.weights.shape)
    m = dataclasses.replace(m, layers=(dataclasses.replace(first, weights=w), *m.layers[1:]))
    path.write_bytes(m.to_bytes())


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    seed = 20261207
    print(f"seed {seed}")
    tmp = tmp_path_factory.mktemp("compare-models")
    _other_model(tmp / "other.npz", seed)
    spec = tmp / "spec.toml"
    spec.write_text(SPEC)
    assert main(["compare", str(spec), "-o", str(tmp / "out"), "--workers", "0"]) == 0
    return tmp, json.loads((tmp / "out" / "compare.json").read_text())


def test_a_row_per_model_and_protection_equal_to_separate_campaigns(two):
    tmp, rep = two
    assert list(rep["protections"]) == ["base/none", "base/median-3", "other/none",
                                        "other/median-3"]
    raw = tomllib.loads(SPEC)
    raw.pop("compare")
    for entry in raw.pop("models"):
        one = {**raw, "network": {k: entry[k] for k in ("model", "calib") if k in entry}}
        camp = run_campaign(parse_spec(one, base=tmp), tmp / f"alone-{entry['name']}",
                            workers=0, progress=False, log=lambda *a, **k: None)
        for p in ("none", "median-3"):
            row = rep["protections"][f"{entry['name']}/{p}"]
            br = camp["protections"][p]["by_rate"]["0.05"]
            assert row["model"] == entry["name"] and row["protection"] == p
            assert row["accuracy"] == [br["accuracy"], *br["ci95"]]
            assert row["critical_sdc"] == br["critical_sdc"]
            assert row["fault_free_accuracy"] == camp["fault_free"][p]["accuracy"]
            own = camp["fault_free"]["none"]["accuracy"]
            assert row["loss_pp"] == pytest.approx(100 * (own - br["accuracy"]))
    assert rep["protections"]["base/none"]["loss_pp"] > 0  # the faults matter at this rate
    # the two networks differ, so the comparison has something to show
    assert rep["models"]["base"]["fault_free_accuracy"] != \
        rep["models"]["other"]["fault_free_accuracy"] or \
        rep["protections"]["base/none"]["accuracy"] != rep["protections"]["other/none"]["accuracy"]


def test_equal_loss_is_against_the_first_models_unprotected_network(two):
    _, rep = two
    rows = rep["protections"]
    ref = rep["models"]["base"]["fault_free_accuracy"]
    assert rep["reference"] == "base/none"
    for row in rows.values():
        assert row["loss_pp_vs_reference"] == pytest.approx(100 * (ref - row["accuracy"][0]))
    # the reference against itself: the same crossing as in its own campaign, ratio 1
    mine, own = rows["base/none"]["tolerated_vs_reference"], rows["base/none"]["tolerated"]
    for kind in ("absolute", "relative"):
        assert {k: mine[kind]["1"][k] for k in ("rate", "relation")} == \
            {k: own[kind]["1"][k] for k in ("rate", "relation")}
    # Fig. 8.14's ratio: each row's own tolerated rate over the reference's own
    base_own = rows["base/none"]["tolerated"]["absolute"]["1"]
    assert rows["base/none"]["tolerated_ratio_vs_reference"]["absolute"]["1"] == \
        {"ratio": 1.0, "relation": "="}
    for row in rows.values():
        own = row["tolerated"]["absolute"]["1"]
        got_ratio = row["tolerated_ratio_vs_reference"]["absolute"]["1"]
        if own["relation"] == base_own["relation"] == "=":
            assert got_ratio == {"ratio": pytest.approx(own["rate"] / base_own["rate"]),
                                 "relation": "="}
    # the other model's crossing: where its mean-accuracy curve meets ref − 1 pp, found here
    tmp = two[0]
    camp = json.loads((tmp / "out" / "campaign" / "other" / "campaign.json").read_text())
    pts = sorted([(0.0, camp["fault_free"]["none"]["accuracy"])] + [
        (float(r), v["accuracy"]) for r, v in camp["protections"]["none"]["by_rate"].items()
        if float(r) > 0])
    level = ref - 0.01
    got = rows["other/none"]["tolerated_vs_reference"]["absolute"]["1"]
    first = next((k for k, (_r, a) in enumerate(pts) if a < level), None)
    if first is None:
        assert got["relation"] == ">" and got["rate"] == pts[-1][0]
    elif first == 0:
        assert got["relation"] == "none"
    elif first == 1:
        assert got["relation"] == "<" and got["rate"] == pts[1][0]
    else:
        assert got["relation"] == "=" and pts[first - 1][0] <= got["rate"] <= pts[first][0]


def test_the_markdown_has_a_row_per_pair(two):
    tmp, _ = two
    md = (tmp / "out" / "compare.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + 4  # the head and four rows
    assert table[0].startswith("| model / protection |")
    assert "`base/none`'s tolerated rate" in table[0]
    for name in ("base/none", "base/median-3", "other/none", "other/median-3"):
        assert any(ln.startswith(f"| {name} |") for ln in table[1:]), name
    assert (tmp / "out" / "campaign" / "base" / "campaign.json").is_file()


@pytest.mark.parametrize("edit,words", [
    (('name = "other"', 'name = "base"'), "models[1].name"),
    (('name = "other"', 'name = "a/b"'), "models[1].name"),
    (('model = "other.npz"', 'model = 3'), "models[1].model"),
    (('model = "other.npz"', 'model = "other.npz"\nweights = 1'), "models[1].weights"),
    (('calib = "digits-train"', 'calib = 7'), "models[1].calib"),
    (("[data]", '[network]\nmodel = "digits-mlp"\n[data]'), "network.model"),
])
def test_bad_models_entries_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, edit,
                                                                  words):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace(*edit, 1))
    assert main(["compare", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "out").exists()
    with pytest.raises(CampaignError):
        load_compare(spec)
