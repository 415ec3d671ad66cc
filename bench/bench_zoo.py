"""The model zoo and its agreement with onnxruntime's own int8 execution (issue 23).

    python bench/bench_zoo.py                      # every network, ~30 minutes on 2 cores
    python bench/bench_zoo.py --models lenet5,mlp7 # a minute
    python bench/bench_zoo.py -o zoo_out           # also keep the ONNX files

For every zoo network (``ftaccel.app.zoo``): the fitted float model and its eight int8 files
(QDQ / QOperator, uint8 / int8 activations, per-tensor / per-channel weights, onnxruntime's
``quantize_static``), their accuracy on the 540 digits test images on the golden engine and on
onnxruntime, and the agreement of the two (top-1 equal, every logit within ±1 LSB, largest
difference), with onnxruntime's int8 kernels and, in brackets where it differs, its x86 default
session.  Prints the zoo's Markdown tables (``zoo.md``) and the seconds each network took.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from ftaccel.app import zoo


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(zoo.ZOO))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", help="keep the files here (default: a temporary folder)")
    args = p.parse_args()
    names = [n for n in args.models.split(",") if n]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = zoo.write_zoo(args.output or tmp, names, seed=args.seed)
    print(zoo.zoo_markdown(summary))
    print(f"{len(names)} networks, {8 * len(names)} int8 files in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
