"""Fuzzing the tool's edges: a few hundred generated bad inputs, and random valid configs.

* :func:`test_bad_inputs_fail_cleanly` throws seeded, generated bad configuration files and
  bad command lines (one defect each, on otherwise valid calls of every command: generate,
  matmul (also --flow), verify, synth, demo, infer, campaign, train) at
  ``main([...])`` and asserts for each: exit 2 or 3, exactly one line on stderr, no
  traceback, and the working folder unchanged (nothing written, nothing left behind).
* :func:`test_random_valid_configs_round_trip_and_elaborate`: random valid small
  configurations survive JSON (string and file) unchanged and elaborate to RTLIL.
* Campaigns (issue 30): generated specs with one defect each exit 2 with one line before any
  folder is claimed (:func:`test_bad_campaign_specs_fail_cleanly`); model, data and IDX files
  damaged at random are read or refused with one DataError / ModelError line
  (:func:`test_damaged_model_and_data_files_fail_cleanly`); campaign folders whose chunks are
  damaged at random resume to the uninterrupted trace, byte for byte
  (:func:`test_damaged_chunk_stores_resume_exactly`).

Plain seeded numpy generation (no hypothesis): the ``rng`` fixture prints the seed, and
``SEED=<n>`` replays another stream.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from amaranth.back import rtlil

from ftaccel.app.cli import main
from ftaccel.config import AcceleratorConfig
from ftaccel.rtl_gen.accelerator import TOP_NAME, Accelerator

ROOT = Path(__file__).resolve().parent.parent

# -- bad configuration files ------------------------------------------------------------------
_RANGES = {"rows": (1, 256), "cols": (1, 256), "a_width": (2, 16), "w_width": (2, 16),
           "max_k": (1, 1 << 24), "acc_width": (16, 60), "temporal_batch_bits": (1, 8),
           "lcu_depth": (2, 1 << 16), "lcu_max_pairs": (1, 1 << 16)}
_BOOLS = ("fault_hooks", "output_stage", "bypass", "afd", "lcu")
_CHOICES = {"dataflow": "ws", "median_variant": "plain", "checksum": "none",
            "temporal_mode": "residue"}
_JUNK_STRINGS = ["", "WS", "x" * 300, "ws\n", "\x1b[2J", "none ", "é", "0"]


def _bad_value(rng, field: str):
    """A value that ``field`` must refuse (JSON-representable)."""
    if field in _RANGES:
        lo, hi = _RANGES[field]
        pool = [lo - 1, hi + 1, -(10 ** int(rng.integers(2, 40))), 10 ** int(rng.integers(8, 40)),
                float(lo), str(lo), True, False, [lo], {"v": lo}, "NaN"]
        if field != "acc_width":
            pool.append(None)
        return pool[int(rng.integers(len(pool)))]
    if field == "median":
        return [1, 2, 4, 7, -3, 3.0, "3", True, None, [3]][int(rng.integers(10))]
    if field == "lcu_mask":
        return [256, -1, 3.5, "3", True, [1]][int(rng.integers(6))]
    if field in _BOOLS:
        return [0, 1, "true", "yes", None, 1.0, [], {}][int(rng.integers(8))]
    return [*_JUNK_STRINGS, 1, None, ["ws"], True][int(rng.integers(len(_JUNK_STRINGS) + 4))]


def _bad_config_text(rng) -> tuple[str, bytes]:
    """``(kind, file content)`` of one bad configuration."""
    base = {"rows": 2, "cols": 2}
    kind = int(rng.integers(10))
    if kind < 5:  # one field with a bad value
        field = list(_RANGES) + list(_BOOLS) + list(_CHOICES) + ["median", "lcu_mask"]
        f = field[int(rng.integers(len(field)))]
        v = _bad_value(rng, f)
        extra = {"lcu": True} if f == "lcu_mask" else {}
        text = json.dumps({**base, **extra, f: v}).replace('"NaN"', "NaN")
        return f"field {f}", text.encode()
    if kind == 5:  # a combination the hardware does not have
        combos = [{"dataflow": "is", "checksum": "spatial"}, {"dataflow": "os", "afd": True},
                  {"dataflow": "is", "median": 3}, {"lcu": True, "output_stage": False},
                  {"lcu_mask": 3}, {"checksum": "temporal", "temporal_mode": "exact",
                                    "acc_width": 17}]
        return "combination", json.dumps({**base, **combos[int(rng.integers(len(combos)))]}
                                         ).encode()
    if kind == 6:  # structure
        texts = ['{"rows": 2, "colums": 2}', "[2, 2]", '"ws"', "null", "42", "",
                 '{"rows": 2,', "{rows: 2}", '\ufeff{"rows": 2}', '{"rows": 2} trailing',
                 '{"": 1}', '{"rows": Infinity}']
        return "structure", texts[int(rng.integers(len(texts)))].encode("utf-8")
    if kind == 7:  # too deep or too long to parse
        n = int(rng.integers(2000, 200_000))
        return "deep", (b"[" * n if rng.integers(2) else b'{"a":' * n)
    if kind == 8:
        digits = int(rng.integers(4301, 20_000))
        return "huge integer", b'{"rows": ' + b"7" * digits + b"}"
    raw = json.dumps(base).encode()[:-1] + b', "dataflow": "' + bytes(
        rng.integers(0x80, 0x100, int(rng.integers(1, 6))).astype(np.uint8)) + b'"}'
    return "not UTF-8", raw


# -- bad command lines ------------------------------------------------------------------------
_BASES = {
    "generate": ["generate", "--rows", "2", "--cols", "2", "-o", "out"],
    "matmul": ["matmul", "--rows", "2", "--cols", "2", "--a", "A.npy", "--b", "B.npy", "-o",
               "C.npy"],
    "verify": ["verify", "--rows", "2", "--cols", "2", "--count", "1"],
    "synth": ["synth", "--rows", "2", "--cols", "2", "-o", "s"],
    "demo": ["demo", "--rows", "2", "--cols", "2", "-o", "d"],
    "infer": ["infer", "--rows", "2", "--cols", "2", "--model", "digits-mlp", "--images", "1",
              "-o", "inf"],
    "campaign": ["campaign", str(ROOT / "examples" / "campaign-digits.toml"), "-o", "camp"],
    "train": ["train", "--rows", "2", "--cols", "2", "--model", "digits-mlp", "--epochs", "1",
              "-o", "tr"],
}
#: Commands that take configuration options (``--config``, ``--rows`` ...).
_CONFIGURABLE = ("generate", "matmul", "verify", "synth", "demo", "infer", "train")
_BAD_INTS = ["x", "", "1.5", "1e3", "0x", "9" * 30, "½", "--", "1 2", "١٢"]
_BAD_OPERANDS = ["empty.npy", "npz.npy", "text.npy", "obj.npy", "cube.npy", "half.npy",
                 "complex.npy", "big.npy", "vec.npy", "folder", "fifo", "/dev/null",
                 "/dev/zero", "missing.npy", "", "A6.npy"]
_BAD_OUTPUTS = ["", "/dev/full", "/dev/null", ".", "folder", "fifo", "file.txt/x", "link",
                "A.npy/C.npy"]
#: Bad output folders (an existing folder, or a link to one, is fine): files, devices, links
#: to files or to nothing, paths through a file.
_BAD_FOLDERS = ["", "/dev/null", "file.txt", "fifo", "link", "dangling", "file.txt/x"]
_BAD_MATMUL = [
    ["--fault", "0,0,psum,1,flip,99999"], ["--fault", ""], ["--fault", "1,2,3"],
    ["--fault", "0,0,acc,1,sa0"], ["--fault", "0,0,psum,1,melt"], ["--fault", "5,0,psum,1,sa0"],
    ["--fault", "0,0,psum,99,sa0"], ["--fault", "0,0,psum,x,sa0"], ["--fault=-1,0,psum,1,sa0"],
    ["--shift", "63"], ["--shift=-1"], ["--relu", "--no-output-stage"],
    ["--split-cols", "1"], ["--lcu", "--split-cols", "9"], ["--lcu", "--split-cols", ","],
    ["--lcu", "--lcu-pairs", "1"], ["--lcu", "--lcu-pairs", "0:9"], ["--lcu", "--lcu-depth", "3"],
    ["--temporal-batch", "2"], ["--checksum", "both", "--temporal-batch", "16"],
    ["--checksum-threshold", "1"], ["--checksum", "spatial", "--checksum-threshold=-2"],
    ["--temporal-threshold", "1"], ["--bias-error", "1,2"],
    ["--checksum", "both", "--bias-error", "1"], ["--checksum", "both", "--bias-error", "0,99"],
    ["--bypass-map", "map.npy"], ["--bypass", "--bypass-map", "badmap.npy"],
    ["--afd-gates", "2"], ["--afd", "--afd-gates", "0"], ["--afd", "--afd-shift", "99"],
    ["--median-off"], ["--corrected", "K.npy"], ["--q", "C.npy"], ["--json", "C.npy"],
    ["--q", "/dev/null"], ["--json", "folder"], ["--bias", "cube.npy"], ["--bias", "A.npy"],
    ["--bias", "half.npy"],
    ["--sim", "ghdl"], ["--acc-width", "16", "--a", "N.npy", "--b", "N.npy"],
    ["--lcu-mask", "1"], ["--lcu", "--lcu-mask", "256"],
    ["--tmr-triples", "0:1:2"], ["--lcu", "--tmr-triples", "0:1:2"],
    ["--tmr", "word", "--tmr-triples", "0:1"], ["--tmr", "word", "--tmr-triples", "0:1:9"],
    ["--tmr", "word", "--tmr-triples", "0:1:0"], ["--tmr", "bitwise", "--tmr-triples", ","],
    ["--tmr", "word", "--tmr-triples", "0:x:2"], ["--tmr", "word", "--lcu-pairs", "0:1"],
    ["--tmr", "bitwise", "--split-cols", "1"], ["--tmr", "word", "--lcu-depth", "3"],
]


def _bad_command(rng) -> tuple[str, list[str]]:
    cmd = list(_BASES)[int(rng.integers(len(_BASES)))]
    args = list(_BASES[cmd])
    kind = int(rng.integers(7 if cmd == "matmul" else 5))
    if cmd == "campaign" and kind < 2:  # no configuration options: an unknown option then
        kind = 2
    if kind == 0:  # a bad integer for a configuration option
        opt = ["--rows", "--cols", "--a-width", "--max-k", "--median", "--lcu-depth"][
            int(rng.integers(6))]
        return f"{cmd} {opt}", args + [opt, _BAD_INTS[int(rng.integers(len(_BAD_INTS)))]]
    if kind == 1:  # an out-of-range or mistyped configuration value
        opt, bad = [("--rows", "0"), ("--cols", "257"), ("--a-width", "1"), ("--w-width", "17"),
                    ("--acc-width", "8"), ("--max-k", "0"), ("--median", "4"),
                    ("--dataflow", "rs"), ("--checksum", "all"), ("--temporal-mode", "fast"),
                    ("--median-variant", "fancy"), ("--temporal-batch-bits", "9"),
                    ("--lcu-max-pairs", "0"), ("--dataflow", "x" * 500),
                    ("--dataflow", "ws\n\x1b[31m")][int(rng.integers(15))]
        return f"{cmd} {opt} value", args + [opt, bad]
    if kind == 2:  # the command line itself
        muts = [lambda a: a + ["--frobnicate"], lambda a: a + ["extra"],
                lambda a: a[:1] + ["--rows"], lambda a: [a[0] + "x"] + a[1:],
                lambda a: a + ["--config", ""], lambda a: a + ["--config", "/dev/null"],
                lambda a: a + ["--config", "missing.json"], lambda a: a + ["--config", "folder"]]
        if "-o" in args and cmd != "demo":  # demo's -o has a default
            muts.append(lambda a: a[:a.index("-o")])
        return f"{cmd} syntax", muts[int(rng.integers(len(muts)))](args)
    if cmd == "campaign" and kind == 4:  # a bad spec
        args[1] = ["missing.toml", "/dev/null", "bad.toml", "folder", "file.txt", ""][
            int(rng.integers(6))]
        return "campaign spec", args
    if kind == 3 and "-o" in args:  # a bad output path
        i = args.index("-o") + 1
        pool = _BAD_OUTPUTS if cmd == "matmul" else _BAD_FOLDERS
        args[i] = pool[int(rng.integers(len(pool)))]
        return f"{cmd} -o", args
    if kind == 3 or kind == 4:  # command-specific numbers
        extra = {"verify": [["--count", "0"], ["--seed=-3"], ["--count", "10001"],
                            ["--json", "/dev/null"], ["--sim", "vcs"]],
                 "synth": [["--timeout", "nan"], ["--timeout", "0"], ["--timeout", "inf"],
                           ["--liberty", "/dev/null"], ["--liberty", "missing.lib"],
                           ["--liberty", "folder"]],
                 "demo": [["--seed=-1"], ["--timeout=-1"], ["--sim", "xsim"]],
                 "generate": [["--lcu-mask", "7"], ["--afd", "--dataflow", "os"]],
                 "matmul": [["--shift", "x"], ["--flow", "packed"],
                            ["--flow", "shortened", "--fault", "0,0,psum,1,sa0"],
                            ["--pack-group", "2"], ["--prune"]],
                 "infer": [["--model", "bogus"], ["--model", "/dev/null"], ["--images", "0"],
                           ["--images=-3"], ["--engine", "spice"], ["--data", "missing.npz"],
                           ["--data", "/dev/null"], ["--bypass-map", "missing.npy"],
                           ["--afd", "--afd-gates", "3"], ["--calib", "folder"]],
                 "campaign": [["--workers=-1"], ["--verify-rtl=-2"], ["--sim", "ghdl"],
                              ["--workers", "x"]],
                 "train": [["--lr", "0"], ["--epochs", "0"], ["--method", "bogus"],
                           ["--method", "dropout-in"], ["--data", "missing.npz"],
                           ["--data", "/dev/null"], ["--batch", "0"], ["--drop-rate", "1"],
                           ["--model", "/dev/null"], ["--method", "calibrate"],
                           ["--lr", "nan"]]}[cmd]
        return f"{cmd} option", args + extra[int(rng.integers(len(extra)))]
    if kind == 5:  # matmul: a bad operand file
        which = ["--a", "--b"][int(rng.integers(2))]
        i = args.index(which) + 1
        args[i] = _BAD_OPERANDS[int(rng.integers(len(_BAD_OPERANDS)))]
        return f"matmul {which}", args
    return "matmul run-time option", args + _BAD_MATMUL[int(rng.integers(len(_BAD_MATMUL)))]


def _inputs(folder) -> None:
    rng = np.random.default_rng(0)
    A = rng.integers(-128, 128, (5, 7))
    np.save(folder / "A.npy", A)
    np.save(folder / "B.npy", rng.integers(-128, 128, (7, 4)))
    np.save(folder / "A6.npy", A[:, :6])
    np.save(folder / "N.npy", np.full((2, 2), -128))
    np.save(folder / "vec.npy", np.ones(4, np.int64))
    np.save(folder / "cube.npy", np.ones((2, 2, 2), np.int64))
    np.save(folder / "half.npy", A + 0.5)
    np.save(folder / "complex.npy", A.astype(complex))
    np.save(folder / "big.npy", A * 300)
    np.save(folder / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    np.save(folder / "map.npy", np.zeros((2, 2), np.int64))
    np.save(folder / "badmap.npy", np.array([[0, -1], [2, 0]]))
    np.savez(folder / "npz", a=A)
    os.replace(folder / "npz.npz", folder / "npz.npy")
    (folder / "empty.npy").write_bytes(b"")
    (folder / "text.npy").write_text("not numpy")
    (folder / "file.txt").write_text("x")
    (folder / "folder").mkdir()
    os.mkfifo(folder / "fifo")
    (folder / "link").symlink_to(folder / "file.txt")
    (folder / "dangling").symlink_to(folder / "nothing")
    (folder / "bad.toml").write_text("not = [toml")


def _no_work(*args, **kwargs):
    raise RuntimeError("work started: a bad input was not refused up front")


def test_bad_inputs_fail_cleanly(tmp_path, monkeypatch, capsys, rng, listing):
    monkeypatch.chdir(tmp_path)
    _inputs(tmp_path)
    # Every case must be refused before any work: simulating, generating or synthesising
    # would be a missed check (reported as exit 70, an internal error).
    for target in ("ftaccel.tb.product.rtl_matmul", "ftaccel.rtl_gen.accelerator.generate",
                   "ftaccel.app.demo.generate", "ftaccel.synth.flow.synthesize",
                   "ftaccel.tb.flow.flow_product"):
        monkeypatch.setattr(target, _no_work)
    try:  # training, where its optional dependency is installed
        import ftaccel.app.train.trainer as trainer
    except ImportError:
        trainer = None
    if trainer is not None:
        monkeypatch.setattr(trainer, "train", _no_work)
        monkeypatch.setattr(trainer, "calibrate_bypass", _no_work)
    cases: list[tuple[str, list[str], bytes | None]] = []
    for _ in range(200):
        kind, text = _bad_config_text(rng)
        cmd = _CONFIGURABLE[int(rng.integers(len(_CONFIGURABLE)))]
        cases.append((f"config: {kind}", [*_BASES[cmd], "--config", "c.json"], text))
    for _ in range(250):
        kind, args = _bad_command(rng)
        cases.append((f"cli: {kind}", args, None))
    seen: Counter = Counter()
    for kind, args, config in cases:
        if config is not None:
            (tmp_path / "c.json").write_bytes(config)
        before = listing(tmp_path)
        capsys.readouterr()
        rc = main(args)
        out, err = capsys.readouterr()
        what = f"{kind}: rtlgen {' '.join(map(repr, args))} -> exit {rc}\n{err}{out}"
        assert rc in (2, 3), what
        assert len(err.splitlines()) == 1 and err.startswith("rtlgen: error: "), what
        assert "Traceback" not in err, what
        assert listing(tmp_path) == before, what
        seen[kind.split(":")[0] + ": " + kind.split(": ")[1].split(" ")[0]] += 1
    print(f"{len(cases)} bad inputs, every one exit 2/3 with one line:", dict(seen))


# -- random valid configurations --------------------------------------------------------------
def random_valid_config(rng) -> AcceleratorConfig:
    """A valid small configuration drawn over every field (constraints respected)."""
    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    df = pick(["ws", "is", "os"])
    a, w = int(rng.integers(2, 17)), int(rng.integers(2, 17))
    d = {"rows": int(rng.integers(1, 4)), "cols": int(rng.integers(1, 4)), "dataflow": df,
         "a_width": a, "w_width": w, "max_k": int(rng.integers(1, 5000)),
         "fault_hooks": bool(rng.integers(2)), "output_stage": bool(rng.integers(2)),
         "bypass": bool(rng.integers(2))}
    tbb = int(rng.integers(1, 9))
    if df == "ws":
        d.update(afd=bool(rng.integers(2)), median=pick([0, 3, 5]),
                 median_variant=pick(["plain", "shared"]),
                 checksum=pick(["none", "spatial", "temporal", "both"]),
                 temporal_mode=pick(["residue", "exact"]), temporal_batch_bits=tbb)
    if d["output_stage"] and rng.integers(2):
        d.update(lcu=True, lcu_depth=int(rng.integers(2, 65)),
                 lcu_max_pairs=int(rng.integers(1, 9)),
                 lcu_mask=None if rng.integers(2) else int(rng.integers(0, 1 << a)))
    if rng.integers(2):
        lo = a + w + (tbb if d.get("checksum") in ("temporal", "both")
                      and d.get("temporal_mode") == "exact" else 0)
        d["acc_width"] = int(rng.integers(lo, 61))
    return AcceleratorConfig.from_dict(d)


def test_random_valid_configs_round_trip_and_elaborate(tmp_path, rng):
    for i in range(10):
        cfg = random_valid_config(rng)
        assert AcceleratorConfig.from_json(cfg.to_json()) == cfg
        (tmp_path / f"{i}.json").write_text(cfg.to_json())
        assert AcceleratorConfig.load(tmp_path / f"{i}.json") == cfg
        assert AcceleratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        top = Accelerator(cfg)
        text = rtlil.convert(top, name=TOP_NAME, emit_src=False)
        assert f"module \\{TOP_NAME}" in text, cfg
        for pe in top.array.pe_modules:
            assert f"module \\{pe.module_name}" in rtlil.convert(pe, name=pe.module_name,
                                                                 emit_src=False)


# -- campaign specs, model and data files, chunk stores (issue 30) ----------------------------
_SPEC = {
    "campaign": {"name": "fuzz", "seed": 7, "chunk": 3},
    "network": {"model": "digits-mlp"},
    "data": {"images": 12},
    "accelerator": {"rows": 4, "cols": 4},
    "protections": [{"kind": "none"}, {"kind": "sanity", "checksum": "both"},
                    {"kind": "bypass", "threshold": 0.5},
                    {"kind": "afd", "gates": 1, "mode": "drop", "gamma": 2,
                     "layers": ["fc1"]}],
    "faults": {"model": "register", "registers": ["psum", "act"], "modes": ["sa0", "flip"],
               "layers": ["fc1"]},
    "sample": {"method": "statistical", "margin": 0.25, "confidence": 0.9},
}
_NAN, _INF = float("nan"), float("inf")
#: Per spec key, values it must refuse.
_BAD_SPEC_VALUES = {
    ("campaign", "name"): ["", "a\nb", "\x1b[2J", "x" * 300, 3, True, ["n"]],
    ("campaign", "seed"): [-1, 1 << 63, 1.5, "1", True, [1], _NAN],
    ("campaign", "chunk"): [0, -3, 10**7, 2.0, "3", False],
    ("campaign", "max_items"): [0, 10**8, -1, 1.5],
    ("network", "model"): ["bogus", "", "missing.npz", "fifo.npz", "/dev/zero", "folder.npz",
                           "bad.npz", 1, ["digits-mlp"]],
    ("network", "calib"): ["missing.npz", "fifo.npz", "bad.npz", 7],
    ("network", "permutation"): ["missing.json", "fifo.json", "deep.json", "bad.json", 1],
    ("data", "source"): ["missing.npz", "fifo.npz", "bad.npz", "labels11.npz", "u64.npz",
                         "nan.npz", "x.idx", "a,b", 5],
    ("data", "images"): [0, -1, 10**9, 1.5, "12", True],
    ("accelerator", "rows"): [0, -1, 300, 2.5, "4", True],
    ("accelerator", "dataflow"): ["rs", "", 3],
    ("accelerator", "tmr"): ["word", "bitwise"],
    ("accelerator", "checksum"): ["both"],
    ("accelerator", "flow"): ["shortened"],
    ("accelerator", "frobnicate"): [1],
    ("faults", "model"): ["cosmic", "", 1],
    ("faults", "registers"): [[], ["psum", "psum"], ["acc"], "psum", [1], [True]],
    ("faults", "modes"): [[], ["sa0", "sa0"], ["melt"], "sa0"],
    ("faults", "layers"): [[], ["fc1", "fc1"], ["fc9"], [True], "fc1", [1.5]],
    ("faults", "bits"): [[8, 20]],  # only for pe_profile
    ("sample", "method"): ["sweep", "census", 1],
    ("sample", "margin"): [0, 1, -0.1, _NAN, _INF, 1e-300, "0.1", True],
    ("sample", "confidence"): [0, 1, 0.9999999999999999, _NAN, -1, 2],
    ("sample", "rates"): [[0.1]],  # not for statistical sampling
    ("verify", "images"): [0, -3, 10**6, 1.5],
    ("protections", 1, "name"): ["none", "", "a|b", "x" * 70, "sanity-both\n"],
    ("protections", 1, "checksum"): ["all", 1],
    ("protections", 1, "temporal_batch"): [0, 256, 1.5],
    ("protections", 2, "threshold"): [_NAN, -1, _INF, 2, "0.5"],
    ("protections", 3, "gamma"): [3, 0, -2, _NAN, _INF, 2**40],
    ("protections", 3, "layers"): [[], ["fc1", "fc1"], ["nope"], [1]],
    ("protections", 3, "gates"): [0, 3, 1.0],
    ("protections", 0, "name"): ["base"],
    ("protections", 0, "kind"): ["quantum", "", 1],
    ("protections", 4): [{"kind": "lcu"}, {"kind": "tmr", "nvf_threshold": 120},
                         {"kind": "tmr", "protected": "nowhere"}, {"kind": "none"},
                         {"kind": "sanity", "checksum": "both"}, 3],
}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v > 0 else "-inf") if v in (_INF, -_INF) \
            else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _toml(spec: dict) -> str:
    lines = []
    for section, body in spec.items():
        if section == "protections":
            if not body:
                lines.append("protections = []")
            for p in body:
                if isinstance(p, dict):
                    lines += ["[[protections]]"] + [f"{k} = {_toml_value(v)}"
                                                    for k, v in p.items()]
                else:
                    lines.append(f"protections = {_toml_value(body)}")
                    break
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def _bad_spec(rng) -> tuple[str, bytes]:
    """``(what, spec bytes)``: the valid spec with one defect."""
    import copy

    spec = copy.deepcopy(_SPEC)
    kind = int(rng.integers(12))
    if kind < 8:  # one key with a value it must refuse
        keys = list(_BAD_SPEC_VALUES)
        key = keys[int(rng.integers(len(keys)))]
        pool = _BAD_SPEC_VALUES[key]
        value = pool[int(rng.integers(len(pool)))]
        if key == ("protections", 4):
            spec["protections"].append(value)
        else:
            *path, last = key
            target = spec
            for k in path:
                target = target.setdefault(k, {}) if isinstance(k, str) else target[k]
            target[last] = value
        return f"{'.'.join(map(str, key))} = {value!r}"[:80], _toml(spec).encode()
    if kind == 8:  # a missing or unknown key or section
        muts = [lambda s: s["network"].pop("model"), lambda s: s.__setitem__("sampel", {}),
                lambda s: s["faults"].__setitem__("bogus", 1),
                lambda s: s["protections"][1].__setitem__("gamma", 2),
                lambda s: s.__setitem__("protections", []),
                lambda s: s["protections"][1].pop("kind")]
        muts[int(rng.integers(len(muts)))](spec)
        return "structure", _toml(spec).encode()
    text = _toml(spec).encode()
    if kind == 9:  # cut short, before the model it must name
        end = text.index(b'model = "digits-mlp"') + len(b'model = "digits-mlp"') - 1
        return "truncated", text[: int(rng.integers(1, end))]
    if kind == 10:  # bytes that are not UTF-8, or a NUL
        i = int(rng.integers(len(text)))
        return "bytes", text[:i] + bytes([int(rng.choice([0x00, 0xff, 0xc3, 0x80]))]) + text[i:]
    n = int(rng.integers(1500, 50_000))
    return "deep or huge", text + (b"x = " + b"[" * n + b"]" * n if rng.integers(2)
                                   else b"y = " + b"9" * (4301 + n))


def _campaign_inputs(folder: Path) -> None:
    from ftaccel.app.datasets import digits

    ds = digits("test")
    np.savez(folder / "labels11.npz", images=ds.images[:12], labels=np.full(12, 11))
    np.savez(folder / "u64.npz", images=ds.images[:12],
             labels=np.full(12, 2**64 - 1, np.uint64))
    np.savez(folder / "nan.npz", images=np.full((12, 64), np.nan), labels=ds.labels[:12])
    for name in ("fifo.npz", "fifo.json"):
        os.mkfifo(folder / name)
    (folder / "folder.npz").mkdir()
    (folder / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    (folder / "bad.json").write_text('{"layers": [{"layer": "fc1", "permutation": [1.5]}]}')
    (folder / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (folder / "x.idx").write_bytes(b"\x00\x00\x08\x03" + b"\xff" * 12)


def test_bad_campaign_specs_fail_cleanly(tmp_path, monkeypatch, capsys, rng, listing):
    """Generated specs with one defect each: exit 2, one line, before any chunk or folder."""
    from ftaccel.app.campaign_store import Campaign

    monkeypatch.chdir(tmp_path)
    _campaign_inputs(tmp_path)
    monkeypatch.setattr(Campaign, "claim", _no_work)
    (tmp_path / "spec.toml").write_text(_toml(_SPEC))
    from ftaccel.app.campaign import load_spec

    load_spec(tmp_path / "spec.toml")  # the base spec is valid
    seen: Counter = Counter()
    for _ in range(120):
        what, data = _bad_spec(rng)
        (tmp_path / "spec.toml").write_bytes(data)
        before = listing(tmp_path)
        capsys.readouterr()
        rc = main(["campaign", "spec.toml", "-o", "out", "--workers", "0"])
        out, err = capsys.readouterr()
        msg = f"{what}: exit {rc}\n{err}"
        assert rc == 2, msg
        assert len(err.splitlines()) == 1 and err.startswith("rtlgen: error: "), msg
        assert listing(tmp_path) == before, msg
        seen[what.split(" = ")[0]] += 1
    print(f"{sum(seen.values())} bad specs, every one exit 2 with one line:", dict(seen))


def _damaged(rng, data: bytes) -> bytes:
    """``data`` cut, with bytes flipped, inserted or zeroed (one or two defects)."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 3))):
        kind = int(rng.integers(4))
        i = int(rng.integers(len(out)))
        if kind == 0:
            out = out[:i]
        elif kind == 1:
            out[i] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            out[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 9))).astype(np.uint8))
        else:
            out[i:i + int(rng.integers(1, 64))] = bytes(min(64, len(out) - i))
        if not out:
            break
    return bytes(out)


def test_damaged_model_and_data_files_fail_cleanly(tmp_path, rng):
    """Model ``.npz``, data ``.npz`` and IDX files with random damage.

    Read, or refused with one DataError / ModelError line naming the file; never another
    exception, never a hang.
    """
    import gzip
    import io

    from ftaccel.app.datasets import DataError, digits, load_data
    from ftaccel.app.network import Network
    from ftaccel.golden.network import Model, ModelError

    ds = digits("test")
    buf = io.BytesIO()
    np.savez(buf, images=ds.images[:20], labels=ds.labels[:20])
    data_plain = buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, images=ds.images[:20], labels=ds.labels[:20])
    data_zip = buf.getvalue()
    model = Network.builtin("digits-mlp").model.to_bytes()
    idx_img = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (20, 8, 8)) + \
        (ds.images[:20] * 16).astype(np.uint8).tobytes()
    idx_lab = b"\x00\x00\x08\x01" + (20).to_bytes(4, "big") + ds.labels[:20].astype(
        np.uint8).tobytes()
    kinds: Counter = Counter()
    for i in range(150):
        which = int(rng.integers(5))
        if which < 2:
            p = tmp_path / f"d{i}.npz"
            p.write_bytes(_damaged(rng, (data_plain, data_zip)[which]))
            read, errors = (lambda p=p: load_data(str(p))), DataError
        elif which == 2:
            p = tmp_path / f"m{i}.npz"
            p.write_bytes(_damaged(rng, model))
            read, errors = (lambda p=p: Model.load(p)), ModelError
        else:
            img, lab = tmp_path / f"i{i}-idx", tmp_path / f"l{i}-idx"
            raw = _damaged(rng, idx_img) if rng.integers(2) else idx_img
            img.write_bytes(gzip.compress(raw) if which == 4 else raw)
            lab.write_bytes(_damaged(rng, idx_lab))
            read, errors = (lambda a=img, b=lab: load_data(f"{a},{b}")), DataError
        try:
            read()
            kinds["read"] += 1
        except errors as exc:
            assert len(str(exc).splitlines()) == 1, exc
            kinds["refused"] += 1
    print("damaged model/data files:", dict(kinds))
    assert kinds["refused"] > 50


def test_damaged_chunk_stores_resume_exactly(tmp_path, rng, monkeypatch):
    """A campaign folder with chunks damaged at random resumes exactly.

    The resumed trace is the uninterrupted one, and every damaged chunk is named and
    computed again.
    """
    from ftaccel.app.campaign import run_campaign

    # the plots say nothing about the chunks and take most of a resume's time
    monkeypatch.setattr("ftaccel.app.campaign_report.write_plots", lambda *a: [])
    light = {**_SPEC, "campaign": {**_SPEC["campaign"], "chunk": 1},
             "protections": [{"kind": "none"}, {"kind": "bypass"}],
             "faults": {"model": "register", "registers": ["act"], "modes": ["flip"]}}
    spec = tmp_path / "spec.toml"
    spec.write_text(_toml(light))
    ref = tmp_path / "ref"
    report = run_campaign(spec, ref, workers=0, progress=False, log=lambda *a, **k: None)
    trace = (ref / "trace.csv").read_bytes()
    n = report["chunks"]
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    for _ in range(6):
        hit = sorted({int(c) for c in rng.choice(n, size=int(rng.integers(1, 3)),
                                                 replace=False)})
        for c in hit:
            p = out / "chunks" / f"chunk-{c:06d}.json"
            kind = int(rng.integers(4))
            if kind == 0:
                p.write_bytes(_damaged(rng, p.read_bytes()))
            elif kind == 1:  # another chunk's file under this name
                other = (c + 1) % n
                p.write_bytes((out / "chunks" / f"chunk-{other:06d}.json").read_bytes())
            elif kind == 2:
                p.unlink()
                p.symlink_to(f"chunk-{(c + 1) % n:06d}.json")
            else:
                p.unlink()
                p.mkdir()
        res = run_campaign(spec, out, workers=0, progress=False, log=lambda *a, **k: None)
        assert (out / "trace.csv").read_bytes() == trace, hit
        rejected = sorted(r["chunk"] for r in res["chunks_rejected"])
        assert rejected == hit or (rejected and set(rejected) <= set(hit)), (hit, rejected)
