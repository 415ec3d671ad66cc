"""Every protection on every dataflow (issue 29): the units on the IS and OS tops.

For each unit × dataflow, on small arrays and Icarus:

* the RTL equals the golden cycle model on every port in every cycle (:func:`mismatches`);
* the result equals plain numpy written here (the filters as each R-lane chunk of a row of A,
  zero-padded, then ``@ B``; the checksums leave the product alone) and the cycle count the
  formula (:func:`golden.array.cycle_count`);
* the faults a unit exists for: activation spikes that the windowed AFD / median remove, PE
  faults (fault hooks, sanity row and column included) that the checksums flag, with no alarm
  when fault-free.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.array import cycle_count
from ftaccel.golden.faults import Fault
from ftaccel.tb.accelerator import mismatches, rtl_matmul

SEED = 20261229


def _chunks(A, R):
    """Rows of ``A`` cut into R-lane chunks, the last zero-padded: [M, n_chunks, R]."""
    M, K = A.shape
    nk = -(-K // R)
    x = np.zeros((M, nk * R), dtype=np.int64)
    x[:, :K] = A
    return x.reshape(M, nk, R)


def _unchunk(x, K):
    return x.reshape(x.shape[0], -1)[:, :K]


def _np_median(x, window):
    """Eq. 8.3 over the last axis with ``window // 2`` zeros at both ends, by ``np.median``."""
    h = window // 2
    p = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(h, h)])
    win = np.lib.stride_tricks.sliding_window_view(p, window, axis=-1)
    return np.median(win, axis=-1).astype(np.int64)


def _np_afd_two_gates(x, width, shift, clip):
    """Eq. 8.2 with neighbours wrapping round the chunk; γ = 2**shift (shift ≥ 0) saturated."""
    mag = np.abs(x)
    t_next = np.minimum(np.roll(mag, -1, axis=-1) << shift, (1 << width) - 1)
    t_prev = np.minimum(np.roll(mag, 1, axis=-1) << shift, (1 << width) - 1)
    bad = (mag > t_next) & (mag > t_prev)
    repl = np.sign(x) * np.maximum(t_next, t_prev) if clip else 0
    return np.where(bad, repl, x)


def _check(cfg, run, A, B, bias, batch=None):
    bad = mismatches(run.recorded, run.golden)
    assert not bad, f"RTL differs from the golden model (port, cycle, lane, rtl, golden): {bad}"
    assert run.program.cycles == cycle_count(cfg, *A.shape, B.shape[1], temporal_batch=batch)


FILTERS = [
    # dataflow, config, afd control (None: no AFD)
    ("is", {"afd": True}, {"shift": 1, "gates": 2, "mode": 0, "enable": 1}),
    ("os", {"afd": True}, {"shift": 1, "gates": 2, "mode": 1, "enable": 1}),
    ("is", {"median": 3}, None),
    ("os", {"median": 5, "median_variant": "shared"}, None),
    ("is", {"median": 5, "median_variant": "shared", "double_buffer": False}, None),
    ("os", {"afd": True, "median": 3, "requant": "multiplier"},
     {"shift": 2, "gates": 2, "mode": 1, "enable": 1}),
    ("is", {"afd": True, "median": 3, "checksum": "both", "temporal_batch_bits": 2},
     {"shift": 2, "gates": 2, "mode": 0, "enable": 1}),
]


@pytest.mark.parametrize(("dataflow", "extra", "afd"), FILTERS)
def test_windowed_filters_remove_spikes_on_is_and_os(dataflow, extra, afd):
    """AFD and median with the window built in time equal the chunk filter of WS."""
    seed = SEED + FILTERS.index((dataflow, extra, afd))
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = AcceleratorConfig(rows=4, cols=3, dataflow=dataflow, max_k=64, **extra)
    M, K, N = 5, 10, 4  # two K-tiles (the second short), two N-tiles
    A = rng.integers(-6, 7, (M, K))
    spikes = [(1, 2, 100), (3, 9, -128), (4, 5, 90)]  # large bit flips on single activations
    for m, k, v in spikes:
        A[m, k] = v
    B = rng.integers(-128, 128, (K, N))
    bias = rng.integers(-500, 500, N)
    units = {"afd": afd} if afd else {}
    run = rtl_matmul(cfg, A, B, bias=bias, **units)
    _check(cfg, run, A, B, bias)
    x = _chunks(A, cfg.rows)
    if afd:
        x = _np_afd_two_gates(x, cfg.a_width, afd["shift"], afd["mode"] == 1)
    if cfg.median:
        x = _np_median(x, cfg.median)
    cleaned = _unchunk(x, K)
    for m, k, v in spikes:
        assert abs(cleaned[m, k]) < abs(v) // 4, (m, k, cleaned[m, k])
    ref = cleaned @ B
    assert np.array_equal(run.acc, ref + bias if cfg.bias_in_psum else ref)
    if cfg.checksum != "none":
        assert max(run.alarms.values()) == 0
    # off: the filters pass the activations unchanged
    off_units = {"afd": {**afd, "enable": 0}} if afd else {}
    if cfg.median:
        off_units["median_enable"] = False
    off = rtl_matmul(cfg, A, B, bias=bias, **off_units)
    assert not mismatches(off.recorded, off.golden)
    assert np.array_equal(off.acc, A @ B + bias if cfg.bias_in_psum else A @ B)


CHECKSUMS = [
    # dataflow, config, temporal batch, faults (row, col, register, bit, mode, cycle or None)
    ("is", {"checksum": "spatial"}, None,
     [(1, 1, "psum", 6, "sa1", None), (0, 3, "weight", 2, "sa1", None)]),
    ("is", {"checksum": "temporal", "temporal_batch_bits": 2}, 2,
     [(2, 0, "psum", 5, "sa0", None), (1, 2, "sum", 3, "flip", 9)]),  # (residue: bit < 8)
    ("is", {"checksum": "both", "temporal_mode": "exact", "temporal_batch_bits": 2,
            "double_buffer": False}, 3,
     [(0, 2, "product", 4, "sa1", None), (2, 3, "psum", 3, "sa0", None)]),
    ("os", {"checksum": "spatial"}, None,
     [(1, 1, "psum", 6, "sa1", None), (2, 3, "weight", 3, "flip", 8)]),
    ("os", {"checksum": "temporal"}, None,
     [(0, 1, "act", 4, "sa1", None), (3, 2, "sum", 7, "flip", 10)]),
    ("os", {"checksum": "both", "temporal_mode": "exact", "median": 3}, None,
     [(2, 0, "product", 5, "sa0", None), (3, 3, "psum", 2, "sa1", None)]),
]


@pytest.mark.parametrize(("dataflow", "extra", "batch", "faults"), CHECKSUMS)
def test_checksums_flag_pe_faults_on_is_and_os(dataflow, extra, batch, faults):
    """Sanity-Check on IS and OS: exact fault-free, every corrupting fault here is flagged.

    Row ``rows`` is the OS sanity row, column ``cols`` the sanity column (IS: the sanity input
    column, OS: the sanity neuron column); faults there must be caught too.  The faults are
    ones the checksum's guarantee covers (Ozen 2023 Table 6.1): the temporal checksum is linear in
    the streamed operand, so an error in IS's stationary inputs (``act``) is the spatial
    checksum's to catch, as WS's stationary weights are.
    """
    seed = SEED + 100 + CHECKSUMS.index((dataflow, extra, batch, faults))
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = AcceleratorConfig(rows=3, cols=3, dataflow=dataflow, max_k=64, fault_hooks=True,
                            **extra)
    M, K, N = 5, 4, 5  # K- and N-tiled (and M-tiled on OS)
    A = rng.integers(-128, 128, (M, K))
    B = rng.integers(-128, 128, (K, N))
    bias = rng.integers(-1000, 1000, N)
    clean = rtl_matmul(cfg, A, B, bias=bias, temporal_batch=batch)
    _check(cfg, clean, A, B, bias, batch)
    filtered = _unchunk(_np_median(_chunks(A, cfg.rows), cfg.median), K) if cfg.median else A
    ref = filtered @ B
    assert np.array_equal(clean.acc, ref + bias if cfg.bias_in_psum else ref)
    assert clean.alarms and max(clean.alarms.values()) == 0
    for row, col, register, bit, mode, cycle in faults:
        assert row < cfg.array_rows and col < cfg.array_cols
        fault = Fault(row, col, register, bit, mode, cycle or 0)
        run = rtl_matmul(cfg, A, B, bias=bias, temporal_batch=batch, fault=fault)
        _check(cfg, run, A, B, bias, batch)
        # a real error in the data, or one in a sanity PE, and flagged either way
        corrupted = not np.array_equal(run.acc, clean.acc)
        assert corrupted or row == cfg.rows or col == cfg.cols, fault
        assert max(run.alarms.values()) > 0, (fault, run.alarms)


CAMPAIGN = """
[campaign]
name = "fig610-{dataflow}"
seed = {seed}
chunk = 8

[network]
model = "digits-mlp"

[data]
images = 24

[accelerator]
rows = 4
cols = 4
dataflow = "{dataflow}"

[[protections]]
kind = "none"

[[protections]]
kind = "sanity"
name = "sanity"
checksum = "both"
{batch}
[[protections]]
kind = "median"
window = 3

[faults]
model = "register"
modes = ["sa0", "sa1", "flip"]

[sample]
method = "statistical"
margin = 0.15
confidence = 0.9
"""


@pytest.mark.slow  # about 30–60 s each (cycle-model re-runs of whole networks)
@pytest.mark.parametrize("dataflow", ["is", "os"])
def test_campaign_fig_6_10_on_is_and_os(tmp_path, dataflow):
    """Ozen 2023 Fig. 6.10 on IS and OS: every error-caused misprediction detected, no false alarm.

    A register-fault campaign (fast fault model) with Sanity-Check both; the fault-free run of
    every protection raises no alarm (cycle model), and a few traced faults re-run on the
    cycle model give the campaign's outcome.
    """
    import json

    from ftaccel.app.campaign import build_context, load_spec, run_campaign
    from ftaccel.golden.network import CycleEngine, LayerOptions, run

    seed = SEED + 200 + ["is", "os"].index(dataflow)
    print(f"seed {seed}")
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(CAMPAIGN.format(
        dataflow=dataflow, seed=seed,
        batch="temporal_batch = 3\n" if dataflow == "is" else ""))
    run_campaign(spec_path, tmp_path / "out", workers=0, progress=False)
    data = json.loads((tmp_path / "out" / "campaign.json").read_text())
    sanity = data["protections"]["sanity"]
    cov = sanity["misprediction_coverage"]
    print(f"{dataflow}: {cov['detected']}/{cov['faults']} error-caused mispredictions detected")
    assert cov["faults"] > 0 and cov["detected"] == cov["faults"], cov
    assert sanity["outcomes"]["critical"] == 0 and sanity["outcomes"]["sdc"] == 0
    ctx = build_context(load_spec(spec_path))
    for prot in ctx.protections:  # no false alarm: the fault-free networks, cycle by cycle
        c = ctx.clean[prot.name]
        res = run(ctx.model, ctx.x, CycleEngine(c.cfg), units=dict(c.units),
                  options={i: LayerOptions(units=u)
                           for i, u in ctx.layer_units[prot.name].items()})
        assert sum(sum(st.alarms.values()) for st in res.layers) == 0, prot.name
        assert np.array_equal(res.logits, c.logits), prot.name
    with (tmp_path / "out" / "trace.csv").open() as fh:
        import csv

        rows = [r for r in csv.DictReader(fh) if r["protection"] == "sanity"]
    for r in rows[:2]:  # the fast model's outcome, again on the cycle model
        c = ctx.clean["sanity"]
        stuck = r["mode"] != "flip"
        f = Fault(int(r["pe_row"]), int(r["pe_col"]), r["register"], int(r["bit"]), r["mode"],
                  0 if stuck else int(r["cycle"]))
        layers = [i for i in ctx.products if stuck or ctx.model.layers[i].name == r["layer"]]
        opts = {i: LayerOptions(fault=f, units=ctx.layer_units["sanity"].get(i, {}))
                for i in layers}
        res = run(ctx.model, ctx.x, CycleEngine(c.cfg.replace(fault_hooks=True)),
                  units=dict(c.units), options=opts)
        alarms = sum(sum(st.alarms.values()) for st in res.layers)
        changed = bool((res.logits != c.logits).any())
        want = "detected" if alarms else ("masked" if not changed else "other")
        assert r["outcome"] == want, r


def test_campaign_refuses_a_temporal_batch_on_os(tmp_path):
    """OS's temporal batch is a tile's R rows: a spec that sets one is refused, naming it."""
    from ftaccel.app.campaign import CampaignError, load_spec

    spec = tmp_path / "spec.toml"
    spec.write_text(CAMPAIGN.format(dataflow="os", seed=1, batch="temporal_batch = 3\n"))
    with pytest.raises(CampaignError, match=r"protections\[1\].*temporal_batch.*dataflow 'os'"):
        load_spec(spec)
    spec.write_text(CAMPAIGN.format(dataflow="is", seed=1, batch="temporal_batch = 3\n"))
    assert load_spec(spec)["protections"][1]["temporal_batch"] == 3
