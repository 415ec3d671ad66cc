"""Every unit's run-time options are checked once: one message from every entry point.

For each bad run-time option of each unit, ``rtlgen matmul``, ``rtlgen infer`` (the options
that are not per product), the Python API (:func:`tb.product.prepare` and
:func:`golden.schedule.build_program`) and, where the option is a campaign protection's key,
the registry's protection validator (:func:`ftaccel.units.protection_spec`) give the same
exit 2 and the same one-line message.  The expected messages are written out here, not read
from the code.  A test also holds the registry against the configuration and the command
line: every configuration field has exactly one option, every run-time flag belongs to one
unit and reaches its options.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ftaccel import units
from ftaccel.app import cli
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.schedule import build_program
from ftaccel.tb.product import RunOptions, prepare

A = np.ones((3, 4), dtype=np.int64)
B = np.ones((4, 4), dtype=np.int64)

#: name -> (configuration fields, command-line flags, API keywords, campaign (kind, spec) or
#: None, per-product only, the message)
CASES = {
    "afd gates": ({"afd": True}, ["--afd-gates", "3"], {"afd": {"gates": 3}},
                  ("afd", {"gates": 3}), False, "invalid afd gates = 3: an integer from 1 to 2"),
    "afd shift": ({"afd": True}, ["--afd-shift", "9"], {"afd": {"shift": 9}},
                  ("afd", {"gamma": 512}), False,
                  "invalid afd shift = 9: an integer from -8 to 8"),
    "afd mode": ({"afd": True}, ["--afd-mode", "blur"], {"afd": {"mode": "blur"}},
                 ("afd", {"mode": "blur"}), False, "invalid afd mode = 'blur': one of drop, clip"),
    "afd missing": ({}, ["--afd-shift", "2"], {"afd": {"shift": 2}}, None, False,
                    "invalid afd = False: true to set the anomaly-suppression controls"),
    "afd off missing": ({}, ["--afd-off"], {"afd": {"enable": 0}}, None, False,
                        "invalid afd = False: true to set the anomaly-suppression controls"),
    "median missing": ({}, ["--median-off"], {"median_enable": False}, None, False,
                       "invalid median = 0: 3 or 5 to switch the median filter at run time"),
    "bypass missing": ({}, ["--bypass-map", "{map}"], {"bypass_map": np.zeros((8, 8), bool)},
                       None, False, "invalid bypass = False: true to use a bypass map"),
    "bypass shape": ({"bypass": True}, ["--bypass-map", "{small}"],
                     {"bypass_map": np.zeros((3, 2), bool)}, None, False,
                     "invalid bypass map shape = (3, 2): (8, 8): one flag per PE"),
    "bypass value": ({"bypass": True}, ["--bypass-map", "{twos}"],
                     {"bypass_map": np.full((8, 8), 2)}, None, False,
                     "invalid bypass map value = 2: 0 (keep) or 1 (bypass)"),
    "temporal batch missing": ({}, ["--temporal-batch", "3"], {"temporal_batch": 3}, None,
                               False, "invalid checksum = 'none': 'temporal' or 'both' to set "
                                      "a temporal batch size"),
    "temporal batch range": ({"checksum": "temporal", "temporal_batch_bits": 8},
                             ["--temporal-batch", "0"], {"temporal_batch": 0},
                             ("sanity", {"checksum": "temporal", "temporal_batch": 0}), False,
                             "invalid temporal batch = 0: an integer from 1 to 255"),
    "checksum threshold": ({"checksum": "spatial"}, ["--checksum-threshold", "-1"],
                           {"checksum_threshold": -1}, None, False,
                           "invalid checksum threshold = -1: an integer from 0 to 67108863"),
    "checksum threshold missing": ({}, ["--checksum-threshold", "1"],
                                   {"checksum_threshold": 1}, None, False,
                                   "invalid checksum = 'none': 'spatial' or 'both' to set the "
                                   "spatial checksum threshold"),
    "temporal threshold": ({"checksum": "temporal"}, ["--temporal-threshold", "256"],
                           {"temporal_threshold": 256}, None, False,
                           "invalid temporal threshold = 256: an integer from 0 to 255"),
    "bias error missing": ({}, ["--bias-error", "0,1"], {"bias_error": (0, 1, None)}, None,
                           True, "invalid bias error = (0, 1, None): none unless a checksum "
                                 "is built (the checks must see the bias)"),
    "bias error column": ({"checksum": "both"}, ["--bias-error", "9,1"],
                          {"bias_error": (9, 1, None)}, None, True,
                          "invalid bias error column = 9: an integer from 0 to 3"),
    "split missing": ({}, ["--split-cols", "1"], {"split": np.arange(4) == 1}, None, True,
                      "invalid lcu = False: true for split columns and LCU pairs"),
    "lcu pair column": ({"lcu": True}, ["--lcu-pairs", "0:9"], {"lcu_pairs": [[0, 9]]}, None,
                        True, "invalid lcu pair column = 9: 0 … 3"),
    "tmr missing": ({}, ["--tmr-triples", "0:1:2"], {"tmr_triples": [[0, 1, 2]]}, None, True,
                    "invalid tmr = 'none': 'word' or 'bitwise' for TMR triples (without the "
                    "on-chip voter, app.protect.VotingEngine votes on the host)"),
    "tmr triple": ({"tmr": "word"}, ["--tmr-triples", "2:1:2"], {"tmr_triples": [[2, 1, 2]]},
                   None, True, "invalid tmr triple = (2, 1, 2): three different columns"),
}


def _cfg_flags(fields: dict) -> list[str]:
    out = []
    for name, value in fields.items():
        field = next(f for f in units.config_fields() if f.name == name)
        out += [field.option] if field.kind == "on" else [field.option, str(value)]
    return out


def _cli(argv, capsys) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, (lines[0] if len(lines) == 1 else "\n".join(lines))


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "B.npy", B)
    np.save(tmp_path / "map.npy", np.zeros((8, 8), np.int64))
    np.save(tmp_path / "small.npy", np.zeros((3, 2), np.int64))
    np.save(tmp_path / "twos.npy", np.full((8, 8), 2))
    return {k: tmp_path / f"{k}.npy" for k in ("A", "B", "map", "small", "twos")}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_one_message_from_every_entry_point(case, files, tmp_path, capsys):
    fields, flags, keywords, campaign, per_product, message = CASES[case]
    cfg = AcceleratorConfig(**fields)
    flags = [f.format(**files) for f in flags]
    expected = f"rtlgen: error: {message}"

    code, err = _cli(["matmul", *_cfg_flags(fields), "--a", files["A"], "--b", files["B"],
                      "-o", tmp_path / "C.npy", *flags], capsys)
    assert (code, err) == (2, expected)
    assert not (tmp_path / "C.npy").exists()

    if not per_product:  # a network takes the same flag, for every layer
        code, err = _cli(["infer", "--model", "digits-mlp", *_cfg_flags(fields), *flags,
                          "-o", tmp_path / "inf"], capsys)
        assert (code, err) == (2, expected)
        assert not (tmp_path / "inf").exists()
    else:  # ... or does not take it at all
        code, err = _cli(["infer", "--model", "digits-mlp", *flags, "-o", tmp_path / "inf"],
                         capsys)
        assert code == 2 and "unrecognized arguments" in err

    with pytest.raises(ConfigError) as api:
        prepare(cfg, A, B, RunOptions(**keywords))
    assert str(api.value) == message
    if "bias_error" not in keywords:  # (build_program's bias_error is the added value)
        with pytest.raises(ConfigError) as program:
            build_program(cfg, A, B, **keywords)
        assert str(program.value) == message

    if campaign is not None:
        kind, spec = campaign
        with pytest.raises(ConfigError) as camp:
            units.protection_spec(kind, spec, AcceleratorConfig())
        assert str(camp.value) == message


def test_every_unit_option_has_a_case():
    """Each unit with run-time options is exercised above, each of its flags at least once."""
    used = {f for case in CASES.values() for f in case[1] if f.startswith("--")}
    flags = {f.flag for f in units.run_flags()}
    assert flags <= used, flags - used


def test_every_config_field_has_exactly_one_option():
    """The dataclass fields, the registry's fields and the CLI's options are the same set."""
    args = vars(cli.build_parser().parse_args(["generate", "-o", "out"]))
    dests = set(args) - {"command", "func", "config", "output"}
    names = [f.name for f in dataclasses.fields(AcceleratorConfig)]
    assert dests == set(names) == set(cli.CONFIG_OPTIONS)
    assert len(names) == len(cli.CONFIG_OPTIONS) == len(units.config_fields())
    options = [f.option for f in units.config_fields()]
    assert len(options) == len(set(options))
    for f in units.config_fields():  # each option sets its own field, and only that one
        value = {"on": [], "off": [], "int": ["3"], "text": ["x"]}[f.kind]
        got = vars(cli.build_parser().parse_args(["generate", "-o", "o", f.option, *value]))
        assert [k for k in names if got[k] is not None] == [f.name], f.option


def test_registry_shapes():
    """One descriptor per name; every keyword owned once; every run flag reaches its unit."""
    names = [u.name for u in units.UNITS]
    assert len(names) == len(set(names))
    keywords = [k for u in units.UNITS if u.options for k in u.options.keywords]
    assert len(keywords) == len(set(keywords))
    for u in units.UNITS:
        if u.options is None:
            continue
        assert u.options.unit == u.name
        for flag in u.options.flags:  # a flag given alone yields this unit's options
            value = {"on": True, "int": 1, "text": "drop", "npy": np.zeros((8, 8)),
                     "columns": [0], "ints": [0, 1], "pairs": [[0, 1]],
                     "triples": [[0, 1, 2]]}[flag.kind]
            got = units.options_from_flags({flag.dest: value}, 4)
            assert list(got) == [u.name], flag.flag


def test_default_options_are_valid_for_every_unit():
    """A unit built with no options given runs with defaults that pass its own check."""
    cfg = AcceleratorConfig(afd=True, median=3, checksum="both", bypass=True, lcu=True)
    for u in units.UNITS:
        if u.options is not None and u.built(cfg):
            u.options().check(cfg, m=2, n=2)


def test_protection_kinds_and_their_specs():
    """Every protection kind's defaults are accepted and give the unit's configuration."""
    base = AcceleratorConfig()
    assert units.protection_kinds() == ("none", "bypass", "afd", "median", "sanity", "lcu",
                                        "tmr")
    for kind in units.protection_kinds():
        changes, keywords = units.protection_spec(kind, {}, base)
        cfg = base.replace(**changes)
        if kind != "none":
            assert units.protection_unit(kind).built(cfg)
        units.check_options(cfg, units.options_from_keywords(keywords))
    with pytest.raises(ConfigError, match="invalid afd protection key = 'gama'"):
        units.protection_spec("afd", {"gama": 2}, base)
    with pytest.raises(ConfigError, match="invalid afd gamma = 3: a power of two"):
        units.protection_spec("afd", {"gamma": 3}, base)
    with pytest.raises(ConfigError, match="invalid protection kind = 'ecc'"):
        units.protection_spec("ecc", {}, base)
