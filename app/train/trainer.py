"""The training loop, its evaluation, the device calibration and ``rtlgen train`` (issue 28).

:func:`train` fine-tunes (or trains from scratch) a float :class:`golden.network.Model` with
the methods of :class:`app.train.options.TrainOptions`, quantisation-aware: every epoch starts
by calibrating the power-of-two scales on training images with the tool's own rule
(:func:`golden.network.quantize` of the current weights, BatchNorm folded), and the steps
run the accelerator's int8 arithmetic with those scales (:mod:`app.train.net`).  The
exported model is ``quantize`` of the trained float model on the same images, so it is also
what ``rtlgen infer`` makes of the float model file; its logits on the golden engine equal the
training forward's in float64 (checked on every run and recorded as ``forward_bit_exact``).

Reproducible: one seed drives the shuffling (numpy), the masks (JAX keys folded with the
step) and the fault draws (``SeedSequence([seed, step, node])``); XLA's CPU arithmetic is
deterministic for a given machine.

:func:`calibrate_bypass` is Ozen 2023 §10.3.3 for the int8 accelerator: on a device with a known
bypass map, the pre-activation statistics (mean, variance) of every product node are
re-estimated on a few calibration mini-batches (cumulative moving averages, Eqs. 10.6–10.7)
and each output channel is corrected to the fault-free statistics — the folded form of
re-estimating BatchNorm's statistics — node by node in graph order, on the device's own int8
forward.  The activation scales stay; the weight scales are re-picked.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ftaccel import units as unit_registry
from ftaccel.errors import ConfigError
from ftaccel.golden.network import (
    _PRODUCTS,
    FunctionalEngine,
    LayerOptions,
    Model,
    ModelError,
    check_fit,
    quantize,
    run,
)

from . import jax_modules
from .methods import CampaignFaults, outlier_penalty
from .net import Graph, Hooks, Scales, rescale, to_quantized
from .options import METHOD_DATAFLOW, TrainOptions

__all__ = ["train", "TrainResult", "evaluate", "dequantize", "calibrate_bypass", "run_train",
           "prepare_images", "check_methods"]

jax_modules()  # 64-bit floats for the exact forward

_DESCRIBE = {"dropconnect": ("hardware-aware dropconnect", "the weights a bypassed PE holds"),
             "dropout-in": ("hardware-aware dropout at the layer inputs",
                            "the inputs a bypassed PE holds"),
             "dropout-out": ("hardware-aware dropout at the layer outputs",
                             "the outputs a bypassed PE holds")}
_FOR_DATAFLOW = {v: k for k, v in METHOD_DATAFLOW.items()}


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained float model, its quantised export, the record."""

    float_model: Model
    model: Model
    record: dict


# -- checks ------------------------------------------------------------------------------------

def _nodes(model: Model, names, option: str = "layers") -> list[int]:
    """Product-node indices of ``names`` (None: every product node); ConfigError naming one."""
    products = [i for i, lay in enumerate(model.layers) if isinstance(lay, _PRODUCTS)]
    if names is None:
        return products
    by_name = {model.layers[i].name: i for i in products}
    out = []
    for n in names:
        if n not in by_name:
            raise ConfigError(option, n, f"a product layer of {model.name} "
                              f"({', '.join(by_name)})")
        out.append(by_name[n])
    return out


def check_methods(model: Model, cfg, opts: TrainOptions) -> dict:
    """Check the methods against the model and the accelerator; what the hooks need.

    ConfigError names the option: a bypass method for another dataflow (naming both), the
    median without a median window, ``afd`` without the unit, sparse layers without
    a flow array or on a depthwise node, unknown layer names.  ModelError names an operator
    the training path does not compute.
    """
    Graph(model)  # every node kind computed (ModelError naming the first that is not)
    out: dict = {"layers": _nodes(model, opts.layers)}
    for m in opts.methods:
        if m in METHOD_DATAFLOW and cfg.dataflow != METHOD_DATAFLOW[m]:
            what, held = _DESCRIBE[m]
            raise ConfigError("method", m, f"{what} models {METHOD_DATAFLOW[m].upper()} bypass "
                              f"({held}); the configuration's dataflow is {cfg.dataflow}: use "
                              f"--method {_FOR_DATAFLOW[cfg.dataflow]}")
    # The median and AFD filter each R-lane chunk of the activations on every dataflow
    # (golden.units.units_matrix; Ozen 2023 Fig. 8.9), so the training forward is the same
    # on WS, IS and OS (tested against the engines on each).
    if "median" in opts.methods and cfg.median not in (3, 5):
        raise ConfigError("median", cfg.median, "3 or 5 for --method median (the window of "
                          "the accelerator's filter)")
    if "afd" in opts.methods:
        if not cfg.afd:
            raise ConfigError("afd", cfg.afd, "on (--afd) for --method afd (the accelerator's "
                              "anomaly suppression unit)")
        # the same checks and messages as rtlgen infer (the unit registry's)
        unit_registry.check_options(cfg, unit_registry.options_from_flags(
            {"afd_shift": opts.afd_shift, "afd_gates": opts.afd_gates,
             "afd_mode": opts.afd_mode}))
    if "sparse" in opts.methods:
        from ftaccel.golden.flow import layer_shape

        if cfg.flow == "none":
            raise ConfigError("flow", cfg.flow, "shortened, superposition or twodim for "
                              "--method sparse (the flow-controlling array's groups)")
        shapes = {}
        for name, group in opts.flow_layers.items():
            (i,) = _nodes(model, [name], "flow_layers")
            if model.layers[i].kind == "dwconv":
                raise ConfigError("flow_layers", name, "a dense or convolution layer (a "
                                  "depthwise layer's one-column products cannot be packed)")
            shapes[i] = layer_shape(cfg.flow, int(group))
        out["sparse"] = shapes
    return out


def prepare_images(model: Model, images: np.ndarray) -> np.ndarray:
    """``images`` in the model's layout; digits-sized data adapted by the zoo where it fits."""
    try:
        return model.prepare(images)
    except ModelError:
        try:
            from ftaccel.app import zoo  # the model zoo adapts 8×8 digits to its inputs
        except ImportError:
            raise
        return model.prepare(zoo.digits_input(model.name, images))


# -- evaluation --------------------------------------------------------------------------------

def evaluate(qmodel: Model, images, labels, cfg, *, units=None, options=None,
             batch: int | None = 256) -> tuple[float, np.ndarray]:
    """``(accuracy, logits)`` of quantised ``qmodel`` on the golden engine (fault-free units).

    In batches of ``batch`` images; an IS bypass map prunes by batch row (Eq. 10.4), so then
    every image runs in one batch, as ``rtlgen infer`` runs them.
    """
    x = qmodel.quantize_input(prepare_images(qmodel, images), check=False)
    if batch is None or (cfg.dataflow == "is" and (units or {}).get("bypass_map") is not None):
        batch = max(len(x), 1)
    eng = FunctionalEngine(cfg)
    logits = np.concatenate([run(qmodel, x[s:s + batch], eng, units=units, options=options).logits
                             for s in range(0, len(x), batch)])
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels))), logits


def _unit_options(qmodel: Model, cfg, opts: TrainOptions,
                  nodes) -> tuple[dict | None, dict | None]:
    """Units and per-layer options that run the trained-in units on ``nodes`` only.

    The median filter for ``median``, anomaly suppression for ``afd``; None, None when the
    methods use no unit.
    """
    units, off = {}, {}
    if "median" in opts.methods:
        units["median_enable"], off["median_enable"] = True, False
    if "afd" in opts.methods:
        ctl = {"shift": opts.afd_shift, "gates": opts.afd_gates,
               "mode": int(opts.afd_mode == "clip")}
        units["afd"], off["afd"] = {**ctl, "enable": 1}, {**ctl, "enable": 0}
    if not units:
        return None, None
    on = set(nodes)
    per = {i: LayerOptions(units=dict(off)) for i, lay in enumerate(qmodel.layers)
           if isinstance(lay, _PRODUCTS) and i not in on}
    return units, per


def dequantize(qmodel: Model) -> Model:
    """The float model whose quantisation at ``qmodel``'s scales is ``qmodel`` (exactly)."""
    sc = Scales.of(qmodel)
    layers = []
    for i, layer in enumerate(qmodel.layers):
        if isinstance(layer, _PRODUCTS):
            fw = sc.fw[i]
            f_acc = sc.fracs[qmodel.sources(i)[0]] + fw
            layer = dataclasses.replace(layer, weights=np.asarray(layer.weights) * 2.0 ** -fw,
                                        bias=np.asarray(layer.bias) * 2.0 ** -f_acc, shift=0)
        elif hasattr(layer, "shifts"):
            layer = dataclasses.replace(layer, shifts=())
        elif layer.kind == "clip":
            layer = dataclasses.replace(layer, qlo=None, qhi=None)
        layers.append(layer)
    return Model(layers=tuple(layers), input_shape=qmodel.input_shape, classes=qmodel.classes,
                 name=qmodel.name, input_layout=qmodel.input_layout, info=dict(qmodel.info))


def _cast(tree, dtype):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def forward_logits(qmodel: Model, images, *, hooks: Hooks | None = None, dyn=None,
                   dtype=jnp.float64) -> np.ndarray:
    """The training forward of ``qmodel`` (its float weights at its scales), integer logits.

    With ``float64`` this equals the golden engine's logits bit for bit.
    """
    fm = dequantize(qmodel)
    g = Graph(fm)
    params, _ = g.init()
    sc = Scales.of(qmodel)
    x = jnp.asarray(prepare_images(qmodel, images), dtype)
    bits = (qmodel.a_bits, qmodel.w_bits)
    fwd = jax.jit(lambda p, xb, s, d: g.apply(p, {}, xb, scales=s, hooks=hooks, dyn=d,
                                               bits=bits)[0])
    logits = fwd(_cast(params, dtype), x, sc.arrays(dtype), dyn or {})
    return np.asarray(logits, np.float64) * 2.0 ** sc.fracs[len(qmodel.layers) - 1]


# -- training ----------------------------------------------------------------------------------

def _he_init(graph: Graph, params: dict, seed: int) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1417]))
    out = {}
    for k, p in params.items():
        w = p["w"]
        fan_in = int(np.prod(w.shape[:-1]))
        if graph.model.layers[int(k)].kind == "dwconv":
            fan_in = int(np.prod(w.shape[:2]))
        out[k] = {**p, "w": rng.normal(0.0, math.sqrt(2.0 / fan_in), w.shape),
                  "b": np.zeros_like(p["b"])}
    return out


def _bn_identity(graph: Graph, params: dict, state: dict, x: np.ndarray) -> tuple[dict, dict]:
    """BatchNorm set to the identity on ``x``'s statistics (fine-tuning starts where it was)."""
    plain = Graph(graph.model)
    p0 = {k: {"w": v["w"], "b": v["b"]} for k, v in params.items()}
    _, _, aux = plain.apply(_cast(p0, jnp.float64), {}, jnp.asarray(x, jnp.float64),
                            record=True)
    params, state = dict(params), dict(state)
    for i in graph.batchnorm:
        z = np.asarray(aux["pre"][i])
        mean, var = z.mean(axis=0), z.var(axis=0)
        params[str(i)] = {**params[str(i)], "gamma": np.sqrt(var + 1e-5), "beta": mean}
        state[str(i)] = {"mean": mean, "var": var}
    return params, state


def _group_masks(graph: Graph, params: dict, sparse: dict) -> dict:
    from ftaccel.golden.flow import group_mask

    out = dict(params)
    for i, (gl, gk) in sparse.items():
        w = np.asarray(params[str(i)]["w"], np.float64)
        m = w.reshape(-1, w.shape[-1])
        out[str(i)] = {**params[str(i)], "w": np.where(group_mask(m, gl, gk), m, 0.0)
                       .reshape(w.shape)}
    return out


def _export(graph: Graph, params: dict, state: dict, sparse: dict, calib, cfg,
            info: dict) -> tuple[Model, Model]:
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    state = jax.tree.map(lambda a: np.asarray(a, np.float64), state)
    if sparse:
        params = _group_masks(graph, params, sparse)
    fm = graph.float_model(graph.fold(params, state), info)
    return fm, quantize(fm, calib, a_bits=cfg.a_width, w_bits=cfg.w_width)


def _hooks(graph: Graph, cfg, opts: TrainOptions, plan: dict, *, training: bool) -> Hooks:
    model = graph.model
    median, afd = (), ()
    if "median" in opts.methods:
        median = tuple((i, (cfg.median, cfg.rows)) for i in plan["layers"])
    if "afd" in opts.methods:
        afd = tuple((i, (opts.afd_shift, opts.afd_gates, opts.afd_mode, cfg.rows, cfg.a_width))
                    for i in plan["layers"])
    if not training:
        return Hooks(median=median, afd=afd)
    mask, mask_nodes = None, frozenset()
    for m in opts.methods:
        if m in METHOD_DATAFLOW:
            mask = (METHOD_DATAFLOW[m], opts.drop_kind, opts.drop_rate, cfg.rows, cfg.cols)
            mask_nodes = frozenset(plan["layers"])
    sparse = tuple((i, (gl, gk, opts.beta)) for i, (gl, gk) in plan.get("sparse", {}).items())
    fault, fault_nodes = None, frozenset()
    if "fault-aware" in opts.methods:
        units, per = _unit_options(model, cfg, opts, plan["layers"])
        fault = CampaignFaults(cfg, opts.fault_model, opts.fault_rate,
                               targets=opts.fault_targets, profile_mode=opts.profile_mode,
                               seed=opts.seed, units=units,
                               node_units={i: o.units for i, o in (per or {}).items()})
        fault_nodes = frozenset(i for i in graph.products if model.layers[i].kind != "dwconv")
    return Hooks(median=median, afd=afd, mask=mask, mask_nodes=mask_nodes, sparse=sparse,
                 fault=fault, fault_nodes=fault_nodes)


def train(model: Model, train_set, *, config, options: TrainOptions, test_set=None,
          progress: bool | None = False, log=None) -> TrainResult:
    """Train ``model`` on ``train_set`` (images, labels) for ``config``'s accelerator.

    Parameters
    ----------
    model : Model
        A float model (a quantised one is dequantised first: its weights are the start).
    train_set, test_set : Dataset
        Labelled images; accuracy before and after is measured on ``test_set`` (default:
        the training set) on the golden engine with the method's units (the median filter
        for ``median``, anomaly suppression for ``afd``), fault-free.
    config : AcceleratorConfig
        The accelerator: widths, array size, dataflow, median window, flow groups.
    options : TrainOptions
        Methods and hyper-parameters.
    progress : bool or None
        A tqdm bar on stderr (None: only on a terminal).

    Returns
    -------
    TrainResult
        The trained float model (BatchNorm folded), its quantised export and the record
        (``train.json``'s content).
    """
    opts, cfg = options, config
    if "calibrate" in opts.methods:
        raise ConfigError("method", "calibrate", "a device calibration: use calibrate_bypass")
    if model.quantized:
        model = dequantize(model)
    plan = check_methods(model, cfg, opts)
    x_all = prepare_images(model, train_set.images).astype(np.float64)
    y_all = np.asarray(train_set.labels, np.int64)
    if len(y_all) and y_all.max() >= model.classes:
        raise ConfigError("data", f"label {int(y_all.max())}", f"labels below the model's "
                          f"{model.classes} classes")
    test = test_set if test_set is not None else train_set
    calib = x_all[:opts.calib_images]
    bn_nodes = [i for i in Graph(model).products[:-1]] if opts.batchnorm else []
    graph = Graph(model, bn_nodes)
    params, state = graph.init()
    if opts.init == "random":
        params = _he_init(graph, params, opts.seed)
        for i in bn_nodes:
            params[str(i)]["gamma"] = np.ones_like(params[str(i)]["gamma"])
    elif bn_nodes:
        params, state = _bn_identity(graph, params, state, calib)
    dtype = jnp.float32 if opts.dtype == "float32" else jnp.float64
    bits = (cfg.a_width, cfg.w_width)
    hooks = _hooks(graph, cfg, opts, plan, training=True)
    eval_hooks = _hooks(graph, cfg, opts, plan, training=False)
    outlier = "outlier" in opts.methods

    def loss_fn(p, s, xb, yb, scales, key, dyn):
        logits, new_s, aux = graph.apply(p, s, xb, scales=scales, train=True, hooks=hooks,
                                         key=key, dyn=dyn, bits=bits)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        if outlier:
            loss = loss + outlier_penalty(aux["weights"], opts.alpha, opts.penalty)
        return loss, (new_s, logits)

    n = len(x_all)
    batch = min(opts.batch, n)
    steps = n // batch
    total = steps * opts.epochs
    if opts.schedule == "step":
        lr = optax.piecewise_constant_schedule(opts.lr, {total // 2: 0.1, (3 * total) // 4: 0.1})
    else:
        lr = opts.lr
    tx = optax.adam(lr) if opts.optimizer == "adam" else optax.sgd(lr, momentum=opts.momentum
                                                                   or None)

    @jax.jit
    def step(p, s, o, xb, yb, scales, key, dyn):
        (loss, (new_s, logits)), g = jax.value_and_grad(loss_fn, has_aux=True)(
            p, s, xb, yb, scales, key, dyn)
        upd, o = tx.update(g, o, p)
        return optax.apply_updates(p, upd), new_s, o, loss, jnp.mean(
            jnp.argmax(logits, axis=1) == yb)

    @jax.jit
    def predict(p, s, xb, scales):
        return graph.apply(p, s, xb, scales=scales, hooks=eval_hooks, bits=bits)[0]

    info = dict(model.info)
    q_before = quantize(model, calib, a_bits=cfg.a_width, w_bits=cfg.w_width) \
        if opts.init == "model" else None
    units, layer_opts = _unit_options(model, cfg, opts, plan["layers"])
    if q_before is not None:
        acc_before, _ = evaluate(q_before, test.images, test.labels, cfg, units=units,
                                 options=layer_opts)
    else:
        acc_before = None
    p = _cast(params, dtype)
    s = _cast(state, dtype)
    o = tx.init(p)
    rng = np.random.default_rng(np.random.SeedSequence([opts.seed, 0x7EA1]))
    key0 = jax.random.PRNGKey(opts.seed)
    x_test = prepare_images(model, test.images).astype(np.float64)
    epochs = []
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", file=sys.stderr, leave=False,
               desc=f"train {model.name} ({'+'.join(opts.methods)})",
               disable=(None if progress is None else not progress))
    t_start = time.perf_counter()
    k = 0
    try:
        for epoch in range(opts.epochs):
            t0 = time.perf_counter()
            qat = epoch >= opts.float_epochs
            scales = None
            if qat:  # the tool's calibration of the current weights
                _, qm = _export(graph, p, s, plan.get("sparse", {}), calib, cfg, info)
                scales = Scales.of(qm).arrays(dtype)
            order = rng.permutation(n)
            losses, accs = [], []
            for b in range(steps):
                idx = order[b * batch:(b + 1) * batch]
                xb = jnp.asarray(x_all[idx], dtype)
                yb = jnp.asarray(y_all[idx])
                p, s, o, loss, acc = step(p, s, o, xb, yb, scales,
                                          jax.random.fold_in(key0, k),
                                          {"step": jnp.asarray(k)})
                k += 1
                losses.append(float(loss))
                accs.append(float(acc))
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses):.4f}")
            if not np.isfinite(np.mean(losses)):
                raise ConfigError("lr", opts.lr, f"a smaller learning rate (the loss became "
                                  f"{np.mean(losses)} in epoch {epoch + 1})")
            test_acc = _predict_accuracy(predict, p, s, x_test, test.labels, scales, dtype)
            epochs.append({"epoch": epoch + 1, "quantised": qat,
                           "loss": float(np.mean(losses)), "train_accuracy": float(np.mean(accs)),
                           "test_accuracy": test_acc,
                           "seconds": round(time.perf_counter() - t0, 3)})
            if log is not None:
                log(f"epoch {epoch + 1}/{opts.epochs}: loss {np.mean(losses):.4f}, "
                    f"test accuracy {test_acc:.4f}", file=sys.stderr)
    finally:
        bar.close()
    train_seconds = time.perf_counter() - t_start
    rec_info = {**info, "train": {"methods": list(opts.methods), "seed": opts.seed,
                                  "epochs": opts.epochs,
                                  "batchnorm_nodes": [model.layers[i].name for i in bn_nodes]}}
    fm, qm = _export(graph, p, s, plan.get("sparse", {}), calib, cfg, rec_info)
    check_fit(qm, cfg)
    acc_after, logits = evaluate(qm, test.images, test.labels, cfg, units=units,
                                 options=layer_opts)
    m = min(64, len(test.labels))
    ours = forward_logits(qm, test.images[:m], hooks=eval_hooks)
    exact = bool(np.array_equal(ours, logits[:m]))
    record = {
        "model": model.name, "methods": list(opts.methods), "options": opts.to_dict(),
        "config": cfg.to_dict(), "train_images": int(n), "test_images": int(len(test.labels)),
        "test_data": getattr(test, "name", None),
        "batchnorm_nodes": [model.layers[i].name for i in bn_nodes],
        "method_layers": [model.layers[i].name for i in plan["layers"]],
        "accuracy_before": acc_before, "accuracy_after": acc_after,
        "accuracy_engine": "golden (fault-free" + "".join(
            f", {u} on" for u in ("median", "afd") if u in opts.methods) + ")",
        "forward_bit_exact": exact, "forward_checked_images": m,
        "epochs": epochs, "seconds": round(train_seconds, 3),
        "seconds_per_epoch": round(train_seconds / max(opts.epochs, 1), 3),
        "steps": k, "batch": batch, "jax": jax.__version__, "optax": optax.__version__,
    }
    if "sparse" in opts.methods:
        record["sparse"] = {model.layers[i].name: {"group": list(g), "weights_kept": int(
            np.count_nonzero(qm.layers[i].weights))} for i, g in plan["sparse"].items()}
    qm = dataclasses.replace(qm, info={**qm.info, "train": {**rec_info["train"],
                                                           "accuracy_after": acc_after}})
    return TrainResult(float_model=fm, model=qm, record=record)


def _predict_accuracy(predict, p, s, x, labels, scales, dtype, batch: int = 256) -> float:
    """Accuracy of the training forward (eval mode) in fixed-size batches (one compilation)."""
    hits = 0
    for b in range(0, len(x), batch):
        xb = x[b:b + batch]
        pad = batch - len(xb) if len(x) > batch else 0
        if pad:
            xb = np.concatenate([xb, np.zeros((pad,) + xb.shape[1:])])
        lg = np.asarray(predict(p, s, jnp.asarray(xb, dtype), scales))
        hits += int(np.sum(np.argmax(lg[:len(xb) - pad], axis=1)
                           == np.asarray(labels[b:b + batch])))
    return hits / max(len(x), 1)


# -- Ozen 2023 §10.3.3: calibration on a device
# -----------------------------------------------------

_COMPILED: dict = {}


def _compiled(graph: Graph, hooks: Hooks, bits):
    """The product nodes' pre-activations of the quantised forward, jitted once per shape.

    Shared by every model of ``graph``'s structure: a device calibration runs many maps of one
    model, and many models of one shape, with one compilation.
    """
    import json

    m = graph.model
    key = (json.dumps(m.to_meta()["layers"], sort_keys=True, default=str),
           tuple(m.input_shape), tuple(np.shape(m.layers[i].weights) for i in graph.products),
           hooks, bits)
    if key not in _COMPILED:
        _COMPILED[key] = jax.jit(lambda params, xb, scales, dyn: graph.apply(
            params, {}, xb, scales=scales, hooks=hooks, dyn=dyn, bits=bits,
            record=True)[2]["pre"])
    return _COMPILED[key]

def calibrate_bypass(qmodel: Model, cfg, bypass_map, images, *, nodes=None, batches: int = 5,
                     batch: int = 64) -> tuple[Model, dict]:
    """``qmodel`` calibrated for a device whose PEs in ``bypass_map`` are bypassed.

    For each product node in ``nodes`` (default: every one but the last) in graph order, the
    pre-activations (``acc + bias``) of ``batches`` mini-batches of ``batch`` images are
    measured on the int8 forward without bypass and on the device's (the bypass masks of
    ``cfg.dataflow``, earlier nodes already calibrated); the per-channel means and variances
    are cumulative moving averages over the mini-batches (Ozen 2023 Eqs. 10.6–10.7; 5 × 64 = 320
    images as in Ozen 2023 §10.4), and each channel ``n`` is corrected,
    ``W[:, n] ← W[:, n]·a``, ``b ← (b − μ_dev)·a + μ``, ``a = √((σ² + ε)/(σ²_dev + ε))``,
    which maps the device's statistics onto the fault-free ones (BatchNorm re-estimated and
    folded).  Returns the device's model (the activation scales kept, the weight scales
    re-picked: :func:`app.train.net.rescale`) and a record of the corrections.
    """
    from .net import Hooks as _Hooks

    bmap = np.asarray(bypass_map, bool)
    fm = dequantize(qmodel)
    graph = Graph(fm)
    products = graph.products
    targets = products[:-1] if nodes is None else list(nodes)
    scales0 = Scales.of(qmodel)
    x = prepare_images(qmodel, images)[:batches * batch].astype(np.float64)
    bits = (qmodel.a_bits, qmodel.w_bits)
    dev = _Hooks(mask=(cfg.dataflow, "map", 0.0, *bmap.shape), mask_nodes=frozenset(products))

    pre = _compiled(graph, dev, bits)

    def stats(model_, dyn):
        params, _ = Graph(model_).init()
        sc = rescale(model_, scales0)
        p64, s64 = _cast(params, jnp.float64), sc.arrays(jnp.float64)
        mean, var = {}, {}
        for t, b in enumerate(range(0, len(x), batch)):
            out = pre(p64, jnp.asarray(x[b:b + batch]), s64, dyn)
            for i in targets:
                z = np.asarray(out[i])
                mb, vb = z.mean(axis=0), z.var(axis=0)
                # Eqs. 10.6-10.7: cumulative moving averages over the mini-batches
                mean[i] = mb / (t + 1) + t * mean.get(i, 0.0) / (t + 1)
                var[i] = vb / (t + 1) + t * var.get(i, 0.0) / (t + 1)
        return mean, var

    clean = {"bypass_map": jnp.zeros(bmap.shape, bool)}
    device = {"bypass_map": jnp.asarray(bmap)}
    ref_mean, ref_var = stats(fm, clean)
    layers = list(fm.layers)
    corrections = {}
    for i in targets:
        cur = dataclasses.replace(fm, layers=tuple(layers))
        dmean, dvar = stats(cur, device)
        a = np.sqrt((ref_var[i] + 1e-5) / (dvar[i] + 1e-5))
        lay = layers[i]
        layers[i] = dataclasses.replace(lay, weights=np.asarray(lay.weights) * a,
                                        bias=(np.asarray(lay.bias) - dmean[i]) * a
                                        + ref_mean[i])
        corrections[lay.name] = {"scale_mean": float(np.mean(a)), "scale_max": float(np.max(a)),
                                 "mean_shift": float(np.mean(np.abs(ref_mean[i] - dmean[i])))}
    cal = dataclasses.replace(fm, layers=tuple(layers))
    out = to_quantized(cal, rescale(cal, scales0), info={
        **qmodel.info, "calibration_10_3_3": {"bypass_rate": float(bmap.mean()),
                                              "images": int(len(x)),
                                              "nodes": [fm.layers[i].name for i in targets]}})
    return out, {"nodes": corrections, "images": int(len(x)), "bypass_rate": float(bmap.mean())}


# -- the command ----------------------------------------------------------------------------------

def _open_float(spec: str, calib_images, cfg, seed: int) -> Model:
    """The model ``--model`` names, as a float or quantised :class:`Model`."""
    from importlib import resources

    from ftaccel.app.network import BUILTIN

    if spec in BUILTIN:
        with resources.files("ftaccel.app").joinpath("models", f"{spec}.npz").open("rb") as fh:
            return Model.load(fh)
    p = Path(spec)
    if p.suffix == ".npz":
        return Model.load(p)
    if p.suffix == ".onnx":
        if not p.exists():
            raise ModelError(f"--model: no such file {p}")
        from ftaccel.app.onnx_import import load_onnx

        return load_onnx(p)
    try:
        from ftaccel.app import zoo  # the model zoo (a sibling issue), where it is installed

        return zoo.model(spec, seed=seed)
    except (ImportError, KeyError, ValueError):
        pass
    raise ModelError(f"--model {spec!r}: not a built-in model ({', '.join(BUILTIN)}), a zoo "
                     f"model, a .onnx file or a model .npz")


def run_train(model: str, data: str, out_dir, *, config, options: TrainOptions,
              test: str | None = None, bypass_map=None, progress: bool | None = None,
              log=print) -> dict:
    """``rtlgen train``: validate everything, train (or calibrate), write the model files.

    Writes ``model.npz`` (quantised: ``rtlgen infer`` and ``campaign`` take it),
    ``float.npz`` (the float model, BatchNorm folded), ``train.json`` (complete) and
    ``train.md`` into ``out_dir`` through :class:`ftaccel.files.OutputSet`; bad input raises
    ConfigError / ModelError / DataError before anything is written.
    """
    from ftaccel.app.datasets import DataError, digits, load_data
    from ftaccel.files import OutputSet, check_target, write_json, write_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"-o {out}: exists and is not a folder")
    names = ("model.npz", "float.npz", "train.json", "train.md")
    targets = [check_target(out / n) for n in names]
    train_set = digits("train") if data in ("digits", "digits-train") else load_data(data)
    if test is None and data in ("digits", "digits-train"):
        test_set = digits("test")
    else:
        test_set = load_data(test) if test else None
    fmodel = _open_float(model, None, config, options.seed)
    if "calibrate" in options.methods:
        if bypass_map is None:
            raise ConfigError("bypass_map", None, "an R×C .npy of the device's bypassed PEs for "
                              "--method calibrate")
        # the same checks as rtlgen infer (the unit registry's)
        unit_registry.check_options(
            config, unit_registry.options_from_keywords({"bypass_map": bypass_map}))
        qm = fmodel if fmodel.quantized else quantize(
            fmodel, prepare_images(fmodel, train_set.images)[:options.calib_images],
            a_bits=config.a_width, w_bits=config.w_width)
        check_fit(qm, config)
        ev = test_set or train_set
        if ev.labels.max() >= qm.classes:
            raise DataError(f"data: label {int(ev.labels.max())} but model {qm.name} has "
                            f"{qm.classes} classes")
        units = {"bypass_map": np.asarray(bypass_map, bool)}
        before, _ = evaluate(qm, ev.images, ev.labels, config, units=units)
        t0 = time.perf_counter()
        cal, rec = calibrate_bypass(qm, config, bypass_map, train_set.images, nodes=None)
        after, _ = evaluate(cal, ev.images, ev.labels, config, units=units)
        record = {"model": qm.name, "methods": ["calibrate"], "config": config.to_dict(),
                  "accuracy_before": before, "accuracy_after": after,
                  "accuracy_engine": "golden, with the device's bypass map",
                  "calibration": rec, "seconds": round(time.perf_counter() - t0, 3)}
        result = TrainResult(float_model=dequantize(cal), model=cal, record=record)
    else:
        result = train(fmodel, train_set, config=config, options=options, test_set=test_set,
                       progress=progress)
    with OutputSet() as outputs:
        outputs.mkdir(out)
        outputs.write(_write_bytes, targets[0], result.model.to_bytes())
        outputs.write(_write_bytes, targets[1], result.float_model.to_bytes())
        outputs.write(write_json, targets[2], result.record)
        outputs.write(write_text, targets[3], to_markdown(result.record))
    return result.record


def _write_bytes(path, data: bytes) -> None:
    from ftaccel.files import atomic_write

    with atomic_write(path) as fh:
        fh.write(data)


def _pct(a) -> str:
    return "—" if a is None else f"{100 * a:.2f} %"


def to_markdown(rec: dict) -> str:
    """``train.md``: what was trained, accuracy before and after, the epochs."""
    lines = [f"# rtlgen train: {rec['model']} ({', '.join(rec['methods'])})", "",
             f"- fault-free accuracy before: {_pct(rec['accuracy_before'])}, after: "
             f"{_pct(rec['accuracy_after'])} ({rec['accuracy_engine']})"]
    if "forward_bit_exact" in rec:
        lines.append(f"- training forward = golden engine bit for bit on "
                     f"{rec['forward_checked_images']} images: "
                     f"{'yes' if rec['forward_bit_exact'] else 'NO'}")
        lines.append(f"- {rec['steps']} steps of {rec['batch']} images, "
                     f"{rec['seconds_per_epoch']} s per epoch")
    if rec.get("epochs"):
        lines += ["", "| epoch | int8 | loss | train accuracy | test accuracy | s |",
                  "|---:|:---:|---:|---:|---:|---:|"]
        for e in rec["epochs"]:
            lines.append(f"| {e['epoch']} | {'yes' if e['quantised'] else 'no'} | "
                         f"{e['loss']:.4f} | {_pct(e['train_accuracy'])} | "
                         f"{_pct(e['test_accuracy'])} | {e['seconds']} |")
    if rec.get("calibration"):
        lines += ["", "| node | mean scale a | largest a | mean |Δμ| |", "|---|---:|---:|---:|"]
        for name, c in rec["calibration"]["nodes"].items():
            lines.append(f"| {name} | {c['scale_mean']:.3f} | {c['scale_max']:.3f} | "
                         f"{c['mean_shift']:.4f} |")
    return "\n".join(lines) + "\n"
