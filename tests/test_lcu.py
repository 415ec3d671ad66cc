# amaranth: UnusedElaboratable=no
"""LCU, correction controller and neuron splitting (Ahmadilivani 2025 §4.3.1).

Layers:

* golden LCU / buffer correction against independent plain-Python implementations
  (exhaustive at 4 and 8 bits, random at 16), negative-value behaviour pinned by hand;
* neuron splitting: copies bit-identical, ``2h − q ∈ {−1, 0, 1}`` exhaustively, next-layer
  deviation within the documented bound (and the bound reached), an independent loop
  implementation, end-to-end correction of injected faults through the buffer mapping;
* RTL LCU against the golden model on the fault scenarios of :func:`tb.lcu.fault_scenarios`
  (0→1 flips in one copy masked, 1→0 flips passing as smaller values, negative values);
* RTL controller: random buffers with random faults and random (overlapping) pairs, all
  two-pair hazard sequences, host pokes while busy, the ``n_pairs`` clamp, back-to-back runs;
  measured cycles equal :func:`rtl_gen.lcu.controller_cycles`;
* banked buffer (``lanes`` words per row): word addresses and holes against a plain
  ``divmod`` reference; capture + correction against an independent reference; the cycle
  model :class:`golden.lcu.ControllerModel` against the functional one; RTL (Icarus, one
  Verilator case) against the cycle model on *every* output row of long random sessions
  (captures with clear and wrap-around, colliding host writes, writes to holes, pokes while
  busy, a capture in the start cycle, every two-pair hazard within and across rows) and
  against the seed's claims on split-layer vectors with one flipped bit per pair;
* bad parameters raise ``ConfigError`` / ``ValueError``.
"""

from __future__ import annotations

import gc
import itertools
from pathlib import Path

import numpy as np
import pytest

from ftaccel.errors import ConfigError
from ftaccel.golden.bits import flip_bit
from ftaccel.golden.lcu import (
    ControllerModel,
    capture_then_correct,
    correct_buffer,
    default_mask,
    lcu,
)
from ftaccel.golden.output_buffer import buffer_address, flat_to_rows, lane_bits, rows_to_flat
from ftaccel.golden.split import (
    buffer_groups,
    layer_forward,
    next_layer_bound,
    split_layer,
    triplicate_layer,
)
from ftaccel.golden.tmr import word_vote
from ftaccel.rtl_gen.emit import to_verilog
from ftaccel.rtl_gen.lcu import LCU, CorrectionController, controller_cycles
from ftaccel.tb.lcu import (
    SCENARIOS,
    BufferScript,
    ControllerJob,
    fault_scenarios,
    run_buffer_script,
    run_controller,
    run_lcu,
)

BUILD = Path(__file__).resolve().parent.parent / "build" / "lcu"
# Components built only to read their properties or check validation are never elaborated.


# --------------------------------------------------------------------------------------------
# Independent references: plain Python integers, one element at a time.
# --------------------------------------------------------------------------------------------
def _ref_lcu(a: int, b: int, width: int, mask: int | None = None) -> int:
    """AND bit by bit, then force the listed bits to 0; two's complement done by hand."""
    if mask is None:
        mask = (1 << width) - 1 - (1 << (width - 2))
    bits = []
    for i in range(width):
        ba = (a >> i) & 1  # Python's >> on negative ints is arithmetic: two's-complement bits
        bb = (b >> i) & 1
        bits.append(ba and bb and (mask >> i) & 1)
    value = sum(bit << i for i, bit in enumerate(bits[:-1]))
    return value - (bits[-1] << (width - 1))


def _ref_correct(buffer, pairs, width, mask=None):
    buf = [int(v) for v in buffer]
    for a, b in pairs:
        v = _ref_lcu(buf[a], buf[b], width, mask)
        buf[a] = buf[b] = v
    return buf


def _ref_requant(y: int, shift: int, bits: int, relu: bool) -> int:
    if relu:
        y = max(y, 0)
    if shift > 0:
        y = (y + 2 ** (shift - 1)) // 2 ** shift
    return max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, y))


# --------------------------------------------------------------------------------------------
# Golden LCU
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [4, 8])
def test_golden_lcu_exhaustive(width):
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    a, b = np.meshgrid(np.arange(lo, hi), np.arange(lo, hi), indexing="ij")
    got = lcu(a, b, width=width)
    ref = np.array([[_ref_lcu(int(x), int(y), width) for y in range(lo, hi)]
                    for x in range(lo, hi)])
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("width", [8, 16])
def test_golden_lcu_random_masks(rng, width):
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    for mask in (None, 0, (1 << width) - 1, int(rng.integers(0, 1 << width))):
        a, b = rng.integers(lo, hi, 2000), rng.integers(lo, hi, 2000)
        got = lcu(a, b, width=width, mask=mask)
        ref = [_ref_lcu(int(x), int(y), width, mask) for x, y in zip(a, b, strict=True)]
        assert got.tolist() == ref


@pytest.mark.parametrize("width", [8, 16])
def test_golden_lcu_value_domains(width):
    """Pinned behaviour: identity on split halves, broken on negative values (documented)."""
    q = 1 << (width - 2)
    halves = np.arange(0, q)
    assert np.array_equal(lcu(halves, halves, width=width), halves)
    # Non-negative values >= 2**(width-2) lose that bit: why the halves saturate at width-1 bits.
    big = np.arange(q, 2 * q)
    assert np.array_equal(lcu(big, big, width=width), big - q)
    # Negative values in [-2**(width-2), -1] have bit width-2 set: the LCU subtracts 2**(width-2).
    neg = np.arange(-q, 0)
    assert np.array_equal(lcu(neg, neg, width=width), neg - q)
    assert int(lcu(-1, -1, width=width)) == -q - 1  # -1 -> -65 at int8
    # Below -2**(width-2) that bit is already 0: unchanged.
    deep = np.arange(-2 * q, -q)
    assert np.array_equal(lcu(deep, deep, width=width), deep)
    # A sign-bit 1->0 flip in one negative copy makes the result positive.
    assert int(lcu(-1, flip_bit(-1, width - 1, width), width=width)) == q - 1


def test_golden_correct_buffer_matches_reference(rng):
    for _ in range(50):
        depth = int(rng.integers(1, 12))
        buf = rng.integers(-128, 128, depth)
        pairs = rng.integers(0, depth, (int(rng.integers(0, 10)), 2))
        mask = None if rng.random() < 0.7 else int(rng.integers(0, 256))
        got = correct_buffer(buf, pairs, width=8, mask=mask)
        assert got.tolist() == _ref_correct(buf, pairs.tolist(), 8, mask)


def test_golden_bad_input():
    with pytest.raises(ValueError, match="width"):
        lcu(1, 1, width=1)
    with pytest.raises(ValueError, match="mask"):
        lcu(1, 1, width=8, mask=256)
    with pytest.raises(ValueError, match="8-bit signed"):
        lcu(128, 1, width=8)
    with pytest.raises(ValueError, match="pairs"):
        correct_buffer([1, 2], [[0, 2]])
    assert default_mask(8) == 0xBF and default_mask(16) == 0xBFFF


# --------------------------------------------------------------------------------------------
# Neuron splitting
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("a_width", "shifts"), [(8, range(13)), (16, range(5))])
def test_split_halving_exhaustive(a_width, shifts):
    """``2h − q ∈ {−1, 0, 1}`` for every accumulator value up to well beyond saturation."""
    for s in shifts:
        r = 1 << (a_width + s + 1)
        y = np.arange(-r, r + 1)[:, None]
        for relu in (True, False):
            q = layer_forward(y, np.ones((1, 1), np.int64), np.zeros(1, np.int64), s,
                              relu=relu, a_width=a_width)
            h = layer_forward(y, np.ones((1, 1), np.int64), np.zeros(1, np.int64), s + 1,
                              relu=relu, a_width=a_width, out_bits=a_width - 1)
            d = 2 * h - q
            assert d.min() >= -1 and d.max() <= 1, (s, relu)
            if relu:  # a half never sets the bit the LCU clears
                assert h.min() >= 0 and h.max() < 1 << (a_width - 2)
                assert np.array_equal(lcu(h, h, width=a_width), h)


def _random_layer(rng, a_width=8):
    k, n, p = (int(rng.integers(2, 40)), int(rng.integers(2, 24)), int(rng.integers(1, 12)))
    wmax = 1 << 7
    return dict(
        x=rng.integers(0, 1 << (a_width - 1), (int(rng.integers(1, 9)), k)),
        w=rng.integers(-wmax, wmax, (k, n)), b=rng.integers(-3000, 3000, n),
        s=rng.integers(3, 12, n), w2=rng.integers(-wmax, wmax, (n, p)),
        crit=rng.choice(n, int(rng.integers(0, n + 1)), replace=False),
    )


def test_split_layer_independent(rng):
    """Split outputs against a loop implementation; copies bit-identical; mapping shape."""
    for _ in range(20):
        r = _random_layer(rng)
        n = r["w"].shape[1]
        lay = split_layer(r["w"], r["b"], r["s"], r["crit"], next_weights=r["w2"])
        h = lay.forward(r["x"])
        crit = [int(c) for c in r["crit"]]
        cols = list(range(n)) + crit  # copies appended in the order of `critical`
        for m, row in enumerate(r["x"]):
            for j, c in enumerate(cols):
                acc = sum(int(row[i]) * int(r["w"][i, c]) for i in range(len(row)))
                split = c in crit
                ref = _ref_requant(acc + int(r["b"][c]), int(r["s"][c]) + split,
                                   8 - split, True)
                assert h[m, j] == ref
        assert np.array_equal(h[:, crit], h[:, n:])
        assert lay.pairs.tolist() == [[c, n + i] for i, c in enumerate(crit)]
        assert np.array_equal(lay.next_weights[n:], r["w2"][crit])
        assert np.array_equal(lay.weights[:, :n], r["w"])


def test_split_next_layer_deviation(rng):
    """Measured: next-layer accumulator deviation within D_u and reaching it.

    The int8 output deviation ≤ ceil(D_u / 2**s2).
    """
    worst_ratio, worst_out, worst_usual = 0.0, 0, 0
    for i in range(200):
        r = _random_layer(rng)
        lay = split_layer(r["w"], r["b"], r["s"], r["crit"], next_weights=r["w2"])
        q = layer_forward(r["x"], r["w"], r["b"], r["s"])
        h = lay.forward(r["x"])
        dev = np.abs(h @ lay.next_weights - q @ r["w2"])
        bound = next_layer_bound(lay)
        assert (dev <= bound).all()
        worst_ratio = max(worst_ratio, float((dev / np.maximum(bound, 1)).max()))
        # any shift (even ones far too small, which saturate), or the usual one: 2**s2 >= D
        usual = i % 2 == 0
        s2 = int(max(bound.max(), 1) - 1).bit_length() if usual else int(rng.integers(0, 14))
        p = r["w2"].shape[1]
        b2 = rng.integers(-500, 500, p)
        out_dev = np.abs(layer_forward(h, lay.next_weights, b2, s2)
                         - layer_forward(q, r["w2"], b2, s2))
        assert (out_dev <= -(-bound // (1 << s2))).all()
        worst_out = max(worst_out, int(out_dev.max()))
        if usual:
            assert out_dev.max() <= 1
            worst_usual = max(worst_usual, int(out_dev.max()))
    print(f"max next-layer accumulator deviation / bound = {worst_ratio:.3f}; "
          f"max int8 output deviation: {worst_usual} with 2**s2 >= D, {worst_out} with any s2")
    assert worst_ratio == 1.0  # the bound is tight


def test_split_faults_corrected_end_to_end(rng):
    """Split layer → buffer → flips in one copy per pair → correction, against fault-free.

    One 0→1 flip in one copy per pair gives a result identical to fault-free; 1→0 flips give a value
    never larger than fault-free.
    """
    r = _random_layer(rng)
    while r["crit"].size == 0:
        r = _random_layer(rng)
    lay = split_layer(r["w"], r["b"], r["s"], r["crit"], next_weights=r["w2"])
    h = lay.forward(r["x"])
    batch, width = h.shape[0], lay.n_outputs
    stride = width + 3  # a buffer row with padding
    buf = np.zeros(5 + batch * stride, dtype=np.int64)
    for m in range(batch):
        buf[5 + m * stride: 5 + m * stride + width] = h[m]
    pairs = buffer_groups(lay, batch=batch, base=5, row_stride=stride)
    assert len(pairs) == batch * r["crit"].size
    assert np.array_equal(buf[pairs[:, 0]], buf[pairs[:, 1]])
    assert np.array_equal(correct_buffer(buf, pairs), buf)  # fault-free: nothing changes
    for direction in (0, 1):
        faulty = buf.copy()
        which = pairs[np.arange(len(pairs)), rng.integers(0, 2, len(pairs))]
        vals = faulty[which]
        bits = (vals[:, None] >> np.arange(8)) & 1
        cand = np.where(bits == direction, rng.random(bits.shape), -1)
        has = (cand >= 0).any(axis=1)
        faulty[which[has]] = flip_bit(vals[has], cand[has].argmax(axis=1), 8)
        fixed = correct_buffer(faulty, pairs)
        if direction == 0:
            assert np.array_equal(fixed, buf)
        else:
            assert (fixed <= buf).all() and (fixed[which[has]] < buf[which[has]]).all()


def test_triplicate_layer(rng):
    r = _random_layer(rng)
    n = r["w"].shape[1]
    t = triplicate_layer(r["w"], r["b"], r["s"], r["crit"], next_weights=r["w2"])
    o = t.forward(r["x"])
    q = layer_forward(r["x"], r["w"], r["b"], r["s"])
    assert np.array_equal(o[:, :n], q)
    for c, c1, c2 in t.triples:
        assert np.array_equal(o[:, c], o[:, c1]) and np.array_equal(o[:, c], o[:, c2])
        assert np.array_equal(word_vote(o[:, c], o[:, c1], o[:, c2]), q[:, c])
    assert np.array_equal(o @ t.next_weights, q @ r["w2"])  # unchanged bit for bit
    tri = buffer_groups(t, batch=2)
    assert tri.shape == (2 * r["crit"].size, 3) and (tri[r["crit"].size:, 0] >= t.n_outputs).all()


def test_split_bad_input():
    w, b = np.ones((3, 4), np.int64), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="relu"):
        split_layer(w, b, 4, [0], relu=False)
    with pytest.raises(ValueError, match="at most once"):
        split_layer(w, b, 4, [1, 1])
    with pytest.raises(ValueError, match="critical"):
        split_layer(w, b, 4, [4])
    with pytest.raises(ValueError, match="next_weights"):
        split_layer(w, b, 4, [0], next_weights=np.ones((3, 2), np.int64))
    with pytest.raises(ValueError, match="shift"):
        split_layer(w, b, [1, 2], [0])
    with pytest.raises(ValueError, match="a_width"):
        split_layer(w, b, 1, [0], a_width=2)
    with pytest.raises(ValueError, match="row_stride"):
        buffer_groups(split_layer(w, b, 1, [0]), row_stride=2)


# --------------------------------------------------------------------------------------------
# RTL: LCU with faults on the copies' outputs
# --------------------------------------------------------------------------------------------
def _check_scenarios(width: int, scen: dict, out: dict) -> None:
    """The behaviour the seed claims, scenario by scenario (``out[name]``: LCU outputs)."""
    q = 1 << (width - 2)
    for name in SCENARIOS:
        clean, bits, got = scen[name]["clean"], scen[name]["bits"], out[name]
        if name in ("clean", "one_0to1", "both_msb_0to1"):
            assert np.array_equal(got, clean), name  # masked
        elif name == "one_1to0":
            bit = bits.max(axis=1)
            assert np.array_equal(got, clean - (1 << bit)), name  # passes, smaller
            assert (got < clean).all()
        elif name == "two_same_bit":
            sets = (clean >> bits[:, 0]) & 1 == 0
            flipped = flip_bit(clean, bits[:, 0], width)
            # The same bit in both copies passes (0->1 of the sign bit even makes the value
            # negative), except a 0->1 flip of bit width-2, which the mask removes.
            exp = np.where(sets & (bits[:, 0] == width - 2), clean, flipped)
            assert np.array_equal(got, exp), name
        elif name == "two_diff_bits":
            assert (got <= clean).all(), name  # 0->1 flips masked, 1->0 flips only shrink
        elif name == "negative_clean":
            assert np.array_equal(got, np.where(clean >= -q, clean - q, clean)), name
            assert (got < 0).all()


@pytest.mark.parametrize(("sim", "width"), [
    ("icarus", 8), ("icarus", 16), pytest.param("verilator", 8, marks=pytest.mark.verilator)])
def test_rtl_lcu_fault_scenarios(rng, sim, width):
    scen = fault_scenarios(rng, 48, width=width)
    a = np.concatenate([scen[k]["copies"][:, 0] for k in SCENARIOS])
    b = np.concatenate([scen[k]["copies"][:, 1] for k in SCENARIOS])
    # plus uniformly random pairs over the whole range
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    ra, rb = rng.integers(lo, hi, 300), rng.integers(lo, hi, 300)
    got = run_lcu(np.concatenate([a, ra]), np.concatenate([b, rb]), width=width,
                  build_dir=BUILD / f"lcu_w{width}", sim=sim)
    assert np.array_equal(got, lcu(np.concatenate([a, ra]), np.concatenate([b, rb]),
                                   width=width))
    out = dict(zip(SCENARIOS, np.split(got[: len(a)], len(SCENARIOS)), strict=True))
    _check_scenarios(width, scen, out)


@pytest.mark.parametrize(("width", "mask"), [(4, None), (4, 0b0110), (8, 0xFF), (8, 0x3F)])
def test_rtl_lcu_masks_exhaustive_small(width, mask, rng):
    """Exhaustive at 4 bits; 8 bits with a plain AND and with bits 6 and 7 cleared."""
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    if width == 4:
        a, b = (x.ravel() for x in np.meshgrid(np.arange(lo, hi), np.arange(lo, hi)))
    else:
        a, b = rng.integers(lo, hi, 400), rng.integers(lo, hi, 400)
    got = run_lcu(a, b, width=width, mask=mask,
                  build_dir=BUILD / f"lcu_w{width}_m{mask}", sim="icarus")
    assert np.array_equal(got, lcu(a, b, width=width, mask=mask))


def test_lcu_verilog_and_params():
    text = to_verilog(LCU(width=8, registered=True), "lcu_t", {"unit": "lcu"})
    assert "module lcu_t" in text and "clk" in text
    assert to_verilog(LCU(width=8, registered=True), "lcu_t", {}) == \
        to_verilog(LCU(width=8, registered=True), "lcu_t", {})
    assert LCU(width=16).mask == 0xBFFF and LCU(width=8, mask=3).mask == 3
    for kw, field in [({"width": 1}, "width"), ({"width": 65}, "width"),
                      ({"width": 8.0}, "width"), ({"mask": 256}, "mask"),
                      ({"mask": -1}, "mask"), ({"registered": 1}, "registered")]:
        with pytest.raises(ConfigError) as exc:
            LCU(**kw)
        assert exc.value.field == field


# --------------------------------------------------------------------------------------------
# RTL: correction controller
# --------------------------------------------------------------------------------------------
def test_controller_cycles_formula():
    assert [controller_cycles(n) for n in range(5)] == [1, 5, 7, 9, 11]
    with pytest.raises(ConfigError):
        controller_cycles(-1)


def test_controller_params():
    c = CorrectionController(width=8, depth=37, max_pairs=5)
    assert (c.width, c.depth, c.max_pairs, c.mask) == (8, 37, 5, 0xBF)
    del c
    gc.collect()  # the component holds reference cycles: collect it inside the warning filter
    for kw, field in [({"width": 1}, "width"), ({"depth": 1}, "depth"),
                      ({"depth": 1 << 17}, "depth"), ({"max_pairs": 0}, "max_pairs"),
                      ({"mask": 1 << 8}, "mask"), ({"width": True}, "width")]:
        with pytest.raises(ConfigError) as exc:
            CorrectionController(**kw)
        assert exc.value.field == field


def _faulty_split_buffer(rng, depth: int, width: int, max_pairs: int):
    """A buffer of split-layer-like words with random bit flips, and its pair list.

    Halves in pairs, other words anything; random bit flips in random words; the pair list in random
    order, indices anywhere.
    """
    half = 1 << (width - 2)
    n = int(rng.integers(1, max_pairs + 1))
    idx = rng.permutation(depth)[: 2 * n].reshape(n, 2)
    buf = rng.integers(-(1 << (width - 1)), 1 << (width - 1), depth)
    buf[idx[:, 0]] = buf[idx[:, 1]] = rng.integers(0, half, n)
    hit = rng.random(depth) < 0.3
    buf[hit] = flip_bit(buf[hit], rng.integers(0, width, int(hit.sum())), width)
    return buf, idx


def _hazard_jobs(rng, width: int, depth: int):
    """Every sequence of two pairs over indices 0..2 (all read-after-write hazards).

    Each is on a fresh random buffer; the expected buffers follow.
    """
    jobs, expected = [], []
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    for p0, p1 in itertools.product(itertools.product(range(3), repeat=2), repeat=2):
        init = rng.integers(lo, hi, depth)
        jobs.append(ControllerJob(pairs=np.array([p0, p1]), init=init))
        expected.append(correct_buffer(init, [p0, p1], width=width))
    return jobs, expected


@pytest.mark.parametrize(("sim", "width", "depth", "max_pairs"), [
    ("icarus", 8, 16, 8),
    ("icarus", 16, 37, 5),
    pytest.param("verilator", 8, 16, 8, marks=pytest.mark.verilator),
])
def test_rtl_controller(rng, sim, width, depth, max_pairs):
    jobs, expected = [], []
    # 1. random split-like buffers with random faults, fresh each job
    for i in range(12):
        buf, pairs = _faulty_split_buffer(rng, depth, width, max_pairs)
        jobs.append(ControllerJob(pairs=pairs, init=buf, poke=bool(i % 2),
                                  rng_seed=int(rng.integers(1 << 30))))
        expected.append(correct_buffer(buf, pairs, width=width))
    # 2. back-to-back runs on the same buffer with random, overlapping pairs; n = 0; clamp
    state = expected[-1]
    for n in (0, max_pairs, 1, 3):
        pairs = rng.integers(0, depth, (min(n, max_pairs), 2))
        clamp = (1 << max_pairs.bit_length()) - 1 if n == max_pairs else None
        jobs.append(ControllerJob(pairs=pairs, n_pairs=clamp, poke=True,
                                  rng_seed=int(rng.integers(1 << 30))))
        state = correct_buffer(state, pairs, width=width)
        expected.append(state)
    # 3. every two-pair read-after-write hazard
    hj, he = _hazard_jobs(rng, width, depth)
    jobs += hj
    expected += he

    results = run_controller(jobs, width=width, depth=depth, max_pairs=max_pairs,
                             build_dir=BUILD / f"ctrl_w{width}_d{depth}_p{max_pairs}", sim=sim)
    measured = set()
    for job, res, exp in zip(jobs, results, expected, strict=True):
        n = min(len(job.pairs), max_pairs)
        assert np.array_equal(res["buffer"], exp), (job.pairs, res["buffer"], exp)
        assert res["cycles"] == controller_cycles(n)
        assert len(res["done_rows"]) == 1
        assert res["busy_cycles"] == (0 if n == 0 else controller_cycles(n) - 1)
        measured.add((n, res["cycles"]))
    print("measured (pairs, cycles start->done):", sorted(measured))



# --------------------------------------------------------------------------------------------
# Banked buffer: lanes words per row, capture port
# --------------------------------------------------------------------------------------------
def _ref_stride(lanes: int) -> int:
    stride = 1
    while stride < lanes:
        stride *= 2
    return stride


def _ref_address(row: int, lane: int, lanes: int) -> int:
    return row * _ref_stride(lanes) + lane


def _ref_capture_correct(vectors, pairs, depth, lanes, width, first_row=0):
    """Plain Python: a dict of existing words; holes read 0 and ignore writes."""
    stride = _ref_stride(lanes)
    words = {r * stride + c: 0 for r in range(depth) for c in range(lanes)}
    row = first_row % depth
    for v in vectors:
        for c in range(lanes):
            words[row * stride + c] = int(v[c])
        row = (row + 1) % depth
    for a, b in pairs:
        v = _ref_lcu(words.get(int(a), 0), words.get(int(b), 0), width)
        for w in (int(a), int(b)):
            if w in words:
                words[w] = v
    return [[words[r * stride + c] for c in range(lanes)] for r in range(depth)], row


def test_golden_buffer_address_and_views(rng):
    for lanes in (1, 2, 3, 5, 6, 8, 9, 200, 256):
        lb = lane_bits(lanes)
        assert 1 << lb >= lanes and (lb == 0 or 1 << (lb - 1) < lanes)
        rows, ls = np.meshgrid(np.arange(7), np.arange(lanes), indexing="ij")
        got = buffer_address(rows, ls, lanes)
        assert got.tolist() == [[_ref_address(r, c, lanes) for c in range(lanes)]
                                for r in range(7)]
        # the fields are bit slices
        assert np.array_equal(got >> lb, rows) and np.array_equal(got & ((1 << lb) - 1), ls)
        x = rng.integers(-128, 128, (7, lanes))
        flat = rows_to_flat(x, lanes)
        assert flat.size == 7 << lb and np.array_equal(flat[got], x)
        assert np.count_nonzero(np.delete(flat, got.ravel())) == 0  # holes hold 0
        assert np.array_equal(flat_to_rows(flat, lanes), x)
    with pytest.raises(ValueError, match="lanes"):
        buffer_address(0, 0, 0)
    with pytest.raises(ValueError, match="lane"):
        buffer_address(0, 6, 6)  # a hole has an address but is not a lane
    with pytest.raises(ValueError, match="row"):
        buffer_address(-1, 0, 4)


def test_golden_capture_then_correct_reference(rng):
    for _ in range(60):
        lanes, depth = int(rng.integers(1, 11)), int(rng.integers(1, 7))
        words = depth << lane_bits(lanes)
        vec = rng.integers(-128, 128, (int(rng.integers(0, 2 * depth + 2)), lanes))
        pairs = rng.integers(0, words, (int(rng.integers(0, 12)), 2))  # holes included
        first = int(rng.integers(0, 3 * depth))
        got, nxt = capture_then_correct(vec, pairs, depth=depth, lanes=lanes, first_row=first)
        ref, ref_next = _ref_capture_correct(vec, pairs, depth, lanes, 8, first)
        assert got.tolist() == ref and nxt == ref_next
    with pytest.raises(ValueError, match="pairs"):
        capture_then_correct(np.zeros((1, 3), np.int64), [[0, 8]], depth=2, lanes=3)


def _split_vectors(rng, lanes: int, batch: int, width: int = 8):
    """Output vectors of a split layer filling ``lanes`` columns, and its column pairs."""
    k = int(rng.integers(1, lanes // 2 + 1))
    n, kk = lanes - k, int(rng.integers(8, 40))
    lay = split_layer(rng.integers(-128, 128, (kk, n)), rng.integers(-3000, 3000, n),
                      int(rng.integers(5, 11)), rng.choice(n, k, replace=False), a_width=width)
    x = rng.integers(0, 1 << (width - 1), (batch, kk))
    return lay.forward(x), lay.pairs


def _inject(rng, clean: np.ndarray, words: np.ndarray, width: int):
    """One flipped bit in one copy of each pair: 0->1 or 1->0 (when the word has a 1).

    Returns ``(faulty flat, hit addresses, directions, bits)``.
    """
    faulty = clean.copy()
    hit = words[np.arange(len(words)), rng.integers(0, 2, len(words))]
    direction = rng.integers(0, 2, len(words))
    direction[clean[hit] == 0] = 0  # nothing to clear in a zero word
    bits = (clean[hit][:, None] >> np.arange(width)) & 1
    keys = np.where(bits == direction[:, None], rng.random(bits.shape), -1.0)
    bit = keys.argmax(axis=1)
    faulty[hit] = flip_bit(clean[hit], bit, width)
    return faulty, hit, direction, bit


def _session(rng, *, width, depth, max_pairs, lanes, capture, rounds=8):
    """A long random script and the functional checks to make on its read-backs."""
    sc = BufferScript(width=width, depth=depth, max_pairs=max_pairs, lanes=lanes,
                      capture=capture, rng=rng)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    lb = lane_bits(lanes)
    words = depth << lb
    checks = []  # (first read row, expected rows or words, extra check or None)
    batch = 0
    if sc.capture and lanes > 1:
        # 1. split-layer vectors, one flipped bit per pair, the last one captured with start
        batch = min(depth, max(1, max_pairs // (lanes // 2)))
        for _ in range(rounds):
            vec, col_pairs = _split_vectors(rng, lanes, batch, width)
            rows = np.arange(batch)
            pairs = buffer_address(rows[:, None, None], col_pairs[None], lanes).reshape(-1, 2)
            clean = rows_to_flat(np.vstack([vec, np.zeros((depth - batch, lanes), np.int64)]),
                                 lanes)
            faulty, hit, direction, bit = _inject(rng, clean, pairs, width)
            frows = flat_to_rows(faulty, lanes)
            sc.clear()
            for r in range(batch - 1):
                sc.capture_vector(frows[r])
            sc.load_pairs(pairs)
            last = {"cap_en": 1, "cap_data": [int(v) for v in frows[batch - 1]]}
            sc.start(len(pairs), also=last)
            exp, _ = capture_then_correct(frows[:batch], pairs, depth=depth, lanes=lanes,
                                          width=width)

            def seed_claims(got, clean=clean, hit=hit, direction=direction, bit=bit,
                            pairs=pairs):
                flat = rows_to_flat(got, lanes)
                up = direction == 0
                assert np.array_equal(flat[hit[up]], clean[hit[up]])  # 0->1: masked
                assert np.array_equal(flat[hit[~up]],
                                      clean[hit[~up]] - (1 << bit[~up]))  # 1->0: smaller
                assert (flat[hit[~up]] < clean[hit[~up]]).all()
                others = np.setdiff1d(np.arange(clean.size), pairs.ravel())
                assert np.array_equal(flat[others], clean[others])
                return int(up.sum()), int((~up).sum())
            checks.append((sc.read_back(), exp, seed_claims))
    if sc.capture:
        # 2. captures wrapping around, a clear in the middle, colliding host writes
        state = exp.copy() if batch else np.zeros((depth, lanes), np.int64)
        row = batch % depth
        for i in range(2 * depth + 3):
            v = rng.integers(lo, hi, lanes)
            clear = i == depth + 1
            write = (int(rng.integers(0, words)), 1) if i % 3 == 0 else None
            sc.capture_vector(v, clear=clear, write=write)
            row = 0 if clear else row
            state[row] = v
            row = (row + 1) % depth
        sc.clear()
    else:
        state = np.zeros((depth, lanes), np.int64)
    # 3. host word writes everywhere (holes included), random overlapping pairs, pokes
    for a in rng.permutation(words):
        v = int(rng.integers(lo, hi))
        sc.write(int(a), v)
        if (a & ((1 << lb) - 1)) < lanes:
            state[a >> lb, a & ((1 << lb) - 1)] = v
    cand = rng.choice(words, min(words, 6), replace=False)  # few words: shared indices
    if lanes < 1 << lb:
        cand[0] = lanes  # a hole (row 0)
    for n in (max_pairs, 0, 3, max_pairs):
        pairs = cand[rng.integers(0, cand.size, (min(n, max_pairs), 2))]
        sc.load_pairs(pairs)
        n_port = (1 << max_pairs.bit_length()) - 1 if n == max_pairs else n  # the clamp
        sc.start(n_port, poke=True)
        state = flat_to_rows(correct_buffer(rows_to_flat(state, lanes), pairs, width=width),
                             lanes)
    checks.append((sc.read_back(), state.copy(), None))
    # 4. every two-pair hazard over three words: two in one row, one in another
    w3 = [int(buffer_address(0, 0, lanes)), int(buffer_address(0, lanes - 1, lanes)),
          int(buffer_address(1, lanes // 2, lanes))]
    for p0, p1 in itertools.product(itertools.product(range(3), repeat=2), repeat=2):
        init = rng.integers(lo, hi, (2, lanes))
        if sc.capture:
            sc.capture_vector(init[0], clear=True)
            sc.capture_vector(init[1])
        else:
            for r, c in itertools.product(range(2), range(lanes)):
                sc.write(int(buffer_address(r, c, lanes)), int(init[r, c]))
        pairs = np.array([[w3[p0[0]], w3[p0[1]]], [w3[p1[0]], w3[p1[1]]]])
        sc.load_pairs(pairs)
        sc.start(2)
        exp, _ = capture_then_correct(init, pairs, depth=2, lanes=lanes, width=width)
        if sc.capture:
            first = sc.row(buf_rd_row=0)
            sc.row(buf_rd_row=1)
        else:
            first = len(sc.rows)
            for r, c in itertools.product(range(2), range(1 << lb)):
                sc.row(buf_rd_addr=(r << lb) + c)
        checks.append((first, exp, None))
    return sc, checks


@pytest.mark.parametrize(("sim", "width", "depth", "max_pairs", "lanes", "capture"), [
    ("icarus", 8, 16, 32, 8, None),
    ("icarus", 16, 5, 5, 6, None),     # holes, depth and max_pairs not powers of two
    ("icarus", 8, 6, 4, 3, False),     # banked buffer behind the word read port
    ("icarus", 8, 4, 3, 1, True),      # one lane with the capture port
    pytest.param("verilator", 8, 16, 32, 8, None, marks=pytest.mark.verilator),
])
def test_rtl_banked_controller(rng, sim, width, depth, max_pairs, lanes, capture):
    cfg = dict(width=width, depth=depth, max_pairs=max_pairs, lanes=lanes, capture=capture)
    sc, checks = _session(rng, **cfg)
    stim = sc.stimulus()
    model, valid = ControllerModel(**cfg).run(stim)
    got = run_buffer_script(stim, **cfg, sim=sim,
                            build_dir=BUILD / f"bank_w{width}_d{depth}_p{max_pairs}_l{lanes}"
                                              f"_c{capture}")
    # every output port, every row (read data where the read was issued while idle)
    for port, exp in model.items():
        ok = valid[port]
        diff = (got[port] != exp).reshape(len(exp), -1).any(axis=1) & ok
        bad = np.flatnonzero(diff)
        assert bad.size == 0, f"{port}: {bad.size} rows differ, first row {bad[:1]}: " \
            f"{got[port][bad[:1]]} != {exp[bad[:1]]}"
        assert ok.mean() > 0.5, port
    assert model["done"].sum() >= 85 and model["busy"].sum() > 500  # runs checked
    # functional checks on the read-backs, independent of the cycle model
    counts = []
    for first, exp, extra in checks:
        if sc.capture:
            rows = got["buf_rd_rows"][first + 1: first + 1 + len(exp)]
        else:
            words = got["buf_rd_data"][first + 1: first + 1 + exp.size // lanes
                                       * (1 << lane_bits(lanes))]
            rows = flat_to_rows(words, lanes)
            assert not words[rows_to_flat(np.ones_like(exp), lanes) == 0].any()  # holes: 0
        assert np.array_equal(rows, exp)
        if extra is not None:
            counts.append(extra(rows))
    up, down = (sum(c[i] for c in counts) for i in (0, 1))
    print(f"{len(stim['start'])} cycles; split-layer pairs with a flipped bit: {up} 0->1 "
          f"(masked), {down} 1->0 (smaller)")
    if counts:
        assert up >= 5 and down >= 5


def test_controller_model_matches_functional(rng):
    """The cycle model's buffer after a scripted session equals capture_then_correct."""
    cfg = dict(width=8, depth=4, max_pairs=6, lanes=5)
    sc = BufferScript(**cfg)
    vec = rng.integers(-128, 128, (6, 5))
    for i, v in enumerate(vec):
        sc.capture_vector(v, clear=i == 0)
    pairs = rng.integers(0, 4 << 3, (6, 2))
    sc.load_pairs(pairs)
    sc.start(6)
    first = sc.read_back()
    out, valid = ControllerModel(**cfg).run(sc.stimulus())
    exp, nxt = capture_then_correct(vec, pairs, depth=4, lanes=5)
    assert np.array_equal(out["buf_rd_rows"][first + 1: first + 5], exp)
    assert valid["buf_rd_rows"][first + 1: first + 5].all()
    assert out["cap_row"][-1] == nxt == 2
    start = int(np.flatnonzero(sc.stimulus()["start"])[0])
    assert np.flatnonzero(out["done"]).tolist() == [start + controller_cycles(6)]


def test_banked_controller_params_and_ports():
    c = CorrectionController(width=8, depth=16, lanes=8)
    assert (c.lanes, c.lane_bits, c.row_bits, c.addr_bits, c.capture) == (8, 3, 4, 7, True)
    names = list(c.signature.members)
    assert {"cap_en", "cap_clear", "cap_data", "cap_row", "buf_rd_row", "buf_rd_rows"} \
        <= set(names) and "buf_rd_addr" not in names and "buf_wr_addr" in names
    assert c.signature.members["pair_wr_a"].shape.width == 7
    c = CorrectionController(width=8, depth=5, lanes=6, capture=False)
    assert (c.lane_bits, c.row_bits, c.addr_bits) == (3, 3, 6) and not c.capture
    assert "buf_rd_addr" in c.signature.members and "cap_en" not in c.signature.members
    c = CorrectionController(depth=37)
    # one lane: the ports of the first version, in the same order
    assert list(c.signature.members) == [
        "buf_wr_en", "buf_wr_addr", "buf_wr_data", "buf_rd_addr", "buf_rd_data", "pair_wr_en",
        "pair_wr_index", "pair_wr_a", "pair_wr_b", "n_pairs", "start", "busy", "done"]
    assert (c.lanes, c.lane_bits, c.addr_bits, c.capture) == (1, 0, 6, False)
    del c
    gc.collect()
    for kw, field in [({"lanes": 0}, "lanes"), ({"lanes": 257}, "lanes"),
                      ({"lanes": True}, "lanes"), ({"lanes": 2.0}, "lanes"),
                      ({"capture": 1}, "capture"), ({"capture": "yes"}, "capture")]:
        with pytest.raises(ConfigError) as exc:
            CorrectionController(**kw)
        assert exc.value.field == field
