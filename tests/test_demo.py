"""``rtlgen demo`` and ``rtlgen synth`` on a small array, and the demo's choices per config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ftaccel.app.cli import main
from ftaccel.app.demo import demo_faults, demo_shapes, operand_limits
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.campaign import classify
from ftaccel.tb.product import RunOptions, check_accumulator, prepare


@pytest.mark.parametrize("cfg", [
    AcceleratorConfig(rows=2, cols=2, fault_hooks=True, bypass=True, afd=True, checksum="both"),
    AcceleratorConfig(rows=3, cols=5, dataflow="is", fault_hooks=True, a_width=4, w_width=6),
    AcceleratorConfig(rows=4, cols=2, dataflow="os", fault_hooks=True, a_width=16, w_width=16),
    AcceleratorConfig(rows=1, cols=1, fault_hooks=True, acc_width=16, lcu=True),
])
def test_demo_choices_follow_the_configuration(cfg):
    for M, K, N in demo_shapes(cfg):
        a, w = operand_limits(cfg, K)
        assert a <= 1 << (cfg.a_width - 1) and w <= 1 << (cfg.w_width - 1)
        # the extremes of that range fit the accumulator, so no demo product is refused
        check_accumulator(cfg, np.full((M, K), -a), np.full((K, N), -w))
    M, K, N = cfg.rows, cfg.rows, cfg.cols
    faults = demo_faults(cfg, M, K, N)
    assert len(faults) == (3 if cfg.dataflow == "os" else 4)
    for fault in faults:  # inside the array, its registers and the run: prepare accepts it
        prepare(cfg, np.ones((M, K), np.int64), np.ones((K, N), np.int64),
                RunOptions(fault=fault))


def test_operand_limits_narrow_only_when_needed():
    assert operand_limits(AcceleratorConfig(), 8) == (128, 128)
    assert operand_limits(AcceleratorConfig(a_width=4, w_width=6), 8) == (8, 32)
    a, w = operand_limits(AcceleratorConfig(acc_width=16), 8)  # 8·128·128 > 2**15
    assert 8 * a * w <= (1 << 15) - 1 and (a, w) != (128, 128)


@pytest.mark.slow
@pytest.mark.synth
def test_demo_on_a_small_array(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["demo", "--rows", "2", "--cols", "2", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert len(lines) <= 40, text  # a summary, not the area report
    assert str(out / "demo.json") in text and str(out / "synth" / "area.md") in text
    assert "## " not in text and "| module |" not in text  # no Markdown tables on the terminal
    report = json.loads((out / "demo.json").read_text())
    assert report["passed"] and report["config"]["rows"] == 2 and report["config"]["cols"] == 2
    cfg = AcceleratorConfig.from_dict(report["config"])
    assert cfg.checksum == "both" and cfg.bypass and cfg.afd  # the demo's defaults, 2×2
    assert all(c["pass"] and c["rtl_equals_golden"] for c in report["verify"])
    want = demo_faults(cfg, 2, 2, 2)
    assert [f["fault"] for f in report["faults"]] == [vars(f) for f in want]  # only real runs
    for f in report["faults"]:
        assert f["rtl_equals_golden"] and 0 <= f["outputs_changed"] <= f["outputs"] == 4
        assert f["outcome"] == classify(f["outputs_changed"], f["checksums"]["alarm"])
        assert f"{f['outputs_changed']}/4 outputs changed" in text
    assert report["bypass"]["bypassed_equals_pruned"]
    assert report["bypass"]["outputs_changed"] > 0  # the stuck sign bit always matters
    for name in ("area.json", "area.md", "area.png"):
        assert (out / "synth" / name).is_file()
    assert "seed" in text and "% of" in text  # headline areas against the seeds


@pytest.mark.synth
def test_synth_command_on_a_small_array(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", "--rows", "2", "--cols", "2", "--checksum", "spatial", "-o",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert len(text.splitlines()) <= 15 and str(out / "area.md") in text
    report = json.loads((out / "area.json").read_text())
    assert report["design"]["config"]["checksum"] == "spatial"
    assert (out / "rtl" / "accelerator.v").is_file()
    total = report["totals"][report["primary_metric"]]
    assert f"{total:,.0f}" in text  # the headline is the report's own figure
