"""cocotb harness of the in-simulator player (:mod:`tb.hdl_player`).

Started by :func:`tb.runner.play_file` with toplevel ``ftaccel_player``.  The HDL plays the
stimulus file and records every output by itself; this test only waits for the player's
``ftp_done`` (or a time limit, ``TB_TIME_LIMIT_NS``) and fails if the player did not finish or
refused the stimulus.  No Python runs in the simulation loop.  Kept apart from
:mod:`tb.player` and free of numpy, so that the Python started inside every simulator run
imports as little as possible.
"""

from __future__ import annotations

import os

import cocotb
from cocotb.triggers import First, RisingEdge, Timer


@cocotb.test()
async def play_hdl(dut):
    """Wait for the HDL player to finish; fail if it did not, or refused the stimulus."""
    limit = int(os.environ.get("TB_TIME_LIMIT_NS", "0")) or 10**9
    if not dut.ftp_done.value.is_resolvable or int(dut.ftp_done.value) != 1:
        await First(RisingEdge(dut.ftp_done), Timer(limit, unit="ns"))
    assert int(dut.ftp_done.value) == 1, f"the player did not finish within {limit} ns"
    assert int(dut.ftp_status.value) == 1, "the player refused the stimulus (FTPLAYER ERROR above)"
