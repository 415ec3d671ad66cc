"""Ozen 2023 Table 6.1 on the composed accelerator: Sanity-Check coverage by fault injection.

For each dataflow (``--dataflow``, default WS, IS and OS) and the temporal modes ``"exact"`` and
``"residue"`` an R×C accelerator with both checksums and fault hooks (``checksum="both"``) runs
:func:`golden.campaign.
table_6_1_campaign`: one random single-pass product, and for every row of
:data:`golden.campaign.TABLE_ROWS` a set of injected errors simulated on the golden cycle model
(which the tests hold equal to the RTL fault by fault).  Each case is counted against the
spatial alarm, the temporal alarm and either alarm ("both"), and the detection rates are
printed beside the guarantees of Table 6.1 (Ozen 2023 §6.2.2–6.2.3,
:data:`golden.checksum.TABLE_6_1`; on IS the spatial and temporal checks carry each other's:
:func:`golden.campaign. table_6_1_claims`).  The injected sites follow the dataflow
(:func:`golden.campaign.table_rows`).

Both modes use a fresh generator seeded with ``--seed``, so they run on the same product
(operands, bias); the flip samples differ because the activation registers are wider in exact
mode.  Single flips are sampled with the statistical size of README, Fault campaigns (Ahmadilivani
2025 Eq. 4.7) unless
``--flips`` is given; stuck-at faults and bias errors are exhaustive.

Prints Markdown and writes ``<out>/coverage.json`` (config, product, seed, counts of every row
for the three checks) and ``<out>/coverage.md``, atomically, once both runs have succeeded.

``python bench/bench_checksum_campaign.py [--rows 3 --cols 3 --m 6 --batch 3 --seed 1]
[--dataflow ws is os] [--flips N] [--combos 300] [--quick] [--out build/checksum_campaign]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402

from ftaccel.config import AcceleratorConfig  # noqa: E402
from ftaccel.errors import ConfigError  # noqa: E402
from ftaccel.golden.campaign import (  # noqa: E402
    TABLE_6_1,
    exhaustive_faults,
    site_kinds,
    table_6_1_campaign,
    table_6_1_claims,
    table_rows,
)

MODES = ("exact", "residue")
DATAFLOWS = ("ws", "is", "os")
CHECKS = ("spatial", "temporal", "any")
#: Column of TABLE_6_1 that each measured check is compared with.
CLAIM_KEY = {"spatial": "spatial", "temporal": "temporal", "any": "both"}
DEFAULT_OUT = ROOT / "build" / "checksum_campaign"
QUICK = {"flips": 100, "combos": 60}


def claim_text(count: int | None) -> str:
    """Table 6.1's guarantee in words: how many errors the check is sure to detect."""
    if count is None:
        return "all errors"
    if count == 0:
        return "none"
    return "1 error" if count == 1 else f"{count} errors"


def claims(table_row: str, dataflow: str = "ws") -> dict | None:
    table = table_6_1_claims(dataflow)
    if table_row not in table:
        return None
    return {check: claim_text(table[table_row][CLAIM_KEY[check]]) for check in CHECKS}


def stuck_count(cfg: AcceleratorConfig, key: str) -> int:
    """Stuck-at faults among the cases of the mixed rows (flip sample + every stuck-at).

    Mirrors the selection of :func:`golden.campaign.table_6_1_campaign`.
    """
    sel = site_kinds(cfg)[{"stream/inner": "inner", "sanity/all": "sanity"}[key]]
    return sum(1 for f in exhaustive_faults(cfg) if sel(f))


def sampling(cfg: AcceleratorConfig, key: str, row: dict, m: int) -> str:
    """How the cases of a row were chosen, in words.

    The campaign gives a population for the exhaustive rows and the flip samples; the
    others are described here from what the campaign does.
    """
    n, pop = row["cases"], row["population"]
    if key in ("stream/inner", "sanity/all"):
        s = stuck_count(cfg, key)
        return f"{n}: {n - s} sampled flips + all {s} stuck-at"
    if key.startswith("output/x") and key[-1].isdigit():
        k = int(key[-1])
        results = m * cfg.cols
        sets = math.comb(results, k)
        what = {1: "results", 2: "pairs of results", 3: "triples of results"}.get(
            k, f"{k}-sets of results")
        bits = "random bit" + ("s" if k > 1 else "")
        if n >= sets:
            return f"{n}: all {sets} {what}, {bits}"
        return f"sample of {n} from {sets} {what}, {bits}"
    if key == "output/x2-cancel":
        return f"{n} random cancelling pairs (row, lanes, bit)"
    if key == "bias/one":
        return f"{n}: every column and bit, one random row each"
    if row["exhaustive"]:
        return f"{n}, exhaustive"
    return f"sample of {n} from population {pop}"


def fmt_rate(cov: dict | None) -> str:
    if cov is None or cov["detection_rate"] is None:
        return "—"
    changing = cov["detected"] + cov["sdc"]
    return f"{cov['detection_rate']:.1%} ({cov['detected']}/{changing})"


def run_mode(args, mode: str, dataflow: str = "ws") -> dict:
    cfg = AcceleratorConfig(rows=args.rows, cols=args.cols, dataflow=dataflow, checksum="both",
                            temporal_mode=mode, fault_hooks=True, max_k=64)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    res = table_6_1_campaign(cfg, rng, m=args.m, batch=args.batch, flips=args.flips,
                             combos=args.combos)
    wall = time.perf_counter() - t0
    rows = []
    for key, table_row, description in table_rows(dataflow):
        r = res["rows"][key]
        rows.append({"key": key, "table_6_1_row": table_row, "description": description,
                     "population": r["population"], "cases": r["cases"],
                     "exhaustive": r["exhaustive"],
                     "sampling": sampling(cfg, key, r, args.m),
                     "claim": claims(table_row, dataflow),
                     **{check: r[check] for check in CHECKS}})
    return {"mode": mode, "dataflow": dataflow, "name": cfg.name(), "config": cfg.to_dict(),
            "acc_bits": cfg.acc_bits, "stream_width": cfg.stream_width,
            "temporal_check_bits": cfg.temporal_check_bits,
            "product": res["product"], "wall_time_s": round(wall, 3), "rows": rows}


def mode_table(run: dict) -> str:
    p = run["product"]
    lines = [
        f"### {run['dataflow'].upper()}, temporal_mode = \"{run['mode']}\" — `{run['name']}`",
        "",
        f"Product M×K×N = {p['M']}×{p['K']}×{p['N']}, temporal batch {p['batch']}, with bias; "
        f"accumulator {run['acc_bits']} bits, streamed operand {run['stream_width']} bits, "
        f"temporal check modulo 2**{run['temporal_check_bits']}; "
        f"{run['wall_time_s']:.1f} s on the cycle model.",
        "",
        "| injected error | Table 6.1 row | cases | spatial | temporal | both | SDC (both) "
        "| alarm only (both) | Table 6.1 claim (spatial / temporal / both) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in run["rows"]:
        both = r["any"]
        sdc = "—" if both is None else str(both["sdc"])
        fa = "—" if both is None else str(both["false_alarm"])
        claim = ("—" if r["claim"] is None
                 else " / ".join(r["claim"][check] for check in CHECKS))
        lines.append(f"| {r['description']} | {r['table_6_1_row']} | {r['sampling']} | "
                     f"{fmt_rate(r['spatial'])} | "
                     f"{fmt_rate(r['temporal'])} | {fmt_rate(both)} | {sdc} | {fa} | {claim} |")
    return "\n".join(lines)


LEGEND = """\
Detection rates count the cases that changed at least one output (detected / (detected + SDC));
"—" means no case changed an output.  **exact**: the streamed activation path is widened by
`temporal_batch_bits` bits so the sanity input vector (the negated sum of the batch) crosses the
array unwrapped, and the temporal check holds modulo 2**acc_bits.  **residue**: the PEs are
unchanged and the temporal sanity vector is wrapped to `a_width` bits, so the temporal check
holds modulo 2**a_width only: errors that are multiples of 2**{a} (a_width = {a}) escape
it.  The spatial check is the same in both modes.  **both** counts a case as detected if either
alarm fires.  The sanity/all row injects faults into the checker's own column (the sanity PEs):
they cannot change a result, so they show up as false alarms ("alarm only") or are masked,
never as SDC.  Stuck-at faults and bias errors are exhaustive; single flips (register, bit,
cycle) and combinations of output errors are sampled.

Other dataflows (the same checks, built where each dataflow allows): **IS** keeps the inputs in
the array and streams the weights, so its spatial checksum is a sanity *input* column (the
negated sum of the C batch rows' inputs, Eq. 6.7) and its temporal checksum a sanity *neuron*
in the weight stream (Eq. 6.5; exact mode widens the weight path, residue wraps it to w_width
bits): each carries the other's Table 6.1 guarantees, and the claims column says so.  **OS**
streams both operands: a sanity neuron column (spatial) and a sanity row of inputs (temporal,
the batch is a tile's R rows; exact mode widens that row's activations only); the bias is added
by the output stage after `acc_out` and by the checkers, so a bias error is counted on the sum
the output stage gets."""


def markdown(report: dict) -> str:
    opts = report["options"]
    flips = ("statistical sample size (Ahmadilivani 2025 Eq. 4.7)" if opts["flips"] is None
             else str(opts["flips"]))
    head = (f"## Sanity-Check coverage vs Ozen 2023 Table 6.1 ({opts['rows']}×{opts['cols']} "
            f"array, checksum = both, {', '.join(d.upper() for d in opts['dataflow'])})\n\n"
            f"Seed {report['seed']}; flips per row: {flips}; "
            f"output-error combinations per row: {opts['combos']}.")
    legend = LEGEND.format(a=report["runs"][0]["config"]["a_width"])
    parts = [head] + [mode_table(run) for run in report["runs"]] + [legend]
    return "\n\n".join(parts) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--m", type=int, default=6, help="activation vectors of the product")
    ap.add_argument("--batch", type=int, default=3, help="temporal batch size N")
    ap.add_argument("--flips", type=int, default=None,
                    help="single flips per row (default: the statistical sample size)")
    ap.add_argument("--combos", type=int, default=300,
                    help="multiple-output-error cases per row")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dataflow", nargs="+", choices=DATAFLOWS, default=list(DATAFLOWS),
                    help="dataflows to measure (default: all three)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    ap.add_argument("--quick", action="store_true",
                    help=f"fast run: flips={QUICK['flips']}, combos={QUICK['combos']}")
    args = ap.parse_args(argv)
    if args.quick:
        args.flips, args.combos = QUICK["flips"], QUICK["combos"]
    for name, lo in (("m", 1), ("batch", 1), ("flips", 1), ("combos", 1)):
        value = getattr(args, name)
        if value is not None and value < lo:
            raise ConfigError(name, value, f"an integer ≥ {lo}")
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        print(f"seed {args.seed}", file=sys.stderr)
        runs = []
        for dataflow in args.dataflow:
            for mode in MODES:
                run = run_mode(args, mode, dataflow)
                print(f"{dataflow} {mode}: {run['wall_time_s']:.1f} s", file=sys.stderr)
                runs.append(run)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {"generator": "bench/bench_checksum_campaign.py", "seed": args.seed,
              "options": {"rows": args.rows, "cols": args.cols, "m": args.m,
                          "batch": args.batch, "flips": args.flips, "combos": args.combos,
                          "dataflow": args.dataflow,
                          "quick": args.quick},
              "table_6_1": TABLE_6_1, "runs": runs}
    md = markdown(report)
    print(md, end="")
    write_atomic(args.out / "coverage.json", json.dumps(report, indent=2) + "\n")
    write_atomic(args.out / "coverage.md", md)
    print(f"wrote {args.out / 'coverage.json'} and {args.out / 'coverage.md'}; wall time "
          + ", ".join(f"{r['dataflow']} {r['mode']} {r['wall_time_s']:.1f} s" for r in runs),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
