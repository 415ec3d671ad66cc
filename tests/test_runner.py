"""The simulation runner: the in-simulator player, cached models, isolated runs, workers.

* the HDL player records exactly what the per-cycle cocotb player records, and both equal
  the golden cycle model, every port in every cycle (loopbacks, checksums, a fault);
* runs started at once on one configuration (threads; Dask worker processes) each get their
  own correct product, from one model built once;
* a stimulus for another design, a truncated stimulus, an out-of-range value, a design that
  does not compile and a missing or too old simulator each give one clear error;
* waveforms land in the (kept) run directory; the benchmark's raw mode does the same work.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.faults import Fault
from ftaccel.golden.schedule import assemble, build_program
from ftaccel.rtl_gen.accelerator import TOP_NAME
from ftaccel.tb import hdl_player as hp
from ftaccel.tb import runner
from ftaccel.tb.accelerator import mismatches, rtl_for, rtl_matmul, run_program
from ftaccel.tb.runner import (
    SimulationFailed,
    SimulatorNotFound,
    build_model,
    play_file,
    player_spec,
    run_stream,
)

PROTECTED = AcceleratorConfig(rows=3, cols=3, checksum="both", fault_hooks=True, bypass=True)


def _operands(rng, M, K, N):
    return rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))


def _same(a: dict, b: dict) -> list:
    assert a.keys() == b.keys()
    return [k for k in a if not np.array_equal(a[k], b[k])]


@pytest.mark.parametrize("fault", [None, Fault(1, 2, "psum", 4, "flip", 30)])
def test_hdl_player_equals_cocotb_player_and_golden(rng, tmp_path, fault):
    """K = 8 on 3 rows: three K-tiles chained by the loopback; both checksums on."""
    A, B = _operands(rng, 5, 8, 4)
    hdl = rtl_matmul(PROTECTED, A, B, fault=fault, cache_dir=tmp_path, check=True)
    py = rtl_matmul(PROTECTED, A, B, fault=fault, cache_dir=tmp_path, player="cocotb")
    assert not _same(hdl.recorded, py.recorded)
    assert not mismatches(hdl.recorded, hdl.golden, limit=5)
    if fault is None:
        assert np.array_equal(hdl.acc, A @ B)
    else:
        assert not np.array_equal(hdl.acc, A @ B)  # the flip reaches the product


def test_parallel_runs_of_one_configuration_are_isolated(rng, tmp_path):
    """Six products started at once on one configuration.

    Each returns its own result, all from one model built once; no run directory is left behind.
    """
    cfg = AcceleratorConfig(rows=4, cols=4)
    cases = [_operands(rng, int(rng.integers(3, 9)), 9, 5) for _ in range(6)]
    start = threading.Barrier(len(cases))

    def one(case):
        start.wait()
        return rtl_matmul(cfg, *case, cache_dir=tmp_path)

    with ThreadPoolExecutor(len(cases)) as pool:
        runs = list(pool.map(one, cases))
    for (A, B), run in zip(cases, runs, strict=True):
        assert np.array_equal(run.acc, A @ B)
        assert not mismatches(run.recorded, run.golden)
    models = [p for p in (tmp_path / "models" / "icarus").iterdir() if p.is_dir()]
    assert len(models) == 1 and (models[0] / "READY").exists()
    assert not any((tmp_path / "runs").iterdir())


def test_dask_workers_run_many_programs(rng, tmp_path):
    from ftaccel.tb.distributed import run_programs

    cfg = AcceleratorConfig(rows=2, cols=3)
    cases = [_operands(rng, 4, 5, 4) for _ in range(4)]
    programs = [build_program(cfg, A, B) for A, B in cases]
    results = run_programs([(cfg, p) for p in programs], sim="icarus", n_workers=2,
                           cache_dir=tmp_path, post=_post)
    for (A, B), program, (acc, recorded) in zip(cases, programs, results, strict=True):
        assert np.array_equal(acc, A @ B)
        assert not mismatches(recorded, simulate(cfg, program))


def _post(cfg, program, recorded):
    return assemble(program, recorded, "acc_out"), recorded


def _two_models(tmp_path):
    """Models of two configurations and a program for the first."""
    a, b = AcceleratorConfig(rows=2, cols=2), AcceleratorConfig(rows=2, cols=3)
    program = build_program(a, np.ones((3, 2), int), np.ones((2, 2), int))
    models = []
    for cfg in (a, b):
        v = rtl_for(cfg, tmp_path)
        spec = player_spec([v], TOP_NAME, program.outputs, program.loopback)
        models.append(build_model([v], TOP_NAME, sim="icarus", spec=spec, cache_dir=tmp_path))
    return models, program


def test_stimulus_for_another_design_is_refused(tmp_path):
    (model_a, model_b), program = _two_models(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stim = run_dir / "stimulus.bin"
    stim.write_bytes(hp.encode_stimulus(model_a.spec, program.inputs, program.loopback))
    play_file(model_a, stim, run_dir, cycles=program.cycles)  # its own design plays it
    with pytest.raises(SimulationFailed, match="different design") as err:
        play_file(model_b, stim, run_dir, cycles=program.cycles)
    assert err.value.log.exists() and err.value.run_dir == run_dir
    assert "\n" not in str(err.value) and str(err.value.log) in str(err.value)


def test_truncated_stimulus_fails_and_keeps_the_run(tmp_path):
    (model, _), program = _two_models(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stim = run_dir / "stimulus.bin"
    stim.write_bytes(hp.encode_stimulus(model.spec, program.inputs, program.loopback)[:-3])
    with pytest.raises(SimulationFailed, match="truncated") as err:
        play_file(model, stim, run_dir, cycles=program.cycles)
    assert str(err.value.log) in str(err.value)


def test_bad_values_and_ports_are_refused_before_any_build(tmp_path):
    cfg = AcceleratorConfig(rows=2, cols=2)
    v = rtl_for(cfg, tmp_path)
    program = build_program(cfg, np.ones((3, 2), int), np.ones((2, 2), int))
    kw = dict(verilog=[v], toplevel=TOP_NAME, outputs=program.outputs,
              loopback=program.loopback, cache_dir=tmp_path, sim="icarus")
    wide = {**program.inputs, "in_data": program.inputs["in_data"] + 300}
    with pytest.raises(ValueError, match=r"in_data__0: value 30\d in cycle \d+ does not fit"):
        run_stream(inputs=wide, **kw)
    with pytest.raises(ValueError, match="has no input port 'nope'"):
        run_stream(inputs={**program.inputs, "nope": np.zeros(program.cycles)}, **kw)
    short = {**program.inputs, "load": program.inputs["load"][:-1]}
    with pytest.raises(ValueError, match="different lengths"):
        run_stream(inputs=short, **kw)
    assert not (tmp_path / "models").exists()


def test_a_design_that_does_not_compile_names_its_log(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(clk, rst, x, y);\n  input clk;\n  input rst;\n  input x;\n"
                   "  output y;\n  assign y = x +;\nendmodule\n")
    with pytest.raises(SimulationFailed, match="build") as err:
        run_stream(verilog=[bad], toplevel="bad", inputs={"x": np.zeros(4, int)},
                   outputs={"y": (0, False)}, cache_dir=tmp_path, sim="icarus")
    assert err.value.log.exists() and "syntax" in err.value.log.read_text().lower()


def test_missing_or_old_simulator(monkeypatch):
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(SimulatorNotFound, match="not installed"):
        runner.ensure_simulator("icarus")
    monkeypatch.undo()
    monkeypatch.setitem(runner._VERSIONS, "icarus", "10.3")
    with pytest.raises(SimulatorNotFound, match="too old"):
        runner.ensure_simulator("icarus")
    with pytest.raises(SimulatorNotFound, match="unknown simulator"):
        runner.ensure_simulator("vcs")


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FTACCEL_CACHE_DIR", str(tmp_path))
    cfg = AcceleratorConfig(rows=2, cols=2)
    program = build_program(cfg, np.ones((2, 2), int), np.ones((2, 2), int))
    recorded, log = run_program(cfg, program, keep=True)
    assert Path(log).is_relative_to(tmp_path / "sim" / "runs")
    assert any((tmp_path / "sim" / "models" / "icarus").iterdir())
    assert np.array_equal(assemble(program, recorded, "acc_out"), np.full((2, 2), 2))


def test_waves_are_written_into_the_kept_run_directory(tmp_path):
    cfg = AcceleratorConfig(rows=2, cols=2)
    program = build_program(cfg, np.ones((2, 2), int), np.ones((2, 2), int))
    v = rtl_for(cfg, tmp_path)
    res = run_stream(verilog=[v], toplevel=TOP_NAME, inputs=program.inputs,
                     outputs=program.outputs, loopback=program.loopback, sim="icarus",
                     waves=True, cache_dir=tmp_path)
    assert res.run_dir is not None and (res.run_dir / "waves.fst").stat().st_size > 0
    assert not mismatches(res.outputs, simulate(cfg, program))


def test_raw_mode_does_the_same_work_as_the_player(rng, tmp_path):
    """The benchmark's ceiling (stimulus preloaded, no file I/O) folds the same outputs."""
    cfg = AcceleratorConfig(rows=3, cols=2)
    A, B = _operands(rng, 6, 7, 3)
    program = build_program(cfg, A, B)
    v = rtl_for(cfg, tmp_path)
    kw = dict(verilog=[v], toplevel=TOP_NAME, inputs=program.inputs, outputs=program.outputs,
              loopback=program.loopback, sim="icarus", cache_dir=tmp_path)
    played = run_stream(**kw, keep=True)
    raw = run_stream(**kw, idle=True)
    spec = player_spec([v], TOP_NAME, program.outputs, program.loopback)
    record = (played.run_dir / "record.bin").read_bytes()
    assert raw.fold == hp.record_fold(spec, record, program.cycles) != 0


def test_only_changed_groups_are_written(tmp_path):
    """File format: a constant input costs its mask bit only; a change costs its bytes."""
    v = tmp_path / "d.v"
    v.write_text("module d(clk, rst, a__0, a__1, b, y);\n  input clk;\n  input rst;\n"
                 "  input [7:0] a__0;\n  input [3:0] a__1;\n  input [9:0] b;\n"
                 "  output [9:0] y;\n  assign y = b;\nendmodule\n")
    spec = hp.build_spec([v], "d")
    T = 5
    a = np.zeros((T, 2), int)
    a[2] = [-1, 7]
    data = hp.encode_stimulus(spec, {"a": a, "b": np.full(T, 513)})
    # header, 5 masks of one byte; b once (2 bytes, cycle 0); a twice (cycles 2 and 3)
    assert len(data) == 24 + T + 2 + 2 * 2
    body = data[24:]
    assert body[0] == 0b10 and body[1:3] == (513).to_bytes(2, "big")  # cycle 0: b
    assert body[3] == 0  # cycle 1: nothing changed
    assert body[4] == 0b01 and body[5:7] == ((7 << 8) | 0xFF).to_bytes(2, "big")  # lane 1: 7
    assert body[7] == 0b01 and body[8:10] == b"\x00\x00" and body[10] == 0


@pytest.mark.verilator
def test_verilator_runs_the_same_player(rng):
    """Same HDL player on Verilator (shared cache): equal to Icarus and the golden model.

    Its waveform (VCD) lands in the kept run directory.
    """
    A, B = _operands(rng, 5, 8, 4)
    fault = Fault(2, 0, "weight", 3, "sa1")
    ver = rtl_matmul(PROTECTED, A, B, fault=fault, sim="verilator", waves=True)
    assert (ver.log.parent / "waves.vcd").stat().st_size > 0
    ica = rtl_matmul(PROTECTED, A, B, fault=fault, sim="icarus")
    assert not _same(ver.recorded, ica.recorded)
    assert not mismatches(ver.recorded, ver.golden)
