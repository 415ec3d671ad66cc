"""RTL fault hooks: the golden model reproduces the faulty outputs exactly.

The sample covers every register kind, low and high bits, corner and middle PEs, stuck-at-0,
stuck-at-1 and transient flips, in every dataflow; each fault is checked cycle by cycle.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from ftaccel.config import FAULT_CONTROLS, FAULT_MODES, FAULT_REGISTERS, AcceleratorConfig
from ftaccel.golden.accelerator import run_matmul
from ftaccel.golden.array import pass_starts
from ftaccel.golden.faults import Fault
from ftaccel.golden.mapping import tiles
from ftaccel.rtl_gen import fault as rtl_fault
from ftaccel.rtl_gen.accelerator import verilog_text
from ftaccel.tb.accelerator import mismatches, rtl_matmul


def _live(cfg: AcceleratorConfig, r: int, c: int) -> int:
    """A cycle in which PE (r, c)'s operand registers hold the second streamed vector.

    The first reaches them r + c + 1 cycles after it enters (after the R load cycles in WS/IS).
    """
    return (0 if cfg.dataflow == "os" else cfg.rows) + r + c + 2


def _sample(cfg: AcceleratorConfig) -> list[Fault]:
    R, C, P = cfg.rows, cfg.cols, cfg.acc_bits
    return [
        Fault(0, 0, "weight", 0, "sa1"),                       # corner, LSB, permanent
        Fault(R - 1, C - 1, "weight", cfg.w_width - 1, "sa1"),  # corner, sign bit
        Fault(1, 2, "act", cfg.a_width - 1, "flip", _live(cfg, 1, 2)),  # middle, transient
        Fault(2, 1, "act", 0, "sa1"),
        Fault(0, C - 1, "psum", P - 2, "sa1"),                 # high partial-sum bit
        Fault(R - 1, 0, "psum", 2, "flip", _live(cfg, R - 1, 0) + 1),
        Fault(1, 1, "weight", 3, "flip", _live(cfg, 1, 1)),    # transient in a held register
        Fault(2, 2, "psum", 0, "sa0"),
        Fault(R - 1, 0, "act", 5, "sa1"),
    ]


def _shadow_sample(cfg: AcceleratorConfig, M: int, K: int, N: int) -> list[Fault]:
    """Faults on the double-buffered PE's shadow and stationary registers.

    Timed against the second pass, whose tile loads while the first one streams.
    """
    stat = "weight" if cfg.dataflow == "ws" else "act"
    R = cfg.rows
    span = M if cfg.dataflow == "ws" else N
    s1 = int(pass_starts(cfg, tiles(cfg.dataflow, R, cfg.cols, M, K, N), span)[1])
    return [
        Fault(1, 2, "shadow", 2, "sa1"),                       # every tile loaded through it
        Fault(0, 1, "shadow", 6, "flip", s1 - R + 1 + 1),      # a value passing during a load
        Fault(2, 0, "shadow", 1, "flip", s1 + 1),              # held, before its swap
        Fault(3, 3, "shadow", 0, "flip", s1 + 3 + 3 + 1),      # after its swap: harmless
        Fault(1, 3, stat, 4, "flip", s1 + 1 + 3 + 2),          # active copy, mid-pass
        Fault(3, 1, stat, 0, "sa0"),                           # active copy only
    ]


@pytest.mark.parametrize("dataflow,double", [("ws", True), ("is", True), ("os", True),
                                             ("ws", False), ("is", False)],
                         ids=["ws", "is", "os", "ws-single", "is-single"])
def test_rtl_faults_equal_golden_faults(rng, dataflow, double):
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow, fault_hooks=True, max_k=64,
                            double_buffer=double)
    A = rng.integers(-128, 128, (5, 7))
    B = rng.integers(-128, 128, (7, 6))
    bias = rng.integers(-50, 50, 6)
    clean_acc, clean_q = run_matmul(cfg, A, B, bias=bias, relu=True, shift=3)
    visible = 0
    # Full tiles (8×8 @ 8×6 on 4×4: every PE holds live data in both K-tiles).
    A2, B2 = rng.integers(-128, 128, (8, 8)), rng.integers(-128, 128, (8, 6))
    clean2, _ = run_matmul(cfg, A2, B2, bias=bias, relu=True, shift=3)
    extra = _shadow_sample(cfg, 8, 8, 6) if cfg.double_buffered else []
    for fault in extra:
        run = rtl_matmul(cfg, A2, B2, bias=bias, relu=True, shift=3, fault=fault)
        bad = mismatches(run.recorded, run.golden)
        assert not bad, f"{fault}: RTL and golden fault model differ: {bad}"
        visible += not np.array_equal(run.acc, clean2)
    # all but the shadow flip after its swap (a stale value) change the product
    assert visible >= len(extra) - 2, f"only {visible} of {len(extra)} shadow faults showed"
    visible = 0
    for fault in _sample(cfg):
        run = rtl_matmul(cfg, A, B, bias=bias, relu=True, shift=3, fault=fault)
        bad = mismatches(run.recorded, run.golden)
        assert not bad, f"{fault}: RTL and golden fault model differ: {bad}"
        visible += not np.array_equal(run.acc, clean_acc)
    # The sample is chosen to hit live data: most faults must show in the result (a few
    # may be masked by the data, e.g. a stuck-at-1 on a bit that is already 1).
    assert visible >= 7, f"only {visible} of 9 faults changed the product"


def test_fault_free_run_with_hooks_equals_plain_product(rng):
    cfg = AcceleratorConfig(rows=3, cols=2, dataflow="ws", fault_hooks=True)
    A, B = rng.integers(-128, 128, (4, 5)), rng.integers(-128, 128, (5, 3))
    run = rtl_matmul(cfg, A, B)
    assert not mismatches(run.recorded, run.golden)
    assert np.array_equal(run.acc, A @ B)


@pytest.mark.verilator
def test_faults_on_verilator(rng):
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="os", fault_hooks=True)
    A, B = rng.integers(-128, 128, (4, 6)), rng.integers(-128, 128, (6, 4))
    for fault in (Fault(1, 2, "psum", 20, "flip", 6), Fault(3, 3, "weight", 7, "sa1")):
        run = rtl_matmul(cfg, A, B, fault=fault, sim="verilator")
        assert not mismatches(run.recorded, run.golden), fault


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_hooks_off_leave_no_trace_in_verilog(dataflow):
    off = verilog_text(AcceleratorConfig(rows=3, cols=3, dataflow=dataflow))
    on = verilog_text(AcceleratorConfig(rows=3, cols=3, dataflow=dataflow, fault_hooks=True))
    body_off = off.split("// Do not edit")[1]  # skip the configuration header
    assert "fault" not in body_off and "mask" not in body_off
    for port in ("fault__enable", "fault__row", "fault__col", "fault__reg", "fault__bit",
                 "fault__mode", "fault__cycle"):
        assert port in on
    assert on.count("_mask") >= 3  # one saboteur per register kind in the PE


def test_verilog_is_deterministic_and_carries_its_configuration():
    cfg = AcceleratorConfig(rows=2, cols=3, dataflow="is", a_width=16, fault_hooks=True)
    a, b = verilog_text(cfg), verilog_text(cfg)
    assert a == b
    assert '"dataflow": "is"' in a and '"a_width": 16' in a
    assert verilog_text(cfg.replace(rows=3)) != a


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_mac_logic_faults_equal_golden_and_bypass_isolates_them(rng, dataflow):
    """Stuck-at and flips on the multiplier's product and the adder's sum.

    Cycle by cycle against the cycle model; on a bypassed PE the same faults leave the (pruned)
    result exactly as without them.
    """
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow, fault_hooks=True, bypass=True,
                            max_k=64)
    A = rng.integers(-128, 128, (5, 7))
    B = rng.integers(-128, 128, (7, 6))
    bmap = np.zeros((4, 4), bool)
    bmap[1, 2] = True
    pruned, _ = run_matmul(cfg, A, B, bypass_map=bmap)
    prod_w = cfg.register_width("product")
    visible = 0
    for fault, isolated in (
            (Fault(2, 1, "product", prod_w - 1, "sa1"), Fault(1, 2, "sum", 9, "flip",
                                                             cfg.rows + _live(cfg, 1, 2))),
            (Fault(1, 1, "sum", 9, "flip", cfg.rows + _live(cfg, 1, 1)),
             Fault(1, 2, "product", 3, "sa1"))):
        run = rtl_matmul(cfg, A, B, fault=fault, bypass_map=bmap)
        assert not mismatches(run.recorded, run.golden), fault
        visible += not np.array_equal(run.acc, pruned)
        run = rtl_matmul(cfg, A, B, fault=isolated, bypass_map=bmap)  # PE (1, 2) is bypassed
        assert not mismatches(run.recorded, run.golden), isolated
        assert np.array_equal(run.acc, pruned), isolated
    assert visible == 2


def test_fault_port_table_matches_the_controls():
    """rtl_gen.fault's port table lists every control with its width and every encoding.

    The register and mode words are read from the table and held against the enums' order
    (the ``reg`` / ``mode`` encodings), the names and widths against ``FAULT_CONTROLS``.
    """
    rows, current = {}, None
    table = rtl_fault.__doc__.split("member      width  meaning")[1]
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s+(.*)$", line)
        if m:
            current = m.group(1)
            rows[current] = [int(m.group(2)), m.group(3)]
        elif current and line.startswith(" "):
            rows[current][1] += " " + line.strip()
    assert {k: v[0] for k, v in rows.items()} == FAULT_CONTROLS
    words = {"weight register": "weight", "activation register": "act",
             "partial sum": "psum", "multiplier product": "product", "adder sum": "sum",
             "shadow register": "shadow", "stuck-at-0": "sa0", "stuck-at-1": "sa1",
             "flip": "flip"}
    for control, names in (("reg", FAULT_REGISTERS), ("mode", FAULT_MODES)):
        found = re.findall(r"(\d+) = ([\w-]+(?: \w+)?)", rows[control][1])
        assert [int(i) for i, _ in found] == list(range(len(names))), control
        assert [next(v for k, v in words.items() if w.startswith(k)) for _, w in found] == \
            list(names), control
