"""Images per second of each network engine, both built-in models, 8×8 and 16×16 WS arrays.

    python bench/bench_infer.py            # ~5 minutes on 2 cores
    python bench/bench_infer.py --quick    # ~1 minute
    SIM=verilator python bench/bench_infer.py --engines rtl

For every (model, array): the golden functional engine and the cycle model on the digits test
images, the RTL engine (Icarus by default) on a smaller set; the RTL engine's start-up
(Verilog generation + simulator build + one warm-up run) is measured once per network and
reported apart from its images/s.  All engines' logits are checked equal on the images they
share.  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ftaccel.app.datasets import digits
from ftaccel.app.network import Network
from ftaccel.config import AcceleratorConfig
from ftaccel.tb.accelerator import RTLEngine


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer images (about a minute)")
    p.add_argument("--engines", default="golden,cycle,rtl")
    p.add_argument("--sizes", default="8,16")
    p.add_argument("--sim", default=None, help="icarus or verilator (default $SIM or icarus)")
    args = p.parse_args()
    engines = args.engines.split(",")
    counts = {"golden": 540, "cycle": 100 if args.quick else 540,
              "rtl": 8 if args.quick else 48}
    test = digits("test")
    rows = []
    for name in ("digits-mlp", "digits-cnn"):
        net = Network.builtin(name)
        for size in (int(s) for s in args.sizes.split(",")):
            cfg = AcceleratorConfig(rows=size, cols=size, dataflow="ws")
            ref = None
            for engine in engines:
                n = counts[engine]
                images, labels = test.images[:n], test.labels[:n]
                startup = None
                if engine == "rtl":
                    with tempfile.TemporaryDirectory() as tmp:
                        eng = RTLEngine(cfg, sim=args.sim, cache_dir=Path(tmp) / "sim")
                        startup = eng.start()
                        res = net.run(images, labels=labels, engine=eng, config=cfg,
                                      batch_size=n)
                else:
                    res = net.run(images, labels=labels, engine=engine, config=cfg)
                if ref is None:
                    ref = res.logits
                else:
                    m = min(len(ref), len(res.logits))
                    assert np.array_equal(ref[:m], res.logits[:m]), f"{engine} differs"
                rows.append((name, f"{size}×{size}", engine, n, res.seconds,
                             n / res.seconds, startup, res.cycles / n, res.utilisation(),
                             res.accuracy))
                print(f"{name} {size}×{size} {engine}: {n} images in {res.seconds:.2f} s "
                      f"({n / res.seconds:,.1f} images/s)"
                      + (f", start-up {startup:.2f} s" if startup else ""), flush=True)
    print()
    print("| model | array | engine | images | seconds | images/s | RTL start-up (s) | "
          "cycles/image | utilisation | top-1 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, arr, eng, n, sec, ips, st, cpi, util, acc in rows:
        print(f"| {name} | {arr} | {eng} | {n} | {sec:.2f} | {ips:,.1f} | "
              f"{'' if st is None else f'{st:.2f}'} | {cpi:,.0f} | {100 * util:.1f} % | "
              f"{100 * acc:.1f} % |")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    raise SystemExit(code)
