"""HAS (app/has.py) against the fast fault model, and the GA's properties.

The vectorised profile shortcut against the fast fault model (itself checked against the cycle
model), permutations leave the fault-free network unchanged, the GA is reproducible and never worse
than the identity on its own draws, the baselines.
"""

import numpy as np
import pytest

from ftaccel.app.datasets import digits
from ftaccel.app.has import (
    Fitness,
    check_permutation,
    check_profile,
    ga,
    nvf_placement,
    worst_bypass,
)
from ftaccel.app.netcampaign import layer_dims
from ftaccel.app.network import Network
from ftaccel.app.protect import FaultEngine
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.fault_models import (
    HookedErrorsEngine,
    hook_program,
    hooked_faults,
    one_per_cycle,
    pe_profile,
    profile_acc,
    profile_errors,
    profile_faults,
    profile_product,
)
from ftaccel.golden.network import CycleEngine, FunctionalEngine, LayerOptions, run
from ftaccel.golden.schedule import build_program

SEED = 3


@pytest.fixture(scope="module")
def mlp():
    return Network.builtin("digits-mlp")


def test_profile_shortcut_equals_the_fast_fault_model():
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}")
    for _ in range(150):
        R, C = (int(v) for v in rng.integers(2, 6, 2))
        cfg = AcceleratorConfig(rows=R, cols=C, max_k=64, bypass=bool(rng.integers(2)))
        M, K, N = (int(v) for v in rng.integers(1, 20, 3))
        A = rng.integers(-128, 128, (M, K))
        B = rng.integers(-128, 128, (K, N))
        bias = rng.integers(-1000, 1000, N)
        mode = str(rng.choice(["flip-to-0", "flip-to-1", "bitflip"]))
        rate = float(rng.choice([0.01, 0.3, 0.9]))  # 0.9: many errors on one output
        e = profile_errors(cfg, pe_profile(R, C, rate, rng), M, K, N, mode, rng)
        bmap = rng.random((R, C)) < 0.3 if cfg.bypass else None
        ref, _ = profile_product(cfg, A, B, bias, e, bypass_map=bmap)
        assert np.array_equal(profile_acc(cfg, A, B, bias, e, bmap), ref)
    assert profile_acc(AcceleratorConfig(dataflow="os"), A, B, bias, e) is None


def test_a_permutation_changes_nothing_without_faults(mlp):
    m = mlp.model
    cfg = mlp.default_config()
    x = m.quantize_input(digits("test").images[:50])
    rng = np.random.default_rng(SEED)
    opts = {i: LayerOptions(permutation=rng.permutation(m.layers[i].matrix.shape[1]))
            for i in (0, 1, 2)}
    eng = FunctionalEngine(cfg)
    assert np.array_equal(run(m, x, eng, options=opts).logits, run(m, x, eng).logits)


def test_the_permutation_moves_the_errors_with_the_pes(mlp):
    """A column with a certain error in every step.

    The neuron placed there is the one that is corrupted, whichever it is.
    """
    m = mlp.model
    cfg = mlp.default_config()
    ds = digits("test").head(60)
    x = m.quantize_input(ds.images)
    prof = np.zeros((8, 8))
    prof[0, 3] = 1.0
    fit = Fitness(m, x, ds.labels, cfg, prof, "flip-to-1", [2], evaluations=1, bits=(20, 20))
    for target in (0, 7):
        perm = np.arange(10)
        perm[[3, target]] = perm[[target, 3]]
        acc = fit.accuracy({2: perm})[0]
        # logit `target` is pushed up by 2**20 >> 7: every image is classified as `target`
        assert acc == pytest.approx(np.mean(ds.labels == target))


def test_ga_is_reproducible_and_not_worse_than_identity(mlp):
    m = mlp.model
    cfg = mlp.default_config()
    ds = digits("test").head(80)
    x = m.quantize_input(ds.images)
    prof = pe_profile(8, 8, 5e-3, np.random.default_rng(SEED))
    runs = []
    for _ in range(2):
        fit = Fitness(m, x, ds.labels, cfg, prof, "flip-to-1", [0], seed=1)
        runs.append(ga(fit, generations=3, runs=2, seed=5))
    a, b = runs
    assert a.fitness == b.fitness and all(np.array_equal(a.perms[i], b.perms[i]) for i in a.perms)
    assert a.history == b.history
    assert a.fitness >= a.identity_fitness
    assert all(h == sorted(h) for h in a.history)  # truncation selection keeps the best
    assert sorted(a.perms[0].tolist()) == list(range(64))
    assert a.settings["population"] == 20 and a.settings["crossover"] == 0.6


def test_baselines():
    prof = np.array([[0.1, 0.0, 0.3], [0.1, 0.0, 0.0]])  # column rates 0.2, 0.0, 0.3
    perm = nvf_placement([0.05, 0.5, 0.2, 0.01], prof, 3)
    # array columns 0..3 sit on PE columns 0,1,2,0: robust order 1 (0.0), 0, 3 (0.2), 2 (0.3)
    assert perm.tolist() == [2, 1, 3, 0]
    bm = worst_bypass(prof, 1 / 6)
    assert bm.sum() == 1 and bm[0, 2]


def test_bad_profile_and_permutation():
    cfg = AcceleratorConfig(rows=4, cols=4)
    with pytest.raises(ValueError, match="must be 4×4"):
        check_profile(np.zeros((4, 5)), cfg)
    with pytest.raises(ValueError, match="probabilities"):
        check_profile(np.full((4, 4), 2.0), cfg)
    with pytest.raises(ValueError, match="not a permutation"):
        check_permutation([0, 0, 1], 3)
    assert check_permutation([2, 0, 1], 3).tolist() == [2, 0, 1]


def test_cli_schedule_then_infer_with_the_permutation(tmp_path):
    import json

    from ftaccel.app.cli import main

    out = tmp_path / "s"
    assert main(["schedule", "--model", "digits-mlp", "--fr-max", "5e-3", "--generations", "2",
                 "--runs", "1", "--images", "40", "--test-images", "40", "--layers", "fc1",
                 "-o", str(out)]) == 0
    doc = json.loads((out / "permutation.json").read_text())
    assert [entry["layer"] for entry in doc["layers"]] == ["fc1"]
    assert sorted(doc["layers"][0]["permutation"]) == list(range(64))
    assert doc["ga"]["fitness"] >= doc["ga"]["identity_fitness"]
    prof = json.loads((out / "profile.json").read_text())["profile"]
    assert np.asarray(prof).shape == (8, 8) and np.max(prof) <= 5e-3
    # the same profile file gives the same schedule (seeded, reproducible)
    again = tmp_path / "again"
    assert main(["schedule", "--model", "digits-mlp", "--profile", str(out / "profile.json"),
                 "--generations", "2", "--runs", "1", "--images", "40", "--test-images", "40",
                 "--layers", "fc1", "-o", str(again)]) == 0
    assert json.loads((again / "permutation.json").read_text())["layers"] == doc["layers"]
    assert main(["infer", "--model", "digits-mlp", "--permutation", str(out / "permutation.json"),
                 "-o", str(tmp_path / "i1")]) == 0
    assert main(["infer", "--model", "digits-mlp", "-o", str(tmp_path / "i0")]) == 0
    a, b = (json.loads((tmp_path / d / "infer.json").read_text()) for d in ("i1", "i0"))
    assert a["logits"] == b["logits"]


@pytest.mark.parametrize("argv, word", [
    (["schedule", "--fr-max", "1.5"], "--fr-max"),
    (["schedule", "--profile", "PROFILE"], "must be 8×8"),
    (["schedule", "--fr-max", "0.1", "--mode", "stuck"], "--mode"),
    (["schedule", "--fr-max", "0.1", "--dataflow", "is"], "batch row"),
    (["infer", "--permutation", "PERM"], "not a permutation"),
])
def test_cli_bad_schedule_input(tmp_path, capsys, argv, word):
    import json

    from ftaccel.app.cli import main

    (tmp_path / "profile.json").write_text(json.dumps({"profile": [[0.1] * 4] * 8}))
    (tmp_path / "perm.json").write_text(json.dumps(
        {"layers": [{"layer": "fc2", "permutation": list(range(31)) + [30]}]}))
    argv = [str(tmp_path / "profile.json") if a == "PROFILE" else
            str(tmp_path / "perm.json") if a == "PERM" else a for a in argv]
    out = tmp_path / "out"
    assert main(argv[:1] + ["--model", "digits-mlp", "-o", str(out)] + argv[1:]) == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_error_draws_on_the_fault_hooks_one_per_cycle():
    """One error per cycle: the hooks' per-cycle controls hold exactly the drawn errors."""
    print(f"seed {SEED}")
    rng = np.random.default_rng(SEED)
    for dataflow in ("ws", "os"):
        cfg = AcceleratorConfig(rows=3, cols=4, dataflow=dataflow, max_k=64, fault_hooks=True)
        M, K, N = 5, 9, 7
        A, B = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
        prof = pe_profile(3, 4, 0.4, rng)
        e = profile_errors(cfg, prof, M, K, N, "flip-to-1", np.random.default_rng(1))
        e1 = profile_errors(cfg, prof, M, K, N, "flip-to-1", np.random.default_rng(1),
                            one_per_cycle=True)
        kept, dropped = one_per_cycle(cfg, e, M, K, N)
        assert dropped > 0 and len(e1) == len(kept) == len(e) - dropped  # rate 0.4: collisions
        faults = profile_faults(cfg, e1, M, K, N)
        assert len({f.cycle for f in faults}) == len(faults)
        program = hook_program(cfg, build_program(cfg, A, B), faults)
        assert sorted(hooked_faults(program), key=lambda f: f.cycle) == \
            sorted(faults, key=lambda f: f.cycle)
        with pytest.raises(ValueError, match="one fault per cycle"):
            hook_program(cfg, build_program(cfg, A, B), profile_faults(cfg, e, M, K, N))


@pytest.mark.parametrize("mode", ["flip-to-1", "bitflip"])
def test_the_ga_permutation_on_the_rtl_equals_the_fast_model(mlp, mode):
    """The GA's permutation on the RTL with the same profile draws: the fast model's logits.

    Hence the same accuracy, on a few images; the cycle model plays the same program.

    FR_max 0.02 (above the HAS report's 5e-3) so that four images on a 4×4 array meet enough errors
    to change the logits: the comparison must see real corruption.
    """
    from ftaccel.tb.accelerator import RTLEngine

    seed = SEED + 40 + ["flip-to-1", "bitflip"].index(mode)
    print(f"seed {seed}")
    m = mlp.model
    cfg = AcceleratorConfig(rows=4, cols=4, fault_hooks=True)
    prof = pe_profile(4, 4, 0.02, np.random.default_rng(seed))
    train = digits("train").head(60)
    fit = Fitness(m, m.quantize_input(train.images), train.labels, cfg, prof, mode, [0, 1, 2],
                  seed=seed, evaluations=1)
    res = ga(fit, population=6, generations=3, runs=1, seed=seed)
    opts = {i: LayerOptions(permutation=p) for i, p in res.perms.items()}
    assert any(not np.array_equal(p, np.arange(len(p))) for p in res.perms.values())
    test = digits("test").head(4)
    x = m.quantize_input(test.images)
    rng = np.random.default_rng([seed, 1])
    errors = {i: profile_errors(cfg, prof, M, K, N, mode, rng, one_per_cycle=True)
              for (i, M, K, N) in layer_dims(m, len(x))}
    assert sum(map(len, errors.values())) > 20
    fast = run(m, x, FaultEngine(cfg, errors=errors), options=opts).logits
    clean = run(m, x, FaultEngine(cfg), options=opts).logits
    assert not np.array_equal(fast, clean)  # the errors reach the logits
    cyc_eng = HookedErrorsEngine(CycleEngine(cfg), errors)
    cyc = run(m, x, cyc_eng, options=opts).logits
    assert cyc_eng.drawn == sum(map(len, errors.values()))
    assert np.array_equal(cyc, fast)
    rtl = run(m, x, HookedErrorsEngine(RTLEngine(cfg), errors), options=opts).logits
    assert np.array_equal(rtl, fast)
    acc = [float(np.mean(np.argmax(lg, 1) == test.labels)) for lg in (fast, rtl)]
    assert acc[0] == acc[1]
