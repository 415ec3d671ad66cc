"""Testbench of the composed accelerator.

Run a product on the RTL and hold it against the golden cycle model, cycle by cycle.

The driver program (:func:`golden.schedule.build_program`) is played into the simulator by
:mod:`tb.hdl_player` (inside the simulator); the same program runs through
:func:`golden.accelerator.simulate` when a check asks for it.  Every
output port is compared in every cycle, so a result that is right but late, early or
surrounded by spurious ``out_valid`` pulses fails too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ftaccel.config import AcceleratorConfig
from ftaccel.golden import units as golden_units
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.array import MatmulResult
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import CycleEngine
from ftaccel.golden.schedule import Program, assemble, build_program
from ftaccel.rtl_gen.accelerator import TOP_NAME, generate
from ftaccel.rtl_gen.flow import FLOW_TOP_NAME, generate_flow

from .runner import (
    build_model,
    default_sim,
    file_lock,
    manifest_ok,
    player_spec,
    replace_damaged,
    run_stream,
    sim_cache_dir,
    write_manifest,
)

__all__ = ["TOPS", "RTLRun", "RTLEngine", "build_dir_for", "rtl_for", "prepare", "run_program",
           "rtl_matmul",
           "mismatches"]

_RTL_GEN_HASH: str | None = None


def _generator_hash() -> str:
    """Hash of the generator's own source (an edited generator must not reuse old RTL)."""
    global _RTL_GEN_HASH
    if _RTL_GEN_HASH is None:
        import amaranth

        import ftaccel.rtl_gen as pkg

        h = hashlib.sha256(getattr(amaranth, "__version__", "").encode())
        for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
            h.update(path.name.encode() + path.read_bytes())
        _RTL_GEN_HASH = h.hexdigest()
    return _RTL_GEN_HASH


#: The tops :func:`rtl_for` generates: the composed accelerator and the flow-controlling one.
TOPS = (TOP_NAME, FLOW_TOP_NAME)


def build_dir_for(cfg: AcceleratorConfig, sim: str | None = None,
                  root: Path | None = None, *, top: str = TOP_NAME) -> Path:
    """The cached folder holding the generated RTL of ``cfg`` (``<cache>/rtl/<name>-<hash>``).

    Keyed by the configuration, the top (``accelerator`` or ``flow_accelerator``, whose folder
    is ``<cache>/rtl/flow_accelerator-<name>-<hash>``) and the generator's source; shared by
    every simulator and run (compiled models live under ``<cache>/models``, runs under
    ``<cache>/runs``).  ``sim`` is accepted for compatibility and does not change the folder.
    """
    del sim
    if top not in TOPS:
        raise ValueError(f"unknown top {top!r}: choose one of {', '.join(TOPS)}")
    # "+manifest": entries carry a manifest checked before use (older entries: other keys)
    ident = cfg.to_json() + _generator_hash() + ("" if top == TOP_NAME else top) + "+manifest"
    key = hashlib.sha256(ident.encode()).hexdigest()[:12]
    prefix = "" if top == TOP_NAME else f"{top}-"
    return sim_cache_dir(root) / "rtl" / f"{prefix}{cfg.name()}-{key}"


def rtl_for(cfg: AcceleratorConfig, cache_dir: Path | None = None, *,
            top: str = TOP_NAME) -> Path:
    """The Verilog of ``cfg``, generated once into the cache (under a lock) and reused.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The configuration.
    cache_dir : Path, optional
        Root of the cache (default :func:`tb.runner.sim_cache_dir`).
    top : str
        ``"accelerator"`` (:func:`rtl_gen.accelerator.generate`, default) or
        ``"flow_accelerator"`` (:func:`rtl_gen.flow.generate_flow`, for ``cfg.flow != "none"``).

    Returns
    -------
    Path
        The top's Verilog file; its module is ``top``.
    """
    final = build_dir_for(cfg, root=cache_dir, top=top)
    verilog = final / f"{top}.v"
    if (final / "READY").exists() and manifest_ok(final):
        return verilog
    with file_lock(final.parent / f"{final.name}.lock"):
        if (final / "READY").exists() and manifest_ok(final):
            return verilog
        if final.exists():  # damaged (a file removed or changed) or half-made: again
            replace_damaged(final)
        _remove_dead_scratch(final)
        scratch = final.parent / f"{final.name}.tmp{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            if top == TOP_NAME:
                generate(cfg, scratch, rtlil=False)  # simulation needs the Verilog only
            else:
                generate_flow(cfg, scratch)
            write_manifest(scratch)
            (scratch / "READY").write_text(cfg.to_json())
            os.rename(scratch, final)
        finally:  # also on an interrupt: no <name>.tmp<pid> is left behind
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    return verilog


def _remove_dead_scratch(final: Path) -> None:
    """Remove ``<name>.tmp<pid>`` folders of processes that no longer run (killed mid-way)."""
    for p in final.parent.glob(f"{final.name}.tmp*"):
        pid = p.name[len(final.name) + 4:]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except OSError:  # alive (another user's): leave it
            pass


@dataclass(kw_only=True)
class RTLRun(MatmulResult):
    """Result of one product on the RTL: the :class:`golden.array.MatmulResult` of every engine.

    Beside ``acc``, ``q``, ``cycles`` and ``alarms``: the program, every recorded port and
    the log.  ``golden`` (the cycle model's view of the same program, every output port in
    every cycle) is computed on first use, or at once with ``rtl_matmul(..., check=True)``: a
    run that only wants the product does not pay for the Python cycle model.
    """

    program: Program
    recorded: dict[str, np.ndarray]
    log: Path | None
    cfg: AcceleratorConfig | None = None
    fault: Fault | None = None
    _golden: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def golden(self) -> dict[str, np.ndarray]:
        """The cycle model's outputs for the same program and fault (computed once)."""
        if self._golden is None:
            if self.cfg is None:
                raise ValueError("this run has no configuration to run the cycle model on")
            self._golden = simulate(self.cfg, self.program, self.fault)
        return self._golden

    @property
    def run_dir(self) -> Path | None:
        """The run's folder (stimulus, record, log) when it was kept, else None."""
        return None if self.log is None else self.log.parent


def prepare(cfg: AcceleratorConfig, program: Program, *, sim: str | None = None,
            waves: bool | None = None, cache_dir: Path | None = None, top: str = TOP_NAME,
            build: bool = True):
    """Generate and compile the model :func:`run_program` will use for ``program``.

    Cached: a no-op when it exists, so that many runs started at once find it ready.
    ``build=False`` only looks it up (the Verilog is generated): None when not built yet.
    ``program`` is a :class:`golden.schedule.Program` (or, with ``top="flow_accelerator"``,
    a program of :func:`golden.flow.build_flow_program`); only its ports and loopbacks matter.
    """
    sim = sim or default_sim()
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    verilog = rtl_for(cfg, cache_dir, top=top)
    spec = player_spec([verilog], top, program.outputs, program.loopback)
    return build_model([verilog], top, sim=sim, waves=bool(waves), spec=spec,
                       cache_dir=cache_dir, build=build)


def run_program(cfg: AcceleratorConfig, program: Program, *, sim: str | None = None,
                build_root: Path | None = None, waves: bool | None = None,
                cache_dir: Path | None = None, keep: bool | None = None,
                player: str = "hdl", top: str = TOP_NAME):
    """Simulate ``program`` on the RTL of ``cfg``; return the recorded ports and the log.

    The RTL and the compiled model are cached (one per configuration, top and simulator,
    shared by every run and process); the run itself has its own directory, made under
    ``build_root`` (default ``<cache>/runs``) and removed after success unless ``keep``.
    The log is None when the run directory was removed.  ``top`` is ``"accelerator"``
    (default) or ``"flow_accelerator"`` (a program of :func:`golden.flow.build_flow_program`
    on the flow-controlling array), as in :func:`rtl_for`.
    """
    sim = sim or default_sim()
    verilog = rtl_for(cfg, cache_dir, top=top)
    res = run_stream(verilog=[verilog], toplevel=top, inputs=program.inputs,
                     outputs=program.outputs, build_dir=build_root, sim=sim, waves=waves,
                     loopback=program.loopback, cache_dir=cache_dir, keep=keep,
                     player=player)
    return res.outputs, res.log


def rtl_matmul(cfg: AcceleratorConfig, A, B, *, bias=None, relu=False, shift=0,
               fault: Fault | None = None, sim: str | None = None,
               build_root: Path | None = None, waves: bool | None = None,
               check: bool = False, cache_dir: Path | None = None, keep: bool | None = None,
               player: str = "hdl", **units) -> RTLRun:
    """``A @ B`` computed by simulating the generated RTL.

    ``units``: options of the configured units (``bypass_map``, ``afd``, ``median_enable``),
    see :func:`golden.schedule.build_program`.  ``check=True`` runs the golden cycle model
    on the same program right away (else :attr:`RTLRun.golden` runs it when first read).
    """
    program = build_program(cfg, A, B, bias=bias, relu=relu, shift=shift, fault=fault, **units)
    recorded, log = run_program(cfg, program, sim=sim, build_root=build_root, waves=waves,
                                cache_dir=cache_dir, keep=keep, player=player)
    q = assemble(program, recorded, "q_out") if cfg.output_stage else None
    run = RTLRun(program=program, recorded=recorded, acc=assemble(program, recorded, "acc_out"),
                 q=q, cycles=program.cycles, alarms=golden_units.alarms(cfg, recorded),
                 log=log, cfg=cfg, fault=fault)
    if check:
        run.golden  # noqa: B018 - computed now, as asked
    return run


def mismatches(recorded: dict[str, np.ndarray], golden: dict[str, np.ndarray], limit: int = 10):
    """The first ``limit`` differences as ``(port, cycle, lane, rtl, golden)`` tuples."""
    out = []
    for port, want in golden.items():
        got = recorded[port]
        if got.shape != want.shape:
            return [(port, -1, -1, got.shape, want.shape)]
        bad = np.argwhere(got != want)
        for idx in bad[:limit - len(out)]:
            cycle = int(idx[0])
            lane = int(idx[1]) if len(idx) > 1 else 0
            out.append((port, cycle, lane, int(got[tuple(idx)]), int(want[tuple(idx)])))
        if len(out) >= limit:
            break
    return out


class RTLEngine(CycleEngine):
    """Products on the generated RTL.

    The Verilog and the simulator model come from the shared cache of
    :func:`tb.accelerator.rtl_for` and :func:`tb.accelerator.prepare` (generated and built
    once per configuration, by whichever engine or process comes first); every product is
    one simulator run of that model (:func:`tb.accelerator.run_program`) in a run folder of
    its own, removed after success.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The configuration (``cfg.flow == "none"``; see :class:`tb.flow.FlowRTLEngine`).
    sim : str, optional
        ``"icarus"`` or ``"verilator"`` (default :func:`tb.runner.default_sim`).
    cache_dir : path, optional
        Root of the RTL and model cache (default :func:`tb.runner.sim_cache_dir`).
    build_root : path, optional
        Folder in which each run's own folder is made (default ``<cache>/runs``).

    Attributes
    ----------
    startup_seconds : float or None
        The generation plus the model build (or the cache look-up), measured by
        :meth:`start` (called on first use).
    runs : int
        Simulator runs so far (one per product).
    """

    name = "rtl"

    def __init__(self, cfg: AcceleratorConfig, *, sim: str | None = None,
                 cache_dir: str | Path | None = None, build_root: str | Path | None = None):
        super().__init__(cfg)
        self.sim = sim or default_sim()
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.build_root = None if build_root is None else Path(build_root)
        self.startup_seconds: float | None = None
        self.runs = 0

    def _program(self):
        # The ports and loopbacks of every product's program are those of a 1×1 product.
        return build_program(self.cfg, np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64))

    def start(self) -> float:
        """Generate the Verilog and build the simulator model, unless cached; the seconds."""
        if self.startup_seconds is not None:
            return self.startup_seconds
        t0 = time.perf_counter()
        prepare(self.cfg, self._program(), sim=self.sim, cache_dir=self.cache_dir)
        self.startup_seconds = time.perf_counter() - t0
        return self.startup_seconds

    def built(self) -> bool:
        """True when the simulator model is in the cache (nothing is built; the Verilog is)."""
        return prepare(self.cfg, self._program(), sim=self.sim, cache_dir=self.cache_dir,
                       build=False) is not None

    def execute(self, program, fault):
        """The recorded outputs of ``program`` played on the RTL."""
        self.start()
        recorded, _log = run_program(self.cfg, program, sim=self.sim, cache_dir=self.cache_dir,
                                     build_root=self.build_root)
        self.runs += 1
        return recorded
