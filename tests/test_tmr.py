# amaranth: UnusedElaboratable=no
"""Selective-TMR voters, the LCU's baseline (Ahmadilivani 2025 §4.3.1; §5.3.3).

* golden word / bitwise voters against independent plain-Python implementations (exhaustive
  at 3 and 4 bits, random at 8/16);
* RTL voters against the golden model on the *same* fault scenarios as the LCU
  (:func:`tb.lcu.fault_scenarios`: faults on copies 0 and 1, copy 2 clean), with the
  behaviour pinned per scenario, and the three protections compared side by side;
* bad parameters raise ``ConfigError``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ftaccel.errors import ConfigError
from ftaccel.golden.bits import flip_bit
from ftaccel.golden.lcu import lcu
from ftaccel.golden.tmr import bitwise_vote, word_vote
from ftaccel.rtl_gen.emit import to_verilog
from ftaccel.rtl_gen.tmr import BitwiseVoter, WordVoter
from ftaccel.tb.lcu import SCENARIOS, fault_scenarios
from ftaccel.tb.tmr import run_voter

BUILD = Path(__file__).resolve().parent.parent / "build" / "tmr"


def _ref_word(a: int, b: int, c: int) -> int:
    word, count = Counter([a, b, c]).most_common(1)[0]
    return word if count >= 2 else min(a, b, c)


def _ref_bitwise(a: int, b: int, c: int, width: int) -> int:
    out = 0
    for i in range(width):
        ones = ((a >> i) & 1) + ((b >> i) & 1) + ((c >> i) & 1)
        out |= (ones >= 2) << i
    return out - (1 << width) if out >> (width - 1) else out


@pytest.mark.parametrize("width", [3, 4])
def test_golden_voters_exhaustive(width):
    vals = range(-(1 << (width - 1)), 1 << (width - 1))
    trip = np.array(list(itertools.product(vals, repeat=3)))
    a, b, c = trip.T
    assert word_vote(a, b, c, width=width).tolist() == [_ref_word(*t) for t in trip.tolist()]
    assert bitwise_vote(a, b, c, width=width).tolist() == \
        [_ref_bitwise(*t, width) for t in trip.tolist()]


@pytest.mark.parametrize("width", [8, 16])
def test_golden_voters_random(rng, width):
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    base = rng.integers(lo, hi, 3000)
    # mostly near-agreeing copies so that every branch is taken
    cop = np.stack([base, base, base], axis=1)
    pick = rng.integers(0, 4, 3000)
    for k in range(3):
        r = rng.integers(lo, hi, 3000)
        cop[:, k] = np.where((pick == k) | (pick == 3), r, cop[:, k])
    a, b, c = cop.T
    assert word_vote(a, b, c, width=width).tolist() == [_ref_word(*t) for t in cop.tolist()]
    assert bitwise_vote(a, b, c, width=width).tolist() == \
        [_ref_bitwise(*t, width) for t in cop.tolist()]


def test_golden_voters_bad_input():
    with pytest.raises(ValueError, match="8-bit signed"):
        word_vote(200, 1, 1, width=8)
    with pytest.raises(ValueError, match="width"):
        bitwise_vote(1, 1, 1, width=0)


def _check_voter(kind: str, width: int, scen: dict, out: dict) -> None:
    """Pinned behaviour under the LCU's fault scenarios (copy 2 is never faulty)."""
    for name in SCENARIOS:
        clean, cop, bits = (scen[name][k] for k in ("clean", "copies", "bits"))
        got = out[name]
        if name in ("clean", "one_0to1", "one_1to0", "negative_clean", "negative_one"):
            assert np.array_equal(got, clean), (kind, name)  # any single fault masked
        elif name in ("both_msb_0to1", "two_same_bit"):
            # two copies agree on the same wrong word: both voters output it
            assert np.array_equal(got, flip_bit(clean, bits[:, 0], width)), (kind, name)
        elif name == "two_diff_bits":
            if kind == "bitwise":  # each bit still has a 2-of-3 majority for the clean value
                assert np.array_equal(got, clean), (kind, name)
            else:  # three different words: the minimum
                assert np.array_equal(got, cop.min(axis=1)), (kind, name)


@pytest.mark.parametrize(("sim", "kind", "width"), [
    ("icarus", "word", 8), ("icarus", "word", 16), ("icarus", "bitwise", 8),
    ("icarus", "bitwise", 16), pytest.param("verilator", "word", 8, marks=pytest.mark.verilator),
])
def test_rtl_voter_fault_scenarios(rng, sim, kind, width):
    scen = fault_scenarios(rng, 48, width=width)
    cop = np.concatenate([scen[k]["copies"] for k in SCENARIOS])
    # plus random triples: all equal, two equal, all different
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    r = rng.integers(lo, hi, (300, 3))
    r[:100, 1] = r[:100, 0]
    r[100:150, 2] = r[100:150, 1]
    allc = np.concatenate([cop, r])
    got = run_voter(kind, allc, width=width, build_dir=BUILD / f"{kind}_w{width}", sim=sim)
    golden = word_vote if kind == "word" else bitwise_vote
    assert np.array_equal(got, golden(*allc.T, width=width))
    out = dict(zip(SCENARIOS, np.split(got[: len(cop)], len(SCENARIOS)), strict=True))
    _check_voter(kind, width, scen, out)


def test_protection_comparison(rng):
    """LCU vs word vs bitwise voter on the same faults.

    Fraction of outputs equal to the fault-free value per scenario (golden level; the RTL equals the
    golden models above).
    """
    width = 8
    scen = fault_scenarios(rng, 2000, width=width)
    rows = []
    for name in SCENARIOS:
        clean, cop = scen[name]["clean"], scen[name]["copies"]
        rates = [float(np.mean(f == clean)) for f in (
            lcu(cop[:, 0], cop[:, 1], width=width),
            word_vote(*cop.T, width=width), bitwise_vote(*cop.T, width=width))]
        rows.append((name, *rates))
    print("\nscenario          LCU   word  bitwise (fraction equal to fault-free)")
    for name, *rates in rows:
        print(f"{name:16s} " + " ".join(f"{x:5.2f}" for x in rates))
    table = {r[0]: r[1:] for r in rows}
    assert table["one_0to1"] == (1.0, 1.0, 1.0)
    assert table["one_1to0"][0] == 0.0 and table["one_1to0"][1:] == (1.0, 1.0)
    assert table["negative_clean"][0] < 0.6 and table["negative_clean"][1:] == (1.0, 1.0)
    assert table["both_msb_0to1"] == (1.0, 0.0, 0.0)  # the mask beats TMR here


def test_voter_verilog_and_params():
    for cls in (WordVoter, BitwiseVoter):
        text = to_verilog(cls(width=8, registered=True), "v_t", {})
        assert "module v_t" in text and "clk" in text
        for kw, field in [({"width": 1}, "width"), ({"width": "8"}, "width"),
                          ({"registered": None}, "registered")]:
            with pytest.raises(ConfigError) as exc:
                cls(**kw)
            assert exc.value.field == field
