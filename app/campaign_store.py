"""The campaign folder: a chunk store that proves itself (issue 30).

A campaign folder ``DIR`` holds:

``spec.json``
    Written first, atomically, when the folder is claimed (with a SHA-256 over itself, so an
    edited copy is refused): the normalised spec, the
    campaign's **identity** (:func:`identity`: a SHA-256 over the spec, the contents of every
    file it names — model, data, calibration, permutation, protected folders, an ONNX
    model's external data — the store format and the tool's version) and each input file's
    own hash, so that a refused resume says which file changed.
``lock``
    A POSIX record lock (``fcntl.lockf``, honoured over NFS) held by the one process writing
    the folder; a second writer is refused at once with the holder's pid and host, whatever
    the timing.  The file stays (removing it would let two writers lock two files).
``chunks/chunk-NNNNNN.json``
    One finished chunk each, written through a temporary file, ``fsync`` and an atomic
    rename (then the folder is synced): the campaign's identity, the chunk's index, its fault
    ids and work items, the trace rows and a SHA-256 over all of it.

Reopening lists ``chunks/`` once and reads every chunk once (linear in the chunks).  A chunk
is used only if it verifies: a regular file (not a link, FIFO or folder), the store's format,
this campaign's identity, the index and the fault ids and items the plan gives that index,
exactly one row per (fault, protection taking part), each row's fault description matching
its item, and the checksum.  A chunk that does not verify is moved to ``chunks/rejected/``
(kept for inspection, never deleted), named on stderr and in ``campaign.json``, and computed
again.  Dead temporary files of a killed writer are removed under the lock.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import socket
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftaccel.files import (
    FileProblem,
    UnsafeTarget,
    atomic_write,
    check_folder,
    hash_input,
    parse_json,
    read_input,
)

__all__ = ["CampaignError", "TRACE_COLUMNS", "Identity", "identity", "hash_inputs", "input_files",
           "Campaign", "rows_to_csv", "spec_hash", "STORE_FORMAT", "STORE_VERSION"]

STORE_FORMAT = "ftaccel-campaign"
CHUNK_FORMAT = "ftaccel-campaign-chunk"
#: 2: JSON chunks with identity, ids and checksum; spec.json with the input files' hashes.
#: 3: the ``repaired`` and ``fault_free`` outcomes, the ``acted`` and ``chip`` columns.
STORE_VERSION = 3

#: Trace columns: ENFOR-SA's (fault id, site, PE, register, bit, mode, cycle, layer, outcome)
#: and more.  ``cycle`` is the protection's own schedule; -1 where it does not apply.
TRACE_COLUMNS = ("fault_id", "protection", "model", "site", "pe_row", "pe_col", "register",
                 "bit", "mode", "cycle", "layer", "tile", "vector", "rate", "trial",
                 "outcome", "alarm", "spatial_alarms", "temporal_alarms", "unit", "acted",
                 "logits_changed", "top1_changed", "accuracy", "accuracy_drop",
                 "bypass_rate", "chip", "population_index")
_INT_COLS = {"fault_id", "pe_row", "pe_col", "bit", "cycle", "tile", "vector", "trial",
             "spatial_alarms", "temporal_alarms", "acted", "logits_changed", "top1_changed",
             "population_index"}
_FLOAT_COLS = {"rate", "accuracy", "accuracy_drop", "bypass_rate"}
_OUTCOMES = ("masked", "sdc", "critical", "detected", "corrected", "repaired", "fault_free")
_BUILTIN_DATA = ("digits", "digits-test", "digits-train")
_BUILTIN_MODELS = ("digits-mlp", "digits-cnn")
_CHUNK_NAME = re.compile(r"chunk-(\d{6,})\.json")


class CampaignError(ValueError):
    """Bad campaign input or an unusable campaign folder; the message names the key (exit 2)."""


# -- identity ----------------------------------------------------------------------------------

def input_files(spec: dict) -> list[tuple[str, str]]:
    """``(spec key, path)`` of every file the campaign reads, in spec order.

    The model (and an ONNX model's external-data files), the data and calibration files (both
    files of an IDX pair), the permutation files, the pinned profile and each protected
    folder's two files.
    """
    out: list[tuple[str, str]] = []
    net = spec["network"]
    if net["model"] not in _BUILTIN_MODELS:
        out.append(("network.model", net["model"]))
        if net["model"].endswith(".onnx"):
            out += [("network.model (external data)", p)
                    for p in _onnx_external_files(net["model"])]
    for key, value in (("network.calib", net.get("calib")),
                       ("data.source", spec["data"]["source"])):
        if value and value not in _BUILTIN_DATA:
            out += [(key, part) for part in value.split(",")]
    if net.get("permutation"):
        out.append(("network.permutation", net["permutation"]["file"]))
    if (spec.get("faults") or {}).get("profile"):
        out.append(("faults.profile", spec["faults"]["profile"]["file"]))
    for i, q in enumerate(spec["protections"]):
        if q.get("protected"):
            out += [(f"protections[{i}].protected", str(Path(q["protected"]) / name))
                    for name in ("protection.json", "model.npz")]
        if q.get("permutation"):
            out.append((f"protections[{i}].permutation", q["permutation"]["file"]))
    return out


def _onnx_external_files(path: str) -> list[str]:
    """The external-data files an ONNX model names (inside its folder), if onnx is installed.

    The importer reads them with the model; their contents are part of the campaign.  A
    model the onnx package cannot parse names none here (the importer reports it).
    """
    try:
        import onnx  # optional: only ONNX models need it
    except ImportError:
        return []
    try:
        proto = onnx.load_from_string(read_input(path, "spec key network.model"))
    except Exception:  # any read or parse failure: the importer reports it with the model
        return []
    folder = Path(path).resolve().parent
    found = []
    for t in proto.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = {e.key: e.value for e in t.external_data}.get("location")
        if not loc:
            continue
        p = (folder / loc).resolve()
        if p.is_relative_to(folder) and p.is_file() and str(p) not in found:
            found.append(str(p))
    return found


@dataclass(frozen=True)
class Identity:
    """A campaign's identity: ``hash`` over the spec, its files' contents, format, tool."""

    hash: str
    spec: dict
    files: dict = field(default_factory=dict)   # path -> {"key": spec key, "sha256": hex}
    tool: str = ""


def _tool_version() -> str:
    import ftaccel

    return ftaccel.__version__


def _identity_spec(spec: dict) -> dict:
    """The part of the spec that decides the results (the work cap and RTL check do not)."""
    out = json.loads(json.dumps(spec))
    out["campaign"].pop("max_items", None)
    out.pop("verify", None)
    return out


def hash_inputs(spec: dict) -> dict:
    """``{path: {"key": spec key, "sha256": hex}}`` of every file ``spec`` names.

    Read through the input door; CampaignError names the spec key of an unreadable file.
    """
    files: dict = {}
    for key, path in input_files(spec):
        try:
            files[path] = {"key": key, "sha256": hash_input(path, f"spec key {key}")}
        except FileProblem as exc:
            raise CampaignError(str(exc)) from None
    return files


def identity(spec: dict, files: dict | None = None) -> Identity:
    """The identity of ``spec``: its files' contents (``files``, else hashed now) and more."""
    if files is None:
        files = hash_inputs(spec)
    ispec = _identity_spec(spec)
    tool = _tool_version()
    body = {"format": STORE_FORMAT, "version": STORE_VERSION, "tool": tool, "spec": ispec,
            "files": {p: f["sha256"] for p, f in files.items()}}
    h = hashlib.sha256(_canonical(body)).hexdigest()[:32]
    return Identity(h, ispec, files, tool)


def spec_hash(spec: dict) -> str:
    """A short hash of the normalised spec alone (reports; contexts cached per process)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


# -- trace rows ------------------------------------------------------------------------------------

def _plain(v):
    """A trace value as a plain JSON type (numpy scalars become int / float / str)."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float | str):
        return v
    if hasattr(v, "item"):  # a numpy scalar
        return _plain(v.item())
    return str(v)


def rows_to_csv(rows: list[dict]) -> str:
    """The trace rows as CSV text (floats by ``repr``: they read back exactly)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TRACE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


class _Invalid(Exception):
    """A chunk that does not verify; the message says why."""


def _typed(col: str, v) -> bool:
    if col in _INT_COLS:
        return v == "" or (type(v) is int)
    if col in _FLOAT_COLS:
        return v == "" or type(v) in (int, float)
    return type(v) is str


# -- the folder --------------------------------------------------------------------------------

#: Folders this process holds the lock of (a POSIX lock does not exclude its own process).
_HELD: set[str] = set()


class Campaign:
    """One campaign folder: its spec, identity, lock and verified chunks.

    Parameters
    ----------
    spec : dict
        The normalised spec (:func:`app.campaign.parse_spec`).
    out_dir : path
        The folder (created by :meth:`claim`).
    ident : Identity, optional
        The campaign's identity (default: computed from ``spec`` now).
    log : callable
        Where notes go (rejected chunks, cleaned temporaries); ``print``-like.
    """

    def __init__(self, spec: dict, out_dir, ident: Identity | None = None, log=print):
        self.spec = spec
        self.dir = Path(out_dir)
        self.ident = ident or identity(spec)
        self.hash = self.ident.hash
        self.log = log
        self.rejected: list[dict] = []
        self.saved = 0
        self._fd: int | None = None
        self._key: str | None = None
        self._made: list[Path] = []       # folders this run created (outermost first)
        self._fresh = False               # spec.json written by this run

    # -- paths -----------------------------------------------------------------------------
    @property
    def chunk_dir(self) -> Path:
        """The folder of finished chunks."""
        return self.dir / "chunks"

    @property
    def spec_path(self) -> Path:
        """``spec.json``: the spec and the identity, written first."""
        return self.dir / "spec.json"

    @property
    def lock_path(self) -> Path:
        """The lock file."""
        return self.dir / "lock"

    def chunk_path(self, c: int) -> Path:
        """The file of chunk ``c``."""
        return self.chunk_dir / f"chunk-{c:06d}.json"

    # -- claiming ----------------------------------------------------------------------------
    def _where(self) -> str:
        return f"-o {self.dir}"

    def check(self) -> bool:
        """Check, writing nothing, that this campaign may use the folder; True to resume.

        Raises CampaignError when the folder is unusable, held by another writer, or
        belongs to another campaign (saying which part differs).
        """
        try:
            check_folder(self.dir, "-o")
        except UnsafeTarget as exc:
            raise CampaignError(str(exc)) from None
        if not self.dir.exists():
            return False
        self._probe_lock()
        return self._check_contents()

    def _check_contents(self) -> bool:
        try:
            st = os.lstat(self.spec_path)
        except FileNotFoundError:
            st = None
        if st is None:
            leftovers = [n for n in os.listdir(self.dir)
                         if n != "lock" and not _our_temp(n, "spec.json")
                         and not (n == "chunks" and self._empty_chunks())]
            if leftovers:
                raise CampaignError(f"{self._where()}: folder is not empty and holds no "
                                    f"campaign (found {', '.join(sorted(leftovers)[:3])})")
            return False
        if not stat.S_ISREG(st.st_mode):
            raise CampaignError(f"{self._where()}: spec.json is not a regular file")
        try:
            old = parse_json(read_input(self.spec_path, "spec.json"),
                             f"{self._where()}: spec.json")
        except FileProblem as exc:
            raise CampaignError(f"{exc}; not a campaign folder this tool can resume") from None
        self._compare(old)
        return True

    def _empty_chunks(self) -> bool:
        try:
            return (self.dir / "chunks").is_dir() and not any(
                not _our_temp(n, None) for n in os.listdir(self.dir / "chunks"))
        except OSError:
            return False

    def _compare(self, old) -> None:
        where = self._where()
        if not isinstance(old, dict) or old.get("format") != STORE_FORMAT:
            if isinstance(old, dict) and "hash" in old and "spec" in old:
                raise CampaignError(f"{where}: a campaign folder of an older ftaccel (chunks "
                                    "without identity or checksum); run it in a new folder")
            raise CampaignError(f"{where}: spec.json is not a campaign spec of this tool")
        if old.get("version") != STORE_VERSION:
            raise CampaignError(f"{where}: campaign store version {old.get('version')!r}, "
                                f"this tool writes {STORE_VERSION}; run it in a new folder")
        body = {k: v for k, v in old.items() if k != "sha256"}
        if old.get("sha256") != hashlib.sha256(_canonical(body)).hexdigest():
            raise CampaignError(f"{where}: spec.json does not match its checksum (edited or "
                                "damaged); its chunks cannot be trusted: use another folder")
        if old.get("hash") == self.hash:
            return
        why = "its identity differs"
        if old.get("identity_spec") != self.ident.spec:
            keys = _differences(old.get("identity_spec"), self.ident.spec)
            why = f"the spec differs in {', '.join(keys[:4]) or 'its structure'}"
        elif old.get("tool") != self.ident.tool:
            why = (f"it was started by ftaccel {old.get('tool')}, this is {self.ident.tool} "
                   "(results of two versions are not mixed)")
        else:
            files = old.get("inputs") or {}
            for path, f in self.ident.files.items():
                was = (files.get(path) or {}).get("sha256") if isinstance(files, dict) else None
                if was != f["sha256"]:
                    why = (f"{f['key']} {path} changed since the campaign started (sha256 "
                           f"{str(was)[:12]}… → {f['sha256'][:12]}…)") if was else \
                        f"{f['key']} {path} is not the file it started with"
                    break
        raise CampaignError(f"{where}: the folder belongs to a different campaign: {why}; "
                            "use another folder or remove it")

    def _probe_lock(self) -> None:
        """Refuse now if another writer holds the lock (the claim takes it for real)."""
        if not self.lock_path.exists():
            return
        if os.path.realpath(self.dir) in _HELD:
            self._busy()
        fd = self._open_lock()
        try:
            import fcntl

            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._busy()
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _open_lock(self) -> int:
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                           | os.O_CLOEXEC | os.O_NONBLOCK, 0o666)
        except OSError as exc:
            raise CampaignError(f"{self._where()}: cannot open its lock file "
                                f"({exc.strerror}; a link or a non-file there?)") from None

    def _busy(self):
        holder = ""
        with contextlib.suppress(OSError, FileProblem, UnicodeDecodeError):
            holder = read_input(self.lock_path, "lock", 4096).decode().strip()
        raise CampaignError(f"{self._where()}: another rtlgen campaign is writing this folder"
                            f"{f' ({holder})' if holder else ''}; wait for it to end, or use "
                            "another folder")

    def claim(self) -> bool:
        """Take the folder for this campaign (lock, then ``spec.json``, then ``chunks/``).

        Returns True when resuming.  The lock is held until :meth:`release`.
        """
        import fcntl

        resuming = self.check()
        if not self.dir.exists():
            self._made = [p for p in reversed([self.dir, *self.dir.parents]) if not p.exists()]
            self.dir.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.dir)
        if key in _HELD:
            self._busy()
        while True:
            fd = self._open_lock()
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                self._busy()
            # the file locked must still be the one at the path (never removed, but a user
            # may have): else lock the new one
            try:
                same = os.fstat(fd).st_ino == os.lstat(self.lock_path).st_ino
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd, self._key = fd, key
        _HELD.add(key)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        try:
            resuming = self._check_contents()  # again, now that no one else writes
            if not resuming:
                self._clean_temps(self.dir, "spec.json")
                doc = {"format": STORE_FORMAT, "version": STORE_VERSION, "hash": self.hash,
                       "tool": self.ident.tool, "inputs": self.ident.files,
                       "identity_spec": self.ident.spec, "spec": self.spec}
                doc["sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
                payload = json.dumps(doc, indent=2, allow_nan=True).encode() + b"\n"
                with atomic_write(self.spec_path) as fh:  # first: the folder's identity
                    fh.write(payload)
                self._fresh = True
                _sync_dir(self.dir)
            if self.chunk_dir.is_symlink() or (self.chunk_dir.exists()
                                               and not self.chunk_dir.is_dir()):
                raise CampaignError(f"{self._where()}: chunks is not a folder")
            self.chunk_dir.mkdir(exist_ok=True)
        except BaseException:
            self.abandon()
            raise
        return resuming

    def release(self) -> None:
        """Let the lock go (the lock file stays)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the POSIX lock
            self._fd = None
        if self._key is not None:
            _HELD.discard(self._key)
            self._key = None

    def abandon(self) -> None:
        """Undo a claim that produced nothing, then release.

        A folder this run started (``spec.json`` written now) in which no chunk was saved
        holds nothing of value: it is removed (the folders this run made, or the files it
        put into a folder that existed).  A resumed folder or one with saved chunks stays.
        """
        try:
            if self._fresh and self.saved == 0:
                with contextlib.suppress(OSError):
                    shutil.rmtree(self.chunk_dir)
                for p in (self.spec_path, self.lock_path):
                    with contextlib.suppress(OSError):
                        p.unlink()
                for p in reversed(self._made):
                    with contextlib.suppress(OSError):
                        p.rmdir()
                self._fresh = False
        finally:
            self.release()

    # -- chunks ------------------------------------------------------------------------------
    @staticmethod
    def _clean_temps(folder: Path, name: str | None) -> int:
        n = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if _our_temp(entry.name, name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        n += 1
        return n

    def done(self, plan, protections: list[str]) -> set[int]:
        """The chunks of ``plan`` on disk that verify; the others are rejected.

        One listing of ``chunks/`` and one read of each chunk.  ``protections``: the names
        of the protections every item has a row for.
        """
        if not self.chunk_dir.is_dir():
            return set()
        self._clean_temps(self.chunk_dir, None)
        good = set()
        for entry in sorted(os.scandir(self.chunk_dir), key=lambda e: e.name):
            m = _CHUNK_NAME.fullmatch(entry.name)
            if not m:
                continue
            c = int(m.group(1))
            if c >= plan.chunks or entry.name != self.chunk_path(c).name:
                self._reject(Path(entry.path), c, "not a chunk of this plan")
                continue
            try:
                self._verified(c, plan, protections)
            except _Invalid as exc:
                self._reject(Path(entry.path), c, str(exc))
                continue
            good.add(c)
        return good

    def _verified(self, c: int, plan, protections: list[str]) -> list[list]:
        """The rows of chunk ``c`` if its file verifies, else _Invalid saying why."""
        path = self.chunk_path(c)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise _Invalid("missing") from None
        except OSError as exc:
            raise _Invalid(f"cannot stat ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else \
                "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise _Invalid(kind)
        try:
            doc = parse_json(read_input(path, "chunk"), "chunk")
        except FileProblem as exc:
            raise _Invalid(str(exc).split(": ", 1)[-1]) from None
        if not isinstance(doc, dict) or doc.get("format") != CHUNK_FORMAT:
            raise _Invalid("not a chunk file")
        if doc.get("version") != STORE_VERSION:
            raise _Invalid(f"chunk format version {doc.get('version')!r}")
        body = {k: v for k, v in doc.items() if k != "sha256"}
        if doc.get("sha256") != hashlib.sha256(_canonical(body)).hexdigest():
            raise _Invalid("checksum does not match its contents")
        if doc.get("campaign") != self.hash:
            raise _Invalid(f"belongs to another campaign ({str(doc.get('campaign'))[:12]}…)")
        if doc.get("chunk") != c:
            raise _Invalid(f"holds chunk {doc.get('chunk')!r}")
        want = plan.chunk_items(c)
        fids = [fid for fid, _ in want]
        items = json.loads(json.dumps([_item(it) for _, it in want]))
        if doc.get("fault_ids") != fids or doc.get("items") != items:
            raise _Invalid("its fault ids or items are not the plan's")
        if doc.get("columns") != list(TRACE_COLUMNS):
            raise _Invalid("other trace columns")
        rows = doc.get("rows")
        if not isinstance(rows, list) or len(rows) != len(fids) * len(protections):
            raise _Invalid(f"{len(rows) if isinstance(rows, list) else 'no'} rows for "
                           f"{len(fids)} faults × {len(protections)} protections")
        by_id = dict(zip(fids, items, strict=True))
        col = {k: i for i, k in enumerate(TRACE_COLUMNS)}
        seen = set()
        prots = set(protections)
        register = self.spec["faults"]["model"] == "register"
        for r in rows:
            if not isinstance(r, list) or len(r) != len(TRACE_COLUMNS) or not all(
                    _typed(k, v) for k, v in zip(TRACE_COLUMNS, r, strict=True)):
                raise _Invalid("a malformed row")
            fid, prot = r[col["fault_id"]], r[col["protection"]]
            if fid not in by_id or prot not in prots or (fid, prot) in seen:
                raise _Invalid(f"an unexpected or repeated row (fault {fid}, {prot})")
            seen.add((fid, prot))
            item = by_id[fid]
            if register:
                ok = r[col["population_index"]] == item
            else:
                ok = r[col["rate"]] == item[0] and r[col["trial"]] == item[1] and (
                    len(item) < 3 or r[col["chip"]] == item[2])
            if not ok or r[col["outcome"]] not in _OUTCOMES:
                raise _Invalid(f"row of fault {fid} ({prot}) does not match its item")
        return rows

    def _reject(self, path: Path, c: int, why: str) -> None:
        """Move a chunk that does not verify aside (kept) and note it."""
        dest = self.chunk_dir / "rejected"
        dest.mkdir(exist_ok=True)
        target = dest / f"{path.name}.{time.time_ns()}"
        try:
            os.rename(path, target)  # a link, FIFO or folder moves as it is, never followed
        except OSError as exc:
            raise CampaignError(f"{self._where()}: chunk {c} ({path.name}) does not verify "
                                f"({why}) and cannot be moved aside ({exc.strerror})") from None
        self.rejected.append({"chunk": c, "file": path.name, "reason": why,
                              "moved_to": str(target.relative_to(self.dir))})
        self.log(f"chunk {c} ({path.name}): {why}; moved to "
                 f"{target.relative_to(self.dir)}, computing it again", file=sys.stderr)

    def save_chunk(self, c: int, items: list, rows: list[dict]) -> None:
        """Write chunk ``c`` (its ``(fault id, item)`` list and trace rows) atomically."""
        body = {"format": CHUNK_FORMAT, "version": STORE_VERSION, "campaign": self.hash,
                "chunk": c, "fault_ids": [fid for fid, _ in items],
                "items": [_item(it) for _, it in items], "columns": list(TRACE_COLUMNS),
                "rows": [[_plain(r.get(k, "")) for k in TRACE_COLUMNS] for r in rows]}
        body = json.loads(_canonical(body))  # the types the reader will see
        doc = {**body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()}
        path = self.chunk_path(c)
        if os.path.lexists(path):  # e.g. planted while running: never write through it
            self._reject(path, c, "appeared while it was being computed")
        with atomic_write(path) as fh:
            fh.write(_canonical(doc))
        _sync_dir(self.chunk_dir)
        self.saved += 1

    def rows(self, plan, protections: list[str]) -> tuple[list[dict], list[int]]:
        """Every verified row of ``plan`` in chunk order, and the chunks that fail now."""
        out, bad = [], []
        for c in range(plan.chunks):
            try:
                rows = self._verified(c, plan, protections)
            except _Invalid as exc:
                if os.path.lexists(self.chunk_path(c)):
                    self._reject(self.chunk_path(c), c, str(exc))
                bad.append(c)
                continue
            out += [dict(zip(TRACE_COLUMNS, r, strict=True)) for r in rows]
        return out, bad


def _differences(a, b, path: str = "") -> list[str]:
    """The keys (``section.key``, two levels deep) whose values differ between two specs."""
    if not isinstance(a, dict) or not isinstance(b, dict) or path.count(".") >= 2:
        return [path.lstrip(".") or "(top)"] if a != b else []
    out = []
    for k in sorted(set(a) | set(b), key=str):
        out += _differences(a.get(k), b.get(k), f"{path}.{k}")
    return out


def _item(it):
    """A work item as JSON: a population index, or [rate, trial] ([rate, trial, chip])."""
    return list(it) if isinstance(it, tuple | list) else it


def _our_temp(name: str, target: str | None) -> bool:
    """A temporary file of :func:`ftaccel.files.atomic_write` (for ``target``, or a chunk)."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    if target is None:
        return name.startswith(".chunk-")
    return name.startswith(f".{target}.")


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

