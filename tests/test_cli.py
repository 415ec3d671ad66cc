"""The rtlgen command line: outputs, machine-readable results, run-time options, exit codes.

Bad input is covered case by case in ``test_cli_errors.py`` and by the fuzz test in
``test_cli_fuzz.py``; here the commands run for real (RTL simulations on a 2×2 or 3×3 array),
and a few error cases go through a subprocess for the real exit code and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ftaccel.app.cli import EXIT_ALARM, main


def rtlgen(*args, cwd=None, env=None):
    """Run the CLI in a subprocess, as a user would (checks there is no traceback)."""
    proc = subprocess.run([sys.executable, "-m", "ftaccel.app.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_generate_writes_verilog_and_config_deterministically(tmp_path):
    p = rtlgen("generate", "--rows", 3, "--cols", 2, "--dataflow", "os", "-o", tmp_path / "a")
    assert p.returncode == 0, p.stderr
    rtlgen("generate", "--config", tmp_path / "a" / "config.json", "-o", tmp_path / "b")
    va = (tmp_path / "a" / "accelerator.v").read_text()
    assert va == (tmp_path / "b" / "accelerator.v").read_text()
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["rows"] == 3 and cfg["dataflow"] == "os"
    assert "module accelerator(" in va and "module pe_os_" in va
    assert sorted(os.listdir(tmp_path / "a")) == ["accelerator.il", "accelerator.v",
                                                  "config.json"]


@pytest.mark.parametrize("args,code,message", [
    (["generate", "--rows", "0", "-o", "out"], 2, "invalid rows = 0"),
    (["generate", "--dataflow", "rs", "-o", "out"], 2, "invalid dataflow = 'rs'"),
    (["generate", "--config", "missing.json", "-o", "out"], 2, "config file"),
    (["generate", "-o", ""], 2, "empty path"),
    (["matmul", "--a", "/dev/null", "--b", "B.npy", "-o", "C.npy"], 2, "not a regular file"),
])
def test_errors_in_a_real_process_are_one_line_without_traceback(tmp_path, args, code,
                                                                  message):
    p = rtlgen(*args, cwd=tmp_path)
    assert p.returncode == code
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_unusable_yosys_in_a_real_process_is_exit_3(tmp_path):
    p = rtlgen("generate", "--rows", 2, "--cols", 2, "-o", "out", cwd=tmp_path,
               env={"YOSYS": "/bin/false"})
    assert p.returncode == 3 and len(p.stderr.strip().splitlines()) == 1
    assert "Yosys is unusable" in p.stderr and os.listdir(tmp_path) == []


def test_help_is_exit_0(capsys):
    assert main(["matmul", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--json", "--fail-on-alarm", "--checksum-threshold", "--temporal-threshold",
                   "--bias-error", "--lcu-mask", "--afd-off", "--median-off", "--tmr-triples"):
        assert option in out


@pytest.fixture
def operands(tmp_path, rng, monkeypatch):
    monkeypatch.chdir(tmp_path)
    A = rng.integers(-128, 128, (5, 7))
    B = rng.integers(-128, 128, (7, 4))
    np.save("A.npy", A)
    np.save("B.npy", B)
    return A, B


def test_matmul_check_with_fault(operands, capsys):
    A, B = operands
    rc = main(["matmul", "--rows", "2", "--cols", "3", "--dataflow", "is", "--a", "A.npy",
               "--b", "B.npy", "-o", "C.npy", "--check", "--fault", "1,1,psum,4,sa1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    C = np.load("C.npy")
    assert C.dtype == np.int64 and C.shape == (5, 4)
    changed = int(np.sum(C != A @ B))
    assert 0 < changed < C.size  # the stuck bit corrupts some outputs, not all
    assert f"{changed} of 20 outputs differ from the fault-free product" in out
    assert "check passed" in out


def test_matmul_check_mismatch_keeps_and_names_the_run_folder(operands, capsys, monkeypatch,
                                                              tmp_path):
    """A failed ``--check`` prints the kept run folder (with its log); a passed one keeps none."""
    import ftaccel.tb.accelerator as tba

    monkeypatch.setenv("FTACCEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FTACCEL_KEEP_RUNS", raising=False)
    monkeypatch.delenv("WAVES", raising=False)
    args = ["matmul", "--rows", "2", "--cols", "2", "--a", "A.npy", "--b", "B.npy",
            "-o", "C.npy", "--check"]
    assert main(args) == 0
    assert "check passed" in capsys.readouterr().out
    runs = tmp_path / "cache" / "sim" / "runs"
    assert not any(runs.iterdir())  # removed after the passed check

    simulate = tba.simulate

    def wrong(*a, **kw):  # the golden model disagrees with the RTL in one value
        golden = simulate(*a, **kw)
        golden["acc_out"] = golden["acc_out"] + (np.arange(golden["acc_out"].size) == 0
                                                 ).reshape(golden["acc_out"].shape)
        return golden

    monkeypatch.setattr(tba, "simulate", wrong)
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "CHECK FAILED" in out and "log: None" not in out
    folder = Path(out.split("run folder kept: ")[1].split(" (log: ")[0])
    log = Path(out.split(" (log: ")[1].split(")")[0])
    assert folder.is_dir() and folder.parent == runs
    assert log.is_file() and log.parent == folder


def test_accumulator_one_bit_wider_than_refused_holds_the_product(tmp_path, monkeypatch):
    # The case (all −128, --acc-width 16) is refused (test_cli_errors); 17 bits hold it.
    monkeypatch.chdir(tmp_path)
    N = np.full((2, 2), -128)
    np.save("N.npy", N)
    assert main(["matmul", "--rows", "2", "--cols", "2", "--acc-width", "17", "--a", "N.npy",
                 "--b", "N.npy", "-o", "C.npy"]) == 0
    assert np.array_equal(np.load("C.npy"), N @ N)  # 32,768 everywhere


def test_json_result_maps_alarms_to_rows_and_columns(operands, capsys):
    A, B = operands
    args = ["matmul", "--rows", "3", "--cols", "3", "--checksum", "both", "--temporal-mode",
            "exact", "--temporal-batch", "2", "--a", "A.npy", "--b", "B.npy", "-o", "C.npy",
            "--q", "Q.npy", "--json", "r.json", "--fault", "2,1,psum,3,sa1", "--fail-on-alarm",
            "--check"]
    assert main(args) == EXIT_ALARM
    out = capsys.readouterr().out
    r = json.loads(Path("r.json").read_text())
    C = np.load("C.npy")
    corrupted = {tuple(p) for p in np.argwhere(C != A @ B).tolist()}
    assert corrupted and r["exit_code"] == EXIT_ALARM and "exit 4" in out
    assert r["golden_check"]["passed"] and r["golden_check"]["acc"]["count"] == 0
    assert r["cycles"] > 0 and r["shape"] == {"M": 5, "K": 7, "N": 4}
    assert r["outputs_changed_by_injection"] == len(corrupted)
    cs = r["checksums"]
    assert cs["spatial"]["alarm"] and cs["temporal"]["alarm"]
    assert {m for m, _ in corrupted} <= set(cs["spatial"]["rows_flagged"])
    assert {n for _, n in corrupted} <= set(cs["temporal"]["columns_flagged"])
    assert corrupted <= {tuple(p) for p in cs["located"]}
    assert r["outputs"] == {"C": "C.npy", "Q": "Q.npy", "json": "r.json"}
    assert np.load("Q.npy").shape == (5, 4)


def test_thresholds_bias_error_and_clean_alarm_exit(operands, capsys):
    A, B = operands
    base = ["matmul", "--rows", "2", "--cols", "2", "--checksum", "both", "--a", "A.npy",
            "--b", "B.npy", "-o", "C.npy", "--json", "r.json", "--check", "--fail-on-alarm"]
    # A bias-word error (Table 6.1's bias row): the RTL agrees with the golden model, the
    # spatial checksum flags every row, the result differs from the clean product.
    assert main(base + ["--bias-error", "1,20"]) == EXIT_ALARM
    r = json.loads(Path("r.json").read_text())
    assert r["golden_check"]["passed"] and r["options"]["bias_error"] == {
        "column": 1, "bit": 20, "row": None}
    assert r["checksums"]["spatial"]["rows_flagged"] == list(range(5))
    assert r["outputs_changed_by_injection"] == 5  # column 1 of every row
    assert np.array_equal(np.load("C.npy")[:, 1] - (A @ B)[:, 1], np.full(5, 1 << 20))
    # No fault, thresholds given: no alarm, exit 0, the thresholds recorded.
    capsys.readouterr()
    assert main(base + ["--checksum-threshold", "3", "--temporal-threshold", "5"]) == 0
    r = json.loads(Path("r.json").read_text())
    assert not r["checksums"]["alarm"] and r["exit_code"] == 0
    assert (r["options"]["checksum_threshold"], r["options"]["temporal_threshold"]) == (3, 5)


def test_lcu_mask_and_corrected_read_back(operands, capsys):
    A, B = operands
    mask = 0x3F
    assert main(["matmul", "--rows", "2", "--cols", "2", "--lcu", "--lcu-mask", hex(mask),
                 "--a", "A.npy", "--b", "B.npy", "-o", "C.npy", "--relu", "--shift", "8",
                 "--q", "Q.npy", "--lcu-pairs", "1:3", "--corrected", "K.npy", "--check"]) == 0
    q, k = np.load("Q.npy"), np.load("K.npy")
    # Every row's pair (1, 3) is replaced by q1 & q3 & mask (8-bit two's complement), the
    # other words read back unchanged.
    anded = ((q[:, 1] & 0xFF) & (q[:, 3] & 0xFF) & mask).astype(np.int64)
    anded = np.where(anded >= 128, anded - 256, anded)
    assert np.array_equal(k[:, 1], anded) and np.array_equal(k[:, 3], anded)
    assert np.array_equal(k[:, [0, 2]], q[:, [0, 2]])
    assert "check passed" in capsys.readouterr().out


def test_verify_prints_seed_and_summary_and_writes_json(tmp_path, capsys):
    rc = main(["verify", "--rows", "2", "--cols", "2", "--count", "2", "--seed", "7",
               "--json", str(tmp_path / "v.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "seed 7" in out and "2 passed, 0 failed" in out
    r = json.loads((tmp_path / "v.json").read_text())
    assert r["seed"] == 7 and r["passed"] == 2 and len(r["cases"]) == 2
    assert all(c["pass"] and c["numpy_mismatches"] == 0 for c in r["cases"])


def test_missing_simulator_is_a_clear_error(operands, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    rc = main(["matmul", "--rows", "2", "--cols", "2", "--a", "A.npy", "--b", "B.npy", "-o",
               "C.npy", "--sim", "icarus"])
    assert rc == 3
    assert "Icarus Verilog is not installed" in capsys.readouterr().err
    assert not os.path.exists("C.npy")
