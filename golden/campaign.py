"""Fault-injection campaigns on the golden cycle model: outcome of every fault in a list.

The cycle model is proven equal to the RTL, fault hooks included, by the testbenches
(``tests/test_fault_hooks.py``, ``tests/test_checksum.py``), so a campaign of thousands of
faults runs here in seconds instead of hours of RTL simulation; a sample of the same faults is
replayed on the RTL by the tests.

Outcome classes (SPEC §7): ``masked`` (every output equals the fault-free run, no alarm),
``detected`` (some output differs and the checksum alarm fired), ``sdc`` (silent data
corruption: some output differs, no alarm), ``false_alarm`` (no output differs but the alarm
fired: the fault hit the check itself, e.g. the sanity column).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .accelerator import simulate
from .faults import MODES, REGISTERS, Fault
from .schedule import assemble, build_program

__all__ = ["Outcome", "classify", "exhaustive_faults", "run_campaign", "coverage_table"]


@dataclass(frozen=True)
class Outcome:
    fault: Fault
    corrupted: int      # outputs that differ from the fault-free run
    alarm: bool
    kind: str           # masked | detected | sdc | false_alarm


def classify(corrupted: int, alarm: bool) -> str:
    if corrupted == 0:
        return "false_alarm" if alarm else "masked"
    return "detected" if alarm else "sdc"


def exhaustive_faults(cfg, modes=("sa0", "sa1"), registers=REGISTERS, cycle: int = 0):
    """Every (PE, register, bit, mode) of the built array, sanity column included."""
    cols = cfg.cols + (1 if getattr(cfg, "checksum", "none") == "spatial" else 0)
    widths = {"weight": cfg.w_width, "act": cfg.a_width, "psum": cfg.acc_bits}
    out = []
    for r in range(cfg.rows):
        for c in range(cols):
            for reg in registers:
                width = widths[reg]
                if reg == "weight" and c >= cfg.cols:
                    width = cfg.sanity_width
                for bit in range(width):
                    for mode in modes:
                        assert mode in MODES
                        out.append(Fault(r, c, reg, bit, mode, cycle))
    return out


def run_campaign(cfg, A, B, faults, **program_options) -> list[Outcome]:
    """Simulate every fault on the cycle model and classify it against the fault-free run."""
    program = build_program(cfg, A, B, **program_options)
    clean = assemble(program, simulate(cfg, program), "acc_out")
    outcomes = []
    for fault in faults:
        program = build_program(cfg, A, B, fault=fault, **program_options)
        rec = simulate(cfg, program, fault)
        corrupted = int(np.sum(assemble(program, rec, "acc_out") != clean))
        alarm = bool(rec["checksum_alarm"].max()) if "checksum_alarm" in rec else False
        outcomes.append(Outcome(fault, corrupted, alarm, classify(corrupted, alarm)))
    return outcomes


def coverage_table(outcomes: list[Outcome], key=lambda o: o.fault.register) -> dict:
    """Per key: counts of each outcome and the detection rate of output-changing faults."""
    groups: dict = {}
    for o in outcomes:
        groups.setdefault(key(o), Counter())[o.kind] += 1
    table = {}
    for k, cnt in groups.items():
        changing = cnt["detected"] + cnt["sdc"]
        table[k] = {**{kind: cnt[kind] for kind in ("masked", "detected", "sdc", "false_alarm")},
                    "total": sum(cnt.values()),
                    "detection_rate": (cnt["detected"] / changing) if changing else None}
    return table
