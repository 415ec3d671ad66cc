"""Protection of critical neurons (app/protect.py).

Mapping-aware placement, the protected network against the unprotected one (TMR and exact LCU bit
for bit; the thesis' halving LCU against a plain-numpy model of the halving), golden against the
cycle model and the RTL, and correction of faults confined to one copy.
"""

import numpy as np
import pytest

from ftaccel.app.datasets import digits
from ftaccel.app.network import Network
from ftaccel.app.nvf import forward
from ftaccel.app.protect import (
    FaultEngine,
    PlacementError,
    VotingEngine,
    check_placement,
    place,
    protect,
)
from ftaccel.golden.network import CycleEngine, FunctionalEngine, run
from ftaccel.golden.output_stage import output_stage

SEED = 16


@pytest.fixture(scope="module")
def nets():
    return {n: Network.builtin(n) for n in ("digits-mlp", "digits-cnn")}


def _critical(model, seed=SEED, k=5):
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    from ftaccel.golden.network import product_layers

    return {i: sorted(rng.choice(model.layers[i].matrix.shape[1], k, replace=False).tolist())
            for i in product_layers(model)[:-1]}


# -- placement -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cols, reps", [(2, 1), (3, 1), (8, 1), (3, 2), (4, 2), (8, 2)])
def test_place_separates_every_group(cols, reps):
    rng = np.random.default_rng(SEED + cols)
    print(f"seed {SEED + cols}")
    for _ in range(20):
        N = int(rng.integers(1, 40))
        crit = sorted(rng.choice(N, int(rng.integers(1, N + 1)), replace=False).tolist())
        groups = [[c] + [N + reps * k + r for r in range(reps)] for k, c in enumerate(crit)]
        n = N + reps * len(crit)
        for df in ("ws", "os"):
            perm = place(groups, n, cols, df)
            assert sorted(perm.tolist()) == list(range(n))
            where = {int(m): j for j, m in enumerate(perm)}
            for g in groups:  # independent check: array columns mod C all distinct
                assert len({where[c] % cols for c in g}) == len(g)


def test_the_issue_case_is_an_error_not_a_silent_failure():
    # neuron 11's copy in column 35 of an 8-column array: 35 mod 8 = 3 = 11 mod 8
    with pytest.raises(PlacementError, match="neuron 11.*PE column"):
        check_placement([[11, 35]], None, 8, "ws")
    check_placement([[11, 36]], None, 8, "ws")
    perm = place([[11, 35]], 40, 8, "ws")
    check_placement([[11, 35]], perm, 8, "ws")
    with pytest.raises(PlacementError, match="batch row"):
        place([[0, 4]], 5, 8, "is")
    with pytest.raises(PlacementError, match="3 copies"):
        place([[0, 4, 5]], 6, 2, "ws")


# -- the protected network without faults ---------------------------------------------------------

@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
@pytest.mark.parametrize("method, mode", [("tmr", "halve"), ("lcu", "exact")])
def test_tmr_and_exact_lcu_equal_the_unprotected_network(nets, name, method, mode):
    net = nets[name]
    m = net.model
    cfg = net.default_config(max_k=1024)
    x = m.quantize_input(digits("test").images)
    pr = protect(m, _critical(m), method, cfg, lcu_mode=mode)
    assert pr.protected_neurons == 5 * (len(pr.layers))
    cfg2 = cfg.replace(**pr.config)
    ref = run(m, x, FunctionalEngine(cfg)).logits
    got = run(pr.model, x, VotingEngine(FunctionalEngine(cfg2)), options=pr.options()).logits
    assert np.array_equal(got, ref)
    fast = run(pr.model, x, FaultEngine(cfg2), options=pr.options()).logits
    assert np.array_equal(fast, ref)


def _halved_reference(model, x, critical):
    """Plain numpy: the unprotected forward pass with the critical neurons doubled.

    Every critical neuron's output q is replaced by 2·h, h = its output requantised with shift + 1
    and saturated to 7 bits.
    """
    from ftaccel.golden.network import Conv2D, Dense

    for i, layer in enumerate(model.layers):
        if isinstance(layer, (Dense, Conv2D)):
            A = layer.lower(x).astype(np.int64)
            y = A @ layer.matrix.astype(np.int64) + layer.bias.astype(np.int64)
            q = output_stage(y, 0, layer.relu, layer.shift, 8)
            if i in critical:
                c = critical[i]
                yc = np.maximum(y[:, c], 0)
                h = np.clip((yc + (1 << layer.shift)) >> (layer.shift + 1), -64, 63)
                q[:, c] = 2 * h
            x = layer.restore(q, x.shape)
        else:
            x = layer.forward(x, 8)
    return x


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_halving_lcu_equals_the_halved_network(nets, name):
    net = nets[name]
    m = net.model
    cfg = net.default_config(max_k=1024)
    x = m.quantize_input(digits("test").images)
    crit = _critical(m)
    pr = protect(m, crit, "lcu", cfg)
    cfg2 = cfg.replace(**pr.config)
    got = run(pr.model, x, FunctionalEngine(cfg2), options=pr.options()).logits
    assert np.array_equal(got, _halved_reference(m, x, crit))
    assert np.array_equal(run(pr.model, x, FaultEngine(cfg2), options=pr.options()).logits, got)
    # the halving costs at most an LSB per critical neuron: predictions barely move
    ref = forward(m, x)
    assert np.mean(np.argmax(got, 1) == np.argmax(ref, 1)) > 0.98


@pytest.mark.parametrize("method, mode", [("lcu", "halve"), ("lcu", "exact"), ("tmr", "halve")])
def test_cycle_model_equals_golden_on_the_protected_network(nets, method, mode):
    net = nets["digits-mlp"]
    m = net.model
    cfg = net.default_config(max_k=1024, lcu=True, lcu_depth=64)
    x = m.quantize_input(digits("test").images[:3])
    pr = protect(m, _critical(m, k=3), method, cfg, lcu_mode=mode)
    cfg2 = cfg.replace(**pr.config)
    gold = run(pr.model, x, VotingEngine(FunctionalEngine(cfg2)), options=pr.options()).logits
    cyc = run(pr.model, x, VotingEngine(CycleEngine(cfg2)), options=pr.options()).logits
    assert np.array_equal(cyc, gold)


def test_rtl_equals_golden_on_the_lcu_protected_network(nets):
    from ftaccel.tb.accelerator import RTLEngine

    net = nets["digits-mlp"]
    m = net.model
    cfg = net.default_config(max_k=1024, lcu=True, lcu_depth=64)
    x = m.quantize_input(digits("test").images[:2])
    pr = protect(m, _critical(m, k=3), "lcu", cfg)
    gold = run(pr.model, x, FunctionalEngine(cfg), options=pr.options()).logits
    eng = RTLEngine(cfg)
    eng.start()
    assert np.array_equal(run(pr.model, x, eng, options=pr.options()).logits, gold)


# -- faults in one copy are corrected --------------------------------------------------------------

@pytest.mark.parametrize("method, mode", [("tmr", "halve"), ("lcu", "halve"), ("lcu", "exact")])
def test_a_flip_in_one_copy_is_corrected(nets, method, mode):
    net = nets["digits-mlp"]
    m = net.model
    cfg = net.default_config(max_k=1024)
    x = m.quantize_input(digits("test").images[:100])
    pr = protect(m, _critical(m), method, cfg, lcu_mode=mode)
    cfg2 = cfg.replace(**pr.config)
    clean = run(pr.model, x, FaultEngine(cfg2), options=pr.options()).logits
    lp = pr.layers[0]
    pos = np.argsort(lp.permutation)
    copy_col = int(pos[lp.groups[0][1]])
    rows = np.arange(len(x))
    # 0→1 flips are what the LCU removes; TMR removes any flip
    bits = range(8) if method == "tmr" else range(6)
    unprot = run(m, x, FaultEngine(cfg), options=None).logits
    for b in bits:
        eng = FaultEngine(cfg2, flips={0: (rows, copy_col, b)})
        got = run(pr.model, x, eng, options=pr.options()).logits
        q = run(pr.model, x, FunctionalEngine(cfg2), options=pr.options(), stop=1).logits
        zero = (q[:, lp.groups[0][1]] >> b) & 1 == 0
        if method == "tmr":
            assert np.array_equal(got, clean)
        else:  # rows where the flip set a 0 bit are corrected exactly
            assert np.array_equal(got[zero], clean[zero])
    # the same flip on the unprotected neuron does change logits
    orig = lp.groups[0][0]
    eng = FaultEngine(cfg, flips={0: (rows, orig, 5)})
    assert not np.array_equal(run(m, x, eng).logits, unprot)


# -- the commands ---------------------------------------------------------------------------------

def test_cli_protect_then_infer_equals_the_unprotected_run(tmp_path):
    import json

    from ftaccel.app.cli import main

    assert main(["nvf", "--model", "digits-mlp", "--images", "60", "-o",
                 str(tmp_path / "nvf")]) == 0
    assert main(["protect", "--model", "digits-mlp", "--method", "tmr", "--nvf-threshold", "5",
                 "--nvf", str(tmp_path / "nvf" / "nvf.json"), "-o", str(tmp_path / "p")]) == 0
    d = json.loads((tmp_path / "p" / "protection.json").read_text())
    nvf = json.loads((tmp_path / "nvf" / "nvf.json").read_text())
    want = sum(1 for n in nvf["neurons"] if n["nvf"] >= 0.05 and not n["last"])
    assert d["protected_neurons"] == want and d["neurons"] == 96 + 2 * want
    assert main(["infer", "--model", str(tmp_path / "p" / "model.npz"), "--config",
                 str(tmp_path / "p" / "config.json"), "--protection",
                 str(tmp_path / "p" / "protection.json"), "--images", "100", "-o",
                 str(tmp_path / "i1")]) == 0
    assert main(["infer", "--model", "digits-mlp", "--images", "100", "-o",
                 str(tmp_path / "i0")]) == 0
    a = json.loads((tmp_path / "i1" / "infer.json").read_text())
    b = json.loads((tmp_path / "i0" / "infer.json").read_text())
    assert a["logits"] == b["logits"] and a["accuracy"] == b["accuracy"]


@pytest.mark.parametrize("argv, word", [
    (["--nvf-threshold", "101"], "--nvf-threshold"),
    (["--nvf-threshold", "-1"], "--nvf-threshold"),
    (["--nvf-threshold", "nan"], "--nvf-threshold"),
    (["--method", "dmr"], "--method"),
    (["--dataflow", "is"], "batch row"),
])
def test_cli_protect_bad_input(tmp_path, capsys, argv, word):
    from ftaccel.app.cli import main

    base = {"--nvf-threshold": "10", "--method": "lcu"}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    args = ["protect", "--model", "digits-mlp", "--images", "20", "-o", str(tmp_path / "p")]
    for k, v in base.items():
        args += [k, v]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_fig417_tmr_of_every_neuron_masks_every_single_flip(nets):
    from ftaccel.app.critical import fig417
    from ftaccel.app.nvf import nvf

    net = nets["digits-mlp"]
    m = net.model
    cfg = net.default_config(max_k=1024)
    test = digits("test").head(40)
    res = nvf(m, m.quantize_input(digits("train").images[:40]))
    rep = fig417(net, m.quantize_input(test.images), test.labels, cfg, res,
                 thresholds=(0, 50), neuron_faults=60, pe_faults=2, seed=SEED)
    at0, at50 = rep["rows"]
    assert at0["tmr"]["neuron_flip"] == {"loss": 0.0, "critical": 0.0}
    assert at0["tmr"]["neurons"] == 3 * 96 and at0["lcu"]["neurons"] == 2 * 96
    assert at0["lcu"]["neuron_flip"]["critical"] < at0["none"]["neuron_flip"]["critical"]
    assert at50["critical"] == 0 and at50["lcu"] == at50["none"] == at50["tmr"]
