"""A waveform of the whole design running a product: the switching activity power needs.

:func:`record` simulates ``A @ B`` on the RTL of a configuration (the cached RTL of
:func:`tb.accelerator.rtl_for`, byte-identical to what ``rtlgen generate`` and the synthesis
flow read) with every signal dumped, through the HDL player (:mod:`tb.hdl_player`), and keeps
the waveform: ``waves.fst`` on Icarus, ``waves.vcd`` on Verilator (the formats cocotb's
runner writes; :mod:`synth.activity` reads both).  The run folder is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ftaccel.config import AcceleratorConfig

from .accelerator import rtl_matmul
from .runner import discard_run

__all__ = ["record"]


def record(cfg: AcceleratorConfig, A, B, out: str | Path, *, bias=None, relu: bool = False,
           shift: int = 0, sim: str | None = None, **units) -> tuple[Path, int]:
    """Simulate ``A @ B`` on ``cfg``'s RTL with every signal dumped; move the dump to ``out``.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The design (its ``flow`` must be ``"none"``).
    A, B : array
        The operands (int, within the configured widths).
    out : path
        Where the waveform goes (its suffix is set by the simulator: ``.fst`` / ``.vcd``).
    bias, relu, shift, units
        As :func:`tb.accelerator.rtl_matmul`.
    sim : str, optional
        ``"icarus"`` or ``"verilator"`` (default ``$SIM`` or Icarus).

    Returns
    -------
    (Path, int)
        The waveform file and the cycles played.

    Raises
    ------
    tb.runner.SimulationFailed, tb.runner.SimulatorNotFound
        The simulation could not run.
    """
    run = rtl_matmul(cfg, np.asarray(A, dtype=np.int64), np.asarray(B, dtype=np.int64),
                     bias=bias, relu=relu, shift=shift, sim=sim, waves=True, keep=True, **units)
    run_dir = run.run_dir
    found = [p for p in (run_dir / "waves.fst", run_dir / "waves.vcd") if p.is_file()]
    if not found:
        discard_run(run_dir)
        from .runner import SimulationFailed

        raise SimulationFailed(f"the simulator wrote no waveform in {run_dir}", log=run.log)
    wave = found[0]
    target = Path(out).with_suffix(wave.suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    shutil.move(str(wave), tmp)
    os.replace(tmp, target)
    cycles = len(next(iter(run.program.inputs.values())))
    discard_run(run_dir)
    return target, cycles
