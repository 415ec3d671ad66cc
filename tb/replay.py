"""Campaign faults replayed on the RTL: the fault is a run-time input, the build is shared.

A campaign's RTL check (``rtlgen campaign --verify-rtl K``, :func:`app.campaign.verify_on_rtl`)
plays every sampled fault through the fault hooks' controls (:mod:`rtl_gen.fault`,
``fault__enable`` … ``fault__cycle``).  Those controls are input ports of the design, written
into the stimulus file per cycle by the driver's program, so one compiled simulator model per
configuration (:func:`tb.accelerator.prepare`, cached by Verilog hash, simulator and options)
serves every fault of every kind and every protection with that configuration:

* **stuck-at** (Ahmadilivani 2025 §2.1, §3.4): the program holds ``enable``, the PE,
  register, bit and mode constant for the whole product (``Product.fault``,
  :func:`golden.schedule.build_program`);
* **transient** (a one-cycle bit flip, Ahmadilivani 2025 §2.1): the same with mode ``flip``
  and the cycle; the flip acts in one layer's program only;
* **per-PE profile** errors (Shresthamali HAS §4.2–§4.3): the layer's error instances become
  one-cycle faults of the partial-sum registers, at most one per cycle (the hooks hold one
  fault at a time: :func:`golden.fault_models.hook_program`), played in the cycles they fall.

:class:`FaultReplayEngine` is a :class:`golden.network.CycleEngine` for :func:`golden.network.run`:
each product of a layer in ``rtl_layers`` is one simulator run of its program on the shared
model; the other layers run on ``fallback`` (the fast fault model), so a fault that acts in
one layer can be checked on that layer alone.  :func:`choose_sim` picks the simulator.
"""

from __future__ import annotations

import time

from ftaccel.golden import units as golden_units
from ftaccel.golden.fault_models import hook_program, profile_faults
from ftaccel.golden.network import CycleEngine, ModelError, ProductResult
from ftaccel.golden.schedule import build_program, program_result

from .runner import SIMULATORS, SimulatorNotFound, ensure_simulator

__all__ = ["FaultReplayEngine", "choose_sim", "simulator_available", "ICARUS_PE_CYCLES_PER_S",
           "verilator_build_seconds", "verilator_cached"]

#: Icarus' wall-clock speed in PE-cycles (array cycles × R·C) per second on a configuration
#: with fault hooks, for :func:`choose_sim` (an estimate): an 8×8 array ran 410 cycles/s with
#: its hooks and 1,014 without, on the same 6,025-cycle program at load average 9 on 2 cores
#: (the hooks' decoders and saboteurs cost Icarus 2.5×); ResNet-8's stuck-at replays ran
#: ≈ 420 cycles/s; ``bench/bench_sim.py`` measures 2–5× more per CPU second without hooks.
ICARUS_PE_CYCLES_PER_S = 60_000


def verilator_build_seconds(pes: int) -> float:
    """A Verilator model build's seconds for an array of ``pes`` PEs (estimate).

    From the README's measured builds (8×8 ≈ 51 s, 16×16 ≈ 88 s, 32×32 ≈ 139 s at -O3).
    """
    return 45.0 + 0.1 * pes


def simulator_available(sim: str) -> bool:
    """True when ``sim`` is installed and new enough (:func:`tb.runner.ensure_simulator`)."""
    try:
        ensure_simulator(sim)
    except SimulatorNotFound:
        return False
    return True


def verilator_cached(cfg) -> bool:
    """True when Verilator's model of ``cfg`` is already in the cache (it costs no build)."""
    from .accelerator import RTLEngine

    return RTLEngine(cfg, sim="verilator").built()


def choose_sim(sim: str | None, env: str | None, *, pe_cycles: int, configs: list):
    """``(simulator, reason)`` for an RTL check of ``pe_cycles`` PE-cycles on ``configs``.

    ``sim`` (the caller's choice, ``--sim``) wins, then ``env`` (``$SIM``).  Otherwise
    Verilator when it is installed and Icarus' estimated run time
    (:data:`ICARUS_PE_CYCLES_PER_S`) is longer than Verilator's builds of the configurations
    (``configs``, with fault hooks) whose model is not cached yet
    (:func:`verilator_build_seconds`; Verilator then runs 50–100× faster), else Icarus when
    installed, else Verilator.  A researcher's later campaigns on the same configurations
    find the Verilator models built and run on Verilator.
    """
    for given, where in ((sim, "--sim"), (env, "$SIM")):
        if given:
            given = given.strip().lower()
            if given not in SIMULATORS:
                raise SimulatorNotFound(f"unknown simulator {given!r} ({where}): choose one of "
                                        f"{', '.join(SIMULATORS)}")
            return given, f"{where} {given}"
    have_v = simulator_available("verilator")
    have_i = simulator_available("icarus")
    if not have_i:
        return "verilator", "auto: Icarus is not installed"  # (or neither: the run says so)
    if not have_v:
        return "icarus", "auto: Verilator is not installed"
    icarus_s = pe_cycles / ICARUS_PE_CYCLES_PER_S
    new = [c for c in configs if not verilator_cached(c)]
    build_s = sum(verilator_build_seconds(c.rows * c.cols) for c in new)
    why = (f"auto: Icarus estimated {icarus_s:,.0f} s of simulation, Verilator {build_s:,.0f} s "
           f"of builds ({len(new)} of {len(configs)} configuration(s) not cached)")
    return ("verilator" if icarus_s > build_s else "icarus"), why


class FaultReplayEngine(CycleEngine):
    """Products on the RTL with a campaign's fault played through the fault hooks.

    Parameters
    ----------
    rtl : tb.accelerator.RTLEngine
        The RTL of a configuration with ``fault_hooks`` (its model built once and shared).
    errors : dict, optional
        Per product-layer index, :class:`golden.fault_models.ProfileErrors` drawn with at most
        one error per cycle (a per-PE profile's error instances, Shresthamali HAS §4.3).
    rtl_layers : set of int, optional
        The product layers run on the RTL (default: every one); the others run on
        ``fallback``.
    fallback : engine, optional
        The engine of the other layers (the fast fault model of the same configuration).

    Attributes
    ----------
    played : int
        Error instances played on the hooks so far.
    ran : list of int
        The layer index of every product run on the RTL, in order.
    seconds : float
        Wall time inside the simulator runs (program building and encoding included).
    """

    name = "rtl+replay"

    def __init__(self, rtl, *, errors: dict | None = None, rtl_layers=None, fallback=None):
        super().__init__(rtl.cfg)
        if not rtl.cfg.fault_hooks:
            raise ValueError("replaying faults on the RTL needs a configuration with "
                             "fault_hooks")
        if rtl_layers is not None and fallback is None:
            raise ValueError("rtl_layers needs a fallback engine for the other layers")
        self.rtl = rtl
        self.errors = dict(errors or {})
        self.rtl_layers = None if rtl_layers is None else set(rtl_layers)
        self.fallback = fallback
        self.played = 0
        self.ran: list[int] = []
        self.seconds = 0.0

    def product(self, p):
        """Layer ``p`` on the RTL (with its fault or errors on the hooks) or on the fallback."""
        if self.rtl_layers is not None and p.index not in self.rtl_layers:
            return self.fallback.product(p)
        cfg = self.cfg
        units = dict(p.units)
        units.pop("errors", None)  # played below on the hooks, from self.errors
        errs = self.errors.get(p.index)
        if p.fault is not None and errs is not None and len(errs):
            raise ModelError(f"layer {p.name}: a register fault and profile errors at once")
        t0 = time.perf_counter()
        program = build_program(cfg, p.A, p.B, bias=p.bias, fault=p.fault, **p.program_args(),
                                **units)
        if errs is not None and len(errs):
            M, K = p.A.shape
            faults = profile_faults(cfg, errs, M, K, p.B.shape[1],
                                    golden_units.temporal_batch(golden_units.options(cfg, units)))
            program = hook_program(cfg, program, faults)
            self.played += len(faults)
        rec = self.rtl.execute(program, p.fault)
        self.seconds += time.perf_counter() - t0
        self.ran.append(p.index)
        return ProductResult(q=program_result(program, rec), cycles=int(program.cycles),
                             alarms=golden_units.alarms(cfg, rec))
