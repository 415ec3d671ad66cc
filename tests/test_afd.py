# amaranth: UnusedElaboratable=no
"""AFD: anomalous feature detection and suppression (Ozen 2023 §8.3–8.4.1; §8.4.1, §8.6.1).

Three layers: the golden model against an independent per-element transcription of
Eqs. (8.1)/(8.2) in plain Python (exhaustively for small widths, randomly for 8/16/32 bits);
the exact semantics pinned by hand-worked cases; and the RTL against the golden model on
Icarus (every gate count × drop/clip × shift, random controls every cycle, smooth vectors,
injected spikes) with a Verilator subset.  Seeds: ``AFD_SEED`` (printed).
"""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ftaccel.errors import ConfigError
from ftaccel.golden.afd import anomaly_suppression, anomaly_suppression_detail, thresholds
from ftaccel.rtl_gen.afd import AnomalySuppression
from ftaccel.rtl_gen.emit import to_verilog
from ftaccel.tb.afd import (
    concat,
    constant_controls,
    expected,
    inject_spike,
    mode_sweep,
    random_stimulus,
    run_afd,
    smooth_vectors,
)

SEED = int(os.environ.get("AFD_SEED", "20240806"))
BUILD = Path(__file__).resolve().parent.parent / "build" / "afd"


def _rng(tag: int) -> np.random.Generator:
    print(f"AFD_SEED={SEED} (tag {tag})")
    return np.random.default_rng([SEED, tag])


# --------------------------------------------------------------------------------------------
# Independent reference: the equations transcribed literally, one element at a time, with
# Python integers (no saturation, no clamping unless max_shift is given explicitly).
# --------------------------------------------------------------------------------------------

def _U(i: int) -> int:
    """The step function of Eq. (8.1): U(i) = 1 if i > 0 else 0."""
    return 1 if i > 0 else 0


def _ref_threshold(x: int, shift: int, max_shift: int | None) -> int:
    if max_shift is not None:
        shift = max(-max_shift, min(max_shift, shift))
    return abs(x) << shift if shift >= 0 else abs(x) >> -shift


def _ref_element(vec, c, *, shift, gates, mode, enable, max_shift=None):
    n = len(vec)
    a = int(vec[c])
    t_next = _ref_threshold(int(vec[(c + 1) % n]), shift, max_shift)
    t_prev = _ref_threshold(int(vec[(c - 1) % n]), shift, max_shift)
    if not enable:
        return a, False
    if gates == 1:
        keep = _U(t_next - abs(a))                                         # Eq. (8.1)
        violated = [t_next]
    else:
        keep = 1 - _U(abs(a) - t_next) * _U(abs(a) - t_prev)               # Eq. (8.2)
        violated = [t for t in (t_next, t_prev) if abs(a) > t]
    if keep:
        return a * keep, False
    if mode == 0:
        return 0, True
    sign = (a > 0) - (a < 0)
    return sign * max(violated), True


def _ref_vector(vec, **kw):
    res = [_ref_element(vec, c, **kw) for c in range(len(vec))]
    return [r[0] for r in res], [r[1] for r in res]


def _check_against_reference(vectors, width, shifts, max_shift=None):
    """Golden vs reference for every vector × shift × gates × mode × enable."""
    vectors = np.asarray(vectors, dtype=np.int64)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    checked = suppressed_count = 0
    for shift, gates, mode, enable in itertools.product(shifts, (1, 2), (0, 1), (0, 1)):
        out, sup = anomaly_suppression_detail(vectors, width=width, shift=shift, gates=gates,
                                              mode=mode, enable=enable, max_shift=max_shift)
        assert out.min() >= lo and out.max() <= hi, "output left the signed range"
        for row, vec in enumerate(vectors):
            r_out, r_sup = _ref_vector(list(vec), shift=shift, gates=gates, mode=mode,
                                       enable=enable, max_shift=max_shift)
            ctx = dict(vec=vec.tolist(), shift=shift, gates=gates, mode=mode, enable=enable)
            assert out[row].tolist() == r_out, ctx
            assert sup[row].tolist() == r_sup, ctx
            checked += 1
            suppressed_count += sum(r_sup)
    return checked, suppressed_count


# --------------------------------------------------------------------------------------------
# Golden model
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width,n", [(2, 1), (2, 3), (3, 1), (3, 2), (3, 3), (4, 2)])
def test_golden_exhaustive_small(width, n):
    """Every vector of a small width, every shift from beyond −w to beyond +w.

    The default clamp to ±w must be invisible: the reference does not clamp.
    """
    values = range(-(1 << (width - 1)), 1 << (width - 1))
    vectors = list(itertools.product(values, repeat=n))
    checked, suppressed = _check_against_reference(vectors, width, range(-width - 2, width + 3))
    assert checked == len(vectors) * (2 * width + 5) * 8
    assert 0 < suppressed < checked * n  # the cases include both outcomes


@pytest.mark.parametrize("width", [8, 16, 32])
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_golden_random_against_reference(width, n):
    rng = _rng(width * 100 + n)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    wide = rng.integers(lo, hi, size=(40, n))
    near = rng.integers(-1, 2, size=(40, 1)) * rng.integers(1, 1 << (width - 3), size=(40, 1))
    near = near + rng.integers(-3, 4, size=(40, n))  # similar magnitudes: ties and near-ties
    extremes = rng.choice(np.array([lo, hi - 1, 0, 1, -1]), size=(20, n))
    vectors = np.clip(np.concatenate([wide, near, extremes]), lo, hi - 1)
    _check_against_reference(vectors, width, (-width - 1, -3, -1, 0, 1, 2, width, width + 1))


@pytest.mark.parametrize("max_shift", [1, 2, 3, 7])
def test_golden_max_shift_clamps(max_shift):
    """A narrower shift range clamps: shift ±(max_shift + k) acts as ±max_shift."""
    rng = _rng(700 + max_shift)
    vectors = rng.integers(-128, 128, size=(60, 4))
    _check_against_reference(vectors, 8, range(-9, 10), max_shift=max_shift)
    for s in (max_shift + 1, 9):
        for g, md in itertools.product((1, 2), (0, 1)):
            kw = dict(width=8, gates=g, mode=md, max_shift=max_shift)
            np.testing.assert_array_equal(anomaly_suppression(vectors, shift=s, **kw),
                                          anomaly_suppression(vectors, shift=max_shift, **kw))
            np.testing.assert_array_equal(anomaly_suppression(vectors, shift=-s, **kw),
                                          anomaly_suppression(vectors, shift=-max_shift, **kw))


def _afd(vec, width=8, **kw):
    out, sup = anomaly_suppression_detail(np.array(vec), width=width, **kw)
    return out.tolist(), sup.tolist()


def test_golden_ties_follow_each_equation():
    # Eq. 8.1 keeps only if gamma*|A_{c+1}| > |A_c|: a tie suppresses.
    assert _afd([3, 3, 3], shift=0, gates=1, mode=0) == ([0, 0, 0], [True] * 3)
    assert _afd([3, -3, 3], shift=0, gates=1, mode=1) == ([3, -3, 3], [True] * 3)
    # Eq. 8.2 suppresses only if |A_c| > both thresholds: a tie keeps.
    assert _afd([3, -3, 3], shift=0, gates=2, mode=0) == ([3, -3, 3], [False] * 3)
    # Tie with one threshold, strictly above the other: kept under two gates.
    assert _afd([1, 4, 2], shift=1, gates=2, mode=0) == ([1, 4, 2], [False] * 3)
    assert _afd([1, 5, 2], shift=1, gates=2, mode=0) == ([1, 0, 2], [False, True, False])


def test_golden_zero_neighbours():
    # One gate: a zero successor gives threshold 0, which every |A_c| >= 0 violates.
    assert _afd([5, 0, 7, 7], shift=3, gates=1, mode=0) == ([0, 0, 7, 7],
                                                              [True, False, False, False])
    assert _afd([-5, 0, 7, 7], shift=3, gates=1, mode=1)[0] == [0, 0, 7, 7]  # clip to 0
    # A zero element is "suppressed" to itself under one gate next to a zero.
    assert _afd([0, 0], shift=2, gates=1, mode=1) == ([0, 0], [True, True])
    # Two gates: a zero is never suppressed; a value between two zeros always is.
    assert _afd([0, 1, 0, 0], shift=3, gates=2, mode=0) == ([0, 0, 0, 0],
                                                              [False, True, False, False])


def test_golden_most_negative_value():
    # |-128| = 128 (no wrap to -128): larger than 127, suppressed against 127 at gamma = 1.
    assert _afd([127, -128], shift=0, gates=1, mode=1) == ([127, -127], [False, True])
    # Clipping -128 at a tie keeps -128, which still fits 8 bits.
    assert _afd([-128, -128], shift=0, gates=1, mode=1) == ([-128, -128], [True, True])
    assert _afd([-128, 1, 1], shift=1, gates=2, mode=1) == ([-2, 1, 1], [True, False, False])
    # The threshold of -128 shifted left saturates at 2^w - 1 = 255, invisibly.
    assert thresholds([-128, 1], 8, width=8).tolist() == [255, 255]
    assert thresholds([-128, 1], 1, width=8).tolist() == [255, 2]
    assert thresholds([-128, 127], -7, width=8).tolist() == [1, 0]


def test_golden_saturation_is_invisible():
    """Outputs with the saturated threshold equal those with the exact product (reference).

    For the shifts where saturation happens, including the most negative value.
    """
    rng = _rng(5)
    vectors = np.concatenate([rng.integers(-128, 128, size=(200, 3)),
                              np.array([[-128, -128, -128], [-128, 127, -128], [1, -128, 0]])])
    assert (thresholds(vectors, 8, width=8) == 255).any()
    _check_against_reference(vectors, 8, range(2, 12))


def test_golden_wrap_around_n1_n2():
    # n = 1: both neighbours are the element itself.
    assert _afd([5], shift=1, gates=1, mode=0) == ([5], [False])    # 10 > 5
    assert _afd([5], shift=0, gates=1, mode=0) == ([0], [True])     # 5 > 5 is false
    assert _afd([5], shift=0, gates=2, mode=0) == ([5], [False])    # 5 > 5 is false
    assert _afd([-5], shift=-1, gates=2, mode=1) == ([-2], [True])  # 5 > floor(2.5) = 2
    # n = 2: next and previous are the same, other element.
    assert _afd([10, 3], shift=1, gates=2, mode=1) == ([6, 3], [True, False])
    assert _afd([10, 3], shift=1, gates=1, mode=1) == ([6, 3], [True, False])
    assert _afd([6, 3], shift=1, gates=1, mode=1) == ([6, 3], [True, False])   # tie
    assert _afd([6, 3], shift=1, gates=2, mode=1) == ([6, 3], [False, False])  # tie
    # c = 0 checks c = n - 1 and vice versa (footnote 3, Ozen 2023 §8.4.1).
    assert _afd([1, 1, 1, 50], shift=1, gates=2, mode=0) == ([1, 1, 1, 0], [False] * 3 + [True])
    assert _afd([1, 1, 1, 50], shift=1, gates=1, mode=1)[0] == [1, 1, 1, 2]


def test_golden_clip_uses_largest_violated_threshold():
    # Two gates, both violated: thresholds 8 (next) and 2 (prev); clip to the larger, 8.
    assert _afd([1, -20, 4], shift=1, gates=2, mode=1) == ([1, -8, 4], [False, True, False])
    assert _afd([4, 20, 1], shift=1, gates=2, mode=1)[0] == [4, 8, 1]
    # One gate: the only threshold, the successor's, even if the predecessor's is larger.
    assert _afd([4, 20, 1], shift=1, gates=1, mode=1)[0] == [4, 2, 1]


def test_golden_right_shift_truncates():
    """With gamma < 1, the threshold is floor(gamma*|A|).

    Two gates equal the real-valued rule; one gate suppresses at floor ties that the real-valued
    rule would keep (documented).
    """
    # 2 >= floor(5/2) = 2: suppressed, although 2.5 > 2 would keep it.
    assert _afd([2, 5], shift=-1, gates=1, mode=0)[0][0] == 0
    rng = _rng(6)
    vectors = rng.integers(-128, 128, size=(300, 5))
    for s in (-1, -2, -3, -5):
        gamma = Fraction(1, 1 << -s)
        out, sup = anomaly_suppression_detail(vectors, width=8, shift=s, gates=2, mode=0)
        for row, vec in enumerate(vectors.tolist()):
            n = len(vec)
            real = [abs(vec[c]) > gamma * abs(vec[(c + 1) % n])
                    and abs(vec[c]) > gamma * abs(vec[(c - 1) % n]) for c in range(n)]
            assert sup[row].tolist() == real, (vec, s)


def test_golden_enable_and_per_row_controls():
    vecs = np.array([[1, 50, 1], [1, 50, 1], [1, 50, 1], [1, 50, 1]])
    out = anomaly_suppression(vecs, width=8, shift=np.array([1, 1, 6, 1]),
                              gates=np.array([2, 2, 2, 1]), mode=np.array([0, 1, 0, 1]),
                              enable=np.array([1, 1, 1, 0]))
    assert out.tolist() == [[1, 0, 1], [1, 2, 1], [1, 50, 1], [1, 50, 1]]
    assert anomaly_suppression(vecs[0], width=8, shift=1, gates=2, mode="clip").tolist() \
        == [1, 2, 1]


@pytest.mark.parametrize("kwargs,match", [
    (dict(width=1), "width"),
    (dict(width=33), "width"),
    (dict(width=True), "width"),
    (dict(act=[128]), "signed 8-bit range"),
    (dict(act=[-129]), "signed 8-bit range"),
    (dict(act=[]), "act shape"),
    (dict(act=[1.5]), "act"),
    (dict(gates=3), "gates"),
    (dict(gates=0), "gates"),
    (dict(mode="median"), "mode"),
    (dict(mode=2), "mode"),
    (dict(enable=2), "enable"),
    (dict(max_shift=0), "max_shift"),
    (dict(max_shift=9), "max_shift"),
])
def test_golden_rejects_bad_arguments(kwargs, match):
    args = dict(act=[1, 2, 3], width=8, shift=1, gates=1, mode=0)
    args.update(kwargs)
    act = args.pop("act")
    with pytest.raises(ValueError, match=match):
        anomaly_suppression(act, **args)


# --------------------------------------------------------------------------------------------
# RTL: parameters, then simulation
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,field", [
    (dict(width=1), "width"), (dict(width=33), "width"), (dict(width=8.0), "width"),
    (dict(width=True), "width"), (dict(lanes=0), "lanes"), (dict(lanes=257), "lanes"),
    (dict(lanes="8"), "lanes"),
    (dict(max_shift=0), "max_shift"), (dict(max_shift=9), "max_shift"),
    (dict(max_shift=False), "max_shift"),
])
def test_rtl_rejects_bad_parameters(kwargs, field):
    with pytest.raises(ConfigError) as exc:
        AnomalySuppression(**kwargs)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_rtl_ports_and_deterministic_verilog():
    dut = AnomalySuppression(width=16, lanes=3, max_shift=5)
    assert (dut.width, dut.lanes, dut.max_shift, dut.shift_width) == (16, 3, 5, 4)
    assert AnomalySuppression(width=8).shift_width == 5  # holds -8 … 8
    text = to_verilog(dut, "afd_t", dut.config())
    assert text == to_verilog(AnomalySuppression(width=16, lanes=3, max_shift=5), "afd_t",
                              dut.config())
    for port in ("i__data__2", "o__data__0", "suppressed__1", "o__valid", "i__valid",
                 "ctl__shift", "ctl__gates", "ctl__mode", "ctl__enable", "clk", "rst"):
        assert port in text, port


def _assert_matches_golden(stim, out, width, max_shift=None):
    exp, sup = expected(stim, width=width, max_shift=max_shift)
    for t in np.nonzero((out["o__data"] != exp).any(axis=1) | (out["suppressed"] != sup).any(
            axis=1))[0][:1]:
        ctl = {k: int(v[t]) for k, v in stim.items() if k != "i__data"}
        pytest.fail(f"row {t}: act_in={stim['i__data'][t].tolist()} {ctl}: "
                    f"rtl {out['o__data'][t].tolist()} / {out['suppressed'][t].tolist()}, "
                    f"golden {exp[t].tolist()} / {sup[t].astype(int).tolist()}")
    # out_valid is in_valid one cycle later; right after reset everything is 0.
    np.testing.assert_array_equal(out["o__valid"], stim["i__valid"])
    assert not out["first"]["o__valid"] and not out["first"]["o__data"].any()
    return sup


def _smooth_and_spikes(rng, width, n):
    """Smooth vectors pass unchanged and a one-bit spike is exactly suppressed.

    Smooth vectors (expected to pass unchanged) and the same kind with one bit flip of bit w−2 in
    one element (expected: exactly that element suppressed), for every mode where the property
    holds: gamma = 2, 4, 8 for smooth; gamma = 2, 4 for spikes.
    """
    blocks, smooth_rows, spike_rows = [], [], []
    row = 0
    for gates, mode in itertools.product((1, 2), (0, 1)):
        for shift in (1, 2, 3):
            vec = smooth_vectors(rng, 6, width=width, lanes=n, low=1 << (width - 3))
            blocks.append(constant_controls(vec, shift=shift, gates=gates, mode=mode))
            smooth_rows += range(row, row + 6)
            row += 6
        for shift in (1, 2):
            base = smooth_vectors(rng, 6, width=width, lanes=n, low=1 << (width - 5))
            vec, idx = inject_spike(base, rng, width=width, bit=width - 2)
            blocks.append(constant_controls(vec, shift=shift, gates=gates, mode=mode))
            spike_rows += [(row + i, int(idx[i]), shift, mode) for i in range(6)]
            row += 6
    # gamma = 1 under two gates: constant magnitudes (ties everywhere) pass unchanged.
    mag = rng.integers(1, 1 << (width - 1), size=(6, 1))
    vec = mag * rng.choice(np.array([-1, 1]), size=(6, n))
    blocks.append(constant_controls(vec, shift=0, gates=2, mode=1))
    smooth_rows += range(row, row + 6)
    return concat(*blocks), smooth_rows, spike_rows


def _rtl_full_check(width, n, sim, tag):
    rng = _rng(tag)
    sweep = mode_sweep(rng, 3, width=width, lanes=n)
    rand = random_stimulus(rng, 200, width=width, lanes=n)
    props, smooth_rows, spike_rows = _smooth_and_spikes(rng, width, n)
    stim = concat(sweep, rand, props)
    out = run_afd(stim, width=width, lanes=n, build_dir=BUILD / f"w{width}_n{n}", sim=sim)
    sup = _assert_matches_golden(stim, out, width)
    # Not vacuous: both outcomes occur, and clip produced non-zero replacements.
    assert 0.05 < sup.mean() < 0.95
    clipped = sup & (stim["ctl__mode"][:, None] == 1) & (out["o__data"] != 0)
    assert clipped.sum() > 20

    off = len(sweep["i__data"]) + len(rand["i__data"])
    act_in, act_out = stim["i__data"], out["o__data"]
    for r in smooth_rows:
        t = off + r
        assert act_out[t].tolist() == act_in[t].tolist() and not out["suppressed"][t].any(), t
    for r, idx, shift, mode in spike_rows:
        t = off + r
        spike = int(act_in[t, idx])
        assert abs(spike) >= 1 << (width - 2)
        assert out["suppressed"][t].tolist() == [c == idx for c in range(n)], t
        others = np.delete(act_out[t], idx).tolist()
        assert others == np.delete(act_in[t], idx).tolist(), t
        got = int(act_out[t, idx])
        if mode == 0:
            assert got == 0, t
        else:
            bound = max(abs(int(act_in[t, (idx + 1) % n])), abs(int(act_in[t, idx - 1]))) << shift
            assert got != 0 and np.sign(got) == np.sign(spike) and abs(got) <= bound, t


@pytest.mark.parametrize("sim,width", [
    ("icarus", 8), ("icarus", 16),
    pytest.param("verilator", 8, marks=pytest.mark.verilator),
    pytest.param("verilator", 16, marks=pytest.mark.verilator),
])
def test_rtl_all_modes(sim, width):
    """Every gate count × drop/clip × shift value against the golden model.

    Random controls changing every cycle, smooth vectors and injected spikes, one vector per cycle.
    """
    _rtl_full_check(width, 8, sim, tag=1000 * (1 + (sim == "verilator")) + width)


@pytest.mark.parametrize("width,n,max_shift", [
    (8, 1, None), (8, 2, None), (8, 3, None), (2, 4, None), (8, 5, 3), (16, 3, 1),
])
def test_rtl_small_configs_icarus(width, n, max_shift):
    """Wrap-around corner cases (n = 1, 2, 3), the narrowest width and reduced shift ranges."""
    rng = _rng(3000 + 100 * width + 10 * n + (max_shift or 0))
    stim = concat(mode_sweep(rng, 2, width=width, lanes=n, max_shift=max_shift),
                  random_stimulus(rng, 100, width=width, lanes=n, max_shift=max_shift))
    name = f"w{width}_n{n}_s{max_shift or width}"
    out = run_afd(stim, width=width, lanes=n, max_shift=max_shift, build_dir=BUILD / name,
                  sim="icarus")
    sup = _assert_matches_golden(stim, out, width, max_shift)
    assert 0 < sup.mean() < 1
