"""Configuration: validation, derived accumulator width, JSON round trip."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ftaccel.config import MAX_CONFIG_BYTES, AcceleratorConfig, derived_acc_width
from ftaccel.errors import SHOWN_CHARS, ConfigError, shown


@pytest.mark.parametrize("field,value", [
    ("rows", 0), ("rows", 257), ("rows", 2.0), ("rows", True), ("cols", -1),
    ("dataflow", "rs"), ("dataflow", None), ("a_width", 1), ("a_width", 17), ("w_width", "8"),
    ("max_k", 0), ("acc_width", 10), ("acc_width", 61), ("fault_hooks", 1),
    ("output_stage", "yes"),
])
def test_invalid_values_name_field_value_and_valid_range(field, value):
    with pytest.raises(ConfigError) as info:
        AcceleratorConfig(**{field: value})
    err = info.value
    assert err.field == field and err.value == value
    assert field in str(err) and repr(value) in str(err) and err.valid in str(err)


def test_unknown_key_and_bad_json_are_config_errors():
    with pytest.raises(ConfigError, match="configuration key"):
        AcceleratorConfig.from_dict({"rows": 4, "colums": 4})
    with pytest.raises(ConfigError, match="not JSON"):
        AcceleratorConfig.from_json("{rows: 4")
    with pytest.raises(ConfigError, match="JSON object"):
        AcceleratorConfig.from_json("[1, 2]")


def test_largest_derived_width_fits_the_int64_golden_model():
    cfg = AcceleratorConfig(a_width=16, w_width=16, max_k=1 << 24)
    assert cfg.acc_bits == 56
    with pytest.raises(ConfigError, match="max_k"):
        AcceleratorConfig(max_k=(1 << 24) + 1)


@pytest.mark.parametrize("a,w,k", [(8, 8, 1), (8, 8, 2), (8, 8, 1024), (16, 16, 64),
                                   (8, 16, 1000), (16, 8, 3)])
def test_derived_width_holds_worst_case_sum(a, w, k):
    bits = derived_acc_width(a, w, k)
    worst = k * (1 << (a - 1)) * (1 << (w - 1))  # most negative × most negative, k times
    most_negative_sum = k * -(1 << (a - 1)) * ((1 << (w - 1)) - 1)
    assert worst <= (1 << (bits - 1)) - 1
    assert most_negative_sum >= -(1 << (bits - 1))
    assert bits == a + w + math.ceil(math.log2(k))


def test_json_round_trip_and_derived_fields():
    cfg = AcceleratorConfig(rows=3, cols=5, dataflow="os", a_width=16, w_width=8, max_k=100,
                            fault_hooks=True)
    again = AcceleratorConfig.from_json(cfg.to_json())
    assert again == cfg
    assert cfg.acc_bits == 16 + 8 + 7
    assert AcceleratorConfig(acc_width=40).acc_bits == 40
    assert cfg.name() == "os_3x5_a16w8_acc31_fh"


def test_config_is_frozen():
    cfg = AcceleratorConfig()
    with pytest.raises(AttributeError):
        cfg.rows = 3  # type: ignore[misc]


@pytest.mark.parametrize("field,value", [
    ("median", 3.0), ("median", np.int64(3)), ("median", 3 + 0j), ("median", True),
    ("rows", np.int64(4)), ("rows", 4.0), ("cols", 2 + 0j), ("a_width", np.int8(8)),
    ("acc_width", 30.0), ("fault_hooks", np.bool_(True)), ("bypass", 1),
    ("dataflow", np.str_("ws")), ("checksum", b"both"), ("temporal_batch_bits", "4"),
    ("lcu_mask", 3.0),
])
def test_only_genuine_ints_bools_and_strings(field, value):
    extra = {"lcu": True} if field == "lcu_mask" else {}
    with pytest.raises(ConfigError) as info:
        AcceleratorConfig(**{field: value}, **extra)
    assert info.value.field == field  # named as given, not a derived field at elaboration


def test_error_values_are_repr_escaped_and_cut():
    with pytest.raises(ConfigError) as info:
        AcceleratorConfig(dataflow="ws\n\x1b[31mred")
    msg = str(info.value)
    assert "\n" not in msg and "\x1b" not in msg
    assert "'ws\\n\\x1b[31mred'" in msg
    long = "x" * 500
    with pytest.raises(ConfigError) as info:
        AcceleratorConfig(dataflow=long)
    shown_value = str(info.value).split(" = ", 1)[1].split(": one of")[0]
    assert shown_value.startswith("'xxx") and shown_value.endswith("...")
    assert len(shown_value) == SHOWN_CHARS
    with pytest.raises(ConfigError) as info:
        AcceleratorConfig(rows=10 ** 5000)
    assert "integer of 16610 bits" in str(info.value) and len(str(info.value)) < 200


def test_shown_survives_unprintable_values():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert shown(deep).startswith("<list") or shown(deep).startswith("[[")
    assert shown(-(10 ** 400)) == "<negative integer of 1329 bits>"
    assert shown("a\tb") == "'a\\tb'"


@pytest.mark.parametrize("content,message", [
    (b'{"rows": ' + b"1" * 5000 + b"}", "integer too long"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"rows": 4, "dataflow": "\xff"}', "UTF-8"),
    (b"", "not JSON"),
    (b'{"rows": 4,}', "not JSON"),
    (b'{"median": 3.0}', "invalid median = 3.0"),
    (b'{"rows": NaN}', "invalid rows = nan"),
    (b'"ws"', "JSON object"),
])
def test_bad_config_files_are_config_errors(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        AcceleratorConfig.load(path)


def test_config_file_must_be_a_small_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in ("/dev/null", tmp_path, fifo):  # a FIFO must not block waiting for a writer
        with pytest.raises(ConfigError, match="regular file"):
            AcceleratorConfig.load(path)
    with pytest.raises(ConfigError, match="readable file"):
        AcceleratorConfig.load(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_CONFIG_BYTES + 1) + b"{}")
    with pytest.raises(ConfigError, match="at most"):
        AcceleratorConfig.load(big)


def test_lcu_mask_field():
    cfg = AcceleratorConfig(lcu=True, lcu_mask=0x3F)
    assert AcceleratorConfig.from_json(cfg.to_json()) == cfg
    assert cfg.name().endswith("_lcu64x16m3f")
    assert AcceleratorConfig(lcu=True).lcu_mask is None
    with pytest.raises(ConfigError, match="lcu_mask"):
        AcceleratorConfig(lcu=True, lcu_mask=256)
    with pytest.raises(ConfigError, match="without the LCU"):
        AcceleratorConfig(lcu_mask=3)
@pytest.mark.parametrize("cols", [1, 2, 3, 7, 8, 63, 64, 256])
def test_sanity_width_holds_a_negated_column_sum(cols):
    # The sanity weight is the negated sum of C weights (golden.checksum's bound, derived apart).
    from ftaccel.golden.checksum import negated_sum_width

    cfg = AcceleratorConfig(rows=2, cols=cols, checksum="spatial")
    assert cfg.sanity_width == negated_sum_width(cfg.w_width, cols)
    assert cfg.register_width("weight", cols) == cfg.sanity_width
    assert cfg.register_width("weight", cols - 1) == cfg.w_width


def test_latency_adds_one_cycle_per_stage():
    base = AcceleratorConfig(rows=4, cols=3)
    assert base.latency == 4 + 3 + 1 and base.array_latency == 4 + 3
    assert AcceleratorConfig(rows=4, cols=3, dataflow="os").latency == 4 + 3 + 2
    units = base.replace(afd=True, median=3, checksum="both")
    # three input stages and one sanity column
    assert units.input_stages == 3 and units.latency == base.latency + 3 + 1
    assert units.temporal_batch_max == 2 ** units.temporal_batch_bits - 1
    assert units.bias_in_psum and not base.bias_in_psum
