# amaranth: UnusedElaboratable=no
"""Sanity-Check checksums (Ozen 2023 ch. 6): host helpers, golden models, RTL, study.

* host helpers (sanity column, sanity input, widths) against plain-Python loops, with the
  documented widths shown to be exactly tight;
* golden cycle models against the functional checks, the functional checks against loops;
* RTL of each unit against its golden model, every port in every cycle, on Icarus (a
  Verilator subset): no false alarm on fault-free traffic, every single bit error detected
  one cycle after the failing vector, clear / threshold / residue behaviour, the generator's
  throughput N/(N+1) and latency 1;
* a chain generator → (array, functional) → temporal and spatial checkers;
* Table 6.1 reproduced by error injection: every guarantee holds, every "no detection" is 0,
  the Lemma 6 bound is tight (a 4-error rectangle escapes), residue aliasing is as documented;
* bad parameters raise ``ConfigError``.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from ftaccel.errors import ConfigError
from ftaccel.golden.bits import flip_bit, wrap
from ftaccel.golden.campaign import (
    TABLE_6_1,
    FCLayer,
    detect,
    detection_table,
    inject,
    random_fc_layer,
    rectangle_escape,
)
from ftaccel.golden.checksum import (
    SanityInputGeneratorModel,
    SpatialCheckerModel,
    TemporalCheckerModel,
    extend_inputs,
    extend_weights,
    negated_sum_width,
    sanity_column,
    simulate,
    spatial_errors,
    spatial_syndrome,
    temporal_errors,
    temporal_expected,
    temporal_sanity_input,
    temporal_syndrome,
)
from ftaccel.rtl_gen.checksum import SanityInputGenerator, SpatialChecker, TemporalChecker
from ftaccel.rtl_gen.emit import to_verilog
from ftaccel.tb.checksum import (
    array_outputs,
    generator_stimulus,
    layer_outputs,
    run_unit,
    spatial_stimulus,
    temporal_stimulus_from,
)

BUILD = Path(__file__).resolve().parent.parent / "build" / "checksum"

ICARUS_AND_VERILATOR = ["icarus", pytest.param("verilator", marks=pytest.mark.verilator)]


def _same(rtl: dict, gold: dict) -> None:
    for port, want in gold.items():
        got = rtl[port]
        assert got.shape == want.shape, port
        bad = np.argwhere(got != want)
        assert not len(bad), f"{port}: first mismatch at {bad[0].tolist()}: " \
                             f"rtl {got[tuple(bad[0])]} golden {want[tuple(bad[0])]}"


# ---------------------------------------------------------------------------------------------
# host helpers
# ---------------------------------------------------------------------------------------------
def test_sanity_column_against_loops(rng):
    for _ in range(20):
        K, N = (int(x) for x in rng.integers(1, 12, 2))
        B = rng.integers(-128, 128, (K, N))
        bias = rng.integers(-(1 << 15), 1 << 15, N)
        s, sb = sanity_column(B, bias, w_width=8, bias_width=16)
        for k in range(K):
            assert int(s[k]) == -sum(int(B[k, u]) for u in range(N))
        assert int(sb) == -sum(int(x) for x in bias)
        A = rng.integers(-128, 128, (5, K))
        out = A @ np.hstack([B, s[:, None]]) + np.append(bias, sb)
        assert not out.sum(axis=1).any()  # Eq. 6.2: every output row sums to zero
        # stored wrapped at the weight width: the invariant holds modulo 2^8 only
        sw, sbw = sanity_column(B, bias, wrap_bits=8)
        assert sw.min() >= -128 and sw.max() <= 127
        outw = A @ np.hstack([B, sw[:, None]]) + np.append(bias, sbw)
        assert not wrap(outw.sum(axis=1), 8).any()


def test_negated_sum_width_is_tight():
    """The documented sanity-column width: ``w + ceil(log2(n+1))`` bits, and not one less.

    ``w + ceil(log2(n+1))`` holds every negated sum of n w-bit values, and one bit less does not (n
    copies of the most negative value).
    """
    for w in range(2, 10):
        for n in range(1, 40):
            bits = negated_sum_width(w, n)
            lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
            extremes = [-(n * lo), -(n * hi)]
            assert all(-(1 << (bits - 1)) <= x < (1 << (bits - 1)) for x in extremes)
            assert not all(-(1 << (bits - 2)) <= x < (1 << (bits - 2)) for x in extremes)
    assert negated_sum_width(8, 8) == 12 and negated_sum_width(8, 64) == 15


def test_extend_weights_per_tile(rng):
    B = rng.integers(-128, 128, (6, 11))
    bias = rng.integers(-500, 500, 11)
    Be, be, mask = extend_weights(B, bias, group=4)
    assert Be.shape == (6, 11 + 3) and mask.tolist() == ([False] * 4 + [True]) * 2 + \
        [False] * 3 + [True]
    assert np.array_equal(Be[:, ~mask], B) and np.array_equal(be[~mask], bias)
    A = rng.integers(-128, 128, (7, 6))
    out = A @ Be + be
    for t0 in range(0, Be.shape[1], 5):  # each tile (its C lanes + sanity lane) sums to zero
        assert not out[:, t0:t0 + 5].sum(axis=1).any()


def test_extend_inputs_and_expected(rng):
    A = rng.integers(-128, 128, (23, 5))
    Ae, last = extend_inputs(A, 6, a_width=8)
    assert last.sum() == 4 and Ae.shape == (27, 5) and last[-1]
    assert np.array_equal(Ae[~last], A)
    start = 0
    for end in np.flatnonzero(last):
        assert not Ae[start:end + 1].sum(axis=0).any()
        assert end - start <= 6
        start = end + 1
    assert np.array_equal(temporal_sanity_input(A[:6]), -A[:6].sum(axis=0))
    W = rng.integers(-128, 128, (5, 3))
    bias = rng.integers(-50, 50, 3)
    out = Ae @ W + bias
    # with N data vectors and the sanity vector, columns sum to (N+1)·bias (not N·bias)
    assert np.array_equal(out[:7].sum(axis=0), temporal_expected(bias, 7))
    assert not temporal_errors(out, last, expected=np.vstack(
        [temporal_expected(bias, c) for c in (7, 7, 7, 6)])).any()
    assert negated_sum_width(8, 6) >= int(np.abs(Ae[last]).max()).bit_length() + 1


def test_host_helper_bad_input():
    with pytest.raises(ValueError, match="8-bit signed"):
        sanity_column([[200]], w_width=8)
    with pytest.raises(ValueError, match="K×N"):
        sanity_column([1, 2, 3])
    with pytest.raises(ValueError, match="bias"):
        sanity_column([[1, 2]], [1, 2, 3])
    with pytest.raises(ValueError, match="batch_size"):
        extend_inputs([[1]], 0)
    with pytest.raises(ValueError, match="group"):
        extend_weights([[1]], group=0)
    with pytest.raises(ValueError, match="count"):
        negated_sum_width(8, 0)


# ---------------------------------------------------------------------------------------------
# functional checks and cycle models
# ---------------------------------------------------------------------------------------------
def test_functional_checks_against_loops(rng):
    O = rng.integers(-(1 << 20), 1 << 20, (40, 5))
    for k in (None, 6, 12):
        syn = spatial_syndrome(O, expected=3, residue_bits=k)
        for t in range(40):
            ref = sum(int(x) for x in O[t]) - 3
            if k is not None:
                ref = ((ref + (1 << (k - 1))) % (1 << k)) - (1 << (k - 1))
            assert int(syn[t]) == ref
    assert np.array_equal(spatial_errors(O, threshold=7), np.abs(O.sum(axis=1)) > 7)
    last = np.zeros(40, dtype=bool)
    last[[4, 9, 30]] = True
    exp = rng.integers(-100, 100, 5)
    syn = temporal_syndrome(O, last, expected=exp)
    assert syn.shape == (3, 5)
    for i, (a, b) in enumerate([(0, 5), (5, 10), (10, 31)]):
        for u in range(5):
            assert int(syn[i, u]) == sum(int(O[t, u]) for t in range(a, b)) - int(exp[u])


def test_golden_models_agree_with_functional_checks(rng):
    V, width = layer_outputs(rng, 300, cols=6)
    inp, flips = spatial_stimulus(rng, V, width=width, errors=12)
    rec = simulate(SpatialCheckerModel(width=width, lanes=7), inp)
    errs = spatial_errors(inp["data"], expected=inp["expected"]) & (inp["valid"] == 1)
    assert np.array_equal(rec["error"][1:], errs[:-1].astype(np.int64))
    assert [c for c, _, _ in flips] == np.flatnonzero(errs).tolist()
    # generator: every batch of its output (N data + sanity) sums to zero lane by lane
    A = rng.integers(-128, 128, (50, 4))
    g = simulate(SanityInputGeneratorModel(width=8, lanes=4, batch_bits=4),
                 generator_stimulus(A, 7))
    v = g["o__valid"] == 1
    assert np.array_equal(g["o__data"][v & (g["sanity"] == 0)], A)
    assert not temporal_syndrome(g["o__data"][v], g["sanity"][v], expected=0).any()
    # temporal model flags exactly the batches the functional check flags
    W = rng.integers(-128, 128, (4, 3))
    bias = rng.integers(-99, 99, 3)
    d, val, last = array_outputs(g, W, bias)
    d[20, 1] += 4
    ti = temporal_stimulus_from(d, val, last, bias)
    t = simulate(TemporalCheckerModel(width=24, lanes=3, batch_bits=4), ti)
    closes = np.flatnonzero((val == 1) & (last == 1))
    fails = temporal_errors(d[val == 1], last[val == 1], expected=ti["expected"][closes])
    assert np.array_equal(t["lane_errors"][closes + 1],
                          (fails * (1 << np.arange(3))).sum(axis=1))
    assert fails.sum() == 1 and t["alarm"][-1] == 1


# ---------------------------------------------------------------------------------------------
# RTL against the golden models
# ---------------------------------------------------------------------------------------------
def _cat(*parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize(("sim", "residue"), [
    ("icarus", None), ("icarus", 8), pytest.param("verilator", None,
                                                  marks=pytest.mark.verilator)])
def test_rtl_spatial(rng, sim, residue):
    n = 9
    V, width = layer_outputs(rng, 900, cols=n - 1)
    kw = dict(width=width, lanes=n, residue_bits=residue)
    # 1) fault-free traffic with idle cycles and clears: never an error
    clean, _ = spatial_stimulus(rng, V[:500], width=width, clears=4)
    # 2) single bit errors (below bit k in residue mode: higher ones alias, see the study);
    #    the first vector comes with a clear
    faulty, flips = spatial_stimulus(rng, V[500:800], width=width, errors=8, max_bit=residue)
    faulty["clear"][0] = 1
    # 3) run-time threshold and expected: deviations of 1..15 around a non-zero constant
    tail, _ = spatial_stimulus(rng, V[800:], width=width, gaps=0.0)
    T3 = len(tail["valid"])
    dev = rng.integers(-15, 16, T3)
    tail["data"][:, 0] += dev + 1000
    tail["expected"][:] = 1000
    tail["threshold"][:] = rng.integers(0, 16, T3)
    tail["clear"][0] = 1
    inputs = _cat(clean, faulty, tail)
    rtl, gold = run_unit("spatial", kw, inputs, build_root=BUILD, sim=sim)
    _same(rtl, gold)
    T1, T2 = len(clean["valid"]), len(faulty["valid"])
    assert not rtl["error"][:T1 + 1].any() and not rtl["alarm"][:T1 + 1].any()
    # every flip flagged exactly one cycle later, nothing else
    flagged = np.flatnonzero(rtl["error"][T1 + 1:T1 + T2 + 1]).tolist()
    assert flagged == sorted(c for c, _, _ in flips)
    vec_index = np.cumsum(faulty["valid"]) - 1
    assert rtl["first_index"][T1 + T2] == vec_index[flips[0][0]]
    # threshold: flagged iff |deviation| > threshold (valid rows of segment 3)
    v3 = tail["valid"] == 1
    want = (np.abs(dev) > tail["threshold"]) & v3
    assert np.array_equal(rtl["error"][T1 + T2 + 1:], want[:-1].astype(np.int64))


def test_rtl_generator(rng):
    kw = dict(width=8, lanes=4, batch_bits=4)
    A = rng.integers(-128, 128, (61, 4))
    A[:15] = -128  # the widest sanity vector: 15 × -128 negated needs 12 bits
    seg1 = generator_stimulus(A[:15], 15)  # one full batch of the largest N, back to back
    seg2 = generator_stimulus(A[15:], 5, rng=rng, gaps=0.3)
    seg3 = generator_stimulus(A[:9], 0)  # batch 0: closed by last only
    # protocol violations, clears and random batch values: only the golden model can say
    T4 = 200
    seg4 = {"i__data": rng.integers(-128, 128, (T4, 4)), "i__valid": rng.integers(0, 2, T4),
            "last": (rng.random(T4) < 0.1).astype(np.int64),
            "batch": rng.integers(0, 16, T4), "clear": (rng.random(T4) < 0.03).astype(np.int64)}
    seg4["batch"] = np.repeat(seg4["batch"][::25], 25)[:T4]
    inputs = _cat(seg1, seg2, seg3, seg4)
    rtl, gold = run_unit("generator", kw, inputs, build_root=BUILD)
    _same(rtl, gold)
    n12 = len(seg1["i__valid"]) + len(seg2["i__valid"]) + len(seg3["i__valid"])
    v = rtl["o__valid"][:n12 + 1] == 1
    s = rtl["sanity"][:n12 + 1]
    out = rtl["o__data"][:n12 + 1]
    assert not rtl["overrun"][:n12 + 1].any()
    assert np.array_equal(out[v & (s == 0)], np.vstack([A[:15], A[15:], A[:9]]))
    assert not temporal_syndrome(out[v], s[v], expected=0).any()
    assert s.sum() == 1 + math.ceil(46 / 5) + 1
    assert out[v & (s == 1)][0].tolist() == [15 * 128] * 4
    # latency 1 and throughput: the 15-vector batch leaves on 16 consecutive cycles,
    # starting one cycle after its first input; ready is low exactly in the sanity cycle
    assert rtl["o__valid"][1:17].all() and rtl["sanity"][16] == 1
    assert rtl["ready"][15] == 0 and rtl["ready"][:15].all() and rtl["ready"][16]
    assert rtl["overrun"][n12 + 1:].any()  # the random segment does violate the protocol


@pytest.mark.parametrize(("sim", "residue"), [
    ("icarus", None), ("icarus", 10), pytest.param("verilator", None,
                                                   marks=pytest.mark.verilator)])
def test_rtl_temporal_and_spatial_chain(rng, sim, residue):
    """Generator → array (functional, latency 3) → temporal and spatial checkers.

    Fault-free: no alarm.  Then single bit flips in the array's outputs: each is caught by
    both checkers; the spatial index names the vector and the temporal lane mask the column.
    """
    K, C, N = 4, 5, 6
    A = rng.integers(-128, 128, (40, K))
    W = rng.integers(-128, 128, (K, C))
    bias = rng.integers(-2000, 2000, C)
    s, sb = sanity_column(W, bias)
    We, be = np.hstack([W, s[:, None]]), np.append(bias, sb)
    gkw = dict(width=8, lanes=K, batch_bits=3)
    g_rtl, g_gold = run_unit("generator", gkw, generator_stimulus(A, N), build_root=BUILD,
                             sim="icarus")
    _same(g_rtl, g_gold)
    d, val, last = array_outputs(g_rtl, We, be)
    width = int(np.abs(d).max()).bit_length() + 1
    # one flip in each of three distinct batches (two flips in one batch could cancel)
    batch_of = np.cumsum(np.concatenate([[0], (val & last)[:-1]]))
    bad_batches = sorted(rng.choice(int((val & last).sum()), size=3, replace=False).tolist())
    faulty = d.copy()
    flips = []
    for b in bad_batches:
        t = int(rng.choice(np.flatnonzero((val == 1) & (batch_of == b))))
        lane = int(rng.integers(0, C + 1))
        bit = int(rng.integers(0, residue or width))
        faulty[t, lane] = flip_bit(faulty[t, lane], bit, width)
        flips.append((t, lane))
    clean_in = temporal_stimulus_from(d, val, last, be, residue_bits=residue)
    faulty_in = temporal_stimulus_from(faulty, val, last, be, residue_bits=residue)
    faulty_in["clear"][0] = 1
    tin = _cat(clean_in, faulty_in)
    tkw = dict(width=width, lanes=C + 1, batch_bits=3, residue_bits=residue)
    rtl, gold = run_unit("temporal", tkw, tin, build_root=BUILD, sim=sim)
    _same(rtl, gold)
    T = len(d)
    assert not rtl["alarm"][:T + 1].any() and rtl["checked"][:T + 1].sum() == math.ceil(40 / N)
    failing = np.flatnonzero(rtl["error"][T + 1:])  # closing rows of the failing batches
    assert batch_of[failing].tolist() == bad_batches
    assert rtl["first_index"][-1] == bad_batches[0]
    for t, lane in flips:
        close = int(np.flatnonzero((val == 1) & (last == 1) & (batch_of == batch_of[t]))[0])
        assert rtl["lane_errors"][T + 1 + close] == 1 << lane  # the failing column
    # the spatial checker on the same faulty stream names each faulty vector
    skw = dict(width=width, lanes=C + 1, residue_bits=residue)
    sin = {"data": faulty, "valid": val, "expected": np.zeros(T, np.int64),
           "threshold": np.zeros(T, np.int64), "clear": np.zeros(T, np.int64)}
    srtl, sgold = run_unit("spatial", skw, sin, build_root=BUILD, sim="icarus")
    _same(srtl, sgold)
    assert (np.flatnonzero(srtl["error"]) - 1).tolist() == [t for t, _ in flips]


# ---------------------------------------------------------------------------------------------
# Table 6.1 by error injection
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "modulus"), [("flip", "exact"), ("alg61", "exact"),
                                                ("flip", "pow2")])
def test_table_6_1_guarantees(rng, model, modulus):
    """Exact checks, and residue checks modulo 2^k with k = the widest checked register.

    The recommended residue configuration: no single register error is a multiple of 2^k.
    """
    layer = random_fc_layer(rng, batch=6, k_in=5, m_out=6)
    k = int(layer.widths["output"].max()) if modulus == "pow2" else None
    table = detection_table(rng, layer, max_errors=3, model=model, modulus=modulus, k=k)
    seen = set()
    for row in table:
        kind, m = row["kind"], row["errors"]
        assert row["effective"] > 0.9 * row["tried"]
        if m == 1:
            assert row["exhaustive"]
        for check in ("spatial", "temporal", "both"):
            guaranteed = TABLE_6_1[kind][check]
            rate = row[check]
            if guaranteed == 0:
                assert rate == 0.0, (kind, m, check)  # Lemma 1: never detected
            elif guaranteed is None or m <= guaranteed:
                assert rate == 1.0, (kind, m, check, rate)  # Lemmas 2-6
                seen.add((kind, check, m))
        if TABLE_6_1[kind]["both"] is None or m <= TABLE_6_1[kind]["both"]:
            assert row["sdc"] == 0
    assert ("output", "both", 3) in seen and ("bias", "temporal", 3) in seen
    # beyond the guarantees the checks do miss some cases (so the test can tell)
    by = {(r["kind"], r["errors"]): r for r in table}
    assert by[("bias", 2)]["spatial"] < 1.0 and by[("output", 2)]["spatial"] < 1.0


def test_lemma_6_bound_is_tight(rng):
    layer = random_fc_layer(rng)
    for d in (1, 7, 1 << 12):
        assert rectangle_escape(layer, d, (0, 1, 3, 8)) == (False, False)
    # any three of the four rectangle errors are caught
    corners = [(0, 1, 5), (0, 8, -5), (3, 1, -5), (3, 8, 5)]
    for three in itertools.combinations(corners, 3):
        O = layer.O_ext.copy()
        for z, u, d in three:
            O[z, u] += d
        s, t = detect(layer, O[None])
        assert s[0] or t[0]


def test_residue_aliasing_single_output_flip(rng):
    """Modulo 2^k a flip of output bit i (error ±2^i) escapes iff i ≥ k.

    Modulo 2^k − 1 no single flip escapes.
    """
    layer = random_fc_layer(rng, batch=4, k_in=4, m_out=4)
    w = layer.widths["output"].reshape(-1)
    sites = np.repeat(np.arange(w.size), w)[:, None]
    bits = np.concatenate([np.arange(x) for x in w.tolist()])[:, None]
    O = inject(layer, "output", sites, bits)
    for k in (4, 8, 13):
        s, t = detect(layer, O, modulus="pow2", k=k)
        assert np.array_equal(s, bits[:, 0] < k) and np.array_equal(t, bits[:, 0] < k)
        s, t = detect(layer, O, modulus="pow2m1", k=k)
        assert s.all() and t.all()


def test_wrapped_sanity_values_need_residue_checks():
    """Sanity input / column stored at the data width (no widened path).

    The exact checks false-alarm on fault-free data, the residue checks modulo 2^width do not (seed
    Ozen 2023 §6.3.1).
    """
    I = np.full((8, 3), -128)
    W = np.full((3, 8), -128)
    layer = FCLayer(I=I, W=W, b=np.arange(8) * 100, a_width=8, w_width=8, bias_width=16,
                    wrap_input=True, wrap_weight=True)
    assert layer.I_ext[-1].tolist() == [0, 0, 0] and layer.W_ext[:, -1].tolist() == [0] * 3
    s, t = detect(layer, layer.O_ext[None])
    assert s[0] and t[0]
    s, t = detect(layer, layer.O_ext[None], modulus="pow2", k=8)
    assert not s[0] and not t[0]


def test_threshold_tolerates_small_deviations(rng):
    layer = random_fc_layer(rng, batch=4, k_in=4, m_out=4)
    for d in (1, 5, 6, 40):
        O = layer.O_ext.copy()
        O[2, 1] += d
        s, t = detect(layer, O[None], threshold=5)
        assert bool(s[0]) == bool(t[0]) == (d > 5)


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "kw", "field"), [
    (SpatialChecker, {"width": 1}, "width"),
    (SpatialChecker, {"lanes": 0}, "lanes"),
    (SpatialChecker, {"lanes": 258}, "lanes"),
    (SpatialChecker, {"width": 20, "residue_bits": 21}, "residue_bits"),
    (SpatialChecker, {"residue_bits": 1}, "residue_bits"),
    (SpatialChecker, {"index_bits": 0}, "index_bits"),
    (SpatialChecker, {"width": 60, "lanes": 257}, "width"),
    (SanityInputGenerator, {"width": "8"}, "width"),
    (SanityInputGenerator, {"lanes": 0}, "lanes"),
    (SanityInputGenerator, {"batch_bits": 0}, "batch_bits"),
    (SanityInputGenerator, {"width": 8, "out_width": 7}, "out_width"),
    (SanityInputGenerator, {"width": 8, "batch_bits": 4, "out_width": 13}, "out_width"),
    (TemporalChecker, {"lanes": 300}, "lanes"),
    (TemporalChecker, {"batch_bits": True}, "batch_bits"),
    (TemporalChecker, {"width": 8, "residue_bits": 9}, "residue_bits"),
    (TemporalChecker, {"width": 60, "batch_bits": 16}, "width"),
])
def test_bad_parameters(cls, kw, field):
    with pytest.raises(ConfigError) as exc:
        cls(**kw)
    assert exc.value.field == field


def test_widths_and_verilog():
    sc = SpatialChecker(width=26, lanes=65)
    assert sc.check_width == 26 + 7 and sc.latency == 1
    assert SpatialChecker(width=26, lanes=65, residue_bits=12).check_width == 12
    g = SanityInputGenerator(width=8, lanes=64, batch_bits=6)
    assert g.out_width == 14 and g.exact
    assert not SanityInputGenerator(width=8, lanes=4, batch_bits=6, out_width=8).exact
    t = TemporalChecker(width=26, lanes=65, batch_bits=6)
    assert (t.acc_width, t.check_width) == (32, 33)
    for unit in (sc, g, t):
        text = to_verilog(unit, "u_t", unit.config())
        assert "module u_t" in text and "clk" in text and "rst" in text


# ---------------------------------------------------------------------------------------------
# Spatial checksum inside the accelerator (WS): extra sanity column + checker on C + 1 lanes
# ---------------------------------------------------------------------------------------------
def _acc_cfg(**kw):
    from ftaccel.config import AcceleratorConfig

    return AcceleratorConfig(dataflow="ws", checksum="spatial", max_k=64, **kw)


@pytest.mark.parametrize("rows,cols,width", [(2, 3, 8), (4, 4, 8), (3, 2, 16)])
def test_accelerator_spatial_checksum_fault_free_rtl(rng, rows, cols, width):
    from ftaccel.golden.array import cycle_count, latency
    from ftaccel.tb.accelerator import mismatches, rtl_matmul

    cfg = _acc_cfg(rows=rows, cols=cols, a_width=width, w_width=width)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    A = rng.integers(lo, hi, (5, 2 * rows + 1))   # K- and N-tiling: every pass is checked
    B = rng.integers(lo, hi, (2 * rows + 1, cols + 2))
    B[0, :] = lo                                  # extreme sanity weights
    run = rtl_matmul(cfg, A, B)
    assert not mismatches(run.recorded, run.golden)
    assert np.array_equal(run.acc, A @ B)
    assert run.recorded["checksum__alarm"].max() == 0
    assert run.recorded["checksum__error"].sum() == 0
    # every output vector, intermediate K-tiles included, was checked with a zero syndrome
    valid = run.recorded["out_valid"] == 1
    assert np.all(run.recorded["checksum__syndrome"][valid] == 0)
    assert run.program.cycles == cycle_count(cfg, 5, 2 * rows + 1, cols + 2)
    fed = np.flatnonzero(run.program.inputs["in_valid"])[0]
    assert np.flatnonzero(valid)[0] == fed + latency(cfg) == fed + rows + cols + 2  # +1 cycle


def test_accelerator_spatial_checksum_no_false_alarm_on_thousands_of_products(rng):
    """2,000 random fault-free products on the cycle model (equal to the RTL, see above)."""
    from ftaccel.golden.accelerator import simulate
    from ftaccel.golden.schedule import build_program

    cfg = _acc_cfg(rows=3, cols=3)
    alarms = 0
    for _ in range(2000):
        M, K, N = (int(x) for x in rng.integers(1, 7, 3))
        A = rng.integers(-128, 128, (M, K))
        B = rng.integers(-128, 128, (K, N))
        rec = simulate(cfg, build_program(cfg, A, B))
        alarms += int(rec["checksum__alarm"].max())
    assert alarms == 0


def test_accelerator_spatial_checksum_exhaustive_campaign_matches_table_6_1(rng):
    """Every stuck-at fault in every register bit of a 3×3 (+1) WS array, on the cycle model.

    Table 6.1: the spatial checksum detects every single weight error and every output /
    computation error (partial-sum registers), and no input error (Lemma 1): a fault in an
    activation register of column 0 corrupts the input seen by every column, sanity column
    included.  Faults in the sanity column itself never corrupt the product silently.
    """
    from ftaccel.golden.campaign import coverage_table, exhaustive_faults, run_campaign

    cfg = _acc_cfg(rows=3, cols=3, fault_hooks=True)
    A = rng.integers(-128, 128, (4, 3))
    B = rng.integers(-128, 128, (3, 3))
    B[B == 0] = 1  # a zero weight makes some activation faults input-like (see the docs)
    out = run_campaign(cfg, A, B, exhaustive_faults(cfg))
    col = lambda o: "sanity" if o.fault.col == 3 else ("col0" if o.fault.col == 0 else "mid")  # noqa: E731
    table = coverage_table(out, key=lambda o: f"{o.fault.register}/{col(o)}")
    print(table)
    for reg in ("weight", "psum"):
        for where in ("col0", "mid"):
            assert table[f"{reg}/{where}"]["detection_rate"] == 1.0
            assert table[f"{reg}/{where}"]["detected"] > 0
    assert table["act/col0"]["detected"] == 0 and table["act/col0"]["sdc"] > 0  # Lemma 1
    for reg in ("weight", "act", "psum"):
        assert table[f"{reg}/sanity"]["sdc"] == 0


def test_accelerator_spatial_checksum_rtl_faults_equal_golden(rng):
    from ftaccel.golden.campaign import classify
    from ftaccel.golden.faults import Fault
    from ftaccel.tb.accelerator import mismatches, rtl_matmul

    cfg = _acc_cfg(rows=3, cols=3, fault_hooks=True)
    A = rng.integers(-128, 128, (4, 5))
    B = rng.integers(-128, 128, (5, 4))
    clean = A @ B
    kinds = []
    for fault in (Fault(1, 1, "weight", 4, "sa1"), Fault(2, 2, "psum", 9, "flip", 8),
                  Fault(0, 0, "act", 6, "sa0"), Fault(1, 3, "weight", 2, "sa1"),
                  Fault(2, 3, "psum", 0, "sa1"), Fault(0, 2, "act", 7, "flip", 6)):
        run = rtl_matmul(cfg, A, B, fault=fault)
        assert not mismatches(run.recorded, run.golden), fault
        alarm = bool(run.recorded["checksum__alarm"].max())
        kinds.append(classify(int(np.sum(run.acc != clean)), alarm))
        if alarm:  # the first failing vector is the first with a non-zero syndrome
            bad = np.flatnonzero(run.recorded["checksum__error"])[0]
            index = int(np.sum(run.recorded["out_valid"][:bad]))
            assert run.recorded["checksum__first"][-1] == index
    assert "detected" in kinds and "sdc" in kinds  # column-0 activation: an input error
