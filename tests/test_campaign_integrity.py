"""Campaign integrity (issue 30): no wrong number with exit 0, no lost fault, no hang.

One test (or parametrised set) per numbered case of the issue: the baseline's name, chunks
that do not verify, input files that change, duplicates and sampling, labels, the claim
order, FIFOs and devices, inputs that used to be internal errors, limits, invalid values,
signals and leftovers, damaged cache entries, the lock.  Results are always compared with an
uninterrupted run of the same spec (byte-identical trace) or with plain numpy.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ftaccel.app import campaign as campaign_mod
from ftaccel.app.campaign import (
    Campaign,
    CampaignError,
    build_context,
    load_spec,
    run_campaign,
    sample_indices,
)
from ftaccel.app.cli import main
from ftaccel.app.datasets import DataError, digits, load_npz

SPEC = """
[campaign]
name = "integrity"
seed = 7
chunk = 3

[network]
model = "digits-mlp"

[data]
images = 12
{data}

[accelerator]
rows = 4
cols = 4

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
"""

SWEEP = """
[campaign]
seed = 3
chunk = 2
[network]
model = "digits-mlp"
[data]
images = 10
[accelerator]
rows = 4
cols = 4
[[protections]]
kind = "bypass"
{protection}
[faults]
model = "{model}"
{faults}
[sample]
method = "sweep"
rates = {rates}
trials = {trials}
"""


def spec_text(data: str = "", protection: str = "", faults: str = "") -> str:
    return SPEC.format(data=data, protection=protection, faults=faults)


def _write(folder: Path, text: str | bytes, name: str = "spec.toml") -> Path:
    p = folder / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


@contextlib.contextmanager
def no_hang(seconds: int = 60):
    """Fail the test instead of blocking forever (a FIFO read would wait for a writer)."""
    def hung(signum, frame):
        raise AssertionError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _exit_2(capsys, args, *needles) -> str:
    """``main(args)`` exits 2 with one line on stderr holding every needle."""
    capsys.readouterr()
    with no_hang():
        rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("rtlgen: error: ")]
    assert rc == 2 and len(errors) == 1, (rc, err)
    assert "Traceback" not in "\n".join(err)
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The spec run once, uninterrupted, in this process: (spec path, folder, trace bytes)."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = _write(tmp, spec_text())
    out = tmp / "out"
    run_campaign(spec, out, workers=0, progress=False)
    return spec, out, (out / "trace.csv").read_bytes()


def _copy(reference, tmp_path) -> Path:
    spec, out, _ = reference
    dest = tmp_path / "out"
    shutil.copytree(out, dest, symlinks=True)
    for name in ("trace.csv", "campaign.json", "campaign.md"):
        (dest / name).unlink()
    return dest


# -- 1: the baseline's name ----------------------------------------------------------------------

@pytest.mark.parametrize("protection,key", [
    ('name = "none"', "protections[1].name"),  # a sanity check named like the baseline
    ('name = "x"\n[[protections]]\nkind = "none"\nname = "base"', "protections[2].name"),
])
def test_only_the_baseline_is_named_none(tmp_path, capsys, protection, key):
    spec = _write(tmp_path, spec_text(protection=protection))
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "o"), "--workers", "0"], key,
            '"none"')
    assert not (tmp_path / "o").exists()


# -- 2: chunks that do not verify ------------------------------------------------------------------

def _json(p: Path) -> dict:
    return json.loads(p.read_bytes())


def _resigned(doc: dict) -> bytes:
    """``doc`` with its checksum recomputed, as a writer that edits cleverly would."""
    from ftaccel.app.campaign_store import _canonical

    body = {k: v for k, v in doc.items() if k != "sha256"}
    return _canonical({**body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()})


def _other_campaign_chunk(tmp_path) -> bytes:
    other = tmp_path / "other"
    other.mkdir()
    run_campaign(_write(other, spec_text().replace("seed = 7", "seed = 8")), other / "out",
                 workers=0, progress=False)
    return (other / "out" / "chunks" / "chunk-000001.json").read_bytes()


CORRUPTIONS = {
    "empty": lambda p, t: p.write_bytes(b""),
    "truncated": lambda p, t: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "header only": lambda p, t: p.write_bytes(b'{"format": "ftaccel-campaign-chunk"}'),
    "edited outcome": lambda p, t: p.write_bytes(
        p.read_bytes().replace(b'"masked"', b'"critical"', 1)),
    "duplicated row (checksum recomputed)": lambda p, t: p.write_bytes(_resigned(
        {**_json(p), "rows": _json(p)["rows"] + _json(p)["rows"][:1]})),
    "a row dropped (checksum recomputed)": lambda p, t: p.write_bytes(_resigned(
        {**_json(p), "rows": _json(p)["rows"][1:]})),
    "another chunk's file": lambda p, t: p.write_bytes(
        (p.parent / "chunk-000000.json").read_bytes()),
    "another campaign's chunk": lambda p, t: p.write_bytes(_other_campaign_chunk(t)),
    "symbolic link to another chunk": lambda p, t: (p.unlink(), p.symlink_to(
        "chunk-000000.json")),
    "FIFO": lambda p, t: (p.unlink(), os.mkfifo(p)),
    "folder": lambda p, t: (p.unlink(), p.mkdir()),
    "not UTF-8": lambda p, t: p.write_bytes(b"\xff\xfe" + p.read_bytes()),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_chunk_that_does_not_verify_is_moved_aside_and_computed_again(reference, tmp_path,
                                                                        kind):
    _, _, trace = reference
    out = _copy(reference, tmp_path)
    CORRUPTIONS[kind](out / "chunks" / "chunk-000001.json", tmp_path)
    with no_hang():
        report = run_campaign(reference[0], out, workers=0, progress=False)
    assert (out / "trace.csv").read_bytes() == trace  # nothing lost, nothing doubled
    assert [r["chunk"] for r in report["chunks_rejected"]] == [1], report["chunks_rejected"]
    assert report["timing"]["chunks_run"] == 1
    kept = list((out / "chunks" / "rejected").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("chunk-000001.json.")
    assert "did not verify" in (out / "campaign.md").read_text()


def test_stray_chunks_and_dead_temporaries_are_cleared(reference, tmp_path):
    _, _, trace = reference
    out = _copy(reference, tmp_path)
    (out / "chunks" / "chunk-000099.json").write_text("{}")  # beyond the plan's 4 chunks
    (out / "chunks" / ".chunk-000002.json.x1y2.tmp").write_text("half")  # a killed writer
    report = run_campaign(reference[0], out, workers=0, progress=False)
    assert (out / "trace.csv").read_bytes() == trace
    assert [r["chunk"] for r in report["chunks_rejected"]] == [99]
    assert report["timing"]["chunks_run"] == 0
    assert not list((out / "chunks").glob(".*.tmp"))


def test_reopening_lists_the_chunks_once(reference, tmp_path, monkeypatch):
    """Reopening is linear: ``chunks/`` is listed a fixed number of times, not once per chunk."""
    spec = _write(tmp_path, spec_text().replace("chunk = 3", "chunk = 1"))
    run_campaign(spec, tmp_path / "out", workers=0, progress=False)
    listings = []
    real = os.scandir

    def counting(path="."):
        listings.append(str(path))
        return real(path)

    monkeypatch.setattr("ftaccel.app.campaign_store.os.scandir", counting)
    report = run_campaign(spec, tmp_path / "out", workers=0, progress=False)
    assert report["chunks"] == 11 and report["timing"]["chunks_resumed"] == 11
    assert sum(p.endswith("chunks") for p in listings) <= 2, listings


# -- 3: a referenced file that changes -------------------------------------------------------------

def _data(folder: Path, labels=None, name: str = "data.npz") -> Path:
    ds = digits("test")
    np.savez(folder / name, images=ds.images[:12],
             labels=ds.labels[:12] if labels is None else labels)
    return folder / name


def test_a_changed_data_file_is_refused_on_resume_and_never_mixed(tmp_path, capsys):
    data = _data(tmp_path)
    spec = _write(tmp_path, spec_text(data='source = "data.npz"'))
    first = run_campaign(spec, tmp_path / "a", workers=0, progress=False)
    assert first["inputs"][str(data)]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    labels = (digits("test").labels[:12] + 1) % 10  # every label moved: a different data set
    _data(tmp_path, labels)
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "a"), "--workers", "0"],
            "data.source", "changed since the campaign started")
    # a worker holding the old hashes refuses to compute with the new file
    spec_d = load_spec(spec)
    with pytest.raises(CampaignError, match="changed since the campaign started"):
        campaign_mod.run_chunk(spec_d, [(0, 5)], first["inputs"])
    # the same process, a new folder: the new file's data, not a cached context of the old
    second = run_campaign(spec, tmp_path / "b", workers=0, progress=False)
    ctx = build_context(spec_d)
    preds = np.argmax(ctx.clean["none"].logits, axis=1)
    assert second["fault_free"]["none"]["accuracy"] == pytest.approx(np.mean(preds == labels))
    assert second["fault_free"]["none"]["accuracy"] < 0.5 < first["fault_free"]["none"][
        "accuracy"]


def test_identity_covers_every_referenced_file(tmp_path, reference):
    """The identity hashes the contents of every file the spec names.

    Model, data, calibration, permutation and protected folders: changing a file changes it.
    """
    from ftaccel.app.campaign_store import input_files

    spec = load_spec(reference[0])
    base = campaign_mod.identity(spec).hash
    assert input_files(spec) == []  # built-in model and data: nothing to hash
    data = _data(tmp_path)
    spec = load_spec(_write(tmp_path, spec_text(data='source = "data.npz"')))
    ident = campaign_mod.identity(spec)
    assert ident.hash != base and list(ident.files) == [str(data)]
    _data(tmp_path, digits("test").labels[12:24])
    assert campaign_mod.identity(spec).hash != ident.hash


# -- 4: duplicates, sampling without replacement ---------------------------------------------------

@pytest.mark.parametrize("text,key", [
    (spec_text(faults='registers = ["psum", "psum"]'), "faults.registers"),
    (spec_text(faults='modes = ["sa0", "flip", "sa0"]'), "faults.modes"),
    (spec_text(faults='layers = ["fc1", "fc1"]'), "faults.layers"),
    (SWEEP.format(protection="", model="bit_errors", faults="", rates="[0.1, 0.1]",
                  trials=2), "sample.rates"),
    (SWEEP.format(protection="", model="bit_errors", faults='targets = ["weights", "weights"]',
                  rates="[0.1]", trials=2), "faults.targets"),
    (spec_text(protection='[[protections]]\nkind = "afd"\nlayers = ["fc2", "fc2"]'),
     "protections[2].layers"),
])
def test_a_repeated_list_entry_is_refused(tmp_path, capsys, text, key):
    spec = _write(tmp_path, text)
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "o"), "--workers", "0"], key,
            "given twice")


def test_a_layer_named_and_indexed_is_refused(tmp_path, capsys):
    spec = _write(tmp_path, spec_text(faults='layers = ["fc1", 0]'))
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "o"), "--workers", "0"],
            "faults.layers", "given before")


def test_an_edited_spec_json_is_refused(reference, tmp_path, capsys):
    """``spec.json`` carries a checksum: a folder whose record was edited is not trusted."""
    out = _copy(reference, tmp_path)
    doc = json.loads((out / "spec.json").read_text())
    doc["spec"]["campaign"]["seed"] = 99  # the record says another seed than its chunks
    (out / "spec.json").write_text(json.dumps(doc))
    _exit_2(capsys, ["campaign", str(reference[0]), "-o", str(out), "--workers", "0"],
            "spec.json does not match its checksum")


def test_the_sample_holds_each_fault_once(reference):
    rows = (reference[1] / "trace.csv").read_text().splitlines()[1:]
    idx = {int(r.split(",")[-1]) for r in rows}
    report = json.loads((reference[1] / "campaign.json").read_text())
    assert len(idx) == report["items"] == report["plan"]["size"]


def test_block_sampling_is_uniform_and_without_replacement(monkeypatch, rng):
    """Above the block size the sample is drawn block-wise.

    Distinct, sorted, and each index drawn with probability n/N (a chi-square test over 2,000
    samples).
    """
    monkeypatch.setattr(campaign_mod, "_BLOCK_SAMPLING", 64)
    N, n, draws = 1000, 300, 2000
    counts = np.zeros(N)
    for _ in range(draws):
        s = sample_indices(rng, N, n)
        assert len(s) == n and len(np.unique(s)) == n and np.all(np.diff(s) > 0)
        assert s[0] >= 0 and s[-1] < N
        counts[s] += 1
    expect = draws * n / N
    chi2 = float(np.sum((counts - expect) ** 2 / (expect * (1 - n / N))))
    # N - 1 = 999 degrees of freedom: mean 999, sd ≈ 44.7; 6 sd either way
    assert 999 - 6 * 44.7 < chi2 < 999 + 6 * 44.7, chi2


def test_small_populations_keep_numpys_sample():
    """Below the block size the sample is numpy's ``choice`` (seeded campaigns keep theirs)."""
    a = sample_indices(np.random.default_rng(5), 100_000, 3_000)
    b = np.sort(np.random.default_rng(5).choice(100_000, size=3_000, replace=False))
    assert np.array_equal(a, b)


# -- 5: labels -------------------------------------------------------------------------------------

def test_labels_beyond_the_models_classes_are_refused_as_infer_does(tmp_path, capsys):
    labels = digits("test").labels[:12].copy()
    labels[3] = 10
    _data(tmp_path, labels)
    spec = _write(tmp_path, spec_text(data='source = "data.npz"'))
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "o"), "--workers", "0"],
            "label 10", "10 classes")
    _exit_2(capsys, ["infer", "--model", "digits-mlp", "--data", str(tmp_path / "data.npz"),
                     "-o", str(tmp_path / "i")], "label 10", "10 classes")
    assert not (tmp_path / "o").exists() and not (tmp_path / "i").exists()


def test_uint64_labels_are_not_wrapped(tmp_path, capsys):
    labels = np.full(12, 3, dtype=np.uint64)
    labels[0] = np.iinfo(np.uint64).max
    _data(tmp_path, labels)
    with pytest.raises(DataError, match="18446744073709551615"):
        load_npz(tmp_path / "data.npz")
    spec = _write(tmp_path, spec_text(data='source = "data.npz"'))
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "o"), "--workers", "0"],
            "18446744073709551615")


# -- 7: the claim ----------------------------------------------------------------------------------

def test_a_folder_left_by_a_killed_claim_is_taken(reference, tmp_path):
    """A kill before ``spec.json`` (an empty ``chunks/``, a spec temporary) blocks nothing."""
    out = tmp_path / "out"
    (out / "chunks").mkdir(parents=True)
    (out / ".spec.json.k3j2.tmp").write_text("{")
    run_campaign(reference[0], out, workers=0, progress=False)
    assert (out / "trace.csv").read_bytes() == reference[2]
    assert not list(out.glob(".*.tmp"))


def test_the_spec_is_written_first_and_an_abandoned_claim_removed(reference, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "out"
    seen = []
    real = Path.mkdir

    def interrupted(self, *a, **k):
        if self.name == "chunks":
            seen.append((out / "spec.json").is_file())
            raise KeyboardInterrupt  # a kill between the spec and chunks/
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(reference[0], out, workers=0, progress=False)
    monkeypatch.undo()
    assert seen == [True]  # spec.json existed before chunks/ was made
    assert not out.exists()  # this run made the folder and saved nothing: removed
    run_campaign(reference[0], out, workers=0, progress=False)
    assert (out / "trace.csv").read_bytes() == reference[2]


def test_a_second_writer_is_refused_by_the_lock(reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR)\nfcntl.lockf(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\ntime.sleep(120)\n", str(out / "lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _exit_2(capsys, ["campaign", str(reference[0]), "-o", str(out), "--workers", "0"],
                "another rtlgen campaign is writing this folder")
    finally:
        holder.kill()
        holder.wait()
    assert main(["campaign", str(reference[0]), "-o", str(out), "--workers", "0"]) == 0
    assert (out / "trace.csv").read_bytes() == reference[2]
    # in one process too (a POSIX lock does not exclude its own process)
    camp = Campaign(load_spec(reference[0]), out)
    camp.claim()
    try:
        with pytest.raises(CampaignError, match="another rtlgen campaign"):
            Campaign(load_spec(reference[0]), out).claim()
    finally:
        camp.release()


# -- 8, 9, 12: bad input is one line and exit 2, never a hang or an internal error ----------------

def _fixtures(tmp: Path) -> None:
    os.mkfifo(tmp / "fifo.npz")
    os.mkfifo(tmp / "fifo.onnx")
    os.mkfifo(tmp / "fifo.json")
    os.mkfifo(tmp / "fifo.toml")
    os.mkfifo(tmp / "fifo-idx")
    ds = digits("test")
    buf = io.BytesIO()
    np.savez_compressed(buf, images=ds.images[:12], labels=ds.labels[:12])
    (tmp / "truncated.npz").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp / "model-truncated.npz").write_bytes(buf.getvalue()[:40])
    big = (1 << 32) - 1
    (tmp / "images-idx").write_bytes(bytes([0, 0, 8, 3]) + big.to_bytes(4, "big") * 3 + b"x")
    (tmp / "labels-idx").write_bytes(bytes([0, 0, 8, 1]) + (12).to_bytes(4, "big") + bytes(12))
    schedule = {"format": "ftaccel-permutation", "layers": [
        {"layer": "fc1", "permutation": [float(i) for i in range(32)]}]}
    (tmp / "float-perm.json").write_text(json.dumps(schedule))
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp / "bad-utf8.json").write_bytes(b'{"layers": "\xff"}')
    (tmp / "huge-int.json").write_text('{"layers": ' + "9" * 5000 + "}")


CAMPAIGN_BAD = [
    # (what, spec text or bytes, extra arguments, a needle of the message)
    ("spec not UTF-8", spec_text().encode() + b"\n# \xff\n", [], "not UTF-8"),
    ("spec nested too deeply", spec_text() + "\nx = " + "[" * 5000 + "]" * 5000, [],
     "nested too deeply"),
    ("spec integer of 5,000 digits", spec_text().replace("seed = 7", "seed = " + "7" * 5000),
     [], "4,300 digits"),
    ("negative seed", spec_text().replace("seed = 7", "seed = -1"), [], "campaign.seed"),
    ("confidence 1 - 2**-53", spec_text().replace("confidence = 0.9",
                                                  "confidence = 0.9999999999999999"), [],
     "sample.confidence"),
    ("margin 1e-300 (54 M faults)", spec_text().replace("margin = 0.25", "margin = 1e-300"),
     [], "campaign.max_items"),
    ("10**12 trials", SWEEP.format(protection="", model="bit_errors", faults="", rates="[0.1]",
                                   trials=10**12), [], "sample.trials"),
    ("bypass threshold nan", spec_text(protection="").replace(
        'kind = "sanity"', 'kind = "bypass"\nthreshold = nan'), [], "threshold"),
    ("bypass threshold -1", spec_text().replace('kind = "sanity"',
                                                'kind = "bypass"\nthreshold = -1'), [],
     "threshold"),
    ("bypass threshold inf", spec_text().replace('kind = "sanity"',
                                                 'kind = "bypass"\nthreshold = inf'), [],
     "threshold"),
    ("bits of booleans", SWEEP.format(protection="", model="pe_profile",
                                      faults="bits = [true, true]", rates="[0.1]", trials=2),
     [], "faults.bits"),
    ("verify.images 0", spec_text() + "\n[verify]\nimages = 0\n", [], "verify.images"),
    ("verify.images -3", spec_text() + "\n[verify]\nimages = -3\n", [], "verify.images"),
    ("empty faults.layers", spec_text(faults="layers = []"), [], "faults.layers"),
    ("TMR in the accelerator", spec_text().replace("cols = 4", 'cols = 4\ntmr = "word"'), [],
     "accelerator"),
    ("a flow array", spec_text().replace("cols = 4", 'cols = 4\nflow = "shortened"'), [],
     "accelerator.flow"),
    ("pe_bypass without bypass hardware", SWEEP.format(
        protection="", model="pe_bypass", faults="", rates="[0.1]", trials=2).replace(
        'kind = "bypass"', 'kind = "none"'), [], "bypass hardware"),
    ("a protection name with a newline", spec_text(protection='name = "a\\nb"'), [],
     "protections[1].name"),
    ("spec is a FIFO", None, [], "not a regular file"),
    ("data is a FIFO", spec_text(data='source = "fifo.npz"'), [], "not a regular file"),
    ("calibration is a FIFO", spec_text().replace('model = "digits-mlp"',
                                                  'model = "digits-mlp"\ncalib = "fifo.npz"'),
     [], "not a regular file"),
    ("model .npz is a FIFO", spec_text().replace('"digits-mlp"', '"fifo.npz"'), [],
     "not a regular file"),
    ("model .onnx is a FIFO", spec_text().replace('"digits-mlp"', '"fifo.onnx"'), [],
     "not a regular file"),
    ("IDX images are a FIFO", spec_text(data='source = "fifo-idx,labels-idx"'), [],
     "not a regular file"),
    ("permutation is a FIFO", spec_text(), ["--permutation", "fifo.json"],
     "not a regular file"),
    ("data .npz truncated", spec_text(data='source = "truncated.npz"'), [], "truncated.npz"),
    ("model .npz truncated", spec_text().replace('"digits-mlp"', '"model-truncated.npz"'), [],
     "model-truncated.npz"),
    ("IDX header overflowing", spec_text(data='source = "images-idx,labels-idx"'), [],
     "IDX header"),
    ("permutation of floats", spec_text(), ["--permutation", "float-perm.json"],
     "list of integers"),
    ("permutation nested too deeply", spec_text(), ["--permutation", "deep.json"],
     "nested too deeply"),
    ("permutation not UTF-8", spec_text(), ["--permutation", "bad-utf8.json"], "not UTF-8"),
    ("permutation integer of 5,000 digits", spec_text(), ["--permutation", "huge-int.json"],
     "4,300 digits"),
    ("--scheduler nonsense://x", spec_text(), ["--scheduler", "nonsense://x"], "scheduler"),
    ("--scheduler ''", spec_text(), ["--scheduler", ""], "empty address"),
    ("--scheduler unreachable", spec_text(), ["--scheduler", "127.0.0.1:1"],
     "cannot connect"),
    ("--workers -1", spec_text(), ["--workers=-1"], "--workers"),
]


@pytest.mark.parametrize("what,text,extra,needle", CAMPAIGN_BAD, ids=[c[0] for c in CAMPAIGN_BAD])
def test_bad_campaign_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, what, text,
                                                   extra, needle, listing):
    monkeypatch.chdir(tmp_path)
    _fixtures(tmp_path)
    spec = tmp_path / "fifo.toml" if text is None else _write(tmp_path, text)
    before = listing(tmp_path)
    args = ["campaign", str(spec), "-o", "out"] + (["--workers", "0"] if "--workers=-1"
                                                    not in extra else []) + extra
    _exit_2(capsys, args, needle)
    assert listing(tmp_path) == before  # nothing written, no -o folder


@pytest.mark.parametrize("args,needle", [
    (["nvf", "--model", "digits-mlp", "--seed=-1", "-o", "o"], "--seed"),
    (["protect", "--model", "digits-mlp", "--method", "lcu", "--nvf-threshold", "5",
      "--seed=-1", "-o", "o"], "--seed"),
    (["schedule", "--model", "digits-mlp", "--fr-max", "0.01", "--seed=-1", "-o", "o"],
     "--seed"),
    (["schedule", "--model", "digits-mlp", "--fr-max", "0.01", "--profile-seed=-1", "-o", "o"],
     "--profile-seed"),
    (["schedule", "--model", "digits-mlp", "--fr-max", "0.01", "--test-images", "0", "-o",
      "o"], "--test-images"),
    (["schedule", "--model", "digits-mlp", "--profile", "fifo.json", "-o", "o"],
     "not a regular file"),
    (["nvf", "--model", "digits-mlp", "--data", "fifo.npz", "-o", "o"], "not a regular file"),
    (["nvf", "--model", "model-truncated.npz", "-o", "o"], "model-truncated.npz"),
    (["infer", "--model", "digits-mlp", "--data", "fifo.npz", "-o", "o"],
     "not a regular file"),
    (["infer", "--model", "digits-mlp", "--data", "truncated.npz", "-o", "o"],
     "truncated.npz"),
    (["infer", "--model", "fifo.onnx", "--calib", "digits", "-o", "o"], "not a regular file"),
    (["infer", "--model", "digits-mlp", "--data", "images-idx,labels-idx", "-o", "o"],
     "IDX header"),
    (["infer", "--model", "digits-mlp", "--permutation", "deep.json", "-o", "o"],
     "nested too deeply"),
])
def test_bad_input_to_other_commands_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch,
                                                            args, needle, listing):
    monkeypatch.chdir(tmp_path)
    _fixtures(tmp_path)
    before = listing(tmp_path)
    _exit_2(capsys, args, needle)
    assert listing(tmp_path) == before


def _protection_folder(tmp_path) -> Path:
    out = tmp_path / "prot"
    assert main(["protect", "--model", "digits-mlp", "--rows", "4", "--cols", "4", "--method",
                 "lcu", "--nvf-threshold", "5", "--images", "40", "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["layers"][0]["units"].__setitem__("turbo", 1), "unknown unit 'turbo'"),
    (lambda d: d["layers"][0].__setitem__("permutation", [float(v) for v in
                                                          d["layers"][0]["permutation"]]),
     "list of integers"),
    (lambda d: d["layers"][0]["units"].__setitem__("lcu_pairs", [[0, 9999]]), "lcu_pairs"),
    (lambda d: d.__setitem__("layers", {"0": 1}), "'layers' must be a list"),
])
def test_a_malformed_protection_file_is_refused(tmp_path, capsys, edit, needle):
    folder = _protection_folder(tmp_path)
    doc = json.loads((folder / "protection.json").read_text())
    edit(doc)
    (folder / "protection.json").write_text(json.dumps(doc))
    _exit_2(capsys, ["infer", "--model", str(folder / "model.npz"), "--protection",
                     str(folder / "protection.json"), "--rows", "4", "--cols", "4",
                     "--lcu", "--images", "4", "-o", str(tmp_path / "i")], needle)
    spec = _write(tmp_path, spec_text(protection='[[protections]]\nkind = "lcu"\n'
                                                 'protected = "prot"'))
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "o"), "--workers", "0"],
            "protections[2].protected")


def test_a_warning_is_one_line(monkeypatch, capsys):
    import warnings

    def warns(args):
        warnings.warn("first line\nsecond line", RuntimeWarning, stacklevel=1)
        return 0

    monkeypatch.setattr("ftaccel.app.cli.cmd_campaign", warns)
    assert main(["campaign", "x.toml", "-o", "o"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["rtlgen: warning: RuntimeWarning: first line"], err


# -- 10: limits -----------------------------------------------------------------------------------

def test_the_plan_is_capped_and_its_estimate_printed(tmp_path, capsys):
    exhaustive = spec_text(faults='registers = ["weight"]\nmodes = ["sa0"]').replace(
        'method = "statistical"\nmargin = 0.25\nconfidence = 0.9', 'method = "exhaustive"')
    n = 4 * 4 * 8  # PEs × weight bits × one mode
    spec = _write(tmp_path, exhaustive.replace("chunk = 3", f"chunk = 3\nmax_items = {n - 1}"))
    _exit_2(capsys, ["campaign", str(spec), "-o", str(tmp_path / "o"), "--workers", "0"],
            f"{n:,} faults", f"campaign.max_items = {n - 1:,}")
    spec = _write(tmp_path, exhaustive.replace("chunk = 3", f"chunk = 40\nmax_items = {n}"))
    capsys.readouterr()
    report = run_campaign(spec, tmp_path / "o", workers=0, progress=False)
    assert f"plan: {n} faults × 2 protections × 12 images = {n * 24:,} fault-inferences" in \
        capsys.readouterr().err
    rows = (tmp_path / "o" / "trace.csv").read_text().splitlines()[1:]
    assert sorted(int(r.split(",")[-1]) for r in rows if ",none," in r) == list(range(n))
    assert report["population"] == n
    with pytest.raises(CampaignError, match="max_items"):
        campaign_mod.parse_spec({"campaign": {"max_items": 10**8}, "network": {
            "model": "digits-mlp"}})


# -- 13: signals and leftovers ---------------------------------------------------------------------

def _wait_for(cond, seconds: float = 120) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signalled_campaign_exits_128_plus_signal_and_resumes_exactly(reference, tmp_path,
                                                                       sig, code):
    _, _, trace = reference
    # one fault a chunk: the signal lands between chunks; the trace does not depend on it
    spec = _write(tmp_path, spec_text().replace("chunk = 3", "chunk = 1"))
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ftaccel.app.cli", "campaign", str(spec),
                             "-o", str(folder), "--workers", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert _wait_for(lambda: len(list((folder / "chunks").glob("chunk-*.json"))
                                     if (folder / "chunks").is_dir() else []) >= 1)
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 0:
        pytest.skip("the campaign finished before the signal arrived")
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] in ("rtlgen: terminated", "rtlgen: interrupted")
    assert "Traceback" not in err
    assert _wait_for(lambda: _group_gone(proc.pid), 30)
    assert not (folder / "campaign.json").exists()
    assert main(["campaign", str(spec), "-o", str(folder), "--workers", "0"]) == 0
    assert (folder / "trace.csv").read_bytes() == trace


def test_sigterm_stops_the_dask_workers(tmp_path):
    spec = _write(tmp_path, spec_text().replace("margin = 0.25", "margin = 0.1").replace(
        "chunk = 3", "chunk = 1"))
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ftaccel.app.cli", "campaign", str(spec),
                             "-o", str(folder), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert _wait_for(lambda: (folder / "chunks").is_dir() and
                         len(list((folder / "chunks").glob("chunk-*.json"))) >= 1, 300)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 0:
        pytest.skip("the campaign finished before the signal arrived")
    assert proc.returncode == 143, err
    assert len(err.strip().splitlines()) <= 2, err  # the plan line and "terminated"
    assert _wait_for(lambda: _group_gone(proc.pid), 60), "a worker outlived the campaign"


def test_an_unreachable_scheduler_leaves_no_folder(reference, tmp_path, capsys):
    _exit_2(capsys, ["campaign", str(reference[0]), "-o", str(tmp_path / "new" / "o"),
                     "--scheduler", "tcp://127.0.0.1:1"], "cannot connect")
    assert not (tmp_path / "new").exists()


def test_sigterm_during_an_rtl_run_leaves_no_run_folder(tmp_path):
    env = {**os.environ, "FTACCEL_CACHE_DIR": str(tmp_path / "cache"), "SIM": "icarus"}
    runs = tmp_path / "cache" / "sim" / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "ftaccel.app.cli", "infer", "--model",
                             "digits-mlp", "--rows", "4", "--cols", "4", "--engine", "rtl",
                             "--images", "40", "-o", str(tmp_path / "inf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        assert _wait_for(lambda: runs.is_dir() and any(runs.iterdir()), 300)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143, err
    assert _wait_for(lambda: _group_gone(proc.pid), 30), "the simulator outlived rtlgen"
    assert not any(runs.iterdir()), list(runs.iterdir())
    assert not list((tmp_path / "cache" / "sim" / "rtl").glob("*.tmp*"))
    assert not (tmp_path / "inf").exists()


def test_generation_leaves_no_temporary_folder(tmp_path, monkeypatch):
    from ftaccel.config import AcceleratorConfig
    from ftaccel.tb import accelerator as acc

    cfg = AcceleratorConfig(rows=2, cols=2)
    final = acc.build_dir_for(cfg, root=tmp_path)
    final.parent.mkdir(parents=True)
    dead = final.parent / f"{final.name}.tmp{2 ** 22 + 12345}"  # beyond pid_max: not running
    dead.mkdir()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(acc, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        acc.rtl_for(cfg, tmp_path)
    assert not list(final.parent.glob("*.tmp*"))  # neither the dead one nor its own
    monkeypatch.undo()
    assert acc.rtl_for(cfg, tmp_path).is_file()


def test_damaged_cache_entries_are_rebuilt(tmp_path, rng):
    from ftaccel.config import AcceleratorConfig
    from ftaccel.tb import accelerator as acc
    from ftaccel.tb import runner

    cfg = AcceleratorConfig(rows=2, cols=2)
    A = rng.integers(-128, 128, (3, 4))
    B = rng.integers(-128, 128, (4, 2))
    v = acc.rtl_for(cfg, tmp_path)
    good = v.read_bytes()
    assert np.array_equal(acc.rtl_matmul(cfg, A, B, cache_dir=tmp_path).acc, A @ B)
    # the generated Verilog cut short, a file of the compiled model emptied
    v.write_bytes(good[: len(good) // 3])
    model = next(p for p in (tmp_path / "models" / "icarus").iterdir() if p.is_dir())
    victim = max((p for p in model.rglob("*") if p.is_file() and p.name != "manifest.json"),
                 key=lambda p: p.stat().st_size)
    victim.chmod(0o644)
    victim.write_bytes(b"")
    runner._CHECKED.clear()  # a new process: nothing checked yet
    assert acc.rtl_for(cfg, tmp_path).read_bytes() == good
    assert np.array_equal(acc.rtl_matmul(cfg, A, B, cache_dir=tmp_path).acc, A @ B)
    assert victim.stat().st_size > 0
