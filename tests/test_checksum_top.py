"""Sanity-Check inside the composed accelerator: temporal and spatial + temporal (Ozen 2023 ch. 6).

* RTL against the golden cycle model, every port in every cycle, on Icarus and Verilator, for
  both temporal modes, tiled products, bias, other input units; results against plain numpy;
* the costs measured in simulation: +1 cycle of latency for the generator (+1 more for the
  sanity column), and N data vectors per N + 1 cycles in a pass;
* no false alarm on thousands of random fault-free products (cycle model);
* Table 6.1 measured on the cycle model by injection (stuck-at exhaustive, flips sampled,
  bias errors, 1–3 output errors, cancelling pairs): every guarantee of the table holds in
  exact mode; the residue mode's losses are the documented aliasing;
* a sample of the same faults replayed on the RTL gives the golden model's outputs;
* bad options give clear errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.array import cycle_count, latency, temporal_batch_max, temporal_stream_len
from ftaccel.golden.campaign import table_6_1_campaign, table_6_1_claims
from ftaccel.golden.output_stage import output_stage
from ftaccel.golden.schedule import assemble, build_program
from ftaccel.tb.accelerator import mismatches, rtl_matmul


def _cfg(**kw):
    return AcceleratorConfig(**{"dataflow": "ws", "max_k": 64, **kw})


CASES = [
    # checksum, mode, extra config, sim, batch
    ("temporal", "residue", {}, "icarus", 3),
    ("temporal", "exact", {"a_width": 16, "w_width": 16}, "icarus", None),
    ("both", "exact", {"median": 3}, "icarus", 2),
    ("both", "residue", {"afd": True, "bypass": True}, "icarus", 4),
    pytest.param("both", "exact", {}, "verilator", 3, marks=pytest.mark.verilator),
    pytest.param("temporal", "residue", {"fault_hooks": True}, "verilator", 1,
                 marks=pytest.mark.verilator),
]


@pytest.mark.parametrize(("checksum", "mode", "extra", "sim", "batch"), CASES)
def test_temporal_top_matches_golden_and_numpy(rng, checksum, mode, extra, sim, batch):
    cfg = _cfg(rows=3, cols=3, checksum=checksum, temporal_mode=mode, **extra)
    lo, hi = -(1 << (cfg.a_width - 1)), 1 << (cfg.a_width - 1)
    M, K, N = 7, 5, 4  # K- and N-tiled: sanity vectors chain through the loopback
    A = rng.integers(lo, hi, (M, K))
    B = rng.integers(lo, hi, (K, N))
    bias = rng.integers(-1000, 1000, N)
    filtered = cfg.afd or cfg.median
    run = rtl_matmul(cfg, A, B, bias=bias, relu=True, shift=3, sim=sim, temporal_batch=batch)
    bad = mismatches(run.recorded, run.golden)
    assert not bad, f"RTL differs from the golden model: {bad}"
    rec = run.recorded
    if not filtered:  # filters change the activations; the golden run covers them
        ref = A @ B + bias  # the bias enters through psum_in when checking
        assert np.array_equal(run.acc, ref)
        assert np.array_equal(run.q, output_stage(ref, 0, True, 3, cfg.a_width))
    assert rec["temporal__alarm"].max() == 0 and rec["temporal__overrun"].max() == 0
    if cfg.spatial:
        assert rec["checksum__alarm"].max() == 0
    nb = batch or temporal_batch_max(cfg)
    passes = 2 * 2  # ceil(K/R) × ceil(N/C)
    assert rec["temporal__checked"].sum() == passes * -(-M // nb)
    assert run.program.cycles == cycle_count(cfg, M, K, N, temporal_batch=batch)


@pytest.mark.parametrize("checksum", ["temporal", "both"])
def test_latency_and_throughput_measured_in_simulation(rng, checksum):
    """Latency: +1 cycle (generator), +1 more with the sanity column (Ozen 2023 §6.3.3).

    A pass of M vectors takes M + ceil(M/N) cycles at the ports: throughput N/(N+1) (Ozen 2023
    §6.3.3).
    """
    cfg = _cfg(rows=4, cols=4, checksum=checksum)
    plain = _cfg(rows=4, cols=4)
    M, nb = 12, 3
    A = rng.integers(-128, 128, (M, 4))
    B = rng.integers(-128, 128, (4, 4))
    run = rtl_matmul(cfg, A, B, temporal_batch=nb)
    base = rtl_matmul(plain, A, B)
    assert not mismatches(run.recorded, run.golden)

    def first_out(r):
        fed = np.flatnonzero(r.program.inputs["in_valid"])[0]
        return np.flatnonzero(r.recorded["out_valid"])[0] - fed

    added = first_out(run) - first_out(base)
    assert added == 1 + int(cfg.spatial) == latency(cfg) - latency(plain)
    out = np.flatnonzero(run.recorded["out_valid"])
    span = out[-1] - out[0] + 1  # cycles from the first to the last result of the pass
    assert len(out) == M and span == temporal_stream_len(M, nb) - 1  # no trailing sanity slot
    # the sanity vectors sit in the gaps: exactly one after every batch
    gaps = np.diff(out)
    assert list(gaps).count(2) == M // nb - 1 and set(gaps) <= {1, 2}
    print(f"{checksum}: +{added} cycle(s) latency; {M} vectors in {span + 1} cycles "
          f"(N = {nb}: N/(N+1) = {nb / (nb + 1):.2f})")


@pytest.mark.parametrize("mode", ["residue", "exact"])
def test_no_false_alarm_on_thousands_of_products(rng, mode):
    cfg = _cfg(rows=3, cols=3, checksum="both", temporal_mode=mode)
    alarms = 0
    for _ in range(1000):
        M, K, N = (int(x) for x in rng.integers(1, 7, 3))
        A = rng.integers(-128, 128, (M, K))
        B = rng.integers(-128, 128, (K, N))
        bias = rng.integers(-5000, 5000, N)
        batch = int(rng.integers(1, temporal_batch_max(cfg) + 1))
        rec = simulate(cfg, build_program(cfg, A, B, bias=bias, temporal_batch=batch))
        alarms += int(rec["checksum__alarm"].max()) + int(rec["temporal__alarm"].max())
    assert alarms == 0


@pytest.fixture(scope="module")
def campaigns():
    rng = np.random.default_rng(20261122)
    print("campaign seed 20261122")
    return {mode: table_6_1_campaign(
        _cfg(rows=3, cols=3, checksum="both", temporal_mode=mode, fault_hooks=True),
        rng, flips=150, combos=120) for mode in ("exact", "residue")}


def _rate(row, check):
    return None if row[check] is None else row[check]["detection_rate"]


def test_table_6_1_exact_mode_every_guarantee(campaigns):
    """Table 6.1 (Ozen 2023 §6.2.2–6.2.3), measured: exact mode keeps every guarantee."""
    rows = campaigns["exact"]["rows"]
    for key in ("input/flip", "input/stuck"):  # Lemma 1: input errors are invisible spatially
        assert _rate(rows[key], "spatial") == 0.0 and _rate(rows[key], "temporal") == 1.0
    assert _rate(rows["weight/stuck"], "spatial") == 1.0           # Lemma 2
    assert _rate(rows["weight/stuck"], "temporal") == 0.0          # weights are not covered
    for key in ("bias/one", "bias/word", "output/flip", "output/stuck", "output/x1",
                "output/x2", "output/x3", "output/x2-cancel", "stream/inner"):
        assert _rate(rows[key], "any") == 1.0, key                 # "both": up to 3 errors
        assert rows[key]["any"]["sdc"] == 0
    for key in ("bias/one", "output/flip", "output/x1"):           # single errors: each check
        assert _rate(rows[key], "spatial") == 1.0 and _rate(rows[key], "temporal") == 1.0
    assert _rate(rows["output/x2-cancel"], "spatial") == 0.0       # they do cancel spatially
    assert rows["sanity/all"]["any"]["sdc"] == 0                   # the checks' own faults
    # A stored bias word error adds (n+1)·delta to a lane's batch sum: with batches of n = 3
    # (M = 6) that is 4·2**b, which vanishes modulo 2**P for the top two bits b of each word.
    P = _cfg(max_k=64).acc_bits
    assert _rate(rows["bias/word"], "temporal") == pytest.approx(1 - 2 / P)


@pytest.fixture(scope="module", params=["is", "os"])
def other_dataflow_campaign(request):
    seed = 20261229 + ["is", "os"].index(request.param)
    print(f"campaign seed {seed}")
    cfg = _cfg(rows=3, cols=3, dataflow=request.param, checksum="both", temporal_mode="exact",
               fault_hooks=True)
    return cfg, table_6_1_campaign(cfg, np.random.default_rng(seed), flips=40, combos=30)


def test_table_6_1_on_is_and_os(other_dataflow_campaign):
    """Table 6.1 measured on IS and OS (exact mode), the checks named by what they sum.

    The *input* check (a sanity input: WS/OS temporal, the sanity row on OS; IS spatial, the
    sanity input column) catches input errors only, the *neuron* check (a sanity neuron: WS/OS
    spatial, IS temporal, in the weight stream) weight errors only (Lemmas 1–2); together up to
    three output errors, every bias error and every single output error; the checks' own PEs
    never cause a silent error.
    """
    cfg, res = other_dataflow_campaign
    rows = res["rows"]
    inp, neuron = ("spatial", "temporal") if cfg.dataflow == "is" else ("temporal", "spatial")
    assert table_6_1_claims(cfg.dataflow)["input"][inp] == 1
    assert table_6_1_claims(cfg.dataflow)["weight"][neuron] == 1
    for key in ("input/flip", "input/stuck"):
        assert _rate(rows[key], inp) == 1.0, key
    assert _rate(rows["input/stuck"], neuron) == 0.0
    assert _rate(rows["weight/stuck"], neuron) == 1.0
    assert _rate(rows["weight/stuck"], inp) == 0.0
    for key in ("bias/one", "bias/word", "output/flip", "output/stuck", "output/x1",
                "output/x2", "output/x3", "output/x2-cancel", "stream/inner"):
        assert _rate(rows[key], "any") == 1.0, key
        assert rows[key]["any"]["sdc"] == 0
    for key in ("bias/one", "output/flip", "output/x1"):
        assert _rate(rows[key], "spatial") == 1.0 and _rate(rows[key], "temporal") == 1.0, key
    assert _rate(rows["output/x2-cancel"], "spatial") == 0.0  # they cancel in the summed row
    assert rows["sanity/all"]["any"]["sdc"] == 0
    assert rows["sanity/all"]["any"]["false_alarm"] > 0  # the sanity PEs are really hit


@pytest.mark.parametrize("dataflow", ["is", "os"])
def test_output_error_faults_corrupt_exactly_their_output(rng, dataflow):
    """Each flip of :func:`output_error_faults` changes its own result only, by 2**bit."""
    from ftaccel.golden.campaign import output_error_faults, result_positions

    cfg = _cfg(rows=3, cols=3, dataflow=dataflow, checksum="both", fault_hooks=True)
    A = rng.integers(-128, 128, (5, 3))
    B = rng.integers(-128, 128, (3, 4))
    program = build_program(cfg, A, B)
    clean = assemble(program, simulate(cfg, program), "acc_out")
    where = {(int(program.out_cycle[m, n]), int(program.out_lane[m, n])): (m, n)
             for m in range(5) for n in range(4)}
    for pos in result_positions(program):
        bit = int(rng.integers(cfg.acc_bits - 1))
        (fault,) = output_error_faults(cfg, [pos], [bit], program, K=3)
        got = assemble(program, simulate(cfg, program, fault), "acc_out")
        diff = np.argwhere(got != clean)
        assert [tuple(d) for d in diff] == [where[pos]], (pos, fault)
        assert abs(int(got[where[pos]]) - int(clean[where[pos]])) == 1 << bit


def test_table_6_1_residue_mode_loses_what_is_documented(campaigns):
    """Residue mode (sanity vector wrapped to a_width bits).

    The temporal check holds modulo 2**a_width only, so errors that are multiples of 2**8 escape it;
    spatial is unchanged.
    """
    rows = campaigns["residue"]["rows"]
    # An input error delta reaches lane u as delta·W[r, u]: it escapes when that is a
    # multiple of 2**8 in every lane (e.g. the sign bit with even weights).
    assert 0.75 <= _rate(rows["input/flip"], "temporal") <= 1.0
    assert _rate(rows["weight/stuck"], "spatial") == 1.0
    for key in ("output/flip", "output/x1"):
        assert _rate(rows[key], "spatial") == 1.0
        assert _rate(rows[key], "temporal") < 0.8         # high partial-sum bits alias
    # two errors that cancel in a row escape both checks when their bit is >= a_width
    cancel = rows["output/x2-cancel"]["any"]
    assert cancel["sdc"] > 0 and cancel["detected"] > 0


def test_rtl_replays_campaign_faults(rng):
    """A sample of the campaign's faults on the RTL: same outputs, alarms included."""
    from ftaccel.golden.faults import Fault

    cfg = _cfg(rows=3, cols=3, checksum="both", temporal_mode="exact", fault_hooks=True)
    A = rng.integers(-128, 128, (6, 3))
    B = rng.integers(-128, 128, (3, 3))
    B[2, 1] &= ~8  # so that weight bit 3 stuck at 1 changes the weight
    faults = [Fault(0, 0, "act", 5, "flip", 9), Fault(1, 2, "psum", 20, "flip", 12),
              Fault(2, 1, "weight", 3, "sa1"), Fault(0, 0, "act", 10, "sa0"),
              Fault(2, 3, "psum", 4, "sa1")]
    seen = set()
    for fault in faults:
        run = rtl_matmul(cfg, A, B, fault=fault, temporal_batch=3)
        assert not mismatches(run.recorded, run.golden), fault
        seen.add((int(run.recorded["checksum__alarm"].max()),
                  int(run.recorded["temporal__alarm"].max())))
    assert (0, 1) in seen and (1, 0) in seen  # input error: temporal; weight error: spatial


def test_bad_options():
    # every dataflow takes the checksums; one combination remains refused (issue 29)
    for dataflow in ("is", "os"):
        assert AcceleratorConfig(dataflow=dataflow, checksum="both").checksum == "both"
    with pytest.raises(ConfigError, match="'none' with bypass on dataflow 'os'"):
        AcceleratorConfig(dataflow="os", checksum="temporal", bypass=True)
    with pytest.raises(ConfigError, match="temporal_mode"):
        AcceleratorConfig(checksum="temporal", temporal_mode="wide")
    with pytest.raises(ConfigError, match="temporal_batch_bits"):
        AcceleratorConfig(checksum="temporal", temporal_batch_bits=0)
    with pytest.raises(ConfigError, match="acc_width"):
        AcceleratorConfig(checksum="temporal", temporal_mode="exact", acc_width=17)
    cfg = _cfg(rows=2, cols=2, checksum="temporal", temporal_batch_bits=2)
    with pytest.raises(ConfigError, match="invalid temporal batch = 4: an integer from 1 to 3"):
        build_program(cfg, np.ones((2, 2), int), np.ones((2, 2), int), temporal_batch=4)
    with pytest.raises(ConfigError, match="'temporal' or 'both' to set a temporal batch"):
        build_program(cfg.replace(checksum="none"), np.ones((2, 2), int), np.ones((2, 2), int),
                      temporal_batch=2)  # a batch for a checksum that is not built
    assert cfg.replace(temporal_mode="exact").stream_width == 8 + 2
    assert AcceleratorConfig.from_json(cfg.to_json()) == cfg
