"""``rtlgen infer``: reports, engines, and bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ftaccel.app.cli import main
from ftaccel.app.datasets import digits
from ftaccel.app.network import Network


def infer(args, capsys):
    code = main(["infer", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_golden_run_writes_complete_reports(tmp_path, capsys):
    code, out, err = infer(["--model", "digits-mlp", "--images", 30, "-o", tmp_path / "r"],
                           capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "r" / "infer.json").read_text())
    test = digits("test").head(30)
    want = Network.builtin("digits-mlp").run(test.images, labels=test.labels)
    assert report["predictions"] == want.predictions.tolist()
    assert report["labels"] == test.labels.tolist()
    assert report["accuracy"] == pytest.approx(want.accuracy)
    assert report["images"] == 30 and report["engine"] == "golden"
    assert [layer["cycles"] for layer in report["layers"]] == [s.cycles for s in want.layers]
    assert "top-1 accuracy" in out and "| fc1 | dense | array | 30×64 @ 64×64 |" in out
    md = (tmp_path / "r" / "infer.md").read_text()
    assert md.startswith("# Inference: digits-mlp on 8×8 WS (golden)")


def test_cycle_and_rtl_engines_give_the_golden_predictions(tmp_path, capsys):
    reports = {}
    for engine in ("golden", "cycle", "rtl"):
        code, _, err = infer(["--model", "digits-cnn", "--images", 2, "--rows", 4, "--cols", 4,
                              "--dataflow", "os", "--engine", engine, "-o", tmp_path / engine],
                             capsys)
        assert code == 0, err
        reports[engine] = json.loads((tmp_path / engine / "infer.json").read_text())
    for engine in ("cycle", "rtl"):
        assert reports[engine]["logits"] == reports["golden"]["logits"]
        assert reports[engine]["cycles"] == reports["golden"]["cycles"]
    assert reports["rtl"]["startup_seconds"] > 0
    for layer in reports["cycle"]["layers"]:
        if "cycles" in layer:
            assert 0 < layer["utilisation"] <= 1


def test_onnx_model_with_user_data(tmp_path, capsys):
    pytest.importorskip("onnx")
    from ftaccel.app.onnx_import import to_onnx

    float_model = Network.builtin("digits-mlp").float_model
    (tmp_path / "mlp.onnx").write_bytes(to_onnx(float_model).SerializeToString())
    test, train = digits("test"), digits("train")
    np.savez(tmp_path / "test.npz", images=test.images[:60], labels=test.labels[:60])
    np.savez(tmp_path / "train.npz", images=train.images, labels=train.labels)
    code, out, err = infer(["--model", tmp_path / "mlp.onnx", "--data", tmp_path / "test.npz",
                            "--calib", tmp_path / "train.npz", "-o", tmp_path / "r"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "r" / "infer.json").read_text())
    assert report["images"] == 60 and report["accuracy"] >= 0.9
    assert report["float_agreement"] >= 0.95


def _bad_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="squash")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])])
    onnx.save(helper.make_model(g), path)
    return path


BAD = {
    "K beyond max_k": (["--model", "digits-mlp", "--max-k", 32],
                       "layer fc1: reduction length K = 64 exceeds max_k = 32"),
    "accumulator overflow": (["--model", "digits-cnn", "--acc-width", 16],
                             "layer conv1: a partial sum can reach"),
    "widths": (["--model", "{saved}", "--a-width", 16, "--w-width", 16],
               "8-bit activations but the configuration has a_width = 16"),
    "shape": (["--model", "digits-mlp", "--data", "{shape}"],
              "images of shape (7, 7) do not fit model digits-mlp"),
    "range": (["--model", "digits-cnn", "--data", "{range}"], "outside the range"),
    "labels": (["--model", "digits-mlp", "--data", "{labels}"],
               "label 12 but model digits-mlp has 10 classes"),
    "no model": (["--model", "nosuch"], "not a built-in model (digits-mlp, digits-cnn)"),
    "onnx op": (["--model", "{onnx}", "--data", "{labels}"],
                "node squash (op Sigmoid): unsupported operator"),
    "images": (["--model", "digits-mlp", "--images", 0], "--images 0: must be at least 1"),
    "bypass map": (["--model", "digits-mlp", "--bypass-map", "{map}"],
                   "invalid bypass = False: true to use a bypass map"),
    # (every unit runs on every dataflow since issue 29; OS refuses checksums with bypass)
    "engine config": (["--model", "digits-mlp", "--dataflow", "os", "--checksum", "both",
                       "--bypass"], "invalid checksum = 'both'"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_exits_2_and_writes_nothing(case, tmp_path, capsys):
    args, message = BAD[case]
    rng = np.random.default_rng(0)
    files = {"shape": tmp_path / "shape.npz", "range": tmp_path / "range.npz",
             "labels": tmp_path / "labels.npz", "map": tmp_path / "map.npy",
             "onnx": tmp_path / "bad.onnx", "saved": tmp_path / "int8.npz"}
    np.savez(files["shape"], images=rng.random((3, 7, 7)), labels=[0, 1, 2])
    np.savez(files["range"], images=rng.integers(0, 256, (3, 8, 8)), labels=[0, 1, 2])
    np.savez(files["labels"], images=rng.random((3, 64)), labels=[0, 12, 2])
    np.save(files["map"], np.zeros((8, 8), np.int64))
    if case == "onnx op":
        _bad_onnx(files["onnx"])
    if case == "widths":  # a saved int8 model on a 16-bit accelerator
        Network.builtin("digits-mlp").save(files["saved"])
    args = [str(a).format(**files) for a in args]
    code, out, err = infer([*args, "-o", tmp_path / "out"], capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtlgen: error: "), err
    assert message in lines[0]
    assert not (tmp_path / "out").exists()
