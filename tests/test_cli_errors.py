"""Every bad input of issue 12 gets one line on stderr, exit 2 or 3, and nothing is written.

Driven through ``main([...])`` in-process (fast: every case fails before any simulation or
synthesis); ``test_cli.py`` checks a few through a subprocess for the real exit code.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import numpy as np
import pytest

from ftaccel.app.cli import main


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, listing):
    """``run(*args, code=2)``: run the CLI in ``tmp_path``.

    Assert the exit code, exactly one stderr line without a traceback, and that the folder is
    unchanged; return stderr.
    """
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(12)
    np.save(tmp_path / "A.npy", rng.integers(-128, 128, (5, 7)))
    np.save(tmp_path / "B.npy", rng.integers(-128, 128, (7, 4)))
    np.save(tmp_path / "N.npy", np.full((2, 2), -128))
    (tmp_path / "file.txt").write_text("a file")
    capsys.readouterr()

    def run(*args, code=2):
        before = listing(tmp_path)
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        lines = err.splitlines()
        assert rc == code, out + err
        assert len(lines) == 1 and lines[0].startswith("rtlgen: error: "), err
        assert "Traceback" not in err
        assert listing(tmp_path) == before, "a failed command changed the folder"
        return lines[0]
    return run


MM = ["matmul", "--rows", "2", "--cols", "2", "--a", "A.npy", "--b", "B.npy"]


def test_narrow_explicit_accumulator_is_refused_without_check(cli):
    err = cli("matmul", "--rows", 2, "--cols", 2, "--acc-width", 16, "--a", "N.npy", "--b",
              "N.npy", "-o", "C.npy")
    assert "accumulator width = 16" in err and "32,768" in err and "17 bits" in err


def test_narrow_derived_accumulator_is_refused(cli):
    err = cli("matmul", "--rows", 2, "--cols", 2, "--max-k", 1, "--a", "N.npy", "--b",
              "N.npy", "-o", "C.npy", "--check")
    assert "accumulator width = 16" in err and "max_k or acc_width" in err


@pytest.mark.parametrize("make,message", [
    (lambda p: (p / "x.npy").write_bytes(b""), "is empty"),
    (lambda p: np.save(p / "x.npy", np.zeros((0, 3), np.int64)), "at least one element"),
    (lambda p: (np.savez(p / "x.npy", a=np.ones(2)), os.replace(p / "x.npy.npz", p / "x.npy")),
     ".npz archive"),
    (lambda p: np.save(p / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
     "not a .npy array"),
    (lambda p: (p / "x.npy").write_text("not numpy"), "not a .npy array"),
    (lambda p: (p / "x.npy").mkdir(), "is a folder"),
    (lambda p: os.mkfifo(p / "x.npy"), "not a regular file"),
    (lambda p: np.save(p / "x.npy", np.ones((5, 7)) + 0.5), "integers"),
    (lambda p: np.save(p / "x.npy", np.ones((5, 7), complex)), "integer array"),
    (lambda p: np.save(p / "x.npy", np.full((5, 7), 300)), "8-bit signed"),
    (lambda p: np.save(p / "x.npy", np.ones(7, np.int64)), "a matrix"),
    (lambda p: np.save(p / "x.npy", np.ones((5, 6), np.int64)), "shapes do not chain"),
    (lambda p: None, "no such file"),
])
def test_bad_operand_files(cli, tmp_path, make, message):
    make(tmp_path)
    err = cli("matmul", "--rows", 2, "--cols", 2, "--a", "x.npy", "--b", "B.npy", "-o", "C.npy")
    assert message in err


def test_device_as_operand(cli):
    assert "not a regular file" in cli(*MM[:-2], "--b", "/dev/null", "-o", "C.npy")
    assert "not a regular file" in cli(*MM[:-4], "--a", "/dev/zero", "--b", "B.npy", "-o",
                                       "C.npy")


@pytest.mark.parametrize("fault,message", [
    ("0,0,psum,1,flip,1000000000000000000000000000000", "never fires"),
    ("0,0,psum,1,flip,500", "this run lasts"),
    ("", "expected ROW,COL,REG,BIT,MODE"),
    ("9,0,psum,1,sa0", "a PE of the 2×2 array"),
    ("0,0,weight,8,sa0", "8-bit weight register"),
    ("0,0,acc,1,sa0", "fault register"),
    ("0,0,psum,1,melt", "fault mode"),
    ("-1,0,psum,1,sa0", "non-negative"),
    ("a,b,c,d,e", "must be integers"),
])
def test_bad_faults(cli, fault, message):
    assert message in cli(*MM, "-o", "C.npy", f"--fault={fault}")


@pytest.mark.parametrize("target,message", [
    ("", "empty path"),
    ("/dev/full", "not a regular file"),
    ("/dev/null", "not a regular file"),
    (".", "a folder"),
    ("file.txt/C.npy", "not a folder"),
])
def test_bad_output_targets(cli, target, message):
    assert message in cli(*MM, "-o", target)
    if target.startswith("/dev/"):
        assert stat.S_ISCHR(os.lstat(target).st_mode)  # still the device


def test_existing_folder_as_output_leaves_nothing(cli, tmp_path):
    (tmp_path / "out").mkdir()
    assert "a folder" in cli(*MM, "-o", "out")  # no out.tmp beside it (listing unchanged)


def test_fifo_and_symlink_as_output(cli, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link.npy").symlink_to(tmp_path / "file.txt")
    assert "not a regular file" in cli(*MM, "-o", "pipe")
    assert "symbolic link" in cli(*MM, "-o", "link.npy")


@pytest.mark.parametrize("extra,message", [
    (["--q", "file.txt/Q.npy"], "--q"),
    (["--json", "/dev/null"], "--json"),
    (["--json", "C.npy"], "name the same file"),
    (["--corrected", "K.npy"], "--corrected needs a configuration with --lcu or --tmr"),
])
def test_every_output_is_checked_before_any_work(cli, extra, message):
    assert message in cli(*MM, "-o", "C.npy", *extra)


def test_lcu_batch_larger_than_the_buffer(cli):
    err = cli(*MM, "--lcu", "--lcu-depth", 4, "-o", "C.npy")
    assert "lcu_depth = 4" in err and "10 output-buffer rows" in err


def test_checksum_with_os_bypass_names_the_unit_and_the_dataflow(cli):
    """The one unit combination a dataflow still refuses (issue 29): exit 2, one line."""
    err = cli(*MM, "--dataflow", "os", "--checksum", "both", "--bypass", "-o", "C.npy")
    assert "invalid checksum = 'both'" in err and "bypass on dataflow 'os'" in err


def test_bypass_map_with_minus_one_is_a_value_error_not_a_shape_error(cli, tmp_path):
    np.save(tmp_path / "map.npy", np.array([[0, -1], [0, 0]]))
    err = cli(*MM, "--bypass", "--bypass-map", "map.npy", "-o", "C.npy")
    assert "bypass map value = -1" in err and "shape" not in err
    np.save(tmp_path / "map.npy", np.zeros((3, 2), np.int64))
    assert "bypass map shape = (3, 2)" in cli(*MM, "--bypass", "--bypass-map", "map.npy", "-o",
                                              "C.npy")


@pytest.mark.parametrize("extra,message", [
    (["--checksum-threshold", "1"], "'spatial' or 'both'"),
    (["--checksum", "spatial", "--checksum-threshold", "-1"], "checksum threshold = -1"),
    (["--temporal-batch", "3"], "'temporal' or 'both'"),
    (["--checksum", "temporal", "--temporal-batch", "0"], "temporal batch = 0"),
    (["--checksum", "temporal", "--temporal-threshold", "256"], "temporal threshold = 256"),
    (["--bias-error", "0,1"], "unless a checksum is built"),
    (["--checksum", "both", "--bias-error", "0"], "COL,BIT"),
    (["--checksum", "both", "--bias-error", "9,1"], "bias error column = 9"),
    (["--split-cols", "1"], "invalid lcu = False"),
    (["--lcu", "--split-cols", "1,x"], "not a list of column numbers"),
    (["--lcu", "--split-cols", "9"], "invalid split column = 9: 0 … 3"),
    (["--lcu", "--lcu-pairs", "1:2:3"], "not a pair"),
    (["--lcu", "--lcu-pairs", "0:9"], "invalid lcu pair column = 9: 0 … 3"),
    (["--tmr", "word", "--tmr-triples", "0:1"], "--tmr-triples: '0:1' is not a triple"),
    (["--tmr", "word", "--tmr-triples", "0:1:x"], "--tmr-triples: '0:1:x' is not a list"),
    (["--tmr", "word", "--tmr-triples", "0:1:2,"], "--tmr-triples: '' is not a list"),
    (["--tmr", "word", "--tmr-triples", "0:1:4"], "invalid tmr triple column = 4: 0 … 3"),
    (["--tmr", "word", "--tmr-triples", "0:1:-1"], "invalid tmr triple column = -1: 0 … 3"),
    (["--tmr", "bitwise", "--tmr-triples", "2:1:2"],
     "invalid tmr triple = (2, 1, 2): three different columns"),
    (["--tmr-triples", "0:1:2"], "invalid tmr = 'none': 'word' or 'bitwise' for TMR triples"),
    (["--lcu", "--tmr-triples", "0:1:2"], "invalid tmr = 'none'"),
    (["--tmr", "word", "--lcu-pairs", "0:1"], "invalid lcu = False: true for split columns"),
    (["--tmr", "bitwise", "--split-cols", "1"], "invalid lcu = False"),
    (["--tmr", "word", "--lcu-depth", "4", "--corrected", "K.npy"], "lcu_depth = 4"),
    (["--afd", "--afd-gates", "3"], "afd gates = 3"),
    (["--afd-shift", "2"], "invalid afd = False"),
    (["--median-off"], "invalid median = 0: 3 or 5 to switch the median filter"),
    (["--shift", "99"], "invalid shift = 99"),
    (["--shift", "-1"], "invalid shift = -1"),
    (["--relu", "--no-output-stage"], "output_stage"),
    (["--lcu-mask", "3"], "without the LCU"),
])
def test_bad_run_time_options(cli, extra, message):
    assert message in cli(*MM, "-o", "C.npy", *extra)


@pytest.mark.parametrize("content,message", [
    (b'{"rows": ' + b"1" * 5000 + b"}", "integer too long"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"rows": 2, "dataflow": "\xff"}', "UTF-8"),
    (b'{"median": 3.0}', "invalid median = 3.0"),
    (b'{"dataflow": "ws\\n\\u001b[2J"}', "invalid dataflow = 'ws\\n\\x1b[2J'"),
    (b'{"rows": 2, "colums": 2}', "configuration key"),
])
def test_bad_config_files(cli, tmp_path, content, message):
    (tmp_path / "c.json").write_bytes(content)
    assert message in cli("generate", "--config", "c.json", "-o", "out")
    assert message in cli(*MM, "--config", "c.json", "-o", "C.npy")


def test_config_file_that_is_a_device(cli):
    assert "regular file" in cli("generate", "--config", "/dev/null", "-o", "out")


@pytest.mark.parametrize("args,message", [
    (["generate"], "the following arguments are required: -o/--output"),
    (["generate", "-o", "out", "--rows", "x"], "argument --rows: 'x' is not an integer"),
    (["generate", "-o", "out", "--rows", "9" * 30], "at most 24 digits"),
    (["generate", "-o", "out", "--rows", "0"], "invalid rows = 0"),
    (["generate", "-o", "out", "--rows", "9" * 20], "invalid rows = 99999999999999999999"),
    (["generate", "-o", "out", "--dataflow", "x" * 300], "..."),
    (["generate", "-o", "out", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
    (["synth", "-o", "s", "--timeout", "nan"], "not a positive number of seconds"),
    (["synth", "-o", "s", "--timeout", "-5"], "not a positive number of seconds"),
    (["verify", "--seed", "-1"], "invalid seed = -1"),
    (["verify", "--count", "0"], "invalid count = 0"),
    (["demo", "--seed", "-1", "-o", "d"], "--seed -1"),
    (["matmul", "--a", "A.npy", "--b", "B.npy", "-o", "C.npy", "--sim", "modelsim"],
     "invalid choice: 'modelsim'"),
])
def test_argument_errors_are_one_line_with_a_hint(cli, args, message):
    err = cli(*args)
    assert message in err
    if "argument" in err or "required" in err or "unrecognized" in err:
        assert "--help'" in err and "usage:" not in err


def test_synth_validates_liberty_before_writing_rtl(cli):
    assert "no such file '/nope.lib'" in cli("synth", "--rows", 2, "--cols", 2, "--liberty",
                                              "/nope.lib", "-o", "s")
    assert "not a regular file" in cli("synth", "--rows", 2, "--cols", 2, "--liberty",
                                       "/dev/null", "-o", "s")


def test_generate_refuses_a_planted_link_in_its_output_folder(cli, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere.json").write_text("precious")
    (tmp_path / "out" / "config.json").symlink_to(tmp_path / "elsewhere.json")
    assert "symbolic link" in cli("generate", "--rows", 2, "--cols", 2, "-o", "out")
    assert (tmp_path / "elsewhere.json").read_text() == "precious"


def test_unusable_yosys_is_exit_3(cli, monkeypatch):
    monkeypatch.setenv("YOSYS", "/bin/false")
    assert "Yosys is unusable" in cli("generate", "--rows", 2, "--cols", 2, "-o", "out", code=3)


def _system_yosys_version():
    exe = shutil.which("yosys")
    if exe is None:
        return None
    out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
    try:
        return tuple(int(x) for x in out.split()[1].split("+")[0].split(".")[:2])
    except (IndexError, ValueError):
        return None


def test_old_system_yosys_is_exit_3(cli, monkeypatch):
    version = _system_yosys_version()
    if version is not None and version >= (0, 40):
        pytest.skip(f"the system Yosys {version} is new enough for Amaranth")
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "system")
    assert "Yosys is unusable" in cli("generate", "--rows", 2, "--cols", 2, "-o", "out", code=3)


@pytest.mark.synth
def test_a_failure_after_the_first_write_removes_what_the_run_created(cli, tmp_path):
    # synth writes rtl/ and yosys/ before Yosys runs out of time: all of it goes again,
    # whether the output folder is new or existed (its own files stay).
    err = cli("synth", "--rows", 2, "--cols", 2, "--timeout", "0.01", "-o", "s", code=3)
    assert "timed out" in err
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("mine")
    assert "timed out" in cli("synth", "--rows", 2, "--cols", 2, "--timeout", "0.01", "-o",
                              "old", code=3)
