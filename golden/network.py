"""Quantised DNN models as graphs, and the network runner (issues 14 and 23).

A :class:`Model` is a *graph* of nodes (the "layers") in topological order.  Node ``i`` reads
the outputs of the nodes ``layer.inputs`` (indices below ``i``; ``-1`` is the graph input;
empty means "the node before", so a chain needs no ``inputs`` at all) and its output is one
tensor; the last node's output is the logits.  The same classes hold a *float* model (float
weights, as trained or imported) and a *quantised* one (integer weights and tensors, one
power-of-two scale per tensor), see :func:`quantize`.

**Where each operation runs** (also in the README):

==================  ===============  =========================================================
node (``kind``)     runs on          what it computes
==================  ===============  =========================================================
``dense``           array            ``x @ W``: one product M×K @ K×N (M = batch)
``conv2d``          array            im2col (padding, stride) then one product
``dwconv``          array            depthwise: C independent products M×K @ K×1, K = kh·kw
(every product)     output stage     ``+ bias``, ReLU, rounding shift, saturation
                                     (:func:`golden.output_stage.output_stage`); fixed-point
                                     models: the multiplier, zero point and clamp
                                     (:class:`golden.output_stage.Requant`)
``maxpool``         host             window maximum (padding with the smallest integer)
``avgpool``         host             window sum, then a rounding shift or ×round(2**16/n)≫16
                                     (fixed point: :class:`Rescale` with divisor n)
``add``             host             inputs aligned by exact shifts, summed, saturated (fixed
                                     point: :class:`Rescale`)
``concat``          host             inputs aligned by exact shifts, saturated, joined on C
                                     (fixed point: each input through :class:`Rescale`)
``relu``            host             ``max(x, 0)`` (one that follows a product folds into its
                                     output stage instead)
``clip``            host             clamp to ``[round(lo·2**f), round(hi·2**f)]`` (ReLU6's 6)
``requantize``      host             fixed point: a change of scale and zero point
                                     (:class:`Rescale`), with a clamp
``flatten``         host             a reshape (HWC or CHW order): no arithmetic
==================  ===============  =========================================================

The host operations are bit-exact integer functions here; an accelerator's host (or its
controller) must compute exactly these.  Faults are only injected into the array's products
(:class:`LayerOptions`); the host nodes and the output stage's arithmetic are fault-free in
every engine.

**Tensor layout.**  Activations are ``[batch, H, W, C]`` (channels last) or ``[batch, F]``.
A convolution is lowered by im2col with the *same pixel of neighbouring channels adjacent*
(Ozen 2023 §8.4.2, §2.3, §10.3.2): row ``(b, y, x)`` of ``A`` holds the patch at output pixel ``(y,
x)`` and column ``k = (dy · kw + dx) · C_in + c`` its pixel ``(dy, dx)`` of channel ``c``, so a
streamed vector chunk (WS) holds neighbouring channels of one pixel, the order the median filter and
anomaly suppression want.  ``B[k, o]`` is filter ``o``'s weight at the same position; the product
``A @ B`` is ``[batch·H_out·W_out, C_out]``, reshaped back to NHWC.

**Depthwise convolutions** (groups = channels; README, Two quantisation paths, MobileNet) are C
independent products, channel ``c``'s patches (M × K, K = kh·kw) times its K×1 kernel.  On an R×C
array each such product occupies ⌈K/R⌉ row tiles of one column, so at most ``min(K, R)/(R·C)`` of
the MAC slots do work: 9/64 = 14 % for a 3×3 kernel on an 8×8 array, 9/256 = 3.5 % on 16×16
(:class:`LayerStats` measures it per node; ``rtlgen infer`` prints it).  A register fault given for
a depthwise node acts on every channel's product if it is a stuck-at fault, and a flip at cycle
``t`` hits channel ``t // P`` at its cycle ``t mod P`` (the C programs of ``P`` cycles each run back
to back).

**Numbers** (Ozen 2023 §8.7.2; README, Fault campaigns).  Every tensor has a power-of-two scale: the
integer ``q`` stands for ``q / 2**frac``.  Weights: ``frac_w = floor(log2((2**(w−1) − 1) /
max|W|))`` per layer; inputs: the same rule on the calibration images.  A product layer accumulates
at
``frac_a + frac_w`` in full width; its bias is quantised at that scale (it enters the
accumulator or the output stage); the output stage then computes
``q = sat(round_half_up(relu(acc + bias) / 2**shift))`` exactly as
:func:`golden.output_stage.output_stage` (the same function is called), giving
``frac_out = frac_a + frac_w − shift``.  **Calibration** (:func:`quantize`) picks each layer's
shift on training images, layer by layer on the already-quantised path: among the output
scales around the one that just holds the largest float activation, the one whose dequantised
output is closest (mean squared error) to the float network's.  Pooling works on integers:
max exactly; average as a sum, then the output stage's rounding shift by log2(n) (n the
window's element count, a power of two) or, for other n, multiplication by ``round(2**16 / n)``
and a rounding shift by 16, saturated to the activation width (with padding excluded from the
count, n varies at the borders and the rule is applied per output pixel).  **Add and Concat**
bring their inputs (scales ``f_i``) to one output scale ``f_out = min(frac_for(max |y|),
max f_i)`` (the finest scale that holds the calibration's largest float output, never finer
than the finest input): input ``i`` is shifted by ``s_i = f_i − f_out``, right with round half
up (``(q + 2**(s−1)) >> s``) when ``s_i > 0``, left (exact) when ``s_i < 0``; ``add`` sums the
aligned inputs and saturates the sum to the activation width, ``concat`` saturates each aligned
input.  **Clip** clamps to its bounds at the tensor's scale, ``round_half_up(lo · 2**f)`` and
``round_half_up(hi · 2**f)`` within the width.

**The fixed-point path** (issue 23, README, Two quantisation paths): an int8 model quantised by
another tool (``app.onnx_import`` reads onnxruntime's QDQ and QOperator files) keeps its scales.
Every tensor is int8 with a real scale and a zero point (:attr:`Model.scales`; real =
``scale · (q − zero_point)``); a product node holds its integer weights (symmetric), its bias
with the input's zero point folded in (``b − z_a·Σ_k q_w``), the input's zero point as its
padding value (``pad_value``: the integer of the real 0, whose products the folded bias
takes back out) and its ``requant`` (:class:`golden.output_stage.Requant`: ``M0``, ``n``
per layer or per output channel, the output zero point, the clamp of a fused ReLU / ReLU6),
which every engine applies (``Product.requant``).  Host nodes requantise with
:class:`Rescale`: ``y = clamp(round_half_even(z_y + Σ_i m_i·(q_i − z_i) / (n·2**e)))``,
each input's scale ratio ``s_i/s_y`` held as ``m_i / 2**e`` (31-bit ``m``), exact int64
arithmetic.

**The runner** (:func:`run`) walks the nodes in order; every product goes through one call,
``engine.product(Product)``: :class:`FunctionalEngine` (``golden``: exact, vectorised over the
batch, :func:`golden.array.matmul` with its overflow check, the input units and bypass in
closed form; a product without units, bypass or fault runs in floating point from the
layer's input, :meth:`FunctionalEngine.plain_product`, the bound of
:func:`golden.array.float_plan` proving it exact and free of overflow) and
:class:`CycleEngine` (``cycle``: :func:`golden.schedule.build_program` +
:func:`golden.accelerator.simulate`); ``tb.accelerator.RTLEngine`` runs the same programs on the
RTL.  Per node, :class:`LayerOptions` carries what the fault-campaign, critical-neuron and
scheduling work hooks in: a :class:`golden.faults.Fault`, the units' run-time options
(``afd``, ``median_enable``, ``bypass_map``, ``temporal_batch``, ``split``, ``lcu_pairs``)
and a *neuron permutation* (array column ``j`` computes neuron ``perm[j]``; the product is
un-permuted after, so with no fault the result is bit-identical).  :func:`run` can also start
at a node from recorded tensors (:func:`state_at`: the recorded outputs of the earlier nodes
that the later ones read) and record every node's output, so a fault model can recompute only
from the faulty node on.

**File format** (:meth:`Model.save`, :meth:`Model.load`): one ``.npz``; array ``__meta__``
holds UTF-8 JSON (``format = "ftaccel-network"``, ``version``, the model's fields and one entry
per node, with its ``inputs`` where it does not read the node before), arrays
``L<i>.weights`` / ``L<i>.bias`` the parameters.  Version 3 (the fixed-point path) adds the
model's ``input_scale``, ``input_zero_point`` and ``scales``, a product node's ``requant``
(``multiplier``, ``shift``: an integer or one per column; ``zero_point``, ``lo``, ``hi``) and
``pad_value``, and a host node's ``rescale``; it reads versions 1 (chains) and 2 (graphs)
unchanged; a file of a newer version is refused.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ftaccel.errors import ConfigError
from ftaccel.files import FileProblem, parse_json, parse_npz, read_input

from . import units as golden_units
from .accelerator import simulate
from .array import cycle_count, float_plan, float_product, float_stage, matmul
from .bypass import pruned_matmul
from .faults import Fault
from .output_stage import MAX_SHIFT, Requant, output_stage, requantize
from .schedule import build_program, check_requant, program_result
from .units import units_matrix

__all__ = ["Dense", "Conv2D", "DepthwiseConv2D", "MaxPool", "AvgPool", "Flatten", "ReLU",
           "Clip", "Add", "Concat", "Model", "ModelError", "FORMAT", "VERSION", "quantize",
           "im2col", "LayerOptions", "Product", "ProductResult", "LayerStats", "Inference",
           "FunctionalEngine", "CycleEngine", "run", "state_at", "check_fit", "product_layers",
           "describe", "units_matrix", "WHERE", "Rescale", "Requantize", "requant_to_json",
           "requant_from_json", "requant_columns", "run_node", "LoweredConv", "product_stats"]

FORMAT = "ftaccel-network"
VERSION = 3


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


def _conv_out(name: str, shape: tuple, kernel, stride, padding, what: str) -> tuple[int, int]:
    """``(H_out, W_out)`` of a window op on ``shape`` (H, W, C), or ModelError naming the node."""
    kh, kw = kernel
    t, left, b, r = padding
    ho = (shape[0] + t + b - kh) // stride[0] + 1
    wo = (shape[1] + left + r - kw) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise ModelError(f"layer {name}: {kh}×{kw} {what} larger than its (padded) input "
                         f"{shape}")
    return ho, wo


def requant_to_json(rq: Requant) -> dict:
    """A fixed-point :class:`golden.output_stage.Requant` as JSON (the model file's form)."""
    def v(x):
        a = np.asarray(x)
        return a.astype(np.int64).tolist() if a.ndim else int(a)

    return {"multiplier": v(rq.multiplier), "shift": v(rq.shift),
            "zero_point": int(rq.zero_point), "lo": None if rq.lo is None else int(rq.lo),
            "hi": None if rq.hi is None else int(rq.hi)}


def requant_from_json(d: dict) -> Requant:
    """The :class:`golden.output_stage.Requant` of :func:`requant_to_json`'s form."""
    def v(x):
        return np.asarray(x, dtype=np.int64) if isinstance(x, list) else int(x)

    return Requant(shift=v(d["shift"]), multiplier=v(d["multiplier"]),
                   zero_point=int(d.get("zero_point", 0)), lo=d.get("lo"), hi=d.get("hi"))


def requant_columns(rq: Requant, cols) -> Requant:
    """``rq`` for the output columns ``cols`` (an index array or slice) of its layer.

    A per-column multiplier and shift (per-channel weight scales) follow the columns; the
    power-of-two path and per-tensor values are the same for every column.
    """
    if not rq.fixed:
        return rq
    def pick(x):
        a = np.asarray(x)
        return a[cols] if a.ndim else x

    return dataclasses.replace(rq, multiplier=pick(rq.multiplier), shift=pick(rq.shift))


class _ProductNode:
    """What the array's nodes share: C-contiguous weights, their output stage's requantisation."""

    def __post_init__(self):
        """Hold ``weights`` C-contiguous (an importer's transposed view is copied once here).

        :attr:`Conv2D.matrix` is then a view, where a strided array made it copy the kernel on
        every product: 2 ms a call for a 512×512 3×3 kernel, 36 % of the golden engine's
        time on ResNet-18.
        """
        w = self.weights
        if isinstance(w, np.ndarray) and not w.flags.c_contiguous:
            object.__setattr__(self, "weights", np.ascontiguousarray(w))

    def requantisation(self) -> Requant:
        """The output stage's :class:`golden.output_stage.Requant` of this node.

        The fixed-point one a model quantised by another tool carries (``requant``), else the
        power-of-two ``shift`` with the fused ``relu``.
        """
        return self.requant if self.requant is not None else Requant(shift=self.shift,
                                                                     relu=self.relu)

    def _stage_params(self) -> dict:
        out = {"relu": self.relu, "shift": self.shift}
        if self.requant is not None:
            out["requant"] = requant_to_json(self.requant)
        if getattr(self, "pad_value", 0):
            out["pad_value"] = int(self.pad_value)
        return out


@dataclass(frozen=True, eq=False)
class Dense(_ProductNode):
    """Fully connected: ``y = x @ weights + bias`` (``weights`` is K×N: inputs × neurons).

    ``requant``: the fixed-point output stage of a model quantised by another tool (then
    ``shift`` is unused; ``relu`` records that the float model had one, its clamp is in
    ``requant``); ``None`` on the power-of-two path.
    """

    weights: np.ndarray
    bias: np.ndarray
    relu: bool = False
    shift: int = 0
    name: str = ""
    inputs: tuple = ()
    requant: Requant | None = None
    kind = "dense"

    def lower(self, x: np.ndarray) -> np.ndarray:
        """The input as a ``[b, K]`` matrix."""
        return x.reshape(len(x), -1)

    @property
    def matrix(self) -> np.ndarray:
        """The K×N weight matrix of the product."""
        return self.weights

    def accumulate(self, x: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
        """``lower(x) @ matrix`` (the layer's own by default), M×N."""
        return self.lower(x) @ (self.matrix if matrix is None else matrix)

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
        return self._stage_params()


@dataclass(frozen=True, eq=False)
class Conv2D(_ProductNode):
    """2-D convolution, NHWC.

    ``weights`` is ``[kh, kw, C_in, C_out]``; ``padding`` is (top, left, bottom, right)
    elements of value ``pad_value``: 0, or on the fixed-point path the input's zero point
    (the integer that stands for 0.0, whose products the folded bias takes back out);
    lowered to ``A @ B`` by :func:`im2col`.  ``requant`` as for :class:`Dense`.
    """

    weights: np.ndarray
    bias: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    relu: bool = False
    shift: int = 0
    name: str = ""
    inputs: tuple = ()
    requant: Requant | None = None
    pad_value: int = 0
    kind = "conv2d"

    def lower(self, x: np.ndarray) -> np.ndarray:
        """The input as the im2col matrix of its patches."""
        kh, kw = self.weights.shape[:2]
        return im2col(x, (kh, kw), self.stride, self.padding, self.pad_value)

    @property
    def matrix(self) -> np.ndarray:
        """The kernel as a ``(kh·kw·C_in) × C_out`` matrix."""
        kh, kw, ci, co = self.weights.shape
        return self.weights.reshape(kh * kw * ci, co)

    def accumulate(self, x: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
        """``lower(x) @ matrix`` (the layer's own by default), M×N."""
        return self.lower(x) @ (self.matrix if matrix is None else matrix)

    def restore(self, y: np.ndarray, x_shape: tuple) -> np.ndarray:
        """The product's output ``y`` as an NHWC tensor."""
        ho, wo, _ = self.out_shape(x_shape[1:])
        return y.reshape(x_shape[0], ho, wo, -1)

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape ``(H_out, W_out, C_out)`` for input ``shape``, or ModelError."""
        if len(shape) != 3 or shape[2] != self.weights.shape[2]:
            raise ModelError(f"layer {self.name}: input {shape} is not H×W×{self.weights.shape[2]}")
        ho, wo = _conv_out(self.name, shape, self.weights.shape[:2], self.stride, self.padding,
                           "kernel")
        return (ho, wo, self.weights.shape[3])

    def params(self) -> dict:
        """The layer's parameters besides the arrays, as stored in the model file."""
        return {**self._stage_params(), "stride": list(self.stride),
                "padding": list(self.padding)}


@dataclass(frozen=True, eq=False)
class DepthwiseConv2D(_ProductNode):
    """Depthwise 2-D convolution (groups = channels, multiplier 1), NHWC.

    ``weights`` is ``[kh, kw, C]``: channel ``c``'s output is its own channel's ``kh×kw``
    patches times ``weights[..., c]``, C independent products of K = kh·kw (utilisation in
    the module docstring).  :attr:`matrix` is the K×C matrix whose column ``c`` is channel
    ``c``'s kernel: a *neuron* (column) is a channel, as for :class:`Conv2D`.  ``requant``
    and ``pad_value`` as for :class:`Conv2D`.
    """

    weights: np.ndarray
    bias: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    relu: bool = False
    shift: int = 0
    name: str = ""
    inputs: tuple = ()
    requant: Requant | None = None
    pad_value: int = 0
    kind = "dwconv"

    def lower(self, x: np.ndarray) -> np.ndarray:
        """``[M, K, C]``: channel ``c``'s patches are ``lower(x)[:, :, c]`` (M × K)."""
        kh, kw = self.weights.shape[:2]
        cols = im2col(x, (kh, kw), self.stride, self.padding, self.pad_value)
        return cols.reshape(len(cols), kh * kw, -1)

    @property
    def matrix(self) -> np.ndarray:
        """The K×C matrix of the channels' kernels."""
        kh, kw, c = self.weights.shape
        return self.weights.reshape(kh * kw, c)

    def accumulate(self, x: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
        """Every channel's product, M×C (the layer's own kernels by default)."""
        B = self.matrix if matrix is None else matrix
        return np.einsum("mkc,kc->mc", self.lower(x), B)

    def restore(self, y: np.ndarray, x_shape: tuple) -> np.ndarray:
        """The products' outputs ``y`` (M×C) as an NHWC tensor."""
        ho, wo, _ = self.out_shape(x_shape[1:])
        return y.reshape(x_shape[0], ho, wo, -1)

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape ``(H_out, W_out, C)`` for input ``shape``, or ModelError."""
        if len(shape) != 3 or shape[2] != self.weights.shape[2]:
            raise ModelError(f"layer {self.name}: input {shape} is not H×W×{self.weights.shape[2]}")
        ho, wo = _conv_out(self.name, shape, self.weights.shape[:2], self.stride, self.padding,
                           "kernel")
        return (ho, wo, self.weights.shape[2])

    def params(self) -> dict:
        """The layer's parameters besides the arrays, as stored in the model file."""
        return {**self._stage_params(), "stride": list(self.stride),
                "padding": list(self.padding)}


def _pool_shape(layer, shape: tuple) -> tuple:
    if len(shape) != 3:
        raise ModelError(f"layer {layer.name}: pooling needs an H×W×C input, got {shape}")
    ho, wo = _conv_out(layer.name, shape, layer.size, layer.stride, layer.padding, "window")
    return (ho, wo, shape[2])


def _windows(x: np.ndarray, size, stride) -> np.ndarray:
    """``[b, H_out, W_out, C, kh, kw]`` views of the pooling windows."""
    v = np.lib.stride_tricks.sliding_window_view(x, size, axis=(1, 2))
    return v[:, ::stride[0], ::stride[1]]


def _pad(x: np.ndarray, padding, value) -> np.ndarray:
    t, left, b, r = padding
    if not (t or left or b or r):
        return x
    # np.pad's general machinery costs more than the copy on these small tensors
    n, h, w, c = x.shape
    out = np.full((n, h + t + b, w + left + r, c), value, dtype=x.dtype)
    out[:, t:t + h, left:left + w] = x
    return out


@dataclass(frozen=True, eq=False)
class MaxPool:
    """Max pooling over ``size`` windows with ``stride``; ``padding`` (top, left, bottom, right).

    Padding never wins: it is ``−inf`` (float) or the width's smallest integer (quantised).
    """

    size: tuple = (2, 2)
    stride: tuple = (2, 2)
    name: str = ""
    padding: tuple = (0, 0, 0, 0)
    inputs: tuple = ()
    kind = "maxpool"

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The maximum of each window."""
        low = -np.inf if a_bits is None else -(1 << (a_bits - 1))
        xp = _pad(x, self.padding, low)
        (kh, kw), (sy, sx) = self.size, self.stride
        ho, wo = (xp.shape[1] - kh) // sy + 1, (xp.shape[2] - kw) // sx + 1
        # the elementwise maximum of the kh·kw strided views: numpy reduces a 6-D window
        # view over its two small axes 10× slower
        out = None
        for dy in range(kh):
            for dx in range(kw):
                v = xp[:, dy:dy + sy * (ho - 1) + 1:sy, dx:dx + sx * (wo - 1) + 1:sx, :]
                out = v.copy() if out is None else np.maximum(out, v, out=out)
        return out

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape for input ``shape``."""
        return _pool_shape(self, shape)

    def params(self) -> dict:
        """The layer's parameters, as stored in the model file."""
        return {"size": list(self.size), "stride": list(self.stride),
                "padding": list(self.padding)}


def _div_half_even(num: np.ndarray, den) -> np.ndarray:
    """``num / den`` rounded to the nearest integer, ties to even (int64; ``den > 0``)."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    q = np.floor_divide(num, den)
    twice = 2 * (num - q * den)  # 2·remainder in [0, 2·den)
    return q + ((twice > den) | ((twice == den) & (q & 1 == 1)))


#: Largest exponent of a :class:`Rescale` (its sums stay far inside int64).
_RESCALE_MAX_EXP = 48


@dataclass(frozen=True)
class Rescale:
    """A host node's requantisation between tensors of arbitrary scales (fixed-point path).

    Output ``y = clamp(round_half_even(z + Σ_i m_i·(q_i − z_i) / (n · 2**e)), lo, hi)`` for
    inputs ``q_i`` with zero points ``z_i``: input ``i``'s scale ratio ``s_i / s_y`` is held as
    ``m_i / 2**e`` (:meth:`of`: the largest ``m_i`` in ``[2**30, 2**31)``, one exponent for
    all inputs, each ``m_i`` rounded to nearest), ``n`` is 1 (Add, Concat, a change of scale)
    or an average's element count, ``z`` the output zero point, ``[lo, hi]`` a fused ReLU /
    ReLU6 clamp or the width's range.  The sum and the division are exact int64 arithmetic:
    a bit-exact integer function of the scales, rounding ties to even as onnxruntime's float
    requantisation (``nearbyintf``) does.  Where onnxruntime's float32 value of the same
    expression lands within its rounding error of a half, the two differ by one LSB.
    """

    multipliers: tuple
    exponent: int
    zero_points: tuple
    zero_point: int = 0
    lo: int | None = None
    hi: int | None = None

    @classmethod
    def of(cls, ratios, zero_points, zero_point: int, lo: int | None = None,
           hi: int | None = None) -> Rescale:
        """The rescale of inputs with scale ratios ``ratios`` (``s_i / s_y``, finite, > 0)."""
        r = [float(x) for x in ratios]
        if not r or any(not (math.isfinite(x) and x > 0) for x in r):
            raise ModelError(f"scale ratios must be finite and positive, not {ratios!r}")
        e = 31 - math.frexp(max(r))[1]  # the largest ratio · 2**e in [2**30, 2**31)
        if e < 0:
            raise ModelError(f"scale ratio {max(r):g} is beyond 2**31")
        if e > _RESCALE_MAX_EXP:  # ratios below 2**-17: a coarser m, sums stay in int64
            e = _RESCALE_MAX_EXP
        m = tuple(int(math.floor(x * 2.0 ** e + 0.5)) for x in r)
        return cls(multipliers=m, exponent=int(e), zero_points=tuple(int(z) for z in
                                                                       zero_points),
                   zero_point=int(zero_point), lo=lo, hi=hi)

    def bounds(self, bits: int) -> tuple[int, int]:
        """The clamp bounds for ``bits``-wide outputs."""
        lo = -(1 << (bits - 1)) if self.lo is None else self.lo
        hi = (1 << (bits - 1)) - 1 if self.hi is None else self.hi
        return lo, hi

    def centred(self, terms, bits: int, divisor=1) -> np.ndarray:
        """``y`` of centred inputs ``terms[i] = q_i − z_i`` (divided by ``divisor``)."""
        num = sum(np.int64(m) * np.asarray(t, dtype=np.int64)
                  for m, t in zip(self.multipliers, terms, strict=True))
        den = np.asarray(divisor, dtype=np.int64) << np.int64(self.exponent)
        # the zero point is added before rounding (onnxruntime's nearbyintf(y / s + z)): it
        # decides which way an exact tie goes
        return np.clip(_div_half_even(num + self.zero_point * den, den), *self.bounds(bits))

    def apply(self, xs, bits: int) -> np.ndarray:
        """``y`` of the inputs ``xs`` (one array per multiplier)."""
        return self.centred([np.asarray(x, dtype=np.int64) - z
                             for x, z in zip(xs, self.zero_points, strict=True)], bits)

    def one(self, i: int, x, bits: int) -> np.ndarray:
        """Input ``i`` alone at the output scale (a Concat's part)."""
        part = Rescale((self.multipliers[i],), self.exponent, (self.zero_points[i],),
                       self.zero_point, self.lo, self.hi)
        return part.apply([x], bits)

    def to_json(self) -> dict:
        """The rescale as JSON (the model file's form)."""
        return {"multipliers": list(self.multipliers), "exponent": self.exponent,
                "zero_points": list(self.zero_points), "zero_point": self.zero_point,
                "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_json(cls, d: dict) -> Rescale:
        """The rescale of :meth:`to_json`'s form."""
        return cls(multipliers=tuple(int(m) for m in d["multipliers"]),
                   exponent=int(d["exponent"]),
                   zero_points=tuple(int(z) for z in d["zero_points"]),
                   zero_point=int(d["zero_point"]), lo=d.get("lo"), hi=d.get("hi"))


def _avg_int(total: np.ndarray, n: int, a_bits: int) -> np.ndarray:
    """The integer average of window sums ``total`` over ``n`` elements (module docstring)."""
    if n & (n - 1) == 0:
        return requantize(total, n.bit_length() - 1, a_bits)
    return requantize(total * round(2 ** 16 / n), 16, a_bits)


@dataclass(frozen=True, eq=False)
class AvgPool:
    """Average pooling over ``size`` windows with ``stride`` and zero ``padding``.

    ``count_pad``: the padding counts in the divisor (ONNX ``count_include_pad``); else the
    divisor is the number of input elements in the window.  Integer rule in the module
    docstring.
    """

    size: tuple = (2, 2)
    stride: tuple = (2, 2)
    name: str = ""
    padding: tuple = (0, 0, 0, 0)
    count_pad: bool = False
    inputs: tuple = ()
    rescale: Rescale | None = None
    kind = "avgpool"

    def _counts(self, shape: tuple) -> np.ndarray:
        """Elements per window, ``[H_out, W_out]``."""
        if self.count_pad or not any(self.padding):
            ho, wo, _ = self.out_shape(shape)
            return np.full((ho, wo), self.size[0] * self.size[1], dtype=np.int64)
        ones = _pad(np.ones((1,) + shape[:2] + (1,), np.int64), self.padding, 0)
        return _windows(ones, self.size, self.stride).sum(axis=(4, 5))[0, :, :, 0]

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The average of each window, integer rule when quantised (``a_bits``).

        With ``rescale`` (fixed-point path): the sum of ``q − z_in`` over the window's
        elements (padding is the real 0, i.e. ``z_in``), then :meth:`Rescale.centred` with the
        element count as divisor.
        """
        counts = self._counts(x.shape[1:])
        if self.rescale is not None and a_bits is not None:
            z = self.rescale.zero_points[0]
            w = _windows(_pad(np.asarray(x, dtype=np.int64) - z, self.padding, 0), self.size,
                         self.stride)
            return self.rescale.centred([w.sum(axis=(4, 5))], a_bits,
                                        counts[None, :, :, None])
        w = _windows(_pad(x, self.padding, 0), self.size, self.stride)
        if a_bits is None:
            return w.sum(axis=(4, 5)) / counts[None, :, :, None]
        total = w.sum(axis=(4, 5), dtype=np.int64)
        out = np.empty_like(total)
        for n in np.unique(counts):
            at = counts == n
            out[:, at] = _avg_int(total[:, at], int(n), a_bits)
        return out

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape for input ``shape``."""
        return _pool_shape(self, shape)

    def params(self) -> dict:
        """The layer's parameters, as stored in the model file."""
        out = {"size": list(self.size), "stride": list(self.stride),
               "padding": list(self.padding), "count_pad": self.count_pad}
        if self.rescale is not None:
            out["rescale"] = self.rescale.to_json()
        return out


@dataclass(frozen=True, eq=False)
class Flatten:
    """``[b, H, W, C]`` → ``[b, H·W·C]``.

    In HWC order (``"hwc"``, the native one) or in CHW order (``"chw"``, what a float graph from
    PyTorch/ONNX expects of the next layer).
    """

    order: str = "hwc"
    name: str = ""
    inputs: tuple = ()
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
    inputs: tuple = ()
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


@dataclass(frozen=True, eq=False)
class Clip:
    """Clamp to ``[lo, hi]`` (float bounds; ``None``: unbounded), e.g. ReLU6's upper 6.

    Quantised, the bounds are the integers ``qlo``/``qhi`` at the tensor's scale, set by
    :func:`quantize` (rule in the module docstring).
    """

    lo: float | None = None
    hi: float | None = None
    qlo: int | None = None
    qhi: int | None = None
    name: str = ""
    inputs: tuple = ()
    kind = "clip"

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The input clamped (float bounds, or the integer ones when quantised)."""
        lo, hi = (self.lo, self.hi) if a_bits is None else (self.qlo, self.qhi)
        return np.clip(x, lo, hi) if lo is not None or hi is not None else x

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape: the input's."""
        return shape

    def params(self) -> dict:
        """The layer's bounds, as stored in the model file."""
        return {"lo": self.lo, "hi": self.hi, "qlo": self.qlo, "qhi": self.qhi}


def _align(q: np.ndarray, s: int) -> np.ndarray:
    """``q`` at a scale ``s`` bits coarser: round half up for ``s > 0``, exact ``<< −s`` else."""
    q = np.asarray(q, dtype=np.int64)
    if s > 0:
        return (q + (np.int64(1) << np.int64(s - 1))) >> np.int64(s)
    return q << np.int64(-s) if s < 0 else q


def _sat(q: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(q, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


class _Merge:
    """What :class:`Add` and :class:`Concat` share: several inputs, one scale each."""

    def _check_shifts(self, n: int) -> None:
        if self.shifts and len(self.shifts) != n:
            raise ModelError(f"layer {self.name}: {len(self.shifts)} shifts for {n} inputs")

    def _aligned(self, xs, a_bits: int | None):
        if a_bits is None:
            return list(xs)
        self._check_shifts(len(xs))
        shifts = self.shifts or (0,) * len(xs)
        return [_align(x, int(s)) for x, s in zip(xs, shifts, strict=True)]

    def _check_rescale(self, n: int) -> None:
        if len(self.rescale.multipliers) != n:
            raise ModelError(f"layer {self.name}: {len(self.rescale.multipliers)} scales for "
                             f"{n} inputs")

    def params(self) -> dict:
        """The per-input shifts (or the fixed-point rescale), as stored in the model file."""
        out = {"shifts": list(self.shifts)}
        if self.rescale is not None:
            out["rescale"] = self.rescale.to_json()
        return out


@dataclass(frozen=True, eq=False)
class Add(_Merge):
    """Element-wise sum of two or more tensors of one shape (a residual connection).

    Quantised: input ``i`` is aligned by ``shifts[i]`` (module docstring), the sum saturated;
    on the fixed-point path ``rescale`` (:class:`Rescale`) brings every input to the output's
    scale and zero point in one rounding.
    """

    shifts: tuple = ()
    name: str = ""
    inputs: tuple = ()
    rescale: Rescale | None = None
    kind = "add"
    multi = True

    def forward(self, xs, a_bits: int | None) -> np.ndarray:
        """The (aligned, saturated) sum of the inputs ``xs``."""
        if self.rescale is not None and a_bits is not None:
            self._check_rescale(len(xs))
            return self.rescale.apply(xs, a_bits)
        total = sum(self._aligned(xs, a_bits))
        return total if a_bits is None else _sat(total, a_bits)

    def out_shape(self, shapes) -> tuple:
        """The inputs' common shape, or ModelError."""
        if len({tuple(s) for s in shapes}) != 1:
            raise ModelError(f"layer {self.name}: adds tensors of shapes "
                             f"{', '.join(map(str, shapes))}; they must be equal")
        return tuple(shapes[0])


@dataclass(frozen=True, eq=False)
class Concat(_Merge):
    """Tensors joined on the channel (last) axis: ``[.., C1] ‖ [.., C2]`` → ``[.., C1 + C2]``.

    Quantised: input ``i`` is aligned by ``shifts[i]`` and saturated (module docstring); on
    the fixed-point path each input is brought to the output's scale by ``rescale``.
    """

    shifts: tuple = ()
    name: str = ""
    inputs: tuple = ()
    rescale: Rescale | None = None
    kind = "concat"
    multi = True

    def forward(self, xs, a_bits: int | None) -> np.ndarray:
        """The (aligned, saturated) inputs ``xs`` joined on the last axis."""
        if self.rescale is not None and a_bits is not None:
            self._check_rescale(len(xs))
            return np.concatenate([self.rescale.one(i, x, a_bits) for i, x in enumerate(xs)],
                                  axis=-1)
        parts = self._aligned(xs, a_bits)
        if a_bits is not None:
            parts = [_sat(p, a_bits) for p in parts]
        return np.concatenate(parts, axis=-1)

    def out_shape(self, shapes) -> tuple:
        """The joined shape, or ModelError if the inputs differ but in channels."""
        if len({tuple(s[:-1]) for s in shapes}) != 1:
            raise ModelError(f"layer {self.name}: joins tensors of shapes "
                             f"{', '.join(map(str, shapes))}; all but the channels must agree")
        return tuple(shapes[0][:-1]) + (sum(s[-1] for s in shapes),)


@dataclass(frozen=True, eq=False)
class Requantize:
    """A change of scale and zero point on the host (fixed-point path), with an optional clamp.

    What a quantised graph's ``DequantizeLinear → Relu/Clip → QuantizeLinear`` does when the
    two scales differ: :class:`Rescale` of one input (its ``lo``/``hi`` the fused clamp).
    """

    rescale: Rescale
    name: str = ""
    inputs: tuple = ()
    kind = "requantize"

    def forward(self, x: np.ndarray, a_bits: int | None) -> np.ndarray:
        """The input at the output's scale."""
        if a_bits is None:
            raise ModelError(f"layer {self.name}: a requantisation has no float form")
        return self.rescale.apply([x], a_bits)

    def out_shape(self, shape: tuple) -> tuple:
        """The output shape: the input's."""
        return shape

    def params(self) -> dict:
        """The rescale, as stored in the model file."""
        return {"rescale": self.rescale.to_json()}


_KINDS = {cls.kind: cls for cls in (Dense, Conv2D, DepthwiseConv2D, MaxPool, AvgPool, Flatten,
                                    ReLU, Clip, Add, Concat, Requantize)}
_PRODUCTS = (Dense, Conv2D, DepthwiseConv2D)

#: Where each node kind runs (the table of the module docstring): array products (their
#: bias, ReLU and requantisation in the output stage) or host integer functions.
WHERE = {"dense": "array", "conv2d": "array", "dwconv": "array", "maxpool": "host",
         "avgpool": "host", "add": "host", "concat": "host", "relu": "host", "clip": "host",
         "flatten": "host", "requantize": "host"}


def im2col(x: np.ndarray, size, stride=(1, 1), padding=(0, 0, 0, 0),
           value=0) -> np.ndarray:
    """``[b, H, W, C]`` → ``[b·H_out·W_out, kh·kw·C]`` patches, channels fastest (Ozen 2023 §8.4.2).

    The padding holds ``value`` (0; the input's zero point on the fixed-point path).
    """
    w = _patches(x, size, stride, padding, value)
    b, ho, wo = w.shape[:3]
    return w.reshape(b * ho * wo, -1)


def _patches(x: np.ndarray, size, stride, padding, value) -> np.ndarray:
    """``[b, H_out, W_out, kh, kw, C]`` views of the padded input's patches (im2col's rows)."""
    return _windows(_pad(x, padding, value), tuple(size), stride).transpose(0, 1, 2, 4, 5, 3)


class LoweredConv:
    """A convolution's im2col matrix (:func:`im2col`) read a few columns or one row at a time.

    A one-cycle fault reads one column of one K-tile of the lowered matrix (the lane a flipped
    weight or activation multiplies) or one row (a flipped partial sum): this reads those
    from strided views of the padded input (``[b, H_out, W_out, kh, kw, C]``, channels
    fastest, as :func:`im2col` orders K) instead of copying all ``M × K`` values.
    ``np.asarray`` gives the whole matrix (formed once); any other index reads from it.
    """

    ndim = 2
    dtype = np.dtype(np.int64)

    def __init__(self, layer: Conv2D, x: np.ndarray):
        kh, kw = layer.weights.shape[:2]
        self.x = x
        self._w = _patches(x, (kh, kw), layer.stride, layer.padding, layer.pad_value)
        b, ho, wo = self._w.shape[:3]
        self._grid = (b, ho, wo)
        self._kwc = (kw, x.shape[-1])
        self.shape = (b * ho * wo, kh * kw * x.shape[-1])
        self._full = None

    def __array__(self, dtype=None, copy=None):
        """The whole lowered matrix (:meth:`Conv2D.lower`), formed once."""
        if self._full is None:
            self._full = self._w.reshape(self.shape)
        return self._full if dtype is None else self._full.astype(dtype)

    def __getitem__(self, key):
        """Columns (all rows, or a range of them) or one row from the views; else the matrix.

        ``[rows, k]`` / ``[rows, k0:k1]`` with ``rows`` a slice: those columns; ``[j, …]`` or
        a one-row slice ``[j:j + 1, …]``: row j.  Anything else reads the whole matrix.
        """
        rows, cols = key if isinstance(key, tuple) and len(key) == 2 else (key, slice(None))
        if self._full is not None:
            return self._full[key]
        one = isinstance(cols, int | np.integer)
        if one:
            cols = slice(int(cols), int(cols) + 1)
        if not (isinstance(cols, slice) and cols.step in (None, 1)):
            return np.asarray(self)[key]
        M, K = self.shape
        k0, k1, _ = cols.indices(K)
        if isinstance(rows, slice):
            r0, r1, step = rows.indices(M)
            if step == 1 and r1 - r0 == 1:  # one row, kept 2-D
                row = self._w[np.unravel_index(r0, self._grid)].reshape(-1)[k0:k1]
                return row if one else row[None, :]
            kw, c = self._kwc
            out = np.empty((M, max(k1 - k0, 0)), dtype=self.x.dtype)
            for i, k in enumerate(range(k0, k1)):
                ky, rest = divmod(k, kw * c)
                out[:, i] = self._w[:, :, :, ky, rest // c, rest % c].reshape(-1)
            out = out[rows]
            return out[:, 0] if one else out
        if isinstance(rows, int | np.integer):
            row = self._w[np.unravel_index(int(rows) % M, self._grid)].reshape(-1)[k0:k1]
            return row[0] if one else row
        return np.asarray(self)[key]


def product_stats(st: LayerStats, layer, rq: Requant, M: int, K: int, N: int, cycles: int,
                  alarms: dict) -> LayerStats:
    """``st`` filled in for a product node's M×K @ K×N product (output stage ``rq``)."""
    st.requant = "multiplier" if rq.fixed else "shift"
    st.shift = None if rq.fixed else layer.shift
    st.M, st.K, st.N, st.macs = M, K, N, M * K * N
    st.cycles, st.alarms = cycles, dict(alarms)
    return st


def product_layers(model: Model) -> list[int]:
    """Indices of the nodes that run on the accelerator's array (dense, conv, depthwise)."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, _PRODUCTS)]


def _is_multi(layer) -> bool:
    return getattr(layer, "multi", False)


def _apply(layer, ins: list, a_bits: int | None):
    """A host node's output for its input tensors ``ins``."""
    return layer.forward(ins if _is_multi(layer) else ins[0], a_bits)


# -- the model ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Model:
    """A network: its nodes (``layers``, topologically ordered) and what its input looks like.

    ``input_shape`` is one image in the layers' layout (``(H, W, C)`` or ``(F,)``);
    ``input_layout`` says how the user's images may also arrive (``"chw"`` for graphs
    imported from ONNX, transposed on entry).  A quantised model has ``a_bits``/``w_bits``
    (activation and weight widths), ``input_frac`` (inputs are ``round(x · 2**input_frac)``)
    and ``fracs`` (each node's output scale); a float model has ``a_bits = None``.
    A *fixed-point* model (an int8 model quantised by another tool, README, Two quantisation paths)
    has instead
    ``input_scale``/``input_zero_point`` (inputs are ``clamp(round(x / s) + z)``, as ONNX's
    QuantizeLinear) and ``scales``: each node's output ``(scale, zero_point)``, real =
    ``scale · (q − zero_point)``; its product nodes carry a fixed-point ``requant``.
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
    input_scale: float | None = None
    input_zero_point: int = 0
    scales: tuple = ()

    def __post_init__(self):
        """Check the graph (inputs read earlier nodes, shapes agree, ``classes`` scores out).

        ModelError naming the node otherwise.
        """
        if not self.layers:
            raise ModelError(f"model {self.name}: no layers")
        self._check_meta()
        shapes = self.shapes()
        if shapes[-1] != (self.classes,):
            raise ModelError(f"model {self.name}: the last layer gives {shapes[-1]}, not "
                             f"({self.classes},) class scores")

    def _check_meta(self) -> None:
        """The fields beside the layers: widths as the array takes them, a known layout.

        A model file is user input: a width of 99 or a layout of 5 would otherwise run and
        give numbers (issue 30), so ModelError naming the field.
        """
        where = f"model {self.name}"
        if self.input_layout not in ("hwc", "chw", "flat"):
            raise ModelError(f"{where}: input_layout {self.input_layout!r} is not 'hwc', "
                             f"'chw' or 'flat'")
        for name in ("a_bits", "w_bits"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int | np.integer) or isinstance(v, bool)
                                  or not 2 <= v <= 16):
                raise ModelError(f"{where}: {name} {v!r} is not an integer from 2 to 16 (or "
                                 f"none for a float model)")
        if (self.a_bits is None) != (self.w_bits is None):
            raise ModelError(f"{where}: a_bits and w_bits are both set (quantised) or both "
                             f"none (float)")
        if not isinstance(self.classes, int | np.integer) or self.classes < 1:
            raise ModelError(f"{where}: classes {self.classes!r} is not a positive integer")
        if self.quantized and not self.fixed and len(self.fracs) != len(self.layers):
            raise ModelError(f"{where}: {len(self.fracs)} output scales (fracs) for "
                             f"{len(self.layers)} layers")

    @property
    def quantized(self) -> bool:
        """Whether the model is quantised (has ``a_bits``)."""
        return self.a_bits is not None

    @property
    def fixed(self) -> bool:
        """Whether the model is on the fixed-point path (scales as another tool gave them)."""
        return self.input_scale is not None

    @property
    def is_chain(self) -> bool:
        """Whether every node reads the node before it (a plain chain)."""
        return all(self.sources(i) == (i - 1,) for i in range(len(self.layers)))

    def sources(self, i: int) -> tuple[int, ...]:
        """The nodes node ``i`` reads (``-1``: the graph input)."""
        return tuple(self.layers[i].inputs) or (i - 1,)

    def readers(self, i: int) -> list[int]:
        """The nodes that read node ``i``'s output (``-1``: the graph input)."""
        return [j for j in range(max(i + 1, 0), len(self.layers)) if i in self.sources(j)]

    def frontier(self, start: int) -> list[int]:
        """The tensors a run from node ``start`` on needs: nodes before it that later ones read.

        ``-1`` is the graph input; for ``start`` past the last node, the last node (the
        logits).
        """
        n = len(self.layers)
        if start >= n:
            return [n - 1]
        need = {j for i in range(start, n) for j in self.sources(i) if j < start}
        return sorted(need)

    def shapes(self) -> list[tuple]:
        """Per-image output shape of every node (ModelError naming a malformed node)."""
        out: list[tuple] = []
        for i, layer in enumerate(self.layers):
            srcs = self.sources(i)
            if any(not isinstance(j, int | np.integer) or not -1 <= j < i for j in srcs):
                raise ModelError(f"model {self.name}: layer {layer.name or i} reads "
                                 f"{list(srcs)}; a node reads only earlier nodes (or -1, the "
                                 f"input)")
            ins = [tuple(self.input_shape) if j == -1 else out[j] for j in srcs]
            if _is_multi(layer):
                if len(ins) < 2:
                    raise ModelError(f"model {self.name}: layer {layer.name} ({layer.kind}) "
                                     f"needs two or more inputs")
                out.append(tuple(layer.out_shape(ins)))
            else:
                if len(ins) != 1:
                    raise ModelError(f"model {self.name}: layer {layer.name} ({layer.kind}) "
                                     f"reads one input, not {len(ins)}")
                out.append(tuple(layer.out_shape(ins[0])))
        return out

    def input_shapes(self, i: int) -> list[tuple]:
        """The per-image shapes of node ``i``'s inputs."""
        shapes = self.shapes()
        return [tuple(self.input_shape) if j == -1 else shapes[j] for j in self.sources(i)]

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
        if self.fixed:
            s, z = self.input_scale, self.input_zero_point
            return (s * (-(hi + 1) - z), s * (hi - z))
        return (-(hi + 1) / 2.0 ** self.input_frac, hi / 2.0 ** self.input_frac)

    def quantize_input(self, images: np.ndarray, check: bool = True) -> np.ndarray:
        """Integer inputs ``round(x · 2**input_frac)``.

        With ``check``, data outside the representable range (more than half an LSB beyond it) is a
        ModelError.  A fixed-point model quantises as ONNX's QuantizeLinear does in
        onnxruntime: ``x / s`` in float32, rounded half to even, plus the zero point,
        saturated (no range check: QuantizeLinear saturates).
        """
        if self.fixed:
            x = self.prepare(np.asarray(images, dtype=np.float32))
            hi = (1 << (self.a_bits - 1)) - 1
            v = np.rint(x / np.float32(self.input_scale)).astype(np.int64)
            return np.clip(v + self.input_zero_point, -hi - 1, hi)
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
        return _walk(self, {-1: x}, 0, len(self.layers), _float_node)[len(self.layers) - 1]

    # -- files -------------------------------------------------------------------------------
    def to_meta(self) -> dict:
        """The model's description (format, shapes, widths, layers) without the arrays."""
        layers = []
        for i, layer in enumerate(self.layers):
            entry = {"kind": layer.kind, "name": layer.name, **layer.params()}
            if self.sources(i) != (i - 1,):
                entry["inputs"] = [int(j) for j in self.sources(i)]
            layers.append(entry)
        meta = {"format": FORMAT, "version": VERSION, "name": self.name,
                "input_shape": list(self.input_shape), "input_layout": self.input_layout,
                "classes": self.classes, "a_bits": self.a_bits, "w_bits": self.w_bits,
                "input_frac": self.input_frac, "fracs": list(self.fracs), "info": self.info,
                "layers": layers}
        if self.fixed:
            meta.update({"input_scale": float(self.input_scale),
                         "input_zero_point": int(self.input_zero_point),
                         "scales": [[float(sc), int(z)] for sc, z in self.scales]})
        return meta

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
        try:  # through the door: a regular file, size-capped, never a FIFO
            data = source.read() if hasattr(source, "read") else read_input(source, "model")
        except FileProblem as exc:
            raise ModelError(str(exc)) from None
        try:  # a truncated or corrupt archive: one ModelError line (exit 2)
            arrays = parse_npz(data, str(where))
        except FileProblem as exc:
            raise ModelError(f"{where}: not a model file ({str(exc).split(': ', 1)[-1]})") \
                from None
        try:
            meta = parse_json(arrays.pop("__meta__").tobytes(), str(where))
        except (KeyError, FileProblem):
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
                for key in ("stride", "padding", "size", "inputs", "shifts"):
                    if key in spec:
                        spec[key] = tuple(spec[key])
                if spec.get("requant") is not None:  # version 3: the fixed-point path
                    spec["requant"] = requant_from_json(spec["requant"])
                if spec.get("rescale") is not None:
                    spec["rescale"] = Rescale.from_json(spec["rescale"])
                if cls_ in _PRODUCTS:
                    spec["weights"] = arrays[f"L{i}.weights"]
                    spec["bias"] = arrays[f"L{i}.bias"]
                layers.append(cls_(**spec))
            return cls(layers=tuple(layers), input_shape=tuple(meta["input_shape"]),
                       classes=int(meta["classes"]), name=meta["name"],
                       input_layout=meta["input_layout"], a_bits=meta["a_bits"],
                       w_bits=meta["w_bits"], input_frac=int(meta["input_frac"]),
                       fracs=tuple(meta["fracs"]), info=meta.get("info", {}),
                       input_scale=(None if meta.get("input_scale") is None
                                    else float(meta["input_scale"])),
                       input_zero_point=int(meta.get("input_zero_point", 0)),
                       scales=tuple((float(sc), int(z)) for sc, z in meta.get("scales", ())))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{where}: malformed model file (missing or bad {exc})") from None


# -- walking the graph -------------------------------------------------------------------------

def _last_use(model: Model, start: int, stop: int) -> dict[int, int]:
    """For each tensor, the last node in ``start … stop − 1`` that reads it."""
    last: dict[int, int] = {}
    for i in range(start, stop):
        for j in model.sources(i):
            last[j] = i
    return last


def _walk(model: Model, state: dict, start: int, stop: int, node_fn, keep: bool = False) -> dict:
    """Run ``node_fn(i, layer, inputs)`` for nodes ``start … stop − 1`` in order.

    ``state`` holds the tensors the nodes read from before ``start`` (see
    :meth:`Model.frontier`).  Returns the tensors computed (all with ``keep``, else only
    those still read after ``stop`` and the last one), so memory holds only live tensors.
    """
    vals = dict(state)
    last = _last_use(model, start, stop)
    for i in range(start, stop):
        srcs = model.sources(i)
        try:
            ins = [vals[j] for j in srcs]
        except KeyError as exc:
            raise ModelError(f"layer {model.layers[i].name}: its input (node {exc.args[0]}) "
                             f"was not given to the run") from None
        vals[i] = node_fn(i, model.layers[i], ins)
        if not keep:
            for j in set(srcs):
                if last[j] == i:  # no later node reads it
                    del vals[j]
    return vals


def _float_node(i, layer, ins):
    if isinstance(layer, _PRODUCTS):
        x = ins[0]
        y = layer.accumulate(x) + layer.bias
        if layer.relu:
            y = np.maximum(y, 0)
        return layer.restore(y, x.shape)
    return _apply(layer, ins, None)


def state_at(model: Model, x: np.ndarray, outputs, start: int) -> dict:
    """The tensors :func:`run` needs to start at node ``start``.

    ``x`` is the graph input and ``outputs`` the recorded outputs of a run from node 0
    (:attr:`Inference.outputs`, one per node); the result maps node index (``-1``: the
    input) to tensor, for the nodes before ``start`` that the nodes from ``start`` on read.
    """
    return {j: (x if j == -1 else outputs[j]) for j in model.frontier(start)}


# -- quantisation ------------------------------------------------------------------------------

def _frac_for(amax: float, bits: int) -> int:
    """Largest power-of-two scale at which ``amax`` still fits ``bits`` signed bits."""
    if amax <= 0 or not math.isfinite(amax):
        return 0
    return int(math.floor(math.log2(((1 << (bits - 1)) - 1) / amax)))


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def _amax(x: np.ndarray) -> float:
    return float(np.abs(x).max()) if x.size else 1.0


def _qbound(v: float | None, frac: int, bits: int) -> int | None:
    """A float clamp bound at scale ``frac``: ``round_half_up(v · 2**frac)`` within ``bits``."""
    if v is None:
        return None
    qmax = (1 << (bits - 1)) - 1
    return int(np.clip(math.floor(v * 2.0 ** frac + 0.5), -qmax - 1, qmax))


def _quantize_product(layer, xf, xq, frac: int, a_bits: int, w_bits: int):
    """The quantised product node, its float and integer outputs and its output scale."""
    W = np.asarray(layer.weights, dtype=np.float64)
    f_w = _frac_for(float(np.abs(W).max()) if W.size else 1.0, w_bits)
    wmax = (1 << (w_bits - 1)) - 1
    Wq = np.clip(_round(W * 2.0 ** f_w), -wmax - 1, wmax)
    f_acc = frac + f_w
    bq = _round(np.asarray(layer.bias, dtype=np.float64) * 2.0 ** f_acc)
    yf = layer.accumulate(xf) + layer.bias
    if layer.relu:
        yf = np.maximum(yf, 0)
    qlayer = dataclasses.replace(layer, weights=Wq, bias=bq, shift=0)
    acc = qlayer.accumulate(xq)
    f_top = _frac_for(_amax(yf), a_bits)
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
    _, shift, f_out, q = best
    qlayer = dataclasses.replace(qlayer, shift=int(shift))
    return qlayer, layer.restore(yf, xf.shape), layer.restore(q, xq.shape), int(f_out)


def quantize(model: Model, calibration: np.ndarray, *, a_bits: int = 8, w_bits: int = 8,
             name: str | None = None) -> Model:
    """The quantised model of a float ``model``.

    Its scales are calibrated on ``calibration`` images (training data), node by node on the
    already-quantised path: products pick their shift, Add/Concat their output scale and
    input shifts, Clip its integer bounds (rules in the module docstring).
    """
    if model.quantized:
        raise ModelError(f"model {model.name} is already quantised")
    for what, bits in (("a_bits", a_bits), ("w_bits", w_bits)):
        if not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ModelError(f"{what} must be 2 … 16, not {bits!r}")
    xf = model.prepare(np.asarray(calibration, dtype=np.float64))
    f_in = _frac_for(_amax(xf), a_bits)
    qmax = (1 << (a_bits - 1)) - 1
    xq = np.clip(_round(xf * 2.0 ** f_in), -qmax - 1, qmax)
    layers: list = []
    fracs: dict[int, int] = {-1: f_in}
    vf, vq = {-1: xf}, {-1: xq}
    last = _last_use(model, 0, len(model.layers))
    for i, layer in enumerate(model.layers):
        srcs = model.sources(i)
        inf, inq, inr = [vf[j] for j in srcs], [vq[j] for j in srcs], [fracs[j] for j in srcs]
        if isinstance(layer, _PRODUCTS):
            layer, yf, yq, fracs[i] = _quantize_product(layer, inf[0], inq[0], inr[0], a_bits,
                                                        w_bits)
        elif isinstance(layer, Add | Concat):
            yf = _apply(layer, inf, None)
            f_out = min(_frac_for(_amax(yf), a_bits), max(inr))
            layer = dataclasses.replace(layer, shifts=tuple(int(f - f_out) for f in inr))
            yq = _apply(layer, inq, a_bits)
            fracs[i] = f_out
        elif isinstance(layer, Clip):
            layer = dataclasses.replace(layer, qlo=_qbound(layer.lo, inr[0], a_bits),
                                        qhi=_qbound(layer.hi, inr[0], a_bits))
            yf, yq, fracs[i] = _apply(layer, inf, None), _apply(layer, inq, a_bits), inr[0]
        else:
            yf, yq, fracs[i] = _apply(layer, inf, None), _apply(layer, inq, a_bits), inr[0]
        layers.append(layer)
        vf[i], vq[i] = yf, yq
        for j in set(srcs):  # free what no later node reads
            if last.get(j) == i:
                vf.pop(j, None)
                vq.pop(j, None)
    info = dict(model.info)
    info["calibration"] = {"images": int(len(calibration)), "rule": "power-of-two scales; "
                           "per-layer shift minimising MSE against the float network"}
    return Model(layers=tuple(layers), input_shape=model.input_shape, classes=model.classes,
                 name=name or model.name, input_layout=model.input_layout, a_bits=a_bits,
                 w_bits=w_bits, input_frac=f_in, fracs=tuple(fracs[i] for i in
                                                             range(len(layers))), info=info)


# -- fit against a configuration ---------------------------------------------------------------

def check_fit(model: Model, cfg) -> None:
    """Raise ModelError naming the first layer that cannot run on ``cfg``.

    Checked: the widths (the output stage saturates to ``cfg.a_width``, so the model's
    activation width must equal it; weights must fit ``cfg.w_width``); every product's
    reduction length ``K ≤ cfg.max_k``; and the worst case of every partial sum
    (``Σ_k |W[k, n]| · 2**(a−1)`` plus the bias where it enters the accumulator) within the
    ``cfg.acc_bits`` accumulator, so that no input can overflow it; the bias within the
    accumulator-wide bias port; the shift within 0 … 63.  A fixed-point node (``requant``)
    needs the configuration's multiplier (``requant = "multiplier"``), its accumulator plus
    bias within gemmlowp's 32 signed bits for every input, and its parameters within the
    output stage's ports (:func:`golden.schedule.check_requant`).
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
        if layer.requant is not None:
            _check_fixed_fit(layer, cfg, worst + (0 if cfg.bias_in_psum else bias))


def _check_fixed_fit(layer, cfg, worst: np.ndarray) -> None:
    """The fixed-point parts of :func:`check_fit` for product node ``layer``."""
    if cfg.requant != "multiplier":
        raise ModelError(f"layer {layer.name}: its scales need the fixed-point multiplier in "
                         f"the output stage (an int8 model quantised by another tool); add "
                         f"--requant multiplier (configuration field requant = 'multiplier')")
    if worst.max(initial=0) > (1 << 31) - 1:
        raise ModelError(f"layer {layer.name}: accumulator plus bias can reach "
                         f"{int(worst.max())}, beyond the fixed-point path's 32 signed bits")
    try:
        check_requant(cfg, layer.requant, layer.matrix.shape[1])
    except ConfigError as exc:
        raise ModelError(f"layer {layer.name}: {exc}") from None


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
    """One layer's product as the accelerator sees it: ``A`` (M×K) @ ``B`` (K×N).

    ``requant`` is what the output stage does with ``A @ B + bias``
    (:class:`golden.output_stage.Requant`: the power-of-two ReLU and shift, or the fixed-point
    multiplier, shift, zero point and clamp, per column where the layer has per-channel
    scales, in the product's column order).  ``part``: which of a depthwise node's C
    one-column products this is (its channel; 0 for the one product of a dense or convolution
    node).
    """

    index: int
    name: str
    A: np.ndarray
    B: np.ndarray
    bias: np.ndarray
    requant: Requant
    fault: Fault | None = None
    units: dict = field(default_factory=dict)
    part: int = 0

    def _pow2(self, what: str):
        if self.requant.fixed:
            raise ModelError(f"layer {self.name}: a fixed-point output stage has no "
                             f"power-of-two {what}; this engine needs requant 'shift' models")
        return getattr(self.requant, what)

    @property
    def relu(self) -> bool:
        """The power-of-two path's ReLU (ModelError on the fixed-point path)."""
        return bool(self._pow2("relu"))

    @property
    def shift(self) -> int:
        """The power-of-two path's shift (ModelError on the fixed-point path)."""
        return int(self._pow2("shift"))

    def program_args(self) -> dict:
        """The output-stage keywords of :func:`golden.schedule.build_program` for this product."""
        if self.requant.fixed:
            return {"requant": self.requant}
        return {"relu": bool(self.requant.relu), "shift": int(self.requant.shift)}


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
    #: The output stage's path: ``"shift"`` (power of two) or ``"multiplier"`` (fixed point).
    requant: str = ""

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

    The last node's integer outputs (logits), per-node statistics, and (with ``record``) every
    node's output tensor (``outputs[k]`` is node ``start + k``'s; :func:`state_at` picks from
    them what a later run from a node on needs).
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
    (or a fault model that subclasses this one and overrides :meth:`product`).  ``plain``
    (default on): a product without units, bypass or fault runs in floating point
    (:meth:`plain_product`, the same results); off, every product takes :meth:`product`'s
    integer path (for benchmarks and tests that compare the two).
    """

    name = "golden"

    def __init__(self, cfg, *, plain: bool = True):
        self.cfg = cfg
        self.plain = plain

    def product(self, p: Product) -> ProductResult:
        """The product ``p`` as the accelerator computes it, in closed form."""
        if p.fault is not None:
            raise NotImplementedError("a register fault needs the cycle or RTL engine")
        cfg = self.cfg
        opts = golden_units.options(cfg, p.units)
        A = units_matrix(cfg, p.A, opts)
        bmap = golden_units.bypass_map(opts)
        if bmap is not None and np.any(bmap):
            acc = pruned_matmul(cfg.dataflow, A, p.B, bmap, p.bias, acc_bits=cfg.acc_bits)
        else:
            acc = matmul(cfg, A, p.B, p.bias).acc
        q = p.requant.apply(acc, 0, cfg.a_width, **golden_units.requant_keywords(cfg, opts))
        q = golden_units.correct(cfg, q, opts)
        M, K = p.A.shape
        cycles = cycle_count(cfg, M, K, p.B.shape[1], golden_units.temporal_batch(opts))
        return ProductResult(q=q, cycles=cycles)

    #: The :meth:`product` that :meth:`plain_product` stands for: a subclass that overrides
    #: ``product`` (to watch or record products) without saying so here never takes it.
    _plain_of = product

    def plain_product(self, layer, x: np.ndarray, units: dict) -> ProductResult | None:
        """Node ``layer``'s product on its input tensor ``x`` in floating point, or None.

        What :meth:`product` gives for the layer without a fault, computed without the int64
        lowered matrix: the input converted once to float32 (or float64), lowered in that
        type (im2col for a convolution, a view for a 1×1 one, a sum of shifted windows for a
        depthwise one), one BLAS product, the output stage in the same type
        (:func:`golden.array.float_plan`, :func:`golden.array.float_product`: exact, the bound
        taken from the input's largest magnitude and the weights, no scan of the lowered
        matrix).  None (the caller runs :meth:`product`) where the configuration changes the
        product (input units, bypass, split lanes) or the bound does not prove the product
        exact and free of accumulator overflow.  ``q`` is M×N (depthwise: M×C).
        """
        cfg = self.cfg
        if units or getattr(self, "_plain_none", None) is None:
            opts = golden_units.options(cfg, units)
            bmap = golden_units.bypass_map(opts)
            ok = not ((bmap is not None and np.any(bmap))
                      or golden_units.filters_inputs(cfg, opts)
                      or any(v is not None and np.any(v) for v in
                             golden_units.requant_keywords(cfg, opts).values()))
            if not units:  # the common case, decided once per engine
                self._plain_none = (ok, opts)
        else:
            ok, opts = self._plain_none
        if not ok:
            return None
        xf = x.astype(np.float32)
        amax = float(max(-xf.min(), xf.max())) if xf.size else 0.0
        if any(getattr(layer, "padding", ())):
            amax = max(amax, float(abs(layer.pad_value)))
        if amax >= 1 << 24:  # float32 may have rounded: read the integers
            amax = float(max(-x.min(), x.max(), abs(getattr(layer, "pad_value", 0))))
        B = layer.matrix
        rq = layer.requantisation()
        wsum = _WEIGHT_SUMS.get(layer)
        if wsum is None:
            wsum = _WEIGHT_SUMS[layer] = np.abs(B.astype(np.float64)).sum(axis=0)
        ftype = float_plan(amax, B, layer.bias, rq, acc_bits=cfg.acc_bits,
                           bias_in_psum=cfg.bias_in_psum, wsum=wsum)
        if ftype is None:
            return None
        if ftype is not np.float32:
            xf = x.astype(ftype)
        tb = golden_units.temporal_batch(opts)
        if isinstance(layer, DepthwiseConv2D):
            acc = _depthwise_float(layer, xf)
            q = float_stage(acc.reshape(-1, acc.shape[-1]), layer.bias, rq, cfg.a_width)
            M, C = q.shape
            return ProductResult(q=golden_units.correct(cfg, q, opts),
                                 cycles=C * cycle_count(cfg, M, B.shape[0], 1, tb))
        # a chunk of images at a time: the lowered matrix stays within LOWER_CHUNK values
        per_image = max(1, math.prod(layer.out_shape(x.shape[1:])[:-1]) * B.shape[0])
        step = max(1, LOWER_CHUNK // per_image)
        Bf = _FLOAT_WEIGHTS.setdefault(layer, {}).get(ftype)
        if Bf is None:
            Bf = _FLOAT_WEIGHTS[layer][ftype] = B.astype(ftype)
        if step >= len(x):
            q = float_product(_lower_float(layer, xf), Bf, layer.bias, rq, cfg.a_width)
        else:
            q = np.concatenate([float_product(_lower_float(layer, xf[b0:b0 + step]), Bf,
                                              layer.bias, rq, cfg.a_width)
                                for b0 in range(0, len(x), step)])
        q = golden_units.correct(cfg, q, opts)
        return ProductResult(q=q, cycles=cycle_count(cfg, q.shape[0], B.shape[0], B.shape[1],
                                                     tb))


#: Per product node, its weight matrix's column sums ``Σ_k |b_kn|`` (float64), the bound of
#: :func:`golden.array.float_plan`; held while the node lives (a node's arrays are never changed
#: in place: a changed layer is a new node).
_WEIGHT_SUMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Per product node, its weight matrix in the floating-point types the plan took
#: (``{np.float32: …}``), converted once instead of on every product (as :data:`_WEIGHT_SUMS`).
_FLOAT_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Most values of a lowered (im2col) matrix :meth:`FunctionalEngine.plain_product` forms at
#: once (float32: 16 MiB); a larger batch is lowered and multiplied a chunk of images at a time.
LOWER_CHUNK = 1 << 22


#: A convolution whose kernel rows hold fewer values than this (``kw · C_in``) is lowered K-major
#: (:func:`_lower_k_major`): im2col's copy would move that few values at a time.
NARROW_ROW = 16


def _lower_float(layer, xf: np.ndarray) -> np.ndarray:
    """``layer.lower(xf)`` with no copy where a view is the same matrix (1×1, unpadded).

    A narrow convolution (``kw · C_in`` < :data:`NARROW_ROW`) is lowered K-major
    (:func:`_lower_k_major`); the matrix is the same, its layout column-major.
    """
    if isinstance(layer, Conv2D):
        kh, kw, ci, _ = layer.weights.shape
        if (kh, kw) == (1, 1) and not any(layer.padding):
            sy, sx = layer.stride
            v = xf[:, ::sy, ::sx, :] if (sy, sx) != (1, 1) else xf
            return v.reshape(-1, v.shape[-1])
        if kw * ci < NARROW_ROW:
            return _lower_k_major(layer, xf)
    return layer.lower(xf)


def _lower_k_major(layer: Conv2D, xf: np.ndarray) -> np.ndarray:
    """:meth:`Conv2D.lower`'s M × K matrix, column-major: the transpose of a K × M array.

    Row k = (dy, dx, c) of the K × M array is one channel's input window shifted by
    (dy, dx), copied a whole output row (``W_out`` values) at a time; im2col's row-major copy
    moves ``kw · C_in`` values at a time, which for a one-channel 5×5 kernel (LeNet-5's
    first layer) made the copy 2.5× slower than this one and the product.  The BLAS takes
    the transpose without a copy (its transposed-operand form).
    """
    kh, kw, ci, _ = layer.weights.shape
    sy, sx = layer.stride
    xp = _pad(xf, layer.padding, xf.dtype.type(layer.pad_value)).transpose(3, 0, 1, 2)
    ho, wo, _ = layer.out_shape(xf.shape[1:])
    At = np.empty((kh, kw, ci, len(xf), ho, wo), dtype=xf.dtype)
    for dy in range(kh):
        for dx in range(kw):
            At[dy, dx] = xp[:, :, dy:dy + sy * (ho - 1) + 1:sy, dx:dx + sx * (wo - 1) + 1:sx]
    return At.reshape(kh * kw * ci, -1).T


def _depthwise_float(layer: DepthwiseConv2D, xf: np.ndarray) -> np.ndarray:
    """Every channel's product ``[b, H_out, W_out, C]``: a sum over the kernel's positions.

    Each position's window is a strided view of the padded input, multiplied by that
    position's C weights and added: no im2col, no loop over channels.  Exact in ``xf``'s
    type under :func:`golden.array.float_plan`'s bound (every partial sum is a sum of a
    subset of the products).
    """
    kh, kw, _ = layer.weights.shape
    sy, sx = layer.stride
    xp = _pad(xf, layer.padding, xf.dtype.type(layer.pad_value))
    ho, wo, _ = layer.out_shape(xf.shape[1:])
    w = layer.weights.astype(xf.dtype)
    acc = None
    for dy in range(kh):
        for dx in range(kw):
            term = xp[:, dy:dy + sy * (ho - 1) + 1:sy, dx:dx + sx * (wo - 1) + 1:sx, :] \
                * w[dy, dx]
            acc = term if acc is None else np.add(acc, term, out=acc)
    return acc


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
        program = build_program(cfg, p.A, p.B, bias=p.bias, fault=p.fault, **p.program_args(),
                                **p.units)
        rec = self.execute(program, p.fault)
        return ProductResult(q=program_result(program, rec), cycles=int(program.cycles),
                             alarms=golden_units.alarms(cfg, rec))


def _options_for(options, index: int, name: str) -> LayerOptions:
    if options is None:
        return LayerOptions()
    if callable(options):
        return options(index, name) or LayerOptions()
    return options.get(index) or options.get(name) or LayerOptions()


def _initial_state(model: Model, x, start: int) -> dict:
    """The tensors of a run from node ``start``: ``x`` as :func:`run` takes it."""
    if isinstance(x, dict):
        state = {int(j): np.asarray(v, dtype=np.int64) for j, v in x.items()}
        missing = [j for j in model.frontier(start) if j not in state]
        if missing:
            names = ", ".join("the input" if j == -1 else model.layers[j].name for j in missing)
            raise ModelError(f"run from layer {start}: the tensors of {names} are needed "
                             f"(see state_at)")
        return state
    x = np.asarray(x, dtype=np.int64)
    if start == 0:
        return {-1: x}
    need = model.frontier(start)
    if need != [start - 1]:
        names = ", ".join("the input" if j == -1 else model.layers[j].name for j in need)
        raise ModelError(f"run from layer {model.layers[min(start, len(model.layers) - 1)].name}"
                         f": the nodes from it on read {names}; give their recorded tensors "
                         f"(state_at), not one array")
    return {start - 1: x}


def _depthwise_fault(fault: Fault | None, part: int, cycles: int) -> Fault | None:
    """The fault channel ``part``'s product of a depthwise node sees (module docstring)."""
    if fault is None or fault.mode != "flip":
        return fault
    if fault.cycle // cycles != part:
        return None
    return dataclasses.replace(fault, cycle=fault.cycle % cycles)


def _run_product(model: Model, i: int, layer, x: np.ndarray, engine, opt: LayerOptions,
                 units: dict, st: LayerStats) -> np.ndarray:
    """Node ``i``'s product(s) through ``engine``; the node's output tensor."""
    rq = layer.requantisation()
    dw = isinstance(layer, DepthwiseConv2D)
    if opt.fault is None and opt.permutation is None and getattr(engine, "plain", False) \
            and type(engine).product is getattr(type(engine), "_plain_of", None) \
            and not (dw and any(units.get(k) is not None and len(units[k])
                                for k in ("split", "lcu_pairs", "tmr_triples"))):
        # the engine's fault-free product in floating point, without the int64 lowering
        res = engine.plain_product(layer, x, units)
        if res is not None:
            product_stats(st, layer, rq, res.q.shape[0], layer.matrix.shape[0], res.q.shape[1],
                          res.cycles, res.alarms)
            return layer.restore(res.q, x.shape)
    if not dw and getattr(engine, "lowers_float", None) is not None \
            and engine.lowers_float(opt.fault, units):
        # a fault model that takes the lowered activations in float32 (exact integers): no
        # int64 im2col (FastFaultEngine.lowers_float)
        A = _lower_float(layer, x.astype(np.float32))
    else:
        A = layer.lower(x)
    B = layer.matrix.astype(np.int64)
    bias = layer.bias.astype(np.int64)
    if dw:
        if opt.permutation is not None:
            raise ModelError(f"layer {layer.name}: a depthwise layer runs each channel as its "
                             f"own one-column product; it has no columns to permute")
        for key in ("split", "lcu_pairs", "tmr_triples"):
            if units.get(key) is not None and len(units[key]):
                raise ModelError(f"layer {layer.name}: {key} pairs columns, and a depthwise "
                                 f"layer's products have one column each")
        M, K, C = A.shape
        per = cycle_count(engine.cfg, M, K, 1, units.get("temporal_batch")) \
            if opt.fault is not None and opt.fault.mode == "flip" else 1
        qs = []
        for c in range(C):
            res = engine.product(Product(index=i, name=layer.name, A=A[:, :, c],
                                         B=B[:, c:c + 1], bias=bias[c:c + 1],
                                         requant=requant_columns(rq, slice(c, c + 1)),
                                         fault=_depthwise_fault(opt.fault, c, per),
                                         units=units, part=c))
            qs.append(res.q)
            st.cycles += res.cycles
            for k, v in res.alarms.items():
                st.alarms[k] = st.alarms.get(k, 0) + v
        product_stats(st, layer, rq, M, K, C, st.cycles, st.alarms)
        return layer.restore(np.concatenate(qs, axis=1), x.shape)
    perm = None if opt.permutation is None else np.asarray(opt.permutation)
    if perm is not None:
        if sorted(perm.tolist()) != list(range(B.shape[1])):
            raise ModelError(f"layer {layer.name}: permutation is not one of its "
                             f"{B.shape[1]} neurons")
        B, bias, rq = B[:, perm], bias[perm], requant_columns(rq, perm)
    res = engine.product(Product(index=i, name=layer.name, A=A, B=B, bias=bias, requant=rq,
                                 fault=opt.fault, units=units))
    q = res.q
    if perm is not None:
        q = q[:, np.argsort(perm)]
    product_stats(st, layer, rq, A.shape[0], A.shape[1], B.shape[1], res.cycles, res.alarms)
    return layer.restore(q, x.shape)


def run(model: Model, x, engine, *, options=None, units: dict | None = None,
        start: int = 0, stop: int | None = None, record: bool = False) -> Inference:
    """Run quantised ``model`` on integer inputs ``x`` with ``engine``.

    Nodes ``start … stop − 1`` run in order.  ``x`` is the quantised images for ``start = 0``;
    from a later node it is either the one recorded tensor that node reads, where the nodes
    from ``start`` on read nothing earlier (a chain), or a dict node index → tensor (``-1``:
    the input) holding every earlier tensor the later nodes read (:func:`state_at`).
    ``units`` are unit options for every product node; ``options`` maps a node index or
    name to :class:`LayerOptions` (or is a callable ``(index, name) -> LayerOptions``), whose
    ``units`` override the common ones.  With ``record`` the output of every node run is
    kept.
    """
    if not model.quantized:
        raise ModelError(f"model {model.name} is not quantised; call quantize() first")
    stop = len(model.layers) if stop is None else stop
    state = _initial_state(model, x, start)
    if start >= stop:
        return Inference(logits=next(iter(state.values())) if len(state) == 1 else
                         state.get(stop - 1), layers=[], outputs=[] if record else None)
    stats: list[LayerStats] = []

    def node(i, layer, ins):
        y, st = run_node(model, i, ins, engine, options=options, units=units)
        stats.append(st)
        return y

    vals = _walk(model, state, start, stop, node, keep=record)
    outputs = [vals[i] for i in range(start, stop)] if record else None
    return Inference(logits=vals[stop - 1], layers=stats, outputs=outputs)


def run_node(model: Model, i: int, ins: list, engine, *, options=None,
             units: dict | None = None) -> tuple[np.ndarray, LayerStats]:
    """Node ``i`` of ``model`` alone on its input tensors ``ins``: ``(output, LayerStats)``.

    ``ins`` holds one tensor per :meth:`Model.sources` of the node; ``options`` and ``units``
    as :func:`run` takes them.  :func:`run` calls it for every node; a fault model that
    recomputes only some images of some nodes calls it directly.
    """
    layer = model.layers[i]
    st = LayerStats(index=i, name=layer.name, kind=layer.kind)
    if isinstance(layer, _PRODUCTS):
        opt = _options_for(options, i, layer.name)
        return _run_product(model, i, layer, ins[0], engine, opt,
                            {**(units or {}), **opt.units}, st), st
    return _apply(layer, ins, model.a_bits), st


def describe(model: Model) -> list[dict[str, Any]]:
    """One row per node: name, kind, where it runs, inputs, output shape, product size, scale.

    A depthwise node's row has ``products`` (C one-column products of K = kh·kw).
    """
    rows = []
    for i, (layer, out) in enumerate(zip(model.layers, model.shapes(), strict=True)):
        row = {"index": i, "name": layer.name, "kind": layer.kind, "runs_on": WHERE[layer.kind],
               "output": list(out)}
        if model.sources(i) != (i - 1,):
            row["inputs"] = ["input" if j == -1 else model.layers[j].name
                             for j in model.sources(i)]
        if isinstance(layer, _PRODUCTS):
            B = layer.matrix
            m = math.prod(out[:-1]) if len(out) > 1 else 1
            if isinstance(layer, DepthwiseConv2D):
                row.update({"M_per_image": m, "K": B.shape[0], "N": 1,
                            "products": B.shape[1], "relu": layer.relu})
            else:
                row.update({"M_per_image": m, "K": B.shape[0], "N": B.shape[1],
                            "relu": layer.relu})
            if layer.requant is not None:
                per = np.ndim(layer.requant.multiplier) > 0
                row["requant"] = ("multiplier, per channel" if per else "multiplier")
                row["zero_point"] = int(layer.requant.zero_point)
            elif model.quantized:
                row["shift"] = layer.shift
        if isinstance(layer, Add | Concat) and model.quantized and layer.rescale is None:
            row["shifts"] = list(layer.shifts)
        if model.quantized and model.fracs:
            row["frac"] = model.fracs[i]
        if model.fixed and model.scales:
            row["scale"], row["zero_point"] = model.scales[i]
        rows.append(row)
    return rows
