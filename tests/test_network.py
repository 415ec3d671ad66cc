"""Networks on the accelerator.

Three engines and an independent integer reference agree bit for bit; quantisation, the model file,
the fit checks and the runner's hooks (issue 14).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from netref import ref_requant, reference  # tests/netref.py: the independent reference

from ftaccel.app import cli
from ftaccel.app.datasets import digits
from ftaccel.app.network import Network
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import (
    FORMAT,
    CycleEngine,
    FunctionalEngine,
    LayerOptions,
    Model,
    ModelError,
    check_fit,
    product_layers,
    run,
)
from ftaccel.tb.accelerator import RTLEngine

MODELS = ("digits-mlp", "digits-cnn")
_NETS: dict = {}


def net(name: str, bits: int = 8) -> Network:
    if (name, bits) not in _NETS:
        _NETS[name, bits] = Network.builtin(name, a_width=bits)
    return _NETS[name, bits]


# -- three engines, one answer -----------------------------------------------------------------

CASES = [
    # (model, bits, config changes, unit options)
    *[(m, 8, {"dataflow": df}, {}) for m in MODELS for df in ("ws", "is", "os")],
    *[(m, 8, {"dataflow": "ws", "afd": True}, {"afd": {"shift": 1, "gates": 2, "mode": 1}})
      for m in MODELS],
    *[(m, 8, {"dataflow": "ws", "median": 3}, {}) for m in MODELS],
    ("digits-cnn", 8, {"dataflow": "ws", "median": 5, "median_variant": "shared"}, {}),
    *[(m, 8, {"dataflow": "ws", "checksum": "both"}, {}) for m in MODELS],
    ("digits-mlp", 8, {"dataflow": "ws", "afd": True, "median": 3, "checksum": "spatial"},
     {"afd": {"shift": 0, "gates": 1, "mode": 0}}),
    *[(m, 16, {"dataflow": df}, {}) for m in MODELS for df in ("ws", "os")],
]


def _id(case):
    m, bits, ch, units = case
    extra = "-".join(f"{k}={v}" for k, v in ch.items() if k != "dataflow")
    return f"{m}-{bits}b-{ch['dataflow']}" + (f"-{extra}" if extra else "") + \
        ("-units" if units else "")


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_golden_and_cycle_model_equal_the_reference(case, rng):
    name, bits, changes, units = case
    n = net(name, bits)
    cfg = AcceleratorConfig(rows=4, cols=4, a_width=bits, w_width=bits, **changes)
    idx = rng.choice(540, size=3, replace=False)
    test = digits("test")
    images, labels = test.images[idx], test.labels[idx]
    want = reference(n.model, images, cfg, units)
    gold = n.run(images, labels=labels, engine="golden", config=cfg, units=units)
    cyc = n.run(images, labels=labels, engine="cycle", config=cfg, units=units)
    assert np.array_equal(gold.logits, want)
    assert np.array_equal(cyc.logits, want)
    # The closed-form cycle count is the program's; a clean run raises no checksum alarm.
    assert [s.cycles for s in gold.layers] == [s.cycles for s in cyc.layers]
    for st in cyc.layers:
        assert all(v == 0 for v in st.alarms.values()), st
    if cfg.checksum != "none":
        assert any(st.alarms for st in cyc.layers)


RTL_CASES = [
    *[(m, {"dataflow": df}, {}) for m in MODELS for df in ("ws", "is", "os")],
    ("digits-cnn", {"dataflow": "ws", "afd": True, "median": 3, "checksum": "both"},
     {"afd": {"shift": 1, "gates": 1, "mode": 1}}),
    ("digits-mlp", {"dataflow": "is", "a_width": 16, "w_width": 16}, {}),
]


@pytest.mark.parametrize("case", RTL_CASES,
                         ids=[f"{m}-{'-'.join(f'{k}={v}' for k, v in ch.items())}"
                              for m, ch, _ in RTL_CASES])
def test_rtl_equals_the_reference(case, rng):
    name, changes, units = case
    n = net(name, changes.get("a_width", 8))
    cfg = AcceleratorConfig(rows=4, cols=4, **changes)
    idx = rng.choice(540, size=2, replace=False)
    images = digits("test").images[idx]
    engine = RTLEngine(cfg)
    res = n.run(images, engine=engine, config=cfg, units=units)
    assert np.array_equal(res.logits, reference(n.model, images, cfg, units))
    assert np.array_equal(res.logits, n.run(images, engine="cycle", config=cfg,
                                            units=units).logits)
    # Generation and build from the shared cache, then one run per product layer.
    assert engine.runs == len(product_layers(n.model))
    assert res.startup_seconds is not None and res.startup_seconds > 0


# -- quantisation and the model file -----------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("bits", [8, 16])
def test_quantised_model_keeps_the_float_top1(name, bits):
    n = net(name, bits)
    test = digits("test")
    res = n.run(test.images, labels=test.labels)
    print(f"{name} {bits}-bit: float {res.float_accuracy:.4f}, int {res.accuracy:.4f}")
    agree = float(np.mean(res.predictions == res.float_predictions))
    assert agree >= (0.97 if bits == 8 else 0.995)
    assert res.accuracy >= res.float_accuracy - (0.02 if bits == 8 else 0.005)
    # Calibration is deterministic.
    again = Network.builtin(name, a_width=bits)
    assert [getattr(a, "shift", None) for a in again.model.layers] == \
        [getattr(a, "shift", None) for a in n.model.layers]


@pytest.mark.parametrize("name", MODELS)
def test_model_file_round_trips(name, tmp_path):
    n = net(name)
    path = n.save(tmp_path / "m.npz")
    back = Network.load(path)
    assert back.model.to_meta() == n.model.to_meta()
    for a, b in zip(n.model.layers, back.model.layers, strict=True):
        if hasattr(a, "weights"):
            assert np.array_equal(a.weights, b.weights) and a.weights.dtype == b.weights.dtype
            assert np.array_equal(a.bias, b.bias)
    images = digits("test").images[:20]
    assert np.array_equal(back.run(images).logits, n.run(images).logits)


def test_model_file_refuses_newer_versions_and_junk(tmp_path):
    meta = net("digits-mlp").model.to_meta()
    meta["version"] = 99
    arrays = {"__meta__": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(ModelError, match="version 99 is newer"):
        Model.load(tmp_path / "new.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ModelError, match=f"not an {FORMAT} file"):
        Model.load(tmp_path / "plain.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelError, match="not a model file"):
        Model.load(tmp_path / "text.npz")


@pytest.mark.parametrize("field,value,message", [
    ("a_bits", 99, "a_bits 99 is not an integer from 2 to 16"),
    ("w_bits", True, "w_bits True is not an integer from 2 to 16"),
    ("w_bits", None, "a_bits and w_bits are both set"),
    ("input_layout", 5, "input_layout 5 is not 'hwc', 'chw' or 'flat'"),
    ("fracs", [0], "1 output scales (fracs) for 3 layers"),
])
def test_model_file_fields_beside_the_layers_are_checked(field, value, message, tmp_path,
                                                         capsys):
    """A hand-edited model file with a width of 99 or a layout of 5 is refused (exit 2)."""
    n = net("digits-mlp")
    meta = n.model.to_meta()
    assert len(meta["layers"]) == 3 and meta["input_layout"] == "flat"
    meta[field] = value
    arrays = {"__meta__": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    for i, lay in enumerate(n.model.layers):
        if hasattr(lay, "weights"):
            arrays[f"L{i}.weights"], arrays[f"L{i}.bias"] = lay.weights, lay.bias
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelError, match=re.escape(message)):
        Model.load(tmp_path / "bad.npz")
    code = cli.main(["infer", "--model", str(tmp_path / "bad.npz"), "--images", "2",
                     "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_fit_checks_name_the_layer():
    m = net("digits-mlp").model
    with pytest.raises(ModelError, match=r"layer fc1: reduction length K = 64 exceeds max_k"):
        check_fit(m, AcceleratorConfig(max_k=32))
    with pytest.raises(ModelError, match=r"layer fc1: a partial sum can reach"):
        check_fit(m, AcceleratorConfig(acc_width=16))
    with pytest.raises(ModelError, match="8-bit activations but the configuration has "
                                         "a_width = 16"):
        check_fit(m, AcceleratorConfig(a_width=16, w_width=16))
    check_fit(m, AcceleratorConfig())  # fits the default
    with pytest.raises(ModelError, match=r"images of shape \(7, 7\)"):
        m.quantize_input(np.zeros((2, 7, 7)))
    with pytest.raises(ModelError, match="outside the range"):
        m.quantize_input(np.full((2, 64), 255.0))


# -- the hooks later issues use ----------------------------------------------------------------

@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_permutation_changes_nothing_without_a_fault(dataflow, rng):
    n = net("digits-cnn")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow)
    x = n.model.quantize_input(digits("test").images[:3])
    plain = run(n.model, x, CycleEngine(cfg))
    opts = {i: LayerOptions(permutation=rng.permutation(n.model.layers[i].matrix.shape[1]))
            for i in product_layers(n.model)}
    for engine in (FunctionalEngine(cfg), CycleEngine(cfg)):
        assert np.array_equal(run(n.model, x, engine, options=opts).logits, plain.logits)
    with pytest.raises(ModelError, match="permutation is not one"):
        run(n.model, x, FunctionalEngine(cfg), options={0: LayerOptions(permutation=[0, 0])})


def test_a_fault_reaches_the_logits_on_the_cycle_model_only(rng):
    n = net("digits-mlp")
    cfg = AcceleratorConfig(rows=4, cols=4, fault_hooks=True)
    x = n.model.quantize_input(digits("test").images[:4])
    clean = run(n.model, x, CycleEngine(cfg))
    fault = Fault(1, 2, "psum", 14, "sa1")
    bad = run(n.model, x, CycleEngine(cfg), options={"fc1": LayerOptions(fault=fault)})
    assert not np.array_equal(bad.logits, clean.logits)
    with pytest.raises(NotImplementedError, match="cycle or RTL engine"):
        run(n.model, x, FunctionalEngine(cfg), options={"fc1": LayerOptions(fault=fault)})
    with pytest.raises(ModelError, match="layer fc1: a fault needs a configuration with "
                                         "fault_hooks"):
        run(n.model, x, CycleEngine(cfg.replace(fault_hooks=False)),
            options={"fc1": LayerOptions(fault=fault)})


def test_a_fault_on_the_rtl_equals_the_cycle_model():
    n = net("digits-mlp")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow="os", fault_hooks=True)
    x = n.model.quantize_input(digits("test").images[:2])
    opts = {"fc2": LayerOptions(fault=Fault(1, 1, "act", 6, "sa1"))}  # row 1: a batch row
    rtl = run(n.model, x, RTLEngine(cfg), options=opts)
    cyc = run(n.model, x, CycleEngine(cfg), options=opts)
    assert np.array_equal(rtl.logits, cyc.logits)
    assert not np.array_equal(cyc.logits, run(n.model, x, FunctionalEngine(cfg)).logits)


def test_run_resumes_from_a_recorded_layer():
    n = net("digits-cnn")
    cfg = AcceleratorConfig()
    x = n.model.quantize_input(digits("test").images[:5])
    full = run(n.model, x, FunctionalEngine(cfg), record=True)
    assert np.array_equal(full.outputs[-1], full.logits)
    for k in range(1, len(n.model.layers)):
        tail = run(n.model, full.outputs[k - 1], FunctionalEngine(cfg), start=k)
        assert np.array_equal(tail.logits, full.logits)


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_bypass_map_golden_equals_cycle_model(dataflow, rng):
    n = net("digits-mlp")
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow, bypass=True)
    bmap = rng.random((4, 4)) < 0.25
    bmap[0, 0] = True
    x = n.model.quantize_input(digits("test").images[:3])
    units = {"bypass_map": bmap}
    gold = run(n.model, x, FunctionalEngine(cfg), units=units)
    assert np.array_equal(gold.logits, run(n.model, x, CycleEngine(cfg), units=units).logits)
    assert not np.array_equal(gold.logits, run(n.model, x, FunctionalEngine(cfg)).logits)


def test_split_lanes_and_lcu_golden_equal_cycle_model():
    """The LCU hook: two columns of fc2 as split copies, corrected as a pair."""
    n = net("digits-mlp")
    cfg = AcceleratorConfig(rows=4, cols=4, lcu=True)
    x = n.model.quantize_input(digits("test").images[:3])
    plain = run(n.model, x, FunctionalEngine(cfg), record=True)
    c1, c2 = np.flatnonzero(plain.outputs[1].min(axis=0) > 1)[:2]
    split = np.zeros(32, dtype=bool)
    split[[c1, c2]] = True
    opts = {"fc2": LayerOptions(units={"split": split, "lcu_pairs": np.array([[c1, c2]])})}
    gold = run(n.model, x, FunctionalEngine(cfg), options=opts, record=True)
    cyc = run(n.model, x, CycleEngine(cfg), options=opts, record=True)
    for a, b in zip(gold.outputs, cyc.outputs, strict=True):
        assert np.array_equal(a, b)
    # The pair now holds one word, the AND of the two halved (split) outputs.
    got = gold.outputs[1]
    fc2 = n.model.layers[1]
    y = np.maximum(plain.outputs[0] @ fc2.weights.astype(np.int64) + fc2.bias, 0)
    half = ref_requant(y[:, [c1, c2]], fc2.shift + 1, 7)  # split lane: shift + 1, 7 bits
    assert np.array_equal(got[:, c1], got[:, c2])
    assert np.array_equal(got[:, c1], half[:, 0] & half[:, 1])


def test_python_api_example_runs():
    """The README's example (examples/network_api.py) runs and prints an accuracy."""
    import runpy
    from pathlib import Path

    ns = runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" /
                            "network_api.py"))
    result = ns["result"]
    assert result.images == 20 and 0.8 <= result.accuracy <= 1.0
    assert result.layers[0].cycles > 0
