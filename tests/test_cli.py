"""The rtlgen command line: outputs, checks, and one clear line for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ftaccel.rtl_gen.cli import main


def rtlgen(*args, cwd=None):
    """Run the CLI in a subprocess, as a user would (checks there is no traceback)."""
    proc = subprocess.run([sys.executable, "-m", "ftaccel.rtl_gen.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
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


@pytest.mark.parametrize("args,message", [
    (["--rows", "0"], "invalid rows = 0"),
    (["--dataflow", "rs"], "invalid dataflow = 'rs'"),
    (["--a-width", "40"], "invalid a_width = 40"),
    (["--acc-width", "9"], "invalid acc_width = 9"),
    (["--config", "missing.json"], "config file"),
])
def test_invalid_configuration_is_one_line_exit_2(tmp_path, args, message):
    p = rtlgen("generate", *args, "-o", tmp_path / "out", cwd=tmp_path)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.fixture
def operands(tmp_path, rng):
    A = rng.integers(-128, 128, (5, 7))
    B = rng.integers(-128, 128, (7, 4))
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "B.npy", B)
    np.save(tmp_path / "B6.npy", B[:6])
    np.save(tmp_path / "big.npy", A * 3)
    np.save(tmp_path / "float.npy", A + 0.5)
    np.save(tmp_path / "vec.npy", A[0])
    (tmp_path / "text.npy").write_text("not numpy")
    return A, B


@pytest.mark.parametrize("a,b,extra,message", [
    ("A.npy", "B6.npy", [], "shapes do not chain"),
    ("big.npy", "B.npy", [], "must fit 8-bit signed"),
    ("float.npy", "B.npy", [], "must be integers"),
    ("vec.npy", "B.npy", [], "expected a matrix"),
    ("text.npy", "B.npy", [], "not a .npy array"),
    ("nope.npy", "B.npy", [], "no such file"),
    ("A.npy", "B.npy", ["--fault", "9,0,psum,1,sa0"], "outside the 2×2 array"),
    ("A.npy", "B.npy", ["--fault", "0,0,weight,8,sa0"], "outside the 8-bit weight register"),
    ("A.npy", "B.npy", ["--fault", "0,0,acc,1,sa0"], "fault register"),
    ("A.npy", "B.npy", ["--shift", "99"], "--shift 99"),
    ("A.npy", "B.npy", ["--max-k", "4"], "exceeds max_k"),
])
def test_bad_operands_are_one_line_exit_2(tmp_path, operands, a, b, extra, message):
    p = rtlgen("matmul", "--rows", 2, "--cols", 2, "--a", a, "--b", b, "-o", "C.npy", *extra,
               cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr
    assert not (tmp_path / "C.npy").exists()


def test_matmul_check_with_fault(tmp_path, operands):
    A, B = operands
    rc = main(["matmul", "--rows", "2", "--cols", "3", "--dataflow", "is", "--a",
               str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"), "-o",
               str(tmp_path / "C.npy"), "--check", "--fault", "1,1,psum,4,sa1"])
    assert rc == 0
    C = np.load(tmp_path / "C.npy")
    assert C.dtype == np.int64 and C.shape == (5, 4)
    assert not np.array_equal(C, A @ B)  # the stuck bit corrupts some outputs...
    assert np.sum(C != A @ B) < C.size   # ...but not all of them


def test_verify_prints_seed_and_summary(capsys):
    rc = main(["verify", "--rows", "2", "--cols", "2", "--count", "2", "--seed", "7"])
    out = capsys.readouterr().out
    assert rc == 0 and "seed 7" in out and "2 passed, 0 failed" in out


def test_missing_simulator_is_a_clear_error(tmp_path, operands, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    rc = main(["matmul", "--rows", "2", "--cols", "2", "--a", str(tmp_path / "A.npy"), "--b",
               str(tmp_path / "B.npy"), "-o", str(tmp_path / "C.npy"), "--sim", "icarus"])
    assert rc == 3
    assert not (tmp_path / "C.npy").exists()
