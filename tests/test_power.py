# amaranth: UnusedElaboratable=no
"""Timing and power beside the area (issue 26): OpenSTA on the mapped netlists, activity.

Synthesis tests (``synth``) use 2×2 and 4×4 arrays; they need OpenSTA (Debian ``opensta``,
installed by ``make setup``) and skip without it, except the test that checks the one-line
exit 3 a user without it gets.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from seedtext import (  # tests/seedtext.py: the seed texts beside the repository
    SEEDS_DIR,
    section_text,
)

from ftaccel.app import cli
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.rtl_gen import emit
from ftaccel.rtl_gen.accelerator import TOP_NAME, Accelerator, design_texts, generate
from ftaccel.synth import energy as energy_mod
from ftaccel.synth.flow import DEFAULT_LIBERTY, StaMissing, synthesize
from ftaccel.synth.summary import headline

needs_sta = pytest.mark.skipif(shutil.which("sta") is None or not DEFAULT_LIBERTY.is_file(),
                               reason="OpenSTA or the OSU 0.18 µm library not installed")
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="no Icarus")

_CACHE: dict[tuple, dict] = {}


def _ppa(tmp_factory, activity=None, tag="", **kw) -> dict:
    """Synthesise with timing and power once per session and configuration."""
    key = (tag, tuple(sorted(kw.items())))
    if key not in _CACHE:
        cfg = AcceleratorConfig(**kw)
        d = tmp_factory.mktemp(cfg.name())
        gen = generate(cfg, d / "rtl")
        _CACHE[key] = synthesize(gen.verilog, gen.top, d / "synth", timing=True, power=True,
                                 activity=activity(cfg, d) if activity else None)
    return _CACHE[key]


# -- generation: one conversion, the same text (item 5) -----------------------------------------

@pytest.mark.parametrize("kw", [dict(rows=3, cols=2),
                                dict(rows=2, cols=3, dataflow="os", bypass=True,
                                     fault_hooks=True),
                                dict(rows=2, cols=2, checksum="both", afd=True, lcu=True)])
def test_verilog_from_the_rtlil_is_what_amaranth_writes(kw):
    """The Verilog written from the RTLIL is byte-identical to ``verilog.convert``'s."""
    cfg = AcceleratorConfig(**kw)
    il, text = design_texts(cfg)
    top = Accelerator(cfg)
    parts = [(pe, pe.module_name) for pe in top.array.pe_modules] + [(top, TOP_NAME)]
    direct = emit.header(cfg.to_dict(), TOP_NAME) + "".join(
        emit.module_text(c, n) for c, n in parts)
    assert text == direct
    assert il is not None and il.count("\nmodule ") + il.startswith("module ") >= len(parts)


# -- command line: bad input and a missing OpenSTA (no tools needed) ----------------------------

@pytest.mark.parametrize("extra,words", [
    (["--activity", "matmul"], "--activity needs --power"),
    (["--clock-mhz", "200"], "--clock-mhz needs --power"),
    (["--power", "--activity", "network:nope"], "network:NAME"),
    (["--power", "--activity", "missing.vcd"], "existing .vcd or .fst"),
    (["--power", "--clock-mhz", "0"], "frequency in MHz"),
])
def test_bad_power_options_are_one_line_exit_2(tmp_path, capsys, extra, words):
    out = tmp_path / "o"
    code = cli.main(["synth", "--rows", "2", "--cols", "2", "-o", str(out)] + extra)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and words in err
    assert not out.exists()


def test_missing_opensta_is_one_line_exit_3_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "o"
    for flag in ("--timing", "--power"):
        code = cli.main(["synth", "--rows", "2", "--cols", "2", flag, "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 3, err
        assert len(err.strip().splitlines()) == 1
        assert "apt-get install opensta" in err and "make setup" in err
        assert not out.exists()
    if DEFAULT_LIBERTY.is_file():  # the API says the same, before any Yosys run
        v = tmp_path / "d.v"
        v.write_text("module d(input a, output b); assign b = a; endmodule\n")
        with pytest.raises(StaMissing, match="apt-get install opensta"):
            synthesize(v, "d", tmp_path / "api", power=True)
        assert not (tmp_path / "api").exists()


def test_energy_is_power_times_cycles_over_the_clock():
    # 20 mW for 1,000 cycles at 100 MHz: 10 µs, 0.2 µJ
    assert energy_mod.energy_joules(20.0, 1000, 100.0) == pytest.approx(0.2e-6)
    for bad in ((-1.0, 10, 100.0), (1.0, -1, 100.0), (1.0, 10, 0.0), (math.nan, 10, 100.0)):
        with pytest.raises(ConfigError):
            energy_mod.energy_joules(*bad)


# -- timing ------------------------------------------------------------------------------------

def _liberty_tables():
    """``{cell: {(pin, "rise"|"fall"): [(caps, slews, values), ...]}}`` from the Liberty text."""
    text = DEFAULT_LIBERTY.read_text()
    out: dict[str, dict] = {}

    def block(start: int) -> int:  # index after the brace that closes the one at ``start``
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return i + 1
        raise ValueError("unbalanced Liberty")

    for c in re.finditer(r"cell\s*\((\w+)\)\s*\{", text):
        cell_text = text[c.end() - 1:block(c.end() - 1)]
        tables: dict = {}
        for p in re.finditer(r"pin\s*\((\w+)\)\s*\{", cell_text):
            sub = cell_text[p.end() - 1:]
            depth, end = 0, 0
            for i, ch in enumerate(sub):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    end = i
                    break
            pin_text = sub[:end]
            for t in re.finditer(r"cell_(rise|fall)\(\w+\)\s*\{\s*index_1\s*\(\"([^\"]+)\"\);"
                                 r"\s*index_2\s*\(\"([^\"]+)\"\);\s*values\s*\(([^;]+)\);",
                                 pin_text):
                caps = [float(v) for v in t.group(2).split(",")]
                slews = [float(v) for v in t.group(3).split(",")]
                rows = [[float(v) for v in row.split(",")]
                        for row in re.findall(r"\"([^\"]+)\"", t.group(4))]
                tables.setdefault((p.group(1), t.group(1)), []).append((caps, slews, rows))
        out[c.group(1)] = tables
    return out


def _table_delay(table, cap: float, slew: float) -> float:
    caps, slews, rows = table
    per_cap = [float(np.interp(slew, slews, row)) for row in rows]
    return float(np.interp(cap, caps, per_cap))


#: The band of the hand calculation: the MAC path's delay from OpenSTA is within ±30 % of the
#: sum of the Liberty's delays of its cells, each read at one typical point (input slew
#: 0.15 ns; load = fanout × (12.5 fF, a NAND2 input, + 1.26 fF of wire)) and averaged over
#: the cell's input arcs.  OpenSTA uses each cell's real slew and load, which is the
#: difference.
HAND_BAND = 0.30


@needs_sta
@pytest.mark.synth
def test_mac_path_agrees_with_a_hand_calculation_from_the_liberty(tmp_path_factory):
    r = _ppa(tmp_path_factory, rows=2, cols=2)
    mac = r["timing"]["mac_path"]
    assert mac["kind"] == "reg→reg"  # register to register through the multiply-add
    tables = _liberty_tables()
    total = 0.0
    for step in mac["steps"]:
        arcs = tables[step["cell"]][(step["pin"], "rise" if step["edge"] == "^" else "fall")]
        load = (step["fanout"] or 1) * (0.0125 + 0.00126)
        total += float(np.mean([_table_delay(t, load, 0.15) for t in arcs]))
    print(f"MAC path: OpenSTA {mac['arrival_ns']:.3f} ns, hand {total:.3f} ns over "
          f"{len(mac['steps'])} cells")
    assert len(mac["steps"]) > 20  # an 8×8 multiply and a 26-bit add, not a short path
    assert abs(mac["arrival_ns"] - total) <= HAND_BAND * total
    # the shortest period adds the capturing flip-flop's setup to the arrival
    assert 0 < mac["min_period_ns"] - mac["arrival_ns"] < 0.5


@needs_sta
@pytest.mark.synth
def test_16_bit_mac_is_slower_than_8_bit(tmp_path_factory):
    r8 = _ppa(tmp_path_factory, rows=2, cols=2)
    r16 = _ppa(tmp_path_factory, rows=2, cols=2, a_width=16, w_width=16)
    p8 = r8["timing"]["mac_path"]["min_period_ns"]
    p16 = r16["timing"]["mac_path"]["min_period_ns"]
    assert p16 > 1.1 * p8, (p8, p16)
    assert r16["timing"]["mac_path"]["fmax_mhz"] < r8["timing"]["mac_path"]["fmax_mhz"]


def _figures(node, path=""):
    """Every number below ``node`` with its key path."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _figures(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _figures(v, f"{path}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield path, node


@needs_sta
@pytest.mark.synth
def test_larger_array_draws_more_power_and_every_figure_is_positive(tmp_path_factory):
    small = _ppa(tmp_path_factory, rows=2, cols=2)
    large = _ppa(tmp_path_factory, rows=4, cols=4)
    ps, pl = small["power"]["total"]["total_mw"], large["power"]["total"]["total_mw"]
    assert pl > 2.5 * ps, (ps, pl)  # 4× the PEs
    for r in (small, large):
        pw, tm = r["power"], r["timing"]
        assert pw["activity"]["source"] == "default" and "DEFAULT" in pw["activity"]["note"]
        # units add up to the design, on both sides of the attribution
        assert sum(u["total_mw"] for u in pw["units"]) == pytest.approx(pw["total"]["total_mw"])
        assert sum(u["pct_of_design"] for u in pw["units"]) == pytest.approx(100.0)
        for name, value in _figures({"power": pw, "timing": tm}):
            assert math.isfinite(value), name
            if re.search(r"(_mw|_ns|_mhz|_v|_pf|_um|_per_um)$", name) and not re.search(
                    r"(slack_ns|added_ns|added_pct|without_ns)$", name):
                # a module that is not instantiated (a reference PE) draws power only on paper
                assert value > 0 or "instances" in name or ".modules[" in name and value == 0, \
                    (name, value)
        for m in pw["modules"]:
            if m["instances"]:
                assert m["per_instance"]["leakage_mw"] > 0 and m["per_instance"]["total_mw"] > 0
        assert tm["design"]["fmax_mhz"] > 0 and tm["design"]["min_period_ns"] > 0
    # the figures are kept for reuse (rtlgen infer --energy, the trade-off report)
    entry = json.loads(Path(large["ppa_cache"]).read_text())
    assert entry["power_total"] == large["power"]["total"]
    assert entry["activity_kind"] == "default"
    folder = tmp_path_factory.mktemp("ppa")
    energy_mod.store(large, folder=folder)
    cached = energy_mod.lookup(large["design"]["config"], folder=folder)
    assert cached is not None and cached["power_total"] == large["power"]["total"]
    assert energy_mod.lookup(small["design"]["config"], folder=folder) is None
    e = energy_mod.energy_per_inference(cached, cycles=5000, images=10)
    assert e.energy_uj == pytest.approx(pl * 1e-3 * 5000 / (cached["clock_mhz"] * 1e6) * 1e6)
    lines = headline(large)
    assert any(line.startswith("Fmax ") for line in lines)
    assert any(line.startswith("power ") and "DEFAULT activity" in line for line in lines)


@needs_sta
@pytest.mark.synth
def test_inside_pe_units_and_power_seed_rows(tmp_path_factory):
    r = _ppa(tmp_path_factory, rows=2, cols=2, bypass=True, afd=True)
    units = {u["unit"]: u for u in r["timing"]["units"]}
    byp = units["bypass"]
    assert byp["inside_pe"] and byp["reference_module"] != byp["module"]
    assert byp["added_ns"] == pytest.approx(byp["min_period_ns"] - byp["without_ns"], abs=1e-3)
    assert units["afd"]["ratio_to_mac"] > 0 and units["afd"]["fits_mac_cycle"] in (True, False)
    rows = [s for s in r["beside_the_seeds"] if s["seed"]]
    power_rows = [s for s in rows if s["seed"]["metric"] == "power"]
    assert {s["unit"] for s in power_rows} == {"bypass", "afd"}
    by_unit = {u["unit"]: u for u in r["power"]["units"]}
    for s in power_rows:
        den = s["seed"]["denominator"]
        assert s["project_pct"]["power"] == by_unit[s["unit"]][f"pct_of_{den}"]
    delay = next(s for s in rows if s["seed"]["metric"] == "delay")
    assert delay["project_pct"]["delay"] == byp["added_pct"]
    md = Path(r["files"]["markdown"]).read_text()
    assert "## Timing (OpenSTA)" in md and "## Power (OpenSTA)" in md
    assert "Technology gap" in md


# -- activity from a simulation ----------------------------------------------------------------

def _record(A, B):
    def make(cfg, d):
        from ftaccel.tb.activity import record

        return record(cfg, A, B, d / "waves")[0]
    return make


@needs_icarus
def test_activity_of_a_port_is_the_stimulus_toggle_rate(tmp_path, rng):
    from ftaccel.golden.schedule import build_program
    from ftaccel.synth.activity import read_waveform
    from ftaccel.synth.netlist import deduplicate
    from ftaccel.tb.activity import record

    cfg = AcceleratorConfig(rows=2, cols=2)
    A = rng.integers(-128, 128, (12, 4))
    B = rng.integers(-128, 128, (4, 2))
    wave, cycles = record(cfg, A, B, tmp_path / "waves")
    gen = generate(cfg, tmp_path / "rtl")
    text = gen.rtlil.read_text()
    dd = deduplicate(text, TOP_NAME, "rtlil")
    act = read_waveform(wave, dd, TOP_NAME, text, fmt="rtlil")
    program = build_program(cfg, A, B)
    assert act.cycles == pytest.approx(cycles, abs=2)
    top = act.modules[TOP_NAME]
    for port in ("in_valid", "load"):
        stim = np.asarray(program.inputs[port]).astype(np.int64)
        expected = np.count_nonzero(np.diff(stim)) / len(stim)
        # the waveform counts from the reset's release to the last edge: ±1 toggle
        assert top[port][0] == pytest.approx(expected, abs=1.5 / len(stim)), port
        assert top[port][1] == pytest.approx(stim.mean(), abs=2.5 / len(stim)), port
    assert act.describe()["source"] == "waveform"
    assert all(0 <= a <= 1 and 0 <= d <= 1 for per in act.modules.values()
               for a, d in per.values())


@needs_sta
@needs_icarus
@pytest.mark.synth
def test_a_zero_stream_draws_less_dynamic_power_than_a_random_one(tmp_path_factory):
    seed = 26
    print(f"operands seed {seed}")
    rng = np.random.default_rng(seed)
    A = rng.integers(-128, 128, (24, 4))
    B = rng.integers(-128, 128, (4, 2))
    rand = _ppa(tmp_path_factory, _record(A, B), tag="random", rows=2, cols=2)
    zero = _ppa(tmp_path_factory, _record(np.zeros_like(A), B), tag="zero", rows=2, cols=2)
    dz = zero["power"]["total"]["dynamic_mw"]
    dr = rand["power"]["total"]["dynamic_mw"]
    assert 0 < dz < 0.8 * dr, (dz, dr)
    for r in (rand, zero):
        assert r["power"]["activity"]["source"] == "waveform"
        assert r["power"]["activity"]["net_bits_annotated"] > 100
    # the PE carries the product: its share moves most
    pe = {r["power"]["activity"]["sha256"]: r["power"]["denominators"]["pe_mw"]
          for r in (rand, zero)}
    assert min(pe.values()) < max(pe.values())
    assert json.loads(json.dumps(rand["power"]))  # JSON-ready


@pytest.mark.skipif(not SEEDS_DIR.is_dir(), reason="seed texts not next to the repository")
def test_flow_mac_figures_are_printed_in_their_cited_section():
    from ftaccel.synth.seeds import FLOW_MAC_FIGURES, FLOW_MAC_SOURCE

    cited = section_text("Ozen 2023", FLOW_MAC_SOURCE[1])
    for (flow, group), values in FLOW_MAC_FIGURES.items():
        label = {"shortened": "Shortened", "superposition": "Superposition",
                 "twodim": "Two-Dim"}[flow]
        row = next(ln for ln in cited.splitlines() if ln.startswith(label) and (
            f"-{group}\t" in ln or (flow == "twodim" and f"x{int(group ** 0.5)}\t" in ln)))
        for v in values:
            assert re.search(rf"(?<![\d.]){re.escape(f'{v:g}')}0*(?![\d])", row), (flow, v)


@pytest.mark.verilator
@pytest.mark.slow
def test_verilator_waveform_gives_the_same_activity_as_icarus(tmp_path, rng):
    """The VCD of Verilator and the FST of Icarus give the same toggle counts."""
    from ftaccel.synth.activity import read_waveform
    from ftaccel.synth.netlist import deduplicate
    from ftaccel.tb.activity import record

    if shutil.which("iverilog") is None:
        pytest.skip("no Icarus to compare with")
    cfg = AcceleratorConfig(rows=2, cols=2)
    A = rng.integers(-128, 128, (10, 4))
    B = rng.integers(-128, 128, (4, 2))
    gen = generate(cfg, tmp_path / "rtl")
    text = gen.rtlil.read_text()
    dd = deduplicate(text, TOP_NAME, "rtlil")
    acts = {}
    for sim in ("icarus", "verilator"):
        wave, _ = record(cfg, A, B, tmp_path / sim / "waves", sim=sim)
        assert wave.suffix == (".fst" if sim == "icarus" else ".vcd")
        acts[sim] = read_waveform(wave, dd, TOP_NAME, text, fmt="rtlil")
    a, b = acts["icarus"], acts["verilator"]
    assert a.cycles == b.cycles and set(a.modules) == set(b.modules)
    pe = next(m for m in a.modules if m.startswith("pe_"))
    for key in ("psum_in[3]", "move_in[0]", "load"):
        assert a.modules[pe][key] == pytest.approx(b.modules[pe][key], abs=1e-9), key


@needs_sta
@pytest.mark.synth
def test_per_module_figures_agree_with_the_flattened_design(tmp_path_factory):
    """Per-module figures (each module alone, times its instances) match one flat netlist.

    Power within 10 % (the flat mapping optimises across module boundaries, and the default
    activity then enters at the design's ports only), the critical period within 10 %.
    """
    hier = _ppa(tmp_path_factory, rows=2, cols=2)
    d = tmp_path_factory.mktemp("flat")
    gen = generate(AcceleratorConfig(rows=2, cols=2), d / "rtl")
    flat = synthesize(gen.verilog, gen.top, d / "synth", flat=True, timing=True, power=True)
    ph, pf = hier["power"]["total"]["total_mw"], flat["power"]["total"]["total_mw"]
    th = hier["timing"]["design"]["min_period_ns"]
    tf = flat["timing"]["design"]["min_period_ns"]
    print(f"power hier {ph:.2f} / flat {pf:.2f} mW; period {th:.2f} / {tf:.2f} ns")
    assert abs(ph - pf) <= 0.10 * pf
    assert abs(th - tf) <= 0.10 * tf
    assert flat["power"]["units"] == [] and flat["timing"]["units"] == []
