"""int8 models as quantisers write them (issue 23 item 3): QDQ and QOperator import.

The imported fixed-point model is held against onnxruntime's own int8 execution of the same
file (top-1 and every logit within ±1 LSB), its host arithmetic against exact rationals, its
output-stage choice against onnxruntime's float32 requantisation, and bad files against one
clear error naming the node.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.network import FunctionalEngine, Model, ModelError, Rescale, run

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from ftaccel.app.onnx_import import (  # noqa: E402
    _fixed_round,
    load_onnx,
    mlas_requantize,
    ort_multiplier,
    split_multiplier,
)

CFG = AcceleratorConfig(requant="multiplier", acc_width=32, max_k=4096)


# -- small float graphs, quantised by onnxruntime ----------------------------------------------

def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, np.float32), name)


def small_cnn(rng, *, pad=1, relu6=False):
    """Conv(pad) + Relu, depthwise + Relu(6), residual Add, Concat, max/average pools, Gemm."""
    nodes, inits = [], []

    def conv(x, cin, cout, k, name, group=1, p=None, act="relu"):
        p = pad * (k // 2) if p is None else p
        inits.append(_init(f"{name}.w", rng.normal(0, math.sqrt(2 / (cin // group * k * k)),
                                                   (cout, cin // group, k, k))))
        inits.append(_init(f"{name}.b", rng.normal(0, 0.2, cout)))
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.c"],
                                      kernel_shape=[k, k], pads=[p] * 4, group=group))
        if act == "relu6":
            inits.extend([_init(f"{name}.lo", 0.0), _init(f"{name}.hi", 6.0)])
            nodes.append(helper.make_node("Clip", [f"{name}.c", f"{name}.lo", f"{name}.hi"],
                                          [name]))
        elif act == "relu":
            nodes.append(helper.make_node("Relu", [f"{name}.c"], [name]))
        else:
            return f"{name}.c"
        return name

    a = conv("input", 1, 8, 3, "c1")
    b = conv(a, 8, 8, 3, "dw", group=8, act="relu6" if relu6 else "relu")
    c = conv(b, 8, 8, 1, "c2", act=None)
    nodes.append(helper.make_node("Add", [a, c], ["res"]))
    nodes.append(helper.make_node("Relu", ["res"], ["resr"]))
    e1, e3 = conv("resr", 8, 4, 1, "e1", p=0), conv("resr", 8, 4, 3, "e3")
    nodes.append(helper.make_node("Concat", [e1, e3], ["cat"], axis=1))
    nodes.append(helper.make_node("MaxPool", ["cat"], ["mp"], kernel_shape=[2, 2],
                                  strides=[2, 2]))
    nodes.append(helper.make_node("GlobalAveragePool", ["mp"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    inits.append(_init("fc.w", rng.normal(0, 0.5, (5, 8))))
    inits.append(_init("fc.b", rng.normal(0, 0.1, 5)))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1))
    g = helper.make_graph(nodes, "small",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         ["N", 1, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                         ["N", 5])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def quantise(proto, x, tmp_path, *, fmt="qdq", act="u8", per_channel=False):
    """``proto`` through onnxruntime's quantize_static (reduce_range: module zoo docstring)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[s:s + 16]} for s in range(0, len(x), 16)])

        def get_next(self):
            return next(self.it, None)

    src, out = tmp_path / "float.onnx", tmp_path / f"{fmt}-{act}-{int(per_channel)}.onnx"
    onnx.save(proto, src)
    quantize_static(str(src), str(out), Reader(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8 if act == "u8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=True,
                    extra_options={"ActivationSymmetric": act == "s8"})
    return onnx.load(out)


def ort_int8_logits(proto, model: Model, x):
    """Onnxruntime's output of ``proto``, as the int8 logits of ``model``'s output scale."""
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x})[0]
    s, z = model.scales[-1]
    return np.rint(y / np.float32(s)).astype(np.int64) + z


@pytest.fixture
def images():
    rng = np.random.default_rng(11)  # seeded; blocky images in [0, 1] like the digits
    x = rng.integers(0, 17, (96, 1, 4, 4)).repeat(2, axis=2).repeat(2, axis=3) / 16.0
    return x.astype(np.float32)


@pytest.mark.parametrize("fmt", ["qdq", "qop"])
@pytest.mark.parametrize("act", ["u8", "s8"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_small_graph_agrees_with_onnxruntime(fmt, act, per_channel, images, tmp_path):
    seed = 3
    print(f"seed {seed}")
    proto = quantise(small_cnn(np.random.default_rng(seed), relu6=True), images, tmp_path,
                     fmt=fmt, act=act, per_channel=per_channel)
    m = load_onnx(proto, name="small")
    assert m.fixed and m.quantized and m.a_bits == 8
    kinds = {lay.kind for lay in m.layers}
    assert {"conv2d", "dwconv", "add", "concat", "maxpool", "avgpool", "dense"} <= kinds
    q = run(m, m.quantize_input(images), FunctionalEngine(CFG)).logits
    qo = ort_int8_logits(proto, m, images)
    d = np.abs(q - qo).max(axis=1)
    assert np.mean(q.argmax(1) == qo.argmax(1)) >= 0.995
    assert np.mean(d <= 1) >= 0.99, np.bincount(d)


def test_padding_holds_the_input_zero_point(images, tmp_path):
    """A padded convolution on uint8 data whose zero point is not 0 after the shift to int8.

    The bias folds ``−z_a·Σ q_w`` over every kernel position, padding included, so the
    padding must be ``z_a`` (the real 0); padding with the integer 0 gives other logits.
    """
    import dataclasses

    proto = quantise(small_cnn(np.random.default_rng(5)), images, tmp_path)
    m = load_onnx(proto)
    first = m.layers[0]
    assert first.kind == "conv2d" and first.padding == (1, 1, 1, 1)
    assert first.pad_value == m.input_zero_point == -128  # digits-like [0, 1]: uint8 zp 0
    x = m.quantize_input(images)
    good = run(m, x, FunctionalEngine(CFG)).logits
    np.testing.assert_array_equal(good, ort_int8_logits(proto, m, images))
    zero = dataclasses.replace(m, layers=(dataclasses.replace(first, pad_value=0),
                                          *m.layers[1:]))
    assert np.any(run(zero, x, FunctionalEngine(CFG)).logits != good)


def test_uint8_becomes_int8_exactly(images, tmp_path):
    """The same float graph quantised with uint8 activations: every zero point shifted by 128."""
    proto = quantise(small_cnn(np.random.default_rng(2)), images, tmp_path)
    m = load_onnx(proto)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    q_in = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear")
    assert inits[q_in.input[2]].dtype == np.uint8
    assert m.input_zero_point == int(inits[q_in.input[2]]) - 128
    assert m.input_scale == pytest.approx(float(inits[q_in.input[1]]), rel=0)
    x = m.quantize_input(images)
    opts = onnx.load_from_string(proto.SerializeToString())
    opts.graph.output.append(helper.make_empty_tensor_value_info(q_in.output[0]))
    sess = ort.InferenceSession(opts.SerializeToString(), providers=["CPUExecutionProvider"])
    xq = sess.run([q_in.output[0]], {"input": images})[0]
    np.testing.assert_array_equal(x.reshape(len(x), 8, 8), xq[:, 0].astype(np.int64) - 128)


def test_engines_agree_on_a_fixed_point_model(images, tmp_path):
    from ftaccel.golden.network import CycleEngine

    proto = quantise(small_cnn(np.random.default_rng(7)), images[:24], tmp_path,
                     per_channel=True)
    m = load_onnx(proto)
    x = m.quantize_input(images[:2])
    for df in ("ws", "is", "os"):
        cfg = AcceleratorConfig(rows=4, cols=4, dataflow=df, requant="multiplier",
                                max_k=128)
        a = run(m, x, FunctionalEngine(cfg))
        b = run(m, x, CycleEngine(cfg))
        np.testing.assert_array_equal(a.logits, b.logits)
        assert [s.cycles for s in a.layers] == [s.cycles for s in b.layers]


def test_model_file_keeps_the_fixed_point_path(images, tmp_path):
    proto = quantise(small_cnn(np.random.default_rng(4)), images, tmp_path, per_channel=True)
    m = load_onnx(proto)
    back = Model.from_meta(m.to_meta(), _arrays(m), "fixed")
    assert back.fixed and back.scales == m.scales
    assert (back.input_scale, back.input_zero_point) == (m.input_scale, m.input_zero_point)
    x = m.quantize_input(images)
    np.testing.assert_array_equal(run(back, x, FunctionalEngine(CFG)).logits,
                                  run(m, x, FunctionalEngine(CFG)).logits)
    assert m.to_meta()["version"] == 3
    per = [lay for lay in back.layers if getattr(lay, "requant", None) is not None]
    assert per and any(np.ndim(lay.requant.multiplier) == 1 for lay in per)


def _arrays(m):
    import io

    with np.load(io.BytesIO(m.to_bytes())) as f:
        return {k: f[k] for k in f.files if k != "__meta__"}


def test_a_power_of_two_configuration_is_refused_with_the_option_to_add(images, tmp_path):
    from ftaccel.golden.network import check_fit

    m = load_onnx(quantise(small_cnn(np.random.default_rng(1)), images, tmp_path))
    with pytest.raises(ModelError, match="add --requant multiplier"):
        check_fit(m, AcceleratorConfig(acc_width=32))
    check_fit(m, AcceleratorConfig(requant="multiplier", acc_width=32))


# -- the arithmetic, against independent references --------------------------------------------

def test_rescale_is_the_exact_rational_rounded_half_even():
    rng = np.random.default_rng(17)
    print("seed 17")
    for _ in range(50):
        k = int(rng.integers(1, 4))
        ratios = np.exp(rng.uniform(-6, 3, k)).astype(np.float32)
        zps = rng.integers(-128, 128, k)
        z = int(rng.integers(-128, 128))
        r = Rescale.of(ratios, zps, z)
        xs = [rng.integers(-128, 128, 40) for _ in range(k)]
        n = int(rng.integers(1, 10))
        terms = [x - zi for x, zi in zip(xs, zps, strict=True)]
        got = r.centred(terms, 8, n)
        for j in range(40):
            exact = z + sum(Fraction(m, 1 << r.exponent) * int(t[j])
                            for m, t in zip(r.multipliers, terms, strict=True)) / n
            want = min(max(round(exact), -128), 127)  # Python's round: ties to even
            assert got[j] == want
        # the multipliers hold the float32 ratios (to their 31-bit mantissas)
        for m, ratio in zip(r.multipliers, ratios, strict=True):
            assert abs(m / 2 ** r.exponent - float(ratio)) <= 2.0 ** -r.exponent


def test_split_multiplier_rounds_once():
    """``n = 0`` where the float32 multiplier fits 31 bits: one rounding of ``acc·M``."""
    for real in (0.3, 0.0123, 2.0 ** -8 * 1.5, 0.5):
        m0, n = split_multiplier(np.float32(real).item())
        assert n == 0 and m0 == np.float32(real).item() * 2 ** 31
    m0, n = split_multiplier(1e-6)  # tiny: the normalised split, M0 in [2**30, 2**31)
    assert n > 0 and 1 << 30 <= m0 < 1 << 31


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ort_multiplier_is_the_best_candidate_over_every_accumulator(seed):
    """The split :func:`ort_multiplier` picks is the best of its candidates.

    Scored over the whole accumulator range, not only the window it searches: so the window
    missed nothing.
    """
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    for _ in range(4):
        real = float(np.float32(np.exp(rng.uniform(math.log(2e-4), math.log(0.3)))))
        amax = int(130 / real) + 2
        a = np.arange(-amax, amax + 1, dtype=np.int64)
        want = mlas_requantize(a, real)
        weight = 1.0 / np.maximum(np.abs(a), 1)

        def cost(m0, n, a=a, want=want, weight=weight):
            return float(np.sum(weight[_fixed_round(a, m0, n) != want]))

        base = int(math.floor(real * 2 ** 31 + 0.5))
        candidates = [split_multiplier(real)] + [(m, 0) for m in range(base - 4, base + 5)]
        best = min(cost(*c) for c in candidates)
        assert cost(*ort_multiplier(real, amax)) == pytest.approx(best, rel=0, abs=1e-12)
        assert best <= cost(*split_multiplier(real))


def test_fast_fault_model_takes_wide_accumulators_as_the_hardware():
    from ftaccel.golden.output_stage import (
        FixedRequantModel,
        fixed_requantize,
        hardware_fixed_requantize,
    )

    rng = np.random.default_rng(23)
    print("seed 23")
    y = rng.integers(-(1 << 32), (1 << 32) + 1, 512)
    m = rng.integers(1 << 20, 1 << 31, 512)
    n = rng.integers(0, 40, 512)
    model = FixedRequantModel(512)
    for _ in range(FixedRequantModel.latency):
        model.step(y, 0, 1, m, n, 3, -128, 127)
    np.testing.assert_array_equal(model.outputs(), hardware_fixed_requantize(y, m, n, 3,
                                                                            -128, 127))
    inside = np.abs(y) < 1 << 31
    np.testing.assert_array_equal(
        hardware_fixed_requantize(y[inside], m[inside], n[inside], 3, -128, 127),
        fixed_requantize(y[inside], m[inside], n[inside], 3, -128, 127))


# -- bad files: one line naming the node --------------------------------------------------------

def _qdq_dense(*, w_scale=0.02, y_scale=0.5, x_zp=(TensorProto.UINT8, 0), w=None,
               w_zp=(TensorProto.INT8, 0), bias=True):
    """Input → Q → DQ → Gemm(DQ(w), DQ(b)) → Q → DQ: a hand-written QDQ layer."""
    w = np.arange(-8, 8).reshape(4, 4).astype(np.int8) if w is None else w
    k = w.shape[0]
    zt, zv = x_zp
    inits = [numpy_helper.from_array(np.float32(1 / 255), "xs"),
             helper.make_tensor("xz", zt, [], [zv]),
             numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.asarray(w_scale, np.float32), "ws"),
             helper.make_tensor("wz", w_zp[0], [], [w_zp[1]]),
             numpy_helper.from_array(np.arange(w.shape[1], dtype=np.int32) * 7, "b"),
             numpy_helper.from_array(np.float32(w_scale / 255), "bs"),
             numpy_helper.from_array(np.float32(y_scale), "ys"),
             helper.make_tensor("yz", TensorProto.UINT8, [], [128])]
    nodes = [helper.make_node("QuantizeLinear", ["input", "xs", "xz"], ["xq"], name="qin"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"], name="dqin"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dqw"),
             helper.make_node("DequantizeLinear", ["b", "bs"], ["bf"], name="dqb"),
             helper.make_node("Gemm", ["xf", "wf"] + (["bf"] if bias else []), ["y"],
                              name="fc"),
             helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"], name="qout"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["logits"],
                              name="dqout")]
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["N", k])], [helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, ["N", w.shape[1]])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


BAD = {
    "zero scale": (dict(w_scale=0.0), "node dqw .*weight scale 0.0 must be finite and "
                                      "positive"),
    "negative scale": (dict(y_scale=-0.5), "node qout .*output scale -0.5 must be finite"),
    "NaN scale": (dict(w_scale=float("nan")), "node dqw .*initializer .ws. holds NaN"),
    "zero point of 16 bits": (dict(x_zp=(TensorProto.INT16, 300)),
                              "node qin .*zero point 300 of type int16; 8-bit activations"),
    "asymmetric weights": (dict(w_zp=(TensorProto.INT8, 3)),
                           "node fc .*int8 weights with zero point 3; symmetric weights"),
    "multiplier of 1 or more": (dict(w_scale=40.0, y_scale=0.01),
                                "node fc .*multiplier s_a·s_w/s_y = .* is not below 1; the "
                                "output stage only shifts right"),
    "accumulator beyond 32 bits": (dict(w=np.full((140_000, 2), 127, np.int8)),
                                   "node fc .*accumulator could reach .* beyond 32 signed "
                                   "bits"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_int8_models_name_the_node(case):
    kwargs, message = BAD[case]
    with pytest.raises(ModelError, match=message):
        load_onnx(_qdq_dense(**kwargs), name="bad")


def test_a_good_hand_written_qdq_layer_matches_onnxruntime():
    proto = _qdq_dense()
    m = load_onnx(proto)
    x = np.random.default_rng(8).uniform(0, 1, (64, 4)).astype(np.float32)
    print("seed 8")
    q = run(m, m.quantize_input(x), FunctionalEngine(CFG)).logits
    np.testing.assert_array_equal(q, ort_int8_logits(proto, m, x))


def test_cli_refuses_a_bad_int8_model_and_writes_nothing(tmp_path, capsys):
    from ftaccel.app.cli import main

    onnx.save(_qdq_dense(w_scale=0.0), tmp_path / "bad.onnx")
    code = main(["infer", "--model", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "node dqw" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# -- the consumers on a fixed-point model -------------------------------------------------------

@pytest.fixture(scope="module")
def fixed_mlp(tmp_path_factory):
    """A fixed-point ReLU MLP (64-24-16-10, per-channel weights) quantised by onnxruntime."""
    rng = np.random.default_rng(31)
    widths = [64, 24, 16, 10]
    nodes, inits, x = [], [], "input"
    for k, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        inits += [_init(f"w{k}", rng.normal(0, math.sqrt(2 / a), (b, a))),
                  _init(f"b{k}", rng.normal(0, 0.1, b))]
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"y{k}"], transB=1))
        x = f"y{k}"
        if k < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{k}"]))
            x = f"r{k}"
    nodes[-1].output[0] = "logits"
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["N", 64])], [helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, ["N", 10])], initializer=inits)
    from ftaccel.app.datasets import digits

    data = digits("train").images[:128].reshape(128, 64).astype(np.float32)
    proto = quantise(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), data,
                     tmp_path_factory.mktemp("mlp"), act="u8", per_channel=True)
    m = load_onnx(proto, name="fixed-mlp")
    assert m.fixed and np.ndim(m.layers[0].requant.multiplier) == 1
    path = tmp_path_factory.mktemp("mlpfile") / "fixed-mlp.onnx"
    onnx.save(proto, path)
    return m, m.quantize_input(digits("test").images[:6].reshape(6, 64)), path


def test_fast_fault_model_equals_the_cycle_model_on_a_fixed_point_network(fixed_mlp):
    from ftaccel.golden.fault_models import FastFaultEngine
    from ftaccel.golden.faults import MODES, REGISTERS, Fault
    from ftaccel.golden.network import CycleEngine, LayerOptions

    m, x, _ = fixed_mlp
    seed = 41
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for dataflow in ("ws", "os"):
        cfg = AcceleratorConfig(rows=4, cols=4, dataflow=dataflow, max_k=64,
                                requant="multiplier", fault_hooks=True)
        for _ in range(4):
            layer = int(rng.integers(3))
            register = str(rng.choice(REGISTERS))
            col = int(rng.integers(cfg.array_cols))
            # high partial-sum bits too: the wrapped accumulator plus its bias leaves
            # gemmlowp's 32 bits, and both models give the hardware's value
            f = Fault(int(rng.integers(4)), col, register,
                      int(rng.integers(cfg.register_width(register, col))),
                      str(rng.choice(MODES)), int(rng.integers(300)))
            opts = {layer: LayerOptions(fault=f)}
            ref = run(m, x, CycleEngine(cfg), options=opts)
            got = run(m, x, FastFaultEngine(cfg), options=opts)
            assert np.array_equal(got.logits, ref.logits), f
    # a 32-bit accumulator whose sign bit is stuck: acc + bias beyond gemmlowp's int32
    cfg = AcceleratorConfig(rows=4, cols=4, acc_width=32, requant="multiplier",
                            fault_hooks=True)
    for f in (Fault(3, 1, "psum", 31, "sa1", 0), Fault(3, 2, "psum", 30, "flip", 40)):
        opts = {0: LayerOptions(fault=f)}
        ref = run(m, x, CycleEngine(cfg), options=opts, stop=1)
        got = run(m, x, FastFaultEngine(cfg), options=opts, stop=1)
        assert np.array_equal(got.logits, ref.logits), f


def test_nvf_forward_and_tmr_protection_work_on_a_fixed_point_network(fixed_mlp):
    from ftaccel.app.nvf import forward, nvf
    from ftaccel.app.protect import FaultEngine, VotingEngine, protect

    m, x, _ = fixed_mlp
    cfg = AcceleratorConfig(rows=8, cols=8, requant="multiplier", max_k=64)
    ref = run(m, x, FunctionalEngine(cfg)).logits
    np.testing.assert_array_equal(forward(m, x), ref)
    res = nvf(m, x[:2], layers=[0])
    assert len(res.neurons) == 24 and all(0 <= n.nvf <= 1 for n in res.neurons)
    # TMR copies keep their per-channel multipliers: no fault, the same logits
    pr = protect(m, {0: [1, 5, 7], 1: [2]}, "tmr", cfg)
    assert pr.model.fixed and pr.model.scales == m.scales
    assert np.ndim(pr.model.layers[0].requant.multiplier) == 1
    assert pr.model.layers[0].requant.multiplier.shape == (24 + 6,)
    cfg2 = cfg.replace(**pr.config)
    got = run(pr.model, x, VotingEngine(FunctionalEngine(cfg2)), options=pr.options()).logits
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(
        run(pr.model, x, FaultEngine(cfg2), options=pr.options()).logits, ref)
    with pytest.raises(ValueError, match="LCU's split lanes .* protect it with tmr"):
        protect(m, {0: [1]}, "lcu", cfg)


def test_a_permutation_keeps_per_channel_multipliers_with_their_neurons(fixed_mlp):
    from ftaccel.golden.network import CycleEngine, LayerOptions

    m, x, _ = fixed_mlp
    cfg = AcceleratorConfig(rows=4, cols=4, requant="multiplier", max_k=64)
    rng = np.random.default_rng(5)
    print("seed 5")
    opts = {i: LayerOptions(permutation=rng.permutation(m.layers[i].matrix.shape[1]))
            for i in (0, 1)}
    ref = run(m, x, FunctionalEngine(cfg)).logits
    for eng in (FunctionalEngine(cfg), CycleEngine(cfg)):
        np.testing.assert_array_equal(run(m, x, eng, options=opts).logits, ref)


def test_an_unfused_batchnorm_names_the_preprocessing_step(tmp_path):
    rng = np.random.default_rng(9)
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"],
                              name="bn1"),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["logits"])]
    inits = [_init("w", rng.normal(0, 0.5, (4, 1, 3, 3))), _init("g", np.ones(4)),
             _init("b", np.zeros(4)), _init("m", np.zeros(4)), _init("v", np.ones(4))]
    g = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["N", 1, 8, 8])], [helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, ["N", 4])], initializer=inits)
    x = np.random.default_rng(9).uniform(0, 1, (32, 1, 8, 8)).astype(np.float32)
    proto = quantise(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), x,
                     tmp_path)
    with pytest.raises(ModelError, match="node bn1 .*quant_pre_process before quantize_static"):
        load_onnx(proto)


def test_commands_on_a_fixed_point_model(fixed_mlp, tmp_path, capsys):
    """Nvf → protect (TMR) → infer with the protection, a campaign; LCU is exit 2."""
    import json

    from ftaccel.app.campaign import run_campaign
    from ftaccel.app.cli import main

    _, _, path = fixed_mlp
    rq = ["--requant", "multiplier", "--rows", "4", "--cols", "4"]
    assert main(["nvf", "--model", str(path), "--images", "10", *rq, "-o",
                 str(tmp_path / "nvf")]) == 0
    nvf_file = str(tmp_path / "nvf" / "nvf.json")
    assert main(["protect", "--model", str(path), "--method", "lcu", "--nvf", nvf_file,
                 "--nvf-threshold", "1", *rq, "-o", str(tmp_path / "lcu")]) == 2
    assert "protect it with tmr" in capsys.readouterr().err
    assert not (tmp_path / "lcu").exists()
    assert main(["protect", "--model", str(path), "--method", "tmr", "--nvf", nvf_file,
                 "--nvf-threshold", "1", *rq, "-o", str(tmp_path / "tmr")]) == 0
    assert main(["infer", "--model", str(path), "--images", "40", *rq, "-o",
                 str(tmp_path / "plain")]) == 0
    p = tmp_path / "tmr"
    assert main(["infer", "--model", str(p / "model.npz"), "--protection",
                 str(p / "protection.json"), "--config", str(p / "config.json"), "--images",
                 "40", "-o", str(tmp_path / "prot")]) == 0
    plain, prot = (json.loads((tmp_path / d / "infer.json").read_text())
                   for d in ("plain", "prot"))
    assert prot["logits"] == plain["logits"]  # TMR without a fault: bit-identical
    assert prot["protection"]["sha256"] and prot["quantisation"]["path"].startswith("fixed")
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
[campaign]
seed = 5
[network]
model = "{path}"
[data]
images = 8
[accelerator]
rows = 4
cols = 4
requant = "multiplier"
max_k = 64
[[protections]]
kind = "none"
[[protections]]
kind = "sanity"
checksum = "both"
temporal_batch = 3
[faults]
model = "register"
[sample]
method = "statistical"
margin = 0.3
confidence = 0.8
""")
    report = run_campaign(spec, tmp_path / "camp", workers=0, progress=False)
    # a protection's name carries its settings (the temporal batch: compare, issue 25)
    assert set(report["protections"]) == {"none", "sanity-both-3"}


def test_network_api_takes_an_int8_file_without_calibration(fixed_mlp):
    from ftaccel.app.datasets import digits
    from ftaccel.app.network import Network

    m, _, path = fixed_mlp
    net = Network.from_onnx(path)
    assert net.model.fixed and net.float_model is None
    test = digits("test").head(30)
    cfg = AcceleratorConfig(requant="multiplier")
    res = net.run(test.images.reshape(30, 64), labels=test.labels, config=cfg)
    want = run(m, m.quantize_input(test.images.reshape(30, 64)), FunctionalEngine(cfg)).logits
    np.testing.assert_array_equal(res.logits, want)
    with pytest.raises(ModelError, match="add --requant multiplier"):
        net.run(test.images.reshape(30, 64), config=AcceleratorConfig())
