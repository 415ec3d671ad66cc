"""The training path (issue 28): the training forward is the accelerator, bit for bit.

* the training forward in float64 gives the golden, cycle and RTL engines' logits bit for bit
  on graphs of every node kind, with the median filter and with bypass maps of every dataflow;
* the export is :func:`golden.network.quantize` exactly; BatchNorm folds as written out;
* the median's gradient reaches only the input that was the median (numpy written here);
* the bypass masks, the complementary-sparsity mask and the outlier penalty equal their
  definitions; a fault-aware forward equals the campaign's fault model on the same draws;
* training is reproducible; the device calibration moves the device's statistics back;
* ``rtlgen train`` writes a model ``infer`` takes; bad input is one line and exit 2, nothing
  written; without JAX the command exits 3 saying how to install it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("jax")

import jax
import jax.numpy as jnp
from test_graph import BUILDERS, quantised

from ftaccel.app import cli
from ftaccel.app.datasets import Dataset, digits
from ftaccel.app.train import TrainOptions, jax_modules
from ftaccel.app.train.methods import CampaignFaults, outlier_penalty
from ftaccel.app.train.net import (
    Graph,
    Hooks,
    Scales,
    afd_chunks,
    group_mask,
    hardware_keep,
    median_chunks,
    to_quantized,
)
from ftaccel.app.train.trainer import (
    calibrate_bypass,
    dequantize,
    forward_logits,
    train,
)
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.bypass import hardware_mask
from ftaccel.golden.fault_models import bit_errors
from ftaccel.golden.flow import group_mask as golden_group_mask
from ftaccel.golden.network import (
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
    quantize,
    run,
    units_matrix,
)

jax_modules()


def _small(rng) -> Model:
    """Conv (ReLU) → depthwise → max pool → dense (ReLU) → dense: every product kind."""
    return Model(layers=(
        Conv2D(rng.normal(0, .5, (3, 3, 1, 4)), rng.normal(0, .1, 4), padding=(1, 1, 1, 1),
               relu=True, name="c1"),
        DepthwiseConv2D(rng.normal(0, .5, (3, 3, 4)), rng.normal(0, .1, 4),
                        padding=(1, 1, 1, 1), relu=True, name="dw"),
        MaxPool(name="mp"),
        Flatten(name="fl"),
        Dense(rng.normal(0, .3, (64, 12)), rng.normal(0, .1, 12), relu=True, name="fc1"),
        Dense(rng.normal(0, .3, (12, 3)), rng.normal(0, .1, 3), name="fc2"),
    ), input_shape=(8, 8, 1), classes=3, name="small")


@pytest.mark.parametrize("name", list(BUILDERS))
def test_training_forward_equals_golden_and_cycle_engines_on_graphs(name):
    fm, qm, x = quantised(name)
    ours = forward_logits(qm, x)
    xq = qm.quantize_input(x)
    cfg = AcceleratorConfig(rows=4, cols=4, acc_width=32, max_k=64)
    gold = run(qm, xq, FunctionalEngine(cfg)).logits
    cyc = run(qm, xq, CycleEngine(cfg)).logits
    np.testing.assert_array_equal(ours, gold)
    np.testing.assert_array_equal(ours, cyc)
    assert np.ptp(gold) > 0


def test_training_forward_equals_the_rtl():
    from ftaccel.tb.accelerator import RTLEngine

    rng = np.random.default_rng(3)
    fm = _small(rng)
    x = rng.normal(0, 1, (2, 8, 8, 1))
    qm = quantize(fm, rng.normal(0, 1, (32, 8, 8, 1)))
    cfg = AcceleratorConfig(rows=4, cols=4, acc_width=32, max_k=64)
    rtl = run(qm, qm.quantize_input(x), RTLEngine(cfg)).logits
    np.testing.assert_array_equal(forward_logits(qm, x), rtl)


def test_export_is_quantize_and_dequantize_inverts_it():
    for name in BUILDERS:
        fm, qm, _ = quantised(name)
        for q2 in (to_quantized(fm, Scales.of(qm)), to_quantized(dequantize(qm), Scales.of(qm))):
            assert q2.fracs == qm.fracs and q2.input_frac == qm.input_frac
            for a, b in zip(q2.layers, qm.layers, strict=True):
                assert a.kind == b.kind
                for attr in ("weights", "bias", "shift", "shifts", "qlo", "qhi"):
                    np.testing.assert_array_equal(getattr(a, attr, 0), getattr(b, attr, 0))


def test_batchnorm_folds_as_written_out(rng):
    """BatchNorm after fc1 (eval: running statistics) = numpy BN; its int8 export = golden."""
    fm = _small(rng)
    g = Graph(fm, batchnorm=[4])
    params, state = g.init()
    n = 12
    params["4"]["gamma"] = rng.uniform(0.5, 2, n)
    params["4"]["beta"] = rng.normal(0, .2, n)
    state["4"] = {"mean": rng.normal(0, .3, n), "var": rng.uniform(.2, 2, n)}
    x = rng.normal(0, 1, (6, 8, 8, 1))
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    logits, _, aux = g.apply(p64, state, jnp.asarray(x), record=True)
    # numpy, written here: the plain layers up to fc1, then BN on its pre-activation
    h = fm.layers[3].forward(fm.layers[2].forward(
        _float_upto(fm, x, 2), None), None)
    z = h @ fm.layers[4].weights + fm.layers[4].bias
    bn = params["4"]["gamma"] * (z - state["4"]["mean"]) / np.sqrt(state["4"]["var"] + 1e-5) \
        + params["4"]["beta"]
    np.testing.assert_allclose(np.asarray(aux["pre"][4]), bn, rtol=1e-10, atol=1e-10)
    want = np.maximum(bn, 0) @ fm.layers[5].weights + fm.layers[5].bias
    np.testing.assert_allclose(np.asarray(logits), want, rtol=1e-10, atol=1e-10)
    folded = g.float_model(g.fold(params, state))
    np.testing.assert_allclose(folded.forward_float(x), want, rtol=1e-10, atol=1e-10)
    qm = quantize(folded, rng.normal(0, 1, (32, 8, 8, 1)))
    cfg = AcceleratorConfig(rows=4, cols=4, acc_width=32)
    np.testing.assert_array_equal(forward_logits(qm, x),
                                  run(qm, qm.quantize_input(x), FunctionalEngine(cfg)).logits)


def _float_upto(fm: Model, x, stop: int):
    """The float model's tensor after node ``stop − 1`` (a chain), through its own layers."""
    from ftaccel.golden.network import _float_node

    v = fm.prepare(x)
    for i in range(stop):
        v = _float_node(i, fm.layers[i], [v])
    return v


@pytest.mark.parametrize("window,lanes", [(3, 4), (5, 4), (3, 8), (5, 3)])
def test_median_filter_equals_the_units_and_routes_the_gradient_to_the_median(window, lanes,
                                                                             rng):
    M, K = 5, 11  # K not a multiple of the lanes: the idle lanes carry zeros
    A = rng.permutation(np.arange(-60, 60))[:M * K].reshape(M, K)  # distinct: no ties
    cfg = AcceleratorConfig(rows=lanes, cols=4, median=window)
    got = median_chunks(jnp.asarray(A, jnp.float64), window, lanes)
    np.testing.assert_array_equal(np.asarray(got), units_matrix(cfg, A, {}))
    c = rng.normal(size=(M, K))
    grad = np.asarray(jax.grad(lambda a: jnp.sum(jnp.asarray(c) * median_chunks(
        a, window, lanes)))(jnp.asarray(A, jnp.float64)))
    # numpy: every output's weight goes to the one input that was its window's median
    want = np.zeros((M, K))
    h = window // 2
    for m in range(M):
        for k in range(K):
            start = (k // lanes) * lanes
            pos = [start + (k % lanes) + d for d in range(-h, h + 1)]
            vals = [A[m, p] if start <= p < min(start + lanes, K) else 0 for p in pos]
            j = int(np.argsort(vals)[h])
            if start <= pos[j] < min(start + lanes, K):  # a padding zero takes no gradient
                want[m, pos[j]] += c[m, k]
    np.testing.assert_allclose(grad, want, atol=1e-12)


@pytest.mark.parametrize("shift,gates,mode", [(1, 1, "drop"), (0, 2, "drop"), (2, 2, "clip"),
                                               (-1, 1, "clip"), (3, 1, "drop")])
def test_afd_equals_the_unit_and_gives_the_gate_a_gradient(shift, gates, mode, rng):
    """Ozen 2023 §8.5.1: the step forward (= golden.afd on every chunk), a sigmoid backward."""
    M, K, lanes = 6, 13, 4
    A = rng.integers(-128, 128, (M, K))
    A[:, 3] = 0  # zero neighbours: what suppresses after a ReLU
    cfg = AcceleratorConfig(rows=lanes, cols=4, afd=True)
    units = {"afd": {"shift": shift, "gates": gates, "mode": int(mode == "clip"), "enable": 1}}
    scale = 2.0 ** 3  # the input's scale: the unit sees the integers A
    got = afd_chunks(jnp.asarray(A / scale), scale, shift, gates, mode, lanes, 8)
    np.testing.assert_array_equal(np.asarray(got) * scale, units_matrix(cfg, A, units))
    g = np.asarray(jax.grad(lambda a: jnp.sum(afd_chunks(a, scale, shift, gates, mode, lanes,
                                                         8)))(jnp.asarray(A / scale)))
    kept = units_matrix(cfg, A, units) == A
    # a step alone would give exactly 1 to every kept input and 0 elsewhere
    assert np.any(np.abs(g[kept] - 1) > 1e-6) or np.any(np.abs(g[~kept]) > 1e-6)


def test_afd_network_equals_the_engine_with_its_units(rng):
    fm = _small(rng)
    qm = quantize(fm, rng.normal(0, 1, (32, 8, 8, 1)))
    x = rng.normal(0, 1, (4, 8, 8, 1))
    cfg = AcceleratorConfig(rows=4, cols=4, afd=True, median=3, acc_width=32)
    ctl = {"shift": 1, "gates": 2, "mode": 1}
    hooks = Hooks(afd=((4, (1, 2, "clip", 4, 8)), (5, (1, 2, "clip", 4, 8))),
                  median=((4, (3, 4)),))
    opts = {0: LayerOptions(units={"afd": {**ctl, "enable": 0}, "median_enable": False}),
            1: LayerOptions(units={"afd": {**ctl, "enable": 0}, "median_enable": False}),
            5: LayerOptions(units={"median_enable": False})}
    want = run(qm, qm.quantize_input(x), FunctionalEngine(cfg),
               units={"afd": {**ctl, "enable": 1}, "median_enable": True}, options=opts).logits
    np.testing.assert_array_equal(forward_logits(qm, x, hooks=hooks), want)


def test_median_network_equals_the_engine_with_its_median_units(rng):
    fm = _small(rng)
    qm = quantize(fm, rng.normal(0, 1, (32, 8, 8, 1)))
    x = rng.normal(0, 1, (4, 8, 8, 1))
    cfg = AcceleratorConfig(rows=4, cols=4, median=3, acc_width=32)
    on = (1, 4)  # the depthwise node and fc1
    hooks = Hooks(median=tuple((i, (3, 4)) for i in on))
    opts = {i: LayerOptions(units={"median_enable": False}) for i in (0, 5)}
    want = run(qm, qm.quantize_input(x), FunctionalEngine(cfg), units={"median_enable": True},
               options=opts).logits
    np.testing.assert_array_equal(forward_logits(qm, x, hooks=hooks), want)
    assert not np.array_equal(forward_logits(qm, x), want)  # the filter matters here


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_bypass_masks_and_the_bypassed_forward_equal_the_golden_ones(dataflow, rng):
    R, C = 3, 4
    bmap = rng.random((R, C)) < 0.4
    bmap[0, 1] = bmap[2, 0] = True  # never an empty map
    M, K, N = 7, 10, 9
    mask = hardware_mask(dataflow, bmap, M, K, N)
    shape = {"ws": (K, N), "is": (K, M), "os": (M, N)}[dataflow]
    keep = np.asarray(hardware_keep(jnp.asarray(bmap), *shape))
    np.testing.assert_array_equal(keep == 0, mask.T if dataflow == "is" else mask)
    fm = _small(rng)
    qm = quantize(fm, rng.normal(0, 1, (32, 8, 8, 1)))
    x = rng.normal(0, 1, (3, 8, 8, 1))
    cfg = AcceleratorConfig(rows=R, cols=C, dataflow=dataflow, bypass=True, acc_width=32)
    want = run(qm, qm.quantize_input(x), FunctionalEngine(cfg),
               units={"bypass_map": bmap}).logits
    hooks = Hooks(mask=(dataflow, "map", 0.0, R, C), mask_nodes=frozenset((0, 1, 4, 5)))
    got = forward_logits(qm, x, hooks=hooks, dyn={"bypass_map": jnp.asarray(bmap)})
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, forward_logits(qm, x))


def test_group_mask_equals_the_golden_rule(rng):
    for K, N, gl, gk in ((8, 6, 4, 1), (7, 5, 1, 4), (9, 10, 2, 2), (5, 5, 3, 3)):
        W = rng.normal(size=(K, N))
        W[0, :] = 0  # an all-zero group must keep its first position
        got = np.asarray(group_mask(jnp.asarray(W), gl, gk)).astype(bool)
        np.testing.assert_array_equal(got, golden_group_mask(W, gl, gk))


@pytest.mark.parametrize("kind", ["max-magnitude", "max-squared"])
def test_outlier_penalty_is_eq_9_3_and_moves_only_the_largest(kind, rng):
    ws = {i: (jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.normal(size=4)))
          for i in range(3)}
    f = (lambda a: np.abs(a).max()) if kind == "max-magnitude" else (lambda a: (a * a).max())
    want = 0.3 * sum(f(np.asarray(W)) + f(np.asarray(b)) for W, b in ws.values())
    assert float(outlier_penalty(ws, 0.3, kind)) == pytest.approx(want, rel=1e-12)
    g = jax.grad(lambda w: outlier_penalty(w, 0.3, kind))(ws)
    for i, (W, _) in ws.items():
        gw = np.asarray(g[i][0])
        assert np.count_nonzero(gw) == 1
        assert np.argmax(np.abs(gw)) == np.argmax(np.abs(np.asarray(W)))


def test_fault_aware_forward_is_the_campaigns_fault_model_on_the_same_draws(rng):
    """Bit errors in the stored weights of fc: numpy (written here) on the same draw."""
    fm = Model(layers=(Dense(rng.normal(0, .4, (16, 5)), rng.normal(0, .1, 5), name="fc"),),
               input_shape=(16,), classes=5, name="lin")
    qm = quantize(fm, rng.normal(0, 1, (64, 16)))
    x = rng.normal(0, 1, (6, 16))
    cfg = AcceleratorConfig(rows=4, cols=4)
    faults = CampaignFaults(cfg, "bit_errors", 0.2, seed=9)
    hooks = Hooks(fault=faults, fault_nodes=frozenset((0,)))
    got = forward_logits(qm, x, hooks=hooks, dyn={"step": jnp.asarray(4)})
    draw = np.random.default_rng(np.random.SeedSequence([9, 4, 0]))
    stored = bit_errors(qm.layers[0].weights, 0.2, 8, draw)
    acc = qm.quantize_input(x) @ stored + qm.layers[0].bias
    s = qm.layers[0].shift
    want = np.clip(np.floor((acc + (1 << (s - 1))) / (1 << s)), -128, 127)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, forward_logits(qm, x))
    # per-PE profiles run through the same callback inside a jitted gradient
    prof = CampaignFaults(cfg, "pe_profile", 0.05, seed=2, profile_mode="flip-to-1")
    g = Graph(fm)
    p, _ = g.init()
    sc = Scales.of(qm).arrays(jnp.float64)
    grad = jax.jit(jax.grad(lambda p_: jnp.sum(g.apply(
        p_, {}, jnp.asarray(x), scales=sc, hooks=Hooks(fault=prof, fault_nodes=frozenset((0,))),
        dyn={"step": jnp.asarray(1)})[0])))(jax.tree.map(jnp.asarray, p))
    assert np.all(np.isfinite(np.asarray(grad["0"]["w"])))


def _mlp_data(n=400, seed=5):
    d = digits("train")
    return Dataset(d.images[:n], d.labels[:n], "digits-train-head")


def _mlp() -> Model:
    from importlib import resources

    with resources.files("ftaccel.app").joinpath("models", "digits-mlp.npz").open("rb") as fh:
        return Model.load(fh)


def test_training_is_reproducible_and_the_export_matches_its_forward():
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="ws")
    opts = TrainOptions(methods=("dropconnect", "outlier"), epochs=2, seed=3, alpha=1e-3)
    a = train(_mlp(), _mlp_data(), config=cfg, options=opts)
    b = train(_mlp(), _mlp_data(), config=cfg, options=opts)
    c = train(_mlp(), _mlp_data(), config=cfg, options=TrainOptions(
        methods=("dropconnect", "outlier"), epochs=2, seed=4, alpha=1e-3))
    assert a.model.to_bytes() == b.model.to_bytes()
    assert a.model.to_bytes() != c.model.to_bytes()
    assert a.record["forward_bit_exact"] and a.record["forward_checked_images"] == 64
    assert [e["loss"] for e in a.record["epochs"]] == [e["loss"] for e in b.record["epochs"]]
    # the exported model is quantize() of the trained float model on the same images
    again = quantize(a.float_model, _mlp_data().images[:512])
    for x, y in zip(again.layers, a.model.layers, strict=True):
        np.testing.assert_array_equal(x.weights, y.weights)


def test_median_training_recovers_the_filtered_accuracy():
    """Ozen 2023 §8.5.2 on the digits MLP: the median filter costs accuracy, training recovers it.

    The filter on fc2's and fc3's inputs, untrained, then a few epochs with it in the forward
    and backward pass.
    """
    cfg = AcceleratorConfig(rows=8, cols=8, median=3)
    res = train(_mlp(), digits("train"), config=cfg, test_set=digits("test"),
                options=TrainOptions(methods=("median",), epochs=6, layers=("fc2", "fc3"),
                                     seed=1))
    rec = res.record
    print(rec["accuracy_before"], rec["accuracy_after"])
    assert rec["accuracy_after"] > rec["accuracy_before"] + 0.02
    assert rec["forward_bit_exact"]


@pytest.mark.parametrize("dataflow", ["is", "os"])
@pytest.mark.parametrize("method", ["median", "afd"])
def test_filter_training_on_is_and_os_equals_the_engines(dataflow, method):
    """The median / AFD filter streams the same R-lane chunks on IS and OS as on WS.

    A model trained with the filter on an IS or OS array: its int8 logits from the training
    forward equal ``run`` on the golden and cycle engines of that array, bit for bit.
    """
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow, acc_width=32,
                            median=3 if method == "median" else 0, afd=method == "afd")
    opts = TrainOptions(methods=(method,), epochs=1, seed=2, layers=("fc2", "fc3"))
    res = train(_mlp(), _mlp_data(200), config=cfg, options=opts)
    qm = res.model
    assert res.record["forward_bit_exact"]
    x = digits("test").images[:24]
    xq = qm.quantize_input(qm.prepare(x))
    if method == "median":
        hooks = Hooks(median=((1, (3, 4)), (2, (3, 4))))
        units = {"median_enable": True}
        off = {0: LayerOptions(units={"median_enable": False})}
    else:
        ctl = {"shift": opts.afd_shift, "gates": opts.afd_gates, "mode": 0}
        hooks = Hooks(afd=tuple((i, (opts.afd_shift, opts.afd_gates, "drop", 4, 8))
                                for i in (1, 2)))
        units = {"afd": {**ctl, "enable": 1}}
        off = {0: LayerOptions(units={"afd": {**ctl, "enable": 0}})}
    ours = forward_logits(qm, x, hooks=hooks)
    for engine in (FunctionalEngine(cfg), CycleEngine(cfg)):
        np.testing.assert_array_equal(ours, run(qm, xq, engine, units=units,
                                                options=off).logits)
    assert not np.array_equal(ours, forward_logits(qm, x))  # the filter matters here


def test_calibration_moves_the_device_statistics_back(rng):
    """Ozen 2023 §10.3.3 on a bypassed WS device: fc1's statistics move back to the fault-free ones.

    fc1's pre-activation means are computed in numpy, here, from the exported integers.
    """
    qm = quantize(_mlp(), digits("train").images[:512])
    cfg = AcceleratorConfig(rows=8, cols=8, bypass=True)
    bmap = rng.random((8, 8)) < 0.3
    x = digits("train").images[:320]
    cal, rec = calibrate_bypass(qm, cfg, bmap, x, nodes=[0])
    assert set(rec["nodes"]) == {"fc1"}

    def pre_mean(model, bypass):
        lay = model.layers[0]
        W = np.where(hardware_mask("ws", bmap, 1, *lay.weights.shape), 0, lay.weights) \
            if bypass else lay.weights
        acc = model.quantize_input(x) @ W + lay.bias
        f_acc = model.input_frac + lay.shift + model.fracs[0] - model.input_frac
        return acc.mean(axis=0) / 2.0 ** f_acc

    ref = pre_mean(qm, False)
    before = np.abs(pre_mean(qm, True) - ref).mean()
    after = np.abs(pre_mean(cal, True) - ref).mean()
    print(f"mean |Δμ| before {before:.4f}, after {after:.4f}")
    assert after < 0.2 * before


def test_unsupported_operator_is_named():
    class LRN:
        kind = "lrn"
        name = "norm1"
        inputs = ()

        def out_shape(self, shape):
            return shape

    m = Model(layers=(Dense(np.ones((4, 3)), np.zeros(3), name="fc"), LRN()), input_shape=(4,),
              classes=3, name="odd")
    with pytest.raises(ModelError, match="layer norm1: operator 'lrn' is not supported"):
        Graph(m)


def test_options_are_checked_with_one_message_each():
    for kw, msg in (({"lr": 0}, "invalid lr = 0"), ({"epochs": 10**6}, "invalid epochs"),
                    ({"methods": "dropconnect,dropout-in"}, "each models one dataflow"),
                    ({"methods": "calibrate,qat"}, "calibrate alone"),
                    ({"drop_rate": 1.0}, "invalid drop_rate = 1.0")):
        with pytest.raises(ConfigError, match=msg):
            TrainOptions(**kw)


# -- the command ---------------------------------------------------------------------------------

def test_cli_train_writes_a_model_infer_takes(tmp_path, capsys):
    out = tmp_path / "t"
    code = cli.main(["train", "--model", "digits-mlp", "--method", "outlier", "--epochs", "1",
                     "--alpha", "0.001", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    rec = json.loads((out / "train.json").read_text())
    assert rec["forward_bit_exact"] and rec["methods"] == ["outlier"]
    assert 0 < rec["accuracy_before"] <= 1 and 0 < rec["accuracy_after"] <= 1
    assert sorted(p.name for p in out.iterdir()) == ["float.npz", "model.npz", "train.json",
                                                     "train.md"]
    capsys.readouterr()
    code = cli.main(["infer", "--model", str(out / "model.npz"), "-o", str(tmp_path / "i")])
    assert code == 0
    inf = json.loads((tmp_path / "i" / "infer.json").read_text())
    assert inf["accuracy"] == rec["accuracy_after"]


def test_cli_calibrate_a_device(tmp_path, capsys):
    bmap = np.random.default_rng(2).random((8, 8)) < 0.3
    np.save(tmp_path / "map.npy", bmap.astype(np.int8))
    code = cli.main(["train", "--model", "digits-mlp", "--method", "calibrate", "--bypass",
                     "--bypass-map", str(tmp_path / "map.npy"), "-o", str(tmp_path / "c")])
    assert code == 0, capsys.readouterr().err
    rec = json.loads((tmp_path / "c" / "train.json").read_text())
    assert rec["calibration"]["bypass_rate"] == pytest.approx(bmap.mean())
    capsys.readouterr()
    code = cli.main(["infer", "--model", str(tmp_path / "c" / "model.npz"), "--bypass",
                     "--bypass-map", str(tmp_path / "map.npy"), "-o", str(tmp_path / "i")])
    assert code == 0
    inf = json.loads((tmp_path / "i" / "infer.json").read_text())
    assert inf["accuracy"] == rec["accuracy_after"]


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    p = tmp_path_factory.mktemp("d") / "nolabels.npz"
    np.savez(p, images=np.zeros((5, 64)))
    return str(p)


@pytest.mark.parametrize("args,message", [
    (["--method", "dropconnect", "--dataflow", "is"],
     "invalid method = 'dropconnect': hardware-aware dropconnect models WS bypass"),
    (["--method", "dropout-out"], "models OS bypass (the outputs a bypassed PE holds); the "
                                  "configuration's dataflow is ws: use --method dropconnect"),
    (["--lr", "3"], "invalid lr = 3.0: a number in (0, 1]"),
    (["--epochs", "0"], "invalid epochs = 0: an integer from 1 to 10,000"),
    (["--method", "median"], "invalid median = 0: 3 or 5 for --method median"),
    (["--method", "median", "--median", "3", "--layers", "fc9"], "invalid layers = 'fc9'"),
    (["--method", "sparse"], "invalid flow_layers = {}"),
    (["--method", "afd"], "invalid afd = False: on (--afd) for --method afd"),
    (["--method", "afd", "--afd", "--afd-gates", "3"],
     "invalid afd gates = 3: an integer from 1 to 2"),
    (["--method", "nope"], "invalid method = 'nope'"),
    (["--method", "calibrate"], "invalid bypass_map = None"),
    (["--method", "calibrate", "--bypass-map", "MAP"], "invalid bypass = False: true to use a "
                                                       "bypass map"),
    (["--data", "UNLABELLED"], "missing array(s) labels"),
    (["--model", "nosuch.npz"], "no such file 'nosuch.npz'"),
])
def test_cli_bad_input_is_one_line_exit_2_nothing_written(args, message, tmp_path, capsys,
                                                          unlabelled):
    np.save(tmp_path / "map.npy", np.zeros((8, 8), np.int8))
    args = [str(tmp_path / "map.npy") if a == "MAP" else unlabelled if a == "UNLABELLED" else a
            for a in args]
    if "--model" not in args:
        args = ["--model", "digits-mlp", *args]
    code = cli.main(["train", *args, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_api_gives_the_cli_message(tmp_path):
    from ftaccel.app.train.trainer import run_train

    with pytest.raises(ConfigError, match="hardware-aware dropconnect models WS bypass"):
        run_train("digits-mlp", "digits", tmp_path / "o",
                  config=AcceleratorConfig(dataflow="os"),
                  options=TrainOptions(methods=("dropconnect",), epochs=1))
    assert not (tmp_path / "o").exists()


def test_without_jax_the_command_exits_3(monkeypatch, tmp_path, capsys):
    import builtins

    real = builtins.__import__

    def no_jax(name, *a, **k):
        if name == "jax" or name.startswith(("jax.", "optax")):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_jax)
    code = cli.main(["train", "--model", "digits-mlp", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 3 and "pip install 'ftaccel[train]'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
