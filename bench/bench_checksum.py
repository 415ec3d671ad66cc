"""Benchmark: Sanity-Check error detection measured by injection, next to Table 6.1.

Prints (Markdown):

1. **Table 6.1 reproduced** (Ozen 2023 §6.2.2–6.2.3): for a random integer FC layer with both
   checksums embedded, bit errors are injected into the inputs, weights, bias or outputs
   (after checksum encoding, as in the seed) — 1, 2 and 3 errors in distinct elements,
   exhaustive over (element, bit) for single errors, sampled with the README, Fault campaigns sample
   size otherwise — and the detection rate of the spatial, temporal and combined checks over the
   errors that changed an output is printed beside the published guarantee. Then the same table for
   the cheap integration the seed suggests (Ozen 2023 §6.3.1): the sanity input wrapped to the
   activation width and the temporal check modulo 2^a_width.
2. **Aliasing against the residue width k**: the fraction of effective single errors that
   escape when the checks are computed modulo 2^k (the RTL's residue mode), and, for
   comparison, modulo 2^k − 1 (not built; a low-cost residue code that no single bit flip
   can alias).
3. With ``--array``: **register faults** (stuck-at-0/1 exhaustively, transient flips sampled)
   in every PE register of a small WS array extended by the sanity column, streaming two
   temporal batches with their sanity vectors, on the project's golden cycle model
   (:class:`golden.accelerator.AcceleratorModel`, bit-exact with the RTL fault hooks).  The
   integration is *emulated*: the whole array is configured with the widened activation
   width (sanity input) and weight width (sanity column), faults on real-column weight
   registers stay within ``w_width`` bits.  Coverage per register kind and fault mode.

``python bench/bench_checksum.py [--seed 0] [--batch 8] [--k-in 8] [--m-out 8]
[--a-width 8] [--w-width 8] [--bias-width 16] [--model flip|alg61] [--ks 4 8 12 16 20]
[--array [--rows 4] [--cols 4] [--array-batch 4]]``
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ftaccel.golden.campaign import (
    KINDS,
    TABLE_6_1,
    aliasing_table,
    detection_table,
    random_fc_layer,
    rectangle_escape,
)
from ftaccel.golden.checksum import (
    extend_inputs,
    negated_sum_width,
    sanity_column,
    spatial_errors,
    temporal_errors,
)
from ftaccel.golden.faults import sample_size


def _guarantee(g) -> str:
    return "none" if g == 0 else ("all" if g is None else f"{g} err")


def _pct(x: float) -> str:
    return "  n/a " if x != x else f"{100 * x:6.2f}"


def _holds(r) -> bool:
    g = TABLE_6_1[r["kind"]]
    ok = []
    for check in ("spatial", "temporal", "both"):
        n = g[check]
        if n == 0:
            ok.append(r[check] == 0.0)
        elif n is None or r["errors"] <= n:
            ok.append(r[check] == 1.0)
    return all(ok)


def _layer(args, rng, **kw):
    return random_fc_layer(rng, batch=args.batch, k_in=args.k_in, m_out=args.m_out,
                           a_width=args.a_width, w_width=args.w_width,
                           bias_width=args.bias_width, **kw)


def _print_table(rows) -> None:
    print("| error in | errors | cases | masked | spatial % | temporal % | both % | SDC "
          "| Table 6.1 spatial / temporal / both | holds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        g = TABLE_6_1[r["kind"]]
        published = " / ".join(_guarantee(g[c]) for c in ("spatial", "temporal", "both"))
        cases = f"{r['tried']} ({'all' if r['exhaustive'] else 'sample'})"
        print(f"| {r['kind']} | {r['errors']} | {cases} | {r['masked']} "
              f"| {_pct(r['spatial'])} | {_pct(r['temporal'])} | {_pct(r['both'])} "
              f"| {r['sdc']} | {published} | {'yes' if _holds(r) else 'NO'} |")


def table_6_1(args, rng) -> None:
    layer = _layer(args, rng)
    N, K, M = layer.shape
    print(f"## Table 6.1 reproduced: FC layer N={N} (+1 sanity input), K={K}, M={M} "
          f"(+1 sanity neuron), a{args.a_width} w{args.w_width} bias{args.bias_width}, "
          f"exact checks, threshold 0, error model '{args.model}'\n")
    t0 = time.perf_counter()
    rows = detection_table(rng, layer, max_errors=3, model=args.model)
    dt = time.perf_counter() - t0
    _print_table(rows)
    esc = rectangle_escape(layer, 1, (0, 0, N, M))
    print(f"\nLemma 6 is tight: 4 output errors +1/-1/-1/+1 on a rectangle -> detected by "
          f"spatial={esc[0]}, temporal={esc[1]}.  ({dt:.2f} s)\n")
    ow = layer.widths["output"]
    for kk, what in ((int(ow.max()), "the widest output register"),
                     (int(ow.min()), "the narrowest output register")):
        res = detection_table(rng, layer, max_errors=3, model=args.model, modulus="pow2", k=kk)
        bad = [f"{r['kind']}×{r['errors']}" for r in res if not _holds(r)]
        print(f"Residue mode modulo 2^k, k = {kk} ({what}): Table 6.1 guarantees "
              + ("all hold" if not bad else "broken for " + ", ".join(bad)) + ".")
    print()
    # The cheap integration: the sanity input stored at a_width (no widened streamed path),
    # temporal check modulo 2^a_width; spatial exact (one widened column only).
    layer = _layer(args, rng, wrap_input=True)
    a = args.a_width
    rows = detection_table(rng, layer, max_errors=3, model=args.model,
                           temporal_modulus="pow2", temporal_k=a)
    print(f"## Residue integration: sanity input wrapped to a_width = {a} bits, temporal check "
          f"modulo 2^{a}; spatial exact\n")
    _print_table(rows)
    print()


def aliasing(args, rng) -> None:
    layer = _layer(args, rng)
    ow = layer.widths["output"]
    print("## Aliasing: escape rate of effective single errors vs residue width k "
          f"(spatial + temporal together; output registers {ow.min()}–{ow.max()} bits)\n")
    ks = list(args.ks) + [None]
    for modulus, title in (("pow2", "modulo 2^k (RTL residue mode)"),
                           ("pow2m1", "modulo 2^k − 1 (comparison only, not built)")):
        table = aliasing_table(rng, layer, ks, modulus=modulus, model=args.model)
        print(f"### {title}\n")
        cols = list(KINDS) + ["random_word"]
        print("| k | " + " | ".join(f"{c} %" for c in cols) + " |")
        print("|---|" + "---|" * len(cols))
        for row in table:
            k = "exact" if row["k"] is None else str(row["k"])
            print(f"| {k} | " + " | ".join(_pct(row[c]["both"]) for c in cols) + " |")
        print()
    print("Single-check escape rates (modulo 2^k), spatial / temporal alone, output errors:\n")
    table = aliasing_table(rng, layer, ks, modulus="pow2", model=args.model)
    print("| k | spatial % | temporal % |")
    print("|---|---|---|")
    for row in table:
        k = "exact" if row["k"] is None else str(row["k"])
        print(f"| {k} | {_pct(row['output']['spatial'])} | {_pct(row['output']['temporal'])} |")
    print()


def array_campaign(args, rng) -> None:
    """Register faults in a WS array carrying both checksums (golden cycle model)."""
    from ftaccel.config import AcceleratorConfig
    from ftaccel.golden.accelerator import simulate
    from ftaccel.golden.faults import Fault
    from ftaccel.golden.schedule import assemble, build_program

    R, C, N = args.rows, args.cols, args.array_batch
    a, w = args.a_width, args.w_width
    cfg = AcceleratorConfig(rows=R, cols=C + 1, dataflow="ws", a_width=negated_sum_width(a, N),
                            w_width=negated_sum_width(w, C), max_k=R, output_stage=False)
    A = rng.integers(-(1 << (a - 1)), 1 << (a - 1), (2 * N, R))
    B = rng.integers(-(1 << (w - 1)), 1 << (w - 1), (R, C))
    A_ext, last = extend_inputs(A, N)
    s, _ = sanity_column(B)
    B_ext = np.hstack([B, s[:, None]])
    program = build_program(cfg, A_ext, B_ext)
    ref = assemble(program, simulate(cfg, program))
    assert np.array_equal(ref, A_ext @ B_ext), "golden cycle model differs from A @ B"
    assert not spatial_errors(ref).any() and not temporal_errors(ref, last, expected=0).any()
    print(f"## Register faults: WS array {R}×{C} + sanity column, 2 temporal batches of N={N} "
          f"(+ sanity vectors), act {cfg.a_width} b, weight {w} b (sanity column "
          f"{cfg.w_width} b), psum {cfg.acc_bits} b; golden cycle model, {program.cycles} "
          "cycles\n")
    widths = {"weight": lambda c: w if c < C else cfg.w_width, "act": lambda c: cfg.a_width,
              "psum": lambda c: cfg.acc_bits}
    first, stop = R, program.cycles - 1  # flips while vectors are in flight
    print("| register | mode | faults | masked | spatial % | temporal % | both % | SDC |")
    print("|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for reg in ("weight", "act", "psum"):
        sites = [(r, c, b) for r in range(R) for c in range(C + 1) for b in range(widths[reg](c))]
        for mode in ("sa0", "sa1", "flip"):
            if mode == "flip":
                pop = len(sites) * (stop - first)
                n = min(sample_size(pop), pop, args.max_flips)
                pick = rng.integers(0, len(sites), n)
                faults = [Fault(sites[i][0], sites[i][1], reg, sites[i][2], mode, int(cy))
                          for i, cy in zip(pick, rng.integers(first, stop, n), strict=True)]
                label = f"{n} (sample of {pop})"
            else:
                faults = [Fault(r, c, reg, b, mode) for r, c, b in sites]
                label = f"{len(faults)} (all)"
            masked = sdc = 0
            det = np.zeros(3, dtype=np.int64)
            for f in faults:
                out = assemble(program, simulate(cfg, program, f))
                if np.array_equal(out, ref):
                    masked += 1
                    continue
                sp = bool(spatial_errors(out).any())
                tp = bool(temporal_errors(out, last, expected=0).any())
                det += [sp, tp, sp or tp]
                critical = not np.array_equal(out[~last][:, :C], ref[~last][:, :C])
                sdc += critical and not (sp or tp)
            eff = len(faults) - masked
            rates = " | ".join(_pct(d / eff if eff else float("nan")) for d in det)
            print(f"| {reg} | {mode} | {label} | {masked} | {rates} | {sdc} |")
    print(f"\n({time.perf_counter() - t0:.1f} s)\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--k-in", type=int, default=8)
    ap.add_argument("--m-out", type=int, default=8)
    ap.add_argument("--a-width", type=int, default=8)
    ap.add_argument("--w-width", type=int, default=8)
    ap.add_argument("--bias-width", type=int, default=16)
    ap.add_argument("--model", choices=("flip", "alg61"), default="flip")
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 6, 8, 10, 12, 16, 20])
    ap.add_argument("--array", action="store_true",
                    help="also run the register-fault campaign on the golden cycle model")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--array-batch", type=int, default=4)
    ap.add_argument("--max-flips", type=int, default=3000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    try:
        table_6_1(args, rng)
        aliasing(args, rng)
        if args.array:
            array_campaign(args, rng)
    except ValueError as exc:  # bad sizes or widths: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
