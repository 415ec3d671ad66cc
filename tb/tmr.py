"""Stimulus runner for the selective-TMR voters (:mod:`rtl_gen.tmr`).

The fault scenarios are those of :func:`tb.lcu.fault_scenarios` (three copies per case, faults
on copies 0 and 1), so the voters and the LCU are checked against the same faults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.rtl_gen.tmr import BitwiseVoter, WordVoter
from ftaccel.tb.runner import default_sim, run_stream

__all__ = ["VOTERS", "generate_voter", "run_voter"]

#: Voter kinds: name -> component class.
VOTERS = {"word": WordVoter, "bitwise": BitwiseVoter}


def generate_voter(kind: str, *, width: int, build_dir: Path) -> tuple[Path, str]:
    """Emit the registered voter of ``kind`` (``"word"`` or ``"bitwise"``)."""
    if kind not in VOTERS:
        raise ValueError(f"invalid voter kind {kind!r}: one of {', '.join(VOTERS)}")
    dut = VOTERS[kind](width=width, registered=True)
    name = f"tmr_{kind}_voter_w{width}"
    return write_verilog(dut, name, dut.config(), Path(build_dir) / f"{name}.v"), name


def run_voter(kind: str, copies, *, width: int, build_dir: Path,
              sim: str | None = None) -> np.ndarray:
    """Voter outputs for rows of ``copies`` ``[T, 3]``, aligned with the input rows."""
    sim = (sim or default_sim()).lower()
    path, name = generate_voter(kind, width=width, build_dir=build_dir)
    c = np.asarray(copies, dtype=np.int64).reshape(-1, 3)
    c = np.concatenate([c, np.zeros((1, 3), dtype=np.int64)])
    res = run_stream(verilog=[path], toplevel=name,
                     inputs={"a": c[:, 0], "b": c[:, 1], "c": c[:, 2]},
                     outputs={"out": (0, True)}, build_dir=Path(build_dir) / sim, sim=sim)
    return res.outputs["out"][1:]
