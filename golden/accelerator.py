"""Golden model of the composed accelerator: run a :class:`golden.schedule.Program` through
the cycle-level model and return what the RTL's output ports show, cycle by cycle.

:func:`simulate` returns the same dictionary :func:`tb.runner.run_stream` records from the
simulator (``out_valid`` ``[T]``, ``acc_out`` and ``q_out`` ``[T, C]``), so a testbench
compares the two with one ``np.array_equal`` per port: every cycle, not only the results.
"""

from __future__ import annotations

import numpy as np

from .array import ArrayCycleModel
from .faults import Fault
from .schedule import Program, assemble, build_program

__all__ = ["simulate", "run_matmul"]


def simulate(cfg, program: Program, fault: Fault | None = None) -> dict[str, np.ndarray]:
    """Cycle-by-cycle outputs of the accelerator for ``program`` (with ``fault``, if any)."""
    model = ArrayCycleModel(cfg, fault)
    T = program.cycles
    rec = {name: np.zeros((T, n) if n else T, dtype=np.int64)
           for name, (n, _signed) in program.outputs.items()}
    for t in range(T):
        outs = model.outputs()  # read before this cycle's inputs, as the player does
        for name in rec:
            rec[name][t] = outs[name]
        inputs = {name: arr[t] for name, arr in program.inputs.items()}
        for port, (source, src) in program.loopback.items():
            if src[t] >= 0:
                inputs[port] = rec[source][src[t]]
        model.step(inputs)
    return rec


def run_matmul(cfg, A, B, *, bias=None, relu=False, shift=0, fault: Fault | None = None,
               **units):
    """``(acc, q)`` of ``A @ B`` as the accelerator computes it, cycle model included.

    ``q`` is ``None`` without an output stage; ``units`` are passed to
    :func:`golden.schedule.build_program` (``bypass_map``, ``afd``, ``median_enable``).
    """
    program = build_program(cfg, A, B, bias=bias, relu=relu, shift=shift, fault=fault, **units)
    rec = simulate(cfg, program, fault)
    q = assemble(program, rec, "q_out") if cfg.output_stage else None
    return assemble(program, rec, "acc_out"), q
