"""Cost of every reliability unit through the project's Yosys flow, beside the seeds' figures.

Each table synthesises generated designs with :func:`synth.flow.synthesize` (hierarchical, one
Yosys version, one script, the OSU 0.18 µm library when installed) and states its denominator.
Where OpenSTA is installed (``make setup``) every design is also timed and powered
(:mod:`synth.ppa`: 100 MHz, the library's 1.8 V, the stated default toggle rate, the stated
wire-load model), and each table gives the **power** share on the seed's denominator and the
**delay** (the unit's path against the PE's MAC path; for a unit inside the PE, the delay it
adds) beside the area.  Technology gap: :data:`synth.seeds.TECHNOLOGY_GAP`.

* PE bypass (Ozen 2023 Table 10.1): the PE with bypass against the same PE without, per dataflow
  and width; the logic depth of the PE as a delay proxy (seed: ≤ 2.2 % delay);
* anomaly suppression (Ozen 2023 Table 8.1) and median arrays (Ozen 2023 Fig. 8.15): the unit as a
  share of the whole generated design and of the array;
* Sanity-Check (Ozen 2023 Table 6.3): spatial, temporal (residue and exact) and both, as the
  whole area added to the design (units, sanity column, pipeline registers, wider PEs in
  exact mode) over the plain design's array, and the seed's estimate (n+3)/(n·S);
* LCU vs TMR (Ahmadilivani 2025 §4.3.1): the correction units, and the whole cost of protecting k
  critical neurons: one extra array column per neuron + the LCU, against two extra columns + a
  voter;
* the on-chip controllers of the composed top (``lcu``, ``tmr`` word / bitwise): each an
  output buffer of ``lcu_depth`` rows with its controller, as units of the area flow beside
  the array (the accelerator area a Fig. 4.17 analogue takes for LCU and TMR);
* the fixed-point requantisation multiplier (``requant = "multiplier"``, issue 23): unit
  ``requant`` of the area flow (gemmlowp's M0 product, rounding, zero point, clamp, one per
  output lane) with its logic depth beside the PE's and the power-of-two lane's, and the whole
  area the option adds to the design (the lane's delay registers included).
* the flow-controlling MACs (Ozen 2023 Table 12.9): the flow PE against the plain 8-bit PE, area,
  power and delay.

Writes ``build/unit_costs/costs.json`` and prints Markdown.  ``--quick`` uses smaller arrays;
``--no-ppa`` skips OpenSTA.
``python bench/bench_unit_costs.py [--size 16] [--quick] [--only bypass flow ...]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ftaccel.config import AcceleratorConfig
from ftaccel.rtl_gen.accelerator import generate
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.synth.flow import synthesize
from ftaccel.synth.seeds import FLOW_MAC_FIGURES, TECHNOLOGY_GAP
from ftaccel.synth.sta import find_sta

OUT = Path(__file__).resolve().parent.parent / "build" / "unit_costs"
#: Time and power every design (set in main: OpenSTA installed and not --no-ppa).
PPA = {"on": False}


def metric(report: dict) -> str:
    return report.get("primary_metric", "transistors")


def synth_cfg(cfg: AcceleratorConfig, timeout_s: float = 600) -> dict:
    d = OUT / cfg.name()
    if cfg.flow != "none":
        from ftaccel.rtl_gen.flow import generate_flow

        gen = generate_flow(cfg, d / "rtl")
        units = {"flow_pe_": "pe"}
    else:
        gen = generate(cfg, d / "rtl")
        units = None
    return synthesize(gen.verilog, gen.top, d, units=units, timing=PPA["on"], power=PPA["on"],
                      timeout_s=timeout_s)


def power_pct(report: dict, unit: str, den: str) -> str:
    """The unit's power share on a denominator (``—`` without power)."""
    for u in (report.get("power") or {}).get("units") or []:
        if u["unit"] == unit and u.get(f"pct_of_{den}") is not None:
            return f"{u[f'pct_of_{den}']:.2f} %"
    return "—"


def delay_text(report: dict, unit: str) -> str:
    """A unit against the MAC path: the delay it adds inside the PE, or its ratio."""
    for u in (report.get("timing") or {}).get("units") or []:
        if u["unit"] == unit:
            if u.get("added_pct") is not None:
                return f"{u['added_pct']:+.2f} % ({u['min_period_ns']:.2f} ns)"
            if u.get("ratio_to_mac") is not None:
                fits = "fits" if u["fits_mac_cycle"] else "exceeds"
                return f"{u['ratio_to_mac']:.2f}× MAC ({fits})"
    return "—"


def module_power(report: dict, prefix: str) -> float | None:
    for m in (report.get("power") or {}).get("modules") or []:
        if m["module"].startswith(prefix):
            return m["per_instance"]["total_mw"]
    return None


def module_period(report: dict, prefix: str) -> float | None:
    for m in (report.get("timing") or {}).get("modules") or []:
        if m["module"].startswith(prefix) and m["worst"]:
            return m["worst"]["min_period_ns"]
    return None


def module(report: dict, prefix: str) -> dict:
    for m in report["modules"]:
        if m["module"].startswith(prefix):
            return m
    raise KeyError(prefix)


def unit_total(report: dict, unit: str) -> float:
    key = metric(report)
    return sum(u[key]["area"] for u in report["units"] if u["unit"] == unit)


def module_area(report: dict, prefix: str) -> float:
    return module(report, prefix)[metric(report)]["own_per_instance"]


def pct(x: float, of: float) -> str:
    return f"{100 * x / of:.2f} %" if of else "—"


class _BypassLogic(wiring.Component):
    """Only the bypass gates of one PE, registered outputs excluded.

    A P-bit 2-to-1 partial-sum multiplexer (WS/IS, Fig. 10.2-A) or P AND gates on the pinned output
    (OS, Fig. 10.2-B). Synthesised alone it gives an overhead free of ABC's restructuring noise in
    the PE.
    """

    def __init__(self, dataflow: str, width: int):
        self._df, self._w = dataflow, width
        super().__init__({"a": In(signed(width)), "b": In(signed(width)), "bypass": In(1),
                          "y": Out(signed(width))})

    def elaborate(self, platform):
        m = Module()
        if self._df == "os":
            m.d.comb += self.y.eq(self.a & ~self.bypass.replicate(self._w))
        else:
            m.d.comb += self.y.eq(Mux(self.bypass, self.a, self.b))
        r = Signal(signed(self._w))
        m.d.sync += r.eq(self.y)  # a clock keeps the flow's sequential bookkeeping simple
        return m


def bypass_logic_area(df: str, width: int) -> float:
    top = f"bypass_logic_{df}_{width}"
    path = write_verilog(_BypassLogic(df, width), top, {"dataflow": df, "width": width},
                         OUT / top / f"{top}.v")
    rep = synthesize(path, top, OUT / top)
    key = metric(rep)
    seq = rep["totals"].get("sequential_area_um2", 0) if key == "area_um2" else 0
    return rep["totals"][key] - seq


def bypass_table(results: dict) -> None:
    print("\n### PE bypass (Ozen 2023 Table 10.1: overhead on one PE)\n")
    print("*PE + bypass* synthesises the whole PE again (ABC may restructure the MAC, ±5 %); "
          "*gates alone* synthesises only the bypass multiplexer / AND gates.\n")
    print("| dataflow | width | PE | PE + bypass | overhead (whole PE) | gates alone | "
          "overhead (gates) | seed | power (% of PE) | seed power | PE depth | + bypass | "
          "depth change | delay added (OpenSTA; seed ≤ +2.2 %) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    seed = {"ws": "7.087 %", "is": "7.087 %", "os": "4.003 %"}
    seed_power = {"ws": "5.357 %", "is": "5.357 %", "os": "2.273 %"}
    for df in ("ws", "is", "os"):
        for w in (8, 16):
            base = synth_cfg(AcceleratorConfig(rows=2, cols=2, dataflow=df, a_width=w,
                                               w_width=w))
            byp = synth_cfg(AcceleratorConfig(rows=2, cols=2, dataflow=df, a_width=w,
                                              w_width=w, bypass=True))
            key = metric(base)
            a0, a1 = module_area(base, "pe_"), module_area(byp, "pe_")
            d0, d1 = module(base, "pe_")["logic_depth"], module(byp, "pe_")["logic_depth"]
            gates = bypass_logic_area(df, base["design"]["config"]["acc_width"] or
                                      AcceleratorConfig(a_width=w, w_width=w).acc_bits)
            row = {"pe": a0, "pe_bypass": a1, "overhead": a1 / a0 - 1, "gates": gates,
                   "gates_overhead": gates / a0, "depth": d0, "depth_bypass": d1, "metric": key,
                   "power_pct_of_pe": power_pct(byp, "bypass", "pe"),
                   "delay": delay_text(byp, "bypass")}
            results.setdefault("bypass", {})[f"{df}{w}"] = row
            print(f"| {df} | {w} | {a0:,.0f} | {a1:,.0f} | {100 * row['overhead']:.2f} % | "
                  f"{gates:,.0f} | {100 * gates / a0:.2f} % | {seed[df] if w == 8 else '—'} | "
                  f"{row['power_pct_of_pe']} | {seed_power[df] if w == 8 else '—'} | "
                  f"{d0} | {d1} | {100 * (d1 / d0 - 1):+.1f} % | {row['delay']} |")


def input_unit_table(results: dict, size: int) -> None:
    print(f"\n### Input units on a {size}×{size} WS array (Ozen 2023 Table 8.1, Fig. 8.15: "
          "share of the whole design)\n")
    print("| unit | width | unit area | % of array | % of design | seed (% of accelerator) | "
          "power (% of design) | seed power | delay (OpenSTA) |")
    print("|---|---|---:|---:|---:|---|---:|---|---|")
    variants = [("afd", {"afd": True}, "afd", {8: "0.23 %", 16: "0.31 %"},
                 {8: "0.094 % (0.9 of 955.5 mW)", 16: "0.15 %"})]
    for win in (3, 5):
        for var in ("plain", "shared"):
            seed = "0.19–0.23 %" if win == 3 else "0.39–0.48 %"
            sp = "0.07–0.13 %" if win == 3 else "0.13–0.19 %"
            variants.append((f"median-{win} {var}", {"median": win, "median_variant": var},
                             "median", {8: seed, 16: seed}, {8: sp, 16: sp}))
    for label, opts, unit, seed, seed_p in variants:
        for w in (8, 16):
            rep = synth_cfg(AcceleratorConfig(rows=size, cols=size, a_width=w, w_width=w,
                                               **opts))
            area = unit_total(rep, unit)
            den = rep["denominators"]
            key = metric(rep)
            results.setdefault("input_units", {})[f"{label} {w}"] = {
                "unit": area, "array": den["array"][key], "design": den["design"][key],
                "metric": key, "power_pct_of_design": power_pct(rep, unit, "design"),
                "delay": delay_text(rep, unit)}
            print(f"| {label} | {w} | {area:,.0f} | {pct(area, den['array'][key])} | "
                  f"{pct(area, den['design'][key])} | {seed[w]} | "
                  f"{power_pct(rep, unit, 'design')} | {seed_p[w]} | "
                  f"{delay_text(rep, unit)} |")


def checksum_table(results: dict, size: int) -> None:
    print(f"\n### Sanity-Check, {size}×{size}, 16-bit (Ozen 2023 Table 6.3: 3.08 % of the array, "
          "1.64 % of the accelerator, at 64×64, spatial + temporal)\n")
    base = AcceleratorConfig(rows=size, cols=size, a_width=16, w_width=16)
    plain = synth_cfg(base)
    key = metric(plain)
    arr = plain["denominators"]["array"][key]
    design = plain["denominators"]["design"][key]
    # The seed's estimate: a MAC is n adders; (n + 3) / (n · S).
    n_est = 5
    est = (n_est + 3) / (n_est * size)
    rows = {}
    print("| checksum | temporal mode | checksum units | whole added area (design − plain) "
          "| % of array | % of design | added power, % of array | % of design | delay |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    p_plain = (plain.get("power") or {}).get("total", {}).get("total_mw")
    p_arr = (plain.get("power") or {}).get("denominators", {}) or {}
    for checksum, mode in (("spatial", "residue"), ("temporal", "residue"),
                           ("temporal", "exact"), ("both", "residue"), ("both", "exact")):
        rep = synth_cfg(base.replace(checksum=checksum, temporal_mode=mode))
        unit = unit_total(rep, "checksum")
        # The whole cost: the checksum units, the sanity column's PEs, the extra pipeline
        # registers, and (exact mode) every PE's wider activation path.
        added = rep["denominators"]["design"][key] - design
        shown = "—" if checksum == "spatial" else mode
        p_added = (rep["power"]["total"]["total_mw"] - p_plain) if p_plain else None
        rows[f"{checksum}/{mode}"] = {"unit": unit, "added": added, "added_mw": p_added}
        pa = pct(p_added, p_arr.get("array_mw")) if p_added is not None else "—"
        pd = pct(p_added, p_plain) if p_added is not None else "—"
        print(f"| {checksum} | {shown} | {unit:,.0f} | {added:,.0f} | {pct(added, arr)} | "
              f"{pct(added, design)} | {pa} | {pd} | {delay_text(rep, 'checksum')} |")
    results["checksum"] = {"array": arr, "design": design, "estimate": est, "metric": key,
                           "rows": rows}
    print(f"\nDenominators: the plain design's array {arr:,.0f}, design {design:,.0f}.  Seed "
          f"estimate (n+3)/(n·S) with n = 5, S = {size}: {100 * est:.2f} % "
          f"(seed at S = 64: 2.5 %; measured in the seed: 3.08 %; power: 5.50 % of the array, "
          f"1.12 % of the design).")


def lcu_table(results: dict, size: int) -> None:
    from ftaccel.rtl_gen.lcu import LCU
    from ftaccel.rtl_gen.tmr import BitwiseVoter, WordVoter

    print("\n### LCU against TMR (Ahmadilivani 2025 §4.3.1; the thesis gives no silicon area)\n")
    units = {}
    for w in (8, 16):
        for name, comp in (("LCU", LCU(width=w, registered=True)),
                           ("word voter", WordVoter(width=w, registered=True)),
                           ("bitwise voter", BitwiseVoter(width=w, registered=True))):
            top = name.replace(" ", "_").lower() + f"_{w}"
            path = write_verilog(comp, top, {"unit": name, "width": w}, OUT / top / f"{top}.v")
            rep = synthesize(path, top, OUT / top)
            units[(name, w)] = rep["totals"][metric(rep)]  # a number: the whole design
    base = synth_cfg(AcceleratorConfig(rows=size, cols=size))
    key = metric(base)
    pe = base["denominators"]["pe"][key]
    print("| unit | 8-bit | 16-bit |")
    print("|---|---:|---:|")
    for name in ("LCU", "word voter", "bitwise voter"):
        print(f"| {name} (registered) | {units[(name, 8)]:,.0f} | {units[(name, 16)]:,.0f} |")
    print(f"\nProtecting k critical neurons of an int8 layer on a {size}×{size} WS array: "
          f"LCU = k extra neurons (one extra column of {size} PEs each) + one LCU; TMR = 2k "
          "extra neurons + one word voter.  PE = "
          f"{pe:,.0f}.\n")
    print("| k | LCU protection | TMR protection | LCU / TMR |")
    print("|---:|---:|---:|---:|")
    rows = {}
    for k in (1, 2, 4, 8):
        lcu = k * size * pe + units[("LCU", 8)]
        tmr = 2 * k * size * pe + units[("word voter", 8)]
        rows[k] = {"lcu": lcu, "tmr": tmr}
        print(f"| {k} | {lcu:,.0f} | {tmr:,.0f} | {lcu / tmr:.2f} |")
    results["lcu"] = {"units": {f"{n} {w}": v for (n, w), v in units.items()}, "pe": pe,
                      "k": rows, "metric": key}


def controller_table(results: dict, size: int, depth: int = 16, entries: int = 16) -> None:
    """The LCU and TMR units of the composed top, attributed by the area flow."""
    print(f"\n### On-chip correction / voting controllers, {size}×{size} WS int8, buffer "
          f"{depth} rows × {size} words, {entries} pairs / triples (area flow units)\n")
    print("| configuration | unit | unit area | sequential (buffer, list, pipeline flops) | "
          "combiner (LCU / voter) | % of array | % of design | design |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    base = AcceleratorConfig(rows=size, cols=size, lcu_depth=depth)
    rows = {}
    for label, opts, unit in (("plain", {}, None),
                              ("lcu", {"lcu": True, "lcu_max_pairs": entries}, "lcu"),
                              ("tmr word", {"tmr": "word", "tmr_max_triples": entries}, "tmr"),
                              ("tmr bitwise", {"tmr": "bitwise", "tmr_max_triples": entries},
                               "tmr")):
        rep = synth_cfg(base.replace(**opts))
        key = metric(rep)
        den = rep["denominators"]
        area = unit_total(rep, unit) if unit else 0.0
        own = {m["module"]: m for m in rep["modules"]}
        top = rep["design"]["top"] if "top" in rep.get("design", {}) else "accelerator"
        ctl = own.get(f"{top}.{unit}")
        comb = own.get(f"{top}.{unit}.{'lcu' if unit == 'lcu' else 'voter'}")
        seq = (ctl.get("sequential_area_um2_per_instance") or 0.0) if ctl else 0.0
        comb_a = comb[key]["own_per_instance"] if comb else 0.0
        rows[label] = {"unit": unit, "area": area, "sequential": seq, "combiner": comb_a,
                       "array": den["array"][key], "design": den["design"][key], "metric": key}
        print(f"| {label} | {unit or '—'} | {area:,.0f} | {seq:,.0f} | {comb_a:,.0f} | "
              f"{pct(area, den['array'][key])} | {pct(area, den['design'][key])} | "
              f"{den['design'][key]:,.0f} |")
    results["controllers"] = {"size": size, "depth": depth, "entries": entries, "rows": rows}


def requant_table(results: dict, size: int) -> None:
    """The fixed-point multiplier of the output stage (unit ``requant``) and what it adds."""
    print(f"\n### Fixed-point requantisation multiplier, {size}×{size} WS int8 (issue 23; no "
          "seed figure)\n")
    print("| accumulator | requant unit | per lane | % of one PE | % of array | % of design | "
          "design added | depth: requant / pow2 lane / PE |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    rows = {}
    for max_k in (1024, 1 << 16):
        base = AcceleratorConfig(rows=size, cols=size, max_k=max_k)
        # ABC takes minutes on a 27 × 31 (to 33 × 31) product under load: a longer limit
        plain = synth_cfg(base)
        mult = synth_cfg(base.replace(requant="multiplier"), timeout_s=3600)
        key = metric(mult)
        den = mult["denominators"]
        area = unit_total(mult, "requant")
        added = den["design"][key] - plain["denominators"]["design"][key]
        depth = {name: max(m["logic_depth"] or 0 for m in rep["modules"] if pick(m["module"]))
                 for name, rep, pick in (
                     ("requant", mult, lambda n: n.endswith(".requant")),
                     ("lane", plain, lambda n: n.endswith(".lane0")),
                     ("pe", plain, lambda n: n.startswith("pe_")))}
        rows[f"acc{base.acc_bits}"] = {"unit": area, "per_lane": area / size, "added": added,
                                       "pe": den["pe"][key], "array": den["array"][key],
                                       "design": den["design"][key], "depth": depth,
                                       "design_depth": mult["totals"]["logic_depth"],
                                       "metric": key}
        print(f"| {base.acc_bits} bits (K ≤ {max_k:,}) | {area:,.0f} | {area / size:,.0f} | "
              f"{pct(area / size, den['pe'][key])} | {pct(area, den['array'][key])} | "
              f"{pct(area, den['design'][key])} | {added:,.0f} "
              f"({pct(added, plain['denominators']['design'][key])}) | "
              f"{depth['requant']} / {depth['lane']} / {depth['pe']} |")
    results["requant"] = {"size": size, "rows": rows}
    print("\n*% of one PE* is one lane's multiplier against one PE; *design added* is the "
          "whole design with the option minus without it (the multiplier, the lanes' delay "
          "registers of acc_out and the power-of-two result, the wider control ports).")
def flow_table(results: dict) -> None:
    """Ozen 2023 Table 12.9: the flow-controlling PE against the plain 8-bit PE."""
    print("\n### Flow-controlling MACs (Ozen 2023 Table 12.9: overhead on one 8-bit MAC)\n")
    print("| flow | group | PE area | overhead | seed area | PE power (mW) | overhead | "
          "seed power | PE min. period (ns) | delay change |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = synth_cfg(AcceleratorConfig(rows=2, cols=2, double_buffer=False))
    key = metric(base)
    a0, p0, t0 = module_area(base, "pe_"), module_power(base, "pe_"), module_period(base, "pe_")
    rows = {}
    for flow, group in (("shortened", 8), ("superposition", 8), ("shortened", 16),
                        ("twodim", 16)):
        rep = synth_cfg(AcceleratorConfig(rows=2, cols=2, flow=flow, flow_group=group))
        a1 = module_area(rep, "flow_pe_")
        p1, t1 = module_power(rep, "flow_pe_"), module_period(rep, "flow_pe_")
        sa, sp = FLOW_MAC_FIGURES[(flow, group)]
        po = f"{100 * (p1 / p0 - 1):.1f} %" if p0 and p1 else "—"
        to = f"{100 * (t1 / t0 - 1):+.1f} %" if t0 and t1 else "—"
        rows[f"{flow}-{group}"] = {"area": a1, "area_overhead": a1 / a0 - 1, "power_mw": p1,
                                   "period_ns": t1, "metric": key}
        print(f"| {flow} | {group} | {a1:,.0f} | {100 * (a1 / a0 - 1):.1f} % | {sa:g} % | "
              f"{p1 or 0:.3f} | {po} | {sp:g} % | {t1 or 0:.2f} | {to} |")
    print(f"\nPlain PE: {a0:,.0f} {'µm²' if key == 'area_um2' else 'transistors'}, "
          f"{p0 or 0:.3f} mW, {t0 or 0:.2f} ns (single-buffered WS int8, the MAC the seed "
          "extends).")
    results["flow"] = {"pe": a0, "pe_mw": p0, "pe_period_ns": t0, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=16, help="array size for the design shares")
    ap.add_argument("--quick", action="store_true", help="8×8 arrays")
    ap.add_argument("--only", nargs="+",
                    choices=["bypass", "input", "checksum", "lcu", "controllers", "flow",
                             "requant"],
                    default=["bypass", "input", "checksum", "lcu", "controllers", "flow",
                             "requant"])
    ap.add_argument("--no-ppa", action="store_true", help="area only (no OpenSTA)")
    args = ap.parse_args()
    PPA["on"] = not args.no_ppa and find_sta() is not None
    print("Technology gap: " + TECHNOLOGY_GAP + "." + (
        "" if PPA["on"] else "  (OpenSTA not used: area only.)"))
    size = 8 if args.quick else args.size
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {"size": size}
    t0 = time.perf_counter()
    if "bypass" in args.only:
        bypass_table(results)
    if "input" in args.only:
        input_unit_table(results, size)
    if "checksum" in args.only:
        checksum_table(results, size)
    if "lcu" in args.only:
        lcu_table(results, size)
    if "controllers" in args.only:
        controller_table(results, size)
    if "requant" in args.only:
        requant_table(results, size)
    if "flow" in args.only:
        flow_table(results)
    (OUT / "costs.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\n(areas in the flow's primary metric: µm² of OSU 0.18 µm cells when the library "
          f"is installed, else CMOS transistors; {time.perf_counter() - t0:.0f} s; "
          f"JSON in {OUT / 'costs.json'})")


if __name__ == "__main__":
    main()
