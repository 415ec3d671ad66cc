"""Testbench of the composed accelerator: run a product on the RTL and hold it against the
golden cycle model, cycle by cycle.

The driver program (:func:`golden.schedule.build_program`) is played into the simulator by
:mod:`tb.player`; the same program runs through :func:`golden.accelerator.simulate`.  Every
output port is compared in every cycle, so a result that is right but late, early or
surrounded by spurious ``out_valid`` pulses fails too.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftaccel.golden.accelerator import simulate
from ftaccel.golden.faults import Fault
from ftaccel.golden.schedule import Program, assemble, build_program
from ftaccel.rtl_gen.accelerator import TOP_NAME, verilog_text
from ftaccel.rtl_gen.config import AcceleratorConfig
from ftaccel.rtl_gen.emit import write_text_atomic

from .runner import default_sim, run_stream

__all__ = ["RTLRun", "build_dir_for", "run_program", "rtl_matmul", "mismatches"]

REPO = Path(__file__).resolve().parent.parent


def build_dir_for(cfg: AcceleratorConfig, sim: str, root: Path | None = None) -> Path:
    """One build directory per configuration, simulator and pytest-xdist worker."""
    root = Path(root) if root else Path(os.environ.get("RTLGEN_BUILD", REPO / "build" / "sim"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return root / sim / f"{cfg.name()}_{worker}"


@dataclass
class RTLRun:
    """Result of one product on the RTL, with the golden model's view of the same program."""

    program: Program
    recorded: dict[str, np.ndarray]
    golden: dict[str, np.ndarray]
    acc: np.ndarray
    q: np.ndarray | None
    log: Path


@functools.lru_cache(maxsize=8)
def _verilog(cfg: AcceleratorConfig) -> str:
    """The design's Verilog, generated once per configuration and process: a test runs many
    programs on one configuration, and Amaranth's public back end runs Yosys once per module
    (≈ 0.3 s each), which would otherwise be paid for every program."""
    return verilog_text(cfg)


def run_program(cfg: AcceleratorConfig, program: Program, *, sim: str | None = None,
                build_root: Path | None = None, waves: bool | None = None):
    """Simulate ``program`` on the RTL of ``cfg``; return the recorded ports and the log."""
    sim = sim or default_sim()
    bdir = build_dir_for(cfg, sim, build_root)
    verilog = write_text_atomic(bdir / "rtl" / f"{TOP_NAME}.v", _verilog(cfg))
    res = run_stream(verilog=[verilog], toplevel=TOP_NAME, inputs=program.inputs,
                     outputs=program.outputs, build_dir=bdir, sim=sim, waves=waves,
                     loopback=program.loopback)
    return res.outputs, res.log


def rtl_matmul(cfg: AcceleratorConfig, A, B, *, bias=None, relu=False, shift=0,
               fault: Fault | None = None, sim: str | None = None,
               build_root: Path | None = None, waves: bool | None = None, **units) -> RTLRun:
    """``A @ B`` computed by simulating the generated RTL, with the golden model beside it.

    ``units``: options of the configured units (``bypass_map``, ``afd``, ``median_enable``),
    see :func:`golden.schedule.build_program`.
    """
    program = build_program(cfg, A, B, bias=bias, relu=relu, shift=shift, fault=fault, **units)
    recorded, log = run_program(cfg, program, sim=sim, build_root=build_root, waves=waves)
    golden = simulate(cfg, program, fault)
    q = assemble(program, recorded, "q_out") if cfg.output_stage else None
    return RTLRun(program=program, recorded=recorded, golden=golden,
                  acc=assemble(program, recorded, "acc_out"), q=q, log=log)


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
