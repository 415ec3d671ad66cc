# amaranth: UnusedElaboratable=no
"""Output stage with per-lane split requantisation (Ahmadilivani 2025 §4.3.1).

* golden :func:`golden.output_stage.requantize` against Python integers for every shift
  0 … 64 (64 = the largest port value 63 plus the split's one) over the whole int64 range;
* golden :func:`golden.output_stage.output_stage` with a split mask against a plain
  element-by-element reference, and equal to :func:`golden.split.layer_forward` of a
  :class:`golden.split.SplitLayer` (the mask = the split columns) on random ReLU layers;
* RTL :class:`rtl_gen.output_stage.OutputStage` with ``split=True`` on Icarus against the
  golden model, random rows (relu, shift 0 … 63 and split bits per row), saturation and the
  largest shift included;
* ``split=False`` leaves the Verilog byte-identical (pinned hashes recorded before the option
  existed) and adds no port; bad parameters raise ``ConfigError`` / ``ValueError``;
* the fixed-point requantisation (issue 23): :func:`golden.output_stage.fixed_requantize`
  against gemmlowp written out in plain Python; the register-level
  :class:`golden.output_stage.FixedRequantModel` against the same, on int32 and beyond (33-bit
  biased accumulators, shifts 62 and 63, ties of both roundings); the RTL lanes
  (``OutputStage(multiplier=True)``) on Icarus against it row by row, the select switching
  between the two paths.
"""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path

import amaranth
import numpy as np
import pytest

from ftaccel.errors import ConfigError
from ftaccel.golden.output_stage import (
    FIXED_LATENCY,
    MAX_RIGHT_SHIFT,
    MAX_SHIFT,
    FixedRequantModel,
    Requant,
    fixed_requantize,
    output_stage,
    quantize_multiplier,
    requantize,
)
from ftaccel.golden.split import split_layer
from ftaccel.rtl_gen.emit import to_verilog, write_verilog
from ftaccel.rtl_gen.output_stage import SHIFT_WIDTH, OutputLane, OutputStage
from ftaccel.tb.runner import run_stream

BUILD = Path(__file__).resolve().parent.parent / "build" / "output_stage"


def _ref(y: int, shift: int, bits: int) -> int:
    """Plain Python: round half up by adding half an LSB, floor-divide, saturate."""
    if shift > 0:
        y = (y + 2 ** (shift - 1)) // 2 ** shift
    return max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, y))


def test_requantize_every_shift_matches_python(rng):
    y = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, 300, dtype=np.int64,
                     endpoint=True)
    y[:8] = [0, 1, -1, 2 ** 62, -(2 ** 62), 2 ** 63 - 1, -(2 ** 63), 3]
    assert MAX_SHIFT == (1 << SHIFT_WIDTH) - 1  # the golden copy of the port's range
    for shift in range(MAX_SHIFT + 2):
        for bits in (7, 8, 16):
            got = requantize(y, shift, bits)
            assert got.tolist() == [_ref(int(v), shift, bits) for v in y], (shift, bits)
    # the largest shifts give 0 for anything an accumulator (<= 60 bits) plus bias can hold
    big = np.array([2 ** 61, -(2 ** 61), 12345], dtype=np.int64)
    assert not requantize(big, 63, 8).any() and not requantize(big, 64, 7).any()


def test_output_stage_split_matches_reference(rng):
    for _ in range(40):
        cols, width = int(rng.integers(1, 9)), int(rng.choice([2, 3, 8, 16]))
        acc = rng.integers(-(1 << 30), 1 << 30, (5, cols))
        bias = rng.integers(-(1 << 20), 1 << 20, cols)
        relu, shift = bool(rng.integers(2)), int(rng.integers(0, MAX_SHIFT + 1))
        if rng.random() < 0.7:
            shift = int(rng.integers(0, 24))
        split = rng.random(cols) < 0.5
        got = output_stage(acc, bias, relu, shift, width, split=split)
        ref = [[_ref(max(int(a) + int(b), 0) if relu else int(a) + int(b),
                     shift + int(s), width - int(s))
                for a, b, s in zip(row, bias, split, strict=True)] for row in acc]
        assert got.tolist() == ref
        # no split mask, or an all-false one, is the plain output stage
        plain = output_stage(acc, bias, relu, shift, width)
        assert np.array_equal(output_stage(acc, bias, relu, shift, width,
                                           split=np.zeros(cols, bool)), plain)


@pytest.mark.parametrize("a_width", [8, 16])
def test_output_stage_split_equals_split_layer(rng, a_width):
    """The output stage with the split mask gives exactly layer_forward of the split layer.

    For a SplitLayer with one shift for all columns (the hardware has one shift port).
    """
    for _ in range(30):
        k, n = int(rng.integers(2, 40)), int(rng.integers(2, 16))
        w = rng.integers(-128, 128, (k, n))
        b = rng.integers(-5000, 5000, n)
        shift = int(rng.integers(0, 14))
        crit = rng.choice(n, int(rng.integers(0, n + 1)), replace=False)
        lay = split_layer(w, b, shift, crit, a_width=a_width)
        x = rng.integers(0, 1 << (a_width - 1), (int(rng.integers(1, 8)), k))
        mask = lay.out_bits < a_width
        assert mask.sum() == 2 * crit.size and np.array_equal(lay.shift, shift + mask)
        got = output_stage(x @ lay.weights, lay.bias, True, shift, a_width, split=mask)
        assert np.array_equal(got, lay.forward(x))
        assert np.array_equal(got[:, lay.pairs[:, 0]], got[:, lay.pairs[:, 1]])  # halves equal


def _rtl_rows(rng, t: int, cols: int, acc_width: int):
    lo, hi = -(1 << (acc_width - 1)), 1 << (acc_width - 1)
    acc = rng.integers(lo, hi, (t, cols))
    # small accumulators too, so that the rounding (not only saturation) is exercised
    acc[t // 2:] >>= rng.integers(0, acc_width, (t - t // 2, cols))
    acc[:4] = [[lo] * cols, [hi - 1] * cols, [0] * cols, [-1] * cols]
    bias = rng.integers(lo, hi, (t, cols)) >> rng.integers(0, acc_width, (t, 1))
    shift = np.where(rng.random(t) < 0.8, rng.integers(0, acc_width + 2, t),
                     rng.integers(0, MAX_SHIFT + 1, t))
    shift[:8] = MAX_SHIFT  # the largest shift: split lanes shift by 64
    relu = rng.integers(0, 2, t)
    split = rng.integers(0, 1 << cols, t)
    split[:4] = (1 << cols) - 1
    return acc, bias, shift, relu, split


@pytest.mark.parametrize(("cols", "acc_width", "out_width"), [(5, 20, 8), (3, 40, 16)])
def test_rtl_output_stage_split(rng, cols, acc_width, out_width):
    dut = OutputStage(lanes=cols, acc_width=acc_width, out_width=out_width, split=True)
    name = f"ostage_split_c{cols}_a{acc_width}_o{out_width}"
    path = write_verilog(dut, name, {"unit": "output_stage", "split": True},
                         BUILD / name / f"{name}.v")
    t = 600
    acc, bias, shift, relu, split = _rtl_rows(rng, t, cols, acc_width)
    valid = rng.integers(0, 2, t)
    res = run_stream(verilog=[path], toplevel=name, build_dir=BUILD / name / "icarus",
                     sim="icarus",
                     inputs={"acc_in": np.vstack([acc, acc[:1]]),
                             "bias": np.vstack([bias, bias[:1]]),
                             "shift": np.append(shift, 0), "relu": np.append(relu, 0),
                             "split": np.append(split, 0), "in_valid": np.append(valid, 0)},
                     outputs={"q_out": (cols, True), "acc_out": (cols, True),
                              "out_valid": (0, False)})
    q, acc_out, out_valid = (res.outputs[k][1:] for k in ("q_out", "acc_out", "out_valid"))
    bits = (split[:, None] >> np.arange(cols)) & 1
    exp = np.array([output_stage(acc[i], bias[i], bool(relu[i]), int(shift[i]), out_width,
                                 split=bits[i].astype(bool)) for i in range(t)])
    bad = np.flatnonzero((q != exp).any(axis=1))
    assert bad.size == 0, f"row {bad[0]}: {q[bad[0]]} != {exp[bad[0]]}"
    assert np.array_equal(acc_out, acc) and np.array_equal(out_valid, valid)
    # the stimulus reached what matters: saturation of both ranges, the largest shift
    half_hi = (1 << (out_width - 2)) - 1
    assert (exp[bits == 1] == half_hi).any() and (exp[bits == 0] == 2 * half_hi + 1).any()
    assert (exp[bits == 1] == -half_hi - 1).any()
    assert not exp[shift == MAX_SHIFT].any()
    print(f"{t} rows; split lanes {int(bits.sum())}, saturated halves "
          f"{int((np.abs(exp[bits == 1]) >= half_hi).sum())}")


# Verilog of OutputStage(lanes=..) without split, recorded before the option existed
# (amaranth 0.5.10): the option must not change a byte of it.
_PINNED = {
    (4, 20, 8, True): "765bf68d3a5c0694c723bd2a31e3df018f968efa748986fd1e2539c6978cad15",
    (3, 33, 16, True): "41ec9d9253a70a3c73195b96ee486a3b21f81f5acbf1e5e698f2e93bb11cb99d",
    (2, 12, 8, False): "3135a50d3cf707a5051b627a58947e47709317ac47e20931281483d4ecbfc181",
}


def test_split_false_verilog_unchanged():
    for (cols, acc, out, requant), digest in _PINNED.items():
        kw = dict(lanes=cols, acc_width=acc, out_width=out, requant=requant)
        text = to_verilog(OutputStage(**kw), "ostage", {})
        assert text == to_verilog(OutputStage(**kw, split=False), "ostage", {})
        assert "split" not in text and "lane_shift" not in text
        if amaranth.__version__ == "0.5.10":  # other versions may print the same design
            assert hashlib.sha256(text.encode()).hexdigest() == digest, kw  # differently
    text = to_verilog(OutputStage(lanes=2, acc_width=12, out_width=8, split=True), "o", {})
    assert "input [1:0] split" in text
    lane = OutputLane(acc_width=12, out_width=8, requant=True, split=True)
    assert "split" in lane.signature.members and lane.has_split
    assert "split" not in OutputLane(acc_width=12, out_width=8, requant=True).signature.members


def test_split_bad_input():
    for kw in ({"split": 1}, {"split": "yes"}, {"split": True, "requant": False}):
        with pytest.raises(ConfigError) as exc:
            OutputStage(lanes=2, acc_width=12, out_width=8, **kw)
        assert exc.value.field == "split"
    with pytest.raises(ConfigError):
        OutputLane(acc_width=12, out_width=8, requant=False, split=True)
    gc.collect()
    acc = np.zeros((2, 3), np.int64)
    with pytest.raises(ValueError, match="split"):
        output_stage(acc, 0, True, 2, 8, split=[True, False])
    with pytest.raises(ValueError, match="split"):
        output_stage(acc, 0, True, 2, 8, split=[1, 0, 1])
    with pytest.raises(ValueError, match="shift"):
        output_stage(acc, 0, True, MAX_SHIFT + 1, 8)
    with pytest.raises(ValueError, match="shift"):
        requantize(acc, 65, 8)


# -- fixed-point requantisation (issue 23): gemmlowp's scheme, written out in plain Python ------

def _srdhm(a: int, b: int) -> int:
    """Gemmlowp SaturatingRoundingDoublingHighMul on int32, C division (towards zero)."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    t = ab + nudge
    return abs(t) // (1 << 31) * (1 if t >= 0 else -1)


def _rdbpot(x: int, exponent: int) -> int:
    """Gemmlowp RoundingDivideByPOT: round half away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def test_quantize_multiplier_represents_the_real_scale():
    rng = np.random.default_rng(23)
    print("seed 23")
    for real in np.concatenate([10.0 ** rng.uniform(-12, -0.0001, 500), [0.5, 0.25, 2 ** -40]]):
        m0, n = quantize_multiplier(float(real))
        assert (1 << 30) <= m0 < (1 << 31) and 0 <= n <= MAX_RIGHT_SHIFT
        assert abs(m0 * 2.0 ** (-31 - n) - real) <= real * 2.0 ** -30
    for bad in (0.0, 1.0, 1.5, -0.5, float("nan"), float("inf"), 1 - 2 ** -40):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fixed_requantize_equals_gemmlowp_in_plain_python(seed):
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    acc = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 3000),
                          [-(1 << 31), (1 << 31) - 1, 0, 1, -1]]).astype(np.int64)
    cols = 5
    acc = acc[: len(acc) // cols * cols].reshape(-1, cols)
    m0 = rng.integers(1 << 30, 1 << 31, cols)
    n = rng.integers(0, 40, cols)
    n[0] = 0
    zp = rng.integers(-128, 128, cols)
    lo, hi = -128, 127
    got = fixed_requantize(acc, m0, n, zp, lo, hi)
    for (i, j), a in np.ndenumerate(acc):
        want = _rdbpot(_srdhm(int(a), int(m0[j])), int(n[j])) + int(zp[j])
        assert got[i, j] == max(lo, min(hi, want)), (a, m0[j], n[j], zp[j])


def test_fixed_requantize_refuses_what_gemmlowp_cannot_hold():
    m0, n = quantize_multiplier(0.5)  # (2**30, 0): exactly a halving
    assert fixed_requantize(np.array([6, -6, 7]), m0, n, 0, -128, 127).tolist() == [3, -3, 4]
    with pytest.raises(ValueError):
        fixed_requantize(np.array([1 << 31]), m0, n, 0, -128, 127)
    with pytest.raises(ValueError):
        fixed_requantize(np.array([1]), m0, MAX_RIGHT_SHIFT + 1, 0, -128, 127)


def test_requant_power_of_two_path_is_the_output_stage_and_fixed_path_the_gemmlowp_one():
    rng = np.random.default_rng(5)
    print("seed 5")
    acc = rng.integers(-(1 << 20), 1 << 20, (40, 6))
    bias = rng.integers(-1000, 1000, 6)
    pow2 = Requant(shift=9, relu=True)
    assert np.array_equal(pow2.apply(acc, bias, 8), output_stage(acc, bias, True, 9, 8))
    m0 = rng.integers(1 << 30, 1 << 31, 6)
    n = rng.integers(5, 15, 6)
    fixed = Requant(shift=n, multiplier=m0, zero_point=-3, lo=-3)
    want = fixed_requantize(acc + bias, m0, n, -3, -3, 127)
    assert np.array_equal(fixed.apply(acc, bias, 8), want)
    assert fixed.apply(acc, bias, 8).min() >= -3


# -- the fixed-point multiplier in hardware (issue 23): FixedRequant and its model ------------

def _fixed_ref(y: int, m0: int, n: int, zp: int, lo: int, hi: int) -> int:
    """The gemmlowp scheme in plain Python, exact for any integer (the hardware's domain)."""
    return min(max(_rdbpot(_srdhm(y, m0), n) + zp, lo), hi)


def _fixed_rows(rng, t: int, cols: int, acc_width: int, out_width: int):
    """Per-row operands of the fixed-point path: random, extremes and near-ties."""
    a_lo, a_hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    acc = rng.integers(a_lo, a_hi + 1, (t, cols)) >> rng.integers(0, acc_width, (t, cols))
    bias = rng.integers(a_lo, a_hi + 1, (t, cols)) >> rng.integers(0, acc_width, (t, 1))
    acc[:6] = [[a_lo] * cols, [a_hi] * cols, [a_lo] * cols, [a_hi] * cols, [0] * cols,
               [-1] * cols]
    bias[:6] = [[0] * cols, [0] * cols, [a_lo] * cols, [a_hi] * cols, [0] * cols, [0] * cols]
    m0 = rng.integers(1 << 30, 1 << 31, (t, cols))
    m0[:24:3], m0[1:24:3], m0[2:24:3] = 1 << 30, (1 << 31) - 1, 0
    # n: mostly where the result lands in the output range, some 0 and the largest (62, 63)
    y_bits = np.maximum(np.abs(acc + bias), 1).astype(float)
    n = np.clip(np.log2(y_bits).astype(np.int64) - (out_width - 2)
                + rng.integers(-2, 3, (t, cols)), 0, MAX_SHIFT)
    n[6:40] = rng.choice([0, 1, MAX_RIGHT_SHIFT, MAX_SHIFT], (34, cols))
    # ties: y·M0 an odd multiple of 2**30 (SRDHM) and of 2**(n-1) (RoundingDivideByPOT)
    ties = slice(40, 80)
    m0[ties] = 1 << 30
    acc[ties] = rng.choice([-1, 1], (40, cols)) * (2 * rng.integers(0, 1 << 10, (40, cols)) + 1)
    bias[ties] = 0
    n[ties] = rng.integers(0, 4, (40, cols))
    w = 1 << (out_width - 1)
    zp = rng.integers(-w, w, t)
    lo = np.where(rng.random(t) < 0.3, zp, rng.integers(-w, 0, t))
    hi = rng.integers(0, w, t)
    hi[:3] = lo[:3] - 1  # lo > hi: hi wins, as numpy's clip
    fixed = (rng.random(t) < 0.8).astype(np.int64)
    fixed[:80] = 1
    return acc, bias, m0, n, zp, lo, hi, fixed


def test_fixed_model_pipeline_equals_gemmlowp(rng):
    """FixedRequantModel, ports read in their stage's cycle, = gemmlowp on int32 and beyond."""
    t, cols = 3000, 4
    acc, bias, m0, n, zp, lo, hi, _ = _fixed_rows(rng, t, cols, 32, 8)
    model = FixedRequantModel(cols)
    got = []
    for c in range(t + FIXED_LATENCY):
        got.append(model.outputs())
        r1, r2, r3 = (min(max(c - d, 0), t - 1) for d in (1, 2, 3))
        model.step(acc[min(c, t - 1)] + bias[min(c, t - 1)], pow2=0, fixed=1,
                   multiplier=m0[r1], right_shift=n[r2], zero_point=zp[r3], lo=lo[r3],
                   hi=hi[r3])
    got = np.array(got[FIXED_LATENCY:])
    want = np.array([[_fixed_ref(int(a) + int(b), int(m), int(s), int(z), int(lw), int(h))
                      for a, b, m, s in zip(acc[i], bias[i], m0[i], n[i], strict=True)]
                     for i, (z, lw, h) in enumerate(zip(zp, lo, hi, strict=True))])
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"row, lane {bad[0]}: {got[tuple(bad[0])]} != {want[tuple(bad[0])]}"
    # within gemmlowp's domain the model is fixed_requantize itself
    y = acc + bias
    inside = (np.abs(y) < 1 << 31).all(axis=1) & (n <= MAX_RIGHT_SHIFT).all(axis=1)
    assert inside.sum() > t // 2
    assert np.array_equal(got[inside], np.array([
        fixed_requantize(y[i], m0[i], n[i], zp[i], lo[i], hi[i]) for i in np.flatnonzero(inside)]))


@pytest.mark.parametrize(("cols", "acc_width", "out_width"), [(3, 32, 8), (2, 20, 16)])
def test_rtl_fixed_requant_lanes(rng, cols, acc_width, out_width):
    """OutputStage(multiplier=True) on Icarus against gemmlowp in plain Python, every row.

    Each row's controls are driven in the cycle their stage reads them (multiplier one cycle
    after the accumulator, shift two, zero point, clamp and select three); rows with the
    select off show the power-of-two result of the same row, with its own relu and shift.
    """
    dut = OutputStage(lanes=cols, acc_width=acc_width, out_width=out_width, multiplier=True)
    name = f"ostage_fixed_c{cols}_a{acc_width}_o{out_width}"
    path = write_verilog(dut, name, {"unit": "output_stage", "multiplier": True},
                         BUILD / name / f"{name}.v")
    t = 500
    acc, bias, m0, n, zp, lo, hi, fixed = _fixed_rows(rng, t, cols, acc_width, out_width)
    relu = rng.integers(0, 2, t)
    shift = rng.integers(0, acc_width + 2, t)
    valid = rng.integers(0, 2, t)
    L = FIXED_LATENCY

    def late(x, d):  # row i's value in cycle i + d
        pad = np.zeros((d,) + x.shape[1:], dtype=np.int64)
        return np.concatenate([pad, x, np.zeros((L - d,) + x.shape[1:], dtype=np.int64)])

    res = run_stream(verilog=[path], toplevel=name, build_dir=BUILD / name / "icarus",
                     sim="icarus",
                     inputs={"acc_in": late(acc, 0), "bias": late(bias, 0),
                             "relu": late(relu, 0), "shift": late(shift, 0),
                             "in_valid": late(valid, 0),
                             "fixed_point__multiplier": late(m0, 1),
                             "fixed_point__shift": late(n, 2),
                             "fixed_point__zero_point": late(zp, 3),
                             "fixed_point__lo": late(lo, 3), "fixed_point__hi": late(hi, 3),
                             "fixed_point__fixed": late(fixed, 3)},
                     outputs={"q_out": (cols, True), "acc_out": (cols, True),
                              "out_valid": (0, False)})
    q, acc_out, out_valid = (res.outputs[k][L:L + t] for k in ("q_out", "acc_out", "out_valid"))
    exp = np.array([[_fixed_ref(int(a) + int(b), int(m), int(s), int(zp[i]), int(lo[i]),
                                int(hi[i]))
                     for a, b, m, s in zip(acc[i], bias[i], m0[i], n[i], strict=True)]
                    if fixed[i] else
                    output_stage(acc[i], bias[i], bool(relu[i]), int(shift[i]), out_width)
                    for i in range(t)])
    bad = np.flatnonzero((q != exp).any(axis=1))
    assert bad.size == 0, f"row {bad[0]}: {q[bad[0]]} != {exp[bad[0]]}"
    assert np.array_equal(acc_out, acc) and np.array_equal(out_valid, valid)
    # the stimulus reached what matters: both bounds, values strictly inside, y beyond int32
    f = fixed.astype(bool)
    assert (exp[f] == hi[f, None]).any() and (exp[f] == lo[f, None]).any()
    inside = (exp[f] > lo[f, None]) & (exp[f] < hi[f, None])
    assert inside.sum() > f.sum() // 4
    if acc_width == 32:
        assert (np.abs(acc + bias) >= 1 << 31).any()
    print(f"{t} rows, {int(f.sum())} on the fixed path, {int(inside.sum())} lanes inside the "
          "clamp")


def test_multiplier_option_off_and_bad_input():
    """No multiplier: no port and the pinned Verilog; bad parameters are ConfigErrors."""
    kw = dict(lanes=2, acc_width=12, out_width=8)
    text = to_verilog(OutputStage(**kw, multiplier=False), "ostage", {})
    assert text == to_verilog(OutputStage(**kw), "ostage", {})
    assert "fixed_point" not in text and "requant" not in text
    with_mult = OutputStage(**kw, multiplier=True)
    assert "fixed_point" in with_mult.signature.members and with_mult.latency == FIXED_LATENCY
    assert OutputLane(acc_width=12, out_width=8, requant=True, multiplier=True).has_multiplier
    for bad, field in (({"multiplier": 1}, "multiplier"),
                       ({"multiplier": True, "requant": False}, "multiplier"),
                       ({"multiplier": True, "acc_width": 33}, "acc_width")):
        with pytest.raises(ConfigError) as exc:
            OutputStage(**{**kw, **bad})
        assert exc.value.field == field
    gc.collect()
