"""Networks on the accelerator: :class:`Network`, the user's entry point, and its engines.

Three engines run a quantised :class:`golden.network.Model` and give the same logits bit for
bit (``tests/test_network.py``):

``golden``
    :class:`golden.network.FunctionalEngine`: closed form, vectorised over the batch.
``cycle``
    :class:`golden.network.CycleEngine`: the driver's program through the register-level
    cycle model, faults included.
``rtl``
    :class:`tb.accelerator.RTLEngine`: the same programs played on the generated Verilog.
    The Verilog and the simulator model are those of :func:`tb.accelerator.run_program`,
    cached once per configuration and shared by every engine and process; every layer's
    product (all its tiles, the whole batch) is one run of that model, in a folder of its
    own.

:class:`Network` wraps a model (built in, a model file, or ONNX) with its float original and
runs it on images::

    from ftaccel import Network
    from ftaccel.app.datasets import digits
    from ftaccel.config import AcceleratorConfig

    net = Network.builtin("digits-mlp")              # int8, calibrated on the training split
    test = digits("test").head(20)
    result = net.run(test.images, labels=test.labels, engine="cycle",
                     config=AcceleratorConfig(rows=8, cols=8, dataflow="ws"))
    print(result.accuracy, result.layers[0].cycles)

:func:`infer` is ``rtlgen infer``: it validates everything first, runs, then writes
``infer.json`` (complete) and ``infer.md`` through :mod:`ftaccel.files`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ftaccel.app.zoo import adapt_digits
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.network import (
    WHERE,
    CycleEngine,
    FunctionalEngine,
    Model,
    ModelError,
    check_fit,
    describe,
    product_layers,
    quantize,
    run,
)
from ftaccel.tb.accelerator import RTLEngine

__all__ = ["Network", "InferenceResult", "RTLEngine", "make_engine", "infer", "BUILTIN",
           "ENGINES", "flow_groups", "prune_flow_layers", "open_model", "fit_config",
           "AUTO_FIELDS", "model_sha256"]

#: Built-in models: float weights shipped in ``app/models``, calibrated on digits-train.
BUILTIN = ("digits-mlp", "digits-cnn")
ENGINES = ("golden", "cycle", "rtl")


def make_engine(name: str, cfg: AcceleratorConfig, *, sim: str | None = None,
                flow_layers: dict | None = None):
    """The engine called ``name`` (``golden``, ``cycle``, ``rtl``) for ``cfg``.

    On a flow-controlling array (``cfg.flow != "none"``) ``golden`` is
    :class:`golden.flow.FlowEngine` (``cycle``: the same through the register-level model) and
    ``rtl`` is :class:`tb.flow.FlowRTLEngine`; ``flow_layers`` (layer name or index → group
    size) are the layers run packed, every other layer runs dense on the same array.  Check
    the layers against a model first with :func:`flow_groups`.
    """
    if cfg.flow != "none":
        from ftaccel.golden.flow import FlowEngine

        layers = dict(flow_layers or {})
        if name in ("golden", "cycle"):
            return FlowEngine(cfg, layers, simulate=name == "cycle")
        if name == "rtl":
            from ftaccel.tb.flow import FlowRTLEngine

            return FlowRTLEngine(cfg, layers, sim=sim)
        raise ModelError(f"engine {name!r}: choose one of {', '.join(ENGINES)}")
    if flow_layers:
        raise ModelError("packed layers need a flow-controlling array (--flow)")
    if name == "golden":
        return FunctionalEngine(cfg)
    if name == "cycle":
        return CycleEngine(cfg)
    if name == "rtl":
        return RTLEngine(cfg, sim=sim)
    raise ModelError(f"engine {name!r}: choose one of {', '.join(ENGINES)}")


def _flow_layer(model: Model, key) -> int:
    """Index of the product layer ``key`` (a name or an index) of ``model``; else ModelError."""
    products = product_layers(model)
    names = {model.layers[i].name: i for i in products}
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        if int(key) in products:
            return int(key)
    elif key in names:
        return names[key]
    raise ModelError(f"flow layer {key!r}: model {model.name} has no such product layer (it "
                     f"has {', '.join(names)})")


def flow_groups(model: Model, cfg: AcceleratorConfig, flow_layers: dict | None) -> dict[int, int]:
    """``flow_layers`` resolved against ``model``: product-layer index → group size.

    ``flow_layers`` maps a layer name or index to its group on the flow-controlling array
    ``cfg``.  Raises ModelError naming the
    layer if it is not a product layer, its group does not fit the hardware, or its weights
    are not packable (two nonzeros in one group: prune them, e.g. :func:`prune_flow_layers`).
    """
    from ftaccel.errors import ConfigError
    from ftaccel.golden.flow import check_group, is_packable, layer_shape

    if not flow_layers:
        return {}
    if cfg.flow == "none":
        raise ModelError("packed layers need a flow-controlling array (--flow)")
    out: dict[int, int] = {}
    for key, group in flow_layers.items():
        i = _flow_layer(model, key)
        layer = model.layers[i]
        if layer.kind == "dwconv":
            raise ModelError(f"layer {layer.name}: a depthwise layer's one-column products "
                             f"cannot be packed; run it dense")
        try:
            gl, gk = layer_shape(cfg.flow, group)
            check_group(cfg, gl, gk)
        except ConfigError as exc:
            raise ModelError(f"layer {layer.name}: {exc}") from None
        if not is_packable(layer.matrix, gl, gk):
            raise ModelError(f"layer {layer.name}: weights not packable for {cfg.flow}-{group} "
                             f"({gl}×{gk} groups hold more than one nonzero weight); prune it "
                             f"to complementary sparsity (--flow-prune)")
        out[i] = int(group)
    return out


#: ``--flow-prune`` methods: one-shot magnitude pruning, or the sparsity trained in.
PRUNE_METHODS = ("train", "magnitude")


def prune_flow_layers(float_model: Model, flow: str, flow_layers: dict, *,
                      method: str = "magnitude", train=None, epochs: int = 10,
                      seed: int = 0, config: AcceleratorConfig | None = None) -> Model:
    """``float_model`` with the named layers pruned to complementary sparsity for ``flow``.

    ``method="magnitude"``: :func:`golden.flow.prune` (the largest weight of every group
    kept, one shot).  ``method="train"``: the training path's ``sparse`` method
    (:mod:`app.train`, needs JAX) fine-tunes the whole network from its weights for
    ``epochs`` on ``train`` (a labelled data set), int8-aware, the mask evolving with the
    weights (Ozen 2023 §12.4.1; SGD with momentum, learning rate 0.05, β = 0.1); ``config`` gives
    the widths (default: 8-bit, ``flow`` with the largest group).
    """
    import dataclasses

    from ftaccel.errors import ConfigError
    from ftaccel.golden.flow import layer_shape, prune

    if method not in PRUNE_METHODS:
        raise ModelError(f"--flow-prune {method!r}: choose one of {', '.join(PRUNE_METHODS)}")
    layers = list(float_model.layers)
    shapes: dict[int, tuple[int, int]] = {}
    for key, group in flow_layers.items():
        i = _flow_layer(float_model, key)
        try:
            shapes[i] = layer_shape(flow, group)
        except ConfigError as exc:
            raise ModelError(f"layer {layers[i].name}: {exc}") from None
    if method == "magnitude":
        for i, (gl, gk) in shapes.items():
            w = prune(layers[i].matrix, gl, gk).reshape(layers[i].weights.shape)
            layers[i] = dataclasses.replace(layers[i], weights=w)
        return dataclasses.replace(float_model, layers=tuple(layers))
    if train is None or getattr(train, "labels", None) is None:
        raise ModelError("--flow-prune train needs labelled training images (--calib)")
    if epochs < 1:
        raise ModelError(f"--flow-epochs {epochs}: must be at least 1")
    from ftaccel.app.train import TrainOptions, jax_modules

    jax_modules()  # JaxMissing (exit 3) before any work
    from ftaccel.app.train.trainer import train as train_model

    cfg = config or AcceleratorConfig(flow=flow, flow_group=max(flow_layers.values()))
    opts = TrainOptions(methods=("sparse",), epochs=epochs, lr=0.05, seed=seed,
                        flow_layers={layers[i].name: g for i, g in
                                     ((_flow_layer(float_model, k), g)
                                      for k, g in flow_layers.items())})
    return train_model(float_model, train, config=cfg, options=opts).float_model


@dataclass
class InferenceResult:
    """One run of a network on a set of images."""

    model: str
    engine: str
    config: AcceleratorConfig
    logits: np.ndarray
    labels: np.ndarray | None
    layers: list
    seconds: float
    startup_seconds: float | None = None
    float_predictions: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        """The predicted class of each image."""
        return np.argmax(self.logits, axis=1)

    @property
    def images(self) -> int:
        """The number of images."""
        return len(self.logits)

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy against the labels, or None without labels."""
        if self.labels is None:
            return None
        return float(np.mean(self.predictions == self.labels))

    @property
    def float_accuracy(self) -> float | None:
        """The float model's top-1 accuracy, or None without labels or float model."""
        if self.labels is None or self.float_predictions is None:
            return None
        return float(np.mean(self.float_predictions == self.labels))

    @property
    def cycles(self) -> int:
        """Cycles of every layer, in total."""
        return sum(st.cycles for st in self.layers)

    def utilisation(self) -> float:
        """The share of the array's MAC slots used over the run's cycles."""
        macs = sum(st.macs for st in self.layers)
        return macs / (self.cycles * self.config.rows * self.config.cols) if self.cycles else 0.0

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict."""
        cfg = self.config
        out = {"model": self.model, "engine": self.engine, "config": cfg.to_dict(),
               "images": self.images, "accuracy": self.accuracy,
               "float_accuracy": self.float_accuracy,
               "float_agreement": (None if self.float_predictions is None else
                                   float(np.mean(self.float_predictions == self.predictions))),
               "cycles": self.cycles, "utilisation": round(self.utilisation(), 6),
               "seconds": round(self.seconds, 4),
               "images_per_second": round(self.images / self.seconds, 3) if self.seconds else None,
               "startup_seconds": (None if self.startup_seconds is None
                                   else round(self.startup_seconds, 4)),
               "layers": [{"index": st.index, "name": st.name, "kind": st.kind,
                           "runs_on": WHERE.get(st.kind, "host"),
                           **({"products": st.N} if st.kind == "dwconv" else {}),
                           **({"M": st.M, "K": st.K, "N": st.N, "shift": st.shift,
                               "requant": st.requant, "cycles": st.cycles, "macs": st.macs,
                               "utilisation": round(st.utilisation(cfg), 6),
                               "alarms": st.alarms} if st.cycles else {})}
                          for st in self.layers],
               "predictions": self.predictions.tolist(),
               "labels": None if self.labels is None else self.labels.tolist(),
               "logits": self.logits.tolist()}
        out.update(self.extra)
        return out

    def _provenance_lines(self) -> list[str]:
        """Report lines: the model file's hash, the quantisation path, the simulator, options."""
        out = []
        src = self.extra.get("model_file")
        if src:
            out.append(f"- model file: `{src['file']}` (sha256 {src['sha256'][:16]}…)")
        q = self.extra.get("quantisation")
        if q:
            out.append(f"- quantisation: {q['path']}")
        if self.extra.get("simulator"):
            out.append(f"- simulator: {self.extra['simulator']}")
        for key in ("protection", "permutation"):
            if self.extra.get(key):
                out.append(f"- --{key}: `{self.extra[key]['file']}`")
        return out

    def to_markdown(self) -> str:
        """The result as a Markdown report."""
        cfg = self.config
        acc = "—" if self.accuracy is None else f"{100 * self.accuracy:.2f} %"
        fl = "—" if self.float_accuracy is None else f"{100 * self.float_accuracy:.2f} %"
        lines = [f"# Inference: {self.model} on {cfg.rows}×{cfg.cols} {cfg.dataflow.upper()} "
                 f"({self.engine})", "",
                 f"- images: {self.images}", f"- top-1 accuracy: {acc} (float model: {fl})",
                 f"- cycles: {self.cycles:,}; utilisation {100 * self.utilisation():.1f} %",
                 f"- time: {self.seconds:.2f} s"
                 + (f" (+ {self.startup_seconds:.2f} s RTL start-up)"
                    if self.startup_seconds else ""),
                 f"- configuration: `{cfg.name()}`", *self._provenance_lines(), "",
                 "| node | operator | runs on | M×K @ K×N | requantisation | cycles | "
                 "utilisation | alarms |", "|---|---|---|---|---|---:|---:|---|"]
        for st in self.layers:
            if not st.cycles:  # a host node: a bit-exact integer function, no array cycles
                lines.append(f"| {st.name} | {st.kind} | {WHERE.get(st.kind, 'host')} | — | — "
                             f"| 0 | — | — |")
                continue
            alarms = ", ".join(f"{k} {v}" for k, v in st.alarms.items()) or "—"
            shape = (f"{st.N} × ({st.M}×{st.K} @ {st.K}×1)" if st.kind == "dwconv" else
                     f"{st.M}×{st.K} @ {st.K}×{st.N}")
            rq = "multiplier" if st.requant == "multiplier" else f"shift {st.shift}"
            lines.append(f"| {st.name} | {st.kind} | array | {shape} | {rq} | "
                         f"{st.cycles:,} | {100 * st.utilisation(cfg):.1f} % | {alarms} |")
        if any(not st.cycles for st in self.layers):
            lines += ["", "Host nodes are bit-exact integer functions (no array cycles)."]
        if any(st.kind == "dwconv" for st in self.layers):
            lines += ["", f"Depthwise layers run one K×1 product per channel: at most "
                      f"min(K, {cfg.rows})/({cfg.rows}·{cfg.cols}) of the array's MAC slots work "
                      f"(one column of {cfg.cols}), hence their low utilisation."]
        md = "\n".join(lines) + "\n"
        if "flow" in self.extra:
            md += flow_markdown(self.extra["flow"], self)
        return md


class Network:
    """A quantised network with its float original, ready to run on an accelerator.

    Build one with :meth:`builtin`, :meth:`load` (a model file written by :meth:`save`) or
    :meth:`from_onnx`; run it with :meth:`run`.
    """

    def __init__(self, model: Model, float_model: Model | None = None):
        if not model.quantized:
            raise ModelError(f"model {model.name} is not quantised; use Network.quantize")
        self.model = model
        self.float_model = float_model

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def quantize(cls, float_model: Model, calibration, *, a_width: int = 8,
                 w_width: int | None = None) -> Network:
        """Quantise a float model, calibrating on ``calibration`` images."""
        q = quantize(float_model, calibration, a_bits=a_width, w_bits=w_width or a_width)
        return cls(q, float_model)

    @classmethod
    def builtin(cls, name: str, *, a_width: int = 8, w_width: int | None = None) -> Network:
        """``digits-mlp`` or ``digits-cnn``, quantised to ``a_width`` bits (8 or 16).

        Calibrated on the digits training split.
        """
        if name not in BUILTIN:
            raise ModelError(f"model {name!r}: built-in models are {', '.join(BUILTIN)}")
        from ftaccel.app.datasets import digits

        ref = resources.files("ftaccel.app").joinpath("models", f"{name}.npz")
        with ref.open("rb") as fh:
            float_model = Model.load(fh)
        return cls.quantize(float_model, digits("train").images, a_width=a_width,
                            w_width=w_width)

    @classmethod
    def from_onnx(cls, path, calibration=None, *, a_width: int = 8,
                  w_width: int | None = None) -> Network:
        """An ONNX graph as a network.

        A float graph is quantised with ``calibration`` images (power-of-two); an int8 one
        (QDQ / QOperator) keeps its own scales (fixed-point; no calibration needed).
        """
        from ftaccel.app.onnx_import import load_onnx  # onnx is optional: only for ONNX files

        model = load_onnx(path)
        if model.quantized:
            return cls(model)
        if calibration is None:
            raise ModelError(f"{path}: a float ONNX model needs calibration images")
        return cls.quantize(model, calibration, a_width=a_width, w_width=w_width)

    @classmethod
    def load(cls, path, *, calibration=None, a_width: int = 8,
             w_width: int | None = None) -> Network:
        """A model file: quantised as saved, or float (then ``calibration`` is needed)."""
        model = Model.load(path)
        if model.quantized:
            return cls(model)
        if calibration is None:
            raise ModelError(f"{path}: a float model needs calibration images to quantise")
        return cls.quantize(model, calibration, a_width=a_width, w_width=w_width)

    def save(self, path) -> Path:
        """Write the quantised model (one ``.npz``, :mod:`golden.network`'s format)."""
        from ftaccel.files import atomic_write

        with atomic_write(path) as fh:
            fh.write(self.model.to_bytes())
        return Path(path)

    # -- use ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's name."""
        return self.model.name

    def describe(self) -> list[dict]:
        """One dict per layer describing the model."""
        return describe(self.model)

    def default_config(self, **changes) -> AcceleratorConfig:
        """An 8×8 WS configuration with the model's widths (``changes`` override)."""
        base = {"a_width": self.model.a_bits, "w_width": self.model.w_bits}
        return AcceleratorConfig(**{**base, **changes})

    def check(self, config: AcceleratorConfig, images=None) -> np.ndarray | None:
        """Raise ModelError if the model cannot run on ``config`` or the images do not fit it.

        Return the quantised images.
        """
        check_fit(self.model, config)
        if images is None:
            return None
        return self.model.quantize_input(images)

    def float_logits(self, images) -> np.ndarray | None:
        """The float model's logits for ``images``, or None without a float model."""
        return None if self.float_model is None else self.float_model.forward_float(images)

    def run(self, images, *, labels=None, engine: str = "golden",
            config: AcceleratorConfig | None = None, units: dict | None = None,
            options=None, batch_size: int | None = None, progress: bool | None = False,
            sim: str | None = None, flow_layers: dict | None = None) -> InferenceResult:
        """Run the network on ``images`` (float, the training scale).

        Returns logits, predictions, accuracy (with ``labels``) and per-layer cycles.

        ``engine``: ``golden`` | ``cycle`` | ``rtl`` (or an engine object).  ``units``: unit
        options for every layer (keywords of the units, :mod:`ftaccel.units`); ``options``:
        per-layer :class:`golden.network.LayerOptions`.  Images go through in batches of
        ``batch_size`` (default: all at once for ``golden``, 512 otherwise); ``progress``
        shows a bar on stderr, one step per layer and batch (``None``: only on a terminal).
        ``flow_layers`` (layer name or index → group size): on a flow-controlling array
        (``config.flow != "none"``) the layers run packed; the others run dense there
        (ModelError if a layer's weights are not packable, see :func:`flow_groups`).
        """
        cfg = config or self.default_config()
        x = self.check(cfg, images)
        groups = flow_groups(self.model, cfg, flow_layers)
        labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if labels is not None and labels.shape != (len(x),):
            raise ModelError(f"labels: {labels.shape} for {len(x)} images")
        eng = (make_engine(engine, cfg, sim=sim, flow_layers=groups) if isinstance(engine, str)
               else engine)
        startup = None
        if isinstance(eng, RTLEngine):
            startup = eng.start()
        if batch_size is None:
            batch_size = max(len(x), 1) if isinstance(eng, FunctionalEngine) else 512
        from tqdm import tqdm

        n_batches = -(-len(x) // batch_size)
        t0 = time.perf_counter()
        logits, totals = [], None
        # One step per product (a layer of one batch): an RTL run is one simulator run per
        # product, so this is the grain at which a long run can report progress.
        # a depthwise node is one product per channel
        steps = sum(self.model.layers[i].matrix.shape[1] if self.model.layers[i].kind ==
                    "dwconv" else 1 for i in product_layers(self.model))
        bar = tqdm(total=n_batches * steps, unit="product",
                   desc=f"{self.name} on {eng.name}, {len(x)} images", file=sys.stderr,
                   disable=(None if progress is None else not progress), leave=False)
        counted = _Counted(eng, bar)
        try:
            for s in range(0, len(x), batch_size):
                res = run(self.model, x[s:s + batch_size], counted, options=options,
                          units=units)
                logits.append(res.logits)
                if totals is None:
                    totals = res.layers
                else:
                    for acc, st in zip(totals, res.layers, strict=True):
                        acc.add(st)
        finally:
            bar.close()
        dt = time.perf_counter() - t0
        fl = self.float_logits(images)
        return InferenceResult(model=self.name, engine=eng.name, config=cfg,
                               logits=np.concatenate(logits), labels=labels,
                               layers=totals or [], seconds=dt, startup_seconds=startup,
                               float_predictions=None if fl is None else np.argmax(fl, axis=1))


class _Counted:
    """An engine that advances a progress bar after every product."""

    def __init__(self, engine, bar):
        self.engine, self.bar, self.name = engine, bar, engine.name
        self.cfg = getattr(engine, "cfg", None)  # a depthwise node's flip fault needs it

    def product(self, p):
        res = self.engine.product(p)
        self.bar.update(1)
        return res


def open_model(spec: str, *, a_width: int, w_width: int | None, calibration) -> Network:
    """The network ``spec`` names, as ``--model`` takes it (``rtlgen infer``, ``campaign`` ...).

    Parameters
    ----------
    spec : str
        A built-in model (:data:`BUILTIN`), an ONNX file (``.onnx``, needs ``calibration``)
        or a model file (``.npz``, float or quantised).
    a_width, w_width : int
        Activation and weight widths the model is quantised to (``w_width`` None: as
        ``a_width``).
    calibration : ndarray or None
        Calibration images (``--calib``); None for the built-in models' own.

    An int8 ONNX model (QDQ or QOperator, e.g. onnxruntime's ``quantize_static``) is used with
    its own scales (fixed-point path); ``calibration`` is then not needed.

    Raises
    ------
    ModelError
        For a missing file, a float ONNX model without calibration images, or an unknown
        kind.
    """
    if spec in BUILTIN:
        return Network.builtin(spec, a_width=a_width, w_width=w_width)
    p = Path(spec)
    if p.suffix == ".onnx":
        from ftaccel.app.onnx_import import load_onnx
        from ftaccel.files import FileProblem, check_input

        try:  # a regular file: a FIFO or a device is refused, never waited on
            check_input(p, "--model")
        except FileProblem as exc:
            raise ModelError(str(exc)) from None
        model = load_onnx(p)
        if model.quantized:  # an int8 model (QDQ / QOperator): its scales as given
            return Network(model)
        if calibration is None:
            raise ModelError(f"--model {p}: a float ONNX model needs calibration images "
                             f"(--calib)")
        return Network.quantize(model, calibration, a_width=a_width, w_width=w_width)
    if p.suffix == ".npz":
        return Network.load(p, calibration=calibration, a_width=a_width, w_width=w_width)
    raise ModelError(f"--model {spec!r}: not a built-in model ({', '.join(BUILTIN)}), a .onnx "
                     f"file or a model .npz")



def model_sha256(spec: str) -> dict:
    """``{"file", "sha256"}`` of the model ``spec`` names (a built-in model: its shipped file)."""
    import hashlib

    if spec in BUILTIN:
        ref = resources.files("ftaccel.app").joinpath("models", f"{spec}.npz")
        data, where = ref.read_bytes(), f"ftaccel/app/models/{spec}.npz"
    else:
        data, where = Path(spec).read_bytes(), str(spec)
    return {"file": where, "sha256": hashlib.sha256(data).hexdigest()}


#: Configuration fields :func:`infer` may choose for the model when the user gave none.
AUTO_FIELDS = ("requant", "max_k")


def fit_config(model: Model, config: AcceleratorConfig, auto=AUTO_FIELDS,
               log=None) -> AcceleratorConfig:
    """``config`` with the fields in ``auto`` chosen for ``model`` where it needs them.

    ``requant``: ``"multiplier"`` for a fixed-point model (an int8 model with its own scales
    needs the output stage's multiplier); ``max_k``: the model's longest reduction if the
    configuration's is shorter (the accumulator grows with it).  ``log`` reports each choice.
    """
    changes = {}
    if "requant" in auto and model.fixed and config.requant != "multiplier":
        changes["requant"] = "multiplier"
    if "max_k" in auto:
        K = max((model.layers[i].matrix.shape[0] for i in product_layers(model)), default=1)
        if config.max_k < K:
            changes["max_k"] = int(K)
    if not changes:
        return config
    if log is not None:
        why = ", ".join(f"{k} = {v!r}" for k, v in changes.items())
        log(f"note: model {model.name}: configuration {why} (chosen for the model; give "
            f"--config or the option to choose otherwise)", file=sys.stderr)
    return AcceleratorConfig.from_dict({**config.to_dict(), **changes})


def infer(model: str, out_dir, *, config: AcceleratorConfig, data: str | None = None,
          calib: str | None = None, images: int | None = None, engine: str = "golden",
          sim: str | None = None, units: dict | None = None, progress: bool | None = None,
          layer_options=None, flow_layers: dict | None = None, flow_prune: str | None = None,
          flow_epochs: int = 10, auto: tuple = (), sources: dict | None = None,
          log=print) -> InferenceResult:
    """``rtlgen infer``: validate model, data, fit and output paths.

    Run; write ``infer.json`` and ``infer.md`` into ``out_dir``.  Bad input raises ModelError /
    DataError before anything is written.

    On a flow-controlling array (``config.flow != "none"``) ``flow_layers`` (layer name or
    index → group) run packed; ``flow_prune`` (``train`` or ``magnitude``) first prunes those
    layers of the float model to complementary sparsity (:func:`prune_flow_layers`; ``train``
    for ``flow_epochs`` on the calibration set) and quantises it again with the same
    calibration.  The report then also holds the unpruned network run dense on the same array
    (:class:`golden.flow.FlowEngine` with no packed layer): its accuracy and cycles.

    ``auto``: configuration fields (:data:`AUTO_FIELDS`) the caller lets infer choose for the
    model (:func:`fit_config`; ``rtlgen infer`` without ``--config``: those the user did not
    give).  ``sources``: option name → file (``protection``, ``permutation``), recorded with
    their hashes.  ``infer.json`` records the model file's hash, the quantisation path, the
    engine and the simulator.
    """
    from ftaccel.app.datasets import DataError, Dataset, digits, load_data
    from ftaccel.files import OutputSet, check_target, write_json, write_text

    if engine not in ENGINES:
        raise ModelError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if images is not None and images < 1:
        raise DataError(f"--images {images}: must be at least 1")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"-o {out}: exists and is not a folder")
    targets = [check_target(out / name) for name in ("infer.json", "infer.md")]
    ds = load_data(data) if data else digits("test")
    ds = ds.head(images)
    cal_set = load_data(calib) if calib else None
    cal = cal_set.images if cal_set is not None else None
    note = None
    if cal is None and model.endswith(".onnx") and data:
        note = f"note: no --calib: calibrated {model} on the evaluation data ({ds.name})"
        cal = ds.images
    net = open_model(model, a_width=config.a_width, w_width=config.w_width, calibration=cal)
    if net.model.fixed:
        note = None  # an int8 model keeps its own scales: nothing was calibrated
    config = fit_config(net.model, config, auto, log)
    if data is None and ds.images.shape[1:] == (8, 8) and \
            tuple(net.model.input_shape) not in ((8, 8, 1), (64,)):
        ds = Dataset(adapt_digits(ds.images, net.model.input_shape), ds.labels, ds.name)
        log(f"note: the digits adapted to {net.name}'s input {tuple(net.model.input_shape)} "
            f"(nearest-neighbour upsampling, one channel replicated)", file=sys.stderr)
    dense_net = net
    if flow_prune:
        if not flow_layers:
            raise ModelError("--flow-prune needs the layers to prune (--flow-layers)")
        if net.float_model is None:
            raise ModelError(f"--flow-prune: model {net.name} has no float original to prune "
                             f"(a quantised model file); give the float model")
        if model in BUILTIN:
            cal_set = digits("train")
            cal = cal_set.images
        pruned = prune_flow_layers(net.float_model, config.flow, flow_layers, method=flow_prune,
                                   train=cal_set, epochs=flow_epochs, config=config)
        net = Network.quantize(pruned, cal, a_width=config.a_width, w_width=config.w_width)
    x = net.check(config, ds.images)  # fit and data range, before any work
    flow_groups(net.model, config, flow_layers)  # packable, before any work
    if ds.labels.max() >= net.model.classes:
        raise DataError(f"data: label {int(ds.labels.max())} but model {net.name} has "
                        f"{net.model.classes} classes")
    del x
    if note:
        log(note, file=sys.stderr)
    # layer_options(model) -> {layer: LayerOptions} (a permutation or a protection, checked
    # against the model: ModelError before any work); TMR triples need the voter around it
    options = layer_options(net.model) if layer_options is not None else None
    eng = engine
    if options and any("tmr_triples" in o.units for o in options.values()):
        from ftaccel.app.protect import VotingEngine

        eng = VotingEngine(make_engine(engine, config, sim=sim))
    result = net.run(ds.images, labels=ds.labels, engine=eng, config=config, units=units,
                     options=options, progress=progress, sim=sim, flow_layers=flow_layers)
    if engine == "rtl":
        from ftaccel.tb.runner import default_sim

        sim = sim or default_sim()
    result.extra = {"data": ds.name, "model_layers": net.describe(),
                    "model_info": net.model.info, "simulator": sim if engine == "rtl" else None,
                    "model_file": model_sha256(model), "quantisation": _quantisation(net),
                    **{k: model_sha256(str(v)) for k, v in (sources or {}).items()
                       if v is not None}}
    if config.flow != "none":
        from ftaccel.golden.flow import FlowEngine

        dense = dense_net.run(ds.images, labels=ds.labels, engine=FlowEngine(config, {}),
                              config=config, units=units, progress=progress)
        groups = flow_groups(net.model, config, flow_layers)
        names = {i: net.model.layers[i].name for i in groups}
        result.extra["flow"] = {
            "flow": config.flow, "flow_group": config.flow_group,
            "layers": {names[i]: g for i, g in groups.items()},
            "pruned": bool(flow_prune), "prune_method": flow_prune or None,
            "prune_epochs": flow_epochs if flow_prune == "train" else None,
            "weights_kept": {names[i]: int(np.count_nonzero(net.model.layers[i].matrix))
                             for i in groups},
            "dense": {"accuracy": dense.accuracy, "cycles": dense.cycles,
                      "engine": "flow (golden, no packed layer)"},
            "speedup": round(dense.cycles / result.cycles, 4) if result.cycles else None}
    with OutputSet() as outputs:
        outputs.mkdir(out)
        outputs.write(write_json, targets[0], _jsonable(result.to_dict()))
        outputs.write(write_text, targets[1], result.to_markdown())
    return result


def _quantisation(net: Network) -> dict:
    """How the network's integers came to be: its scales as given, or calibrated here."""
    m = net.model
    if m.fixed:
        q = dict(m.info.get("quantisation", {}))
        return {"path": f"fixed-point: the model's own scales ({q.get('format', 'int8')}, "
                        f"{q.get('activations', '8-bit')} activations, weights "
                        f"{q.get('weights', 'per tensor')}), multiplier per layer", **q}
    cal = m.info.get("calibration", {})
    return {"path": f"power-of-two: calibrated on {cal.get('images', '?')} images",
            "calibration": cal, "input_frac": m.input_frac, "fracs": list(m.fracs)}


def flow_markdown(flow: dict, result: InferenceResult) -> str:
    """Lines for ``infer.md``: the packed network beside the dense one on the same array."""
    def acc(a):
        return "—" if a is None else f"{100 * a:.2f} %"

    packed = ", ".join(f"{k} (group {g}, {flow['weights_kept'][k]} weights kept)"
                       for k, g in flow["layers"].items()) or "none"
    d = flow["dense"]
    return "\n".join([
        "", f"## Flow-controlling array: {flow['flow']}-{flow['flow_group']}", "",
        f"- packed layers: {packed}"
        + ((" — pruned to complementary sparsity before quantisation ("
            + ("one-shot magnitude" if flow["prune_method"] == "magnitude" else
               f"trained in, {flow['prune_epochs']} epochs") + ")") if flow["pruned"] else ""),
        "", "| network | accuracy | cycles | speed-up |", "|---|---:|---:|---:|",
        f"| packed ({result.engine}) | {acc(result.accuracy)} | {result.cycles:,} | "
        f"{flow['speedup'] or 0:.2f}× |",
        f"| dense, same array (golden) | {acc(d['accuracy'])} | {d['cycles']:,} | 1.00× |",
    ]) + "\n"


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x

