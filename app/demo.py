"""``rtlgen demo``: generate, verify, inject faults, bypass and synthesise one configuration.

The demo uses every room (rtl_gen, golden, tb, synth), so it lives in the root package beside
the CLI that dispatches to it.  Everything it does follows from the configuration it is
given (by default :data:`DEMO_DEFAULTS`, an 8×8 int8 WS array with both checksums, PE bypass,
anomaly suppression and fault hooks; any configuration option overrides it):

1. generate the Verilog into ``<out>/rtl``;
2. verify three products (one full tile; M, K and N over the array size so that every tile
   kind occurs; a partial tile) on the RTL against the golden cycle model, port by port and
   cycle by cycle, and against ``A @ B`` by numpy; operand ranges are the configuration's
   (narrowed only if the accumulator could not hold the worst case);
3. inject faults through the RTL fault hooks, one simulation each, chosen from the
   configuration (a stuck weight bit, a stuck partial-sum bit, a transient activation flip, a
   transient partial-sum flip timed to hit one result); each entry of the report is such a run
   and says whether the RTL equalled the golden fault model, how many outputs changed and what
   each checksum said; with PE bypass, a stuck PE is then bypassed and the product compared
   with the golden pruned product (reported apart, ``bypass``);
4. synthesise the same design *without* fault hooks (they are verification infrastructure,
   not product area) and print the headline areas beside the seeds;
5. run the digits MLP under stuck-at faults, unprotected and protected
   (:func:`network_under_faults`);
6. with a compare spec (``make demo`` gives ``examples/compare-digits.toml``), the headline:
   every protection on the same faults, accuracy under faults beside area and energy
   (:func:`compare_protections`, ``<out>/compare``).

The terminal gets a summary of a few dozen lines; ``<out>/demo.json`` holds everything and
``<out>/synth/area.md`` / ``area.json`` / ``area.png`` the full area report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ftaccel import files
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.array import cycle_count
from ftaccel.golden.bypass import pruned_matmul
from ftaccel.golden.campaign import classify, output_error_faults
from ftaccel.golden.faults import Fault
from ftaccel.rtl_gen.accelerator import generate
from ftaccel.tb.product import prepare, run_product
from ftaccel.tb.regression import plain_options

__all__ = ["DEMO_DEFAULTS", "demo_shapes", "demo_faults", "operand_limits", "run_demo"]

#: The demo's configuration unless options say otherwise.
DEMO_DEFAULTS: dict[str, Any] = {"rows": 8, "cols": 8, "fault_hooks": True, "bypass": True,
                                 "afd": True, "checksum": "both"}


def demo_shapes(cfg: AcceleratorConfig) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` of the verification products: one full tile, every tile kind, a part."""
    R, C = cfg.rows, cfg.cols
    return [(R, R, C), (R + 3, 2 * R + 3, C + 3), (max(1, R // 2), max(1, R - 1),
                                                    max(1, C - 1))]


def operand_limits(cfg: AcceleratorConfig, K: int) -> tuple[int, int]:
    """Largest magnitudes ``(a, w)`` for random operands.

    The format's own, halved (alternately) until ``K`` products of the extremes fit the
    accumulator.
    """
    a, w = 1 << (cfg.a_width - 1), 1 << (cfg.w_width - 1)
    limit = (1 << (cfg.acc_bits - 1)) - 1
    while K * a * w > limit and (a > 1 or w > 1):
        if a >= w:
            a = max(1, a // 2)
        else:
            w = max(1, w // 2)
    return a, w


def _operands(cfg: AcceleratorConfig, rng: np.random.Generator, M: int, K: int, N: int):
    a, w = operand_limits(cfg, K)
    return rng.integers(-a, a, (M, K)), rng.integers(-w, w, (K, N))


def _shift(cfg: AcceleratorConfig, K: int) -> int:
    """A requantisation shift that maps typical sums of K products back near ``a_width``."""
    return max(0, min(cfg.acc_bits, (cfg.a_width + cfg.w_width - 2
                                     + max(0, K - 1).bit_length()) // 2))


def demo_faults(cfg: AcceleratorConfig, M: int, K: int, N: int) -> list[Fault]:
    """Faults for an ``M×K @ K×N`` product, each inside the array, its registers and the run.

    A stuck weight MSB, a stuck partial-sum bit, a transient activation flip while the stream
    passes, and (WS/IS) a transient partial-sum flip timed to corrupt one result.
    """
    R, C = cfg.rows, cfg.cols
    program = prepare(cfg, np.zeros((M, K), np.int64), np.zeros((K, N), np.int64),
                      plain_options(cfg))
    psum_bit = min(cfg.acc_bits - 2, cfg.a_width + cfg.w_width - 4)
    faults = [Fault(0, 0, "weight", cfg.w_width - 1, "sa1"),
              Fault(R - 1, C - 1, "psum", psum_bit, "sa0")]
    if "in_valid" in program.inputs:
        start = int(np.flatnonzero(program.inputs["in_valid"])[0])
    else:  # OS: the stream starts with the program (after the bypass map, if any)
        start = int(cfg.rows if cfg.bypass else 0)
    r, c = R // 2, C // 2
    cycle = start + cfg.input_stages + r + c + 1 + M // 2
    faults.append(Fault(r, c, "act", cfg.a_width - 2, "flip", min(cycle, program.cycles - 1)))
    if cfg.dataflow != "os":
        m, n = M // 2, min(N - 1, C // 2)
        pos = [(int(program.out_cycle[m, n]), int(program.out_lane[m, n]))]
        faults.extend(output_error_faults(cfg, pos, [min(cfg.acc_bits - 2, cfg.a_width)]))
    return faults


def _fault_text(f: Fault) -> str:
    what = {"sa0": "stuck at 0", "sa1": "stuck at 1"}.get(f.mode, f"flipped in cycle {f.cycle}")
    return f"PE ({f.row},{f.col}) {f.register} bit {f.bit} {what}"


def _alarm_text(alarms: dict) -> str:
    parts = [f"{name} {'ALARM' if alarms[name]['alarm'] else 'quiet'}"
             for name in ("spatial", "temporal") if name in alarms]
    return ", ".join(parts) if parts else "no checksum"


def run_demo(cfg: AcceleratorConfig, out: Path, *, seed: int = 1, sim: str | None = None,
             timeout: float = 600, compare_spec: str | Path | dict | None = None,
             say: Callable[[str], None] = print) -> dict:
    """Run the demo on ``cfg`` into folder ``out`` (which the caller has claimed).

    With ``compare_spec`` (a compare spec, e.g. ``examples/compare-digits.toml``, checked by
    the caller) the last step compares its protections (:func:`compare_protections`) into
    ``out/compare``.  Returns the report also written to ``out/demo.json``;
    ``report["passed"]`` is the verdict.
    """
    from ftaccel.synth.flow import synthesize
    from ftaccel.synth.summary import headline
    from ftaccel.tb.runner import default_sim

    out = Path(out)
    sim = sim or default_sim()
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    steps = 5 if compare_spec is None else 6
    if not cfg.fault_hooks:
        cfg = cfg.replace(fault_hooks=True)
        say("note: fault hooks added for the injections (synthesis leaves them out)")
    report: dict[str, Any] = {"config": cfg.to_dict(), "config_name": cfg.name(),
                              "simulator": sim, "seed": seed}
    say(f"demo of {cfg.name()} on {sim}, seed {seed}, into {out}/")

    gen = generate(cfg, out / "rtl")
    report["verilog"] = str(gen.verilog)
    say(f"[1/{steps}] generated {gen.verilog} ({gen.verilog.stat().st_size // 1024} kB)")

    cases = []
    for M, K, N in demo_shapes(cfg):
        A, B = _operands(cfg, rng, M, K, N)
        opts = plain_options(cfg, relu=cfg.output_stage, shift=_shift(cfg, K)
                             if cfg.output_stage else 0)
        res = run_product(cfg, A, B, opts, sim=sim)
        ok = res.passed and np.array_equal(res.run.acc, A @ B)
        cases.append({"shape": [M, K, N], "cycles": int(res.run.program.cycles),
                      "single_buffered_cycles": (cycle_count(cfg.replace(double_buffer=False),
                                                             M, K, N)
                                                 if cfg.double_buffered else None),
                      "rtl_equals_golden": res.passed, "equals_numpy": bool(
                          np.array_equal(res.run.acc, A @ B)), "pass": bool(ok),
                      "seconds": round(res.seconds, 2)})
    report["verify"] = cases
    say(f"[2/{steps}] verified {sum(c['pass'] for c in cases)} of {len(cases)} products: RTL = "
        "golden cycle model on every port and cycle, and = numpy A @ B")
    for c in cases:
        M, K, N = c["shape"]
        single = (f" (single-buffered: {c['single_buffered_cycles']})"
                  if c["single_buffered_cycles"] else "")
        say(f"      {M}×{K} @ {K}×{N}: {c['cycles']} cycles{single}, "
            f"{'pass' if c['pass'] else 'FAIL'} ({c['seconds']} s)")

    M, K, N = cfg.rows, cfg.rows, cfg.cols
    A, B = _operands(cfg, rng, M, K, N)
    injected = []
    faults = demo_faults(cfg, M, K, N)
    say(f"[3/{steps}] injected {len(faults)} faults into the RTL, one run each, beside the golden "
        "fault model:")
    for fault in faults:
        res = run_product(cfg, A, B, plain_options(cfg, fault=fault), sim=sim)
        changed = int(res.fault_effect)
        alarm = bool(res.alarms.get("alarm", False))
        outcome = classify(changed, alarm)
        entry = {"fault": vars(fault).copy(), "rtl_equals_golden": res.passed,
                 "outputs_changed": changed, "outputs": M * N, "outcome": outcome,
                 "checksums": res.alarms}
        injected.append(entry)
        say(f"      {_fault_text(fault)}: {changed}/{M * N} outputs changed, "
            f"{_alarm_text(res.alarms)} -> {outcome}; RTL {'=' if res.passed else '!='} golden")
    report["faults"] = injected

    if cfg.bypass:
        # A permanent fault in one PE, then the same product with that PE bypassed: the result
        # must equal the golden pruned product (the PE's contribution removed).  The sign bit
        # of the value pinned there is forced to its opposite, so the fault always matters.
        r, c = cfg.rows - 1, min(3, cfg.cols - 1)
        pinned = B[r, c] if cfg.dataflow == "ws" else 0  # WS pins B[r, c] in PE (r, c)
        fault = Fault(r, c, "weight", cfg.w_width - 1, "sa0" if pinned < 0 else "sa1")
        bmap = np.zeros((cfg.rows, cfg.cols), dtype=bool)
        bmap[fault.row, fault.col] = True
        broken = run_product(cfg, A, B, plain_options(cfg, fault=fault), sim=sim)
        fixed = run_product(cfg, A, B, plain_options(cfg, fault=fault, bypass_map=bmap),
                            sim=sim)
        pruned = pruned_matmul(cfg.dataflow, A, B, bmap)
        ok_bp = bool(np.array_equal(fixed.run.acc, pruned) and fixed.passed)
        report["bypass"] = {"fault": vars(fault).copy(), "outputs_changed": broken.fault_effect,
                            "bypassed_equals_pruned": ok_bp,
                            "rtl_equals_golden": broken.passed and fixed.passed}
        say(f"      then {_fault_text(fault)}: {broken.fault_effect}/{M * N} outputs wrong; with "
            f"the PE bypassed the product {'equals' if ok_bp else 'DIFFERS from'} the golden "
            "pruned product")

    product = cfg.replace(fault_hooks=False)
    gen_p = generate(product, out / "synth" / "rtl")
    t0 = time.perf_counter()
    area = synthesize(gen_p.verilog, gen_p.top, out / "synth", timeout_s=timeout)
    say(f"[4/{steps}] synthesised {product.name()} (no fault hooks) with Yosys in "
        f"{time.perf_counter() - t0:.0f} s:")
    for line in headline(area):
        say("      " + line)
    report["area"] = {"totals": area.get("totals"), "files": area.get("files"),
                      "beside_the_seeds": area.get("beside_the_seeds")}

    report["network"] = network_under_faults(cfg, out / "campaign", seed=seed, say=say,
                                             steps=steps)
    if compare_spec is not None:
        report["compare"] = compare_protections(compare_spec, out / "compare", say=say,
                                                steps=steps)

    report["passed"] = bool(all(c["pass"] for c in cases)
                            and all(f["rtl_equals_golden"] for f in injected)
                            and report.get("bypass", {}).get("bypassed_equals_pruned", True)
                            and report.get("bypass", {}).get("rtl_equals_golden", True))
    report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    files.write_json(out / "demo.json", report)
    synth_dir = out / "synth"
    say(f"demo {'passed' if report['passed'] else 'FAILED'} in {report['elapsed_s']:.0f} s. "
        f"Full reports: {out / 'demo.json'}; area tables {synth_dir / 'area.md'}, "
        f"{synth_dir / 'area.json'}, {synth_dir / 'area.png'}; the network campaign "
        f"{out / 'campaign' / 'campaign.md'} and its per-fault trace"
        + (f"; the protections compared {out / 'compare' / 'compare.md'}"
           if compare_spec is not None else ""))
    return report


#: Images of the digits test split the demo's network campaign runs over.
DEMO_IMAGES = 180


def network_under_faults(cfg: AcceleratorConfig, out: Path, *, seed: int,
                         say: Callable[[str], None] = print, steps: int = 5) -> dict:
    """The built-in digits MLP under stuck-at faults, unprotected and protected.

    The MLP runs on an array of ``cfg``'s size and dataflow, with stuck-at faults in PE registers
    and MAC logic, unprotected and with each protection the dataflow has (Sanity-Check both: WS
    only; bypass of the known faulty PE), on the fast fault model.

    A statistical sample (Ahmadilivani 2025 Eq. 4.7, ±10 % at 95 %) of the (PE, site, bit, mode)
    population, run in this process; the campaign folder ``out`` holds the full report and trace.
    """
    from ftaccel.app.campaign import parse_spec, run_campaign

    protections = [{"kind": "none"}, {"kind": "bypass"}]
    if cfg.dataflow == "ws":
        protections.insert(1, {"kind": "sanity", "checksum": "both"})
    spec = parse_spec({
        "campaign": {"name": "demo: digits-mlp under stuck-at faults", "seed": seed,
                     "chunk": 32},
        "network": {"model": "digits-mlp"},
        "data": {"source": "digits", "images": DEMO_IMAGES},
        "accelerator": {"rows": cfg.rows, "cols": cfg.cols, "dataflow": cfg.dataflow},
        "protections": protections,
        "faults": {"model": "register", "modes": ["sa0", "sa1"],
                   "registers": ["weight", "act", "psum", "product", "sum"]},
        "sample": {"method": "statistical", "margin": 0.1, "confidence": 0.95},
    })
    t0 = time.perf_counter()
    rep = run_campaign(spec, out, workers=0, progress=False, log=lambda *a, **k: None)
    prot, clean = rep["protections"], rep["fault_free"]
    n = next(iter(prot.values()))["faults"]
    say(f"[5/{steps}] digits-mlp (int8) on a {cfg.rows}×{cfg.cols} {cfg.dataflow.upper()} array: "
        f"{n} stuck-at faults (PE registers and MAC logic, Ahmadilivani 2025 Eq. 4.7 sample) × "
        f"{DEMO_IMAGES} test images in {time.perf_counter() - t0:.0f} s:")
    summary = {}
    for name, p in prot.items():
        mean, lo, hi = p["accuracy"]
        shares = p["shares"]
        extra = ""
        cov = p.get("misprediction_coverage")
        if cov is not None and name.startswith("sanity"):
            extra = (f", detected {shares['detected']:.0%} of faults and {cov['share']:.0%} of "
                     f"the {cov['faults']} that change a prediction")
        if name != "bypass":  # bypass prunes the PE: most repaired faults still move a logit
            extra = f", critical {shares['critical']:.0%}" + extra
        say(f"      {name:<12} fault-free {clean[name]['accuracy']:.1%}, under a fault "
            f"{mean:.1%} (95 % CI {lo:.1%}–{hi:.1%}){extra}")
        summary[name] = {"fault_free_accuracy": clean[name]["accuracy"], "accuracy": p["accuracy"],
                         "shares": shares,
                         "misprediction_coverage": p.get("misprediction_coverage")}
    return {"faults": n, "images": DEMO_IMAGES, "protections": summary,
            "report": str(Path(out) / "campaign.json")}


def compare_protections(spec, out: Path, *, say: Callable[[str], None] = print,
                        steps: int = 6) -> dict:
    """The demo's headline: every protection of ``spec`` on the same faults, beside its costs.

    :func:`app.compare.compare` into ``out`` (resumed when it is already there; synthesis
    figures from the per-configuration cache), then per protection one line: accuracy under
    faults with its 95 % interval (Student t over the trials), critical SDC with its Wilson
    interval, and the area and energy overheads on the unprotected array; then the
    protections no other beats on accuracy at lower area / energy.
    """
    from ftaccel.app.campaign_report import share_text
    from ftaccel.app.compare import compare  # (heavy: synthesis flow, Dask)

    t0 = time.perf_counter()
    rep = compare(spec, out, progress=False, log=lambda *a, **k: None)
    rows = rep["protections"]
    where = (f"at rate {rep['rate']:g}" if rep.get("rate") is not None
             else "under register faults")
    if rep.get("chips"):  # HAS's chip pinned: the table's accuracy is on that chip
        where += ", on the pinned chip"
    say(f"[{steps}/{steps}] {len(rows)} protections of {rep['model']} on the same faults "
        f"({where}, {rep['images']} images) in {time.perf_counter() - t0:.0f} s "
        f"({len(rep['timing']['synthesised'])} configurations synthesised, "
        f"{len(rep['timing']['from_cache'])} from the cache):")
    width = max(len(p) for p in rows)
    for p, r in rows.items():
        m, lo, hi = r["accuracy"]
        crit = r["critical_sdc"]
        ov = r["overheads"]
        cost = "the baseline" if p == "none" else ", ".join(
            f"{what} {ov[key]:+.0f} %" for key, what in (("area", "area"), ("energy", "energy"))
            if ov.get(key) is not None)
        say(f"      {p:<{width}} under faults {m:.1%} ({lo:.1%}–{hi:.1%}), critical SDC "
            f"{share_text(crit)}" + (f"; {cost}" if cost else ""))
    for key, what in (("area_um2", "area"), ("energy_uj", "energy")):
        if key in rep["pareto"]:
            say(f"      not dominated on mean accuracy vs {what}: {', '.join(rep['pareto'][key])}")
    return {"report": str(Path(out) / "compare.json"), "rate": rep.get("rate"),
            "protections": {p: {"accuracy": r["accuracy"], "critical_sdc": r["critical_sdc"],
                                "overheads": r["overheads"]} for p, r in rows.items()},
            "pareto": rep["pareto"], "seconds": round(time.perf_counter() - t0, 1)}
