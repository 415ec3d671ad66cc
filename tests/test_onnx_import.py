"""ONNX float graphs.

The imported model equals onnxruntime, the int8 network keeps the float top-1, the integer engines
equal the independent reference, unsupported graphs are named.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from netref import reference  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from ftaccel.app.datasets import digits  # noqa: E402
from ftaccel.app.network import Network  # noqa: E402
from ftaccel.app.onnx_import import load_onnx, to_onnx  # noqa: E402
from ftaccel.config import AcceleratorConfig  # noqa: E402
from ftaccel.golden.network import CycleEngine, FunctionalEngine, ModelError, run  # noqa: E402


def ort_run(proto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def small_graph(rng, softmax: bool = False, extra=None):
    """A small ONNX graph with every supported layer kind.

    Conv(pad 1)+Relu, MaxPool, Relu, Conv(stride 2, VALID, no bias)+Relu, AveragePool 3×3 (area 9:
    the non-power-of-two rule), Reshape, MatMul+Add+Relu, Gemm(transB, alpha, beta).
    """
    init = []

    def const(name, arr):
        init.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    nodes = [
        helper.make_node("Conv", ["x", const("w1", rng.normal(0, 0.5, (4, 2, 3, 3))),
                                  const("b1", rng.normal(0, 0.1, 4))], ["c1"], name="conv_a",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu_a"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool_a", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Relu", ["p1"], ["p1r"], name="relu_alone"),
        helper.make_node("Conv", ["p1r", const("w2", rng.normal(0, 0.5, (5, 4, 2, 2)))], ["c2"],
                         name="conv_b", kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu_b"),
        helper.make_node("AveragePool", ["r2"], ["p2"], name="avg", kernel_shape=[3, 3],
                         strides=[1, 1]),
        helper.make_node("Reshape", ["p2", const("shape", np.array([0, -1]))], ["f"],
                         name="flat"),
        helper.make_node("MatMul", ["f", const("w3", rng.normal(0, 0.5, (5, 6)))], ["m"],
                         name="mm"),
        helper.make_node("Add", ["m", const("b3", rng.normal(0, 0.1, 6))], ["a"], name="bias"),
        helper.make_node("Relu", ["a"], ["ra"], name="relu_c"),
        helper.make_node("Gemm", ["ra", const("w4", rng.normal(0, 0.5, (3, 6))),
                                  const("b4", rng.normal(0, 0.1, 3))], ["y"], name="gemm",
                         transB=1, alpha=0.5, beta=2.0),
    ]
    # The Reshape target must be int64.
    inits = [numpy_helper.from_array(np.array([0, -1], np.int64), "shape") if i.name == "shape"
             else i for i in init]
    out = "y"
    if extra:
        nodes.append(extra)
        out = extra.output[0]
    if softmax:
        nodes.append(helper.make_node("Softmax", [out], ["prob"], name="softmax", axis=1))
        out = "prob"
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 12, 12])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 3])], initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(proto)
    return proto


def test_small_graph_matches_onnxruntime(rng):
    proto = small_graph(rng)
    model = load_onnx(proto, name="small")
    assert [layer.kind for layer in model.layers] == [
        "conv2d", "maxpool", "relu", "conv2d", "avgpool", "flatten", "dense", "dense"]
    x = rng.random((7, 2, 12, 12))
    want = ort_run(proto, x)
    got = model.forward_float(x)  # NCHW images are accepted and transposed
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # NHWC images give the same answer.
    np.testing.assert_allclose(model.forward_float(x.transpose(0, 2, 3, 1)), got)
    # A trailing softmax is dropped: the same top-1.
    soft = load_onnx(small_graph(np.random.default_rng(0), softmax=True))
    assert soft.info["dropped"] == ["Softmax"]


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_small_graph_int8_engines_equal_the_reference(rng, dataflow):
    proto = small_graph(rng)
    calib = rng.random((64, 2, 12, 12))
    net = Network.from_onnx(proto, calib)
    cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow)
    x = rng.random((3, 2, 12, 12))
    want = reference(net.model, net.model.prepare(x), cfg)
    xq = net.model.quantize_input(x)
    assert np.array_equal(run(net.model, xq, FunctionalEngine(cfg)).logits, want)
    assert np.array_equal(run(net.model, xq, CycleEngine(cfg)).logits, want)


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_builtin_float_models_through_onnx(name):
    float_model = Network.builtin(name).float_model
    proto = to_onnx(float_model)
    test = digits("test")
    x = test.images if name == "digits-cnn" else test.images.reshape(len(test.images), -1)
    x_onnx = x[:, None] if name == "digits-cnn" else x
    want = ort_run(proto, x_onnx)
    np.testing.assert_allclose(float_model.forward_float(test.images), want, rtol=1e-4,
                               atol=1e-4)
    back = load_onnx(proto)
    np.testing.assert_allclose(back.forward_float(x_onnx), want, rtol=1e-4, atol=1e-4)
    # Quantised from ONNX with the training split: int8 top-1 follows the float top-1.
    net = Network.quantize(back, digits("train").images[:, None] if name == "digits-cnn"
                           else digits("train").images.reshape(-1, 64))
    res = net.run(x_onnx, labels=test.labels)
    agree = float(np.mean(res.predictions == want.argmax(1)))
    print(f"{name} via ONNX: float {res.float_accuracy:.4f} int8 {res.accuracy:.4f} "
          f"agreement {agree:.4f}")
    assert agree >= 0.97


def test_unsupported_graphs_name_the_node(rng):
    sig = helper.make_node("Sigmoid", ["y"], ["s"], name="squash")
    with pytest.raises(ModelError, match=r"node squash \(op Sigmoid\): unsupported operator"):
        load_onnx(small_graph(rng, extra=sig))
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="grouped", group=2,
                            kernel_shape=[1, 1])
    g = helper.make_graph([conv], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
                          initializer=[numpy_helper.from_array(
                              np.ones((2, 2, 1, 1), np.float32), "w")])
    with pytest.raises(ModelError, match=r"node grouped \(op Conv\): grouped convolution "
                                         r"\(group = 2\) is not supported"):
        load_onnx(helper.make_model(g))
