"""Selective TMR as an option of the composed accelerator (configuration ``tmr``; issue 16).

* the voting controller alone (:class:`rtl_gen.tmr.VotingController`) equals its cycle model
  (:class:`golden.tmr.VotingControllerModel`) on every port in every cycle, on random scripts
  whose triples share words (forwarding), with clamps, holes and inputs poked while busy;
* the top with the voter: RTL equals the golden cycle model in every port and cycle (Icarus,
  WS / OS / IS), the voted buffer read back equals :func:`golden.tmr.vote_buffer` of what was
  captured and, with no fault, a plain-numpy product; the vote timing is measured;
* a permanent fault in one PE column corrupts one copy of each triple and is outvoted (the
  result equals the fault-free one); faults in two copies give the published semantics (word
  voter: the majority, the signed minimum when all three differ; bitwise: bit majority);
* a TMR-protected network with the on-chip voter equals the unprotected network bit for bit
  (golden, cycle model, and RTL on a small sample); ``rtlgen protect --method tmr`` writes a
  configuration with ``tmr`` set;
* bad configuration values and driver options give clear errors;
* ``rtlgen matmul --tmr ... --tmr-triples ... --corrected`` writes the voted read-back, which
  outvotes a stuck PE column, and reports the votes in ``--json`` and on the console.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.faults import Fault
from ftaccel.golden.schedule import assemble, assemble_corrected, build_program
from ftaccel.golden.tmr import VotingControllerModel, vote_buffer
from ftaccel.rtl_gen.tmr import voting_cycles
from ftaccel.tb.accelerator import mismatches, rtl_matmul
from ftaccel.tb.tmr import run_voting_controller, voting_script

# Two critical neurons (columns 0 and 1) and their copies (2, 4 of 0; 3, 5 of 1): on a
# 3-column array every triple's columns lie in three distinct PE columns (lanes 0/2/1, 1/0/2).
TRIPLES = np.array([[0, 2, 4], [1, 3, 5]])


def _cfg(**kw):
    return AcceleratorConfig(**{"rows": 3, "cols": 3, "tmr": "word", "lcu_depth": 16,
                                "tmr_max_triples": 4, **kw})


def _layer(rng, M=5, K=4):
    """Post-ReLU activations and a layer whose columns 2, 4 copy 0 and 3, 5 copy 1.

    Mostly positive sums of a few thousand, so that stuck bits 9 and 10 show after ReLU.
    """
    X = rng.integers(0, 64, (M, K))
    W = rng.integers(-32, 96, (K, 6))
    b = rng.integers(-200, 500, 6)
    for orig, copies in ((0, (2, 4)), (1, (3, 5))):
        W[:, list(copies)] = W[:, [orig]]
        b[list(copies)] = b[orig]
    return X, W, b


def _numpy_q(X, W, b, shift=6):
    """Plain numpy: bias, ReLU, round half up by ``shift``, saturate to int8."""
    y = np.maximum(X.astype(np.int64) @ W + b, 0)
    return np.clip((y + (1 << (shift - 1))) >> shift, -128, 127)


def _vote_columns(q, triples, voter):
    """Plain numpy vote of each triple's columns, in order (independent of golden.tmr)."""
    q = q.copy()
    for a, b, c in triples:
        x, y, z = q[:, a], q[:, b], q[:, c]
        if voter == "word":
            smallest = np.minimum(np.minimum(x, y), z)
            v = np.where((x == y) | (x == z), x, np.where(y == z, y, smallest))
        else:
            ux, uy, uz = x & 0xFF, y & 0xFF, z & 0xFF
            u = (ux & uy) | (ux & uz) | (uy & uz)
            v = np.where(u >= 128, u - 256, u)
        q[:, a] = q[:, b] = q[:, c] = v
    return q


# -- the controller on its own ------------------------------------------------------------------

@pytest.mark.parametrize("voter", ["word", "bitwise"])
@pytest.mark.parametrize(("width", "depth", "max_triples", "lanes"),
                         [(8, 8, 4, 3), (8, 5, 3, 4), (16, 4, 5, 1)])
def test_controller_equals_cycle_model(rng, tmp_path, voter, width, depth, max_triples, lanes):
    stim, starts = voting_script(rng, width=width, depth=depth, max_triples=max_triples,
                                 lanes=lanes)
    out = run_voting_controller(stim, width=width, depth=depth, max_triples=max_triples,
                                lanes=lanes, voter=voter, build_dir=tmp_path, sim="icarus")
    ref, valid = VotingControllerModel(width=width, depth=depth, max_triples=max_triples,
                                       voter=voter, lanes=lanes, capture=True).run(stim)
    for port in ref:
        ok = valid[port]
        assert np.array_equal(out[port][ok], ref[port][ok]), port
    # every run ends with exactly one done, 3n + 4 rows after its start
    done = np.flatnonzero(out["done"])
    for s in starts:
        n = min(int(stim["n_triples"][s]), max_triples)
        assert s + voting_cycles(n) in done


def test_voting_cycles_formula():
    assert [voting_cycles(n) for n in range(4)] == [1, 7, 10, 13]
    with pytest.raises(ConfigError):
        voting_cycles(-1)


def test_vote_buffer_is_sequential():
    # the second triple sees the first one's result in word 2
    buf = np.array([5, 5, 9, 1, 2, 3])
    out = vote_buffer(buf, [[0, 1, 2], [2, 3, 4]], width=8)
    assert out.tolist() == [5, 5, 1, 1, 1, 3]  # 5,5,9 -> 5; then 5,1,2 all differ -> 1


# -- the top ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_top_fault_free(rng, dataflow):
    cfg = _cfg(dataflow=dataflow)
    X, W, b = _layer(rng)
    run = rtl_matmul(cfg, X, W, bias=b, relu=True, shift=6, tmr_triples=TRIPLES, sim="icarus")
    assert not mismatches(run.recorded, run.golden)
    ref = _numpy_q(X, W, b)
    assert np.array_equal(run.q, ref)
    voted = assemble_corrected(run.program, run.recorded)
    assert run.program.buffer_port == "tmr__rd_data"
    assert np.array_equal(voted, ref)  # identical copies: the vote changes nothing


def test_vote_timing_measured(rng):
    cfg = _cfg()
    X, W, b = _layer(rng, M=2)  # 2 rows × 2 triples = 4 word triples, max 4: one run
    run = rtl_matmul(cfg, X, W, bias=b, relu=True, shift=6, tmr_triples=TRIPLES, sim="icarus")
    assert not mismatches(run.recorded, run.golden)
    start = np.flatnonzero(run.program.inputs["tmr__start"])
    done = np.flatnonzero(run.recorded["tmr__done"])
    busy = run.recorded["tmr__busy"]
    n = 4
    assert len(start) == 1 and list(done) == [start[0] + 3 * n + 4]
    assert busy[start[0] + 1:done[0]].all() and busy.sum() == 3 * n + 3
    assert run.recorded["tmr__cap_row"][-1] == len(np.unique(run.program.out_cycle))


def _stuck_column_run(rng, cfg, voter_cfg, bit=9):
    """A layer run with a permanent stuck-at-1 in PE (1, 0)'s partial sum (one copy per triple)."""
    X, W, b = _layer(rng, M=6)
    fault = Fault(1, 0, "psum", bit, "sa1")
    run = rtl_matmul(voter_cfg, X, W, bias=b, relu=True, shift=6, tmr_triples=TRIPLES,
                     fault=fault, sim="icarus")
    return X, W, b, run


@pytest.mark.parametrize(("dataflow", "voter"), [("ws", "word"), ("os", "word"),
                                                 ("ws", "bitwise")])
def test_one_faulty_copy_is_outvoted(rng, dataflow, voter):
    cfg = _cfg(dataflow=dataflow, tmr=voter, fault_hooks=True)
    X, W, b, run = _stuck_column_run(rng, cfg, cfg)
    assert not mismatches(run.recorded, run.golden)  # fault hooks: RTL = cycle model
    clean = _numpy_q(X, W, b)
    assert not np.array_equal(run.q, clean)  # the fault does reach the outputs ...
    voted = assemble_corrected(run.program, run.recorded)
    assert np.array_equal(voted, _vote_columns(run.q, TRIPLES, voter))
    assert np.array_equal(voted[:, :2], clean[:, :2])  # ... and the protected neurons are clean
    assert np.array_equal(voted[:, 2:], clean[:, 2:])


@pytest.mark.parametrize("voter", ["word", "bitwise"])
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_two_faulty_copies(rng, dataflow, voter):
    """Stuck-at faults in two PE columns (cycle model: the RTL hooks take one fault at a time).

    Triple (0, 2, 4) sits in lanes 0, 2, 1: faults in lanes 0 and 2 corrupt two of its copies;
    the voted word is the word voter's majority / minimum, or the bit majority.
    """
    cfg = _cfg(dataflow=dataflow, tmr=voter)
    X, W, b = _layer(rng, M=6)
    program = build_program(cfg, X, W, bias=b, relu=True, shift=6, tmr_triples=TRIPLES)
    for faults in ([Fault(0, 0, "psum", 9, "sa1"), Fault(0, 2, "psum", 9, "sa1")],
                   [Fault(0, 0, "psum", 9, "sa1"), Fault(0, 2, "psum", 10, "sa1")]):
        rec = simulate(cfg, program, faults)
        q = assemble(program, rec, "q_out")
        voted = assemble_corrected(program, rec)
        want = _vote_columns(q, TRIPLES, voter)
        assert np.array_equal(voted, want)
        # where the two faulty copies agree and differ from the clean one, the word voter
        # takes the (wrong) majority: TMR masks one faulty copy, not two
        clean = _numpy_q(X, W, b)
        both = (q[:, 0] == q[:, 2]) & (q[:, 0] != q[:, 4])
        if voter == "word":
            assert np.array_equal(voted[both, 0], q[both, 0])
            all_differ = (q[:, 0] != q[:, 2]) & (q[:, 0] != q[:, 4]) & (q[:, 2] != q[:, 4])
            assert np.array_equal(voted[all_differ, 0], q[all_differ][:, [0, 2, 4]].min(1))
        assert not np.array_equal(q, clean)


def test_bad_options(rng):
    for kw, field in [({"tmr": "majority"}, "tmr"), ({"tmr": True}, "tmr"),
                      ({"tmr": "word", "lcu": True}, "tmr"),
                      ({"tmr": "word", "output_stage": False}, "tmr"),
                      ({"tmr_max_triples": 0}, "tmr_max_triples"),
                      ({"tmr_max_triples": 1.0}, "tmr_max_triples"),
                      ({"tmr": "word", "flow": "shortened", "flow_group": 4}, "tmr")]:
        with pytest.raises(ConfigError) as exc:
            AcceleratorConfig(**kw)
        assert exc.value.field == field and f"invalid {field} = " in str(exc.value)
    cfg = _cfg(tmr_max_triples=3)
    assert cfg.name().endswith("_tmrw16x3")
    assert AcceleratorConfig.from_json(cfg.to_json()) == cfg
    assert _cfg(tmr="bitwise").name().endswith("_tmrb16x4")
    X, W, b = _layer(rng)
    with pytest.raises(ConfigError, match="invalid tmr triple column = 99: 0 … 5"):
        build_program(cfg, X, W, tmr_triples=[[0, 1, 99]])
    with pytest.raises(ConfigError, match=r"invalid tmr triples shape = \(1, 2\): \(n, 3\)"):
        build_program(cfg, X, W, tmr_triples=[[0, 1]])
    with pytest.raises(ValueError, match="lcu_depth"):
        build_program(_cfg(lcu_depth=2), X, W, tmr_triples=TRIPLES)
    with pytest.raises(ValueError, match="built into the hardware"):
        build_program(cfg, X, W, tmr_triples=TRIPLES, tmr_voter="bitwise")
    with pytest.raises(ValueError, match="VotingEngine"):
        build_program(_cfg(tmr="none"), X, W, tmr_triples=TRIPLES)


# -- the protected network ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp():
    from ftaccel.app.network import Network

    return Network.builtin("digits-mlp")


def _protected(mlp, voter="word", k=3, seed=16):
    from ftaccel.app.protect import protect
    from ftaccel.golden.network import product_layers

    m = mlp.model
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    crit = {i: sorted(rng.choice(m.layers[i].matrix.shape[1], k, replace=False).tolist())
            for i in product_layers(m)[:-1]}
    cfg = mlp.default_config(max_k=1024)
    pr = protect(m, crit, "tmr", cfg, voter=voter)
    return cfg, pr, cfg.replace(**pr.config)


@pytest.mark.parametrize("voter", ["word", "bitwise"])
def test_protected_network_on_chip_equals_unprotected(mlp, voter):
    from ftaccel.app.datasets import digits
    from ftaccel.app.protect import VotingEngine
    from ftaccel.golden.network import CycleEngine, FunctionalEngine, run

    cfg, pr, cfg2 = _protected(mlp, voter)
    assert cfg2.tmr == voter and not cfg2.lcu
    m = mlp.model
    x = m.quantize_input(digits("test").images[:4])
    ref = run(m, x, FunctionalEngine(cfg)).logits
    for inner in (FunctionalEngine(cfg2), CycleEngine(cfg2)):
        eng = VotingEngine(inner)
        got = run(pr.model, x, eng, options=pr.options()).logits
        assert np.array_equal(got, ref)
        assert eng.on_chip == len(pr.layers)  # every protected layer voted by the hardware


def test_protected_network_on_chip_rtl(mlp):
    from ftaccel.app.datasets import digits
    from ftaccel.app.protect import VotingEngine
    from ftaccel.golden.network import FunctionalEngine, run
    from ftaccel.tb.accelerator import RTLEngine

    cfg, pr, cfg2 = _protected(mlp)
    m = mlp.model
    x = m.quantize_input(digits("test").images[:2])
    ref = run(m, x, FunctionalEngine(cfg)).logits
    eng = VotingEngine(RTLEngine(cfg2, sim="icarus"))
    assert np.array_equal(run(pr.model, x, eng, options=pr.options()).logits, ref)
    assert eng.on_chip == len(pr.layers)


def test_host_vote_is_the_fallback(mlp):
    """Without the voter on the top (or with the other voter) the host votes, same result."""
    from ftaccel.app.datasets import digits
    from ftaccel.app.protect import VotingEngine
    from ftaccel.golden.network import CycleEngine, run

    cfg, pr, cfg2 = _protected(mlp, "word")
    x = mlp.model.quantize_input(digits("test").images[:2])
    on_chip = run(pr.model, x, VotingEngine(CycleEngine(cfg2)), options=pr.options()).logits
    for c in (cfg, cfg2.replace(tmr="bitwise")):
        eng = VotingEngine(CycleEngine(c))
        assert np.array_equal(run(pr.model, x, eng, options=pr.options()).logits, on_chip)
        assert eng.on_chip == 0


@pytest.mark.parametrize("voter", ["word", "bitwise"])
def test_cli_protect_tmr_writes_the_voter_into_the_config(tmp_path, voter):
    from ftaccel.app.cli import main

    args = ["protect", "--model", "digits-mlp", "--method", "tmr", "--nvf-threshold", "5",
            "--images", "20", "-o", str(tmp_path / "p")]
    if voter != "word":
        args += ["--voter", voter]
    assert main(args) == 0
    cfg = AcceleratorConfig.load(tmp_path / "p" / "config.json")
    assert cfg.tmr == voter and not cfg.lcu
    d = json.loads((tmp_path / "p" / "protection.json").read_text())
    assert d["config"] == {"tmr": voter, "lcu": False} and d["voter"] == voter


# -- the command line ---------------------------------------------------------------------------

def test_cli_matmul_tmr_triples_corrected(rng, tmp_path, monkeypatch, capsys):
    """``rtlgen matmul --tmr word --tmr-triples ... --corrected``: fault-free, then one copy stuck.

    PE column 0 holds output columns 0 and 3 (lanes n % 3), one member of each triple
    (0, 2, 4) and (1, 3, 5): a stuck partial-sum bit there corrupts ``--q`` but the voted
    read-back equals the fault-free product.
    """
    from ftaccel.app.cli import main

    monkeypatch.chdir(tmp_path)
    X, W, b = _layer(rng, M=6)
    np.save("X.npy", X)
    np.save("W.npy", W)
    np.save("b.npy", b)
    clean = _numpy_q(X, W, b)
    base = ["matmul", "--rows", "3", "--cols", "3", "--tmr", "word", "--lcu-depth", "16",
            "--tmr-max-triples", "4", "--a", "X.npy", "--b", "W.npy", "--bias", "b.npy",
            "--relu", "--shift", "6", "-o", "C.npy", "--q", "Q.npy", "--corrected", "K.npy",
            "--tmr-triples", "0:2:4,1:3:5", "--json", "r.json", "--check", "--sim", "icarus"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert np.array_equal(np.load("K.npy"), clean) and np.array_equal(np.load("Q.npy"), clean)
    r = json.loads((tmp_path / "r.json").read_text())
    # 2 triples × 6 rows = 12 word triples, 4 per run: 3 runs; identical copies: no change
    assert r["tmr"] == {"voter": "word", "voting_runs": 3, "triples": 12, "words_changed": 0}
    assert r["options"]["tmr_triples"] == TRIPLES.tolist()
    assert r["outputs"]["corrected"] == "K.npy" and r["golden_check"]["corrected"]["count"] == 0
    assert "TMR (word voter): 12 triples voted in 3 run(s); 0 words changed by the vote" in out
    assert "check passed" in out

    assert main(base + ["--fault", "1,0,psum,9,sa1"]) == 0
    out = capsys.readouterr().out
    q, k = np.load("Q.npy"), np.load("K.npy")
    assert not np.array_equal(q, clean)  # the stuck column reaches the requantised outputs
    assert [sum(c % 3 == 0 for c in t) for t in TRIPLES.tolist()] == [1, 1]  # one copy each
    assert not np.array_equal(q[:, [0, 3]], clean[:, [0, 3]])  # lane 0: columns 0 and 3
    assert np.array_equal(q[:, [1, 2, 4, 5]], clean[:, [1, 2, 4, 5]])
    assert np.array_equal(k, clean)  # ... and every voted column is the fault-free one
    assert np.array_equal(k, _vote_columns(q, TRIPLES, "word"))
    r = json.loads((tmp_path / "r.json").read_text())
    changed = int(np.sum(k != q))
    assert changed > 0 and r["tmr"]["words_changed"] == changed
    assert r["golden_check"]["passed"] and r["options"]["fault"]["col"] == 0
    assert f"{changed} words changed by the vote" in out and "check passed" in out


def test_cli_matmul_tmr_bitwise_without_triples(rng, tmp_path, monkeypatch, capsys):
    """No triples: the buffer is read back unchanged (``--corrected`` equals ``--q``)."""
    from ftaccel.app.cli import main

    monkeypatch.chdir(tmp_path)
    X, W, b = _layer(rng, M=3)
    np.save("X.npy", X)
    np.save("W.npy", W)
    assert main(["matmul", "--rows", "3", "--cols", "3", "--tmr", "bitwise", "--a", "X.npy",
                 "--b", "W.npy", "-o", "C.npy", "--q", "Q.npy", "--corrected", "K.npy",
                 "--json", "r.json", "--check", "--sim", "icarus"]) == 0
    assert np.array_equal(np.load("K.npy"), np.load("Q.npy"))
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["tmr"] == {"voter": "bitwise", "voting_runs": 0, "triples": 0, "words_changed": 0}
    assert "TMR (bitwise voter): 0 triples voted in 0 run(s)" in capsys.readouterr().out


def test_cli_verify_sizes_cases_for_a_shallow_tmr_buffer(tmp_path, capsys):
    """``rtlgen verify`` draws products that fit the voter's buffer (as it does for the LCU)."""
    from ftaccel.app.cli import main

    assert main(["verify", "--rows", "2", "--cols", "2", "--tmr", "word", "--lcu-depth", "4",
                 "--count", "3", "--seed", "1", "--sim", "icarus"]) == 0
    assert "3 passed, 0 failed" in capsys.readouterr().out
