"""ftaccel.files: safe reads, safe atomic writes, all-or-nothing output sets, the cache folder."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from ftaccel.files import (
    OutputSet,
    UnreadableInput,
    UnsafeTarget,
    atomic_write,
    cache_dir,
    check_folder,
    check_target,
    read_input,
    read_npy,
    write_json,
    write_npy,
    write_text,
)


def _listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_writes_round_trip_with_ordinary_permissions(tmp_path):
    a = np.arange(12, dtype=np.int64).reshape(3, 4) - 5
    write_npy(tmp_path / "a.npy", a)
    write_json(tmp_path / "r.json", {"x": [1, 2]})
    write_text(tmp_path / "t.txt", "hé\n")
    assert np.array_equal(np.load(tmp_path / "a.npy"), a)
    assert (tmp_path / "r.json").read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "hé\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.npy").stat().st_mode) == 0o666 & ~umask
    assert _listing(tmp_path) == ["a.npy", "r.json", "t.txt"]  # no temporary file left


def test_symlink_at_target_is_refused_and_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "C.npy").symlink_to(outside)
    with pytest.raises(UnsafeTarget, match="symbolic link"):
        write_npy(tmp_path / "out" / "C.npy", np.zeros(3))
    assert outside.read_text() == "precious"
    assert (tmp_path / "out" / "C.npy").is_symlink()


@pytest.mark.parametrize("planted", ["config.json.tmp", ".config.json.tmp",
                                     ".config.json.XXXXXX.tmp"])
def test_symlink_at_a_predictable_temporary_name_is_never_followed(tmp_path, planted):
    outside = tmp_path / "elsewhere.json"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / planted).symlink_to(outside)
    write_json(out / "config.json", {"rows": 2})
    assert outside.read_text() == "precious"
    assert (out / planted).is_symlink() and os.readlink(out / planted) == str(outside)
    assert (out / "config.json").read_text().startswith("{")


def test_device_target_is_refused_and_left_a_device():
    with pytest.raises(UnsafeTarget, match="not a regular file"):
        check_target("/dev/null")
    with pytest.raises(UnsafeTarget, match="not a regular file"):
        write_npy("/dev/null", np.zeros(2))
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_fifo_target_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeTarget, match="not a regular file"):
        write_text(fifo, "x")
    with pytest.raises(UnreadableInput, match="not a regular file"):
        read_input(fifo)  # opened non-blocking: no writer needed to fail
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_directory_target_is_refused_and_nothing_is_created(tmp_path):
    (tmp_path / "C.npy").mkdir()
    with pytest.raises(UnsafeTarget, match="a folder"):
        write_npy(tmp_path / "C.npy", np.zeros(2))
    assert _listing(tmp_path) == ["C.npy"]


@pytest.mark.parametrize("name,message", [
    ("", "empty path"),
    ("a\0b", "null"),
    ("file.txt/C.npy", "not a folder"),
    ("x" * 300, "too long"),
])
def test_impossible_targets_are_refused(tmp_path, name, message):
    (tmp_path / "file.txt").write_text("x")
    path = name if name in ("", "a\0b") else tmp_path / name
    with pytest.raises(UnsafeTarget, match=message):
        check_target(path)
    assert _listing(tmp_path) == ["file.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_unwritable_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    try:
        with pytest.raises(UnsafeTarget, match="not writable"):
            check_target(ro / "C.npy")
        with pytest.raises(UnsafeTarget, match="not writable"):
            check_target(ro / "sub" / "C.npy")
    finally:
        ro.chmod(0o700)


def test_check_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    (tmp_path / "filelink").symlink_to(tmp_path / "file")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    assert check_folder(tmp_path / "real") == tmp_path / "real"
    assert check_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_folder(tmp_path / "link") == tmp_path / "link"  # a link to a folder is fine
    with pytest.raises(UnsafeTarget, match="link to nothing"):
        check_folder(tmp_path / "dangling")
    for bad in ("file", "filelink"):
        with pytest.raises(UnsafeTarget, match="not a folder"):
            check_folder(tmp_path / bad)
    with pytest.raises(UnsafeTarget, match="empty path"):
        check_folder("")


def test_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as fh:
        fh.write("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["keep.txt"]
    with pytest.raises(TypeError):
        write_json(target, {"x": object()})  # not serialisable: nothing touched
    assert target.read_text() == "old"


def test_output_set_commits_only_on_success(tmp_path):
    old = tmp_path / "C.npy"
    np.save(old, np.array([7]))
    with OutputSet() as out:
        out.claim(old)
        out.claim(tmp_path / "new" / "deep" / "Q.npy")
        out.write_npy(old, np.array([1, 2]))
        out.write_npy(tmp_path / "new" / "deep" / "Q.npy", np.array([3]))
        assert np.array_equal(np.load(old), [7])  # staged, not yet renamed
    assert np.array_equal(np.load(old), [1, 2])
    assert np.array_equal(np.load(tmp_path / "new" / "deep" / "Q.npy"), [3])
    assert _listing(tmp_path) == ["C.npy", "new", "new/deep", "new/deep/Q.npy"]


def test_output_set_removes_everything_it_created_on_failure(tmp_path):
    np.save(tmp_path / "C.npy", np.array([7]))
    (tmp_path / "old_folder").mkdir()
    (tmp_path / "old_folder" / "mine.txt").write_text("mine")
    before = _listing(tmp_path)
    with pytest.raises(RuntimeError), OutputSet() as out:
        out.claim(tmp_path / "C.npy")
        out.claim(tmp_path / "a" / "b" / "Q.npy")
        rtl = out.claim_folder(tmp_path / "gen" / "rtl", files=["accelerator.v"])
        old = out.claim_folder(tmp_path / "old_folder")
        out.write_npy(tmp_path / "C.npy", np.array([1]))
        out.write_npy(tmp_path / "a" / "b" / "Q.npy", np.array([2]))
        write_text(rtl / "accelerator.v", "module x; endmodule\n")  # written by other code
        write_text(old / "area.json", "{}")
        (old / "yosys").mkdir()
        out.write(write_text, tmp_path / "log.txt", "direct")
        raise RuntimeError("the simulator failed")
    assert _listing(tmp_path) == before
    assert np.array_equal(np.load(tmp_path / "C.npy"), [7])
    assert (tmp_path / "old_folder" / "mine.txt").read_text() == "mine"


def test_output_set_claims_are_checked_up_front(tmp_path):
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "config.json").symlink_to(tmp_path / "x")
    with OutputSet() as out:
        with pytest.raises(UnsafeTarget, match="symbolic link"):
            out.claim_folder(tmp_path / "gen", files=["accelerator.v", "config.json"])
        with pytest.raises(UnsafeTarget):
            out.claim("/dev/null")
    assert _listing(tmp_path) == ["gen", "gen/config.json"]


def test_read_input_and_read_npy(tmp_path):
    a = np.arange(6).reshape(2, 3)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "z.npy", a=a)  # numpy appends .npz: rename to the misleading name
    os.replace(tmp_path / "z.npy.npz", tmp_path / "z.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npy").write_text("hello")
    assert np.array_equal(read_npy(tmp_path / "a.npy"), a)
    for name, message in [("z.npy", "npz archive"), ("empty.npy", "empty"),
                          ("obj.npy", "not a .npy array"), ("text.npy", "not a .npy array"),
                          ("missing.npy", "no such file")]:
        with pytest.raises(UnreadableInput, match=message):
            read_npy(tmp_path / name, "A")
    for path, message in [("/dev/null", "not a regular file"), ("/dev/zero", "not a regular"),
                          (tmp_path, "a folder"), ("", "empty path")]:
        with pytest.raises(UnreadableInput, match=message):
            read_input(path)
    with pytest.raises(UnreadableInput, match="limit"):
        read_input(tmp_path / "a.npy", max_bytes=10)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FTACCEL_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir("sim") == (tmp_path / "c" / "sim").resolve()
    assert (tmp_path / "c" / "sim").is_dir()
    monkeypatch.delenv("FTACCEL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == (tmp_path / "x" / "ftaccel").resolve()


# -- the input door's parsers (issue 30) ------------------------------------------------------
def test_parsers_read_what_the_standard_readers_read(tmp_path):
    import hashlib
    import json
    import tomllib

    from ftaccel.files import hash_input, read_json, read_npz, read_text, read_toml

    a, b = np.arange(12).reshape(3, 4), np.linspace(0, 1, 5)
    np.savez_compressed(tmp_path / "x.npz", a=a, b=b)
    got = read_npz(tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz") as ref:
        assert set(got) == set(ref.files) and all(np.array_equal(got[k], ref[k]) for k in got)
    (tmp_path / "d.json").write_text('{"x": [1, 2.5, "é"]}')
    assert read_json(tmp_path / "d.json") == json.loads((tmp_path / "d.json").read_text())
    (tmp_path / "d.toml").write_text('[s]\nx = 1\ny = "é"\n')
    assert read_toml(tmp_path / "d.toml") == tomllib.loads((tmp_path / "d.toml").read_text())
    assert read_text(tmp_path / "d.toml") == (tmp_path / "d.toml").read_text()
    assert hash_input(tmp_path / "x.npz") == hashlib.sha256(
        (tmp_path / "x.npz").read_bytes()).hexdigest()
    np.save(tmp_path / "a.npy", a)
    assert np.array_equal(read_npy(tmp_path / "a.npy"), a)


@pytest.mark.parametrize("name,data,reader,needle", [
    ("bad.json", b'{"a": "\xff"}', "read_json", "not UTF-8"),
    ("deep.json", b"[" * 100_000, "read_json", "nested too deeply"),
    ("big.json", b"1" * 5000, "read_json", "4,300 digits"),
    ("bad.toml", b"a = [", "read_toml", "not TOML"),
    ("deep.toml", b"a = " + b"[" * 5000 + b"]" * 5000, "read_toml", "nested too deeply"),
    ("big.toml", b"a = " + b"7" * 5000, "read_toml", "4,300 digits"),
    ("empty.npz", b"", "read_npz", "empty"),
    ("text.npz", b"hello", "read_npz", "not a .npz archive"),
])
def test_malformed_content_is_one_line(tmp_path, name, data, reader, needle):
    import ftaccel.files as files

    (tmp_path / name).write_bytes(data)
    with pytest.raises(UnreadableInput) as exc:
        getattr(files, reader)(tmp_path / name, "--thing")
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1 and needle in msg and name in msg, msg


def test_npz_archives_are_checked_before_numpy_reserves_memory(tmp_path):
    import io
    import zipfile

    from ftaccel.files import MAX_ARCHIVE_BYTES, parse_npz, read_npz

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False,
                                                "shape": (10**10,)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("a.npy", head.getvalue() + b"x" * 80)
    with pytest.raises(UnreadableInput, match="declares 80,000,000,000 bytes"):
        read_npz(tmp_path / "huge.npz")
    with zipfile.ZipFile(tmp_path / "big.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.npy", b"\0" * (MAX_ARCHIVE_BYTES // 1024 + 1))
    with pytest.raises(UnreadableInput, match="expand to"):
        parse_npz((tmp_path / "big.npz").read_bytes(), "x", max_bytes=MAX_ARCHIVE_BYTES // 1024)
    np.savez(tmp_path / "obj.npz", o=np.array([None, 1], dtype=object))
    with pytest.raises(UnreadableInput, match="Python objects"):
        read_npz(tmp_path / "obj.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("notes.txt", "hi")
    with pytest.raises(UnreadableInput, match="not a .npy array"):
        read_npz(tmp_path / "other.npz")
    data = (tmp_path / "huge.npz").read_bytes()
    with pytest.raises(UnreadableInput):
        parse_npz(data[: len(data) // 2], "half")


def test_hash_input_refuses_a_fifo_without_blocking(tmp_path):
    from ftaccel.files import hash_input

    os.mkfifo(tmp_path / "f")
    with pytest.raises(UnreadableInput, match="not a regular file"):
        hash_input(tmp_path / "f", "--data")
    (tmp_path / "big").write_bytes(b"x" * 100)
    with pytest.raises(UnreadableInput, match="larger than 10 bytes"):
        hash_input(tmp_path / "big", "--data", max_bytes=10)
