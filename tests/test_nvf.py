"""NVF analysis (app/nvf.py, app/critical.py).

The vectorised enumeration against a plain loop over neurons, images and bits that flips one Python
int at a time and runs the golden functional engine; the Table 4.10 analogue; the ``rtlgen nvf``
command and its bad input.
"""

import json

import numpy as np
import pytest

from ftaccel.app.cli import main
from ftaccel.app.datasets import digits
from ftaccel.app.network import Network
from ftaccel.app.nvf import THRESHOLDS, flip_bits, forward, nvf, threshold_table
from ftaccel.golden.network import FunctionalEngine, run


@pytest.fixture(scope="module")
def nets():
    return {n: Network.builtin(n) for n in ("digits-mlp", "digits-cnn")}


def _flip_int(v: int, b: int, width: int) -> int:
    u = (v % (1 << width)) ^ (1 << b)
    return u - (1 << width) if u >= 1 << (width - 1) else u


def _reference(net, x, layer, neurons, pixels_of):
    """Per neuron, the share of (image, pixel, bit) flips that change the golden top-1."""
    m = net.model
    eng = FunctionalEngine(net.default_config(max_k=1024))
    clean = run(m, x, eng, record=True)
    golden = clean.predictions
    q = clean.outputs[layer]
    out = {}
    for n in neurons:
        changed = total = 0
        for i in range(len(x)):
            for pix in pixels_of(q):
                for b in range(m.a_bits):
                    y = q[i:i + 1].copy()
                    idx = (0, *pix, n)
                    y[idx] = _flip_int(int(y[idx]), b, m.a_bits)
                    lg = run(m, y, eng, start=layer + 1).logits
                    changed += int(np.argmax(lg[0]) != golden[i])
                    total += 1
        out[n] = changed / total
    return out


def test_flip_bits_is_a_twos_complement_bit_flip():
    rng = np.random.default_rng(5)
    print("seed 5")
    v = rng.integers(-128, 128, 200)
    b = rng.integers(0, 8, 200)
    want = [_flip_int(int(a), int(c), 8) for a, c in zip(v, b, strict=True)]
    assert flip_bits(v, b, 8).tolist() == want
    assert flip_bits(np.array([5]), 7, 8).tolist() == [5 - 128]


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_forward_equals_the_functional_engine(nets, name):
    net = nets[name]
    x = net.model.quantize_input(digits("test").images[:60])
    ref = run(net.model, x, FunctionalEngine(net.default_config(max_k=1024))).logits
    assert np.array_equal(forward(net.model, x), ref)


def test_dense_nvf_equals_a_plain_loop(nets):
    net = nets["digits-mlp"]
    x = net.model.quantize_input(digits("train").images[:12])
    res = nvf(net.model, x)
    rng = np.random.default_rng(3)
    print("seed 3")
    for layer, n_out in ((0, 64), (1, 32), (2, 10)):
        picks = sorted(rng.choice(n_out, 3, replace=False).tolist())
        ref = _reference(net, x, layer, picks, lambda q: [()])
        got = {n.neuron: n.nvf for n in res.neurons if n.layer == layer and n.neuron in picks}
        assert got == pytest.approx(ref, abs=1e-12)
    assert len(res.neurons) == 64 + 32 + 10
    assert res.evaluations == 12 * 8 * (64 + 32 + 10)


def test_conv_nvf_over_every_pixel_equals_a_plain_loop(nets):
    net = nets["digits-cnn"]
    x = net.model.quantize_input(digits("train").images[:3])
    res = nvf(net.model, x, pixels=None, layers=[0])
    pixels = lambda q: [(y, z) for y in range(q.shape[1]) for z in range(q.shape[2])]  # noqa: E731
    ref = _reference(net, x, 0, [1, 6], pixels)
    got = {n.neuron: n.nvf for n in res.neurons if n.neuron in (1, 6)}
    assert got == pytest.approx(ref, abs=1e-12)
    # sampled pixels estimate the same quantity (seeded); close with many draws
    est = nvf(net.model, x, pixels=64, layers=[0], seed=4)
    full = np.array([n.nvf for n in res.neurons])
    assert np.abs(np.array([n.nvf for n in est.neurons]) - full).max() < 0.15


def test_threshold_table_counts(nets):
    net = nets["digits-mlp"]
    x = net.model.quantize_input(digits("train").images[:40])
    res = nvf(net.model, x, sign=False)
    assert res.bits == 7
    vals = np.array([n.nvf for n in res.neurons])
    table = threshold_table(res)
    assert [r["threshold"] for r in table] == list(THRESHOLDS)
    for r in table:
        assert r["neurons"] == int(np.sum(vals >= r["threshold"] / 100 - 1e-12))
    assert table[0]["share"] == 1.0
    hidden = threshold_table(res, hidden_only=True)
    assert hidden[0]["neurons"] == 64 + 32
    crit = res.critical(0.05)
    assert sum(len(v) for v in crit.values()) == table[1]["neurons"]


def test_cli_nvf_writes_both_reports(tmp_path, capsys):
    out = tmp_path / "nvf"
    assert main(["nvf", "--model", "digits-mlp", "--images", "30", "-o", str(out)]) == 0
    d = json.loads((out / "nvf.json").read_text())
    assert d["images"] == 30 and len(d["neurons"]) == 106
    assert [r["threshold"] for r in d["table"]] == list(THRESHOLDS)
    md = (out / "nvf.md").read_text()
    assert "Table 4.10 analogue" in md and "| 20 % |" in md


@pytest.mark.parametrize("argv, word", [
    (["--images", "0"], "--images"),
    (["--pixels", "0"], "--pixels"),
    (["--model", "nope.txt"], "--model"),
])
def test_cli_nvf_bad_input(tmp_path, capsys, argv, word):
    out = tmp_path / "nvf"
    args = ["nvf", "--model", "digits-mlp", "-o", str(out)] + argv
    assert main(args) == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
