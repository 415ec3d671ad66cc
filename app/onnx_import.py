"""ONNX graphs to :class:`golden.network.Model`: float graphs, and int8 ones (QDQ, QOperator).

What ``torch.onnx.export`` (opset 17: Conv/BatchNormalization/Relu blocks, residual Add,
Flatten or Reshape before Gemm with ``transB = 1``), skl2onnx (a ``Cast``, MatMul/Add/Relu,
then a classifier head) and Keras' ``tf2onnx`` write for a classifier is a graph of these
operators, ONNX opsets 13 to the newest the installed ``onnx`` knows (README, Two quantisation
paths):

==========================  ==================================================================
ONNX operator               becomes (where it runs: array, output stage or host)
==========================  ==================================================================
Conv                        :class:`Conv2D` (2-D, ``group = 1``, dilation 1, explicit pads or
                            ``auto_pad``, any stride; weights OIHW → HWIO) or, with ``group``
                            = channels (multiplier 1), :class:`DepthwiseConv2D` — array
Gemm                        :class:`Dense` (``transB`` honoured, ``alpha``/``beta`` folded;
                            ``transA`` refused) — array
MatMul [+ Add]              :class:`Dense`; an ``Add`` of a constant after a product is its
                            bias — array, the bias in the output stage
BatchNormalization          folded into the Conv/Gemm/MatMul before it:
                            ``w' = w·γ/√(σ²+ε)``, ``b' = (b − μ)·γ/√(σ²+ε) + β``
Relu                        folded into the product before it (output stage), else
                            :class:`ReLU` (host)
Clip                        ``[0, ∞)`` as Relu; ``[0, 6]`` (ReLU6) as Relu + :class:`Clip` to
                            6 (host); other bounds :class:`Clip` (host)
LeakyRelu                   only ``alpha = 0`` (a Relu) or ``alpha = 1`` (nothing); any other
                            slope does not fit the output stage: refused
MaxPool / AveragePool       :class:`MaxPool` / :class:`AvgPool` with padding and stride
                            (``count_include_pad`` honoured; ``ceil_mode = 1`` refused) — host
GlobalAveragePool           :class:`AvgPool` over the whole map (GlobalMaxPool likewise) — host
Add (two tensors)           :class:`Add`, the residual connection (equal shapes) — host
Concat (channels)           :class:`Concat` on C (axis 1 of NCHW, or of ``[N, F]``) — host
Flatten (axis 1)            :class:`Flatten` in CHW order (ONNX tensors are NCHW) — host
Reshape to ``[N, -1]``,     the same Flatten (a ``Shape``/``Gather``/``Concat`` computing the
Squeeze to ``[N, F]``       target from the input's shape counts as constant)
Identity, Dropout, Cast     dropped (inference; a Cast only between float types)
Softmax, LogSoftmax,        the classifier head: recognised and dropped with everything after
ArgMax, ZipMap,             it (skl2onnx's label and probability outputs); the logits are the
ArrayFeatureExtractor       tensor the head reads
Constant, any node whose    evaluated at import (onnx's reference evaluator)
inputs are all constants
==========================  ==================================================================

**int8 graphs** (:func:`is_quantised`: QuantizeLinear, DequantizeLinear or a QLinear
operator in the graph; onnxruntime's ``quantize_static`` writes both formats) become a
*fixed-point* model that keeps the file's scales (``golden.network``'s module docstring):

==========================================  =================================================
int8 graph                                  becomes
==========================================  =================================================
QuantizeLinear of the input                 the model's input scale and zero point
QDQ: DequantizeLinear → Conv / Gemm /       the product node; weights int8 symmetric (uint8
MatMul → [Relu / Clip] → QuantizeLinear;    with zero point 128 shifted), per tensor or per
QOperator: QLinearConv, QLinearMatMul,      output channel; the int32 bias with ``−z_a·Σ q_w``
QGemm                                       folded in; padding = ``z_a``; ``M = s_a·s_w/s_y``
                                            (float32, as onnxruntime computes it) per column
                                            as ``M0·2**-(31+n)`` (:func:`ort_multiplier`);
                                            the output zero point; a ReLU / ReLU6 as the clamp
QDQ Add / Concat / AveragePool /            :class:`golden.network.Add` / ``Concat`` /
GlobalAveragePool; QLinearAdd,              ``AvgPool`` with a :class:`golden.network.Rescale`
QLinearConcat, QLinearAveragePool,          (host)
QLinearGlobalAveragePool
MaxPool, Flatten, Reshape (on int8 or       the same node, scale kept (host)
between DQ and Q)
DequantizeLinear → Relu / Clip →            a clamp (:class:`Clip`, same scale) or a
QuantizeLinear                              :class:`golden.network.Requantize` (host)
DequantizeLinear of the logits              the last node's scale (the logits stay int8)
==========================================  =================================================

uint8 activations become int8 exactly: ``q − 128`` and ``z − 128``.  The input is quantised
as onnxruntime's QuantizeLinear does (float32 ``x / s``, ties to even, saturated).  Refused,
with the node named: a scale that is zero, negative or not finite; an activation zero point
that is not 8-bit (or one per axis); asymmetric weights; a multiplier ``s_a·s_w/s_y`` of 1
or more (the output stage only shifts right); an accumulator (bias included) that could
leave 32 signed bits; a float operator between quantised tensors that has no int8 form here
(quantise the whole graph); a float result read before its QuantizeLinear.

**Where this import and onnxruntime differ.**  onnxruntime requantises in float32 (MLAS:
``float(acc)·M`` rounded to float32, then to the nearest even integer): where that float32
product lands exactly on a half it rounds to even, up for one accumulator and down for
another (``acc`` and ``3·acc`` give ``27.5 → 28`` and ``82.5 → 82``), which no fixed-point
multiplier reproduces both of; :func:`ort_multiplier` picks the multiplier that agrees on
the most accumulators (favouring small ones).  The host nodes' exact :class:`Rescale` and
onnxruntime's float Add / pooling / Concat differ only where the float32 value is within its
rounding error of a half.  A one-LSB difference early in a deep network can spread.  On x86
without VNNI onnxruntime's uint8 × int8 kernels saturate (``vpmaddubsw``) unless the weights
are 7-bit (``reduce_range``); this import computes the file's arithmetic exactly either way.

Anything else raises :class:`golden.network.ModelError` naming the node, its operator and,
where there is one, what to do instead (the CLI exits 2 with that line); so do a graph with a
cycle, an input nothing gives, a second graph input, no nodes, and weights that are NaN,
infinite, complex, strings, or declared larger than the data the file holds.  External data
is read only from files inside the model's folder (onnx ≥ 1.21 refuses ``..``, absolute paths
and symbolic links).  The input is NCHW (or ``[N, F]``); the model keeps NHWC inside and
accepts the user's images as ``[N, C, H, W]``, ``[N, H, W, C]`` or, for one channel,
``[N, H, W]``.  Quantisation is :func:`golden.network.quantize` with the user's calibration
data.

``onnx`` is imported only here, and only when called (``pip install ftaccel[onnx]``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ftaccel.golden.network import (
    Add,
    AvgPool,
    Clip,
    Concat,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    MaxPool,
    Model,
    ModelError,
    ReLU,
    Requantize,
    Rescale,
)
from ftaccel.golden.output_stage import Requant, quantize_multiplier

__all__ = ["load_onnx", "to_onnx", "SUPPORTED_OPS", "HEAD_OPS", "OnnxMissing", "MIN_OPSET",
           "QUANT_OPS", "is_quantised", "split_multiplier", "ort_multiplier",
           "mlas_requantize"]

#: Operators of the network itself.
SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Clip",
                 "LeakyRelu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
                 "Concat", "Flatten", "Reshape", "Squeeze", "Identity", "Dropout", "Cast",
                 "Constant", "Shape", "Gather", "Unsqueeze")
#: Operators that start a classifier head (dropped with everything after them).
HEAD_OPS = ("Softmax", "LogSoftmax", "ArgMax", "ZipMap", "ArrayFeatureExtractor",
            "QLinearSoftmax")
#: What may follow a head operator inside the head.
_HEAD_TAIL = HEAD_OPS + ("QuantizeLinear", "DequantizeLinear", "Cast", "Identity", "Reshape",
                         "Flatten", "Squeeze", "Unsqueeze",
                         "Transpose")
#: The oldest ONNX opset read (Squeeze's axes became an input in 13).
MIN_OPSET = 13
_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data")


class OnnxMissing(ImportError):
    """The ``onnx`` package is not installed."""


def _onnx():
    try:
        import onnx  # optional dependency: only this module reads ONNX
        from onnx import numpy_helper
    except ImportError:
        raise OnnxMissing("reading ONNX models needs the onnx package: "
                          "pip install 'ftaccel[onnx]'") from None
    return onnx, numpy_helper


def _attrs(node) -> dict:
    onnx, _ = _onnx()
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _label(node, i: int) -> str:
    return f"node {node.name or '#' + str(i)} (op {node.op_type})"


def _read(source, name: str | None):
    """``(ModelProto, where)`` of ``source`` with its external data, or ModelError."""
    onnx, _ = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source, name or "onnx model"
    if isinstance(source, bytes):
        data, where, folder = source, name or "onnx model", None
    else:
        from ftaccel.files import FileProblem, read_input

        where = str(source)
        try:
            data = read_input(source, "--model")
        except FileProblem as exc:
            raise ModelError(str(exc)) from None
        folder = os.path.dirname(os.path.abspath(source))
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"{where}: not an ONNX model ({type(exc).__name__})") from None
    external = [t.name for t in proto.graph.initializer if t.data_location == 1]
    if external:
        if folder is None:
            raise ModelError(f"{where}: initializer {external[0]!r} keeps its data in an "
                             f"external file; give the model as a file path")
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(proto, folder)
        except Exception as exc:  # onnx's ValidationError, OSError: one line naming the tensor
            msg = " ".join(str(exc).split())
            raise ModelError(f"{where}: external data refused: {msg}") from None
    return proto, where


class _Importer:
    """One ONNX graph being turned into a :class:`Model` (see the module docstring)."""

    def __init__(self, proto, where: str, name: str | None):
        onnx, self.nh = _onnx()
        self.proto, self.where = proto, where
        self.g = proto.graph
        self.name = name or _stem(where)
        self.inits = {t.name: t for t in self.g.initializer}
        self.consts: dict[str, np.ndarray] = {}
        self.vals: dict[str, tuple[int, tuple]] = {}  # tensor → (node index, shape)
        self.layers: list = []
        self.counts: dict[str, int] = {}
        self.onnx_names: dict[str, str] = {}

    # -- constants ---------------------------------------------------------------------------
    def _init_array(self, t, user: str) -> np.ndarray:
        onnx, _ = _onnx()
        kind = onnx.TensorProto.DataType.Name(t.data_type) if t.data_type else "UNDEFINED"
        if t.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
            raise ModelError(f"{user}: initializer {t.name!r} is of type {kind}, not numbers")
        if t.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128):
            raise ModelError(f"{user}: initializer {t.name!r} is complex ({kind}); weights "
                             f"must be real")
        if any(d < 0 for d in t.dims):
            raise ModelError(f"{user}: initializer {t.name!r} has negative dims {list(t.dims)}")
        n = math.prod(t.dims)
        if t.HasField("raw_data"):
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
            held = len(t.raw_data) * 8 // max(1, itemsize * 8)
        else:
            held = max(len(getattr(t, f)) for f in _TYPED_FIELDS)
        if held < n or (t.HasField("raw_data") and held != n):
            raise ModelError(f"{user}: initializer {t.name!r} declares {n:,} values "
                             f"({list(t.dims)}) but the file holds {held:,}")
        try:
            arr = self.nh.to_array(t)
        except Exception as exc:  # malformed tensor the checks above did not catch
            raise ModelError(f"{user}: initializer {t.name!r} cannot be read "
                             f"({type(exc).__name__})") from None
        return arr

    def const(self, name: str, user: str) -> np.ndarray | None:
        """The constant ``name`` as float64 (checked: finite, real), or None if not constant."""
        if name in self.consts:
            return self.consts[name]
        if name not in self.inits:
            return None
        arr = self._init_array(self.inits[name], user)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ModelError(f"{user}: initializer {name!r} holds NaN or infinite values")
        self.consts[name] = arr
        return arr

    def weight(self, node, i: int, k: int, what: str = "weights") -> np.ndarray:
        """Input ``k`` of ``node``, which must be a constant (float64)."""
        name = node.input[k] if len(node.input) > k else ""
        arr = self.const(name, _label(node, i)) if name else None
        if arr is None:
            raise ModelError(f"{_label(node, i)}: its {what} ({name or 'missing'!r}) must be a "
                             f"constant (initializer); weights computed at run time are not "
                             f"supported")
        return np.asarray(arr, dtype=np.float64)

    # -- graph structure ---------------------------------------------------------------------
    def order(self) -> list[int]:
        """The nodes in topological order; ModelError for a dangling input or a cycle."""
        nodes = list(self.g.node)
        if not nodes:
            raise ModelError(f"{self.where}: the graph has no nodes")
        producer: dict[str, int] = {}
        for i, node in enumerate(nodes):
            for out in node.output:
                if out in producer or out in self.inits:
                    raise ModelError(f"{_label(node, i)}: tensor {out!r} is written twice")
                if out:
                    producer[out] = i
        known = set(self.inits) | {x.name for x in self.g.input}
        deps: list[set[int]] = []
        for i, node in enumerate(nodes):
            d = set()
            for name in node.input:
                if not name or name in self.inits or (name in known and name not in producer):
                    continue
                if name not in producer:
                    raise ModelError(f"{_label(node, i)}: reads {name!r}, which no node, "
                                     f"initializer or graph input gives")
                d.add(producer[name])
            deps.append(d)
        self.producer = producer
        order, done = [], set()
        ready = [i for i in range(len(nodes)) if not deps[i]]
        readers: dict[int, list[int]] = {}
        for i, d in enumerate(deps):
            for j in d:
                readers.setdefault(j, []).append(i)
        waiting = [len(d) for d in deps]
        while ready:
            i = ready.pop(0)
            order.append(i)
            done.add(i)
            for r in readers.get(i, []):
                waiting[r] -= 1
                if waiting[r] == 0:
                    ready.append(r)
        if len(order) != len(nodes):
            i = min(set(range(len(nodes))) - done)
            raise ModelError(f"{_label(nodes[i], i)}: the graph has a cycle through this node")
        self.deps = deps
        return order

    def data_input(self):
        """The one graph input that is not an initializer, and its internal shape and layout."""
        inputs = [x for x in self.g.input if x.name not in self.inits]
        if not inputs:
            raise ModelError(f"{self.where}: the graph has no data input")
        if len(inputs) > 1:
            raise ModelError(f"{self.where}: a second graph input {inputs[1].name!r}; one data "
                             f"input (the images) is supported")
        x = inputs[0]
        tt = x.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            onnx, _ = _onnx()
            raise ModelError(f"{self.where}: input {x.name!r} is of type "
                             f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; a float input "
                             f"is expected")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if len(dims) == 4 and all(d > 0 for d in dims[1:]):
            return x.name, (dims[2], dims[3], dims[1]), "chw"  # NCHW in, NHWC inside
        if len(dims) == 2 and dims[1] > 0:
            return x.name, (dims[1],), "flat"
        raise ModelError(f"{self.where}: input {x.name!r} has shape {dims}; expected "
                         f"[N, C, H, W] or [N, F] with known C, H, W / F")

    def head(self, order: list[int]) -> tuple[set[int], str | None]:
        """The classifier head's nodes and the logits tensor they read (None: no head)."""
        nodes = self.g.node
        head: set[int] = set()
        roots = []
        for i in order:
            node = nodes[i]
            after = any(j in head for j in self.deps[i])
            if node.op_type in HEAD_OPS or after:
                if after and node.op_type not in _HEAD_TAIL:
                    raise ModelError(f"{_label(node, i)}: reads the classifier head's output; "
                                     f"only a final head ({', '.join(HEAD_OPS)}) is dropped, "
                                     f"the network must end at its logits")
                head.add(i)
                ins = [x for x in node.input if x and x not in self.inits and
                       self.producer.get(x) not in head]
                if node.op_type in HEAD_OPS and ins and not after:
                    roots.append((i, ins[0]))
        tensors = {t for _, t in roots}
        if len(tensors) > 1:
            raise ModelError(f"{self.where}: the classifier head reads {len(tensors)} tensors "
                             f"({', '.join(sorted(tensors))}); it must read one (the logits)")
        return head, (tensors.pop() if tensors else None)

    # -- building ----------------------------------------------------------------------------
    def fresh(self, kind: str, node) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        name = f"{kind}{self.counts[kind]}"
        if node.name:
            self.onnx_names[name] = node.name
        return name

    def push(self, layer, node, i, srcs: list[int], out: str) -> None:
        """Append ``layer`` reading nodes ``srcs``; its output is tensor ``out``."""
        chain = srcs == [len(self.layers) - 1]
        layer = dataclasses.replace(layer, inputs=() if chain else tuple(srcs))
        shapes = [self.shape_of(j) for j in srcs]
        try:
            shape = layer.out_shape(shapes if getattr(layer, "multi", False) else shapes[0])
        except ModelError as exc:
            raise ModelError(f"{_label(node, i)}: {exc}") from None
        self.layers.append(layer)
        self.shapes.append(tuple(shape))
        self.vals[out] = (len(self.layers) - 1, tuple(shape))

    def shape_of(self, j: int) -> tuple:
        return self.input_shape if j == -1 else self.shapes[j]

    def data(self, node, i: int) -> list[str]:
        """``node``'s non-constant inputs (tensor names)."""
        return [x for x in node.input if x and x not in self.consts and x not in self.inits]

    def foldable(self, name: str) -> int | None:
        """The product node whose output ``name`` is, if only one node reads it, else None."""
        k, _ = self.vals[name]
        if k < 0 or self.readers.get(name, 0) != 1:
            return None
        return k if isinstance(self.layers[k], Dense | Conv2D | DepthwiseConv2D) else None

    def alias(self, node, src: str) -> None:
        self.vals[node.output[0]] = self.vals[src]

    def onnx_shape(self, name: str) -> list[int]:
        """The NCHW (or ``[N, F]``) shape of data tensor ``name``, batch 1."""
        _, s = self.vals[name]
        return [1, s[2], s[0], s[1]] if len(s) == 3 else [1, *s]

    def build(self) -> Model:
        """The float :class:`Model` of the graph."""
        opset = self.opset()
        logits, layout, head = self.walk()
        k, shape = self.logits_node(logits)
        return Model(layers=tuple(self.layers), input_shape=self.input_shape,
                     classes=int(shape[0]), name=self.name, input_layout=layout,
                     info=self.info(opset, head))

    def opset(self) -> int:
        """The graph's ONNX opset, or ModelError if this tool does not read it."""
        onnx, _ = _onnx()
        opset = next((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")),
                     None)
        newest = onnx.defs.onnx_opset_version()
        if opset is None or not MIN_OPSET <= opset <= newest:
            raise ModelError(f"{self.where}: ONNX opset {opset}; opsets {MIN_OPSET} … {newest} "
                             f"are read (re-export with opset_version={min(17, newest)})")
        return opset

    def walk(self) -> tuple[str, str, set]:
        """Turn every node the logits depend on into model nodes, in topological order.

        Returns the logits tensor's name, the input layout and the classifier head's nodes.
        """
        order = self.order()
        x_name, self.input_shape, layout = self.data_input()
        self.x_name = x_name
        self.shapes: list[tuple] = []
        self.vals[x_name] = (-1, self.input_shape)
        head, logits = self.head(order)
        outputs = [o.name for o in self.g.output]
        nodes = self.g.node
        if logits is None:
            if len(outputs) != 1:
                raise ModelError(f"{self.where}: the graph has {len(outputs)} outputs and no "
                                 f"classifier head; one output (the logits) is expected")
            logits = outputs[0]
        for o in outputs:
            p = self.producer.get(o)
            if o != logits and (p is None or p not in head):
                raise ModelError(f"{self.where}: graph output {o!r} is neither the logits "
                                 f"({logits!r}) nor from the classifier head")
        # the nodes the logits depend on, and how many of them read each tensor
        keep, todo = set(), [self.producer[logits]] if logits in self.producer else []
        while todo:
            i = todo.pop()
            if i not in keep:
                keep.add(i)
                todo.extend(self.deps[i])
        self.readers: dict[str, int] = {}
        for i in keep:
            for x in set(nodes[i].input):
                self.readers[x] = self.readers.get(x, 0) + 1
        for i in order:
            if i in keep:
                self.node(nodes[i], i)
        return logits, layout, head

    def logits_node(self, logits: str) -> tuple[int, tuple]:
        """The model node that gives the logits and their shape, or ModelError."""
        if logits not in self.vals:
            raise ModelError(f"{self.where}: the logits {logits!r} are not computed from the "
                             f"input")
        k, shape = self.vals[logits]
        if k < 0:
            raise ModelError(f"{self.where}: the graph computes nothing before its head")
        if len(shape) != 1:
            raise ModelError(f"{self.where}: the graph ends with shape {shape}, not class "
                             f"scores (add a Flatten)")
        if k != len(self.layers) - 1:
            raise ModelError(f"{self.where}: the logits are not the last node's output")
        return k, shape

    def info(self, opset: int, head: set) -> dict:
        """The model's ``info``: where it came from, what was dropped, the ONNX node names."""
        info = {"source": "onnx", "file": self.where, "producer": self.proto.producer_name or "",
                "opset": int(opset)}
        dropped = sorted({self.g.node[i].op_type for i in head})
        if dropped:
            info["dropped"] = dropped
        if self.onnx_names:
            info["onnx_nodes"] = self.onnx_names
        return info

    def node(self, node, i: int) -> None:
        """Turn ONNX node ``i`` into nodes of the model (or fold it into one)."""
        op = node.op_type
        a = _attrs(node)
        label = _label(node, i)
        if node.domain not in ("", "ai.onnx"):
            raise ModelError(f"{label}: operator of domain {node.domain!r} is not supported")
        if op == "Constant":
            self.consts[node.output[0]] = self.constant_node(node, i, a)
            return
        data = self.data(node, i)
        if not data and op not in ("Shape",):
            self.fold_constant(node, i)
            return
        if op not in SUPPORTED_OPS:
            hint = {"Sigmoid": "; a sigmoid output is a head for one class: export the logits",
                    "Sum": "; use Add", "ConvTranspose": "",
                    "QuantizeLinear": "; int8 (QDQ) models are not read yet: give the float "
                                      "model"}.get(op, "")
            raise ModelError(f"{label}: unsupported operator; supported: "
                             f"{', '.join(SUPPORTED_OPS)}{hint}")
        x = data[0]
        src = self.vals[x][0]
        shape = self.vals[x][1]
        out = node.output[0]
        if op in ("Conv",):
            self.conv(node, i, a, x)
        elif op in ("Gemm", "MatMul"):
            if len(shape) != 1:
                raise ModelError(f"{label}: reads a tensor of shape {shape} (per image); "
                                 f"add a Flatten before it")
            if op == "Gemm":
                if a.get("transA", 0):
                    raise ModelError(f"{label}: transA = 1 is not supported")
                W = self.weight(node, i, 1)
                if W.ndim != 2:
                    raise ModelError(f"{label}: weights of shape {list(W.shape)}; a 2-D K×N "
                                     f"matrix is expected")
                W = (W.T if a.get("transB", 0) else W) * a.get("alpha", 1.0)
                n_out = W.shape[1]
                b = (self.weight(node, i, 2, "bias").reshape(-1) * a.get("beta", 1.0)
                     if len(node.input) > 2 and node.input[2] else np.zeros(n_out))
            else:
                if data != [node.input[0]]:
                    raise ModelError(f"{label}: only data @ constant weights is supported")
                W = self.weight(node, i, 1)
                if W.ndim != 2:
                    raise ModelError(f"{label}: weights of shape {list(W.shape)}; a 2-D K×N "
                                     f"matrix is expected")
                n_out = W.shape[1]
                b = np.zeros(n_out)
            if W.size == 1:
                raise ModelError(f"{label}: a 1×1 weight matrix is a scalar multiply, not a "
                                 f"layer for the array; fold it into the next layer")
            if b.size not in (1, n_out):
                raise ModelError(f"{label}: bias of {b.size} values for {n_out} outputs")
            self.push(Dense(weights=W, bias=np.broadcast_to(b, (n_out,)).copy(),
                            name=self.fresh("fc", node)), node, i, [src], out)
        elif op == "Add":
            if len(data) == 2:
                self.push(Add(name=self.fresh("add", node)), node, i,
                          [self.vals[d][0] for d in data], out)
                return
            c = [n for n in node.input if n not in data]
            k = self.foldable(x)
            prev = None if k is None else self.layers[k]
            if prev is None or prev.relu or len(c) != 1:
                raise ModelError(f"{label}: Add of a constant is supported only as the bias of "
                                 f"the Conv/Gemm/MatMul before it (read by nothing else)")
            n_out = prev.bias.shape[0]
            b = self.weight(node, i, list(node.input).index(c[0]), "bias")
            # broadcast along the output channels: the last axis of [N, F], axis 1 of NCHW
            axis = -1 if isinstance(prev, Dense) else -3
            if b.size != 1 and not (b.size == n_out and b.ndim >= -axis
                                    and b.shape[axis] == n_out):
                raise ModelError(f"{label}: bias of shape {list(b.shape)} does not broadcast "
                                 f"along the {n_out} output channels")
            self.layers[k] = dataclasses.replace(prev, bias=prev.bias + np.broadcast_to(
                b.reshape(-1), (n_out,)))
            self.alias(node, x)
        elif op == "BatchNormalization":
            if a.get("training_mode", 0):
                raise ModelError(f"{label}: training_mode = 1; export the model in eval mode")
            k = self.foldable(x)
            if k is None or self.layers[k].relu:
                raise ModelError(f"{label}: BatchNormalization is folded into the Conv/Gemm "
                                 f"before it, and must be the only reader of its output; fold "
                                 f"it before export")
            gamma, beta, mean, var = (self.weight(node, i, j, w).reshape(-1) for j, w in
                                      ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
            prev = self.layers[k]
            n_out = prev.bias.shape[0]
            if not all(v.size == n_out for v in (gamma, beta, mean, var)):
                raise ModelError(f"{label}: parameters for {gamma.size} channels, the layer "
                                 f"before has {n_out}")
            if np.any(var + a.get("epsilon", 1e-5) <= 0):
                raise ModelError(f"{label}: variance + epsilon must be positive")
            s = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
            # the output channel is the weights' last axis in every product kind
            self.layers[k] = dataclasses.replace(prev, weights=prev.weights * s,
                                                 bias=(prev.bias - mean) * s + beta)
            self.alias(node, x)
        elif op in ("Relu", "Clip", "LeakyRelu"):
            lo, hi = 0.0, None
            if op == "Clip":
                lo = self.optional_scalar(node, i, 1)
                hi = self.optional_scalar(node, i, 2)
                if lo is not None and hi is not None and lo > hi:
                    raise ModelError(f"{label}: min {lo} above max {hi}")
            elif op == "LeakyRelu":
                alpha = a.get("alpha", 0.01)
                if alpha == 1.0:
                    self.alias(node, x)
                    return
                if alpha != 0.0:
                    raise ModelError(f"{label}: LeakyRelu with alpha = {alpha:g} does not fit "
                                     f"the output stage (ReLU or none); retrain with Relu")
            if lo == 0.0:
                k = self.foldable(x)
                if k is not None and not self.layers[k].relu:
                    self.layers[k] = dataclasses.replace(self.layers[k], relu=True)
                    self.alias(node, x)
                else:
                    self.push(ReLU(name=self.fresh("relu", node)), node, i, [src], out)
                if hi is not None:
                    rel = self.vals[out][0]
                    self.push(Clip(hi=float(hi), name=self.fresh("clip", node)), node, i, [rel],
                              out)
            elif lo is not None or hi is not None:
                self.push(Clip(lo=None if lo is None else float(lo),
                               hi=None if hi is None else float(hi),
                               name=self.fresh("clip", node)), node, i, [src], out)
            else:
                self.alias(node, x)
        elif op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"):
            self.push(self.pool(node, i, a, shape, op), node, i, [src], out)
        elif op == "Concat":
            axis = a.get("axis", 1)
            rank = 4 if len(shape) == 3 else 2
            if axis not in (1, 1 - rank):
                raise ModelError(f"{label}: only a Concat on the channel axis (1) is "
                                 f"supported, not axis {axis}")
            if len(data) != len([n for n in node.input if n]):
                raise ModelError(f"{label}: only a Concat of computed tensors (no constants)")
            self.push(Concat(name=self.fresh("concat", node)), node, i,
                      [self.vals[d][0] for d in data], out)
        elif op in ("Flatten", "Reshape", "Squeeze"):
            self.flatten(node, i, a, x)
        elif op in ("Identity", "Dropout"):
            if op == "Dropout" and len(node.output) > 1 and self.readers.get(node.output[1]):
                raise ModelError(f"{label}: the mask output is not supported")
            self.alias(node, x)
        elif op == "Cast":
            if a.get("to") not in _FLOAT_TYPES:
                onnx, _ = _onnx()
                raise ModelError(f"{label}: a Cast of data to "
                                 f"{onnx.TensorProto.DataType.Name(a.get('to', 0))} is not a "
                                 f"no-op; only casts between float types are dropped")
            self.alias(node, x)
        elif op == "Shape":
            dims = self.onnx_shape(x)  # batch 1: a Reshape target built from it flattens
            self.consts[out] = np.asarray(dims[a.get("start", 0):a.get("end", len(dims))],
                                          dtype=np.int64)
        else:  # Gather, Unsqueeze on data
            raise ModelError(f"{label}: supported on constants (shapes) only, not on the "
                             f"network's data")

    def pool(self, node, i: int, a: dict, shape: tuple, op: str):
        """The :class:`MaxPool` / :class:`AvgPool` of a pooling node on a ``shape`` input."""
        label = _label(node, i)
        if op in ("GlobalAveragePool", "GlobalMaxPool", "QLinearGlobalAveragePool"):
            if len(shape) != 3:
                raise ModelError(f"{label}: needs an N×C×H×W input, not {shape}")
            cls = MaxPool if op == "GlobalMaxPool" else AvgPool
            return cls(size=shape[:2], stride=shape[:2], name=self.fresh("pool", node))
        if len(node.output) > 1 and node.output[1] and self.readers.get(node.output[1]):
            raise ModelError(f"{label}: the indices output is not supported")
        if a.get("ceil_mode", 0):
            raise ModelError(f"{label}: ceil_mode = 1 is not supported; export with "
                             f"ceil_mode=False (pad explicitly if needed)")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise ModelError(f"{label}: dilated pooling is not supported")
        size = tuple(a["kernel_shape"])
        if len(size) != 2 or len(shape) != 3:
            raise ModelError(f"{label}: only 2-D pooling of an N×C×H×W tensor")
        stride = tuple(a.get("strides", [1, 1]))
        pads = _pads(node, i, a, shape, size, stride)
        if pads[0] >= size[0] or pads[2] >= size[0] or pads[1] >= size[1] or \
                pads[3] >= size[1]:
            raise ModelError(f"{label}: padding {list(pads)} not smaller than the window")
        if op == "MaxPool":
            return MaxPool(size=size, stride=stride, padding=pads, name=self.fresh("pool", node))
        return AvgPool(size=size, stride=stride, padding=pads,
                       count_pad=bool(a.get("count_include_pad", 0)),
                       name=self.fresh("pool", node))

    def optional_scalar(self, node, i: int, k: int) -> float | None:
        if len(node.input) <= k or not node.input[k]:
            return None
        v = self.weight(node, i, k, "bound")
        if v.size != 1:
            raise ModelError(f"{_label(node, i)}: bound of {v.size} values; a scalar expected")
        return float(v.reshape(-1)[0])

    def constant_node(self, node, i: int, a: dict) -> np.ndarray:
        _, nh = _onnx()
        if "value" in a:
            t = node.attribute[[x.name for x in node.attribute].index("value")].t
            arr = self._init_array(t, _label(node, i))
        elif "value_float" in a or "value_int" in a:
            arr = np.asarray(a.get("value_float", a.get("value_int")))
        elif "value_floats" in a or "value_ints" in a:
            arr = np.asarray(a.get("value_floats", a.get("value_ints")))
        else:
            raise ModelError(f"{_label(node, i)}: only numeric tensor constants are supported")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ModelError(f"{_label(node, i)}: constant holds NaN or infinite values")
        return arr

    def fold_constant(self, node, i: int) -> None:
        """Evaluate a node of constants only (shape arithmetic) with onnx's reference."""
        onnx, nh = _onnx()
        from onnx.reference import ReferenceEvaluator  # only for constant folding

        ins = [n for n in node.input if n]
        arrays = {n: self.const(n, _label(node, i)) for n in ins}
        try:
            graph = onnx.helper.make_graph(
                [node], "fold", [onnx.helper.make_tensor_value_info(
                    n, onnx.helper.np_dtype_to_tensor_dtype(arrays[n].dtype), arrays[n].shape)
                    for n in ins],
                [onnx.helper.make_empty_tensor_value_info(o) for o in node.output if o])
            model = onnx.helper.make_model(graph, opset_imports=list(self.proto.opset_import))
            outs = ReferenceEvaluator(model).run(None, arrays)
        except Exception as exc:  # an operator the reference cannot evaluate
            raise ModelError(f"{_label(node, i)}: a node of constants that cannot be evaluated "
                             f"at import ({type(exc).__name__})") from None
        for name, v in zip([o for o in node.output if o], outs, strict=False):
            self.consts[name] = np.asarray(v)

    def conv(self, node, i: int, a: dict, x: str) -> None:
        label = _label(node, i)
        src, shape = self.vals[x]
        W = self.weight(node, i, 1)
        if W.ndim != 4 or len(shape) != 3:
            raise ModelError(f"{label}: only 2-D convolutions of an N×C×H×W tensor are "
                             f"supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise ModelError(f"{label}: dilated convolution is not supported")
        group = a.get("group", 1)
        kh, kw = W.shape[2:]
        stride = tuple(a.get("strides", [1, 1]))
        pads = _pads(node, i, a, shape, (kh, kw), stride)
        b = (self.weight(node, i, 2, "bias").reshape(-1) if len(node.input) > 2 and
             node.input[2] else np.zeros(W.shape[0]))
        if group == 1:
            layer = Conv2D(weights=W.transpose(2, 3, 1, 0), bias=b, stride=stride, padding=pads,
                           name=self.fresh("conv", node))
        elif group == shape[2] and W.shape[0] == group and W.shape[1] == 1:
            layer = DepthwiseConv2D(weights=W[:, 0].transpose(1, 2, 0), bias=b, stride=stride,
                                    padding=pads, name=self.fresh("dwconv", node))
        else:
            raise ModelError(f"{label}: grouped convolution (group = {group}) is not supported: "
                             f"only group = 1 or depthwise (group = channels, one output per "
                             f"channel); split it into {group} convolutions and a Concat")
        self.push(layer, node, i, [src], node.output[0])

    def flatten(self, node, i: int, a: dict, x: str, out: str | None = None) -> None:
        """A Flatten (or a Reshape / Squeeze that flattens) of ``x`` whose output is ``out``."""
        out = out or node.output[0]
        label = _label(node, i)
        src, shape = self.vals[x]
        op = node.op_type
        flat = math.prod(shape)
        if op == "Flatten":
            if a.get("axis", 1) != 1:
                raise ModelError(f"{label}: only axis = 1 is supported")
        elif op == "Reshape":
            target = self.weight(node, i, 1, "shape").astype(np.int64).tolist()
            if len(target) != 2 or target[1] not in (-1, flat) or target[0] not in (
                    -1, 0, 1) and target[0] * target[1] != -flat:
                raise ModelError(f"{label}: only a reshape to [N, -1] (flatten) is supported, "
                                 f"not {target}")
        else:  # Squeeze: what remains must be [N, F]
            onnx_shape = self.onnx_shape(x)
            axes = (self.weight(node, i, 1, "axes").astype(np.int64).tolist()
                    if len(node.input) > 1 and node.input[1] else
                    [d for d in range(1, len(onnx_shape)) if onnx_shape[d] == 1])
            axes = [d % len(onnx_shape) for d in axes]
            left = [s for d, s in enumerate(onnx_shape) if d not in axes]
            if 0 in axes or any(onnx_shape[d] != 1 for d in axes) or len(left) != 2:
                raise ModelError(f"{label}: only a Squeeze that leaves [N, F] (a flatten) is "
                                 f"supported, not axes {axes} of {onnx_shape}")
        if len(shape) == 1:
            self.vals[out] = self.vals[x]  # already flat
            return
        self.push(Flatten(order="chw", name=self.fresh("flatten", node)), node, i, [src], out)


# -- int8 graphs as quantisers write them (QDQ and QOperator) ----------------------------------

#: Operators that make a graph a quantised one (read by :class:`_QuantImporter`).
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm",
             "QLinearAdd", "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool")
#: Float operators between a DequantizeLinear and a QuantizeLinear that a QDQ graph may hold.
QDQ_FLOAT_OPS = ("Conv", "Gemm", "MatMul", "Add", "Concat", "Relu", "Clip", "LeakyRelu",
                 "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Squeeze",
                 "Identity", "Dropout", "Cast")
_MS_OPS = ("QGemm", "QLinearAdd", "QLinearConcat", "QLinearAveragePool",
           "QLinearGlobalAveragePool", "QLinearSoftmax")
_ACT_TYPES = {"uint8": -128, "int8": 0}  # what turns the activations' q and z into int8
_QMAX = 127


def is_quantised(proto) -> bool:
    """Whether an ONNX graph is an int8 model (QDQ or QOperator operators)."""
    return any(n.op_type in QUANT_OPS for n in proto.graph.node)


def split_multiplier(real: float) -> tuple[int, int]:
    """``(M0, n)`` for the output stage's ``M0 · 2**-(31 + n)``: the split that rounds once.

    gemmlowp's normalised split (:func:`golden.output_stage.quantize_multiplier`, ``M0`` in
    ``[2**30, 2**31)``) rounds twice, in the high multiply and in the shift by ``n``, and so
    differs from one rounding of ``acc·M`` (what onnxruntime's float requantisation does)
    whenever ``acc·M`` lies within ``2**-(n+1)`` of a half: about one output in ``2**n``
    (0.4 % at ``M ≈ 0.003``).  The same hardware takes any ``M0 < 2**31``; with ``n = 0``
    it rounds once, and ``M0 = round(M · 2**31)`` holds a float32 ``M ≥ 2**-8`` exactly
    (its 24-bit mantissa).  So the split with the smaller expected disagreement is chosen:
    ``n = 0`` (error ``≤ 64 / M0`` of an LSB where ``M0`` does not hold ``M`` exactly), or the
    normalised one (double-rounding window ``2**-n``) for tiny ``M`` (below ≈ 2**-13).
    """
    m0, n = quantize_multiplier(real)
    if m0 == 0:
        return m0, n
    direct = int(math.floor(real * 2.0 ** 31 + 0.5))
    if direct >= 1 << 31:
        return m0, n
    exact = direct == real * 2.0 ** 31
    cost_direct = 0.0 if exact else 64.0 / max(direct, 1)
    cost_normal = 2.0 ** -n if n else 0.0
    return (direct, 0) if cost_direct <= cost_normal else (m0, n)


def mlas_requantize(acc, scale) -> np.ndarray:
    """The float requantisation of int32 accumulators in onnxruntime (MLAS), before the zero point.

    ``float32(acc) · float32(scale)`` rounded to float32, then to the nearest integer with
    ties to even (``cvtps2dq``): the reference :func:`ort_multiplier` matches.
    """
    return np.rint(np.asarray(acc, np.int64).astype(np.float32) * np.float32(scale)).astype(
        np.int64)


def _fixed_round(a: np.ndarray, m0: int, n: int) -> np.ndarray:
    """The hardware's fixed-point rounding of accumulators ``a`` (before the zero point)."""
    t = (a * np.int64(m0) + (1 << 30)) >> 31
    return t if n == 0 else (t + (1 << (n - 1)) - (t < 0)) >> n


def ort_multiplier(real: float, amax: int) -> tuple[int, int]:
    """``(M0, n)`` that agrees with onnxruntime's float requantisation on the most accumulators.

    onnxruntime computes ``round_even(float32(acc · M))`` (:func:`mlas_requantize`); where the
    float32 product lands on a half the two roundings can differ, and no one fixed-point
    multiplier reproduces every such tie (they go to the even neighbour, up for one
    accumulator, down for another).  Among :func:`split_multiplier`'s split and the ``n = 0``
    multipliers ``round(M·2**31) ± 4``, the one with the fewest differences over the
    accumulators ``|acc| ≤ amax`` that can give an unsaturated output is kept, each
    difference weighted by ``1 / |acc|`` (accumulators near zero are the frequent ones, so a
    tie that cannot be matched is given up at the larger accumulator; ties: the nominal
    split).  Only accumulators within a few units of ``(j + ½) / M`` can differ, so only those
    are evaluated.
    """
    nominal = split_multiplier(real)
    if nominal[0] == 0:
        return nominal
    # Only accumulators whose acc·M lies near a half can round differently: around each
    # half h (|h| ≤ 130) the window the candidates' errors span, in accumulator units.
    reach = int(min(amax, 130.0 / real + 2))
    half = np.arange(-130, 130) + 0.5
    slack = (np.abs(half) * 2.0 ** -22 + (np.abs(half) / real * 8 + 4) * 2.0 ** -31
             + (2.0 ** -(nominal[1] + 1) if nominal[1] else 0.0)) / real
    width = int(math.ceil(float(slack.max()))) + 1
    near = (np.rint(half / real).astype(np.int64)[:, None]
            + np.arange(-width, width + 1, dtype=np.int64)[None, :]).reshape(-1)
    near = np.unique(near[(np.abs(near) <= reach) & (near != 0)])
    if not near.size:
        return nominal
    want = mlas_requantize(near, real)
    weight = 1.0 / np.maximum(np.abs(near), 1)

    def cost(m0, n):
        return float(np.sum(weight[_fixed_round(near, m0, n) != want]))

    best = (cost(*nominal), nominal)
    base = int(math.floor(real * 2.0 ** 31 + 0.5))
    for m0 in range(max(base - 4, 1), min(base + 5, 1 << 31)):
        c = cost(m0, 0)
        if c < best[0]:
            best = (c, (m0, 0))
    return best[1]


@dataclass
class _Real:
    """A float tensor of a quantised graph: ``clip(s·(q − z), lo, hi)`` of int8 tensor ``q``.

    ``lo``/``hi`` are real bounds (a ReLU, a ReLU6) not applied yet: they commute with max
    pooling and flattening and become a clamp at the next QuantizeLinear.
    """

    q: str
    lo: float | None = None
    hi: float | None = None


@dataclass
class _Pending:
    """A float result that the next QuantizeLinear turns into an int8 model node.

    ``kind``: ``product`` (``layer`` without its requantisation, ``acc_scale`` = s_a·s_w per
    output column), ``add``, ``concat`` or ``avgpool`` (``layer`` the pool) of the int8
    tensors ``inputs``; ``lo``/``hi`` real clamp bounds (a fused ReLU / ReLU6); ``post`` the
    max-pooling / flattening nodes met after it, applied to its int8 output.
    """

    kind: str
    node: object
    i: int
    inputs: list
    layer: object = None
    acc_scale: np.ndarray | None = None
    lo: float | None = None
    hi: float | None = None
    post: list = field(default_factory=list)


def _bounds(lo, hi, a, b):
    """Real bounds ``[lo, hi]`` narrowed by ``[a, b]`` (None: unbounded)."""
    lo = a if lo is None else (lo if a is None else max(lo, a))
    hi = b if hi is None else (hi if b is None else min(hi, b))
    return lo, hi


class _QuantImporter(_Importer):
    """An int8 graph (QDQ or QOperator, onnxruntime's ``quantize_static``) → fixed-point Model.

    Every int8 tensor is kept with its scale and zero point; uint8 tensors become int8
    exactly (``q − 128``, ``z − 128``).  A product node gets its weights as stored (int8,
    symmetric; uint8 weights with zero point 128 shifted), its integer bias with the input's
    zero point folded in (``b − z_a·Σ_k q_w[k, n]``), the input's zero point as its padding
    value, and the fixed-point requantisation of ``M = s_a·s_w / s_y`` per output column
    (float32, the order onnxruntime computes it; :func:`golden.output_stage.quantize_multiplier`)
    with the output zero point and the clamp of a fused ReLU / ReLU6.  Add, Concat, average
    pooling and a change of scale are host nodes with :class:`golden.network.Rescale`; max
    pooling and flattening keep the scale.
    """

    def __init__(self, proto, where: str, name: str | None):
        super().__init__(proto, where, name)
        self.qp: dict[str, tuple[float, int]] = {}  # int8 tensor → (scale, zero point)
        self.reals: dict[str, _Real] = {}
        self.pendings: dict[str, _Pending] = {}
        self.qweights: dict[str, tuple] = {}  # DequantizeLinear of a constant: (q, s, z, axis)
        self.node_qp: list[tuple[float, int]] = []
        self.input_qp: tuple[float, int] | None = None
        self.act_types: set[str] = set()
        self.per_channel = False
        self.formats: set[str] = set()
        self.synth = 0

    # -- bookkeeping -------------------------------------------------------------------------
    def qpush(self, layer, node, i: int, srcs: list[str], out: str, qp: tuple) -> str:
        """Append ``layer`` reading int8 tensors ``srcs``; its output ``out`` has ``qp``."""
        self.push(layer, node, i, [self.vals[x][0] for x in srcs], out)
        self.qp[out] = (float(qp[0]), int(qp[1]))
        self.node_qp.append(self.qp[out])
        return out

    def tmp(self, node) -> str:
        """A fresh internal tensor name (a node the graph has between its own tensors)."""
        self.synth += 1
        return f"{node.output[0]}#q{self.synth}"

    def is_const(self, name: str) -> bool:
        return name in self.consts or name in self.inits or name in self.qweights

    def scalar_param(self, node, i: int, k: int, what: str) -> np.ndarray | None:
        """Input ``k`` of ``node`` (a constant: a scale or a zero point), raw; None if absent."""
        name = node.input[k] if len(node.input) > k else ""
        if not name:
            return None
        arr = self.const(name, _label(node, i))
        if arr is None:
            raise ModelError(f"{_label(node, i)}: its {what} ({name!r}) must be a constant")
        return np.asarray(arr)

    def scale(self, node, i: int, k: int, what: str) -> np.ndarray:
        """A scale input as float32, checked: finite and positive."""
        s = self.scalar_param(node, i, k, f"{what} scale")
        if s is None:
            raise ModelError(f"{_label(node, i)}: its {what} scale is missing")
        s = s.astype(np.float32)
        bad = s[~(np.isfinite(s) & (s > 0))]
        if bad.size:
            raise ModelError(f"{_label(node, i)}: {what} scale {float(bad.reshape(-1)[0])!r} "
                             f"must be finite and positive")
        return s

    def act_qp(self, node, i: int, ks: int, kz: int, what: str) -> tuple[float, int]:
        """An activation's ``(scale, zero point)`` in the int8 domain (uint8 shifted)."""
        label = _label(node, i)
        s = self.scale(node, i, ks, what)
        z = self.scalar_param(node, i, kz, f"{what} zero point")
        if z is None:  # ONNX's default: uint8, zero point 0
            z = np.zeros((), np.uint8)
        if s.size != 1 or z.size != 1:
            raise ModelError(f"{label}: {what} quantised per axis; activations need one scale "
                             f"and zero point per tensor")
        kind = z.dtype.name
        if kind not in _ACT_TYPES:
            raise ModelError(f"{label}: {what} zero point {z.reshape(-1)[0]} of type {kind}; "
                             f"8-bit activations (uint8 or int8) are supported")
        zq = int(z.reshape(-1)[0]) + _ACT_TYPES[kind]
        if not -_QMAX - 1 <= zq <= _QMAX:
            raise ModelError(f"{label}: {what} zero point {int(z.reshape(-1)[0])} out of the "
                             f"{kind} range")
        self.act_types.add(kind)
        return float(s.reshape(-1)[0]), zq

    def weights(self, label: str, q, s, z, axis, out_axis: int, what: str = "weights"):
        """Int8 weights (int64) and their float32 scale, scalar or one per output column."""
        q = np.asarray(q)
        z = np.zeros((), q.dtype) if z is None else np.asarray(z)
        if q.dtype == np.uint8:
            if np.any(z.astype(np.int64) != 128):
                raise ModelError(f"{label}: uint8 {what} with zero point "
                                 f"{int(z.reshape(-1)[0])}; symmetric weights are supported "
                                 f"(int8 with zero point 0, or uint8 with 128): quantise with "
                                 f"weight_type=QInt8")
            qi = q.astype(np.int64) - 128
        elif q.dtype == np.int8:
            if np.any(z.astype(np.int64) != 0):
                bad = int(z.reshape(-1)[np.flatnonzero(z.reshape(-1))[0]])
                raise ModelError(f"{label}: int8 {what} with zero point {bad}; symmetric "
                                 f"weights (zero point 0) are supported")
            qi = q.astype(np.int64)
        else:
            raise ModelError(f"{label}: {what} of type {q.dtype.name}; int8 weights (or uint8 "
                             f"with zero point 128) are supported")
        s = np.asarray(s, np.float32)
        if s.size > 1:
            ax = (axis if axis is not None else 1) % q.ndim
            if ax != out_axis % q.ndim or s.size != q.shape[ax]:
                raise ModelError(f"{label}: {what} scales along axis {ax} ({s.size} values); "
                                 f"per-channel scales must follow the output channels "
                                 f"(axis {out_axis % q.ndim})")
            self.per_channel = True
        return qi, s.reshape(-1) if s.size > 1 else s.reshape(())

    def real(self, x: str, node, i: int) -> _Real:
        """The float tensor ``x`` as a dequantised int8 tensor, or ModelError."""
        if x in self.reals:
            return self.reals[x]
        label = _label(node, i)
        if x == self.x_name:
            raise ModelError(f"{label}: reads the float input directly; a quantised graph "
                             f"starts with QuantizeLinear")
        if x in self.pendings:
            p = self.pendings[x]
            raise ModelError(f"{label}: reads the float output of {_label(p.node, p.i)} "
                             f"before a QuantizeLinear; every quantised operator's output must "
                             f"be quantised (quantise the whole graph)")
        if x in self.qp:
            raise ModelError(f"{label}: a float operator on int8 data ({x!r}); put "
                             f"DequantizeLinear before it")
        raise ModelError(f"{label}: reads {x!r}, computed in float outside the quantised graph; "
                         f"quantise every operator (op_types_to_quantize) or give the float "
                         f"model")

    def qbound(self, v: float | None, s: float, z: int) -> int | None:
        """A real clamp bound on the int8 grid of ``(s, z)`` (float32, ties to even)."""
        if v is None:
            return None
        q = int(np.rint(np.float32(v) / np.float32(s))) + z
        return int(min(max(q, -_QMAX - 1), _QMAX))

    def plain(self, r: _Real, node, i: int) -> str:
        """The int8 tensor of ``r`` with its pending clamp applied (a host Clip if any)."""
        if r.lo is None and r.hi is None:
            return r.q
        s, z = self.qp[r.q]
        clip = Clip(lo=r.lo, hi=r.hi, qlo=self.qbound(r.lo, s, z), qhi=self.qbound(r.hi, s, z),
                    name=self.fresh("clip", node))
        return self.qpush(clip, node, i, [r.q], self.tmp(node), (s, z))

    # -- the nodes ---------------------------------------------------------------------------
    def node(self, node, i: int) -> None:
        """Turn ONNX node ``i`` of a quantised graph into model nodes (or pending state)."""
        op = node.op_type
        a = _attrs(node)
        label = _label(node, i)
        if node.domain not in ("", "ai.onnx", "com.microsoft"):
            raise ModelError(f"{label}: operator of domain {node.domain!r} is not supported")
        if node.domain == "com.microsoft" and op not in _MS_OPS:
            raise ModelError(f"{label}: com.microsoft operator not supported; supported: "
                             f"{', '.join(_MS_OPS)}")
        if op == "Constant":
            self.consts[node.output[0]] = self.constant_node(node, i, a)
            return
        if op == "DequantizeLinear":
            return self.dequantize(node, i, a)
        if op == "QuantizeLinear":
            return self.quantize(node, i)
        data = [x for x in node.input if x and not self.is_const(x)]
        if not data:
            if op in ("Shape",):
                raise ModelError(f"{label}: Shape of a constant")
            self.fold_constant(node, i)
            return
        out = node.output[0]
        handler = {"QLinearConv": self.qlinear_conv, "QLinearMatMul": self.qlinear_matmul,
                   "QGemm": self.qgemm, "QLinearAdd": self.qlinear_add,
                   "QLinearConcat": self.qlinear_concat,
                   "QLinearAveragePool": self.qlinear_pool,
                   "QLinearGlobalAveragePool": self.qlinear_pool}.get(op)
        if handler is not None:
            self.formats.add("QOperator")
            return handler(node, i, a)
        x = data[0]
        if x in self.qp and op in ("MaxPool", "Flatten", "Reshape", "Squeeze", "Identity",
                                   "Dropout"):
            # QOperator: data movement on int8 tensors keeps their scale
            return self.move(node, i, a, x, out, None)
        if op not in QDQ_FLOAT_OPS:
            hint = {"BatchNormalization": "; run onnxruntime.quantization's quant_pre_process "
                                          "before quantize_static: it folds BatchNormalization "
                                          "into the convolution"}.get(op, "")
            raise ModelError(f"{label}: unsupported operator in a quantised graph; supported: "
                             f"{', '.join(QUANT_OPS + QDQ_FLOAT_OPS)}{hint}")
        if op in ("Relu", "Clip", "LeakyRelu"):
            return self.clamp(node, i, a, x, out)
        if op == "Cast" and a.get("to") not in _FLOAT_TYPES:
            raise ModelError(f"{label}: a Cast to a non-float type is not a no-op")
        if op in ("Identity", "Dropout", "Cast"):
            if x in self.pendings:
                self.pendings[out] = self.pendings[x]
            else:
                self.reals[out] = self.real(x, node, i)
            return
        if x in self.pendings and op in ("MaxPool", "Flatten", "Reshape", "Squeeze"):
            # data movement after a float result: done on its int8 output once quantised
            # (max and flattening commute with the monotone requantisation)
            p = self.pendings[x]
            self.pendings[out] = dataclasses.replace(p, post=[*p.post, (node, i, a)])
            return
        r = self.real(x, node, i)
        if op in ("MaxPool", "Flatten", "Reshape", "Squeeze"):
            return self.move(node, i, a, r.q, out, r)
        if op in ("AveragePool", "GlobalAveragePool"):
            q = self.plain(r, node, i)
            layer = self.pool(node, i, a, self.vals[q][1], op)
            self.pendings[out] = _Pending("avgpool", node, i, [q], layer=layer)
        elif op == "Add":
            if len(data) != 2:
                raise ModelError(f"{label}: Add of a constant to quantised data is not "
                                 f"supported (a bias belongs to the Gemm/Conv before it)")
            qs = [self.plain(self.real(d, node, i), node, i) for d in data]
            self.pendings[out] = _Pending("add", node, i, qs)
        elif op == "Concat":
            self.check_concat(node, i, a, data, self.vals[r.q][1])
            qs = [self.plain(self.real(d, node, i), node, i) for d in data]
            self.pendings[out] = _Pending("concat", node, i, qs)
        else:  # Conv, Gemm, MatMul
            self.formats.add("QDQ")
            q = self.plain(r, node, i)
            self.pendings[out] = self.qdq_product(node, i, a, q)

    def check_concat(self, node, i, a, data, shape) -> None:
        axis = a.get("axis", 1)
        rank = 4 if len(shape) == 3 else 2
        if axis not in (1, 1 - rank):
            raise ModelError(f"{_label(node, i)}: only a Concat on the channel axis (1) is "
                             f"supported, not axis {axis}")

    def move(self, node, i: int, a: dict, q: str, out: str, r: _Real | None) -> None:
        """MaxPool / Flatten of int8 tensor ``q`` (scale kept); a float view if ``r``."""
        qp = self.qp[q]
        dst = out if r is None else self.tmp(node)
        op = node.op_type
        if op == "MaxPool":
            self.qpush(self.pool(node, i, a, self.vals[q][1], op), node, i, [q], dst, qp)
        elif op in ("Identity", "Dropout"):
            self.vals[dst], self.qp[dst] = self.vals[q], qp
        else:
            n = len(self.layers)
            self.flatten(node, i, a, q, dst)
            self.qp[dst] = qp
            if len(self.layers) > n:
                self.node_qp.append(qp)
        if r is not None:
            self.reals[out] = _Real(dst, r.lo, r.hi)

    def clamp(self, node, i: int, a: dict, x: str, out: str) -> None:
        """Relu / Clip (ReLU6) / LeakyRelu(0) on a float tensor: bounds for the next Q."""
        label = _label(node, i)
        if node.op_type == "Clip":
            lo, hi = self.optional_scalar(node, i, 1), self.optional_scalar(node, i, 2)
        elif node.op_type == "LeakyRelu" and a.get("alpha", 0.01) != 0.0:
            raise ModelError(f"{label}: LeakyRelu with alpha = {a.get('alpha', 0.01):g} does "
                             f"not fit the output stage (a clamp); retrain with Relu")
        else:
            lo, hi = 0.0, None
        if x in self.pendings:
            p = self.pendings[x]
            if p.kind in ("concat",):
                raise ModelError(f"{label}: a clamp after {p.kind} before its QuantizeLinear "
                                 f"is not supported")
            self.pendings[out] = dataclasses.replace(p, lo=_bounds(p.lo, p.hi, lo, hi)[0],
                                                     hi=_bounds(p.lo, p.hi, lo, hi)[1])
            return
        r = self.real(x, node, i)
        nlo, nhi = _bounds(r.lo, r.hi, lo, hi)
        self.reals[out] = _Real(r.q, nlo, nhi)

    def dequantize(self, node, i: int, a: dict) -> None:
        label = _label(node, i)
        x, out = node.input[0], node.output[0]
        if x in self.inits or x in self.consts:
            q = self.const(x, label)
            s = self.scale(node, i, 1, "weight")
            z = self.scalar_param(node, i, 2, "zero point")
            self.qweights[out] = (np.asarray(q), s, z, a.get("axis", 1))
            return
        if x not in self.qp:
            raise ModelError(f"{label}: dequantises {x!r}, which is not a quantised tensor")
        s, z = self.act_qp(node, i, 1, 2, "input")
        if (np.float32(s), z) != (np.float32(self.qp[x][0]), self.qp[x][1]):
            raise ModelError(f"{label}: dequantises {x!r} with scale {s:g} and zero point {z}, "
                             f"not those it was quantised with ({self.qp[x][0]:g}, "
                             f"{self.qp[x][1]})")
        self.reals[out] = _Real(x)

    def quantize(self, node, i: int) -> None:
        label = _label(node, i)
        x, out = node.input[0], node.output[0]
        s, z = self.act_qp(node, i, 1, 2, "output")
        if x == self.x_name:
            if self.input_qp is not None and self.input_qp != (s, z):
                raise ModelError(f"{label}: the input is quantised twice, with different "
                                 f"scales")
            self.input_qp = (s, z)
            self.vals[out], self.qp[out] = (-1, self.input_shape), (s, z)
            return
        if x in self.pendings:
            return self.finish(self.pendings[x], out, (s, z))
        r = self.real(x, node, i)
        sq, zq = self.qp[r.q]
        lo, hi = self.qbound(r.lo, s, z), self.qbound(r.hi, s, z)
        if (np.float32(sq), zq) == (np.float32(s), z):
            if lo is None and hi is None:
                self.vals[out], self.qp[out] = self.vals[r.q], self.qp[r.q]
                return
            clip = Clip(lo=r.lo, hi=r.hi, qlo=lo, qhi=hi, name=self.fresh("clip", node))
            self.qpush(clip, node, i, [r.q], out, (s, z))
            return
        resc = Rescale.of([np.float32(sq) / np.float32(s)], [zq], z, lo, hi)
        self.qpush(Requantize(resc, name=self.fresh("requantize", node)), node, i, [r.q], out,
                   (s, z))

    # -- products ----------------------------------------------------------------------------
    def product_layer(self, node, i: int, a: dict, x: str, w, ws, bias, kind: str):
        """The product node (weights int8, bias folded, padding z_a) and its acc scale."""
        label = _label(node, i)
        s_a, z_a = self.qp[x]
        shape = self.vals[x][1]
        if kind == "conv":
            if w.ndim != 4 or len(shape) != 3:
                raise ModelError(f"{label}: only 2-D convolutions of an N×C×H×W tensor are "
                                 f"supported")
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise ModelError(f"{label}: dilated convolution is not supported")
            group = a.get("group", 1)
            kh, kw = w.shape[2:]
            stride = tuple(a.get("strides", [1, 1]))
            pads = _pads(node, i, a, shape, (kh, kw), stride)
            if group == 1:
                layer = Conv2D(weights=w.transpose(2, 3, 1, 0), bias=np.zeros(w.shape[0]),
                               stride=stride, padding=pads, pad_value=z_a,
                               name=self.fresh("conv", node))
            elif group == shape[2] and w.shape[0] == group and w.shape[1] == 1:
                layer = DepthwiseConv2D(weights=w[:, 0].transpose(1, 2, 0),
                                        bias=np.zeros(w.shape[0]), stride=stride, padding=pads,
                                        pad_value=z_a, name=self.fresh("dwconv", node))
            else:
                raise ModelError(f"{label}: grouped convolution (group = {group}) is not "
                                 f"supported: only group = 1 or depthwise")
        else:
            if len(shape) != 1:
                raise ModelError(f"{label}: reads a tensor of shape {shape} (per image); add a "
                                 f"Flatten before it")
            if w.ndim != 2 or w.shape[0] != shape[0]:
                raise ModelError(f"{label}: weights of shape {list(w.shape)} for {shape[0]} "
                                 f"inputs")
            layer = Dense(weights=w, bias=np.zeros(w.shape[1]), name=self.fresh("fc", node))
        B = layer.matrix.astype(np.int64)
        n_out = B.shape[1]
        acc_scale = np.float32(s_a) * np.broadcast_to(ws, (n_out,)).astype(np.float32)
        b = np.zeros(n_out, np.int64) if bias is None else bias
        if b.shape != (n_out,):
            raise ModelError(f"{label}: bias of {b.size} values for {n_out} outputs")
        # the input's zero point folded into the bias: Σ (q_a − z_a)·q_w = Σ q_a·q_w − z_a·Σ q_w
        folded = b - z_a * B.sum(axis=0)
        worst = np.abs(B).sum(axis=0) * 128 + np.abs(folded)
        if worst.max(initial=0) > (1 << 31) - 1:
            raise ModelError(f"{label}: the accumulator could reach {int(worst.max())}, "
                             f"beyond 32 signed bits (int32, as onnxruntime's); reduce the "
                             f"layer's reduction length or its weights' range")
        layer = dataclasses.replace(layer, weights=layer.weights.astype(np.int64),
                                    bias=folded.astype(np.int64))
        return layer, acc_scale

    def bias(self, node, i: int, k: int, acc_scale_fn):
        """A product's integer bias (at the accumulator's scale), or None without one."""
        name = node.input[k] if len(node.input) > k else ""
        if not name:
            return None
        label = _label(node, i)
        if name in self.qweights:
            q, s, z, _ = self.qweights[name]
            if q.dtype != np.int32 or (z is not None and np.any(z != 0)):
                raise ModelError(f"{label}: bias of type {q.dtype.name} with zero point; int32 "
                                 f"with zero point 0 expected")
            acc = acc_scale_fn()
            qb = q.reshape(-1).astype(np.int64)
            s = np.broadcast_to(np.asarray(s, np.float32), qb.shape)
            if np.allclose(s, acc, rtol=1e-6, atol=0):
                return qb
            return np.rint(qb * (s.astype(np.float64) / acc)).astype(np.int64)
        arr = self.const(name, label)
        if arr is None:
            raise ModelError(f"{label}: its bias must be a constant")
        arr = np.asarray(arr).reshape(-1)
        if arr.dtype.kind in "iu":  # QOperator: int32 at the accumulator's scale
            return arr.astype(np.int64)
        return np.rint(arr.astype(np.float64) / acc_scale_fn()).astype(np.int64)

    def qdq_product(self, node, i: int, a: dict, x: str) -> _Pending:
        """A float Conv / Gemm / MatMul between DequantizeLinear and QuantizeLinear."""
        label = _label(node, i)
        op = node.op_type
        wname = node.input[1] if len(node.input) > 1 else ""
        if wname not in self.qweights:
            raise ModelError(f"{label}: its weights ({wname!r}) are not quantised "
                             f"(DequantizeLinear of an int8 constant expected)")
        q, s, z, axis = self.qweights[wname]
        s_a = self.qp[x][0]
        if op == "Conv":
            w, ws = self.weights(label, q, s, z, axis, 0)
            kind = "conv"
        elif op == "Gemm":
            if a.get("transA", 0):
                raise ModelError(f"{label}: transA = 1 is not supported")
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise ModelError(f"{label}: alpha/beta other than 1 in a quantised Gemm")
            tb = a.get("transB", 0)
            w, ws = self.weights(label, q, s, z, axis, 0 if tb else 1)
            w = w.T if tb else w
            kind = "dense"
        else:
            w, ws = self.weights(label, q, s, z, axis, 1)
            kind = "dense"
        n_out = w.shape[0] if kind == "conv" else w.shape[-1]

        def acc_scale():
            return (np.float32(s_a) * np.broadcast_to(ws, (n_out,)).astype(np.float32)
                    ).astype(np.float64)

        b = self.bias(node, i, 2, acc_scale) if op != "MatMul" else None
        layer, accs = self.product_layer(node, i, a, x, w, ws, b, kind)
        return _Pending("product", node, i, [x], layer=layer, acc_scale=accs)

    def finish(self, p: _Pending, out: str, qp: tuple) -> None:
        """Quantise pending result ``p`` at ``qp``: push its model node, output ``out``."""
        if p.post:
            mid = self.tmp(p.node)
            self.finish(dataclasses.replace(p, post=[]), mid, qp)
            for k, (node, i, a) in enumerate(p.post):
                nxt = out if k == len(p.post) - 1 else self.tmp(node)
                self.move(node, i, a, mid, nxt, None)
                mid = nxt
            return
        s_y, z_y = qp
        label = _label(p.node, p.i)
        lo, hi = self.qbound(p.lo, s_y, z_y), self.qbound(p.hi, s_y, z_y)
        if p.kind == "product":
            layer = p.layer
            M = np.atleast_1d(p.acc_scale.astype(np.float32) / np.float32(s_y))
            reach = (np.abs(layer.matrix).sum(axis=0) * 128 + np.abs(layer.bias)).astype(
                np.int64)
            chosen = {}  # one search per distinct multiplier, over its columns' reach
            for m in np.unique(M):
                if not (math.isfinite(float(m)) and 0 < float(m) < 1):
                    raise ModelError(f"{label}: requantisation multiplier s_a·s_w/s_y = "
                                     f"{float(m):g} is not below 1; the output stage only "
                                     f"shifts right (scale the output larger)")
                try:
                    chosen[float(m)] = ort_multiplier(float(m), int(reach[m == M].max()))
                except ValueError as exc:
                    raise ModelError(f"{label}: {exc}") from None
            pairs = [chosen[float(m)] for m in M]
            m0 = np.array([p_[0] for p_ in pairs], np.int64)
            n = np.array([p_[1] for p_ in pairs], np.int64)
            if np.all(m0 == m0[0]) and np.all(n == n[0]):
                m0, n = int(m0[0]), int(n[0])
            rq = Requant(shift=n, multiplier=m0, zero_point=z_y, lo=lo, hi=hi)
            layer = dataclasses.replace(layer, requant=rq,
                                        relu=p.lo is not None and p.lo >= 0)
            self.qpush(layer, p.node, p.i, p.inputs, out, qp)
            return
        ins = [self.qp[q] for q in p.inputs]
        ratios = [np.float32(s) / np.float32(s_y) for s, _ in ins]
        resc = Rescale.of(ratios, [z for _, z in ins], z_y, lo, hi)
        if p.kind == "add":
            layer = Add(rescale=resc, name=self.fresh("add", p.node))
        elif p.kind == "concat":
            layer = Concat(rescale=resc, name=self.fresh("concat", p.node))
        else:
            layer = dataclasses.replace(p.layer, rescale=resc)
        self.qpush(layer, p.node, p.i, p.inputs, out, qp)

    # -- QOperator ---------------------------------------------------------------------------
    def qin(self, node, i: int, k: int) -> str:
        """Input ``k`` of a QLinear operator: an int8 tensor with the scale it states."""
        x = node.input[k]
        if x not in self.qp:
            if x in self.reals or x in self.pendings or x == self.x_name:
                raise ModelError(f"{_label(node, i)}: reads {x!r}, a float tensor; a QLinear "
                                 f"operator reads int8 tensors")
            raise ModelError(f"{_label(node, i)}: reads {x!r}, which is not a quantised tensor")
        s, z = self.act_qp(node, i, k + 1, k + 2, "input")
        if (np.float32(s), z) != (np.float32(self.qp[x][0]), self.qp[x][1]):
            raise ModelError(f"{_label(node, i)}: reads {x!r} with scale {s:g} and zero point "
                             f"{z}, not those it was quantised with")
        return x

    def qweight(self, node, i: int, k: int, out_axis: int):
        label = _label(node, i)
        q = self.scalar_param(node, i, k, "weights")
        if q is None:
            raise ModelError(f"{label}: its weights must be a constant")
        s = self.scale(node, i, k + 1, "weight")
        z = self.scalar_param(node, i, k + 2, "weight zero point")
        return self.weights(label, q, s, z, out_axis, out_axis)

    def qlinear_product(self, node, i, a, x, w, ws, kind, bias_k, out_k) -> None:
        s_a = self.qp[x][0]
        n_out = w.shape[0] if kind == "conv" else w.shape[-1]

        def acc_scale():
            return (np.float32(s_a) * np.broadcast_to(ws, (n_out,)).astype(np.float32)
                    ).astype(np.float64)

        b = self.bias(node, i, bias_k, acc_scale) if bias_k is not None else None
        layer, accs = self.product_layer(node, i, a, x, w, ws, b, kind)
        qp = self.act_qp(node, i, out_k, out_k + 1, "output")
        self.finish(_Pending("product", node, i, [x], layer=layer, acc_scale=accs),
                    node.output[0], qp)

    def qlinear_conv(self, node, i, a) -> None:
        x = self.qin(node, i, 0)
        w, ws = self.qweight(node, i, 3, 0)
        self.qlinear_product(node, i, a, x, w, ws, "conv", 8, 6)

    def qlinear_matmul(self, node, i, a) -> None:
        x = self.qin(node, i, 0)
        w, ws = self.qweight(node, i, 3, 1)
        self.qlinear_product(node, i, a, x, w, ws, "dense", None, 6)

    def qgemm(self, node, i, a) -> None:
        label = _label(node, i)
        if a.get("transA", 0):
            raise ModelError(f"{label}: transA = 1 is not supported")
        if a.get("alpha", 1.0) != 1.0:
            raise ModelError(f"{label}: alpha other than 1 in a quantised Gemm")
        if len(node.input) < 8 or not node.input[7]:
            raise ModelError(f"{label}: a QGemm with a float output (no y_scale) is not "
                             f"supported; quantise its output")
        x = self.qin(node, i, 0)
        tb = a.get("transB", 0)
        w, ws = self.qweight(node, i, 3, 0 if tb else 1)
        self.qlinear_product(node, i, a, x, w.T if tb else w, ws, "dense", 6, 7)

    def qlinear_add(self, node, i, a) -> None:
        xs = [self.qin(node, i, 0), self.qin(node, i, 3)]
        qp = self.act_qp(node, i, 6, 7, "output")
        self.finish(_Pending("add", node, i, xs), node.output[0], qp)

    def qlinear_concat(self, node, i, a) -> None:
        qp = self.act_qp(node, i, 0, 1, "output")
        xs = [self.qin(node, i, k) for k in range(2, len(node.input), 3)]
        self.check_concat(node, i, a, [], self.vals[xs[0]][1])
        self.finish(_Pending("concat", node, i, xs), node.output[0], qp)

    def qlinear_pool(self, node, i, a) -> None:
        if a.get("channels_last", 0):
            raise ModelError(f"{_label(node, i)}: channels_last = 1 is not supported (NCHW "
                             f"tensors expected)")
        x = self.qin(node, i, 0)
        op = "GlobalAveragePool" if node.op_type == "QLinearGlobalAveragePool" else "AveragePool"
        layer = self.pool(node, i, a, self.vals[x][1], op)
        qp = self.act_qp(node, i, 3, 4, "output")
        self.finish(_Pending("avgpool", node, i, [x], layer=layer), node.output[0], qp)

    # -- the model ---------------------------------------------------------------------------
    def build(self) -> Model:
        """The fixed-point :class:`Model` of the quantised graph."""
        opset = self.opset()
        logits, layout, head = self.walk()
        if self.input_qp is None:
            raise ModelError(f"{self.where}: the input is never quantised (no QuantizeLinear "
                             f"of {self.x_name!r})")
        if logits in self.pendings:
            p = self.pendings[logits]
            raise ModelError(f"{self.where}: the logits are the float output of "
                             f"{_label(p.node, p.i)}; quantise them (QuantizeLinear)")
        if logits in self.reals:
            r = self.reals[logits]
            last = self.g.node[self.producer[logits]]
            logits = self.plain(r, last, self.producer[logits])
        if logits not in self.qp:
            raise ModelError(f"{self.where}: the logits {logits!r} are not a quantised tensor")
        k, shape = self.logits_node(logits)
        info = self.info(opset, head)
        info["quantisation"] = {
            "format": " + ".join(sorted(self.formats)) or "QDQ",
            "activations": ", ".join(sorted(self.act_types)),
            "weights": "per channel" if self.per_channel else "per tensor",
            "rule": "scales as given: fixed-point multiplier M0·2**-(31+n) per layer (per "
                    "output channel with per-channel weights), zero points folded into the "
                    "bias"}
        return Model(layers=tuple(self.layers), input_shape=self.input_shape,
                     classes=int(shape[0]), name=self.name, input_layout=layout, info=info,
                     a_bits=8, w_bits=8, input_scale=self.input_qp[0],
                     input_zero_point=self.input_qp[1], scales=tuple(self.node_qp))


def load_onnx(source, *, name: str | None = None) -> Model:
    """The float :class:`Model` of an ONNX file (path, bytes or ``ModelProto``).

    Raises ModelError (one line naming the node, initializer or file) for anything the module
    docstring does not list.
    """
    proto, where = _read(source, name)
    cls = _QuantImporter if is_quantised(proto) else _Importer
    return cls(proto, where, name).build()


def _stem(where: str) -> str:
    base = where.replace("\\", "/").rsplit("/", 1)[-1]
    return base[:-5] if base.endswith(".onnx") else base


def _pads(node, i, a, shape, kernel, stride) -> tuple:
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID"):
        p = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        if len(p) != 4 or min(p) < 0:
            raise ModelError(f"{_label(node, i)}: pads must be 4 non-negative values")
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


def to_onnx(model: Model, *, opset: int = 17):
    """A float model as an ONNX ``ModelProto`` (NCHW input for images).

    Graphs too: every node becomes the operator :func:`load_onnx` reads back.  A native HWC
    :class:`Flatten` is written as ONNX's (CHW) Flatten with the rows of the dense layers that
    read it permuted to match.
    """
    onnx, numpy_helper = _onnx()
    from onnx import TensorProto, helper

    if model.quantized:
        raise ModelError(f"model {model.name} is quantised; export the float model")
    nodes, inits = [], []
    shapes = model.shapes()
    shape = tuple(model.input_shape)
    in_dims = ["N", shape[2], shape[0], shape[1]] if len(shape) == 3 else ["N", shape[0]]
    perm_rows: dict[int, np.ndarray] = {}

    def init(name, arr, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))
        return name

    def tname(j: int) -> str:
        return "input" if j == -1 else f"t{j}"

    for k, layer in enumerate(model.layers):
        srcs = model.sources(k)
        ins = [tname(j) for j in srcs]
        cur, out = ins[0], f"t{k}"
        in_shape = tuple(model.input_shape) if srcs[0] == -1 else shapes[srcs[0]]
        if getattr(layer, "relu", False):
            out = f"t{k}_pre"
        if isinstance(layer, Conv2D):
            w = init(f"w{k}", layer.weights.transpose(3, 2, 0, 1))
            t, left, bot, r = layer.padding
            nodes.append(helper.make_node("Conv", [cur, w, init(f"b{k}", layer.bias)], [out],
                                          name=f"conv{k}",
                                          kernel_shape=list(layer.weights.shape[:2]),
                                          strides=list(layer.stride), pads=[t, left, bot, r]))
        elif isinstance(layer, DepthwiseConv2D):
            w = init(f"w{k}", layer.weights.transpose(2, 0, 1)[:, None])
            t, left, bot, r = layer.padding
            nodes.append(helper.make_node("Conv", [cur, w, init(f"b{k}", layer.bias)], [out],
                                          name=f"dwconv{k}", group=layer.weights.shape[2],
                                          kernel_shape=list(layer.weights.shape[:2]),
                                          strides=list(layer.stride), pads=[t, left, bot, r]))
        elif isinstance(layer, Dense):
            W = layer.weights
            if srcs[0] in perm_rows:
                W = W[perm_rows[srcs[0]]]
            nodes.append(helper.make_node("Gemm", [cur, init(f"w{k}", W),
                                                   init(f"b{k}", layer.bias)], [out],
                                          name=f"gemm{k}"))
        elif isinstance(layer, MaxPool | AvgPool):
            op = "MaxPool" if isinstance(layer, MaxPool) else "AveragePool"
            extra = {"count_include_pad": int(layer.count_pad)} if op == "AveragePool" else {}
            t, left, bot, r = layer.padding
            nodes.append(helper.make_node(op, [cur], [out], name=f"pool{k}",
                                          kernel_shape=list(layer.size),
                                          strides=list(layer.stride), pads=[t, left, bot, r],
                                          **extra))
        elif isinstance(layer, Flatten):
            if len(in_shape) == 3 and layer.order == "hwc":
                h, w_, c = in_shape
                # ONNX flattens (c, y, x); the next dense layer expects (y, x, c) rows.
                # Row i of the exported weights (i in (c, y, x) order) is the native row of
                # the same pixel and channel.
                perm_rows[k] = np.arange(h * w_ * c).reshape(h, w_, c).transpose(2, 0, 1).ravel()
            nodes.append(helper.make_node("Flatten", [cur], [out], name=f"flatten{k}", axis=1))
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [cur], [out], name=f"relu{k}"))
        elif isinstance(layer, Clip):
            bounds = [init(f"lo{k}", layer.lo if layer.lo is not None else -np.inf),
                      init(f"hi{k}", layer.hi if layer.hi is not None else np.inf)]
            nodes.append(helper.make_node("Clip", [cur, *bounds], [f"t{k}"], name=f"clip{k}"))
        elif isinstance(layer, Add):
            node_ins = ins
            for m, extra_in in enumerate(ins[2:]):
                nodes.append(helper.make_node("Add", node_ins[:2], [f"t{k}_s{m}"],
                                              name=f"add{k}_{m}"))
                node_ins = [f"t{k}_s{m}", extra_in]
            nodes.append(helper.make_node("Add", node_ins[:2], [out], name=f"add{k}"))
        elif isinstance(layer, Concat):
            nodes.append(helper.make_node("Concat", ins, [out], name=f"concat{k}", axis=1))
        if getattr(layer, "relu", False):
            nodes.append(helper.make_node("Relu", [out], [f"t{k}"], name=f"relu{k}"))
    last = f"t{len(model.layers) - 1}"
    nodes.append(helper.make_node("Identity", [last], ["logits"], name="output"))
    graph = helper.make_graph(
        nodes, model.name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", model.classes])],
        initializer=inits)
    proto = helper.make_model(graph, producer_name="ftaccel",
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto)
    return proto

