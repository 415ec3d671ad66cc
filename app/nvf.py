"""Neuron vulnerability factor, NVF (Ahmadilivani 2025 §4.3.1.2, Algorithm 4.2; §4.3.1).

The NVF of a neuron is the probability that a single bit flip in its int8 output changes the
network's classification (top-1 against the *golden* top-1 of the same image, not the label),
over the analysis images and the output's bits.  A *neuron* is one output column of a product
layer, i.e. what one array column computes: a dense layer's output unit, or a convolution's
output channel.

**How it is computed.**  Exactly, by enumeration, instead of the thesis' δ-range estimate:
for every neuron ``n``, image ``x`` and bit ``b`` of the ``a_bits``-wide output, the clean
output ``q`` is replaced by ``q`` with bit ``b`` flipped (two's complement: bits below the
sign bit add ``2**b`` if they are 0 and subtract it if they are 1; the sign bit adds or
subtracts ``2**(a_bits − 1)``, so a post-ReLU ``5`` becomes ``−123``), the rest of the network
is recomputed from the next layer on, and the classification is compared.  Then
``NVF(n) = mean over (x, b) of [class changed]``.  This is Algorithm 4.2's quantity: its
lines 6–11 find the smallest positive and negative deviations ``r`` that change the class and
map them to the first bit whose flip reaches them (``⌊log2 r⌋ + 1``, Ahmadilivani 2025 §4.3.1 says
log2, the paper's sqrt is a typo), and line 15 averages over the bits which flip is at least that
large, assuming larger deviations also misclassify.  Enumerating the 8 flips measures the same
probability without that monotonicity assumption, and in the same vectorised pass.

* **Sign bit**: flipped like any other bit (it is one of the ``a_bits`` equally likely fault
  sites); a flip of a non-negative value's sign bit makes it negative, which the next layer
  multiplies as is (the hardware's activation register holds it).  ``sign=False`` leaves the
  sign bit out (NVF over the ``a_bits − 1`` magnitude bits) for comparisons with analyses that
  treat only the integer bits.
* **Unflippable cases**: none in this definition: every bit of every output can flip, and a
  flip whose deviation does not reach a misclassification simply counts as harmless.  The
  thesis' "gradient = 0, skip" case (line 5, e.g. a neuron whose every downstream path is cut
  by ReLU) is covered too: such flips never change the class and count as 0.  The thesis'
  case where no positive (negative) deviation in ``[−128, 127]`` misclassifies (``r`` does
  not exist) counts as 0 for that direction, as here.
* **Convolutions**: the flip hits one output element of the channel: the pixel is drawn
  uniformly (``pixels`` draws per image, channel and bit, seeded), or every pixel is
  enumerated with ``pixels=None``.

The last layer's neurons (the logits) are analysed too; the thesis' counts leave them out
(LeNet-5's 4,684 = every element of the hidden layers), so :func:`threshold_table` can
exclude them (``hidden_only``).

Vectorisation: the flips of a chunk of neurons are stacked along the batch axis and the rest of
the network runs once per chunk, in float64 BLAS (every partial sum is an integer far below
2**53, so the result is exact; :func:`forward` equals the golden functional engine, tested).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ftaccel.golden.network import Model, ProductResult, product_layers, run

__all__ = ["NeuronNVF", "NVFResult", "nvf", "forward", "flip_bits", "threshold_table",
           "THRESHOLDS"]

#: Table 4.10's thresholds, 0 … 50 % in 5 % steps.
THRESHOLDS = tuple(range(0, 55, 5))


class _ExactEngine:
    """The golden functional engine's products on float64 BLAS (exact: module docstring)."""

    name = "nvf"

    def __init__(self, a_bits: int):
        self.a_bits = a_bits

    def product(self, p):
        acc = np.rint(p.A.astype(np.float64) @ p.B.astype(np.float64)).astype(np.int64)
        q = p.requant.apply(acc, p.bias, self.a_bits)
        return ProductResult(q=q, cycles=0)


def forward(model: Model, x, start: int = 0, stop: int | None = None, record: bool = False):
    """Fault-free integer forward pass of nodes ``start … stop − 1`` (exact, float64 BLAS).

    Equals :func:`golden.network.run` with the functional engine for a model that fits its
    configuration (no accumulator overflow); ``x`` as :func:`golden.network.run` takes it.
    With ``record`` returns ``(out, outputs)``.
    """
    res = run(model, x, _ExactEngine(model.a_bits), start=start, stop=stop, record=record)
    return (res.logits, res.outputs) if record else res.logits


def _resume(model: Model, li: int, flipped: np.ndarray, x0: np.ndarray, outs: list,
            outer: int, inner: int) -> dict:
    """The tensors a run from node ``li + 1`` reads, for a stacked batch of flips.

    Node ``li``'s output is ``flipped``; every other tensor those nodes read (a residual
    branch, on a graph) is the clean recorded one, each image repeated ``inner`` times and
    the whole batch ``outer`` times, the order the flips are stacked in.
    """
    state = {}
    for j in model.frontier(li + 1):
        if j == li:
            state[j] = flipped
        else:
            rec = x0 if j == -1 else outs[j]
            state[j] = np.tile(np.repeat(rec, inner, axis=0), (outer,) + (1,) * (rec.ndim - 1))
    return state


def flip_bits(q: np.ndarray, bit, width: int) -> np.ndarray:
    """``q`` (signed ``width``-bit integers) with ``bit`` flipped, as signed integers."""
    q = np.asarray(q, dtype=np.int64)
    u = (q & ((1 << width) - 1)) ^ np.left_shift(np.int64(1), np.asarray(bit, dtype=np.int64))
    return np.where(u >= (1 << (width - 1)), u - (1 << width), u)


@dataclass(frozen=True)
class NeuronNVF:
    """One neuron's NVF, and per bit (index 0 = LSB) the share of flips that changed the class."""

    layer: int
    layer_name: str
    neuron: int
    nvf: float
    per_bit: tuple
    relu: bool
    last: bool


@dataclass
class NVFResult:
    """Every neuron's NVF, the analysis setting and its runtime."""

    model: str
    neurons: list
    images: int
    bits: int
    sign: bool
    pixels: int | None
    seed: int
    seconds: float
    evaluations: int
    info: dict = field(default_factory=dict)

    def layer_values(self, layer: int) -> np.ndarray:
        """The NVF of every neuron of ``layer``."""
        return np.array([n.nvf for n in self.neurons if n.layer == layer])

    def critical(self, threshold: float, *, hidden_only: bool = False) -> dict[int, list[int]]:
        """Per product layer, the neurons with NVF ≥ ``threshold`` (a fraction 0 … 1)."""
        out: dict[int, list[int]] = {}
        for n in self.neurons:
            if hidden_only and n.last:
                continue
            if n.nvf >= threshold - 1e-12:
                out.setdefault(n.layer, []).append(n.neuron)
        return out

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict (format ``ftaccel-nvf``)."""
        return {"format": "ftaccel-nvf", "version": 1, "model": self.model,
                "images": self.images, "bits": self.bits, "sign_bit": self.sign,
                "pixels_per_flip": self.pixels, "seed": self.seed,
                "seconds": round(self.seconds, 4), "evaluations": self.evaluations,
                "definition": "P(top-1 changes | one bit flip in the neuron's output), "
                              "enumerated over images and bits",
                "neurons": [{"layer": n.layer, "layer_name": n.layer_name,
                             "neuron": n.neuron, "nvf": n.nvf, "per_bit": list(n.per_bit),
                             "relu": n.relu, "last": n.last} for n in self.neurons],
                "table": threshold_table(self), "table_hidden": threshold_table(
                    self, hidden_only=True), "info": self.info}

    @classmethod
    def from_dict(cls, d: dict) -> NVFResult:
        """The result from :meth:`to_dict`'s form, or ValueError."""
        if d.get("format") != "ftaccel-nvf":
            raise ValueError("not an NVF report (format ftaccel-nvf)")
        neurons = [NeuronNVF(int(n["layer"]), n["layer_name"], int(n["neuron"]),
                             float(n["nvf"]), tuple(n["per_bit"]), bool(n["relu"]),
                             bool(n["last"])) for n in d["neurons"]]
        return cls(d["model"], neurons, int(d["images"]), int(d["bits"]), bool(d["sign_bit"]),
                   d["pixels_per_flip"], int(d["seed"]), float(d["seconds"]),
                   int(d["evaluations"]), d.get("info", {}))


def threshold_table(result: NVFResult, thresholds=THRESHOLDS, *,
                    hidden_only: bool = False) -> list[dict]:
    """Table 4.10's analogue.

    Per threshold (percent), the count and share of neurons with NVF ≥ threshold.
    """
    vals = np.array([n.nvf for n in result.neurons if not (hidden_only and n.last)])
    rows = []
    for t in thresholds:
        k = int(np.sum(vals >= t / 100 - 1e-12))
        rows.append({"threshold": t, "neurons": k,
                     "share": k / len(vals) if len(vals) else 0.0})
    return rows


def _layer_nvf(model: Model, li: int, x0: np.ndarray, outs: list, golden: np.ndarray,
               bits: list[int], pixels: int | None, rng: np.random.Generator,
               chunk: int) -> tuple:
    """``(per-neuron per-bit change rates [N, len(bits)], evaluations)`` for layer ``li``.

    The layer's clean output is ``outs[li]`` (``[B, N]`` or ``[B, H, W, N]``); ``x0`` and
    ``outs`` are the clean run's input and recorded outputs.
    """
    q = outs[li]
    width = model.a_bits
    B = q.shape[0]
    N = q.shape[-1]
    nb = len(bits)
    bits_a = np.asarray(bits, dtype=np.int64)
    rates = np.zeros((N, nb))
    evals = 0
    if q.ndim == 2:
        per = max(1, chunk // (B * nb * N))
        for n0 in range(0, N, per):
            ns = np.arange(n0, min(N, n0 + per))
            # [len(ns), nb, B, N]: copy of q with column n's bit b flipped
            x = np.broadcast_to(q, (len(ns), nb, B, N)).copy()
            col = q[:, ns].T[:, None, :]                        # [ns, 1, B]
            x[np.arange(len(ns))[:, None, None], np.arange(nb)[None, :, None],
              np.arange(B)[None, None, :], ns[:, None, None]] = \
                flip_bits(col, bits_a[None, :, None], width)
            out = forward(model, _resume(model, li, x.reshape(-1, N), x0, outs,
                                         len(ns) * nb, 1), start=li + 1)
            changed = np.argmax(out, axis=1).reshape(len(ns), nb, B) != golden[None, None, :]
            rates[ns] = changed.mean(axis=2)
            evals += x.shape[0] * x.shape[1] * x.shape[2]
        return rates, evals
    # convolution output [B, H, W, C]: flip one element of channel c
    _, H, W, C = q.shape
    if pixels is None:
        pos = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 2)
        sites = np.broadcast_to(pos[None, None, None], (C, nb, B, len(pos), 2))
    else:
        sites = np.stack([rng.integers(0, H, (C, nb, B, pixels)),
                          rng.integers(0, W, (C, nb, B, pixels))], -1)
    P = sites.shape[3]
    per = max(1, chunk // (B * nb * P * H * W * C))
    for c0 in range(0, C, per):
        cs = np.arange(c0, min(C, c0 + per))
        s = sites[cs]                                            # [cs, nb, B, P, 2]
        x = np.broadcast_to(q[None, None, :, None], (len(cs), nb, B, P, H, W, C)).copy()
        ic, ib, im, ip = np.meshgrid(np.arange(len(cs)), np.arange(nb), np.arange(B),
                                     np.arange(P), indexing="ij")
        yy, xx = s[..., 0], s[..., 1]
        old = q[im, yy, xx, cs[ic]]
        x[ic, ib, im, ip, yy, xx, cs[ic]] = flip_bits(old, bits_a[ib], width)
        out = forward(model, _resume(model, li, x.reshape(-1, H, W, C), x0, outs,
                                     len(cs) * nb, P), start=li + 1)
        changed = np.argmax(out, axis=1).reshape(len(cs), nb, B, P) != \
            golden[None, None, :, None]
        rates[cs] = changed.mean(axis=(2, 3))
        evals += changed.size
    return rates, evals


def nvf(model: Model, x: np.ndarray, *, sign: bool = True, pixels: int | None = 1,
        seed: int = 0, layers=None, chunk: int = 1 << 22) -> NVFResult:
    """NVF of every neuron of every product layer of quantised ``model``.

    Of the product layers in ``layers`` (indices) if given, over the quantised inputs ``x`` (see the
    module docstring).

    ``pixels``: for convolutions, output pixels drawn per (image, channel, bit); ``None``
    enumerates them all.  ``chunk``: activation values per vectorised pass (memory bound).
    """
    if not model.quantized:
        raise ValueError(f"model {model.name} is not quantised")
    if pixels is not None and pixels < 1:
        raise ValueError(f"invalid pixels = {pixels!r}: at least 1, or None for every pixel")
    t0 = time.perf_counter()
    x = np.asarray(x, dtype=np.int64)
    logits, outs = forward(model, x, record=True)
    golden = np.argmax(logits, axis=1)
    bits = list(range(model.a_bits if sign else model.a_bits - 1))
    rng = np.random.default_rng(seed)
    prods = product_layers(model)
    chosen = prods if layers is None else [i for i in prods if i in set(layers)]
    neurons, evals = [], 0
    for li in chosen:
        layer = model.layers[li]
        rates, e = _layer_nvf(model, li, x, outs, golden, bits, pixels, rng, chunk)
        evals += e
        for n in range(rates.shape[0]):
            neurons.append(NeuronNVF(li, layer.name, n, float(rates[n].mean()),
                                     tuple(round(float(r), 6) for r in rates[n]),
                                     bool(layer.relu), li == prods[-1]))
    return NVFResult(model=model.name, neurons=neurons, images=len(x), bits=len(bits),
                     sign=sign, pixels=pixels, seed=seed, seconds=time.perf_counter() - t0,
                     evaluations=evals)
