"""Quantised DNN models and the network runner (issue 14; SPEC §10).

A :class:`Model` is a list of layers: :class:`Dense`, :class:`Conv2D` (lowered to a product by
im2col), :class:`MaxPool`, :class:`AvgPool`, :class:`Flatten` and a stand-alone :class:`ReLU`.
The same classes hold a *float* model (float weights, as trained or imported) and a
*quantised* one (integer weights, per-layer requantisation shifts), see :func:`quantize`.

**Tensor layout.**  Activations are ``[batch, H, W, C]`` (channels last) or ``[batch, F]``.
A convolution is lowered by im2col with the *same pixel of neighbouring channels adjacent*
(000 L1596, SPEC §1): row ``(b, y, x)`` of ``A`` holds the patch at output pixel ``(y, x)``
and column ``k = (dy · kw + dx) · C_in + c`` its pixel ``(dy, dx)`` of channel ``c``, so a
streamed vector chunk (WS) holds neighbouring channels of one pixel, the order the median
filter and anomaly suppression want.  ``B[k, o]`` is filter ``o``'s weight at the same
position; the product ``A @ B`` is ``[batch·H_out·W_out, C_out]``, reshaped back to NHWC.

**Numbers** (000 L1769; SPEC §10).  Every tensor has a power-of-two scale: the integer ``q``
stands for ``q / 2**frac``.  Weights: ``frac_w = floor(log2((2**(w−1) − 1) / max|W|))`` per
layer; inputs: the same rule on the calibration images.  A product layer accumulates at
``frac_a + frac_w`` in full width; its bias is quantised at that scale (it enters the
accumulator or the output stage); the output stage then computes
``q = sat(round_half_up(relu(acc + bias) / 2**shift))`` exactly as
:func:`golden.output_stage.output_stage` (the same function is called), giving
``frac_out = frac_a + frac_w − shift``.  **Calibration** (:func:`quantize`) picks each layer's
shift on training images, layer by layer on the already-quantised path: among the output
scales around the one that just holds the largest float activation, the one whose dequantised
output is closest (mean squared error) to the float network's.  Pooling works on integers:
max exactly; average as a sum, then the output stage's rounding shift by log2(area) (power-of-two
windows) or, for other windows, multiplication by ``round(2**16 / area)`` and a rounding shift
by 16, saturated to the activation width.

**The runner** (:func:`run`) chains the layers; every product goes through one call,
``engine.product(Product)``: :class:`FunctionalEngine` (``golden``: exact, vectorised over the
batch, :func:`golden.array.matmul` with its overflow check, the input units and bypass in
closed form) and :class:`CycleEngine` (``cycle``: :func:`golden.schedule.build_program` +
:func:`golden.accelerator.simulate`); ``tb.accelerator.RTLEngine`` runs the same programs on the
RTL.  Per layer, :class:`LayerOptions` carries what the fault-campaign, critical-neuron and
scheduling work hooks in: a :class:`golden.faults.Fault`, the units' run-time options
(``afd``, ``median_enable``, ``bypass_map``, ``temporal_batch``, ``split``, ``lcu_pairs``)
and a *neuron permutation* (array column ``j`` computes neuron ``perm[j]``; the product is
un-permuted after, so with no fault the result is bit-identical).  :func:`run` can also start
at a layer from recorded activations and record every layer's output, so a fault model can
recompute only from the faulty layer on.

**File format** (:meth:`Model.save`, :meth:`Model.load`): one ``.npz``; array ``__meta__``
holds UTF-8 JSON (``format = "ftaccel-network"``, ``version``, the model's fields and one entry
per layer), arrays ``L<i>.weights`` / ``L<i>.bias`` the parameters.  A file of a newer
version is refused.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ftaccel.enums import Dataflow

from . import units as golden_units
from .accelerator import simulate
from .array import cycle_count, matmul
from .bypass import pruned_matmul
from .faults import Fault
from .output_stage import MAX_SHIFT, output_stage, requantize
from .schedule import build_program, program_result
from .units import units_matrix

__all__ = ["Dense", "Conv2D", "MaxPool", "AvgPool", "Flatten", "ReLU", "Model", "ModelError",
           "FORMAT", "VERSION", "quantize", "im2col", "LayerOptions", "Product",
           "ProductResult", "LayerStats", "Inference", "FunctionalEngine", "CycleEngine",
           "run", "check_fit", "product_layers", "describe", "units_matrix"]

FORMAT = "ftaccel-network"
VERSION = 1


class ModelError(ValueError):
    """A model that cannot be used as asked.

    Malformed file, unsupported layer, a layer that does not fit the configuration. The message
    names the layer.
    """


# -- layers ------------------------------------------------------------------------------------

def _pair(v, what: str) -> tuple[int, int]:
    t = (int(v), int(v)) if np.isscalar(v) else tuple(int(x) for x in v)
    if len(t) != 2 or min(t) < 1:
        raise ModelError(f"{what} must be one or two positive integers, not {v!r}")
    return t


@dataclass(frozen=True, eq=False)
class Dense:
    """Fully connected: ``y = x @ weights + bias`` (``weights`` is K×N: inputs × neurons)."""

    weights: np.ndarray
    bias: np.ndarray
    relu: bool = False
    shift: int = 0
    name: str = ""
    kind = "dense"

    def lower(self, x: np.ndarray) -> np.ndarray:
        """The input as a ``[b, K]`` matrix."""
        return x.reshape(len(x), -1)

    @property
    def matrix(self) -> np.ndarray:
        """The K×N weight matrix of the product."""
        return self.weights

    def restore(self, y: np.ndarray, x_shape: tuple) -> np.ndarray:
        """The product's output ``y``, unchanged."""
        return y

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape ``(N,)`` for input ``shape``, or ModelError on a feature mismatch."""
        if math.prod(shape) != self.weights.shape[0]:
            raise ModelError(f"layer {self.name}: input of {math.prod(shape)} features, weights "
                             f"expect {self.weights.shape[0]}")
        return (self.weights.shape[1],)

    def params(self) -> dict:
        """The layer's parameters besides the arrays, as stored in the model file."""
        return {"relu": self.relu, "shift": self.shift}


@dataclass(frozen=True, eq=False)
class Conv2D:
    """2-D convolution, NHWC.

    ``weights`` is ``[kh, kw, C_in, C_out]``; ``padding`` is (top, left, bottom, right) zeros;
    lowered to ``A @ B`` by :func:`im2col`.
    """

    weights: np.ndarray
    bias: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    relu: bool = False
    shift: int = 0
    name: str = ""
    kind = "conv2d"

    def lower(self, x: np.ndarray) -> np.ndarray:
        """The input as the im2col matrix of its patches."""
        kh, kw = self.weights.shape[:2]
        return im2col(x, (kh, kw), self.stride, self.padding)

    @property
    def matrix(self) -> np.ndarray:
        """The kernel as a ``(kh·kw·C_in) × C_out`` matrix."""
        kh, kw, ci, co = self.weights.shape
        return self.weights.reshape(kh * kw * ci, co)

    def restore(self, y: np.ndarray, x_shape: tuple) -> np.ndarray:
        """The product's output ``y`` as an NHWC tensor."""
        ho, wo, _ = self.out_shape(x_shape[1:])
        return y.reshape(x_shape[0], ho, wo, -1)

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape ``(H_out, W_out, C_out)`` for input ``shape``, or ModelError."""
        if len(shape) != 3 or shape[2] != self.weights.shape[2]:
            raise ModelError(f"layer {self.name}: input {shape} is not H×W×{self.weights.shape[2]}")
        kh, kw = self.weights.shape[:2]
        t, left, b, r = self.padding
        ho = (shape[0] + t + b - kh) // self.stride[0] + 1
        wo = (shape[1] + left + r - kw) // self.stride[1] + 1
        if ho < 1 or wo < 1:
            raise ModelError(f"layer {self.name}: {kh}×{kw} kernel larger than its input {shape}")
        return (ho, wo, self.weights.shape[3])

    def params(self) -> dict:
        """The layer's parameters besides the arrays, as stored in the model file."""
        return {"relu": self.relu, "shift": self.shift, "stride": list(self.stride),
                "padding": list(self.padding)}


def _pool_shape(layer, shape: tuple) -> tuple:
    if len(shape) != 3:
        raise ModelError(f"layer {layer.name}: pooling needs an H×W×C input, got {shape}")
    ho = (shape[0] - layer.size[0]) // layer.stride[0] + 1
    wo = (shape[1] - layer.size[1]) // layer.stride[1] + 1
    if ho < 1 or wo < 1:
        raise ModelError(f"layer {layer.name}: window {layer.size} larger than its input {shape}")
    return (ho, wo, shape[2])


def _windows(x: np.ndarray, size, stride) -> np.ndarray:
    """``[b, H_out, W_out, C, kh, kw]`` views of the pooling windows."""
    v = np.lib.stride_tricks.sliding_window_view(x, size, axis=(1, 2))
    return v[:, ::stride[0], ::stride[1]]


@dataclass(frozen=True, eq=False)
class MaxPool:
    """Max pooling over ``size`` windows with ``stride`` (no padding)."""

    size: tuple = (2, 2)
    stride: tuple = (2, 2)
    name: str = ""
    kind = "maxpool"

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The maximum of each window."""
        return _windows(x, self.size, self.stride).max(axis=(4, 5))

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape for input ``shape``."""
        return _pool_shape(self, shape)

    def params(self) -> dict:
        """The layer's parameters, as stored in the model file."""
        return {"size": list(self.size), "stride": list(self.stride)}


@dataclass(frozen=True, eq=False)
class AvgPool:
    """Average pooling over ``size`` windows with ``stride`` (no padding).

    Integer rule in the module docstring.
    """

    size: tuple = (2, 2)
    stride: tuple = (2, 2)
    name: str = ""
    kind = "avgpool"

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The average of each window, integer rule when quantised (``a_bits``)."""
        w = _windows(x, self.size, self.stride)
        if a_bits is None:
            return w.mean(axis=(4, 5))
        total = w.sum(axis=(4, 5), dtype=np.int64)
        area = self.size[0] * self.size[1]
        if area & (area - 1) == 0:
            return requantize(total, area.bit_length() - 1, a_bits)
        return requantize(total * round(2 ** 16 / area), 16, a_bits)

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape for input ``shape``."""
        return _pool_shape(self, shape)

    def params(self) -> dict:
        """The layer's parameters, as stored in the model file."""
        return {"size": list(self.size), "stride": list(self.stride)}


@dataclass(frozen=True, eq=False)
class Flatten:
    """``[b, H, W, C]`` → ``[b, H·W·C]``.

    In HWC order (``"hwc"``, the native one) or in CHW order (``"chw"``, what a float graph from
    PyTorch/ONNX expects of the next layer).
    """

    order: str = "hwc"
    name: str = ""
    kind = "flatten"

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The input flattened in ``order``."""
        if self.order == "chw" and x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)
        return x.reshape(len(x), -1)

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape ``(H·W·C,)``."""
        return (math.prod(shape),)

    def params(self) -> dict:
        """The layer's parameters, as stored in the model file."""
        return {"order": self.order}


@dataclass(frozen=True, eq=False)
class ReLU:
    """A stand-alone ReLU (one that follows a product is folded into its output stage)."""

    name: str = ""
    kind = "relu"

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The input with negative values set to zero."""
        return np.maximum(x, 0)

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape: the input's."""
        return shape

    def params(self) -> dict:
        """No parameters."""
        return {}


_KINDS = {cls.kind: cls for cls in (Dense, Conv2D, MaxPool, AvgPool, Flatten, ReLU)}
_PRODUCTS = (Dense, Conv2D)


def im2col(x: np.ndarray, size, stride=(1, 1), padding=(0, 0, 0, 0)) -> np.ndarray:
    """``[b, H, W, C]`` → ``[b·H_out·W_out, kh·kw·C]`` patches, channels fastest (000 L1596)."""
    kh, kw = size
    t, left, bottom, r = padding
    xp = np.pad(x, ((0, 0), (t, bottom), (left, r), (0, 0)))
    w = _windows(xp, (kh, kw), stride)  # [b, Ho, Wo, C, kh, kw]
    b, ho, wo = w.shape[:3]
    return w.transpose(0, 1, 2, 4, 5, 3).reshape(b * ho * wo, -1)


def product_layers(model: Model) -> list[int]:
    """Indices of the layers that run on the accelerator (dense and conv)."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, _PRODUCTS)]


# -- the model ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Model:
    """A network: ``layers`` and what its input looks like.

    ``input_shape`` is one image in the layers' layout (``(H, W, C)`` or ``(F,)``);
    ``input_layout`` says how the user's images may also arrive (``"chw"`` for graphs
    imported from ONNX, transposed on entry).  A quantised model has ``a_bits``/``w_bits``
    (activation and weight widths), ``input_frac`` (inputs are ``round(x · 2**input_frac)``)
    and ``fracs`` (each layer's output scale); a float model has ``a_bits = None``.
    ``info`` is free JSON (training record, calibration, accuracy).
    """

    layers: tuple
    input_shape: tuple
    classes: int
    name: str = "model"
    input_layout: str = "hwc"
    a_bits: int | None = None
    w_bits: int | None = None
    input_frac: int = 0
    fracs: tuple = ()
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        """Check that the layers chain from the input shape to ``classes`` scores, or ModelError."""
        shape = tuple(self.input_shape)
        for layer in self.layers:
            shape = layer.out_shape(shape)
        if shape != (self.classes,):
            raise ModelError(f"model {self.name}: the last layer gives {shape}, not "
                             f"({self.classes},) class scores")

    @property
    def quantized(self) -> bool:
        """Whether the model is quantised (has ``a_bits``)."""
        return self.a_bits is not None

    def shapes(self) -> list[tuple]:
        """Per-image output shape of every layer."""
        out, shape = [], tuple(self.input_shape)
        for layer in self.layers:
            shape = layer.out_shape(shape)
            out.append(shape)
        return out

    # -- data in -----------------------------------------------------------------------------
    def prepare(self, images: np.ndarray) -> np.ndarray:
        """The user's images ``[N, ...]`` in the layers' layout.

        Raises ModelError naming the expected shape.
        """
        x = np.asarray(images)
        want = tuple(self.input_shape)
        got = tuple(x.shape[1:])
        if got == want:
            return x
        if self.input_layout == "chw" and len(want) == 3 and got == (want[2], want[0], want[1]):
            return x.transpose(0, 2, 3, 1)
        squeeze = lambda s: tuple(d for d in s if d != 1)  # noqa: E731
        if math.prod(got) == math.prod(want) and (squeeze(got) == squeeze(want)
                                                  or len(want) == 1):
            return x.reshape((len(x),) + want)
        alt = f" or {(want[2], want[0], want[1])}" if self.input_layout == "chw" else ""
        raise ModelError(f"data: images of shape {got} do not fit model {self.name}: expected "
                         f"{want}{alt} per image")

    def input_range(self) -> tuple[float, float]:
        """Float range the quantised input represents without saturating."""
        hi = (1 << (self.a_bits - 1)) - 1
        return (-(hi + 1) / 2.0 ** self.input_frac, hi / 2.0 ** self.input_frac)

    def quantize_input(self, images: np.ndarray, check: bool = True) -> np.ndarray:
        """Integer inputs ``round(x · 2**input_frac)``.

        With ``check``, data outside the representable range (more than half an LSB beyond it) is a
        ModelError.
        """
        x = self.prepare(np.asarray(images, dtype=np.float64))
        lo, hi = self.input_range()
        half = 0.5 / 2.0 ** self.input_frac
        if check and x.size and (x.min() < lo - half or x.max() > hi + half):
            raise ModelError(f"data: image values span [{x.min():g}, {x.max():g}], outside the "
                             f"range [{lo:g}, {hi:g}] model {self.name} was calibrated for "
                             f"(scale the images as in training)")
        q = np.floor(x * 2.0 ** self.input_frac + 0.5)
        return np.clip(q, lo * 2.0 ** self.input_frac, hi * 2.0 ** self.input_frac).astype(
            np.int64)

    # -- float evaluation --------------------------------------------------------------------
    def forward_float(self, images: np.ndarray) -> np.ndarray:
        """Logits of a float model (float64), NHWC, same lowering as the integer path."""
        if self.quantized:
            raise ModelError(f"model {self.name} is quantised; use run()")
        x = self.prepare(np.asarray(images, dtype=np.float64))
        for layer in self.layers:
            if isinstance(layer, _PRODUCTS):
                y = layer.lower(x) @ layer.matrix + layer.bias
                if layer.relu:
                    y = np.maximum(y, 0)
                x = layer.restore(y, x.shape)
            else:
                x = layer.forward(x, None)
        return x

    # -- files -------------------------------------------------------------------------------
    def to_meta(self) -> dict:
        """The model's description (format, shapes, widths, layers) without the arrays."""
        return {"format": FORMAT, "version": VERSION, "name": self.name,
                "input_shape": list(self.input_shape), "input_layout": self.input_layout,
                "classes": self.classes, "a_bits": self.a_bits, "w_bits": self.w_bits,
                "input_frac": self.input_frac, "fracs": list(self.fracs), "info": self.info,
                "layers": [{"kind": layer.kind, "name": layer.name, **layer.params()}
                           for layer in self.layers]}

    def to_bytes(self) -> bytes:
        """The model as one ``.npz`` file's bytes (format in the module docstring).

        The caller writes them (through :mod:`ftaccel.files`).
        """
        arrays = {"__meta__": np.frombuffer(json.dumps(self.to_meta()).encode(), np.uint8)}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, _PRODUCTS):
                arrays[f"L{i}.weights"] = layer.weights
                arrays[f"L{i}.bias"] = layer.bias
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, source) -> Model:
        """Read a model file (a path or a binary file object)."""
        where = getattr(source, "name", source)
        try:
            with np.load(source, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise ModelError(f"{where}: no such file") from None
        except (ValueError, OSError) as exc:
            raise ModelError(f"{where}: not a model file ({exc})") from None
        try:
            meta = json.loads(arrays.pop("__meta__").tobytes().decode())
        except (KeyError, ValueError):
            raise ModelError(f"{where}: not an {FORMAT} file (no readable __meta__)") from None
        return cls.from_meta(meta, arrays, str(where))

    @classmethod
    def from_meta(cls, meta: dict, arrays: dict, where: str = "model") -> Model:
        """The model from :meth:`to_meta`'s form and its arrays, or ModelError naming ``where``."""
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelError(f"{where}: not an {FORMAT} file")
        if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
            raise ModelError(f"{where}: format version {meta.get('version')!r} is newer than "
                             f"this tool's ({VERSION}); update ftaccel")
        try:
            layers = []
            for i, spec in enumerate(meta["layers"]):
                spec = dict(spec)
                kind = spec.pop("kind")
                if kind not in _KINDS:
                    raise ModelError(f"{where}: layer {i} has unknown kind {kind!r}")
                cls_ = _KINDS[kind]
                for key in ("stride", "padding", "size"):
                    if key in spec:
                        spec[key] = tuple(spec[key])
                if cls_ in _PRODUCTS:
                    spec["weights"] = arrays[f"L{i}.weights"]
                    spec["bias"] = arrays[f"L{i}.bias"]
                layers.append(cls_(**spec))
            return cls(layers=tuple(layers), input_shape=tuple(meta["input_shape"]),
                       classes=int(meta["classes"]), name=meta["name"],
                       input_layout=meta["input_layout"], a_bits=meta["a_bits"],
                       w_bits=meta["w_bits"], input_frac=int(meta["input_frac"]),
                       fracs=tuple(meta["fracs"]), info=meta.get("info", {}))
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{where}: malformed model file (missing or bad {exc})") from None


# -- quantisation ------------------------------------------------------------------------------

def _frac_for(amax: float, bits: int) -> int:
    """Largest power-of-two scale at which ``amax`` still fits ``bits`` signed bits."""
    if amax <= 0 or not math.isfinite(amax):
        return 0
    return int(math.floor(math.log2(((1 << (bits - 1)) - 1) / amax)))


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def quantize(model: Model, calibration: np.ndarray, *, a_bits: int = 8, w_bits: int = 8,
             name: str | None = None) -> Model:
    """The quantised model of a float ``model``.

    Its shifts are calibrated on ``calibration`` images (training data; rule in the module
    docstring).
    """
    if model.quantized:
        raise ModelError(f"model {model.name} is already quantised")
    for what, bits in (("a_bits", a_bits), ("w_bits", w_bits)):
        if not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ModelError(f"{what} must be 2 … 16, not {bits!r}")
    xf = model.prepare(np.asarray(calibration, dtype=np.float64))
    f_in = _frac_for(float(np.abs(xf).max()) if xf.size else 1.0, a_bits)
    qmax = (1 << (a_bits - 1)) - 1
    xq = np.clip(_round(xf * 2.0 ** f_in), -qmax - 1, qmax)
    frac = f_in
    layers, fracs = [], []
    for layer in model.layers:
        if not isinstance(layer, _PRODUCTS):
            xf = layer.forward(xf, None)
            xq = layer.forward(xq, a_bits)
            layers.append(layer)
            fracs.append(frac)
            continue
        W = np.asarray(layer.weights, dtype=np.float64)
        f_w = _frac_for(float(np.abs(W).max()), w_bits)
        wmax = (1 << (w_bits - 1)) - 1
        Wq = np.clip(_round(W * 2.0 ** f_w), -wmax - 1, wmax)
        f_acc = frac + f_w
        bq = _round(np.asarray(layer.bias, dtype=np.float64) * 2.0 ** f_acc)
        yf = layer.lower(xf) @ layer.matrix + layer.bias
        if layer.relu:
            yf = np.maximum(yf, 0)
        qlayer = dataclasses.replace(layer, weights=Wq, bias=bq, shift=0)
        acc = layer.lower(xq) @ qlayer.matrix
        f_top = _frac_for(float(np.abs(yf).max()) if yf.size else 1.0, a_bits)
        best = None
        for f_out in range(f_top - 1, f_top + 4):
            shift = f_acc - f_out
            if not 0 <= shift <= MAX_SHIFT:
                continue
            q = output_stage(acc, bq, layer.relu, shift, a_bits)
            err = float(np.mean((q / 2.0 ** f_out - yf) ** 2)) if yf.size else 0.0
            if best is None or err < best[0]:
                best = (err, shift, f_out, q)
        if best is None:  # the accumulator scale is coarser than any useful output scale
            shift = 0 if f_acc - f_top < 0 else MAX_SHIFT
            q = output_stage(acc, bq, layer.relu, shift, a_bits)
            best = (0.0, shift, f_acc - shift, q)
        _, shift, frac, q = best
        qlayer = dataclasses.replace(qlayer, shift=int(shift))
        layers.append(qlayer)
        fracs.append(frac)
        xf = layer.restore(yf, xf.shape)
        xq = layer.restore(q, xq.shape)
    info = dict(model.info)
    info["calibration"] = {"images": int(len(calibration)), "rule": "power-of-two scales; "
                           "per-layer shift minimising MSE against the float network"}
    return Model(layers=tuple(layers), input_shape=model.input_shape, classes=model.classes,
                 name=name or model.name, input_layout=model.input_layout, a_bits=a_bits,
                 w_bits=w_bits, input_frac=f_in, fracs=tuple(fracs), info=info)


# -- fit against a configuration ---------------------------------------------------------------

def check_fit(model: Model, cfg) -> None:
    """Raise ModelError naming the first layer that cannot run on ``cfg``.

    Checked: the widths (the output stage saturates to ``cfg.a_width``, so the model's
    activation width must equal it; weights must fit ``cfg.w_width``); every product's
    reduction length ``K ≤ cfg.max_k``; and the worst case of every partial sum
    (``Σ_k |W[k, n]| · 2**(a−1)`` plus the bias where it enters the accumulator) within the
    ``cfg.acc_bits`` accumulator, so that no input can overflow it; the bias within the
    accumulator-wide bias port; the shift within 0 … 63.
    """
    if not model.quantized:
        raise ModelError(f"model {model.name} is not quantised")
    if model.a_bits != cfg.a_width:
        raise ModelError(f"model {model.name} has {model.a_bits}-bit activations but the "
                         f"configuration has a_width = {cfg.a_width}; quantise for "
                         f"{cfg.a_width} bits")
    if model.w_bits > cfg.w_width:
        raise ModelError(f"model {model.name} has {model.w_bits}-bit weights but the "
                         f"configuration has w_width = {cfg.w_width}")
    lim = (1 << (cfg.acc_bits - 1)) - 1
    amax = 1 << (cfg.a_width - 1)
    for i in product_layers(model):
        layer = model.layers[i]
        B = layer.matrix.astype(np.int64)
        K = B.shape[0]
        if cfg.max_k < K:
            raise ModelError(f"layer {layer.name}: reduction length K = {K} exceeds max_k = "
                             f"{cfg.max_k}; raise --max-k")
        bias = np.abs(layer.bias.astype(np.int64))
        worst = np.abs(B).sum(axis=0) * amax + (bias if cfg.bias_in_psum else 0)
        if worst.max() > lim:
            raise ModelError(f"layer {layer.name}: a partial sum can reach {int(worst.max())}, "
                             f"beyond the {cfg.acc_bits}-bit accumulator (±{lim}); raise "
                             f"--acc-width or --max-k")
        if bias.max(initial=0) > lim:
            raise ModelError(f"layer {layer.name}: bias {int(bias.max())} does not fit the "
                             f"{cfg.acc_bits}-bit bias port")
        if not 0 <= layer.shift <= MAX_SHIFT:
            raise ModelError(f"layer {layer.name}: shift {layer.shift} outside 0 … {MAX_SHIFT}")


# -- the runner --------------------------------------------------------------------------------

@dataclass
class LayerOptions:
    """What one product layer is run with (hooks for faults, protections, scheduling).

    ``fault``: a :class:`golden.faults.Fault` (cycle and RTL engines; the cycle counts from
    the start of the layer's program).  ``units``: run-time options of the configured units,
    as :func:`golden.schedule.build_program` takes them (``afd``, ``median_enable``,
    ``bypass_map``, ``temporal_batch``, ``split``, ``lcu_pairs``, ``tmr_triples``,
    ``tmr_voter``; ``split``/``lcu_pairs``/``tmr_triples`` in array-column order).
    ``permutation``: array column ``j`` computes neuron ``perm[j]``.
    """

    fault: Fault | None = None
    units: dict = field(default_factory=dict)
    permutation: np.ndarray | None = None


@dataclass
class Product:
    """One layer's product as the accelerator sees it: ``A`` (M×K) @ ``B`` (K×N)."""

    index: int
    name: str
    A: np.ndarray
    B: np.ndarray
    bias: np.ndarray
    relu: bool
    shift: int
    fault: Fault | None = None
    units: dict = field(default_factory=dict)


@dataclass
class ProductResult:
    """``q``, the cycles the product takes and the number of output vectors each checksum flagged.

    ``q`` is the M×N requantised outputs, after any LCU correction (cycle and RTL engines).
    """

    q: np.ndarray
    cycles: int
    alarms: dict = field(default_factory=dict)


@dataclass
class LayerStats:
    """Per-layer totals of one run."""

    index: int
    name: str
    kind: str
    M: int = 0
    K: int = 0
    N: int = 0
    shift: int | None = None
    cycles: int = 0
    macs: int = 0
    alarms: dict = field(default_factory=dict)

    def utilisation(self, cfg) -> float:
        """MACs done over MAC slots offered (R·C per cycle)."""
        return self.macs / (self.cycles * cfg.rows * cfg.cols) if self.cycles else 0.0

    def add(self, other: LayerStats) -> None:
        """Add ``other``'s totals to these."""
        self.M += other.M
        self.cycles += other.cycles
        self.macs += other.macs
        for k, v in other.alarms.items():
            self.alarms[k] = self.alarms.get(k, 0) + v


@dataclass
class Inference:
    """What :func:`run` returns.

    The last layer's integer outputs (logits), per-layer statistics, and (with ``record``) every
    layer's output tensor.
    """

    logits: np.ndarray
    layers: list
    outputs: list | None = None

    @property
    def predictions(self) -> np.ndarray:
        """The predicted class of each image."""
        return np.argmax(self.logits, axis=1)


class FunctionalEngine:
    """Golden functional engine: what the accelerator computes, in closed form, vectorised.

    Exact for every configuration and unit option (no fault): the input units filter the
    streamed chunks (:func:`units_matrix`), bypass prunes as :func:`golden.bypass.pruned_matmul`
    says, :func:`golden.array.matmul` checks every partial sum in driver order (raising
    :class:`golden.array.AccumulatorOverflow`), the output stage is
    :func:`golden.output_stage.output_stage` (split lanes included), the LCU corrects pairs
    with :func:`golden.lcu.lcu`.  Cycles come from :func:`golden.array.cycle_count` (the LCU's
    correction and read-back cycles are not counted).  A fault needs the cycle or RTL engine
    (or a fault model that subclasses this one and overrides :meth:`product`).
    """

    name = "golden"

    def __init__(self, cfg):
        self.cfg = cfg

    def product(self, p: Product) -> ProductResult:
        """The product ``p`` as the accelerator computes it, in closed form."""
        if p.fault is not None:
            raise NotImplementedError("a register fault needs the cycle or RTL engine")
        cfg = self.cfg
        opts = golden_units.options(cfg, p.units)
        A = units_matrix(cfg, p.A, opts) if cfg.dataflow is Dataflow.WS else p.A
        bmap = golden_units.bypass_map(opts)
        if bmap is not None and np.any(bmap):
            acc = pruned_matmul(cfg.dataflow, A, p.B, bmap, p.bias, acc_bits=cfg.acc_bits)
        else:
            acc = matmul(cfg, A, p.B, p.bias).acc
        q = output_stage(acc, 0, p.relu, p.shift, cfg.a_width,
                         **golden_units.requant_keywords(cfg, opts))
        q = golden_units.correct(cfg, q, opts)
        M, K = p.A.shape
        cycles = cycle_count(cfg, M, K, p.B.shape[1], golden_units.temporal_batch(opts))
        return ProductResult(q=q, cycles=cycles)


class CycleEngine:
    """The golden cycle model.

    The driver's program (:func:`golden.schedule.build_program`) run through
    :func:`golden.accelerator.simulate`, register by register, faults included. Subclasses replace
    :meth:`execute` (the RTL engine plays the program on the simulator).
    """

    name = "cycle"

    def __init__(self, cfg):
        self.cfg = cfg

    def execute(self, program, fault):
        """The recorded outputs of ``program`` on the cycle model with ``fault``."""
        return simulate(self.cfg, program, fault)

    def product(self, p: Product) -> ProductResult:
        """The product ``p`` run as a program on the cycle model."""
        cfg = self.cfg
        if p.fault is not None and not cfg.fault_hooks:
            # The cycle model would apply it, the RTL could not: refuse rather than differ.
            raise ModelError(f"layer {p.name}: a fault needs a configuration with fault_hooks")
        program = build_program(cfg, p.A, p.B, bias=p.bias, relu=p.relu, shift=p.shift,
                                fault=p.fault, **p.units)
        rec = self.execute(program, p.fault)
        return ProductResult(q=program_result(program, rec), cycles=int(program.cycles),
                             alarms=golden_units.alarms(cfg, rec))


def _options_for(options, index: int, name: str) -> LayerOptions:
    if options is None:
        return LayerOptions()
    if callable(options):
        return options(index, name) or LayerOptions()
    return options.get(index) or options.get(name) or LayerOptions()


def run(model: Model, x: np.ndarray, engine, *, options=None, units: dict | None = None,
        start: int = 0, stop: int | None = None, record: bool = False) -> Inference:
    """Run quantised ``model`` on integer inputs ``x`` with ``engine``.

    ``x`` is the input of layer ``start`` (the quantised images for ``start = 0``, else a
    recorded activation); layers ``start … stop − 1`` run.  ``units`` are unit options for
    every product layer; ``options`` maps a layer index or name to :class:`LayerOptions` (or
    is a callable ``(index, name) -> LayerOptions``), whose ``units`` override the common
    ones.  With ``record`` the output of every layer run is kept.
    """
    if not model.quantized:
        raise ModelError(f"model {model.name} is not quantised; call quantize() first")
    stop = len(model.layers) if stop is None else stop
    x = np.asarray(x, dtype=np.int64)
    stats, outputs = [], [] if record else None
    for i in range(start, stop):
        layer = model.layers[i]
        st = LayerStats(index=i, name=layer.name, kind=layer.kind)
        if isinstance(layer, _PRODUCTS):
            opt = _options_for(options, i, layer.name)
            A = layer.lower(x)
            B = layer.matrix.astype(np.int64)
            bias = layer.bias.astype(np.int64)
            perm = None if opt.permutation is None else np.asarray(opt.permutation)
            if perm is not None:
                if sorted(perm.tolist()) != list(range(B.shape[1])):
                    raise ModelError(f"layer {layer.name}: permutation is not one of its "
                                     f"{B.shape[1]} neurons")
                B, bias = B[:, perm], bias[perm]
            res = engine.product(Product(index=i, name=layer.name, A=A, B=B, bias=bias,
                                         relu=layer.relu, shift=layer.shift, fault=opt.fault,
                                         units={**(units or {}), **opt.units}))
            q = res.q
            if perm is not None:
                q = q[:, np.argsort(perm)]
            x = layer.restore(q, x.shape)
            st.M, st.K, st.N, st.shift = A.shape[0], A.shape[1], B.shape[1], layer.shift
            st.cycles, st.macs, st.alarms = res.cycles, A.shape[0] * A.shape[1] * B.shape[1], \
                dict(res.alarms)
        else:
            x = layer.forward(x, model.a_bits)
        stats.append(st)
        if record:
            outputs.append(x)
    return Inference(logits=x, layers=stats, outputs=outputs)


def describe(model: Model) -> list[dict[str, Any]]:
    """One row per layer: name, kind, output shape, product size per image, shift, scale."""
    rows, shape = [], tuple(model.input_shape)
    for i, layer in enumerate(model.layers):
        out = layer.out_shape(shape)
        row = {"index": i, "name": layer.name, "kind": layer.kind, "output": list(out)}
        if isinstance(layer, _PRODUCTS):
            B = layer.matrix
            m = math.prod(out[:-1]) if len(out) > 1 else 1
            row.update({"M_per_image": m, "K": B.shape[0], "N": B.shape[1],
                        "relu": layer.relu})
            if model.quantized:
                row["shift"] = layer.shift
        if model.quantized and model.fracs:
            row["frac"] = model.fracs[i]
        rows.append(row)
        shape = out
    return rows

