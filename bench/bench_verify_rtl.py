"""The RTL check of a campaign at network scale: ``rtlgen campaign ... --verify-rtl K``.

Runs three small campaigns on one model (the zoo's ResNet-8, ``resnet``, by default: seeded
weights, the digits upsampled to 3×32×32; or ``digits-mlp`` / ``digits-cnn``), each with
``--verify-rtl K``: stuck-at register faults, one-cycle flips (transients) and a per-PE profile
sweep (Shresthamali HAS §4.2–§4.3), and prints per campaign the simulator and why, the model
builds (one per configuration, reused by every fault), the RTL's run time per replayed fault,
which layers ran on the RTL, the agreement, and the wall time of the whole command.

    python bench/bench_verify_rtl.py [--model resnet] [--k 3] [--images 4]
                                     [--verify-images 1] [--array 8] [--sim verilator]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

MODELS = {"resnet": "resnet8", "resnet8": "resnet8", "lenet5": "lenet5",
          "digits-mlp": "digits-mlp", "digits-cnn": "digits-cnn"}


def network(name: str, tmp: str, images: int) -> tuple[dict, dict]:
    """``(network, data)`` spec tables of ``name``: a zoo ONNX file and digits npz, or builtin."""
    if name in ("digits-mlp", "digits-cnn"):
        return {"model": name}, {"source": "digits", "images": images}
    from ftaccel.app import zoo
    from ftaccel.app.datasets import digits

    path = os.path.join(tmp, f"{name}.onnx")
    with open(path, "wb") as fh:
        fh.write(zoo.fit(name).SerializeToString())
    shape = zoo.model(name).input_shape
    for split, n in (("test", images), ("train", 256)):
        ds = digits(split)
        np.savez(os.path.join(tmp, f"{split}.npz"),
                 images=zoo.adapt_digits(ds.images[:n], shape), labels=ds.labels[:n])
    return ({"model": path, "calib": os.path.join(tmp, "train.npz")},
            {"source": os.path.join(tmp, "test.npz"), "images": images})


def main(argv=None) -> int:
    """Run the three campaigns with ``--verify-rtl K`` and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet", choices=sorted(MODELS))
    ap.add_argument("--k", type=int, default=3, help="faults replayed on the RTL per campaign")
    ap.add_argument("--images", type=int, default=4, help="images of the campaigns")
    ap.add_argument("--verify-images", type=int, default=1, help="images of the RTL runs")
    ap.add_argument("--array", type=int, default=8)
    ap.add_argument("--sim", default="verilator", choices=["icarus", "verilator", "auto"],
                    help="auto: as rtlgen campaign chooses without --sim and $SIM")
    ap.add_argument("--only", choices=["stuck-at", "transient", "profile"])
    args = ap.parse_args(argv)
    if args.sim == "auto":
        os.environ.pop("SIM", None)
    from ftaccel.app.campaign import run_campaign

    name = MODELS[args.model]
    faults = {"stuck-at": ({"model": "register", "modes": ["sa0", "sa1"]},
                           {"method": "statistical", "margin": 0.3}),
              "transient": ({"model": "register", "modes": ["flip"]},
                            {"method": "statistical", "margin": 0.3}),
              "profile": ({"model": "pe_profile", "mode": "bitflip"},
                          {"method": "sweep", "rates": [0.002], "trials": args.k})}
    print(f"load average {os.getloadavg()[0]:.1f}; {name}, {args.array}×{args.array} WS, "
          f"campaign {args.images} images, RTL check {args.verify_images} image(s), "
          f"--verify-rtl {args.k} --sim {args.sim}")
    with tempfile.TemporaryDirectory() as tmp:
        net, data = network(name, tmp, args.images)
        for kind, (f, sample) in faults.items():
            if args.only and kind != args.only:
                continue
            raw = {"campaign": {"name": f"verify-{kind}", "seed": 1, "chunk": 8},
                   "network": net, "data": data,
                   "accelerator": {"rows": args.array, "cols": args.array, "dataflow": "ws"},
                   "protections": [{"kind": "none"}], "faults": f, "sample": sample,
                   "verify": {"images": args.verify_images}}
            t0 = time.perf_counter()
            rep = run_campaign(raw, os.path.join(tmp, kind), workers=0, verify_rtl=args.k,
                               sim=None if args.sim == "auto" else args.sim, progress=False,
                               log=lambda *a, **k: None)
            wall = time.perf_counter() - t0
            v = rep["verify_rtl"]
            runs = [c["rtl_seconds"] for c in v["cases"]]
            layers = sorted({len(c["rtl_layers"]) for c in v["cases"]})
            print(f"{kind:10s} {v['agree']}/{v['checked']} agree on {v['simulator']} "
                  f"({v['simulator_reason']}); builds "
                  f"{sum(v['build_seconds'].values()):.1f} s ({len(v['build_seconds'])} "
                  f"configuration(s)); RTL {min(runs):.1f}–{max(runs):.1f} s per fault "
                  f"({'/'.join(map(str, layers))} layer(s) on the RTL), fast model "
                  f"{v['fast_seconds']:.2f} s in all (RTL / fast model on these faults and "
                  f"images: {sum(runs) / max(v['fast_seconds'], 1e-9):,.0f}×); the command "
                  f"{wall:.0f} s "
                  f"(campaign of {rep['items']} items: {rep['timing']['seconds']:.0f} s)")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
