"""The fast fault model against the cycle model and the RTL.

Also the network-level error models against independent references.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.fault_models import (
    PROFILE_MODES,
    FastFaultEngine,
    TransientFault,
    bit_errors,
    faulty_product,
    pe_profile,
    profile_errors,
    profile_faults,
    sabotage_array,
)
from ftaccel.golden.faults import MODES, REGISTERS, Fault, inject_bit_errors, sabotage
from ftaccel.golden.network import CycleEngine, LayerOptions, run, units_matrix
from ftaccel.golden.schedule import assemble, build_program

SEED = 20261201

#: Every dataflow and every unit the fast model covers (LCU: a later issue).
CONFIGS = {
    "ws": {"dataflow": "ws"},
    "is": {"dataflow": "is"},
    "os": {"dataflow": "os"},
    "ws-single": {"dataflow": "ws", "double_buffer": False},
    "is-single": {"dataflow": "is", "double_buffer": False},
    "ws-single-spatial": {"dataflow": "ws", "double_buffer": False, "checksum": "spatial"},
    "ws-bypass": {"dataflow": "ws", "bypass": True},
    "is-bypass": {"dataflow": "is", "bypass": True},
    "os-bypass": {"dataflow": "os", "bypass": True},
    "ws-afd-median": {"dataflow": "ws", "afd": True, "median": 5},
    "ws-spatial": {"dataflow": "ws", "checksum": "spatial"},
    "ws-temporal": {"dataflow": "ws", "checksum": "temporal", "temporal_batch_bits": 2},
    "ws-both-exact": {"dataflow": "ws", "checksum": "both", "temporal_batch_bits": 2,
                      "temporal_mode": "exact"},
    # the fixed-point multiplier lengthens the output stage (chained K-tiles wait longer)
    "ws-both-requant": {"dataflow": "ws", "checksum": "both", "temporal_batch_bits": 2,
                        "requant": "multiplier"},
    "os-requant": {"dataflow": "os", "requant": "multiplier"},
    # every protection on every dataflow (issue 29)
    "is-afd-median": {"dataflow": "is", "afd": True, "median": 5},
    "os-afd-median": {"dataflow": "os", "afd": True, "median": 3},
    "is-spatial": {"dataflow": "is", "checksum": "spatial"},
    "is-temporal": {"dataflow": "is", "checksum": "temporal", "temporal_batch_bits": 2},
    "is-both-exact": {"dataflow": "is", "checksum": "both", "temporal_batch_bits": 2,
                      "temporal_mode": "exact"},
    "is-single-both-bypass": {"dataflow": "is", "checksum": "both", "double_buffer": False,
                              "bypass": True, "temporal_batch_bits": 2},
    "os-spatial": {"dataflow": "os", "checksum": "spatial"},
    "os-temporal": {"dataflow": "os", "checksum": "temporal"},
    "os-both-exact-median": {"dataflow": "os", "checksum": "both", "temporal_mode": "exact",
                             "median": 3},
    "os-both-requant": {"dataflow": "os", "checksum": "both", "requant": "multiplier"},
}


def _wrapped(x, bits):
    half = 1 << (bits - 1)
    return (np.asarray(x, np.int64) + half) % (2 * half) - half


def _reference(cfg, program, fault):
    """acc_out and alarm counts as the cycle model records them."""
    rec = simulate(cfg, program, fault)
    alarms = {}
    if "checksum__error" in rec:
        alarms["spatial"] = int(rec["checksum__error"].sum())
    if "temporal__error" in rec:
        alarms["temporal"] = int(rec["temporal__error"].sum())
    return assemble(program, rec, "acc_out"), alarms


def _fast(cfg, A, B, bias, fault=None, errors=None, units=None):
    units = units or {}
    Ax = units_matrix(cfg, A, units)
    acc, alarms = faulty_product(cfg, Ax, B, bias, fault, errors=errors,
                                 bypass_map=units.get("bypass_map"),
                                 temporal_batch=units.get("temporal_batch"))
    if not cfg.bias_in_psum:  # acc_out shows the array's sum; the bias is added after it
        acc = acc - bias
    return _wrapped(acc, cfg.acc_bits), alarms


def _case(rng, cfg):
    M, K, N = (int(rng.integers(1, 8)), int(rng.integers(1, 3 * cfg.rows + 2)),
               int(rng.integers(1, 2 * cfg.cols + 2)))
    if cfg.median:  # at least one full chunk: a median over zero padding is mostly zero
        K = max(K, cfg.rows)
    A = rng.integers(-128, 128, (M, K))
    B = rng.integers(-128, 128, (K, N))
    bias = rng.integers(-2000, 2000, N)
    units = {}
    if cfg.bypass:
        units["bypass_map"] = rng.random((cfg.rows, cfg.cols)) < 0.3
    if cfg.afd:
        # two gates, γ = 4: random activations keep most values, so faults stay visible
        units["afd"] = {"shift": 2, "gates": 2}
    if cfg.temporal and cfg.dataflow != "os":  # (OS: the batch is a tile's rows)
        units["temporal_batch"] = int(rng.integers(1, 4))
    return A, B, bias, units


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fast_model_equals_cycle_model_for_every_site_and_mode(name):
    """A seeded random sample.

    For each register and mode, faults at random PEs (sanity column included), bits and cycles
    (flips within the product's cycles, so that most hit a value in flight), on random products of
    random shapes (tiles in K and N).
    """
    seed = SEED + sorted(CONFIGS).index(name)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    changed = compared = 0
    for _ in range(4):
        # a median window no wider than a chunk (R lanes), so that faults have data to hit
        rows = max(int(rng.integers(2, 5)), CONFIGS[name].get("median", 0))
        cfg = AcceleratorConfig(rows=rows, cols=int(rng.integers(2, 5)), max_k=64,
                                **CONFIGS[name])
        A, B, bias, units = _case(rng, cfg)
        program = build_program(cfg, A, B, bias=bias, **units)
        clean, _ = _reference(cfg, program, None)
        for register in REGISTERS:
            for mode in MODES:
                for _ in range(3):
                    col, row = int(rng.integers(cfg.array_cols)), int(rng.integers(cfg.array_rows))
                    width = cfg.register_width(register, col, row)
                    f = Fault(row, col, register,
                              int(rng.integers(width)), mode, int(rng.integers(program.cycles)))
                    ref, ref_alarms = _reference(cfg, program, f)
                    acc, alarms = _fast(cfg, A, B, bias, f, units=units)
                    assert np.array_equal(acc, ref), (name, cfg.name(), f)
                    assert alarms == ref_alarms, (name, cfg.name(), f)
                    compared += 1
                    changed += not np.array_equal(ref, clean) or any(ref_alarms.values())
    # the sample must exercise real corruption, not only masked faults
    assert changed >= compared // 4, (changed, compared)


@pytest.mark.parametrize(("dataflow", "checksum"), [("ws", "none"), ("is", "none"),
                                                    ("os", "none"), ("is", "both"),
                                                    ("os", "both")])
def test_profile_errors_equal_one_cycle_faults_on_the_cycle_model(dataflow, checksum):
    seed = SEED + 100 + ["ws", "is", "os"].index(dataflow) + (10 if checksum != "none" else 0)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for _ in range(6):
        cfg = AcceleratorConfig(rows=3, cols=int(rng.integers(2, 5)), dataflow=dataflow,
                                max_k=64, checksum=checksum)
        A, B, bias, units = _case(rng, cfg)
        mode = str(rng.choice(list(PROFILE_MODES)))
        errors = profile_errors(cfg, pe_profile(cfg.rows, cfg.cols, 0.3, rng), *A.shape,
                                B.shape[1], mode, rng)
        assert len(errors) > 0
        program = build_program(cfg, A, B, bias=bias, **units)
        ref, ref_alarms = _reference(cfg, program, profile_faults(
            cfg, errors, *A.shape, B.shape[1], units.get("temporal_batch")))
        acc, alarms = _fast(cfg, A, B, bias, errors=errors, units=units)
        assert np.array_equal(acc, ref)
        assert alarms == ref_alarms


def test_transient_fault_acts_in_one_cycle_only():
    f = TransientFault(0, 0, "psum", 3, "sa1", 7)
    assert [f.active(c) for c in (6, 7, 8)] == [False, True, False]
    with pytest.raises(ValueError, match="RTL"):
        f.controls()


def test_sabotage_array_equals_the_scalar_saboteur():
    rng = np.random.default_rng(SEED)
    for width in (4, 8, 26):
        v = rng.integers(-(1 << (width - 1)), 1 << (width - 1), 50)
        for mode in MODES:
            for bit in (0, width - 1, width + 2):
                got = sabotage_array(v, width, bit, mode)
                assert got.tolist() == [sabotage(int(x), width, bit, mode) for x in v]


def _algorithm_6_1(x, rate, width, rng, scale=1.0):
    """Algorithm 6.1 one location at a time (the reference for the vectorised injector)."""
    out = np.array(x, dtype=np.float64 if scale != 1.0 else np.int64, copy=True)
    flat = out.reshape(-1)
    count = int(round(rate * flat.size))
    if count == 0:
        return out
    where = rng.choice(flat.size, size=count, replace=False)
    bits = rng.integers(0, width, size=count)
    for loc, i in zip(where, bits, strict=True):
        n = flat[loc]
        if i == width - 1:  # negation; −2**(w−1) saturates (the register cannot hold +2**(w−1))
            flat[loc] = min(-n, ((1 << (width - 1)) - 1) * scale)
        else:
            q = int(round(float(n) / scale)) & ((1 << width) - 1)
            flat[loc] = n + scale * (1 << i) if not (q >> i) & 1 else n - scale * (1 << i)
    return out


def test_bit_errors_follow_algorithm_6_1():
    """One injector under both names; same draws and values as the rule applied one by one."""
    assert bit_errors is inject_bit_errors
    for seed in range(5):
        x = np.random.default_rng(seed).integers(-128, 128, (20, 30))
        got = inject_bit_errors(x, 0.05, 8, np.random.default_rng(100 + seed))
        ref = _algorithm_6_1(x, 0.05, 8, np.random.default_rng(100 + seed))
        assert got.dtype == np.int64 and np.array_equal(got, ref)
        diff = np.flatnonzero(got != x)
        assert 0 < len(diff) <= round(0.05 * x.size)  # distinct locations, at most one each
        for i in diff:  # each change is a negation or ±2**i with i the flipped bit
            a, b = int(x.reshape(-1)[i]), int(got.reshape(-1)[i])
            d = abs(b - a)
            assert b in (-a, 127) or (d & (d - 1) == 0 and ((a & 0xFF) ^ (b & 0xFF)) == d)
        # real values q × scale: the same errors, scaled
        scaled = inject_bit_errors(x * 0.25, 0.05, 8, np.random.default_rng(100 + seed),
                                   scale=0.25)
        assert scaled.dtype == np.float64 and np.array_equal(scaled, got * 0.25)
        assert np.array_equal(scaled, _algorithm_6_1(x * 0.25, 0.05, 8,
                                                     np.random.default_rng(100 + seed), 0.25))
    # −128 negated saturates (the register cannot hold +128)
    g = bit_errors(np.full(10, -128), 1.0, 8, np.random.default_rng(0))
    assert g.max() <= 127 and g.min() >= -128


@pytest.fixture(scope="module")
def mlp():
    from ftaccel.app.network import Network

    return Network.builtin("digits-mlp").model


@pytest.mark.parametrize("name", ["ws-both-exact", "is", "os-bypass", "ws-afd-median"])
def test_fast_engine_runs_a_faulty_network_like_the_cycle_engine(mlp, name):
    """Whole network, the fault in one layer, resumed from the recorded clean activations.

    Resumed on the fast engine; logits and alarms equal the cycle engine's from layer 0.
    """
    from ftaccel.app.datasets import digits

    seed = SEED + 200 + sorted(CONFIGS).index(name)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = AcceleratorConfig(rows=4, cols=4, max_k=64, **CONFIGS[name])
    x = mlp.quantize_input(digits("test").images[:3])
    units = {"temporal_batch": 2} if cfg.temporal else {}
    if cfg.bypass:
        units["bypass_map"] = rng.random((4, 4)) < 0.2
    fast = FastFaultEngine(cfg)
    clean = run(mlp, x, fast, units=units, record=True)
    for _ in range(3):
        layer = int(rng.integers(3))
        register = str(rng.choice(REGISTERS))
        col = int(rng.integers(cfg.array_cols))
        f = Fault(int(rng.integers(4)), col, register,
                  int(rng.integers(cfg.register_width(register, col))),
                  str(rng.choice(MODES)), int(rng.integers(400)))
        opts = {layer: LayerOptions(fault=f)}
        ref = run(mlp, x, CycleEngine(cfg.replace(fault_hooks=True)), units=units, options=opts)
        start_x = x if layer == 0 else clean.outputs[layer - 1]
        got = run(mlp, start_x, fast, units=units, options=opts, start=layer)
        assert np.array_equal(got.logits, ref.logits), f
        assert [st.alarms for st in got.layers] == [st.alarms for st in ref.layers[layer:]]


@pytest.mark.slow
@pytest.mark.parametrize("name,changes", [
    ("ws-both-bypass", {"dataflow": "ws", "checksum": "both", "temporal_batch_bits": 2,
                        "bypass": True}),
    ("os", {"dataflow": "os"}),
])
def test_fast_engine_equals_the_rtl_on_a_faulty_network(mlp, name, changes):
    """A smaller sample on the RTL (4×4 array with fault hooks, 2 images of digits-mlp).

    Stuck-at faults in every layer and flips while a register holds a layer's data.
    """
    from ftaccel.app.datasets import digits
    from ftaccel.app.netcampaign import flip_cycle, layer_dims
    from ftaccel.tb.accelerator import RTLEngine

    seed = SEED + 300 + (name == "os")
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = AcceleratorConfig(rows=4, cols=4, max_k=64, fault_hooks=True, **changes)
    x = mlp.quantize_input(digits("test").images[:2])
    units = {"temporal_batch": 2} if cfg.temporal else {}
    if cfg.bypass:
        units["bypass_map"] = rng.random((4, 4)) < 0.2
    rtl = RTLEngine(cfg)
    dims = layer_dims(mlp, len(x))
    for register, mode in (("weight", "sa1"), ("psum", "flip"), ("act", "flip"),
                           ("psum", "sa0")):
        r, c = int(rng.integers(4)), int(rng.integers(4))
        bit = int(rng.integers(cfg.register_width(register, c)))
        if mode == "flip":
            li, M, K, N = dims[int(rng.integers(len(dims)))]
            cyc = flip_cycle(cfg, M, K, N, register, r, c, 0, int(rng.integers(2)),
                             units.get("temporal_batch"))
            opts = {li: LayerOptions(fault=Fault(r, c, register, bit, mode, cyc))}
        else:
            f = Fault(r, c, register, bit, mode)
            opts = {d[0]: LayerOptions(fault=f) for d in dims}
        ref = run(mlp, x, rtl, units=units, options=opts)
        got = run(mlp, x, FastFaultEngine(cfg), units=units, options=opts)
        assert np.array_equal(got.logits, ref.logits), opts
        assert [st.alarms for st in got.layers] == [st.alarms for st in ref.layers]
