"""A network on the flow-controlling array (Ozen 2023 §12.5.2).

``rtlgen infer --flow …`` and :meth:`Network.run` with packed layers, golden against RTL,
packed against dense.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ftaccel.app import cli
from ftaccel.app.datasets import digits
from ftaccel.app.network import Network, make_engine, prune_flow_layers
from ftaccel.config import AcceleratorConfig
from ftaccel.golden.flow import FlowEngine, is_packable
from ftaccel.golden.network import ModelError

CFG = AcceleratorConfig(rows=4, cols=4, flow="shortened", flow_group=4)
PACKED = {"fc1": 4, "fc2": 4}


@pytest.fixture(scope="module")
def pruned():
    """digits-mlp with fc1 and fc2 pruned (magnitude) to 4×1 complementary sparsity."""
    dense = Network.builtin("digits-mlp")
    sparse = prune_flow_layers(dense.float_model, CFG.flow, PACKED, method="magnitude")
    return dense, Network.quantize(sparse, digits("train").images)


def test_engines_on_a_flow_array():
    assert isinstance(make_engine("golden", CFG, flow_layers=PACKED), FlowEngine)
    assert make_engine("cycle", CFG).simulate
    from ftaccel.tb.flow import FlowRTLEngine

    assert isinstance(make_engine("rtl", CFG, flow_layers=PACKED), FlowRTLEngine)
    with pytest.raises(ModelError, match="flow-controlling"):
        make_engine("golden", AcceleratorConfig(rows=4, cols=4), flow_layers=PACKED)


def test_golden_flow_logits_equal_the_rtl_and_packed_is_faster(pruned):
    dense, net = pruned
    assert all(is_packable(net.model.layers[i].matrix, 4, 1) for i in (0, 1))
    test = digits("test").head(3)
    gold = net.run(test.images, labels=test.labels, config=CFG, flow_layers=PACKED)
    rtl = net.run(test.images, labels=test.labels, config=CFG, flow_layers=PACKED,
                  engine="rtl")
    np.testing.assert_array_equal(gold.logits, rtl.logits)
    assert gold.cycles == rtl.cycles
    flat = net.run(test.images, config=CFG)  # no packed layer: every layer dense
    assert gold.cycles < flat.cycles
    assert flat.cycles == dense.run(test.images, engine=FlowEngine(CFG, {}), config=CFG).cycles


def test_cli_infer_packed_beside_dense(tmp_path, capsys):
    out = tmp_path / "o"
    code = cli.main(["infer", "--model", "digits-mlp", "--rows", "4", "--cols", "4",
                     "--flow", "shortened", "--flow-group", "4", "--flow-layers", "fc1:4,fc2",
                     "--flow-prune", "--flow-epochs", "2", "--images", "40", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    rep = json.loads((out / "infer.json").read_text())
    flow = rep["flow"]
    assert flow["layers"] == PACKED and flow["prune_method"] == "train"
    assert rep["cycles"] < flow["dense"]["cycles"] and flow["speedup"] > 1
    assert rep["accuracy"] is not None and flow["dense"]["accuracy"] is not None
    assert "dense, same array" in (out / "infer.md").read_text()


@pytest.mark.parametrize("args,message", [
    (["--flow-layers", "fc1:4,fc2:4"], "layer fc1: weights not packable for shortened-4"),
    (["--flow-layers", "fc9"], "flow layer 'fc9': model digits-mlp has no such product layer"),
    (["--flow-layers", "fc2:8", "--flow-prune"], "layer fc2: invalid group"),
])
def test_cli_bad_flow_layer_is_one_line_exit_2(tmp_path, capsys, args, message):
    code = cli.main(["infer", "--model", "digits-mlp", "--rows", "4", "--cols", "4",
                     "--flow", "shortened", "--flow-group", "4", "--images", "5", *args,
                     "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
