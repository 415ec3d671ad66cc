"""Networks as graphs (issue 23 phase 1): residual Add, Concat, depthwise, padded and strided.

The three engines equal the independent integer reference (tests/netref.py) bit for bit on
graph models; runs resume from recorded tensors; the model file keeps graphs (and still reads
version-1 chains); the consumers (fast fault model, NVF, protect, HAS, campaigns) work on a
residual graph.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from netref import reference  # tests/netref.py: the independent reference

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.fault_models import FastFaultEngine
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import (
    Add,
    AvgPool,
    Clip,
    Concat,
    Conv2D,
    CycleEngine,
    Dense,
    DepthwiseConv2D,
    Flatten,
    FunctionalEngine,
    LayerOptions,
    MaxPool,
    Model,
    ModelError,
    ReLU,
    quantize,
    run,
    state_at,
)


def _w(rng, *shape, scale=0.5):
    return rng.normal(0, scale, shape)


def residual(rng) -> Model:
    """Conv → conv → Add(0, 1) → ReLU → padded max pool → flatten → dense."""
    return Model(layers=(
        Conv2D(_w(rng, 3, 3, 2, 4), _w(rng, 4, scale=0.1), padding=(1, 1, 1, 1), relu=True,
               name="c1"),
        Conv2D(_w(rng, 3, 3, 4, 4), _w(rng, 4, scale=0.1), padding=(1, 1, 1, 1), name="c2"),
        Add(name="res", inputs=(0, 1)),
        ReLU(name="r"),
        MaxPool(size=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), name="mp"),
        Flatten(order="chw", name="fl"),
        Dense(_w(rng, 64, 3, scale=0.2), _w(rng, 3, scale=0.1), name="fc"),
    ), input_shape=(8, 8, 2), classes=3, name="residual")


def fire(rng) -> Model:
    """Squeeze 1×1 → expand 1×1 ‖ expand 3×3 → Concat → padded avg pool → dense."""
    return Model(layers=(
        Conv2D(_w(rng, 1, 1, 2, 3), _w(rng, 3, scale=0.1), relu=True, name="sq"),
        Conv2D(_w(rng, 1, 1, 3, 4), _w(rng, 4, scale=0.1), relu=True, name="e1"),
        Conv2D(_w(rng, 3, 3, 3, 2), _w(rng, 2, scale=0.1), padding=(1, 1, 1, 1), relu=True,
               name="e3", inputs=(0,)),
        Concat(name="cat", inputs=(1, 2)),
        AvgPool(size=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), name="ap"),
        Flatten(name="fl"),
        Dense(_w(rng, 96, 4, scale=0.2), _w(rng, 4, scale=0.1), name="fc"),
    ), input_shape=(8, 8, 2), classes=4, name="fire")


def mobile(rng) -> Model:
    """Depthwise 3×3 stride 2 (ReLU6) → pointwise 1×1 → global average → dense."""
    return Model(layers=(
        DepthwiseConv2D(_w(rng, 3, 3, 3), _w(rng, 3, scale=0.1), stride=(2, 2),
                        padding=(1, 1, 1, 1), relu=True, name="dw"),
        Clip(hi=6.0, name="relu6"),
        Conv2D(_w(rng, 1, 1, 3, 5), _w(rng, 5, scale=0.1), relu=True, name="pw"),
        AvgPool(size=(4, 4), stride=(4, 4), name="gap"),
        Flatten(order="chw", name="fl"),
        Dense(_w(rng, 5, 3), _w(rng, 3, scale=0.1), name="fc"),
    ), input_shape=(8, 8, 3), classes=3, name="mobile")


def strided(rng) -> Model:
    """Asymmetric padding and strides, an average pool counting its padding, a skip on the input."""
    return Model(layers=(
        Conv2D(_w(rng, 3, 3, 2, 2), _w(rng, 2, scale=0.1), stride=(2, 1), padding=(0, 1, 2, 1),
               name="cs"),
        Conv2D(_w(rng, 2, 1, 2, 2), _w(rng, 2, scale=0.1), stride=(2, 2), name="skip",
               inputs=(-1,)),
        AvgPool(size=(1, 3), stride=(1, 2), padding=(0, 1, 0, 1), count_pad=True, name="ap",
                inputs=(0,)),
        Concat(name="cat", inputs=(2, 1)),
        Clip(lo=-1.0, hi=1.5, name="clip"),
        Flatten(order="chw", name="fl"),
        Dense(_w(rng, 64, 3, scale=0.2), _w(rng, 3, scale=0.1), name="fc"),
    ), input_shape=(8, 8, 2), classes=3, name="strided")


BUILDERS = {"residual": residual, "fire": fire, "mobile": mobile, "strided": strided}
_Q: dict = {}


def quantised(name: str, seed: int = 7):
    """The quantised graph ``name`` (seeded weights, calibrated on seeded images) and images."""
    if name not in _Q:
        rng = np.random.default_rng(seed)
        fm = BUILDERS[name](rng)
        cal = rng.normal(0, 1, (64,) + fm.input_shape)
        _Q[name] = (fm, quantize(fm, cal), rng.normal(0, 1, (5,) + fm.input_shape))
    return _Q[name]


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_golden_and_cycle_engines_equal_the_reference_on_graphs(name, dataflow):
    fm, qm, x = quantised(name)
    assert qm.is_chain == (name == "mobile")  # mobile: a chain of the new node kinds
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow, a_width=8, w_width=8,
                            acc_width=32, max_k=64)
    want = reference(qm, x, cfg)
    xq = qm.quantize_input(x)
    gold = run(qm, xq, FunctionalEngine(cfg))
    cyc = run(qm, xq, CycleEngine(cfg))
    np.testing.assert_array_equal(gold.logits, want)
    np.testing.assert_array_equal(cyc.logits, want)
    assert [s.cycles for s in gold.layers] == [s.cycles for s in cyc.layers]
    assert np.ptp(want) > 0  # not a constant answer


def test_units_on_a_depthwise_graph_equal_the_reference():
    _, qm, x = quantised("mobile")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", afd=True, median=3, acc_width=32)
    units = {"afd": {"shift": 1, "gates": 2, "mode": 1}}
    want = reference(qm, x, cfg, units)
    xq = qm.quantize_input(x)
    np.testing.assert_array_equal(run(qm, xq, FunctionalEngine(cfg), units=units).logits, want)
    np.testing.assert_array_equal(run(qm, xq, CycleEngine(cfg), units=units).logits, want)


def test_rtl_engine_equals_the_reference_on_graphs():
    from ftaccel.tb.accelerator import RTLEngine

    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", acc_width=32)
    eng = RTLEngine(cfg)
    for name in ("residual", "mobile"):
        _, qm, x = quantised(name)
        x = x[:2]
        got = run(qm, qm.quantize_input(x), eng).logits
        np.testing.assert_array_equal(got, reference(qm, x, cfg))


def test_quantised_graph_keeps_the_float_top1():
    for name in BUILDERS:
        fm, qm, _ = quantised(name)
        x = np.random.default_rng(11).normal(0, 1, (200,) + fm.input_shape)
        want = np.argmax(fm.forward_float(x), 1)
        got = run(qm, qm.quantize_input(x, check=False),
                  FunctionalEngine(AcceleratorConfig(acc_width=32))).predictions
        agree = float(np.mean(want == got))
        print(f"{name}: int8 top-1 agrees with float on {agree:.3f}")
        assert agree >= 0.85, name


def test_add_and_concat_align_scales_by_shifts():
    fm, qm, _ = quantised("fire")
    cat = qm.layers[3]
    fr = qm.fracs
    assert cat.shifts == tuple(fr[j] - fr[3] for j in cat.inputs)
    # an Add of two inputs at scales 2**-3 and 2**-1: the finer is shifted right, rounding
    a = Add(shifts=(2, 0))
    np.testing.assert_array_equal(a.forward([np.array([6, 5, -6, 100]), np.array([1, 1, 1,
                                                                                   100])], 8),
                                  [3, 2, 0, 125])  # (6+2)>>2 = 2 ...; 125 + 100 saturates
    np.testing.assert_array_equal(Add(shifts=(-1, 0)).forward([np.array([70]), np.array([1])],
                                                              8), [127])


def test_run_resumes_from_recorded_tensors_on_a_graph():
    _, qm, x = quantised("residual")
    cfg = AcceleratorConfig(acc_width=32)
    xq = qm.quantize_input(x)
    full = run(qm, xq, FunctionalEngine(cfg), record=True)
    for start in range(1, len(qm.layers)):
        st = state_at(qm, xq, full.outputs, start)
        np.testing.assert_array_equal(run(qm, st, FunctionalEngine(cfg), start=start).logits,
                                      full.logits)
    # node c2 on: c1's output is read again by the Add; one array is not enough
    assert qm.frontier(1) == [0] and qm.frontier(2) == [0, 1]
    with pytest.raises(ModelError, match="give their recorded tensors"):
        run(qm, full.outputs[1], FunctionalEngine(cfg), start=2)


def test_graph_model_file_round_trips_and_reads_version_1(tmp_path):
    for name in BUILDERS:
        fm, qm, x = quantised(name)
        back = Model.load(_write(tmp_path / f"{name}.npz", qm.to_bytes()))
        assert [lay.inputs for lay in back.layers] == [
            tuple(lay.inputs) for lay in qm.layers]
        cfg = AcceleratorConfig(acc_width=32)
        np.testing.assert_array_equal(
            run(back, back.quantize_input(x), FunctionalEngine(cfg)).logits,
            run(qm, qm.quantize_input(x), FunctionalEngine(cfg)).logits)
        assert json.loads(np.load(tmp_path / f"{name}.npz")["__meta__"].tobytes())[
            "version"] == 3
    # a version-1 chain file (no "inputs", no padding on pools) loads unchanged
    from ftaccel.app.network import Network

    chain = Network.builtin("digits-cnn").model
    meta = chain.to_meta()
    meta["version"] = 1
    for entry in meta["layers"]:
        entry.pop("padding", None) if entry["kind"] in ("maxpool", "avgpool") else None
        entry.pop("count_pad", None)
    arrays = {k: v for k, v in np.load(_write(tmp_path / "v2.npz", chain.to_bytes())).items()
              if k != "__meta__"}
    old = Model.from_meta(meta, arrays, "v1")
    assert old.is_chain and len(old.layers) == len(chain.layers)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_malformed_graphs_are_refused():
    rng = np.random.default_rng(0)
    good = residual(rng)
    layers = list(good.layers)
    layers[2] = Add(name="res", inputs=(0, 5))  # reads a later node
    with pytest.raises(ModelError, match="layer res reads"):
        Model(layers=tuple(layers), input_shape=(8, 8, 2), classes=3)
    layers[2] = Add(name="res", inputs=(1,))
    with pytest.raises(ModelError, match="two or more inputs"):
        Model(layers=tuple(layers), input_shape=(8, 8, 2), classes=3)
    layers[2] = Add(name="res", inputs=(-1, 1))  # 8×8×2 + 8×8×4
    with pytest.raises(ModelError, match="layer res: adds tensors of shapes"):
        Model(layers=tuple(layers), input_shape=(8, 8, 2), classes=3)


def test_depthwise_products_and_their_faults():
    _, qm, x = quantised("mobile")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", acc_width=32, fault_hooks=True)
    xq = qm.quantize_input(x[:2])
    calls = []

    class Spy(CycleEngine):
        def product(self, p):
            calls.append((p.name, p.part, p.A.shape, p.B.shape, p.fault))
            return super().product(p)

    clean = run(qm, xq, Spy(cfg))
    dw = [c for c in calls if c[0] == "dw"]
    assert [c[1] for c in dw] == [0, 1, 2] and all(c[3] == (9, 1) for c in dw)
    st = clean.layers[0]
    assert (st.K, st.N) == (9, 3) and st.utilisation(cfg) <= 1 / cfg.cols
    # a flip at cycle t hits only channel t // P (P: one channel's program)
    per = st.cycles // 3
    calls.clear()
    f = Fault(0, 0, "psum", 20, "flip", per + 5)
    run(qm, xq, Spy(cfg), options={0: LayerOptions(fault=f)})
    got = [c[4] for c in calls if c[0] == "dw"]
    assert got[0] is None and got[2] is None and got[1].cycle == 5
    with pytest.raises(ModelError, match="no columns to permute"):
        run(qm, xq, FunctionalEngine(cfg), options={0: LayerOptions(permutation=[2, 1, 0])})


# -- consumers on a graph ----------------------------------------------------------------------

def test_fast_fault_model_equals_the_cycle_model_on_a_residual_graph():
    _, qm, x = quantised("residual")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", acc_width=32, fault_hooks=True)
    xq = qm.quantize_input(x[:3])
    rng = np.random.default_rng(3)
    changed = 0
    for _ in range(6):
        f = Fault(int(rng.integers(4)), int(rng.integers(4)), "psum",
                  int(rng.integers(8, 20)), ["sa0", "sa1"][int(rng.integers(2))])
        opts = {i: LayerOptions(fault=f) for i in (0, 1, 6)}
        slow = run(qm, xq, CycleEngine(cfg), options=opts).logits
        fast = run(qm, xq, FastFaultEngine(cfg), options=opts).logits
        np.testing.assert_array_equal(fast, slow)
        changed += int(not np.array_equal(slow, run(qm, xq, CycleEngine(cfg)).logits))
    assert changed  # the faults reached the logits


def test_nvf_on_a_residual_graph_equals_flipping_by_hand():
    from ftaccel.app.nvf import flip_bits, forward, nvf

    _, qm, x = quantised("residual")
    xq = qm.quantize_input(x)
    np.testing.assert_array_equal(
        forward(qm, xq), run(qm, xq, FunctionalEngine(AcceleratorConfig(acc_width=32))).logits)
    res = nvf(qm, xq, pixels=None, layers=[0])
    golden = np.argmax(forward(qm, xq), 1)
    _, outs = forward(qm, xq, record=True)
    # channel 2 of c1, by hand: every pixel and bit, the rest of the graph from c1's output
    hits, total = 0, 0
    for b in range(8):
        for yy in range(8):
            for xx in range(8):
                q = outs[0].copy()
                q[:, yy, xx, 2] = flip_bits(q[:, yy, xx, 2], b, 8)
                lg = forward(qm, {-1: xq, 0: q}, start=1)
                hits += int(np.sum(np.argmax(lg, 1) != golden))
                total += len(xq)
    want = hits / total
    got = next(n.nvf for n in res.neurons if n.layer == 0 and n.neuron == 2)
    assert got == pytest.approx(want)


def test_protect_and_has_on_a_graph():
    from ftaccel.app.has import Fitness
    from ftaccel.app.protect import protect

    _, qm, x = quantised("fire")
    cfg = AcceleratorConfig(rows=4, cols=8, dataflow="ws", acc_width=32, lcu=True)
    pr = protect(qm, {0: [0], 1: [1, 2], 2: [0]}, "lcu", cfg)
    # sq feeds two branches, e1/e3 feed the Concat: none can be copied
    assert set(pr.skipped) == {0, 1, 2} and "branch" in pr.skipped[0]["why"]
    assert "concat" in pr.skipped[1]["why"]
    _, rm, rx = quantised("residual")
    pr = protect(rm, {0: [1]}, "tmr", cfg.replace(lcu=False, tmr="word"))
    assert 0 in pr.skipped  # c1 feeds c2 and the Add
    xq = rm.quantize_input(rx)
    fit = Fitness(rm, xq, np.zeros(len(xq), int), cfg.replace(lcu=False),
                  np.full((4, 8), 1e-3), "bitflip", [1, 6], evaluations=1)
    assert 0.0 <= fit({1: np.arange(4), 6: np.arange(3)}) <= 1.0


def test_campaign_context_runs_a_graph_and_names_the_faulted_nodes():
    from ftaccel.app.netcampaign import Context, Protection, evaluate_trial, faulted_nodes

    _, qm, x = quantised("mobile")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", acc_width=32)
    ctx = Context(qm, qm.quantize_input(x), np.zeros(len(x), int), cfg,
                  [Protection("none", "none")])
    assert ctx.products == [2, 5]  # dense/conv only: the depthwise node runs fault-free
    assert faulted_nodes(qm) == {"faulted": ["pw", "fc"], "depthwise": ["dw"],
                                 "host": ["relu6", "gap", "fl"]}
    rows = evaluate_trial(ctx, "bit_errors", 0.05, 0, 1, 0)
    assert rows and rows[0]["outcome"] in ("masked", "sdc", "critical")


def test_a_neuron_flip_on_a_depthwise_channel_equals_flipping_its_output():
    from ftaccel.app.nvf import flip_bits
    from ftaccel.app.protect import FaultEngine

    _, qm, x = quantised("mobile")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws", acc_width=32)
    xq = qm.quantize_input(x)
    clean = run(qm, xq, FunctionalEngine(cfg), record=True)
    rows = np.arange(len(xq)) * 16 + 5  # pixel 5 of every image's 4×4 map
    got = run(qm, xq, FaultEngine(cfg, flips={0: (rows, 2, 6)})).logits
    q = clean.outputs[0].copy()
    q[:, 1, 1, 2] = flip_bits(q[:, 1, 1, 2], 6, 8)
    want = run(qm, {0: q}, FunctionalEngine(cfg), start=1).logits
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(want, clean.logits)
