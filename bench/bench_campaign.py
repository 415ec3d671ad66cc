"""Speed of fault campaigns: the fast fault model against the RTL and against onnxruntime.

Prints fault-inferences per minute (one fault × one image) of digits-mlp over its whole test
split (540 images) on an 8×8 WS array with the fast fault model, in this process and with
``rtlgen campaign``'s default runner (which says which runner it chose and why), and the
RTL's speed on the same faults (Icarus, fault hooks, ``--rtl-images`` images: at about 20
inferences a minute the whole split would take most of an hour per fault; generation and
build reported apart), and the ratio of the two on the same faults and images only.
Goals (issue 15): ≥ 10^5 fault-inferences per minute; ≥ 1000× the RTL.

    python bench/bench_campaign.py [--faults 200] [--rtl-faults 2] [--rtl-images 4]

``--model resnet|resnet18|digits-cnn|lenet5|...`` (issue 24 item 4) measures instead, in one run
on one core (the process pinned to it, numpy's BLAS and onnxruntime limited to one thread):
onnxruntime's fault-free inferences per minute of the same float model (the peer: the zoo's
torch-style ONNX file, or the built-in model exported with :func:`app.onnx_import.to_onnx`),
the golden engine's fault-free inferences per minute of its quantised twin, and the fast
fault model's fault-inferences per minute (one fault × one image, a campaign's work item
with its outcome classification) for stuck-at and for transient (one-cycle flip) PE register
faults, and the ratios to onnxruntime (and the golden engine with its floating-point path
off, :class:`golden.network.FunctionalEngine` ``plain=False``).  Beside them, the golden
engine's BLAS products alone (the same operands, timed without anything else): the bound of
an engine that multiplies with numpy's BLAS.  Goals: golden within 2× of onnxruntime;
fault-inferences per minute ≥ onnxruntime's fault-free inferences per minute.

    python bench/bench_campaign.py --model resnet [--images 32] [--faults 40] [--array 8]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import tempfile
import time

import numpy as np

from ftaccel.app.campaign import build_context, parse_spec, run_campaign
from ftaccel.app.netcampaign import RegisterPopulation, evaluate_register_fault, flip_cycle
from ftaccel.golden.fault_models import FastFaultEngine
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import LayerOptions, run


def spec(faults: int) -> dict:
    return parse_spec({
        "campaign": {"name": "bench", "seed": 1, "chunk": 25},
        "network": {"model": "digits-mlp"}, "data": {"source": "digits"},
        "accelerator": {"rows": 8, "cols": 8, "dataflow": "ws"},
        "protections": [{"kind": "none"}],
        "faults": {"model": "register"},
        # a margin that gives about `faults` items of the 151 M-fault population
        "sample": {"method": "statistical", "confidence": 0.95,
                   "margin": float(1.96 * 0.5 / np.sqrt(faults))}})


def options(ctx, cfg, desc):
    if desc["layer"] is None:
        f = Fault(desc["row"], desc["col"], desc["register"], desc["bit"], desc["mode"])
        return {i: LayerOptions(fault=f) for i in ctx.products}
    M, K, N = next(d[1:] for d in ctx.dims if d[0] == desc["layer"])
    n_pass = max(1, desc["tile"])
    cyc = flip_cycle(cfg, M, K, N, desc["register"], desc["row"], desc["col"],
                     desc["tile"] % n_pass, desc["vector"] % M)
    return {desc["layer"]: LayerOptions(fault=Fault(desc["row"], desc["col"], desc["register"],
                                                    desc["bit"], "flip", cyc))}

#: ``--model`` names: the zoo's networks (``resnet`` is ResNet-8, the ResNet shape of issue 23)
#: and the built-in models.
PEER_MODELS = {"resnet": "resnet8", "resnet8": "resnet8", "resnet18": "resnet18",
               "lenet5": "lenet5", "mlp7": "mlp7", "squeezenet": "squeezenet",
               "mobilenet": "mobilenet", "digits-cnn": "digits-cnn", "digits-mlp": "digits-mlp"}


def _timed(fn, min_seconds: float) -> float:
    """Seconds per call of ``fn`` (repeated until ``min_seconds`` have passed; best of runs)."""
    fn()  # warm-up (allocations, onnxruntime's first run)
    best, total = math.inf, 0.0
    while total < min_seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total = min(best, dt), total + dt
    return best


def peer_models(name: str, seed: int = 0):
    """``(float ONNX proto, float Model, quantised Network)`` of ``--model name``."""
    from ftaccel.app import zoo
    from ftaccel.app.datasets import digits
    from ftaccel.app.network import Network
    from ftaccel.app.onnx_import import to_onnx

    if name in ("digits-cnn", "digits-mlp"):
        net = Network.builtin(name)
        return to_onnx(net.float_model), net.float_model, net
    proto = zoo.fit(name, seed)
    from ftaccel.app.onnx_import import load_onnx

    fm = load_onnx(proto, name=name)
    cal = zoo.adapt_digits(digits("train").images[:256], fm.input_shape)
    return proto, fm, Network.quantize(fm, cal)


def compare_with_peer(args) -> None:
    """``--model``: onnxruntime, the golden engine and the fast fault model on one core."""
    import onnxruntime as ort  # optional dependency (the zoo extra)
    from threadpoolctl import threadpool_limits

    from ftaccel.app import zoo
    from ftaccel.app.datasets import digits
    from ftaccel.app.netcampaign import Context, Protection
    from ftaccel.golden.network import FunctionalEngine

    if args.model not in PEER_MODELS:
        raise SystemExit(f"--model {args.model!r}: one of {', '.join(PEER_MODELS)}")
    name = PEER_MODELS[args.model]
    core = sorted(os.sched_getaffinity(0))[args.core % len(os.sched_getaffinity(0))]
    os.sched_setaffinity(0, {core})
    threadpool_limits(1)  # numpy's BLAS: one thread, as onnxruntime below
    proto, fm, net = peer_models(name)
    test = digits("test")
    imgs = test.images[:args.images]
    xf = zoo.adapt_digits(imgs, fm.input_shape)  # NCHW (or [N, F])
    cfg = zoo.fit_config(net.model, rows=args.array, cols=args.array, dataflow="ws")
    x = net.check(cfg, xf)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0].name
    xo = xf.astype(np.float32)
    ort_logits = sess.run(None, {inp: xo})[0]
    n = len(imgs)
    t_ort = _timed(lambda: sess.run(None, {inp: xo}), args.seconds)
    eng = FunctionalEngine(cfg)
    golden = run(net.model, x, eng)
    t_gold = _timed(lambda: run(net.model, x, eng), args.seconds)
    # the same engine with every product on the integer path (no floating-point shortcut)
    ints = FunctionalEngine(cfg, plain=False)
    assert np.array_equal(run(net.model, x, ints).logits, golden.logits)
    t_int = _timed(lambda: run(net.model, x, ints), args.seconds)
    # the golden engine's BLAS products alone: the same operands, nothing else (the bound
    # of an engine that multiplies with numpy's BLAS)
    products = _blas_products(lambda: run(net.model, x, eng))
    t_blas = _timed(lambda: [np.matmul(A, B) for A, B in products], args.seconds)
    agree = float(np.mean(np.argmax(ort_logits, 1) == golden.predictions))
    ctx = Context(net.model, x, test.labels[:n], cfg, [Protection("none", "none")])
    pop = RegisterPopulation(cfg, ctx.dims)
    rng = np.random.default_rng(args.seed)
    stuck = [pop.describe(int(i)) for i in rng.choice(pop.n_stuck, args.faults, replace=False)]
    flips = [pop.describe(int(i)) for i in rng.integers(pop.n_stuck, len(pop), args.faults)]
    rates = {}
    for kind, descs in (("stuck-at", stuck), ("transient", flips)):
        t0 = time.perf_counter()
        for i, d in enumerate(descs):
            evaluate_register_fault(ctx, d, i)
        rates[kind] = len(descs) * n / (time.perf_counter() - t0) * 60
    ort_rate, gold_rate = n / t_ort * 60, n / t_gold * 60
    macs = zoo.describe_model(net.model)["macs"] if name not in ("digits-cnn", "digits-mlp") \
        else None
    print(f"{name}: {n} digits test images (batch {n}), {cfg.name()}, one core (cpu {core}: "
          f"process pinned, numpy BLAS 1 thread, onnxruntime {ort.__version__} "
          f"intra_op_num_threads=1)" + (f", {macs / 1e6:,.1f} M MACs/image" if macs else ""))
    print(f"  onnxruntime, float model (peer)    {ort_rate:12,.0f} inferences/min")
    print(f"  golden engine, fault-free          {gold_rate:12,.0f} inferences/min "
          f"({ort_rate / gold_rate:.2f}× slower than onnxruntime; goal ≤ 2×; top-1 agrees "
          f"with onnxruntime on {100 * agree:.0f} %)")
    print(f"  golden engine, integer path        {n / t_int * 60:12,.0f} inferences/min "
          f"(the floating-point path is {t_int / t_gold:.2f}× faster)")
    print(f"  its BLAS products alone            {n / t_blas * 60:12,.0f} inferences/min "
          f"({len(products)} products, {t_blas / t_gold:.0%} of the golden engine's time; "
          f"{ort_rate * t_blas / n / 60:.2f}× onnxruntime's whole inference)")
    for kind, r in rates.items():
        print(f"  fast fault model, {kind:16s} {r:12,.0f} fault-inferences/min "
              f"({r / ort_rate:.2f}× onnxruntime's fault-free rate; goal ≥ 1×; "
              f"{r / gold_rate:.2f}× the golden engine's; {args.faults} faults, "
              f"seed {args.seed})")
    print(f"  load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"({os.cpu_count()} cores)")


def _blas_products(fn) -> list:
    """The ``(A, B)`` operands of every floating-point BLAS product ``fn`` makes (copies)."""
    from ftaccel.golden import array

    seen = []
    inner = array.float_matmul

    def record(A, B):
        seen.append((A.copy(), B.copy()))
        return inner(A, B)

    array.float_matmul = record
    try:
        fn()
    finally:
        array.float_matmul = inner
    return seen


def scaling(args) -> None:
    """``--scaling MODEL``: one campaign in this process and on 2 Dask workers (issue 24 item 3).

    The same spec (``--images`` images, about ``--faults`` register faults, one protection)
    run with ``workers=0``, with 2 LocalCluster workers under the runner's glibc settings
    (:data:`app.campaign.WORKER_MALLOC`) and under Dask's default ones; fault-inferences per
    minute of each (the runner's own timing: the cluster's start-up included) and the ratios,
    to the in-process run and to one in-process worker on one core (pinned, the BLAS on one
    thread: the issue's baseline; the in-process run's BLAS may use both cores).  And the
    machine's ceiling for 2 workers: that one-core run in two independent processes at once,
    one per core, against one alone (on these 2-core machines each runs 5–15 % slower beside
    the other: they share the memory bus and the last-level cache), ``2 × alone / together``.
    """
    import logging

    import dask
    from distributed import Client, LocalCluster

    from ftaccel.app import campaign, zoo
    from ftaccel.app.datasets import digits

    with tempfile.TemporaryDirectory() as tmp:
        if args.scaling in ("digits-cnn", "digits-mlp"):
            net, data, calib = args.scaling, {"source": "digits", "images": args.images}, None
        else:
            name = PEER_MODELS[args.scaling]
            proto = zoo.fit(name)
            net = os.path.join(tmp, f"{name}.onnx")
            with open(net, "wb") as fh:
                fh.write(proto.SerializeToString())
            shape = zoo.model(name).input_shape
            test, train = digits("test"), digits("train")
            for split, ds, n in (("test", test, args.images), ("train", train, 256)):
                np.savez(os.path.join(tmp, f"{split}.npz"),
                         images=zoo.adapt_digits(ds.images[:n], shape),
                         labels=ds.labels[:n])
            data = {"source": os.path.join(tmp, "test.npz"), "images": args.images}
            calib = os.path.join(tmp, "train.npz")
        raw = {"campaign": {"name": "scaling", "seed": 1, "chunk": max(1, args.faults // 16)},
               "network": {"model": net, **({"calib": calib} if calib else {})},
               "data": data, "accelerator": {"rows": args.array, "cols": args.array,
                                             "dataflow": "ws"},
               "protections": [{"kind": "none"}], "faults": {"model": "register"},
               "sample": {"method": "statistical", "confidence": 0.95,
                          "margin": float(1.96 * 0.5 / np.sqrt(args.faults))}}
        spec = parse_spec(raw)
        rates = {}

        # one in-process worker on one core (pinned, the BLAS on one thread, as a Dask worker
        # runs), alone and beside an identical one on the other core: the latter bounds what
        # 2 workers can reach on this machine (they share the memory bus and the cache)
        cores = sorted(os.sched_getaffinity(0))[:2]
        spawn = multiprocessing.get_context("spawn")
        runs = []
        for group in ([cores[0]], cores):  # fresh processes; joined, not terminated
            pool = spawn.Pool(len(group))
            runs.append(pool.starmap(_solo, [(spec, os.path.join(tmp, f"solo{len(runs)}{i}"),
                                              core) for i, core in enumerate(group)]))
            pool.close()
            pool.join()
        (alone,), pair = runs
        ceiling = 2 * alone / max(pair)

        def report(label, rep, extra=""):
            t = rep["timing"]
            rates[label] = t["fault_inferences_per_minute"]
            rates.setdefault("one core", rates[label] * t["seconds"] / alone)
            print(f"{args.scaling}: {label:40s} {rep['items']} faults × {args.images} images in "
                  f"{t['seconds']:5.1f} s: {t['fault_inferences_per_minute']:10,} "
                  f"fault-inferences/min ({rates[label] / rates['in-process']:.2f}× in-process, "
                  f"{rates[label] / rates['one core']:.2f}× one core){extra}", flush=True)

        report("in-process", run_campaign(spec, os.path.join(tmp, "zero"), workers=0,
                                          progress=False, log=lambda *a, **k: None))
        print(f"{args.scaling}: {'one in-process worker on one core':40s} {alone:5.1f} s alone, "
              f"{max(pair):.1f} s beside another on the other core: 2 workers can reach "
              f"{ceiling:.2f}× one core", flush=True)
        report("2 workers (rtlgen campaign --workers 2)",
               run_campaign(spec, os.path.join(tmp, "two"), workers=2, progress=False,
                            log=lambda *a, **k: None), ", start-up included")
        # steady state: a cluster started and every worker's context built beforehand
        for label, malloc in (("2 warm workers", campaign.WORKER_MALLOC),
                              ("2 warm workers, Dask's malloc default", {})):
            environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **malloc}
            t0 = time.perf_counter()
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                                  **campaign.WORKER_CONFIG}), \
                    LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0",
                                 silence_logs=logging.CRITICAL) as cluster, \
                    Client(cluster) as client:
                client.run(campaign.build_context, spec)
                warm = time.perf_counter() - t0
                rep = run_campaign(spec, os.path.join(tmp, label.replace(" ", "_")),
                                   scheduler=cluster.scheduler_address, progress=False,
                                   log=lambda *a, **k: None)
            report(label, rep, f", after {warm:.1f} s of start-up and context builds")
    best = max(v for k, v in rates.items() if k not in ("in-process", "one core"))
    print(f"best 2-worker run: {best / rates['one core']:.2f}× one in-process worker on one "
          f"core, {100 * best / rates['one core'] / ceiling:.0f} % of the machine's ceiling "
          f"({ceiling:.2f}×); {best / rates['in-process']:.2f}× the in-process run (its BLAS "
          f"may use both cores)")
    print(f"goal: 2 workers ≥ 1.7× one in-process worker; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")


def _solo(spec: dict, out: str, core: int) -> float:
    """Seconds of ``spec``'s campaign in this process (``workers=0``), pinned to CPU ``core``."""
    from threadpoolctl import threadpool_limits

    os.sched_setaffinity(0, {core})
    threadpool_limits(1)
    rep = run_campaign(spec, out, workers=0, progress=False, log=lambda *a, **k: None)
    return rep["timing"]["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--rtl-faults", type=int, default=2)
    ap.add_argument("--rtl-images", type=int, default=4)
    ap.add_argument("--model", help="compare with onnxruntime on one core: "
                    + ", ".join(PEER_MODELS))
    ap.add_argument("--images", type=int, default=32, help="--model: images per batch")
    ap.add_argument("--array", type=int, default=8, help="--model: rows = columns")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="--model: time each fault-free engine at least this long")
    ap.add_argument("--seed", type=int, default=2, help="--model: the faults drawn")
    ap.add_argument("--core", type=int, default=0, help="--model: which core to pin to")
    ap.add_argument("--scaling", help="in-process against 2 Dask workers on a campaign of "
                    "this model (--images, --faults)")
    args = ap.parse_args()
    if args.scaling:
        if args.faults == 200:
            args.faults = 64
        scaling(args)
        return
    if args.model:
        if args.faults == 200:
            args.faults = 20
        compare_with_peer(args)
        return
    s = spec(args.faults)
    ctx = build_context(s)
    cfg = ctx.base
    n_img = len(ctx.x)
    pop = RegisterPopulation(cfg, ctx.dims)
    rng = np.random.default_rng(2)
    stuck = [pop.describe(int(i)) for i in rng.choice(pop.n_stuck, args.faults // 2,
                                                      replace=False)]
    flips = [pop.describe(int(i)) for i in rng.integers(pop.n_stuck, len(pop),
                                                        args.faults // 2)]
    print(f"digits-mlp, {n_img} test images, {cfg.name()}, fast fault model (1 process):")
    rates = {}
    for name, descs in (("stuck-at (every layer)", stuck), ("flip (one layer, resumed)",
                                                            flips)):
        t0 = time.perf_counter()
        for i, d in enumerate(descs):
            evaluate_register_fault(ctx, d, i)
        dt = time.perf_counter() - t0
        rates[name] = len(descs) * n_img / dt * 60
        print(f"  {name:28s} {len(descs):4d} faults in {dt:6.2f} s: "
              f"{rates[name]:12,.0f} fault-inferences/min")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = run_campaign(s, os.path.join(tmp, "c"), workers=None, progress=False)
        dt = time.perf_counter() - t0
        t = rep["timing"]
        print(f"  campaign runner, default ({t['runner']}, {t['workers']} workers: "
              f"{t['runner_reason']}): {rep['items']} faults in {t['seconds']:.1f} s "
              f"({dt:.1f} s with context and reports): "
              f"{t['fault_inferences_per_minute']:,} fault-inferences/min")
    fast_rate = min(rates.values())

    from ftaccel.tb.accelerator import RTLEngine

    hooks = cfg.replace(fault_hooks=True)
    x = ctx.x[:args.rtl_images]
    with tempfile.TemporaryDirectory() as tmp:
        rtl = RTLEngine(hooks, cache_dir=os.path.join(tmp, "sim"))
        startup = rtl.start()
        t0 = time.perf_counter()
        for d in (stuck + flips)[:: max(1, len(stuck + flips) // args.rtl_faults)][
                :args.rtl_faults]:
            run(ctx.model, x, rtl, options=options(ctx, hooks, d))
        dt = time.perf_counter() - t0
    rtl_rate = args.rtl_faults * len(x) / dt * 60
    # the fast model on the same faults and images, for a like-for-like figure too
    t0 = time.perf_counter()
    for d in (stuck + flips)[:: max(1, len(stuck + flips) // args.rtl_faults)][
            :args.rtl_faults]:
        run(ctx.model, x, FastFaultEngine(cfg), options=options(ctx, cfg, d))
    dt_small = time.perf_counter() - t0
    print(f"RTL (Icarus, fault hooks): {args.rtl_faults} faults × {len(x)} images in "
          f"{dt:.1f} s (+ {startup:.1f} s generation and build): "
          f"{rtl_rate:,.1f} fault-inferences/min; per fault on {n_img} images: "
          f"{n_img / (rtl_rate / 60):,.0f} s")
    print(f"fast model on the same {args.rtl_faults} faults × {len(x)} images: "
          f"{dt_small * 1e3:.1f} ms: {dt / dt_small:,.0f}× the RTL on the same faults and "
          f"images (goal ≥ 1000×; the only ratio printed: one measured on other batches "
          f"would not compare like with like)")
    print(f"fast model at the campaign's scale ({n_img} images): {fast_rate:,.0f} "
          f"fault-inferences/min (goal ≥ 100,000); load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
