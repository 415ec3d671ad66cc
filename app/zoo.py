"""The model zoo: the seeds' network shapes as ONNX files, float and int8 (issue 23).

Six networks of the shapes the seeds evaluate, built here with seeded weights and written the
way ``torch.onnx.export`` writes them (opset 17: Conv + BatchNormalization + Relu blocks,
residual Add, Concat, Flatten before Gemm with ``transB = 1``, input ``input``, output
``logits``):

==============  ============  ================================================================
name            input         layers
==============  ============  ================================================================
``lenet5``      1×32×32       conv 5×5 ×6, max-pool 2, conv 5×5 ×16, max-pool 2, fc 120, 84,
                              10 (Ozen 2023 §8.7, §9.4; LeNet-5 on MNIST)
``mlp7``        64            5 × fc 512, fc 256, fc 10: 2,816 hidden neurons (Ahmadilivani
                              2025, Table 4.10; the digits' 64 pixels as input)
``resnet8``     3×32×32       ResNet of the CIFAR form: 3×3 stem ×16, three stages of one basic
                              block (16/32/64 channels; stride 2 and a 1×1 projection shortcut
                              where the shape changes), global average pool, fc 10
``resnet18``    3×32×32       the same with stem 64 and four stages of two blocks (64–512)
``squeezenet``  3×32×32       3×3 stem ×32, max-pool, fire modules (squeeze 1×1 ‖ expand 1×1 +
                              3×3, Concat) 16/64, 16/64, max-pool, 32/128, 32/128, global
                              average pool, fc 10
``mobilenet``   3×32×32       3×3 stem ×16, five depthwise 3×3 + pointwise 1×1 blocks (32, 64
                              s2, 64, 128 s2, 128), ReLU6 after each, global average pool, fc 10
==============  ============  ================================================================

**Digits as input** (:func:`digits_input`): the bundled 8×8 digits (values in [0, 1]) are
upsampled ×4 by nearest neighbour (every pixel becomes a 4×4 block) to 32×32, and replicated
to three channels for the 3-channel networks; ``mlp7`` takes the 64 pixels as they are.

**Weights.**  :func:`onnx_model` draws every weight from a seeded generator (He-normal
convolutions and dense layers) and estimates each BatchNormalization's mean and variance on
256 training digits as they reach it (as a trained network's running statistics would be;
γ = 1, β = 0), so every layer sees unit-scale activations; the classifier is random.
:func:`fit` keeps that backbone and fits the classifier (the last Gemm) to the digits training
split by ridge-regularised least squares on the features it reads (one-hot targets): a
*fitted* network, not a trained one (the ``train`` path of ``rtlgen train`` trains them).

**int8 files** (:func:`quantize`): onnxruntime's ``quant_pre_process`` (which folds the
BatchNormalization into the convolutions) then ``quantize_static`` with a
``CalibrationDataReader`` over 256 training digits, in every :data:`VARIANTS`: QDQ or
QOperator, uint8 asymmetric or int8 symmetric activations, per-tensor or per-channel weights.
All use ``reduce_range`` (7-bit weights): on x86 without VNNI (these machines: AVX2) onnxruntime
multiplies uint8 × int8 with ``vpmaddubsw``, whose 16-bit pair sums saturate with 8-bit
weights, so its own int8 execution is not the model's arithmetic (measured: up to 70 LSB off
in a first layer); onnxruntime's documentation prescribes ``reduce_range`` for that case.
The accelerator computes the file's arithmetic exactly either way.

**Agreement** (:func:`agreement`): an int8 file imported with
:func:`app.onnx_import.load_onnx` and run by the golden engine, against onnxruntime's own
execution of the same file: top-1 equal, and the int8 logits (onnxruntime's output divided by
the output scale, plus the zero point) within ±1 LSB.  onnxruntime runs with
``session.qdqisint8allowed`` so that a QDQ file with int8 activations runs on its int8
kernels, as its QOperator twin does; its x86 default converts them to uint8 + 128 and runs
the uint8 kernels, which round some float32 ties the other way (the bench prints both).

``python -m ftaccel.app.zoo -o DIR`` writes every file, ``zoo.json`` and ``zoo.md`` (shape,
MACs, parameters, accuracies, agreement).  onnx and onnxruntime are imported only here, and
only when called (``pip install 'ftaccel[zoo]'``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from ftaccel.golden.network import Model, ModelError

__all__ = ["ZOO", "VARIANTS", "onnx_model", "model", "digits_input", "adapt_digits", "fit",
           "quantize", "ort_logits", "ort_int8", "compare", "fit_config",
           "agreement", "variant_name", "write_zoo", "describe_model", "main"]

#: The zoo's networks.
ZOO = ("lenet5", "mlp7", "resnet8", "resnet18", "squeezenet", "mobilenet")
#: The int8 variants: (format, activations, per-channel weights).
VARIANTS = tuple((fmt, act, pc) for fmt in ("qdq", "qop") for act in ("u8", "s8")
                 for pc in (False, True))
#: Opset written (what torch.onnx.export writes by default today).
OPSET = 17
#: Training digits used for BatchNorm statistics and for onnxruntime's calibration.
CALIBRATION_IMAGES = 256
_SHAPES = {"lenet5": (1, 32, 32), "mlp7": (64,)}


def _check(name: str) -> None:
    if name not in ZOO:
        raise ModelError(f"zoo model {name!r}: choose one of {', '.join(ZOO)}")


def digits_input(name: str, images) -> np.ndarray:
    """The 8×8 digits as zoo network ``name`` takes them (NCHW, or ``[N, 64]`` for mlp7).

    ×4 nearest-neighbour upsampling to 32×32, replicated to three channels where the network
    has three (module docstring).  ``images``: ``[N, 8, 8]`` or ``[N, 64]``.
    """
    _check(name)
    return adapt_digits(images, _SHAPES.get(name, (3, 32, 32)))


def adapt_digits(images, shape) -> np.ndarray:
    """8×8 digits for a network whose input is ``shape`` (``(C, H, W)``, ``(H, W, C)`` or ``(F,)``).

    ``(64,)``: the pixels as they are; an image of ``8·f × 8·f`` pixels: each pixel repeated
    into an ``f × f`` block (nearest neighbour), the one channel replicated to ``C``; the
    result is NCHW (``[N, C, H, W]``).  ModelError for any other shape.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.shape[1:] not in ((8, 8), (64,)):
        raise ModelError(f"data: images of shape {x.shape[1:]}; only 8×8 digits (or their 64 "
                         f"pixels) are adapted")
    x = x.reshape(len(x), 8, 8)
    shape = tuple(int(d) for d in shape)
    if shape == (64,):
        return x.reshape(len(x), 64)
    chw = [s for s in (shape, (shape[-1], *shape[:2]) if len(shape) == 3 else None)
           if s is not None and len(s) == 3 and s[1] == s[2] and s[1] % 8 == 0 and s[0] <= 4]
    if not chw:
        raise ModelError(f"data: 8×8 digits do not adapt to an input of shape {shape}")
    c, h, _ = chw[0]
    f = h // 8
    x = x.repeat(f, axis=1).repeat(f, axis=2)[:, None]
    return np.repeat(x, c, axis=1)


# -- building: ONNX nodes with a float forward on calibration images ---------------------------

def _im2col(x: np.ndarray, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """``[N, C, H, W]`` → ``[N·Ho·Wo, C·k·k]`` (channel slowest, as ONNX's OIHW kernels)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    v = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    v = v[:, :, ::stride, ::stride]
    ho, wo = v.shape[2:4]
    return v.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k), ho, wo


class _Builder:
    """ONNX nodes and initializers, and the float value of every tensor on the images ``x``."""

    def __init__(self, rng, x: np.ndarray):
        self.rng, self.nodes, self.inits, self.count = rng, [], [], 0
        self.vals = {"input": np.asarray(x, dtype=np.float32)}

    def fresh(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def init(self, name: str, arr) -> str:
        from onnx import numpy_helper  # optional dependency (module docstring)

        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def node(self, op: str, ins: list, value, **attrs) -> str:
        from onnx import helper  # optional dependency (module docstring)

        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, ins, [out], name=f"/{out}/{op}", **attrs))
        self.vals[out] = np.asarray(value, dtype=np.float32)
        return out

    def conv(self, x: str, cout: int, k: int, stride: int = 1, group: int = 1,
             pad: int | None = None) -> str:
        """Conv (no bias; padding ``k // 2`` unless given) + BatchNormalization.

        The BatchNormalization's mean and variance are the images' (module docstring).
        """
        v = self.vals[x]
        cin = v.shape[1]
        pad = k // 2 if pad is None else pad
        w = self.rng.normal(0, math.sqrt(2.0 / (cin // group * k * k)),
                            (cout, cin // group, k, k)).astype(np.float32)
        if group == 1:
            cols, ho, wo = _im2col(v, k, stride, pad)
            y = (cols @ w.reshape(cout, -1).T).reshape(len(v), ho, wo, cout).transpose(0, 3, 1, 2)
        else:  # depthwise: every channel its own kernel
            cols, ho, wo = _im2col(v, k, stride, pad)
            cols = cols.reshape(-1, cin, k * k)
            y = np.einsum("mck,ck->mc", cols, w.reshape(cout, k * k))
            y = y.reshape(len(v), ho, wo, cout).transpose(0, 3, 1, 2)
        name = self.fresh("conv")
        c = self.node("Conv", [x, self.init(f"{name}.weight", w)], y, kernel_shape=[k, k],
                      strides=[stride, stride], pads=[pad] * 4, group=group)
        mean = y.mean(axis=(0, 2, 3))
        var = y.var(axis=(0, 2, 3)) + 1e-3  # a dead channel keeps a finite scale
        bn = (y - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
        return self.node("BatchNormalization",
                         [c, self.init(f"{name}.bn.weight", np.ones(cout)),
                          self.init(f"{name}.bn.bias", np.zeros(cout)),
                          self.init(f"{name}.bn.running_mean", mean),
                          self.init(f"{name}.bn.running_var", var)], bn, epsilon=1e-5)

    def relu(self, x: str, six: bool = False) -> str:
        v = self.vals[x]
        if six:
            return self.node("Clip", [x, self.init(self.fresh("min"), 0.0),
                                      self.init(self.fresh("max"), 6.0)], np.clip(v, 0, 6))
        return self.node("Relu", [x], np.maximum(v, 0))

    def maxpool(self, x: str) -> str:
        v = self.vals[x]
        n, c, h, w = v.shape
        y = v.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        return self.node("MaxPool", [x], y, kernel_shape=[2, 2], strides=[2, 2])

    def gap(self, x: str) -> str:
        v = self.vals[x]
        g = self.node("GlobalAveragePool", [x], v.mean(axis=(2, 3), keepdims=True))
        return self.flatten(g)

    def flatten(self, x: str) -> str:
        v = self.vals[x]
        return self.node("Flatten", [x], v.reshape(len(v), -1), axis=1)

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b], self.vals[a] + self.vals[b])

    def concat(self, xs: list) -> str:
        return self.node("Concat", xs, np.concatenate([self.vals[x] for x in xs], axis=1),
                         axis=1)

    def gemm(self, x: str, n: int, w=None, b=None) -> str:
        """Gemm with ``transB = 1`` (weights ``[n, k]``, as torch's Linear)."""
        v = self.vals[x]
        k = v.shape[1]
        if w is None:
            w = self.rng.normal(0, math.sqrt(2.0 / k), (n, k))
            b = np.zeros(n)
        w, b = np.asarray(w, np.float32), np.asarray(b, np.float32)
        name = self.fresh("fc")
        return self.node("Gemm", [x, self.init(f"{name}.weight", w),
                                  self.init(f"{name}.bias", b)], v @ w.T + b, transB=1)

    def proto(self, name: str, out: str, in_shape: tuple):
        from onnx import TensorProto, checker, helper  # optional dependency

        self.nodes.append(helper.make_node("Identity", [out], ["logits"], name="/output"))
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
            initializer=self.inits)
        proto = helper.make_model(graph, producer_name="ftaccel.app.zoo",
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        proto.ir_version = 8  # what opset 17 exporters write; onnxruntime reads it
        checker.check_model(proto)
        return proto


def _basic_block(b: _Builder, x: str, cout: int, stride: int) -> str:
    y = b.relu(b.conv(x, cout, 3, stride))
    y = b.conv(y, cout, 3)
    short = x if stride == 1 and b.vals[x].shape[1] == cout else b.conv(x, cout, 1, stride)
    return b.relu(b.add(y, short))


def _fire(b: _Builder, x: str, squeeze: int, expand: int) -> str:
    s = b.relu(b.conv(x, squeeze, 1))
    return b.concat([b.relu(b.conv(s, expand // 2, 1)), b.relu(b.conv(s, expand // 2, 3))])


def _backbone(name: str, b: _Builder) -> str:
    """The network up to its features (the classifier's input); returns that tensor."""
    if name == "lenet5":
        # 5×5 convolutions without padding (28×28, then 10×10), as LeNet-5
        y = b.maxpool(b.relu(b.conv("input", 6, 5, pad=0)))
        y = b.maxpool(b.relu(b.conv(y, 16, 5, pad=0)))
        y = b.relu(b.gemm(b.flatten(y), 120))
        return b.relu(b.gemm(y, 84))
    if name == "mlp7":
        y = "input"
        for width in (512,) * 5 + (256,):
            y = b.relu(b.gemm(y, width))
        return y
    if name in ("resnet8", "resnet18"):
        widths = (16, 32, 64) if name == "resnet8" else (64, 128, 256, 512)
        blocks = 1 if name == "resnet8" else 2
        y = b.relu(b.conv("input", widths[0], 3))
        for s, w in enumerate(widths):
            for k in range(blocks):
                y = _basic_block(b, y, w, 2 if s and not k else 1)
        return b.gap(y)
    if name == "squeezenet":
        y = b.maxpool(b.relu(b.conv("input", 32, 3)))
        y = _fire(b, _fire(b, y, 16, 64), 16, 64)
        y = b.maxpool(y)
        y = _fire(b, _fire(b, y, 32, 128), 32, 128)
        return b.gap(y)
    # mobilenet: depthwise 3×3 + pointwise 1×1 blocks, ReLU6
    y = b.relu(b.conv("input", 16, 3), six=True)
    for cout, stride in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
        cin = b.vals[y].shape[1]
        y = b.relu(b.conv(y, cin, 3, stride, group=cin), six=True)
        y = b.relu(b.conv(y, cout, 1), six=True)
    return b.gap(y)


def _digits(split: str, n: int | None = None):
    from ftaccel.app.datasets import digits

    return digits(split).head(n)


def _build(name: str, seed: int, classifier=None):
    """``(proto, features)``: the network on the BatchNorm images; ``classifier`` (W, b)."""
    _check(name)
    # one stream per network and seed: two networks of the zoo never share weights
    rng = np.random.default_rng([seed, ZOO.index(name)])
    cal = _digits("train", CALIBRATION_IMAGES)
    b = _Builder(rng, digits_input(name, cal.images))
    feats = _backbone(name, b)
    w, bias = classifier if classifier is not None else (None, None)
    out = b.gemm(feats, 10, w, bias)
    return b.proto(name, out, _SHAPES.get(name, (3, 32, 32))), feats


def onnx_model(name: str, seed: int = 0):
    """Zoo network ``name`` as a float ONNX ``ModelProto`` with seeded weights."""
    return _build(name, seed)[0]


def model(name: str, seed: int = 0) -> Model:
    """Zoo network ``name`` as the imported float graph (:class:`golden.network.Model`)."""
    from ftaccel.app.onnx_import import load_onnx

    return load_onnx(onnx_model(name, seed), name=name)


def _features(name: str, proto, feats: str, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """The classifier's input for ``images``: the golden float model of the graph cut there."""
    from onnx import helper  # optional dependency (module docstring)

    from ftaccel.app.onnx_import import load_onnx

    g = proto.graph
    cut = helper.make_model(
        helper.make_graph(list(g.node[:-2]), name, list(g.input),  # without Gemm, Identity
                          [helper.make_empty_tensor_value_info(feats)],
                          initializer=list(g.initializer)),
        opset_imports=list(proto.opset_import))
    m = load_onnx(cut, name=name)
    x = digits_input(name, images)
    return np.concatenate([m.forward_float(x[s:s + batch]) for s in range(0, len(x), batch)])


def fit(name: str, seed: int = 0, *, ridge: float = 1e-3):
    """Zoo network ``name`` with its classifier fitted to the digits (float ONNX ``ModelProto``).

    The seeded backbone of :func:`onnx_model`; the last Gemm solves ridge-regularised least
    squares from the backbone's features of the 1,257 training digits to one-hot labels
    (``ridge`` × the features' mean squared norm on the diagonal).
    """
    proto, feats = _build(name, seed)
    train = _digits("train")
    F = _features(name, proto, feats, train.images).astype(np.float64)
    X = np.hstack([F, np.ones((len(F), 1))])
    Y = np.eye(10)[train.labels]
    lam = ridge * float(np.mean(np.sum(F * F, axis=1)))
    A = X.T @ X + lam * np.eye(X.shape[1])
    A[-1, -1] -= lam  # the bias is not regularised
    sol = np.linalg.solve(A, X.T @ Y)
    return _build(name, seed, classifier=(sol[:-1].T, sol[-1]))[0]


# -- int8 --------------------------------------------------------------------------------------

def variant_name(name: str, variant: tuple) -> str:
    """The file stem of an int8 variant, e.g. ``lenet5-qdq-u8`` or ``resnet8-qop-s8-pc``."""
    fmt, act, pc = variant
    return f"{name}-{fmt}-{act}" + ("-pc" if pc else "")


def quantize(proto, name: str, variant: tuple, *, images: int = CALIBRATION_IMAGES):
    """The float ``proto`` of zoo network ``name`` quantised by onnxruntime (``ModelProto``).

    ``variant``: one of :data:`VARIANTS`.  ``quant_pre_process`` then ``quantize_static`` over
    the first ``images`` training digits, ``reduce_range`` (module docstring).
    """
    import onnx  # optional dependencies (module docstring)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fmt, act, pc = variant
    x = digits_input(name, _digits("train", images).images)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": x[s:s + 32]} for s in range(0, len(x), 32)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (Path(tmp) / f for f in ("float.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(proto, src)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(),
                        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8 if act == "u8" else QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=pc, reduce_range=True,
                        extra_options={"ActivationSymmetric": act == "s8"})
        return onnx.load(out)


def ort_logits(proto, x: np.ndarray, *, int8_kernels: bool = True) -> np.ndarray:
    """The output onnxruntime gives for ``proto`` on inputs ``x`` (float32, CPU provider).

    ``int8_kernels``: the session option ``session.qdqisint8allowed`` (module docstring):
    QDQ nodes with int8 activations fuse into onnxruntime's int8 kernels, the ones its
    QOperator twin runs; without it (its x86 default) they are converted to uint8 + 128 and
    run on the uint8 kernels, whose requantisation rounds some float32 ties differently.
    """
    import onnxruntime as ort  # optional dependency (module docstring)

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if int8_kernels:
        options.add_session_config_entry("session.qdqisint8allowed", "1")
    sess = ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.asarray(x, np.float32)})[0]


def agreement(proto, name: str, images, *, cfg=None, int8_kernels: bool = True) -> dict:
    """The golden engine against onnxruntime on an int8 file of zoo network ``name``.

    Returns ``images``, ``top1`` (share of images with the same class), ``within_1`` (share
    with every logit within ±1 LSB), ``max_lsb`` (largest logit difference), the golden
    and onnxruntime int8 logits (``golden``, ``ort``) and ``seconds`` of the golden run.
    """
    import time

    from ftaccel.app.onnx_import import load_onnx
    from ftaccel.golden.network import FunctionalEngine, run

    m = load_onnx(proto, name=name)
    x = digits_input(name, images)
    cfg = cfg or fit_config(m)
    t0 = time.perf_counter()
    q = run(m, m.quantize_input(x), FunctionalEngine(cfg)).logits
    dt = time.perf_counter() - t0
    qo = ort_int8(proto, m, x, int8_kernels=int8_kernels)
    return {"images": len(x), **compare(q, qo), "golden": q, "ort": qo, "seconds": dt}


def ort_int8(proto, m: Model, x, *, int8_kernels: bool = True) -> np.ndarray:
    """The logits onnxruntime gives for ``proto``, as integers at ``m``'s output scale."""
    s, z = m.scales[-1]
    y = ort_logits(proto, x, int8_kernels=int8_kernels)
    return np.rint(y / np.float32(s)).astype(np.int64) + z


def compare(q: np.ndarray, qo: np.ndarray) -> dict:
    """How far two sets of int8 logits agree.

    ``top1``: the share of images with the same class; ``within_1``: the share whose every
    logit is within ±1 LSB; ``max_lsb``: the largest difference.
    """
    d = np.abs(np.asarray(q) - np.asarray(qo))
    return {"top1": float(np.mean(q.argmax(1) == qo.argmax(1))),
            "within_1": float(np.mean(d.max(axis=1) <= 1)), "max_lsb": int(d.max())}


def fit_config(m: Model, **changes):
    """An 8×8 WS configuration the model fits: the multiplier if fixed-point, ``max_k`` its K."""
    from ftaccel.config import AcceleratorConfig
    from ftaccel.golden.network import product_layers

    K = max([m.layers[i].matrix.shape[0] for i in product_layers(m)] + [1024])
    base = {"max_k": K, "requant": "multiplier" if m.fixed else "shift"}
    return AcceleratorConfig(**{**base, **changes})


def describe_model(m: Model) -> dict:
    """Input shape, MACs per image and parameters of a float or quantised zoo model."""
    from ftaccel.golden.network import describe

    rows = describe(m)
    macs = sum(r["M_per_image"] * r["K"] * r["N"] * r.get("products", 1) for r in rows
               if "K" in r)
    params = sum(m.layers[r["index"]].weights.size + m.layers[r["index"]].bias.size
                 for r in rows if "K" in r)
    return {"input": list(m.input_shape), "macs": int(macs), "parameters": int(params),
            "nodes": len(m.layers)}


def write_zoo(out_dir, names=ZOO, *, seed: int = 0, test_images: int | None = None,
              log=print) -> dict:
    """Write every zoo file into ``out_dir``, with ``zoo.json`` and ``zoo.md``; the summary.

    Per network: ``NAME.onnx`` (fitted, float), one file per :data:`VARIANTS`
    (:func:`variant_name`); accuracies on the digits test split (``test_images`` of it).
    """
    import onnx

    from ftaccel.app.onnx_import import load_onnx
    from ftaccel.files import OutputSet, atomic_write, write_json, write_text

    out = Path(out_dir)
    test = _digits("test", test_images)
    summary: dict = {"seed": seed, "test_images": len(test), "models": {}}
    files: dict[str, bytes] = {}
    for name in names:
        _check(name)
        log(f"{name}: fitting", file=sys.stderr)
        proto = fit(name, seed)
        files[f"{name}.onnx"] = proto.SerializeToString()
        fm = load_onnx(proto, name=name)
        fl = fm.forward_float(digits_input(name, test.images))
        row = {**describe_model(fm), "float_accuracy": float(np.mean(fl.argmax(1) ==
                                                                     test.labels)),
               "variants": {}}
        for v in VARIANTS:
            stem = variant_name(name, v)
            log(f"{stem}: quantising, agreement", file=sys.stderr)
            q = quantize(proto, name, v)
            files[f"{stem}.onnx"] = q.SerializeToString()
            agr = agreement(q, name, test.images)
            default = ort_int8(q, load_onnx(q, name=name), digits_input(name, test.images),
                               int8_kernels=False)
            row["variants"][stem] = {
                "accuracy": float(np.mean(agr["golden"].argmax(1) == test.labels)),
                "ort_accuracy": float(np.mean(agr["ort"].argmax(1) == test.labels)),
                **{k: agr[k] for k in ("top1", "within_1", "max_lsb")},
                "default_session": compare(agr["golden"], default)}
        summary["models"][name] = row
    del onnx
    with OutputSet() as outputs:
        outputs.mkdir(out)
        for fname, data in files.items():
            def _write(path, data=data):
                with atomic_write(path) as fh:
                    fh.write(data)
            outputs.write(_write, out / fname)
        outputs.write(write_json, out / "zoo.json", summary)
        outputs.write(write_text, out / "zoo.md", zoo_markdown(summary))
    return summary


def zoo_markdown(summary: dict) -> str:
    """The zoo table (one row per network) and the agreement table (one per int8 file)."""
    lines = ["# Model zoo", "",
             f"Fitted on the digits training split (seed {summary['seed']}); accuracies on "
             f"{summary['test_images']} test digits.", "",
             "| network | input | MACs | parameters | float accuracy | int8 accuracy (QDQ u8) |",
             "|---|---|---:|---:|---:|---:|"]
    for name, r in summary["models"].items():
        q = r["variants"].get(f"{name}-qdq-u8", {})
        acc = f"{100 * q['accuracy']:.1f} %" if q else "—"
        lines.append(f"| {name} | {'×'.join(map(str, r['input']))} | {r['macs']:,} | "
                     f"{r['parameters']:,} | {100 * r['float_accuracy']:.1f} % | {acc} |")
    lines += ["", "Agreement with onnxruntime's own int8 execution of the same file (int8 "
              "kernels; in brackets its x86 default session):", "",
              "| file | accuracy | onnxruntime accuracy | top-1 equal | all logits ±1 LSB | "
              "max LSB |", "|---|---:|---:|---:|---:|---:|"]
    for r in summary["models"].values():
        for stem, v in r["variants"].items():
            lines.append(f"| {stem} | {100 * v['accuracy']:.1f} % | "
                         f"{100 * v['ort_accuracy']:.1f} % | {_pct(v, 'top1')} | "
                         f"{_pct(v, 'within_1')} | {v['max_lsb']} |")
    return "\n".join(lines) + "\n"


def _pct(v: dict, key: str) -> str:
    """``v[key]`` in percent, with the default session's value in brackets where it differs."""
    d = v.get("default_session") or {}
    alt = f" ({100 * d[key]:.1f} %)" if key in d and d[key] != v[key] else ""
    return f"{100 * v[key]:.1f} %{alt}"


def main(argv=None) -> int:
    """``python -m ftaccel.app.zoo -o DIR [--models …] [--seed N]``: write the zoo."""
    p = argparse.ArgumentParser(prog="python -m ftaccel.app.zoo",
                                description="Write the model zoo: float and int8 ONNX files.")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--models", default=",".join(ZOO),
                   help=f"comma-separated subset of {', '.join(ZOO)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-images", type=int, help="test digits for the accuracies")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    try:
        for n in names:
            _check(n)
        summary = write_zoo(args.output, names, seed=args.seed, test_images=args.test_images)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: the zoo needs onnx and onnxruntime ({exc})", file=sys.stderr)
        return 3
    print(zoo_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
