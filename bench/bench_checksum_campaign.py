"""Fault-injection campaign: coverage of the spatial Sanity-Check per register kind.

Every stuck-at-0/1 fault in every bit of every PE register of a WS array with the spatial
checksum (sanity column included) is simulated on the golden cycle model, which the tests
hold equal to the RTL fault by fault; larger arrays are sampled with the size of SPEC §7
(001 Eq. 4.7).  Prints the measured outcome table next to Table 6.1 of 000.

``python bench/bench_checksum_campaign.py [--rows 3 --cols 3 --products 4 --seed 1]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from golden.campaign import coverage_table, exhaustive_faults, run_campaign  # noqa: E402
from golden.faults import sample_size  # noqa: E402
from rtl_gen.config import AcceleratorConfig  # noqa: E402

SEED_TABLE = {  # 000 Table 6.1, spatial column
    "weight": "1 error (L.2)", "act": "no detection (L.1)", "psum": "1 error (L.5)"}
WHAT = {"weight": "weight", "act": "input (activation register)",
        "psum": "output / computation (partial sum)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--m", type=int, default=6, help="activation vectors per product")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--exhaustive-limit", type=int, default=20000,
                    help="simulate every fault up to this many, else sample (SPEC §7)")
    args = ap.parse_args()
    cfg = AcceleratorConfig(rows=args.rows, cols=args.cols, checksum="spatial",
                            fault_hooks=True, max_k=64)
    rng = np.random.default_rng(args.seed)
    A = rng.integers(-128, 128, (args.m, args.rows))
    B = rng.integers(-128, 128, (args.rows, args.cols))
    faults = exhaustive_faults(cfg)
    total = len(faults)
    sampled = total > args.exhaustive_limit
    if sampled:
        n = sample_size(total)
        faults = [faults[i] for i in rng.choice(total, n, replace=False)]
    t0 = time.perf_counter()
    out = run_campaign(cfg, A, B, faults)
    dt = time.perf_counter() - t0
    how = f"a sample of {len(out)} (001 Eq. 4.7)" if sampled else "all"
    print(f"{cfg.name()}: {how} of {total} stuck-at faults (every PE, register, bit, sa0/sa1), "
          f"seed {args.seed}, {dt:.1f} s on the cycle model\n")

    def where(o):
        if o.fault.col == cfg.cols:
            return "sanity column"
        return "column 0" if o.fault.col == 0 else "columns 1…C−1"

    table = coverage_table(out, key=lambda o: (o.fault.register, where(o)))
    print("| register | PEs | faults | masked | detected | SDC | alarm only | detection of "
          "output-changing faults | Table 6.1 (spatial) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for (reg, place), row in sorted(table.items()):
        rate = "—" if row["detection_rate"] is None else f"{row['detection_rate']:.1%}"
        seed = SEED_TABLE[reg] if place != "sanity column" else "(checker's own column)"
        print(f"| {WHAT[reg]} | {place} | {row['total']} | {row['masked']} | "
              f"{row['detected']} | {row['sdc']} | {row['false_alarm']} | {rate} | {seed} |")
    print("\nA fault in a column-0 activation register changes the input seen by every column,"
          " sanity column included: an input error, which the spatial checksum cannot see"
          " (Lemma 1).  In columns 1…C−1 it is detected unless the weights to its left in that"
          " row sum to zero (then it is input-like too).")


if __name__ == "__main__":
    main()
