"""The network graph in JAX: the accelerator's int8 arithmetic with straight-through gradients.

:class:`Graph` reads a float :class:`golden.network.Model` (any graph the runner takes: dense,
conv, depthwise, max/average pooling with padding, Add, Concat, Clip, ReLU, Flatten) and
computes it two ways with one function, :meth:`Graph.apply`:

* **float** (``scales=None``): the float network, every product lowered as the accelerator
  lowers it (im2col with neighbouring channels of one pixel adjacent, Ozen 2023 §8.4.2), so that
  the median filter and the bypass masks act on the same matrices as on the hardware;
* **quantised** (``scales``: the power-of-two scales of :func:`golden.network.quantize`, see
  :class:`Scales`): every tensor *fake-quantised* to the integers the accelerator holds.
  Inputs ``clip(⌊x·2^f_in + ½⌋)``; weights ``clip(⌊W·2^f_w + ½⌋)`` at the layer's weight
  scale; the bias ``⌊b·2^(f_in+f_w) + ½⌋`` at the accumulator's scale; the output stage
  ``clip(⌊relu(acc + bias)·2^f_out + ½⌋)``, which is the hardware's round-half-up shift by
  ``f_in + f_w − f_out`` and saturation (:func:`golden.output_stage.output_stage`); average
  pooling, Add, Concat and Clip by the host's integer rules of :mod:`golden.network`.
  Gradients are *straight through* (Bengio et al. 2013): the rounding passes the gradient
  unchanged, the saturation passes none outside the range.

**Exactness.**  The fake-quantised values are integers times powers of two, so with
``jax_enable_x64`` and ``dtype=float64`` every product, sum, rounding and saturation above is
exact (the accumulators of int8 products stay far below 2^53), and the logits equal the
golden, cycle and RTL engines' bit for bit on the model :func:`to_quantized` exports
(``tests/test_train.py``).  Training itself runs in float32 by default (faster; not exact,
which training does not need).

**BatchNorm** is a training-time operation here (the runner's models have it folded, SPEC
§12): a product node listed in ``batchnorm`` computes ``γ(z − μ)/√(σ² + ε) + β`` on its
pre-activation ``z``, folded into the weights and bias *before* they are quantised, as
Jacob et al. (CVPR 2018, §3.2) fold it for quantisation-aware training: the batch's
statistics while training, the running ones otherwise.  :meth:`Graph.fold` gives the folded
weights the exported model holds: ``w' = w·γ/√(σ²+ε)``, ``b' = (b − μ)·γ/√(σ²+ε) + β``.

**Hooks** (:class:`Hooks`) put the accelerator's units and the seeds' training methods into
the forward pass of the product nodes, in the order the hardware applies them: bit errors on
the streamed activations, anomaly suppression (Ozen 2023 §8.5.1) and the median filter (§8.5.2) on
each R-lane chunk of the streamed rows (WS), the bypass masks (WS weights, IS inputs, OS
outputs; Ozen 2023 Eqs. 10.3–10.5), the complementary-sparsity mask (Ozen 2023 §12.4.1), and a host
callback that replaces a layer's output by the campaign's own fault model
(:mod:`app.train.methods`).

This module imports JAX at the top: it is only imported through :func:`app.train.jax_modules`,
which checks that the optional dependency is installed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from ftaccel.golden.network import (
    _PRODUCTS,
    Add,
    AvgPool,
    Clip,
    Concat,
    Dense,
    DepthwiseConv2D,
    Flatten,
    MaxPool,
    Model,
    ModelError,
    ReLU,
)
from ftaccel.golden.network import _frac_for as frac_for  # quantize()'s own weight-scale rule
from ftaccel.golden.output_stage import MAX_SHIFT

__all__ = ["Graph", "Scales", "Hooks", "SUPPORTED_KINDS", "BN_EPS", "fq", "median_chunks",
           "afd_chunks",
           "hardware_keep", "group_mask", "to_quantized"]

#: Node kinds the training path computes (every kind of :mod:`golden.network`).
SUPPORTED_KINDS = ("dense", "conv2d", "dwconv", "maxpool", "avgpool", "flatten", "relu",
                   "clip", "add", "concat")
#: BatchNorm's ε (PyTorch's and ONNX's default).
BN_EPS = 1e-5
#: Momentum of the running statistics (PyTorch's default 0.1).
BN_MOMENTUM = 0.1


# -- straight-through quantisation ---------------------------------------------------------------

def _ste(x, q):
    """``q`` in the forward pass, the gradient of ``x`` in the backward pass (exact: q + 0)."""
    return jax.lax.stop_gradient(q) + (x - jax.lax.stop_gradient(x))


def fq(x, scale, lo: int, hi: int):
    """Fake quantisation at a power-of-two ``scale`` (2^f): ``clip(⌊x·scale + ½⌋, lo, hi)/scale``.

    Round half up, as the output stage's adder and shift; the gradient is 1 inside
    ``[lo, hi]`` and 0 outside (the clip), the rounding is straight through.
    """
    y = jnp.clip(x * scale, lo, hi)
    return _ste(y, jnp.floor(y + 0.5)) / scale


def _round(x, scale):
    """``⌊x·scale + ½⌋ / scale`` without saturation (a bias at the accumulator's scale)."""
    y = x * scale
    return _ste(y, jnp.floor(y + 0.5)) / scale


# -- the units and masks on the lowered matrices ------------------------------------------------

def median_chunks(A, window: int, lanes: int):
    """Median-``window`` (Ozen 2023 Eq. 8.3) on each ``lanes``-wide chunk of ``A``'s last axis.

    Exactly :func:`golden.network.units_matrix`: the last axis padded with zeros to whole
    chunks (the hardware's idle lanes carry zeros), each chunk padded by ``window // 2`` zeros
    at both ends and filtered on its own.  The median is taken by sorting each window, so the
    gradient reaches only the input that was the median (Ozen 2023 §8.5.2).
    """
    K = A.shape[-1]
    nk = -(-K // lanes)
    h = window // 2
    lead = A.shape[:-1]
    x = jnp.pad(A, [(0, 0)] * len(lead) + [(0, nk * lanes - K)])
    x = x.reshape(lead + (nk, lanes))
    x = jnp.pad(x, [(0, 0)] * (len(lead) + 1) + [(h, h)])
    wins = jnp.stack([x[..., k:k + lanes] for k in range(window)], axis=-1)
    med = jnp.sort(wins, axis=-1)[..., h]
    return med.reshape(lead + (nk * lanes,))[..., :K]


def afd_chunks(A, scale, shift: int, gates: int, mode: str, lanes: int, width: int,
               tau: float = 1.0):
    """Anomaly suppression (Ozen 2023 Eqs. 8.1/8.2) on each ``lanes``-wide chunk of the last axis.

    The forward pass is :func:`golden.afd.anomaly_suppression` on the integers ``A·scale``
    exactly (neighbours wrap around inside the chunk, idle lanes carry zeros, thresholds
    ``min(|x|·2^shift, 2^width − 1)`` or ``⌊|x|/2^−shift⌋``; one gate suppresses when
    ``|A_c| ≥ T(A_{c+1})``, two when ``|A_c|`` exceeds both neighbours' thresholds; *drop* → 0,
    *clip* → ``sign(A_c)·T*``).  The backward pass replaces each step by a sigmoid of the
    same difference, ``σ((|A_c| − T)/τ)`` with ``τ`` in real units (Ozen 2023 §8.5.1: the step in
    the forward pass, the sigmoid in the backward one), so the gate neighbours receive a
    gradient too.
    """
    K = A.shape[-1]
    nk = -(-K // lanes)
    lead = A.shape[:-1]
    x = jnp.pad(A, [(0, 0)] * len(lead) + [(0, nk * lanes - K)]).reshape(lead + (nk, lanes))
    a = x * scale
    mag = jnp.abs(a)
    if shift >= 0:
        T = jnp.minimum(mag * float(2 ** shift), float((1 << width) - 1))
    else:
        T = _ste(mag / float(2 ** -shift), jnp.floor(mag / float(2 ** -shift)))
    t_next, t_prev = jnp.roll(T, -1, axis=-1), jnp.roll(T, 1, axis=-1)
    t = tau * scale
    if gates == 1:
        hard = mag >= t_next
        soft = jax.nn.sigmoid((mag - t_next) / t)
        top = t_next
    else:
        hard = (mag > t_next) & (mag > t_prev)
        soft = jax.nn.sigmoid((mag - t_next) / t) * jax.nn.sigmoid((mag - t_prev) / t)
        top = jnp.maximum(t_next, t_prev)
    sup = _ste(soft, hard.astype(a.dtype))  # 0 or 1 forward: the result below is exact
    target = 0.0 if mode == "drop" else jnp.sign(a) * top
    out = a * (1.0 - sup) + target * sup
    return (out / scale).reshape(lead + (nk * lanes,))[..., :K]


def hardware_keep(bypass_map, rows: int, cols: int):
    """The keep mask (1.0 = used) of a ``rows × cols`` tensor on the R×C array.

    Entry ``(i, j)`` is the PE at ``(i mod R, j mod C)`` not bypassed: the map replicated over
    the tiles and cropped (Ozen 2023 Fig. 10.3; :func:`golden.bypass.hardware_mask`).  For WS pass
    the weights' K×N (row = input, column = neuron, Eq. 10.3), for OS the outputs' M×N (row =
    batch row, Eq. 10.5), for IS the *transposed* inputs' K×M (Eq. 10.4: input ``c_i`` on row
    ``c_i mod R``, batch row ``b`` on column ``b mod C``).
    """
    R, C = bypass_map.shape
    r = jnp.arange(rows) % R
    c = jnp.arange(cols) % C
    return 1.0 - bypass_map[r[:, None], c[None, :]].astype(jnp.float32)


def group_mask(W, gl: int, gk: int):
    """One 1.0 per ``gl × gk`` group of ``W`` (K×N), at its largest magnitude (Ozen 2023 §12.4.1).

    The same rule as :func:`golden.flow.group_mask` (zero padding, ties to the first position
    in row-major order), as a float mask without gradient.
    """
    W = jax.lax.stop_gradient(W)
    K, N = W.shape
    Kp, Np = -(-K // gl), -(-N // gk)
    P = jnp.zeros((Kp * gl, Np * gk), W.dtype).at[:K, :N].set(jnp.abs(W))
    blocks = P.reshape(Kp, gl, Np, gk).transpose(0, 2, 1, 3).reshape(Kp, Np, gl * gk)
    keep = jnp.argmax(blocks, axis=-1)
    one = (jnp.arange(gl * gk) == keep[..., None]).astype(W.dtype)
    return one.reshape(Kp, Np, gl, gk).transpose(0, 2, 1, 3).reshape(Kp * gl, Np * gk)[:K, :N]


# -- scales ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scales:
    """The power-of-two scales of a quantised model, as :func:`golden.network.quantize` picks them.

    ``fracs[i]`` is node ``i``'s output scale (``-1``: the input), ``fw[i]`` a product node's
    weight scale (its shift is ``fracs[src] + fw[i] − fracs[i]``), ``clips[i]`` a Clip node's
    integer bounds.  Add/Concat align input ``j`` by ``fracs[src_j] − fracs[i]``.
    """

    a_bits: int
    w_bits: int
    fracs: dict
    fw: dict
    clips: dict = field(default_factory=dict)

    @classmethod
    def of(cls, qmodel: Model) -> Scales:
        """The scales of a quantised model (the inverse of :func:`to_quantized`)."""
        fr = {-1: int(qmodel.input_frac)}
        fr.update({i: int(f) for i, f in enumerate(qmodel.fracs)})
        fw, clips = {}, {}
        for i, layer in enumerate(qmodel.layers):
            src = qmodel.sources(i)
            if isinstance(layer, _PRODUCTS):
                fw[i] = int(layer.shift) + fr[i] - fr[src[0]]
            elif isinstance(layer, Clip):
                clips[i] = (layer.qlo, layer.qhi)
        return cls(int(qmodel.a_bits), int(qmodel.w_bits), fr, fw, clips)

    def arrays(self, dtype) -> dict:
        """The scales as the traced arguments of :meth:`Graph.apply` (``2^f`` values)."""
        out = {"-1": jnp.asarray(2.0 ** self.fracs[-1], dtype)}
        for i, f in self.fracs.items():
            if i >= 0:
                out[str(i)] = jnp.asarray(2.0 ** f, dtype)
        for i, f in self.fw.items():
            out[f"w{i}"] = jnp.asarray(2.0 ** f, dtype)
        for i, (lo, hi) in self.clips.items():
            f = 2.0 ** -self.fracs[i]
            out[f"lo{i}"] = jnp.asarray(-np.inf if lo is None else lo * f, dtype)
            out[f"hi{i}"] = jnp.asarray(np.inf if hi is None else hi * f, dtype)
        return out

    def shift(self, model: Model, i: int) -> int:
        """Product node ``i``'s output-stage shift."""
        return self.fracs[model.sources(i)[0]] + self.fw[i] - self.fracs[i]


# -- hooks -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hooks:
    """What the forward pass adds to the product nodes (static: one compilation per Hooks).

    ``median``: node → ``(window, lanes)``, the median filter on the node's streamed rows.
    ``afd``: node → ``(shift, gates, mode, lanes, width)``, anomaly suppression before it
    (:func:`afd_chunks`; the quantised forward only).
    ``mask``: ``(dataflow, kind, rate, rows, cols)`` with kind ``hardware`` (one R×C Bernoulli
    bypass map per step, replicated over the tiles: Ozen 2023 §10.3.2) or ``random`` (every
    variable on its own), applied to ``mask_nodes`` while training, the kept variables scaled
    by ``1/(1 − rate)`` (inverted dropout: the int8 scales are calibrated on the unmasked
    network, Ozen 2023 Eq. 10.1 leaves the scaling open); or ``(dataflow, "map", 0, R, C)`` to
    apply the map given in ``dyn["bypass_map"]`` (a device's map, for evaluation and
    calibration).  ``sparse``: node → ``(gl, gk, beta)``.  ``fault``: an object with
    ``callback(i, A, Wq, bq, shift, relu, step)`` returning the layer's integer outputs under
    the campaign's fault model, applied to ``fault_nodes``.
    """

    median: tuple = ()
    afd: tuple = ()
    mask: tuple | None = None
    mask_nodes: frozenset = frozenset()
    sparse: tuple = ()
    fault: object = None
    fault_nodes: frozenset = frozenset()

    @property
    def median_map(self) -> dict:
        """``median`` as a dict."""
        return dict(self.median)

    @property
    def afd_map(self) -> dict:
        """``afd`` as a dict."""
        return dict(self.afd)

    @property
    def sparse_map(self) -> dict:
        """``sparse`` as a dict."""
        return dict(self.sparse)


# -- the graph ---------------------------------------------------------------------------------

def _im2col(x, kh: int, kw: int, stride, padding):
    """``[b, H, W, C]`` → ``[b·Ho·Wo, kh·kw·C]``, column ``(dy·kw + dx)·C + c`` (as golden)."""
    t, left, bo, r = padding
    xp = jnp.pad(x, ((0, 0), (t, bo), (left, r), (0, 0)))
    b, H, W, C = xp.shape
    ho = (H - kh) // stride[0] + 1
    wo = (W - kw) // stride[1] + 1
    cols = [xp[:, dy:dy + stride[0] * (ho - 1) + 1:stride[0],
               dx:dx + stride[1] * (wo - 1) + 1:stride[1], :]
            for dy in range(kh) for dx in range(kw)]
    return jnp.stack(cols, axis=3).reshape(b * ho * wo, kh * kw * C), (b, ho, wo)


def _windows_max(x, size, stride, padding, low):
    t, left, bo, r = padding
    xp = jnp.pad(x, ((0, 0), (t, bo), (left, r), (0, 0)), constant_values=low)
    return jax.lax.reduce_window(xp, -jnp.inf, jax.lax.max, (1, size[0], size[1], 1),
                                 (1, stride[0], stride[1], 1), "VALID")


def _windows_sum(x, size, stride, padding):
    t, left, bo, r = padding
    xp = jnp.pad(x, ((0, 0), (t, bo), (left, r), (0, 0)))
    return jax.lax.reduce_window(xp, 0.0, jax.lax.add, (1, size[0], size[1], 1),
                                 (1, stride[0], stride[1], 1), "VALID")


class Graph:
    """A float model's structure, and its forward pass in JAX (module docstring).

    Parameters
    ----------
    model : Model
        A float model (:mod:`golden.network`); its weights become the initial parameters.
    batchnorm : iterable of int
        Product nodes followed by a training-time BatchNorm (folded on export).

    Raises
    ------
    ModelError
        For a quantised model, or a node kind the training path does not compute (named).
    """

    def __init__(self, model: Model, batchnorm=()):
        if model.quantized:
            raise ModelError(f"model {model.name} is quantised; training needs the float model "
                             f"(its float weights)")
        for i, layer in enumerate(model.layers):
            if getattr(layer, "kind", None) not in SUPPORTED_KINDS:
                raise ModelError(f"layer {getattr(layer, 'name', i) or i}: operator "
                                 f"{getattr(layer, 'kind', type(layer).__name__)!r} is not "
                                 f"supported by the training path (it computes "
                                 f"{', '.join(SUPPORTED_KINDS)})")
        self.model = model
        self.products = [i for i, lay in enumerate(model.layers) if isinstance(lay, _PRODUCTS)]
        bn = sorted({int(i) for i in batchnorm})
        bad = [i for i in bn if i not in self.products]
        if bad:
            raise ModelError(f"batchnorm: node {bad[0]} is not a product node")
        self.batchnorm = tuple(bn)
        self.shapes = model.shapes()
        self.in_shapes = [model.input_shapes(i) for i in range(len(model.layers))]
        self._last = {}
        for i in range(len(model.layers)):
            for j in model.sources(i):
                self._last[j] = i

    # -- parameters ------------------------------------------------------------------------------
    def init(self, model: Model | None = None) -> tuple[dict, dict]:
        """``(params, state)`` from ``model``'s weights (default: the graph's own model).

        BatchNorm starts as the identity on its running statistics: γ = √(1 + ε), β = 0,
        mean 0, variance 1 (:meth:`identity_bn` makes it the identity on data).
        """
        model = model or self.model
        params, state = {}, {}
        for i in self.products:
            lay = model.layers[i]
            p = {"w": np.asarray(lay.weights, np.float64), "b": np.asarray(lay.bias, np.float64)}
            if i in self.batchnorm:
                n = p["b"].shape[0]
                p["gamma"] = np.full(n, math.sqrt(1.0 + BN_EPS))
                p["beta"] = np.zeros(n)
                state[str(i)] = {"mean": np.zeros(n), "var": np.ones(n)}
            params[str(i)] = p
        return params, state

    def fold(self, params: dict, state: dict) -> dict:
        """The product nodes' weights and biases with BatchNorm folded in (numpy, float64)."""
        out = {}
        for i in self.products:
            p = {k: np.asarray(v, np.float64) for k, v in params[str(i)].items()}
            w, b = p["w"], p["b"]
            if i in self.batchnorm:
                st = state[str(i)]
                a = p["gamma"] / np.sqrt(np.asarray(st["var"], np.float64) + BN_EPS)
                w = w * a  # the last axis is the output channel for every product kind
                b = (b - np.asarray(st["mean"], np.float64)) * a + p["beta"]
            out[str(i)] = {"w": w, "b": b}
        return out

    def float_model(self, folded: dict, info: dict | None = None) -> Model:
        """The float :class:`Model` holding the folded weights ``folded``."""
        layers = list(self.model.layers)
        for i in self.products:
            layers[i] = dataclasses.replace(layers[i], weights=folded[str(i)]["w"],
                                            bias=folded[str(i)]["b"])
        return dataclasses.replace(self.model, layers=tuple(layers),
                                   info=dict(self.model.info if info is None else info))

    # -- the forward pass ------------------------------------------------------------------------
    def apply(self, params, state, x, *, scales=None, train: bool = False,
              hooks: Hooks | None = None, key=None, dyn: dict | None = None,
              bits: tuple[int, int] = (8, 8), record: bool = False):
        """The logits (real units) of images ``x`` (``[b, *input_shape]``).

        Parameters
        ----------
        params, state : dict
            Parameters (:meth:`init`) and BatchNorm running statistics.
        scales : dict or None
            :meth:`Scales.arrays`: the quantised forward; None: the float one.
        train : bool
            BatchNorm on the batch's statistics (and the running ones updated); random masks.
        hooks : Hooks
            Units and training methods (module docstring).
        key : jax PRNG key
            For random masks (``train`` with a mask hook).
        dyn : dict
            Traced extras: ``bypass_map`` (R×C bool) for a map hook, ``step`` for the fault
            callback.
        bits : (int, int)
            Activation and weight widths of the quantised forward.
        record : bool
            Also return every product node's pre-activation (``acc + bias``) and the
            weights it multiplied.

        Returns
        -------
        (logits, new_state, aux)
            ``aux`` holds ``weights`` (node → effective K×N weights and bias, for
            penalties) and, with ``record``, ``pre`` (node → pre-activation matrix).
        """
        hooks = hooks or Hooks()
        dyn = dyn or {}
        a_bits, w_bits = bits
        alo, ahi = -(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1
        wlo, whi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
        q = scales is not None
        model = self.model
        new_state = dict(state)
        aux = {"weights": {}, "pre": {}}
        x = jnp.asarray(x)
        if q:
            x = fq(x, scales["-1"], alo, ahi)
        shared_map = None
        if hooks.mask is not None:
            dataflow, kind, rate, R, C = hooks.mask
            if kind == "map":
                shared_map = dyn["bypass_map"]
            elif kind == "hardware" and train:
                key, sub = jax.random.split(key)
                shared_map = jax.random.bernoulli(sub, rate, (R, C))
        vals = {-1: x}
        for i, layer in enumerate(model.layers):
            ins = [vals[j] for j in model.sources(i)]
            if isinstance(layer, _PRODUCTS):
                if hooks.mask is not None and hooks.mask[1] == "random" and train \
                        and i in hooks.mask_nodes:
                    key, sub = jax.random.split(key)
                else:
                    sub = None
                y = self._product(i, layer, ins[0], params[str(i)], state.get(str(i)),
                                  new_state, scales, train, hooks, shared_map, sub, dyn,
                                  (alo, ahi, wlo, whi), aux, record)
            else:
                y = self._host(i, layer, ins, scales, (alo, ahi))
            vals[i] = y
            for j in set(model.sources(i)):
                if self._last.get(j) == i:
                    del vals[j]
        return vals[len(model.layers) - 1], new_state, aux

    def _lower(self, layer, x):
        if isinstance(layer, Dense):
            return x.reshape(x.shape[0], -1), None
        kh, kw = layer.weights.shape[:2]
        A, geo = _im2col(x, kh, kw, layer.stride, layer.padding)
        if isinstance(layer, DepthwiseConv2D):
            return A.reshape(A.shape[0], kh * kw, -1), geo
        return A, geo

    def _product(self, i, layer, x, p, st, new_state, scales, train, hooks, shared_map, key,
                 dyn, lims, aux, record):
        alo, ahi, wlo, whi = lims
        dw = isinstance(layer, DepthwiseConv2D)
        A, geo = self._lower(layer, x)  # dense/conv: M×K; depthwise: M×K×C
        W = p["w"].reshape(-1, p["w"].shape[-1])  # K×N (depthwise: K×C)
        b = p["b"]
        A_raw = A
        afd = hooks.afd_map.get(i)
        if afd is not None and scales is not None:  # WS input units: AFD, then the median
            s_in = scales[str(self.model.sources(i)[0])]
            A = (jnp.swapaxes(afd_chunks(jnp.swapaxes(A, 1, 2), s_in, *afd), 1, 2) if dw
                 else afd_chunks(A, s_in, *afd))
        med = hooks.median_map.get(i)
        if med is not None:  # WS input units: each streamed R-lane chunk filtered
            A = (jnp.swapaxes(median_chunks(jnp.swapaxes(A, 1, 2), *med), 1, 2) if dw
                 else median_chunks(A, *med))
        sparse = hooks.sparse_map.get(i)
        if sparse is not None:  # Ozen 2023 Eqs. 12.9-12.10: masked forward, beta-scaled gradient
            gl, gk, beta = sparse
            th = group_mask(W, gl, gk)
            W = th * W + (1.0 - th) * (beta * W - jax.lax.stop_gradient(beta * W))
        if i in self.batchnorm:
            gamma, beta_bn = p["gamma"], p["beta"]
            if train:
                z = (jnp.einsum("mkc,kc->mc", A, W) if dw else A @ W) + b
                mean, var = z.mean(axis=0), z.var(axis=0)
                m = z.shape[0]
                new_state[str(i)] = {
                    "mean": (1 - BN_MOMENTUM) * st["mean"]
                    + BN_MOMENTUM * jax.lax.stop_gradient(mean),
                    "var": (1 - BN_MOMENTUM) * st["var"]
                    + BN_MOMENTUM * jax.lax.stop_gradient(var) * m / max(m - 1, 1)}
            else:
                mean, var = st["mean"], st["var"]
            a = gamma / jnp.sqrt(var + BN_EPS)
            W = W * a
            b = (b - mean) * a + beta_bn
        aux["weights"][i] = (W, b)
        if scales is not None:
            sw = scales[f"w{i}"]
            s_in = scales[str(self.model.sources(i)[0])]
            W = fq(W, sw, wlo, whi)
            b = _round(b, s_in * sw)
        mask = hooks.mask if i in hooks.mask_nodes else None
        keep = None
        if mask is not None and (train or mask[1] == "map"):
            dataflow, kind, rate, R, C = mask
            M, K = A.shape[0], A.shape[1]
            N = 1 if dw else W.shape[1]
            shape = {"ws": (K, N), "is": (K, M), "os": (M, N)}[dataflow]
            if kind == "random":
                keep = 1.0 - jax.random.bernoulli(key, rate, shape).astype(A.dtype)
            else:
                keep = hardware_keep(shared_map, *shape).astype(A.dtype)
            if kind != "map":
                # inverted, as nn.Dropout: the kept variables scaled by 1/(1 − rate), so the
                # training forward keeps the magnitudes the int8 scales are calibrated for
                keep = keep / (1.0 - rate)
            if dataflow == "is":
                keep = keep.T
            if dataflow == "ws":
                W = W * keep
            elif dataflow == "is":
                A = A * (keep[:, :, None] if dw else keep)
        acc = jnp.einsum("mkc,kc->mc", A, W) if dw else A @ W
        if keep is not None and mask[0] == "os":
            acc = acc * keep
        y = acc + b
        if record:
            aux["pre"][i] = y
        if layer.relu:
            y = jnp.maximum(y, 0.0)
        if scales is not None:
            y = fq(y, scales[str(i)], alo, ahi)
            if hooks.fault is not None and i in hooks.fault_nodes:
                s_in = scales[str(self.model.sources(i)[0])]
                shift = jnp.round(jnp.log2(s_in * scales[f"w{i}"] / scales[str(i)]))
                qf = hooks.fault.callback(i, A_raw * s_in, W * scales[f"w{i}"],
                                          b * s_in * scales[f"w{i}"], shift, layer.relu,
                                          dyn.get("step", 0), y.dtype)
                y = _ste(y, qf / scales[str(i)])
        if isinstance(layer, Dense):
            return y
        b_, ho, wo = geo
        return y.reshape(b_, ho, wo, -1)

    def _host(self, i, layer, ins, scales, lims):
        alo, ahi = lims
        q = scales is not None
        x = ins[0]
        if isinstance(layer, Flatten):
            if layer.order == "chw" and x.ndim == 4:
                x = x.transpose(0, 3, 1, 2)
            return x.reshape(x.shape[0], -1)
        if isinstance(layer, ReLU):
            return jnp.maximum(x, 0.0)
        if isinstance(layer, Clip):
            if q:
                return jnp.clip(x, scales[f"lo{i}"], scales[f"hi{i}"])
            return jnp.clip(x, -jnp.inf if layer.lo is None else layer.lo,
                            jnp.inf if layer.hi is None else layer.hi)
        if isinstance(layer, MaxPool):
            low = -jnp.inf if not q else alo / scales[str(self.model.sources(i)[0])]
            return _windows_max(x, layer.size, layer.stride, layer.padding, low)
        if isinstance(layer, AvgPool):
            return self._avgpool(i, layer, x, scales, lims)
        if isinstance(layer, Add | Concat):
            if q:
                s = scales[str(i)]
                # input j at the node's scale: ⌊x·2^f_out + ½⌋ is golden's aligning shift for
                # both directions (exact for a left shift)
                parts = [_ste(v * s, jnp.floor(v * s + 0.5)) for v in ins]
                if isinstance(layer, Add):
                    return jnp.clip(sum(parts), alo, ahi) / s
                return jnp.concatenate([jnp.clip(v, alo, ahi) for v in parts], axis=-1) / s
            return sum(ins) if isinstance(layer, Add) else jnp.concatenate(ins, axis=-1)
        raise ModelError(f"layer {layer.name}: operator {layer.kind!r} is not supported by "
                         f"the training path")

    def _avgpool(self, i, layer, x, scales, lims):
        alo, ahi = lims
        counts = layer._counts(tuple(self.in_shapes[i][0]))  # elements per window, [Ho, Wo]
        total = _windows_sum(x, layer.size, layer.stride, layer.padding)
        if scales is None:
            return total / jnp.asarray(counts, x.dtype)[None, :, :, None]
        s = scales[str(self.model.sources(i)[0])]
        t = total * s  # the integer window sums
        out = jnp.zeros_like(t)
        for n in np.unique(counts):
            n = int(n)
            if n & (n - 1) == 0:  # golden: a rounding shift by log2(n)
                v = jnp.floor(t / n + 0.5)
            else:  # golden: × round(2^16/n), rounding shift by 16
                v = jnp.floor(t * round(2 ** 16 / n) / 65536.0 + 0.5)
            v = _ste(t / n, jnp.clip(v, alo, ahi))
            out = jnp.where(jnp.asarray(counts == n)[None, :, :, None], v, out)
        return out / s


# -- export ------------------------------------------------------------------------------------

def to_quantized(model: Model, scales: Scales, name: str | None = None,
                 info: dict | None = None) -> Model:
    """The quantised :class:`Model` of float ``model`` at ``scales``, as the forward computes it.

    Weights ``clip(⌊W·2^fw + ½⌋)``, bias ``⌊b·2^(f_src+fw) + ½⌋``, shift ``f_src + fw − f_out``
    (ModelError if outside 0 … 63), Add/Concat shifts ``f_src − f_out``, Clip bounds from
    ``scales``.  ``to_quantized(m, Scales.of(quantize(m, cal)))`` is ``quantize(m, cal)``.
    """
    wmax = (1 << (scales.w_bits - 1)) - 1
    fr = scales.fracs
    layers = []
    for i, layer in enumerate(model.layers):
        src = model.sources(i)
        if isinstance(layer, _PRODUCTS):
            fw = scales.fw[i]
            W = np.asarray(layer.weights, np.float64)
            Wq = np.clip(np.floor(W * 2.0 ** fw + 0.5), -wmax - 1, wmax).astype(np.int64)
            bq = np.floor(np.asarray(layer.bias, np.float64) * 2.0 ** (fr[src[0]] + fw)
                          + 0.5).astype(np.int64)
            shift = fr[src[0]] + fw - fr[i]
            if not 0 <= shift <= MAX_SHIFT:
                raise ModelError(f"layer {layer.name}: output-stage shift {shift} outside 0 … "
                                 f"{MAX_SHIFT}")
            layer = dataclasses.replace(layer, weights=Wq, bias=bq, shift=int(shift))
        elif isinstance(layer, Add | Concat):
            layer = dataclasses.replace(layer, shifts=tuple(int(fr[j] - fr[i]) for j in src))
        elif isinstance(layer, Clip):
            lo, hi = scales.clips[i]
            layer = dataclasses.replace(layer, qlo=lo, qhi=hi)
        layers.append(layer)
    return Model(layers=tuple(layers), input_shape=model.input_shape, classes=model.classes,
                 name=name or model.name, input_layout=model.input_layout,
                 a_bits=scales.a_bits, w_bits=scales.w_bits, input_frac=int(fr[-1]),
                 fracs=tuple(int(fr[i]) for i in range(len(layers))),
                 info=dict(model.info if info is None else info))


def rescale(model: Model, scales: Scales) -> Scales:
    """``scales`` with every weight scale re-picked for ``model``'s weights (quantize's rule).

    The activation scales stay; a product whose shift would fall below 0 keeps shift 0 (its
    output scale becomes its accumulator's), and the nodes that read it follow.  Used after
    a device's calibration changed the weights (:func:`app.train.calibrate_bypass`).
    """
    fr = dict(scales.fracs)
    fw = {}
    clips = dict(scales.clips)
    from ftaccel.golden.network import _qbound  # the calibration's own rounding of bounds

    for i, layer in enumerate(model.layers):
        src = model.sources(i)
        if isinstance(layer, _PRODUCTS):
            W = np.asarray(layer.weights, np.float64)
            fw[i] = frac_for(float(np.abs(W).max()) if W.size else 1.0, scales.w_bits)
            f_acc = fr[src[0]] + fw[i]
            fr[i] = f_acc - min(max(f_acc - scales.fracs[i], 0), MAX_SHIFT)
        elif isinstance(layer, Add | Concat):
            fr[i] = min(scales.fracs[i], max(fr[j] for j in src))
        elif isinstance(layer, Clip):
            fr[i] = fr[src[0]]
            clips[i] = (_qbound(layer.lo, fr[i], scales.a_bits),
                        _qbound(layer.hi, fr[i], scales.a_bits))
        else:
            fr[i] = fr[src[0]]
    return Scales(scales.a_bits, scales.w_bits, fr, fw, clips)
