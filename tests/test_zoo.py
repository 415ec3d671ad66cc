"""The model zoo (issue 23 item 5): shapes, digits, fitting, int8 files, agreement, RTL.

Every int8 file is onnxruntime's own ``quantize_static`` output; the golden engine's logits are
held against onnxruntime's execution of the same file, and the RTL engine against the golden
engine bit for bit (a few images on small arrays; the larger networks are ``slow``).
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from ftaccel.app.datasets import digits
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.network import FunctionalEngine, ModelError, product_layers, run

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from ftaccel.app import zoo  # noqa: E402
from ftaccel.app.onnx_import import load_onnx  # noqa: E402

QUICK = ("lenet5", "mlp7")
LARGE = ("resnet8", "squeezenet", "mobilenet", "resnet18")


@functools.cache
def fitted(name):
    return zoo.fit(name)


@functools.cache
def int8(name, variant):
    return zoo.quantize(fitted(name), name, variant)


# -- shapes ------------------------------------------------------------------------------------

def _conv_macs(h, w, k, cin, cout, stride=1, pad=None, group=1):
    pad = k // 2 if pad is None else pad
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    return ho * wo * k * k * (cin // group) * cout, ho, wo


def _expected_macs(name):
    """MACs per image, counted from the architecture as the zoo's docstring states it."""
    if name == "lenet5":
        a, *_ = _conv_macs(32, 32, 5, 1, 6, pad=0)
        b, *_ = _conv_macs(14, 14, 5, 6, 16, pad=0)
        return a + b + 400 * 120 + 120 * 84 + 84 * 10
    if name == "mlp7":
        widths = [64, 512, 512, 512, 512, 512, 256, 10]
        return sum(x * y for x, y in zip(widths, widths[1:], strict=False))
    if name in ("resnet8", "resnet18"):
        widths = (16, 32, 64) if name == "resnet8" else (64, 128, 256, 512)
        blocks = 1 if name == "resnet8" else 2
        total, size, cin = _conv_macs(32, 32, 3, 3, widths[0])[0], 32, widths[0]
        for s, w in enumerate(widths):
            for b in range(blocks):
                stride = 2 if s and not b else 1
                m1, ho, _ = _conv_macs(size, size, 3, cin, w, stride)
                m2, *_ = _conv_macs(ho, ho, 3, w, w)
                proj = _conv_macs(size, size, 1, cin, w, stride)[0] if stride > 1 or cin != w \
                    else 0
                total, size, cin = total + m1 + m2 + proj, ho, w
        return total + cin * 10
    if name == "squeezenet":
        total = _conv_macs(32, 32, 3, 3, 32)[0]

        def fire(size, cin, sq, ex):
            return (_conv_macs(size, size, 1, cin, sq)[0] + _conv_macs(size, size, 1, sq,
                                                                        ex // 2)[0]
                    + _conv_macs(size, size, 3, sq, ex // 2)[0])
        total += fire(16, 32, 16, 64) + fire(16, 64, 16, 64)
        total += fire(8, 64, 32, 128) + fire(8, 128, 32, 128)
        return total + 128 * 10
    total, size, cin = _conv_macs(32, 32, 3, 3, 16)[0], 32, 16
    for cout, stride in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
        dw, size, _ = _conv_macs(size, size, 3, cin, cin, stride, group=cin)
        total += dw + _conv_macs(size, size, 1, cin, cout)[0]
        cin = cout
    return total + cin * 10


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "resnet18"
                                  else n for n in zoo.ZOO])
def test_networks_have_the_seeds_shapes(name):
    m = zoo.model(name)
    assert m.name == name and not m.quantized and m.classes == 10
    assert zoo.describe_model(m)["macs"] == _expected_macs(name)
    if name == "mlp7":  # Ahmadilivani 2025 Table 4.10: 2,816 hidden neurons
        assert sum(m.layers[i].matrix.shape[1] for i in product_layers(m)[:-1]) == 2816
    kinds = {lay.kind for lay in m.layers}
    want = {"lenet5": {"conv2d", "maxpool", "dense"}, "mlp7": {"dense"},
            "resnet8": {"conv2d", "add", "avgpool"}, "resnet18": {"conv2d", "add", "avgpool"},
            "squeezenet": {"conv2d", "concat", "maxpool", "avgpool"},
            "mobilenet": {"dwconv", "conv2d", "clip", "avgpool"}}[name]
    assert want <= kinds
    proto = zoo.onnx_model(name)
    ops = {n.op_type for n in proto.graph.node}
    assert proto.opset_import[0].version == 17
    if name != "mlp7":  # written as torch.onnx.export writes it
        assert {"Conv", "BatchNormalization", "Gemm"} <= ops
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm"]
    assert all(any(a.name == "transB" and a.i == 1 for a in g.attribute) for g in gemms)


def test_seeds_are_reproducible_and_distinct():
    a, b, c = (zoo.onnx_model("mlp7", seed=s) for s in (0, 0, 1))
    assert a.SerializeToString() == b.SerializeToString()
    assert a.SerializeToString() != c.SerializeToString()


def test_digits_are_upsampled_by_nearest_neighbour():
    imgs = digits("test").images[:3]
    x = zoo.digits_input("resnet8", imgs)
    assert x.shape == (3, 3, 32, 32)
    for n in range(3):
        for y in range(32):
            for xx in range(32):
                assert np.all(x[n, :, y, xx] == np.float32(imgs[n, y // 4, xx // 4]))
    assert zoo.digits_input("lenet5", imgs).shape == (3, 1, 32, 32)
    np.testing.assert_array_equal(zoo.digits_input("mlp7", imgs), imgs.reshape(3, 64))
    with pytest.raises(ModelError, match="zoo model 'vgg': choose one of"):
        zoo.digits_input("vgg", imgs)


@pytest.mark.parametrize("name", QUICK)
def test_fitted_classifier_learns_the_digits(name):
    m = load_onnx(fitted(name), name=name)
    test = digits("test")
    acc = np.mean(m.forward_float(zoo.digits_input(name, test.images)).argmax(1) == test.labels)
    chance = zoo.model(name).forward_float(zoo.digits_input(name, test.images)).argmax(1)
    assert acc >= 0.8 and acc > np.mean(chance == test.labels) + 0.5


# -- agreement with onnxruntime ----------------------------------------------------------------

def _check_agreement(name, variant):
    """The golden engine on the int8 file against onnxruntime's own execution of it.

    Top-1 equal on at least 99.5 % of the test digits, every logit within one LSB on 99 %.
    Residual networks (ResNet-8/18) are held to a looser logit bound: a one-LSB tie of
    onnxruntime's float32 requantisation (README, "Where the accelerator and onnxruntime
    differ") arises in one layer and the residual Adds carry it through every later block
    (measured: within one LSB on 89–100 % of the images, at most 9 LSB), so there the top-1
    agreement is the test, with the logits within 16 LSB.
    """
    test = digits("test")
    a = zoo.agreement(int8(name, variant), name, test.images)
    print(zoo.variant_name(name, variant), {k: a[k] for k in ("top1", "within_1", "max_lsb")})
    assert a["top1"] >= 0.995
    if name.startswith("resnet"):
        assert a["max_lsb"] <= 16 and a["within_1"] >= 0.85
    else:
        assert a["within_1"] >= 0.99
    return a


@pytest.mark.parametrize("variant", zoo.VARIANTS, ids=lambda v: "-".join(map(str, v)))
@pytest.mark.parametrize("name", QUICK)
def test_int8_files_agree_with_onnxruntime(name, variant):
    a = _check_agreement(name, variant)
    labels = digits("test").labels
    assert np.mean(a["golden"].argmax(1) == labels) >= 0.75


def _large_cases():
    """Every larger network × variant; ``make test`` keeps one variant of each but ResNet-18.

    The others are ``heavy`` (minutes each: ``make test-all`` runs them).
    """
    for name in LARGE:
        for v in zoo.VARIANTS:
            keep = name != "resnet18" and v == ("qdq", "u8", True)
            yield pytest.param(name, v, marks=pytest.mark.slow if keep else pytest.mark.heavy,
                               id=f"{name}-{'-'.join(map(str, v))}")


@pytest.mark.parametrize("name,variant", list(_large_cases()))
def test_large_int8_files_agree_with_onnxruntime(name, variant):
    _check_agreement(name, variant)


# -- the RTL equals the golden engine ----------------------------------------------------------

def _rtl_equals_golden(name, variant, cfg, images):
    from ftaccel.tb.accelerator import RTLEngine

    m = load_onnx(int8(name, variant), name=name)
    x = m.quantize_input(zoo.digits_input(name, digits("test").images[:images]))
    gold = run(m, x, FunctionalEngine(cfg))
    rtl = run(m, x, RTLEngine(cfg))
    np.testing.assert_array_equal(rtl.logits, gold.logits)
    assert [s.cycles for s in rtl.layers] == [s.cycles for s in gold.layers]


@pytest.mark.parametrize("name,variant,dataflow,images", [
    ("lenet5", ("qdq", "u8", True), "ws", 1),
    pytest.param("mlp7", ("qop", "s8", False), "is", 2, marks=pytest.mark.slow)])
def test_rtl_runs_int8_zoo_models_bit_for_bit(name, variant, dataflow, images):
    cfg = AcceleratorConfig(rows=8, cols=8, dataflow=dataflow, requant="multiplier",
                            max_k=1024)
    _rtl_equals_golden(name, variant, cfg, images)


@pytest.mark.parametrize("name", [pytest.param("resnet8", marks=pytest.mark.slow),
                                  pytest.param("squeezenet", marks=pytest.mark.heavy),
                                  pytest.param("mobilenet", marks=pytest.mark.heavy)])
def test_rtl_runs_the_larger_zoo_models_bit_for_bit(name):
    cfg = AcceleratorConfig(rows=8, cols=8, dataflow="ws", requant="multiplier", max_k=1024)
    _rtl_equals_golden(name, ("qdq", "u8", True), cfg, 1)


@pytest.mark.heavy
def test_rtl_runs_resnet18_layers_bit_for_bit():
    """ResNet-18 (0.56 GMAC per image) on Icarus: one image through its first residual stage."""
    from ftaccel.tb.accelerator import RTLEngine

    m = load_onnx(int8("resnet18", ("qop", "u8", False)), name="resnet18")
    cfg = AcceleratorConfig(rows=16, cols=16, dataflow="ws", requant="multiplier", max_k=4608)
    x = m.quantize_input(zoo.digits_input("resnet18", digits("test").images[:1]))
    stop = next(i for i, lay in enumerate(m.layers) if lay.kind == "add") + 2
    gold = run(m, x, FunctionalEngine(cfg), stop=stop)
    np.testing.assert_array_equal(run(m, x, RTLEngine(cfg), stop=stop).logits, gold.logits)


# -- the command and rtlgen infer --------------------------------------------------------------

def test_zoo_command_writes_the_files_and_tables(tmp_path, capsys):
    out = tmp_path / "zoo"
    assert zoo.main(["-o", str(out), "--models", "mlp7", "--test-images", "60"]) == 0
    report = json.loads((out / "zoo.json").read_text())
    files = sorted(p.name for p in out.iterdir())
    want = sorted(["mlp7.onnx", "zoo.json", "zoo.md"]
                  + [zoo.variant_name("mlp7", v) + ".onnx" for v in zoo.VARIANTS])
    assert files == want
    row = report["models"]["mlp7"]
    assert row["macs"] == _expected_macs("mlp7") and row["float_accuracy"] > 0.8
    for stem, v in row["variants"].items():
        m = load_onnx(out / f"{stem}.onnx")
        assert m.fixed and v["top1"] >= 0.95
    assert "| mlp7-qdq-u8 |" in capsys.readouterr().out
    assert zoo.main(["-o", str(tmp_path / "x"), "--models", "vgg"]) == 2
    assert not (tmp_path / "x").exists()


def test_infer_runs_a_zoo_int8_file(tmp_path, capsys):
    import hashlib

    from ftaccel.app.cli import main

    path = tmp_path / "lenet5-qdq-u8.onnx"
    path.write_bytes(int8("lenet5", ("qdq", "u8", False)).SerializeToString())
    code = main(["infer", "--model", str(path), "--images", "20", "--rows", "4", "--cols", "4",
                 "-o", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "requant = 'multiplier'" in err and "adapted" in err
    rep = json.loads((tmp_path / "r" / "infer.json").read_text())
    assert rep["model_file"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep["quantisation"]["path"].startswith("fixed-point")
    assert rep["config"]["requant"] == "multiplier" and rep["engine"] == "golden"
    m = load_onnx(path)
    gold = run(m, m.quantize_input(zoo.digits_input("lenet5", digits("test").images[:20])),
               FunctionalEngine(AcceleratorConfig(rows=4, cols=4, requant="multiplier")))
    assert rep["logits"] == gold.logits.tolist()
    assert [(r["name"], r["runs_on"]) for r in rep["layers"]] == [
        (lay.name, "array" if lay.kind in ("conv2d", "dense") else "host") for lay in m.layers]
    assert "| pool1 | maxpool | host |" in out and "| conv1 | conv2d | array | " in out
    # a configuration the user gave is kept: without the multiplier it is refused
    code = main(["infer", "--model", str(path), "--requant", "shift", "-o",
                 str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and "add --requant multiplier" in err
    assert not (tmp_path / "bad").exists()
