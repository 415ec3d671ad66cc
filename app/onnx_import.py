"""ONNX float graphs to :class:`golden.network.Model` (and back, for float models).

What PyTorch (``torch.onnx.export``) and Keras (``tf2onnx``) write for a plain feed-forward
classifier is a chain of these operators, all supported:

========================  ====================================================================
ONNX operator             becomes
========================  ====================================================================
Gemm                      :class:`Dense` (``transB`` honoured, ``alpha``/``beta`` folded;
                          ``transA`` refused)
MatMul [+ Add]            :class:`Dense`, a following ``Add`` of a constant folded as its bias
Conv                      :class:`Conv2D` (2-D, ``group = 1``, dilation 1, explicit pads or
                          ``auto_pad``); weights OIHW → HWIO
Relu                      folded into the preceding product's output stage, else :class:`ReLU`
MaxPool / AveragePool     :class:`MaxPool` / :class:`AvgPool` (no padding, ``ceil_mode = 0``)
Flatten (axis 1)          :class:`Flatten` in CHW order (ONNX tensors are NCHW)
Reshape to ``[N, -1]``    the same Flatten
Identity, Dropout         dropped (inference)
Softmax / LogSoftmax      dropped when it is the last node (top-1 does not change)
========================  ====================================================================

The graph must be a chain (each node consumes the previous node's output plus constants).
Anything else raises :class:`golden.network.ModelError` naming the node and its operator (the
CLI exits 2 with that line).  The input is NCHW (or ``[N, F]``); the model keeps NHWC inside
and accepts the user's images as ``[N, C, H, W]``, ``[N, H, W, C]`` or, for one channel,
``[N, H, W]``.  Quantisation is :func:`golden.network.quantize` with the user's calibration data.

``onnx`` is imported only here, and only when called (``pip install ftaccel[onnx]``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ftaccel.golden.network import AvgPool, Conv2D, Dense, Flatten, MaxPool, Model, ModelError, ReLU

__all__ = ["load_onnx", "to_onnx", "SUPPORTED_OPS", "OnnxMissing"]

SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Conv", "Relu", "MaxPool", "AveragePool", "Flatten",
                 "Reshape", "Identity", "Dropout", "Softmax", "LogSoftmax", "Constant")


class OnnxMissing(ImportError):
    """The ``onnx`` package is not installed."""


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise OnnxMissing("reading ONNX models needs the onnx package: "
                          "pip install 'ftaccel[onnx]'") from None
    return onnx, numpy_helper


def _attrs(node) -> dict:
    onnx, _ = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _label(node, i: int) -> str:
    return f"node {node.name or '#' + str(i)} (op {node.op_type})"


def load_onnx(source, *, name: str | None = None) -> Model:
    """The float :class:`Model` of an ONNX file (path, bytes or ``ModelProto``)."""
    onnx, numpy_helper = _onnx()
    if isinstance(source, onnx.ModelProto):
        proto = source
        where = name or "onnx model"
    else:
        where = str(source)
        try:
            proto = onnx.load_from_string(source) if isinstance(source, bytes) else \
                onnx.load(source)
        except FileNotFoundError:
            raise ModelError(f"{where}: no such file") from None
        except Exception as exc:  # onnx raises DecodeError and friends
            raise ModelError(f"{where}: not an ONNX model ({type(exc).__name__})") from None
    g = proto.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise ModelError(f"{where}: the graph must have one data input, it has {len(inputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else -1
            for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) == 4 and all(d > 0 for d in dims[1:]):
        shape: tuple = (dims[2], dims[3], dims[1])  # NCHW in, NHWC inside
        layout = "chw"
    elif len(dims) == 2 and dims[1] > 0:
        shape = (dims[1],)
        layout = "flat"
    else:
        raise ModelError(f"{where}: input {inputs[0].name!r} has shape {dims}; expected "
                         f"[N, C, H, W] or [N, F] with known C, H, W / F")
    current = inputs[0].name
    cur_shape = shape
    layers: list = []
    counts: dict[str, int] = {}
    dropped = []
    nodes = list(g.node)

    def fresh(kind: str) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind]}"

    def const(node, i: int, name: str) -> np.ndarray:
        if name not in consts:
            raise ModelError(f"{_label(node, i)}: input {name!r} must be a constant "
                             f"(initializer); only chains with constant weights are supported")
        return consts[name]

    def push(layer) -> None:
        nonlocal cur_shape
        try:
            cur_shape = layer.out_shape(cur_shape)
        except ModelError as exc:
            raise ModelError(f"{_label(node, i)}: {exc}") from None
        layers.append(layer)

    for i, node in enumerate(nodes):
        op = node.op_type
        if op == "Constant":
            a = _attrs(node)
            if "value" not in a:
                raise ModelError(f"{_label(node, i)}: only tensor constants are supported")
            consts[node.output[0]] = numpy_helper.to_array(a["value"]).astype(np.float64)
            continue
        data = [x for x in node.input if x and x not in consts]
        if op not in SUPPORTED_OPS:
            raise ModelError(f"{_label(node, i)}: unsupported operator; supported: "
                             f"{', '.join(SUPPORTED_OPS)}")
        if data != [current]:
            raise ModelError(f"{_label(node, i)}: the graph is not a chain (this node reads "
                             f"{data or 'only constants'}, the chain is at {current!r})")
        a = _attrs(node)
        if op == "Gemm":
            if a.get("transA", 0):
                raise ModelError(f"{_label(node, i)}: transA = 1 is not supported")
            W = const(node, i, node.input[1])
            W = W.T if a.get("transB", 0) else W
            W = W * a.get("alpha", 1.0)
            n_out = W.shape[1]
            b = (const(node, i, node.input[2]).reshape(-1) * a.get("beta", 1.0)
                 if len(node.input) > 2 and node.input[2] else np.zeros(n_out))
            push(Dense(weights=W, bias=np.broadcast_to(b, (n_out,)).copy(), name=fresh("fc")))
        elif op == "MatMul":
            W = const(node, i, node.input[1])
            if W.ndim != 2:
                raise ModelError(f"{_label(node, i)}: only a 2-D constant right operand")
            push(Dense(weights=W, bias=np.zeros(W.shape[1]), name=fresh("fc")))
        elif op == "Add":
            prev = layers[-1] if layers else None
            other = [x for x in node.input if x in consts]
            if not isinstance(prev, Dense | Conv2D) or prev.relu or len(other) != 1 or \
                    np.any(prev.bias):
                raise ModelError(f"{_label(node, i)}: Add is supported only as the bias of "
                                 f"the MatMul/Conv before it")
            n_out = prev.bias.shape[0]
            b = consts[other[0]]
            if b.size not in (1, n_out):
                raise ModelError(f"{_label(node, i)}: bias of {b.size} values for "
                                 f"{n_out} outputs")
            layers[-1] = dataclasses.replace(prev, bias=np.broadcast_to(
                b.reshape(-1), (n_out,)).copy())
        elif op == "Conv":
            W = const(node, i, node.input[1])
            if W.ndim != 4:
                raise ModelError(f"{_label(node, i)}: only 2-D convolutions are supported")
            if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
                raise ModelError(f"{_label(node, i)}: grouped or dilated convolution is not "
                                 f"supported")
            kh, kw = W.shape[2:]
            stride = tuple(a.get("strides", [1, 1]))
            pads = _pads(node, i, a, cur_shape, (kh, kw), stride)
            b = (const(node, i, node.input[2]) if len(node.input) > 2 and node.input[2]
                 else np.zeros(W.shape[0]))
            push(Conv2D(weights=W.transpose(2, 3, 1, 0), bias=b, stride=stride,
                        padding=pads, name=fresh("conv")))
        elif op == "Relu":
            prev = layers[-1] if layers else None
            if isinstance(prev, Dense | Conv2D) and not prev.relu:
                layers[-1] = dataclasses.replace(prev, relu=True)
            else:
                push(ReLU(name=fresh("relu")))
        elif op in ("MaxPool", "AveragePool"):
            if a.get("ceil_mode", 0) or any(a.get("pads", [0])) or \
                    a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID") \
                    or any(d != 1 for d in a.get("dilations", [1, 1])):
                raise ModelError(f"{_label(node, i)}: padded, dilated or ceil-mode pooling is "
                                 f"not supported")
            size = tuple(a["kernel_shape"])
            stride = tuple(a.get("strides", [1] * len(size)))
            cls = MaxPool if op == "MaxPool" else AvgPool
            push(cls(size=size, stride=stride, name=fresh("pool")))
        elif op in ("Flatten", "Reshape"):
            if op == "Flatten" and a.get("axis", 1) != 1:
                raise ModelError(f"{_label(node, i)}: only axis = 1 is supported")
            if op == "Reshape":
                target = const(node, i, node.input[1]).astype(np.int64).tolist()
                flat = math.prod(cur_shape)
                if len(target) != 2 or target[1] not in (-1, flat) or target[0] not in (
                        -1, 0, 1) and target[0] * target[1] != -flat:
                    raise ModelError(f"{_label(node, i)}: only a reshape to [N, -1] (flatten) "
                                     f"is supported, not {target}")
            if len(cur_shape) == 1:
                continue  # already flat
            push(Flatten(order="chw", name=fresh("flatten")))
        elif op in ("Identity", "Dropout"):
            pass
        elif op in ("Softmax", "LogSoftmax"):
            if i != len(nodes) - 1:
                raise ModelError(f"{_label(node, i)}: supported only as the last node")
            dropped.append(op)
        current = node.output[0]
    if len(cur_shape) != 1:
        raise ModelError(f"{where}: the graph ends with shape {cur_shape}, not class scores")
    info = {"source": "onnx", "file": where, "producer": proto.producer_name or ""}
    if dropped:
        info["dropped"] = dropped
    return Model(layers=tuple(layers), input_shape=shape, classes=int(cur_shape[0]),
                 name=name or _stem(where), input_layout=layout, info=info)


def _stem(where: str) -> str:
    base = where.replace("\\", "/").rsplit("/", 1)[-1]
    return base[:-5] if base.endswith(".onnx") else base


def _pads(node, i, a, shape, kernel, stride) -> tuple:
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", "VALID"):
        p = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        if len(p) != 4:
            raise ModelError(f"{_label(node, i)}: pads must have 4 values")
        return (p[0], p[1], p[2], p[3])
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for d in range(2):
            o = -(-shape[d] // stride[d])
            total = max(0, (o - 1) * stride[d] + kernel[d] - shape[d])
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return (out[0][0], out[1][0], out[0][1], out[1][1])
    raise ModelError(f"{_label(node, i)}: auto_pad {auto!r} is not supported")


def to_onnx(model: Model, *, opset: int = 13):
    """A float model as an ONNX ``ModelProto`` (NCHW input for images).

    A native HWC :class:`Flatten` is written as ONNX's (CHW) Flatten with the next dense
    layer's input rows permuted to match, so the graph is a plain chain that
    :func:`load_onnx` reads back.
    """
    onnx, numpy_helper = _onnx()
    from onnx import TensorProto, helper

    if model.quantized:
        raise ModelError(f"model {model.name} is quantised; export the float model")
    nodes, inits = [], []
    shape = tuple(model.input_shape)
    in_dims = ["N", shape[2], shape[0], shape[1]] if len(shape) == 3 else ["N", shape[0]]
    cur = "input"
    perm_rows = None

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    for k, layer in enumerate(model.layers):
        out = f"t{k}"
        if isinstance(layer, Conv2D):
            w = init(f"w{k}", layer.weights.transpose(3, 2, 0, 1))
            b = init(f"b{k}", layer.bias)
            t, left, bot, r = layer.padding
            nodes.append(helper.make_node("Conv", [cur, w, b], [out], name=f"conv{k}",
                                          kernel_shape=list(layer.weights.shape[:2]),
                                          strides=list(layer.stride), pads=[t, left, bot, r]))
        elif isinstance(layer, Dense):
            W = layer.weights
            if perm_rows is not None:
                W = W[perm_rows]
                perm_rows = None
            w = init(f"w{k}", W)
            b = init(f"b{k}", layer.bias)
            nodes.append(helper.make_node("Gemm", [cur, w, b], [out], name=f"gemm{k}"))
        elif isinstance(layer, MaxPool | AvgPool):
            op = "MaxPool" if isinstance(layer, MaxPool) else "AveragePool"
            nodes.append(helper.make_node(op, [cur], [out], name=f"pool{k}",
                                          kernel_shape=list(layer.size),
                                          strides=list(layer.stride)))
        elif isinstance(layer, Flatten):
            if len(shape) == 3 and layer.order == "hwc":
                h, w_, c = shape
                # ONNX flattens (c, y, x); the next dense layer expects (y, x, c) rows.
                # Row i of the exported weights (i in (c, y, x) order) is the native row of
                # the same pixel and channel.
                perm_rows = np.arange(h * w_ * c).reshape(h, w_, c).transpose(2, 0, 1).ravel()
            nodes.append(helper.make_node("Flatten", [cur], [out], name=f"flatten{k}", axis=1))
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [cur], [out], name=f"relu{k}"))
        if getattr(layer, "relu", False):
            nodes.append(helper.make_node("Relu", [out], [out + "r"], name=f"relu{k}"))
            out += "r"
        shape = layer.out_shape(shape)
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["logits"], name="output"))
    graph = helper.make_graph(
        nodes, model.name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", model.classes])],
        initializer=inits)
    proto = helper.make_model(graph, producer_name="ftaccel",
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto)
    return proto
