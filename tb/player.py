"""cocotb test started by :func:`tb.runner.run_stream` with ``player="cocotb"``.

The per-cycle Python player, on the design itself as toplevel: it drives every input and
reads every output from Python in every cycle (the interactive way).
The default path is the in-simulator player (:mod:`tb.hdl_player`, harness
:mod:`tb.harness`), which needs no Python per cycle; this one is kept as the reference the HDL
player is checked against and as an example for hand-written cocotb tests.  The files it reads
and writes are named by the environment (``TB_STIMULUS``, ``TB_PORTS``, ``TB_RECORD``).
Timing, identical in both players and for every unit:

* reset (``rst`` high) for ``TB_RESET_CYCLES`` rising edges, released at a falling edge;
* then, at each falling edge ``t = 0, 1, …``: first read all outputs (row ``t`` of the
  record), then write row ``t`` of the stimulus.  The next rising edge samples it.
* a *loopback* port takes, in the cycles its source index is set, a row recorded earlier from
  an output port instead of the stimulus row (partial sums of one K-tile fed to the next).

Writing on the falling edge keeps inputs away from the sampling edge, which makes Icarus and
Verilator agree (a port written on the rising edge gave different results on the two).  Only
ports whose value changes are written, to save time.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge
from cocotb.types import Logic


def _handles(dut, name: str, n: int):
    if n == 0:
        return [getattr(dut, name)]
    return [getattr(dut, f"{name}__{i}") for i in range(n)]


def _read(handle, signed: bool) -> int:
    value = handle.value
    if not value.is_resolvable:
        return 0  # registers read X before reset has reached them; never compared
    if isinstance(value, Logic):  # one-bit ports
        return int(value)
    return value.to_signed() if signed else value.to_unsigned()


@cocotb.test()
async def play(dut):
    """Play ``TB_STIMULUS`` into the DUT cycle by cycle and write its outputs to ``TB_RECORD``."""
    with np.load(os.environ["TB_STIMULUS"]) as data:
        stimulus = {k[4:]: data[k] for k in data.files if k.startswith("in__")}
        loopback = {}
        for k in data.files:
            if k.startswith("lb__"):
                port, source = k[4:].split("__")
                loopback[port] = (source, data[k])
    ports = []
    with open(os.environ["TB_PORTS"]) as fh:
        lines = fh.read().splitlines()
    for line in lines:
        name, n, signed = line.split()
        ports.append((name, int(n), bool(int(signed))))
    cycles = len(next(iter(stimulus.values())))

    in_handles = {}
    for name, arr in stimulus.items():
        n = 0 if arr.ndim == 1 else arr.shape[1]
        in_handles[name] = (_handles(dut, name, n), arr.reshape(cycles, -1), )
    out_handles = [(name, _handles(dut, name, n), n, signed) for name, n, signed in ports]
    record = {name: np.zeros((cycles, max(n, 1)), dtype=np.int64) for name, n, _ in ports}

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for hs, _ in in_handles.values():
        for h in hs:
            h.value = 0
    for _ in range(int(os.environ.get("TB_RESET_CYCLES", "2"))):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    last = {name: [None] * len(hs) for name, (hs, _) in in_handles.items()}
    for t in range(cycles):
        for name, hs, _n, signed in out_handles:
            row = record[name][t]
            for i, h in enumerate(hs):
                row[i] = _read(h, signed)
        for name, (hs, arr) in in_handles.items():
            prev = last[name]
            row = arr[t]
            if name in loopback and loopback[name][1][t] >= 0:
                source, src = loopback[name]
                row = record[source][src[t]]
            for i, h in enumerate(hs):
                v = int(row[i])
                if v != prev[i]:
                    h.value = v if v >= 0 else v + (1 << len(h))
                    prev[i] = v
        await FallingEdge(dut.clk)

    out = {name: (rec[:, 0] if n == 0 else rec) for (name, _, n, _), rec in
           zip(out_handles, record.values(), strict=True)}
    np.savez(os.environ["TB_RECORD"], **out)
