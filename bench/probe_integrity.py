"""Probe ``rtlgen campaign`` and its neighbours as a hostile user would (issue 30).

Families: campaign specs, command options, model/data/permutation/profile files, ONNX file
contents, kills and resumes, corrupted chunks, concurrency, output safety, numerics.  Each
probe knows what a correct tool does (the exit code, one error line, nothing written where it
must not be, a trace identical to an uninterrupted run, numbers equal to an independent
computation) and is counted in one column:

``clean``        as expected;
``wrong exit``   another exit code (an internal error is 70; a hang is stopped and counted);
``unsafe``       something written or left where it must not be (files, run folders,
                 temporaries, processes);
``wrong result`` exit 0 with a number or trace unlike the reference;
``lost data``    exit 0 with a fault missing or counted twice.

Refused-input probes run ``main()`` in this process (a SIGALRM stops a hang); kills,
signals and concurrency run the command line in subprocesses.  About 5–10 minutes on two
loaded cores.

    python bench/probe_integrity.py [--kills 10] [--seed 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ftaccel.app.campaign import run_campaign
from ftaccel.app.cli import main
from ftaccel.app.datasets import digits

COLUMNS = ("tried", "clean", "wrong exit", "unsafe", "wrong result", "lost data")
RESULTS: dict = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
DETAILS: list = []

SPEC = """
[campaign]
name = "probe"
seed = 7
chunk = {chunk}
[network]
model = "digits-mlp"
{network}
[data]
images = 12
{data}
[accelerator]
rows = 4
cols = 4
{accelerator}
[[protections]]
kind = "none"
[[protections]]
kind = "sanity"
{protection}
[faults]
model = "register"
{faults}
[sample]
method = "statistical"
margin = 0.25
confidence = 0.9
{sample}
"""


def spec(chunk: int = 3, **parts) -> str:
    keys = ("network", "data", "accelerator", "protection", "faults", "sample")
    return SPEC.format(chunk=chunk, **{k: parts.get(k, "") for k in keys})


def record(family: str, name: str, column: str, note: str = "") -> None:
    RESULTS[family]["tried"] += 1
    RESULTS[family][column] += 1
    if column != "clean":
        DETAILS.append({"family": family, "probe": name, "column": column, "note": note})


def listing(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*")):
        st = os.lstat(p)
        if os.path.islink(p):
            out[str(p)] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p)] = ("other", st.st_mode)
    return out


class Hang(Exception):
    """A probe that did not return in time."""


@contextlib.contextmanager
def deadline(seconds: int):
    def hung(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def call(args: list[str], seconds: int = 120) -> tuple[int | str, list[str]]:
    """``main(args)`` in this process: (exit code or "hang", stderr lines)."""
    err = io.StringIO()
    try:
        with deadline(seconds), contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(io.StringIO()):
            rc = main(args)
    except Hang:
        rc = "hang"
    return rc, err.getvalue().strip().splitlines()


def refused(family: str, name: str, args: list[str], work: Path, watch: Path | None = None,
            expect: int = 2) -> None:
    """A probe that must be refused: exit ``expect``, one error line, nothing changed."""
    before = listing(watch or work)
    rc, err = call(args)
    errors = [ln for ln in err if ln.startswith("rtlgen: error:")]
    if rc != expect or len(errors) != 1 or any("Traceback" in ln for ln in err):
        record(family, name, "wrong exit", f"exit {rc}: {' | '.join(err)[-300:]}")
    elif listing(watch or work) != before:
        record(family, name, "unsafe", "files changed")
    else:
        record(family, name, "clean")


# -- fixtures -----------------------------------------------------------------------------------

def make_inputs(work: Path) -> None:
    ds = digits("test")
    np.savez(work / "data.npz", images=ds.images[:12], labels=ds.labels[:12])
    np.savez(work / "labels10.npz", images=ds.images[:12], labels=np.full(12, 10))
    np.savez(work / "u64.npz", images=ds.images[:12],
             labels=np.full(12, 2**64 - 1, dtype=np.uint64))
    np.savez(work / "nan.npz", images=np.full((12, 64), np.nan), labels=ds.labels[:12])
    np.savez(work / "noimages.npz", labels=ds.labels[:12])
    buf = io.BytesIO()
    np.savez_compressed(buf, images=ds.images[:12], labels=ds.labels[:12])
    (work / "truncated.npz").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (work / "badzip.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    (work / "empty.npz").write_bytes(b"")
    (work / "text.npz").write_text("images and labels")
    import numpy.lib.format as npf

    head = io.BytesIO()
    npf.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False,
                                      "shape": (10**10, 64)})
    import zipfile

    with zipfile.ZipFile(work / "declared-huge.npz", "w") as zf:
        zf.writestr("images.npy", head.getvalue() + b"x" * 64)
        zf.writestr("labels.npy", head.getvalue() + b"x" * 64)
    big = (1 << 32) - 1
    (work / "overflow-idx").write_bytes(bytes([0, 0, 8, 3]) + big.to_bytes(4, "big") * 3 + b"x")
    (work / "labels-idx").write_bytes(bytes([0, 0, 8, 1]) + (12).to_bytes(4, "big")
                                      + bytes(12))
    (work / "images-idx").write_bytes(bytes([0, 0, 8, 3]) + (12).to_bytes(4, "big")
                                      + (8).to_bytes(4, "big") * 2 + bytes(12 * 64))
    import gzip

    (work / "bomb-idx.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (2**31).to_bytes(
        4, "big") + bytes(1 << 30 | 1 << 20)))
    for name in ("fifo.npz", "fifo.onnx", "fifo.json", "fifo.toml", "fifo-idx"):
        os.mkfifo(work / name)
    (work / "folder.npz").mkdir()
    perm = {"format": "ftaccel-permutation", "layers": [
        {"layer": "fc1", "permutation": [float(i) for i in range(32)]}]}
    (work / "float-perm.json").write_text(json.dumps(perm))
    (work / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (work / "huge-int.json").write_text('{"layers": ' + "9" * 5000 + "}")
    (work / "latin1.json").write_bytes(b'{"layers": "\xe9"}')
    (work / "noperm.json").write_text('{"layers": [{"layer": "fc1"}]}')
    (work / "profile-bad.json").write_text('{"profile": [[0.1, "x"]]}')
    (work / "profile-nan.json").write_text('{"profile": [[NaN, 0.1], [0.1, 0.1]]}')
    make_models(work)


def make_models(work: Path) -> None:
    from ftaccel.app.network import Network

    model = Network.builtin("digits-mlp").model
    (work / "model.npz").write_bytes(model.to_bytes())
    raw = model.to_bytes()
    (work / "model-truncated.npz").write_bytes(raw[: len(raw) // 3])
    (work / "model-flipped.npz").write_bytes(raw[:200] + bytes([raw[200] ^ 0xFF]) + raw[201:])
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["protect", "--model", "digits-mlp", "--rows", "4", "--cols", "4",
                     "--method", "lcu", "--nvf-threshold", "5", "--images", "40", "-o",
                     str(work / "prot")]) == 0
    doc = json.loads((work / "prot" / "protection.json").read_text())
    for name, edit in (("units", lambda d: d["layers"][0]["units"].__setitem__("turbo", 1)),
                       ("float", lambda d: d["layers"][0].__setitem__(
                           "permutation", [float(x) for x in d["layers"][0]["permutation"]])),
                       ("layers", lambda d: d.__setitem__("layers", 5))):
        d = json.loads(json.dumps(doc))
        edit(d)
        (work / f"prot-{name}").mkdir()
        shutil.copy(work / "prot" / "model.npz", work / f"prot-{name}" / "model.npz")
        (work / f"prot-{name}" / "protection.json").write_text(json.dumps(d))
    make_onnx(work)


def make_onnx(work: Path) -> None:
    """ONNX files with bad contents (the graph helper's importer checks them)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return

    def gemm_model(w: np.ndarray, name: str, nodes=True, extra_init=()):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])
        inits = [numpy_helper.from_array(w, "W"), *extra_init]
        node = [helper.make_node("Gemm", ["x", "W"], ["y"])] if nodes else []
        g = helper.make_graph(node, "g", [x], [y], inits)
        onnx.save(helper.make_model(g), work / name)

    w = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    gemm_model(w, "ok.onnx")
    bad = w.copy()
    bad[0, 0] = np.nan
    gemm_model(bad, "nan.onnx")
    bad = w.copy()
    bad[1, 1] = np.inf
    gemm_model(bad, "inf.onnx")
    gemm_model(w, "no-nodes.onnx", nodes=False)
    gemm_model(w.reshape(1, 64, 10), "gemm-3d.onnx")
    gemm_model(np.ones((1, 1), np.float32), "gemm-1x1.onnx")
    # A STRING initializer no node reads (e.g. skl2onnx's class labels once the head is
    # dropped) is harmless and must import; one a node reads must be refused.
    gemm_model(w, "string-init-unused.onnx", extra_init=[helper.make_tensor(
        "S", TensorProto.STRING, [1], [b"x"])])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])
    g = helper.make_graph([helper.make_node("Gemm", ["x", "W", "S"], ["y"])], "g", [x], [y],
                          [numpy_helper.from_array(w, "W"),
                           helper.make_tensor("S", TensorProto.STRING, [1], [b"x"])])
    onnx.save(helper.make_model(g), work / "string-init-used.onnx")
    gemm_model(w.astype(np.complex64), "complex.onnx")
    m = onnx.load(work / "ok.onnx")
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.dims[:] = [1 << 20, 1 << 20]
    onnx.save(m, work / "huge-declared.onnx")
    m = onnx.load(work / "ok.onnx")
    onnx.save(m, work / "short-ext.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="short-ext.data", size_threshold=0)
    data = work / "short-ext.data"
    data.write_bytes(data.read_bytes()[:100])


# -- families ------------------------------------------------------------------------------------

def family_specs(work: Path) -> None:
    fam = "campaign specs"
    sweep = spec().replace('model = "register"', 'model = "bit_errors"').replace(
        'method = "statistical"\nmargin = 0.25\nconfidence = 0.9', 'method = "sweep"')
    cases = {
        'protection named "none"': spec(protection='name = "none"'),
        "baseline renamed": spec().replace('kind = "none"', 'kind = "none"\nname = "b"'),
        "duplicate registers": spec(faults='registers = ["psum", "psum"]'),
        "duplicate modes": spec(faults='modes = ["sa0", "sa0"]'),
        "duplicate layers": spec(faults='layers = ["fc1", 0]'),
        "duplicate rates": sweep + "rates = [0.1, 0.1]\n",
        "duplicate protection names": spec(protection='name = "x"\n[[protections]]\n'
                                                      'kind = "bypass"\nname = "x"'),
        "protection name with escapes": spec(protection='name = "\\u001b[2Jx"'),
        "negative seed": spec().replace("seed = 7", "seed = -1"),
        "seed 2**63": spec().replace("seed = 7", f"seed = {2**63}"),
        "chunk 0": spec(chunk=0),
        "images 0": spec(data="").replace("images = 12", "images = 0"),
        "confidence 1 - 2**-53": spec().replace("confidence = 0.9",
                                                "confidence = 0.9999999999999999"),
        "confidence nan": spec().replace("confidence = 0.9", "confidence = nan"),
        "margin 1e-300": spec().replace("margin = 0.25", "margin = 1e-300"),
        "margin inf": spec().replace("margin = 0.25", "margin = inf"),
        "trials 10**12": sweep + "rates = [0.1]\ntrials = 1000000000000\n",
        "exhaustive over the cap": spec().replace(
            'method = "statistical"\nmargin = 0.25\nconfidence = 0.9', 'method = "exhaustive"'),
        "bypass threshold nan": spec().replace('kind = "sanity"',
                                               'kind = "bypass"\nthreshold = nan'),
        "bypass threshold -1": spec().replace('kind = "sanity"',
                                              'kind = "bypass"\nthreshold = -1'),
        "bypass threshold inf": spec().replace('kind = "sanity"',
                                               'kind = "bypass"\nthreshold = inf'),
        "bits of booleans": sweep.replace('model = "bit_errors"', 'model = "pe_profile"\n'
                                          "bits = [true, true]") + "rates = [0.1]\n",
        "verify.images 0": spec() + "[verify]\nimages = 0\n",
        "verify.images -3": spec() + "[verify]\nimages = -3\n",
        "faults.layers empty": spec(faults="layers = []"),
        "faults.layers unknown": spec(faults='layers = ["fc9"]'),
        "accelerator tmr": spec(accelerator='tmr = "word"'),
        "accelerator flow": spec(accelerator='flow = "shortened"'),
        "accelerator unknown key": spec(accelerator="turbo = true"),
        "unknown section": spec() + "[sampel]\nx = 1\n",
        "unknown unit key": spec(protection="turbo = 1"),
        "pe_bypass without bypass": sweep.replace('"bit_errors"', '"pe_bypass"')
        + "rates = [0.1]\n",
        "afd gamma 3": spec(protection='[[protections]]\nkind = "afd"\ngamma = 3'),
        "median window 4": spec(protection='[[protections]]\nkind = "median"\nwindow = 4'),
        "lcu without threshold": spec(protection='[[protections]]\nkind = "lcu"'),
        "tmr threshold 120": spec(protection='[[protections]]\nkind = "tmr"\n'
                                             "nvf_threshold = 120"),
        "not UTF-8": spec().encode() + b"# \xff\xfe\n",
        "nested too deeply": spec() + "x = " + "[" * 5000 + "]" * 5000 + "\n",
        "integer of 5,000 digits": spec().replace("seed = 7", "seed = " + "7" * 5000),
        "not TOML": "[campaign\nseed = 1",
        "empty": "",
        "a list, not tables": "protections = 3\n",
    }
    for name, text in cases.items():
        p = work / "spec.toml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        refused(fam, name, ["campaign", str(p), "-o", str(work / "out"), "--workers", "0"],
                work)
    for name, path in (("spec is a FIFO", "fifo.toml"), ("spec is /dev/zero", "/dev/zero"),
                       ("spec is a folder", "folder.npz"), ("spec missing", "nope.toml")):
        refused(fam, name, ["campaign", str(work / path) if "/" not in path else path, "-o",
                            str(work / "out")], work)


def family_commands(work: Path) -> None:
    fam = "commands"
    s = work / "ok.toml"
    s.write_text(spec())
    camp = ["campaign", str(s), "-o", str(work / "out")]
    cases = {
        "--workers -1": camp + ["--workers=-1"],
        "--workers x": camp + ["--workers", "x"],
        "--verify-rtl -2": camp + ["--verify-rtl=-2"],
        "--scheduler nonsense://x": camp + ["--scheduler", "nonsense://x"],
        "--scheduler ''": camp + ["--scheduler", ""],
        "--scheduler unreachable": camp + ["--scheduler", "tcp://127.0.0.1:1"],
        "--scheduler port 99999": camp + ["--scheduler", "127.0.0.1:99999"],
        "--scheduler ':::'": camp + ["--scheduler", ":::"],
        "--sim ghdl": camp + ["--sim", "ghdl"],
        "unknown option": camp + ["--frobnicate"],
        "nvf --seed -1": ["nvf", "--model", "digits-mlp", "--seed=-1", "-o", str(work / "o")],
        "protect --seed -1": ["protect", "--model", "digits-mlp", "--method", "lcu",
                              "--nvf-threshold", "5", "--seed=-1", "-o", str(work / "o")],
        "schedule --seed -1": ["schedule", "--model", "digits-mlp", "--fr-max", "0.01",
                               "--seed=-1", "-o", str(work / "o")],
        "schedule --profile-seed -1": ["schedule", "--model", "digits-mlp", "--fr-max", "0.01",
                                       "--profile-seed=-1", "-o", str(work / "o")],
        "schedule --test-images 0": ["schedule", "--model", "digits-mlp", "--fr-max", "0.01",
                                     "--test-images", "0", "-o", str(work / "o")],
        "infer --images 0": ["infer", "--model", "digits-mlp", "--images", "0", "-o",
                             str(work / "o")],
        "nvf --images 0": ["nvf", "--model", "digits-mlp", "--images", "0", "-o",
                           str(work / "o")],
        "protect --nvf-threshold nan": ["protect", "--model", "digits-mlp", "--method", "lcu",
                                        "--nvf-threshold", "nan", "-o", str(work / "o")],
        "demo --seed -1": ["demo", "--seed=-1", "-o", str(work / "o")],
    }
    for name, args in cases.items():
        refused(fam, name, args, work)


def family_files(work: Path) -> None:
    fam = "model/data files"
    made = []

    def camp(text: str | None = None, **parts):
        s = work / f"f{len(made)}.toml"
        made.append(s)
        s.write_text(text if text is not None else spec(**parts))
        return ["campaign", str(s), "-o", str(work / "out"), "--workers", "0"]

    inf = ["infer", "--model", "digits-mlp", "--images", "12", "-o", str(work / "o")]
    cases = {
        "--data FIFO": inf + ["--data", str(work / "fifo.npz")],
        "--data /dev/zero": inf + ["--data", "/dev/zero"],
        "--data folder.npz": inf + ["--data", str(work / "folder.npz")],
        "--data truncated .npz": inf + ["--data", str(work / "truncated.npz")],
        "--data BadZipFile": inf + ["--data", str(work / "badzip.npz")],
        "--data empty .npz": inf + ["--data", str(work / "empty.npz")],
        "--data text .npz": inf + ["--data", str(work / "text.npz")],
        "--data declared 5 TB": inf + ["--data", str(work / "declared-huge.npz")],
        "--data without images": inf + ["--data", str(work / "noimages.npz")],
        "--data NaN images": inf + ["--data", str(work / "nan.npz")],
        "--data labels >= classes": inf + ["--data", str(work / "labels10.npz")],
        "--data uint64 labels": inf + ["--data", str(work / "u64.npz")],
        "--data IDX header overflow": inf + ["--data", f"{work}/overflow-idx,{work}/labels-idx"],
        "--data IDX FIFO": inf + ["--data", f"{work}/fifo-idx,{work}/labels-idx"],
        "--data IDX gzip bomb": inf + ["--data", f"{work}/images-idx,{work}/bomb-idx.gz"],
        "--calib FIFO": ["infer", "--model", str(work / "ok.onnx"), "--calib",
                         str(work / "fifo.npz"), "-o", str(work / "o")],
        "--model .npz FIFO": ["infer", "--model", str(work / "fifo.npz"), "-o",
                              str(work / "o")],
        "--model .onnx FIFO": ["infer", "--model", str(work / "fifo.onnx"), "--calib",
                               "digits", "-o", str(work / "o")],
        "--model truncated .npz": ["infer", "--model", str(work / "model-truncated.npz"),
                                   "-o", str(work / "o")],
        "--model flipped byte": ["infer", "--model", str(work / "model-flipped.npz"), "-o",
                                 str(work / "o")],
        "--permutation FIFO": inf + ["--permutation", str(work / "fifo.json")],
        "--permutation floats": inf + ["--rows", "4", "--cols", "4", "--permutation",
                                       str(work / "float-perm.json")],
        "--permutation nested too deeply": inf + ["--permutation", str(work / "deep.json")],
        "--permutation 5,000-digit integer": inf + ["--permutation",
                                                    str(work / "huge-int.json")],
        "--permutation not UTF-8": inf + ["--permutation", str(work / "latin1.json")],
        "--permutation without one": inf + ["--permutation", str(work / "noperm.json")],
        "--profile FIFO": ["schedule", "--model", "digits-mlp", "--profile",
                           str(work / "fifo.json"), "-o", str(work / "o")],
        "--profile not numbers": ["schedule", "--model", "digits-mlp", "--rows", "1",
                                  "--cols", "2", "--profile", str(work / "profile-bad.json"),
                                  "-o", str(work / "o")],
        "--profile NaN": ["schedule", "--model", "digits-mlp", "--rows", "2", "--cols", "2",
                          "--profile", str(work / "profile-nan.json"), "-o", str(work / "o")],
        "--protection unknown unit": ["infer", "--model", str(work / "prot-units/model.npz"),
                                      "--protection", str(work / "prot-units/protection.json"),
                                      "--rows", "4", "--cols", "4", "--lcu", "-o",
                                      str(work / "o")],
        "--protection float permutation": ["infer", "--model",
                                           str(work / "prot-float/model.npz"), "--protection",
                                           str(work / "prot-float/protection.json"), "--rows",
                                           "4", "--cols", "4", "--lcu", "-o", str(work / "o")],
        "--protection layers not a list": ["infer", "--model",
                                           str(work / "prot-layers/model.npz"),
                                           "--protection",
                                           str(work / "prot-layers/protection.json"), "--rows",
                                           "4", "--cols", "4", "--lcu", "-o", str(work / "o")],
        "campaign data FIFO": camp(data='source = "fifo.npz"'),
        "campaign data labels >= classes": camp(data='source = "labels10.npz"'),
        "campaign data uint64 labels": camp(data='source = "u64.npz"'),
        "campaign calib FIFO": camp(network='calib = "fifo.npz"'),
        "campaign model FIFO": camp(spec().replace('model = "digits-mlp"',
                                                   'model = "fifo.npz"')),
        "campaign model truncated": camp(spec().replace('model = "digits-mlp"',
                                                        'model = "model-truncated.npz"')),
        "campaign permutation 5,000 digits": camp(network='permutation = "huge-int.json"'),
        "campaign protected unknown unit": camp(protection='[[protections]]\nkind = "lcu"\n'
                                                           'protected = "prot-units"'),
        "campaign protected float perm": camp(protection='[[protections]]\nkind = "lcu"\n'
                                                         'protected = "prot-float"'),
    }
    for name, args in cases.items():
        refused(fam, name, args, work)


def family_onnx(work: Path) -> None:
    fam = "ONNX contents (graph helper)"
    for name in ("nan.onnx", "inf.onnx", "no-nodes.onnx", "gemm-3d.onnx", "gemm-1x1.onnx",
                 "string-init-used.onnx", "complex.onnx", "huge-declared.onnx",
                 "short-ext.onnx"):
        if not (work / name).exists():
            continue
        refused(fam, name, ["infer", "--model", str(work / name), "--calib", "digits",
                            "--images", "4", "-o", str(work / "o")], work)
    # the unused STRING initializer imports and gives the plain model's result
    outs = {}
    for name in ("ok.onnx", "string-init-unused.onnx"):
        out = work / f"o-{name}"
        rc, err = call(["infer", "--model", str(work / name), "--calib", "digits",
                        "--images", "4", "-o", str(out)])
        outs[name] = (rc, (out / "infer.json").read_bytes() if rc == 0 else b"")
    (rc_ok, _), (rc, _) = outs["ok.onnx"], outs["string-init-unused.onnx"]
    if rc_ok == 0 and rc == 0:
        record(fam, "string-init-unused.onnx", "clean")
    else:
        record(fam, "string-init-unused.onnx", "wrong exit", f"exit {rc} (plain model {rc_ok})")


def trace_of(folder: Path) -> bytes | None:
    p = folder / "trace.csv"
    return p.read_bytes() if p.is_file() else None


def judge_trace(family: str, name: str, got: bytes | None, ref: bytes) -> None:
    if got == ref:
        record(family, name, "clean")
        return
    if got is None:
        record(family, name, "wrong exit", "no trace")
        return
    rows = got.decode().splitlines()[1:]
    keys = [tuple(r.split(",")[:2]) for r in rows]
    ref_keys = [tuple(r.split(",")[:2]) for r in ref.decode().splitlines()[1:]]
    if sorted(keys) != sorted(ref_keys):
        record(family, name, "lost data", f"{len(keys)} rows for {len(ref_keys)}")
    else:
        record(family, name, "wrong result", "rows differ")


def cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ftaccel.app.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def group_gone(pid: int, seconds: float = 30) -> bool:
    end = time.time() + seconds
    while time.time() < end:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def family_kills(work: Path, ref_spec: Path, ref: bytes, kills: int, rng) -> None:
    fam = "kills and resumes"
    trials = [("SIGKILL", signal.SIGKILL, None)] * kills + \
        [("SIGTERM", signal.SIGTERM, 143), ("SIGINT", signal.SIGINT, 130)] * 2
    for k, (name, sig, code) in enumerate(trials):
        folder = work / f"kill{k}"
        delay = float(rng.uniform(0.2, 6.0))
        proc = cli(["campaign", str(ref_spec), "-o", str(folder), "--workers", "0"])
        time.sleep(delay)
        proc.send_signal(sig)
        try:
            err = proc.communicate(timeout=120)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            record(fam, f"{name} after {delay:.1f} s", "wrong exit", "did not stop")
            continue
        if code is not None and proc.returncode not in (code, 0):
            record(fam, f"{name} after {delay:.1f} s", "wrong exit",
                   f"exit {proc.returncode}: {err[-200:]}")
            continue
        if not group_gone(proc.pid):
            record(fam, f"{name} after {delay:.1f} s", "unsafe", "a process outlived it")
            continue
        rc, err = call(["campaign", str(ref_spec), "-o", str(folder), "--workers", "0"])
        if rc != 0:
            record(fam, f"{name} after {delay:.1f} s, resumed", "wrong exit",
                   f"exit {rc}: {' | '.join(err)[-300:]}")
            continue
        judge_trace(fam, f"{name} after {delay:.1f} s", trace_of(folder), ref)
    # an input changed between a kill and the resume: refused, never mixed
    data = work / "kill-data.npz"
    ds = digits("test")
    np.savez(data, images=ds.images[:12], labels=ds.labels[:12])
    s = work / "kill-data.toml"
    s.write_text(spec(chunk=1, data='source = "kill-data.npz"'))
    proc = cli(["campaign", str(s), "-o", str(work / "killd"), "--workers", "0"])
    time.sleep(4)
    proc.kill()
    proc.wait()
    np.savez(data, images=ds.images[:12], labels=(ds.labels[:12] + 1) % 10)
    refused(fam, "data changed between kill and resume",
            ["campaign", str(s), "-o", str(work / "killd"), "--workers", "0"], work / "killd")


CORRUPT = {
    "empty": lambda d: (d / "chunk-000001.json").write_bytes(b""),
    "header only": lambda d: (d / "chunk-000001.json").write_text(
        '{"format": "ftaccel-campaign-chunk"}'),
    "truncated": lambda d: (d / "chunk-000001.json").write_bytes(
        (d / "chunk-000001.json").read_bytes()[:300]),
    "duplicated row": lambda d: _edit(d / "chunk-000001.json",
                                      lambda j: j["rows"].append(j["rows"][0])),
    "edited outcome": lambda d: (d / "chunk-000001.json").write_bytes(
        (d / "chunk-000001.json").read_bytes().replace(b'"masked"', b'"sdc"', 1)),
    "edited accuracy": lambda d: _edit(d / "chunk-000001.json",
                                       lambda j: j["rows"][0].__setitem__(22, 0.5)),
    "symlink to another chunk": lambda d: ((d / "chunk-000001.json").unlink(),
                                           (d / "chunk-000001.json").symlink_to(
                                               "chunk-000000.json")),
    "symlink outside": lambda d: ((d / "chunk-000001.json").unlink(),
                                  (d / "chunk-000001.json").symlink_to("/etc/hostname")),
    "another chunk's file": lambda d: shutil.copy(d / "chunk-000000.json",
                                                  d / "chunk-000001.json"),
    "two chunks swapped": lambda d: (os.rename(d / "chunk-000000.json", d / "x"),
                                     os.rename(d / "chunk-000001.json",
                                               d / "chunk-000000.json"),
                                     os.rename(d / "x", d / "chunk-000001.json")),
    "FIFO": lambda d: ((d / "chunk-000001.json").unlink(),
                       os.mkfifo(d / "chunk-000001.json")),
    "folder": lambda d: ((d / "chunk-000001.json").unlink(),
                         (d / "chunk-000001.json").mkdir()),
    "deleted": lambda d: (d / "chunk-000001.json").unlink(),
    "all deleted": lambda d: [p.unlink() for p in d.glob("chunk-*.json")],
    "a chunk beyond the plan": lambda d: shutil.copy(d / "chunk-000000.json",
                                                     d / "chunk-000777.json"),
    "a leftover temporary": lambda d: (d / ".chunk-000001.json.abcd.tmp").write_text("x"),
    "not UTF-8": lambda d: (d / "chunk-000001.json").write_bytes(
        b"\xff" + (d / "chunk-000001.json").read_bytes()),
    "nested too deeply": lambda d: (d / "chunk-000001.json").write_bytes(b"[" * 100000),
}


def _edit(p: Path, change) -> None:
    j = json.loads(p.read_bytes())
    change(j)
    p.write_text(json.dumps(j))


def family_chunks(work: Path, ref_spec: Path, ref_out: Path, ref: bytes, other: Path) -> None:
    fam = "corrupted chunks"
    cases = dict(CORRUPT)
    cases["a chunk of another campaign"] = lambda d: shutil.copy(
        other / "chunks" / "chunk-000001.json", d / "chunk-000001.json")
    for k, (name, corrupt) in enumerate(cases.items()):
        folder = work / f"chunks{k}"
        shutil.copytree(ref_out, folder, symlinks=True)
        for n in ("trace.csv", "campaign.json", "campaign.md"):
            (folder / n).unlink()
        corrupt(folder / "chunks")
        rc, err = call(["campaign", str(ref_spec), "-o", str(folder), "--workers", "0"], 120)
        if rc != 0:
            record(fam, name, "wrong exit", f"exit {rc}: {' | '.join(err)[-300:]}")
            continue
        judge_trace(fam, name, trace_of(folder), ref)
    # the folder's own identity tampered with: refused
    for name, edit in (("spec.json of another spec", lambda j: j["spec"]["campaign"].__setitem__(
            "seed", 99)), ("spec.json hash edited", lambda j: j.__setitem__("hash", "0" * 32))):
        folder = work / f"spec-{len(name)}"
        shutil.copytree(ref_out, folder, symlinks=True)
        _edit(folder / "spec.json", edit)
        refused(fam, name, ["campaign", str(ref_spec), "-o", str(folder), "--workers", "0"],
                folder)


def family_concurrency(work: Path, ref_spec: Path, ref: bytes) -> None:
    fam = "concurrency"
    for k in range(2):
        folder = work / f"both{k}"
        a = cli(["campaign", str(ref_spec), "-o", str(folder), "--workers", "0"])
        time.sleep(0.5 * k)
        b = cli(["campaign", str(ref_spec), "-o", str(folder), "--workers", "0"])
        ea, eb = a.communicate(timeout=300)[1], b.communicate(timeout=300)[1]
        codes = sorted([a.returncode, b.returncode])
        if codes not in ([0, 0], [0, 2]):
            record(fam, f"two writers, one folder ({k})", "wrong exit",
                   f"exits {codes}: {ea[-150:]} {eb[-150:]}")
            continue
        judge_trace(fam, f"two writers, one folder ({k})", trace_of(folder), ref)
    procs = [cli(["campaign", str(ref_spec), "-o", str(work / f"par{k}"), "--workers", "0"])
             for k in range(3)]
    for k, p in enumerate(procs):
        p.communicate(timeout=300)
        if p.returncode != 0:
            record(fam, f"three folders at once ({k})", "wrong exit", f"exit {p.returncode}")
        else:
            judge_trace(fam, f"three folders at once ({k})", trace_of(work / f"par{k}"), ref)


def family_output(work: Path, ref_spec: Path, ref_out: Path) -> None:
    fam = "output safety"
    outside = work / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    (work / "afile").write_text("x")
    (work / "full").mkdir()
    (work / "full" / "mine.txt").write_text("mine")
    os.symlink(work / "afile", work / "link-to-file")
    os.symlink(work / "nowhere", work / "dangling")
    cases = {
        "-o is a file": str(work / "afile"),
        "-o is a FIFO": str(work / "fifo.npz"),
        "-o is /dev/null": "/dev/null",
        "-o is a link to a file": str(work / "link-to-file"),
        "-o is a dangling link": str(work / "dangling"),
        "-o through a file": str(work / "afile" / "x"),
        "-o is a foreign non-empty folder": str(work / "full"),
        "-o empty path": "",
    }
    for name, out in cases.items():
        refused(fam, name, ["campaign", str(ref_spec), "-o", out, "--workers", "0"], work)
    # planted links inside a campaign folder: nothing written through them
    for name, plant in (
            ("chunks/ is a link outside", lambda f: (shutil.rmtree(f / "chunks"),
                                                     (f / "chunks").symlink_to(outside))),
            ("lock is a link outside", lambda f: ((f / "lock").unlink(),
                                                  (f / "lock").symlink_to(
                                                      outside / "precious.txt"))),
            ("spec.json is a link", lambda f: ((f / "spec.json").rename(f / "s"),
                                               (f / "spec.json").symlink_to(f / "s"))),
            ("trace.csv is a link outside", lambda f: ((f / "trace.csv").unlink(),
                                                       (f / "trace.csv").symlink_to(
                                                           outside / "precious.txt")))):
        folder = work / f"planted-{len(name)}"
        shutil.copytree(ref_out, folder, symlinks=True)
        plant(folder)
        before = listing(outside)
        rc, err = call(["campaign", str(ref_spec), "-o", str(folder), "--workers", "0"])
        if listing(outside) != before:
            record(fam, name, "unsafe", "wrote outside its folder")
        elif rc != 2:
            record(fam, name, "wrong exit", f"exit {rc}: {' | '.join(err)[-200:]}")
        else:
            record(fam, name, "clean")


def family_numerics(work: Path, ref_spec: Path, ref_out: Path) -> None:
    fam = "numerics"
    from statistics import NormalDist

    from ftaccel.app.network import Network

    rep = json.loads((ref_out / "campaign.json").read_text())
    rows = [r.split(",") for r in (ref_out / "trace.csv").read_text().splitlines()[1:]]
    N, e, conf = rep["population"], rep["plan"]["margin"], rep["plan"]["confidence"]
    z = NormalDist().inv_cdf(0.5 + conf / 2)
    n = int(np.ceil(N / (1 + e * e * (N - 1) / (z * z * 0.25))))
    checks = {
        "sample size is Ahmadilivani 2025 Eq. 4.7": rep["plan"]["size"] == min(n, N),
        "each sampled fault once": len({r[-1] for r in rows}) == rep["items"],
        "every fault under every protection once": sorted((r[0], r[1]) for r in rows) == sorted(
            (str(i), p) for i in range(rep["items"]) for p in rep["protections"]),
        "outcome counts sum to the faults": all(
            sum(v["outcomes"].values()) == rep["items"] for v in rep["protections"].values()),
    }
    ds = digits("test")
    net = Network.builtin("digits-mlp")
    res = net.run(ds.images[:12], labels=ds.labels[:12])
    logits = np.asarray(res.logits)
    checks["fault-free accuracy = plain argmax"] = rep["fault_free"]["none"]["accuracy"] == \
        float(np.mean(np.argmax(logits, 1) == ds.labels[:12]))
    for name, ok in checks.items():
        record(fam, name, "clean" if ok else "wrong result")
    # the 95 % Wilson interval written out again
    k, m = rep["protections"]["none"]["outcomes"]["critical"], rep["items"]
    p, zz = k / m, 1.959963984540054
    den = 1 + zz * zz / m
    mid = (p + zz * zz / (2 * m)) / den
    half = zz * np.sqrt(p * (1 - p) / m + zz * zz / (4 * m * m)) / den
    lo, hi = rep["protections"]["none"]["ci95"]["critical"]
    record(fam, "Wilson interval", "clean" if abs(lo - max(0, mid - half)) < 1e-12 and
           abs(hi - min(1, mid + half)) < 1e-12 else "wrong result")
    # a PE-bypass sweep: each trial's accuracy = the seeded map on the functional engine
    s = work / "bypass.toml"
    s.write_text(spec().replace('kind = "sanity"', 'kind = "bypass"').replace(
        'model = "register"', 'model = "pe_bypass"').replace(
        'method = "statistical"\nmargin = 0.25\nconfidence = 0.9',
        'method = "sweep"\nrates = [0.0, 0.3]\ntrials = 3'))
    rc, err = call(["campaign", str(s), "-o", str(work / "bypass"), "--workers", "0"])
    if rc != 0:
        record(fam, "pe_bypass trials", "wrong exit", " | ".join(err)[-200:])
    else:
        from ftaccel.app.campaign import build_context, load_spec
        from ftaccel.golden.network import FunctionalEngine, run

        ctx = build_context(load_spec(s))
        bad = 0
        trace = (work / "bypass" / "trace.csv").read_text().splitlines()
        head = trace[0].split(",")
        for line in trace[1:]:
            r = dict(zip(head, line.split(","), strict=True))
            if r["protection"] != "bypass":
                continue
            g = np.random.default_rng(np.random.SeedSequence([7, int(r["fault_id"])]))
            bmap = g.random((4, 4)) < float(r["rate"])
            out = run(ctx.model, ctx.x, FunctionalEngine(ctx.clean["bypass"].cfg),
                      units={"bypass_map": bmap})
            bad += abs(float(r["accuracy"]) - ctx.accuracy(out.logits)) > 1e-12
        record(fam, "pe_bypass trials", "clean" if bad == 0 else "wrong result")


def bench_reopen(work: Path, sizes=(2380, 4810)) -> list[str]:
    """Seconds to reopen (list and verify) a folder of N chunks (the issue: 9.6 s at 2,380).

    The chunks are written through the store with rows shaped like real ones (the rows'
    values are not recomputed when a folder is reopened, only verified).
    """
    from ftaccel.app.campaign import Campaign, build_context, load_spec, make_plan
    from ftaccel.app.campaign_store import TRACE_COLUMNS

    out = []
    for n in sizes:
        s = work / f"reopen{n}.toml"
        s.write_text(spec(chunk=1).replace("margin = 0.25", "margin = 0.01").replace(
            "chunk = 1", "chunk = 1\nmax_items = 100000"))
        sp = load_spec(s)
        ctx = build_context(sp)
        plan = make_plan(sp, ctx)
        plan.items = plan.items[:n]
        camp = Campaign(sp, work / f"reopen{n}", log=lambda *a, **k: None)
        camp.claim()
        prots = [p.name for p in ctx.protections]
        for c in range(plan.chunks):
            items = plan.chunk_items(c)
            rows = [{**dict.fromkeys(TRACE_COLUMNS, 0), "fault_id": fid, "protection": p,
                     "model": "register", "site": "psum", "register": "psum", "mode": "flip",
                     "layer": "fc1", "rate": float("nan"), "outcome": "masked", "alarm": "",
                     "unit": "", "accuracy": 1.0, "accuracy_drop": 0.0, "bypass_rate": "",
                     "population_index": item} for fid, item in items for p in prots]
            camp.save_chunk(c, items, rows)
        camp.release()
        camp = Campaign(sp, work / f"reopen{n}", log=lambda *a, **k: None)
        t = time.perf_counter()
        camp.claim()
        done = camp.done(plan, prots)
        dt = time.perf_counter() - t
        camp.release()
        assert len(done) == plan.chunks == n
        out.append(f"reopening {n:,} chunks (claim, list, read and verify each): {dt:.2f} s")
    return out


def main_probe() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"probe seed {args.seed}", file=sys.stderr)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="probe-integrity-") as tmp:
        work = Path(tmp)
        os.chdir(work)
        make_inputs(work)
        ref_spec = work / "ref.toml"
        ref_spec.write_text(spec(chunk=1))
        run_campaign(ref_spec, work / "ref", workers=0, progress=False,
                     log=lambda *a, **k: None)
        ref = (work / "ref" / "trace.csv").read_bytes()
        other_spec = work / "other.toml"
        other_spec.write_text(spec(chunk=1).replace("seed = 7", "seed = 8"))
        run_campaign(other_spec, work / "other", workers=0, progress=False,
                     log=lambda *a, **k: None)
        for name, fn in (("specs", lambda: family_specs(work)),
                         ("commands", lambda: family_commands(work)),
                         ("files", lambda: family_files(work)),
                         ("onnx", lambda: family_onnx(work)),
                         ("chunks", lambda: family_chunks(work, ref_spec, work / "ref", ref,
                                                          work / "other")),
                         ("output", lambda: family_output(work, ref_spec, work / "ref")),
                         ("numerics", lambda: family_numerics(work, ref_spec, work / "ref")),
                         ("concurrency", lambda: family_concurrency(work, ref_spec, ref)),
                         ("kills", lambda: family_kills(work, ref_spec, ref, args.kills, rng))):
            t = time.time()
            fn()
            print(f"  {name}: {time.time() - t:.0f} s", file=sys.stderr)
        reopen = bench_reopen(work)
        os.chdir("/")
    print(f"\n{sum(r['tried'] for r in RESULTS.values())} probes in {time.time() - t0:.0f} s\n")
    print("| family | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    total = dict.fromkeys(COLUMNS, 0)
    for fam, r in RESULTS.items():
        print(f"| {fam} | " + " | ".join(str(r[c]) for c in COLUMNS) + " |")
        for c in COLUMNS:
            total[c] += r[c]
    print("| **all** | " + " | ".join(f"**{total[c]}**" for c in COLUMNS) + " |")
    print()
    for line in reopen:
        print(line)
    if DETAILS:
        print("\nNot clean:")
        for d in DETAILS:
            print(f"- {d['family']}: {d['probe']}: {d['column']} ({d['note']})")
    if args.json:
        args.json.write_text(json.dumps({"results": RESULTS, "details": DETAILS}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main_probe())
