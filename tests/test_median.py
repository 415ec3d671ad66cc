# amaranth: UnusedElaboratable=no
"""Median feature selection (Ozen 2023 §8.4.2, §8.6.2; §8.4.2, §8.6.2).

Golden model, RTL simulation, formal equivalence of the plain and comparator-sharing arrays,
comparator/multiplexer counts.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ftaccel.errors import ConfigError
from ftaccel.golden.median import median3, median5, median_array_stream, median_filter
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.rtl_gen.median import (
    Median3,
    Median5,
    MedianArray,
    SlidingMedian,
    Sort2,
    emit_median_array,
    emit_median_core,
    expected_counts,
)
from ftaccel.synth import equiv
from ftaccel.synth.equiv import prove_equivalent
from ftaccel.synth.yosys import YosysError
from ftaccel.tb import median as tbm

BUILD = Path(__file__).resolve().parent.parent / "build" / "test_median"


# -- independent references (plain Python) -----------------------------------------------------

def _python_filter(row: list[int], window: int, chunk: int | None) -> list[int]:
    """Eq. 8.3 by sorting each zero-padded window of each chunk: no numpy, no min/max."""
    h = window // 2
    chunk = chunk or max(len(row), 1)
    out = []
    for start in range(0, len(row), chunk):
        piece = row[start:start + chunk]
        padded = [0] * h + piece + [0] * h
        out += [sorted(padded[i:i + window])[h] for i in range(len(piece))]
    return out


# -- configuration errors -----------------------------------------------------------------------

@pytest.mark.parametrize("make, field", [
    (lambda: Sort2(width=1), "width"),
    (lambda: Median3(width=33), "width"),
    (lambda: Median5(width=True), "width"),
    (lambda: MedianArray(window=4), "window"),
    (lambda: MedianArray(window="3"), "window"),
    (lambda: MedianArray(variant="fast"), "variant"),
    (lambda: MedianArray(lanes=0), "lanes"),
    (lambda: MedianArray(lanes=257), "lanes"),
    (lambda: SlidingMedian(lanes=2.0), "lanes"),
    (lambda: expected_counts(lanes=4, window=7, variant="plain"), "window"),
])
def test_bad_parameters_raise_config_error(make, field):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.field == field
    assert field in str(err.value)


def test_golden_rejects_bad_arguments():
    with pytest.raises(ValueError, match="window"):
        median_filter([1, 2, 3], 4)
    with pytest.raises(ValueError, match="chunk"):
        median_filter([1, 2, 3], 3, chunk=0)
    with pytest.raises(ValueError, match="integers"):
        median_filter(np.array([1.5, 2.0]), 3)


# -- golden model against independent implementations -----------------------------------------

@pytest.mark.parametrize("window", [3, 5])
def test_golden_units_match_sorting(window):
    seed = 1000 + window
    print("seed", seed)
    rng = np.random.default_rng(seed)
    # A small alphabet makes ties frequent; all orderings of 5 values appear.
    x = rng.integers(-3, 4, size=(window, 20000))
    got = (median3 if window == 3 else median5)(*x)
    assert np.array_equal(got, np.sort(x, axis=0)[window // 2])


@pytest.mark.parametrize("window", [3, 5])
@pytest.mark.parametrize("chunk", [None, 1, 4, 7, 16])
def test_golden_filter_matches_python_and_np_median(window, chunk):
    seed = 2000 + 10 * window + (chunk or 0)
    print("seed", seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(6, 23))
    x[0] = rng.integers(-2, 3, size=23)  # ties
    got = median_filter(x, window, chunk=chunk)
    expect = np.array([_python_filter(list(map(int, r)), window, chunk) for r in x])
    assert np.array_equal(got, expect)
    if chunk is None:
        # np.median over a padded sliding window: odd windows give exact integers.
        h = window // 2
        padded = np.pad(x, [(0, 0), (h, h)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)
        assert np.array_equal(got, np.median(windows, axis=-1).astype(np.int64))


def test_golden_chunks_are_filtered_independently():
    # A spike at the first element of a chunk must not reach the previous chunk.
    x = np.array([5, 5, 5, 5, 100, 100, 100, 100])
    assert median_filter(x, 3, chunk=4).tolist() == [5, 5, 5, 5, 100, 100, 100, 100]
    assert median_filter(x, 3).tolist() == [5, 5, 5, 5, 100, 100, 100, 100]
    # The padding at a chunk border is zero, not the neighbouring chunk's value.
    y = np.array([7, 7, 7, 7, 7, 7])
    assert median_filter(y, 5, chunk=3).tolist() == [7, 7, 7, 7, 7, 7]
    z = np.array([-7, 9, 9, -7, 9, 9])
    assert median_filter(z, 3, chunk=3).tolist() == [0, 9, 9, 0, 9, 9]
    assert median_filter(z, 3).tolist() == [0, 9, 9, 9, 9, 9]


def test_golden_stream_latency_and_enable():
    rng = np.random.default_rng(7)
    print("seed", 7)
    data = rng.integers(-50, 50, size=(12, 6))
    valid = rng.integers(0, 2, size=12)
    enable = rng.integers(0, 2, size=12)
    out, out_valid = median_array_stream(data, valid, enable, 5)
    assert out[0].tolist() == [0] * 6 and out_valid[0] == 0
    for t in range(11):
        row = list(map(int, data[t]))
        expect = _python_filter(row, 5, None) if enable[t] else row
        assert out[t + 1].tolist() == expect
        assert out_valid[t + 1] == valid[t]


# -- comparator and multiplexer counts from the netlist -----------------------------------------

#: Per window after the first: the plain units of Fig. 8.10 (3 comparators / 4 muxes, 7 / 10)
#: and the shared figures of Ozen 2023 §8.6.2 (§8.6.2–8.7; 4 muxes for Median-5 is our
#: construction, the seed gives no figure).
PER_WINDOW = {("plain", 3): (3, 4), ("shared", 3): (2, 2),
              ("plain", 5): (7, 10), ("shared", 5): (4, 4)}


@pytest.mark.synth
@pytest.mark.parametrize("window", [3, 5])
@pytest.mark.parametrize("variant", ["plain", "shared"])
def test_netlist_counts(window, variant):
    counts = {}
    for n in (1, 6):
        c = equiv.median_cell_counts(width=8, lanes=n, window=window, variant=variant,
                                   work_dir=BUILD / "counts")
        print(window, variant, n, c["comparators"], c["muxes"], c["cells"])
        assert (c["comparators"], c["muxes"]) == (c["expected"]["comparators"],
                                                  c["expected"]["muxes"])
        counts[n] = (c["comparators"], c["muxes"])
    per_window = tuple((counts[6][i] - counts[1][i]) / 5 for i in range(2))
    assert per_window == PER_WINDOW[variant, window]
    paper = equiv.PAPER_PER_WINDOW[variant, window]
    assert per_window[0] == paper[0] and paper[1] in (None, per_window[1])
    if variant == "shared":
        # The first window costs the whole unit's comparators (3 for Median-3, all 10 pairs
        # of five values for Median-5).
        assert counts[1][0] == {3: 3, 5: 10}[window]


# -- formal proofs ------------------------------------------------------------------------------

@pytest.mark.synth
def test_sort2_proven():
    work = BUILD / "proof_sort2"
    path = write_verilog(Sort2(width=8), "sort2_8b", {"unit": "sort2", "width": 8},
                         work / "sort2.v")
    ref = work / "ref_sort2.v"
    ref.write_text(
        "module ref_sort2(a, b, lo, hi);\n  input [7:0] a, b;\n  output [7:0] lo, hi;\n"
        "  assign lo = ($signed(a) <= $signed(b)) ? a : b;\n"
        "  assign hi = ($signed(a) <= $signed(b)) ? b : a;\nendmodule\n")
    r = prove_equivalent(ref, path, gold_top="ref_sort2", gate_top="sort2_8b",
                         work_dir=work / "proof")
    assert r.equivalent, r.summary
    assert set(r.outputs) == {"lo", "hi"}


@pytest.mark.synth
@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("window", [3, 5])
def test_unit_proven_equal_to_sorting_reference(window, width):
    r = equiv.prove_median_unit(width=width, window=window,
                                work_dir=BUILD / f"proof_unit{window}_{width}")
    print(f"Median-{window} {width}-bit vs bubble sort: {r.summary} in {r.seconds:.1f} s")
    assert r.equivalent, f"{r.summary}; see {r.log}"


@pytest.mark.synth
@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("window", [3, 5])
def test_shared_array_proven_equal_to_plain(window, width):
    # The whole stage (padding, sharing core, enable multiplexer, register, out_valid), by
    # temporal induction from reset; n = 6 leaves windows that touch no padding.
    r = equiv.prove_median_array(width=width, lanes=6, window=window, variant="shared",
                                 gold="plain", work_dir=BUILD / f"proof_shared{window}_{width}")
    print(f"shared vs plain, w={window}, {width}-bit, n=6: {r.summary} in {r.seconds:.1f} s")
    assert r.equivalent, f"{r.summary}; see {r.log}"
    assert len(r.outputs) == 7


@pytest.mark.synth
@pytest.mark.parametrize("window", [3, 5])
def test_windowed_shared_lane_proven_equal_to_plain(window):
    """IS / OS median in time: the comparator-sharing lane equals the plain one from reset."""
    r = equiv.prove_windowed_median(width=8, window=window,
                                    work_dir=BUILD / f"proof_windowed{window}")
    print(f"windowed shared vs plain, w={window}, 8-bit: {r.summary} in {r.seconds:.1f} s")
    assert r.equivalent, f"{r.summary}; see {r.log}"
    assert set(r.outputs) == {"y", "y_first", "y_last"}


@pytest.mark.synth
def test_windowed_proof_fails_on_another_design():
    """The sequential proof is not vacuous: a Median-5 lane is not a Median-3 lane."""
    from ftaccel.rtl_gen.median import emit_windowed_median_lane

    work = BUILD / "proof_windowed_broken"
    gate, top = emit_windowed_median_lane(width=8, window=5, variant="shared", out_dir=work)
    r = equiv.prove_windowed_median(width=8, window=3, work_dir=work, gate=gate, gate_top=top)
    assert not r.equivalent and "y" in r.failed


@pytest.mark.synth
@pytest.mark.parametrize("width", [8, pytest.param(16, marks=pytest.mark.slow)])
@pytest.mark.parametrize("window", [3, 5])
def test_plain_array_proven_equal_to_reference(window, width):
    r = equiv.prove_median_array(width=width, lanes=6, window=window, variant="plain",
                                 gold="reference", work_dir=BUILD / f"proof_ref{window}_{width}")
    print(f"plain vs behavioural, w={window}, {width}-bit, n=6: {r.summary} "
          f"in {r.seconds:.1f} s")
    assert r.equivalent, f"{r.summary}; see {r.log}"


@pytest.mark.synth
@pytest.mark.slow
@pytest.mark.parametrize("window", [3, 5])
def test_shared_core_proven_equal_to_plain_16bit(window):
    # Without padding every window of the core sees free inputs.
    r = equiv.prove_median_cores(width=16, lanes=4, window=window,
                                 work_dir=BUILD / f"proof_core{window}_16")
    assert r.equivalent, f"{r.summary}; see {r.log}"


_TERNARY = re.compile(r"^(\s*assign .+? = )(.+?) \? (.+?) : (.+?);\s*$")


def _swap_last_mux(text: str) -> str:
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        m = _TERNARY.match(lines[i])
        if m:
            head, sel, a, b = m.groups()
            lines[i] = f"{head}{sel} ? {b} : {a};"
            return "\n".join(lines) + "\n"
    raise AssertionError("no multiplexer found")


def _unsigned_first_comparator(text: str) -> str:
    new, count = re.subn(r"\$signed\((\S+?)\) < \$signed\((\S+?)\)", r"\1 < \2", text, count=1)
    assert count == 1
    return new


@pytest.mark.synth
@pytest.mark.parametrize("window", [3, 5])
@pytest.mark.parametrize("mutation", [_swap_last_mux, _unsigned_first_comparator])
def test_broken_shared_core_fails_proof(window, mutation):
    work = BUILD / f"proof_broken{window}_{mutation.__name__}"
    path, top = emit_median_core(width=8, lanes=2, window=window, variant="shared",
                                       out_dir=work)
    broken = work / f"broken_{top}.v"
    broken.write_text(mutation(path.read_text()))
    assert broken.read_text() != path.read_text()
    r = equiv.prove_median_cores(width=8, lanes=2, window=window, work_dir=work, gate=broken,
                                 gate_top=top)
    print(r.summary)
    assert not r.equivalent
    assert r.failed and set(r.failed) <= set(r.outputs)
    assert "FAIL" in r.log.read_text()  # the counterexample is in the log


@pytest.mark.synth
def test_broken_sequential_design_fails_proof():
    work = BUILD / "proof_broken_seq"
    work.mkdir(parents=True, exist_ok=True)
    gate, gate_top = emit_median_array(width=8, lanes=4, window=3, variant="shared",
                                             out_dir=work)
    ref = work / "ref_inverted_enable.v"
    text = equiv.median_array_reference(width=8, lanes=4, window=3, name="ref_inv")
    ref.write_text(text.replace("<= ctl__enable ?", "<= !ctl__enable ?"))
    r = prove_equivalent(ref, gate, gold_top="ref_inv", gate_top=gate_top,
                         work_dir=work / "proof", sequential=True)
    assert not r.equivalent
    assert "o__valid" not in r.failed and len(r.failed) == 4


@pytest.mark.synth
def test_combinational_proof_refuses_registers():
    work = BUILD / "proof_refuse"
    path, top = emit_median_array(width=4, lanes=2, window=3, variant="plain", out_dir=work)
    with pytest.raises(YosysError, match="registers"):
        prove_equivalent(path, path, gold_top=top, gate_top=top, work_dir=work / "proof")


# -- simulation ---------------------------------------------------------------------------------

SIM_CASES = [
    # window, variant, width, n, simulator
    (3, "plain", 8, 8, "icarus"),
    (3, "shared", 8, 8, "icarus"),
    (5, "plain", 8, 8, "icarus"),
    (5, "shared", 8, 8, "icarus"),
    (5, "shared", 16, 8, "icarus"),
    (3, "shared", 32, 5, "icarus"),
    (5, "plain", 3, 4, "icarus"),
    (5, "shared", 8, 1, "icarus"),
    pytest.param(5, "shared", 16, 8, "verilator", marks=pytest.mark.verilator),
    pytest.param(3, "plain", 8, 8, "verilator", marks=pytest.mark.verilator),
    pytest.param(3, "shared", 8, 8, "verilator", marks=pytest.mark.verilator),
    pytest.param(5, "plain", 16, 8, "verilator", marks=pytest.mark.verilator),
]


@pytest.mark.parametrize("window, variant, width, n, sim", SIM_CASES)
def test_median_array_simulation(window, variant, width, n, sim):
    seed = window * 1000 + width * 10 + n + (500 if variant == "shared" else 0)
    print("seed", seed)
    rng = np.random.default_rng(seed)
    stim = tbm.build_stimulus(rng, lanes=n, width=width)
    build = BUILD / f"sim_{sim}_w{window}_{variant}_{width}b_n{n}"
    rtl, gold = tbm.simulate_array(width=width, lanes=n, window=window, variant=variant,
                                   stimulus=stim, build_dir=build, sim=sim)
    out, valid = rtl["o__data"], rtl["o__valid"]
    rows = len(stim.data)

    # Bit-exact against the golden model, every cycle (including invalid ones).
    bad = np.argwhere(out != gold["o__data"])
    assert bad.size == 0, f"first mismatch at cycle/lane {bad[0].tolist()}"
    assert np.array_equal(valid, gold["o__valid"])

    # Latency one cycle, one vector per cycle: row t's result is visible in row t+1, for every
    # t, with no stall between consecutive rows.
    assert valid[0] == 0 and np.array_equal(valid[1:], stim.valid[:-1])
    filtered = median_filter(stim.data, window)
    for t in range(rows - 1):
        expect = filtered[t] if stim.enable[t] else stim.data[t]
        assert np.array_equal(out[t + 1], expect), f"cycle {t}"

    # enable low: the vector passes unfiltered.
    off = np.flatnonzero(stim.enable[:-1] == 0)
    assert off.size > 0
    assert np.array_equal(out[off + 1], stim.data[off])

    # Extremes survive: the result is always one of the window's values (or padding zero).
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    assert out.min() >= lo and out.max() <= hi

    # Spike errors: a window with one corrupted input and otherwise correct neighbours gives
    # the clean result; in any window the output stays within the clean values' range.
    h = window // 2
    checked = 0
    for row, lane, clean in stim.spikes:
        if not stim.enable[row]:
            continue
        padded = np.concatenate([np.zeros(h, np.int64), clean, np.zeros(h, np.int64)])
        got = out[row + 1]
        for i in range(max(0, lane - h), min(n, lane + h + 1)):
            others = [int(padded[k]) for k in range(i, i + window) if k != lane + h]
            assert min(others) <= got[i] <= max(others), (row, lane, i)
            real = [k for k in range(i, i + window) if h <= k < n + h and k != lane + h]
            if len(real) >= h + 1 and np.all(clean == clean[0]):
                assert got[i] == clean[0], (row, lane, i)  # the spike is removed
                checked += 1
    if n >= 3:
        assert checked > 0
