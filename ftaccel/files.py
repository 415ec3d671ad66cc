"""Where the tool keeps its caches, how it reads a file a user names and writes one they ask for.

Every room reads and writes user files through this module, so that the rules hold everywhere:

* **Caches** (compiled simulator models, the Yosys WebAssembly cache, generated RTL keyed by
  configuration) live under :func:`cache_dir`: ``$FTACCEL_CACHE_DIR`` if set, else
  ``$XDG_CACHE_HOME/ftaccel``, else ``~/.cache/ftaccel``; never inside the installed package.
* **Inputs** go through one door, :func:`read_input`: a regular file (a device such as
  ``/dev/null`` or ``/dev/zero``, a FIFO or a folder is refused with :class:`UnreadableInput`
  instead of blocking or reading forever), opened non-blocking, at most ``max_bytes`` long.
  The parsers on top of it (:func:`read_text`, :func:`read_json`, :func:`read_toml`,
  :func:`read_npy`, :func:`read_npz`, and :func:`parse_json` / :func:`parse_toml` /
  :func:`parse_npz` for bytes already read) turn every malformed content (not UTF-8, not
  JSON/TOML, nested too deeply, an integer too long to read, a truncated or corrupt archive,
  an array declared larger than its data, a pickled object) into one
  :class:`UnreadableInput` line naming the file; a ``.npy`` never unpickles.
* **Outputs** are written through a fresh, unpredictable temporary file created exclusively
  (``O_EXCL``, so never through a planted link) in the target's folder, then renamed onto the
  target.  A target that exists and is not a regular file (a device, a FIFO, a folder, a
  symbolic link), or whose folder cannot be written, is refused with :class:`UnsafeTarget`:
  call :func:`check_target` (or :meth:`OutputSet.claim`) on every output path while
  validating the inputs, before any work.
* :class:`OutputSet` makes a command all-or-nothing: its files are staged and renamed onto
  their names only when the command succeeds; on failure the staged files, the folders the
  command created and the new entries of output folders it was given are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import stat
import tempfile
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["FileProblem", "UnsafeTarget", "UnreadableInput", "cache_dir", "check_target",
           "check_folder", "atomic_write", "write_text", "write_json", "write_npy",
           "read_input", "check_input", "read_npy", "OutputSet", "MAX_INPUT_BYTES",
           "read_text", "read_json", "read_toml", "read_npz", "parse_json", "parse_toml",
           "parse_npz", "hash_input", "MAX_TEXT_BYTES", "MAX_ARCHIVE_BYTES"]

#: Largest input file read (bytes): far beyond anything the simulators can run, small enough
#: that a wrong path (a disk image, a huge log) fails at once instead of filling the memory.
MAX_INPUT_BYTES = 256 << 20
#: Largest text input (a JSON or TOML document): specs, permutations, profiles, reports.
MAX_TEXT_BYTES = 16 << 20
#: Largest total the arrays of one ``.npz`` may expand to (a compressed archive can declare
#: far more than its size on disk).
MAX_ARCHIVE_BYTES = 1 << 30

# Files are created 0600 by mkstemp; a finished output gets the permissions a plain open()
# would have given it (0666 minus the umask).  The umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class FileProblem(ValueError):
    """A path given by the user that cannot be used; the message is one line."""


class UnsafeTarget(FileProblem):
    """An output path that must not be written: not a regular file, or not writable."""


class UnreadableInput(FileProblem):
    """An input path that cannot be read as a regular file."""


def _show(text: str, limit: int = 100) -> str:
    """``repr(text)`` cut in the middle to ``limit`` characters: a path keeps its file name."""
    shown = repr(text)
    if len(shown) <= limit:
        return shown
    head = (limit - 3) // 3
    return shown[:head] + "..." + shown[-(limit - 3 - head):]


def cache_dir(kind: str = "") -> Path:
    """The cache folder for ``kind`` (created): ``$FTACCEL_CACHE_DIR`` or the user's cache."""
    base = os.environ.get("FTACCEL_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = str(Path(xdg) / "ftaccel") if xdg else str(Path.home() / ".cache" / "ftaccel")
    path = Path(base).expanduser().resolve()
    if kind:
        path = path / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lstat(p: Path, what: str, text: str, error: type[FileProblem]) -> os.stat_result | None:
    try:
        return os.lstat(p)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise error(f"{what}: {_show(text)}: a parent is not a folder") from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        reason = getattr(exc, "strerror", None) or str(exc)
        raise error(f"{what}: {_show(text)}: {reason}") from None


def _check_parent(p: Path, what: str, text: str) -> None:
    """The nearest existing ancestor of ``p`` must be a folder this process can write in."""
    parent = p.parent
    while True:
        try:
            st = os.stat(parent)  # a link to a folder is fine here: the user named it
        except FileNotFoundError:
            if parent == parent.parent:
                break
            parent = parent.parent
            continue
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UnsafeTarget(f"{what}: {_show(text)}: {reason}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeTarget(f"{what}: {_show(text)}: {str(parent)!r} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UnsafeTarget(f"{what}: {_show(text)}: folder {str(parent)!r} is not "
                               "writable")
        return


def check_target(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file may be written there, else raise.

    A new name in a writable folder, or an existing regular file (not reached through a
    symbolic link), may be replaced; anything else raises :class:`UnsafeTarget`.
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise UnsafeTarget(f"{what}: empty path")
    p = Path(text)
    st = _lstat(p, what, text, UnsafeTarget)
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeTarget(f"{what}: {_show(text)} is a symbolic link; refusing to follow "
                               "it")
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise UnsafeTarget(f"{what}: {_show(text)} exists and is {kind}; refusing to "
                               "replace it")
    _check_parent(p, what, text)
    return p


def check_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """``path`` if files may be written into it: a new name, or an existing folder.

    A symbolic link to a folder is accepted (a user's link to a scratch disk, say): the files
    written inside it are still checked one by one (:func:`check_target`), and a link in
    their place is refused.  A link to anything else, or to nothing, is refused.
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise UnsafeTarget(f"{what}: empty path")
    p = Path(text)
    st = _lstat(p, what, text, UnsafeTarget)
    if st is None:
        _check_parent(p, what, text)
        return p
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(p)
        except OSError:
            raise UnsafeTarget(f"{what}: {_show(text)} is a symbolic link to nothing") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeTarget(f"{what}: {_show(text)} exists and is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise UnsafeTarget(f"{what}: folder {_show(text)} is not writable")
    return p


def _temp_beside(target: Path) -> tuple[int, str]:
    """A new, exclusively created temporary file in ``target``'s folder (mode as open())."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp",
                               dir=target.parent)
    with contextlib.suppress(OSError):  # a file system without permissions
        os.fchmod(fd, 0o666 & ~_UMASK)
    return fd, tmp


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a fresh temporary file beside ``path``; on success rename it onto ``path``.

    The temporary name is unpredictable and created with ``O_EXCL`` (:func:`tempfile.mkstemp`),
    so a planted file or link cannot redirect the write.  On any error the temporary file is
    removed and ``path`` is left as it was.
    """
    target = check_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(target)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        check_target(target)  # still safe to replace at the moment of the rename
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(text.encode())
    return Path(path)


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()


def _npy_bytes(array) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    payload = _json_bytes(data)  # serialise first: a TypeError leaves nothing behind
    with atomic_write(path) as fh:
        fh.write(payload)
    return Path(path)


def write_npy(path: str | os.PathLike, array) -> Path:
    """Write a numpy array as ``.npy`` to ``path`` atomically."""
    payload = _npy_bytes(array)
    with atomic_write(path) as fh:
        fh.write(payload)
    return Path(path)


# -- inputs ----------------------------------------------------------------------------------
def read_input(path: str | os.PathLike, what: str = "input",
               max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file, or :class:`UnreadableInput` with one line saying why.

    The file is opened non-blocking (a FIFO would otherwise wait for a writer forever) and
    checked to be a regular file before anything is read.
    """
    check_input(path, what)
    text = os.fspath(path)
    try:
        fd = os.open(text, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # removed or changed since the check
        raise UnreadableInput(f"{what}: cannot open {_show(text)}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UnreadableInput(f"{what}: {_show(text)} is {kind}")
    with os.fdopen(fd, "rb") as fh:
        if st.st_size > max_bytes:
            raise UnreadableInput(f"{what}: {_show(text)} is {st.st_size:,} bytes; the limit "
                                  f"is {max_bytes:,}")
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise UnreadableInput(f"{what}: cannot read {_show(text)}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise UnreadableInput(f"{what}: {_show(text)} is larger than {max_bytes:,} bytes")
    return data


def hash_input(path: str | os.PathLike, what: str = "input",
               max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The SHA-256 (hex) of a regular file's contents, read through the same door.

    Streamed (nothing held in memory), refused like :func:`read_input`: a FIFO, a device, a
    folder or a file above ``max_bytes`` raise :class:`UnreadableInput`.
    """
    text = os.fspath(path)
    check_input(path, what)
    try:
        fd = os.open(text, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableInput(f"{what}: cannot open {_show(text)}: {exc.strerror}") from None
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableInput(f"{what}: {_show(text)} is not a regular file")
        seen = 0
        try:
            while block := fh.read(1 << 20):
                seen += len(block)
                if seen > max_bytes:
                    raise UnreadableInput(f"{what}: {_show(text)} is larger than "
                                          f"{max_bytes:,} bytes")
                h.update(block)
        except OSError as exc:
            raise UnreadableInput(f"{what}: cannot read {_show(text)}: {exc.strerror}") from None
    return h.hexdigest()


def check_input(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` if it names a readable regular file (nothing is read), else raise."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise UnreadableInput(f"{what}: empty path")
    try:
        fd = os.open(text, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnreadableInput(f"{what}: no such file {_show(text)}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UnreadableInput(f"{what}: cannot open {_show(text)}: {reason}") from None
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise UnreadableInput(f"{what}: {_show(text)} is {kind}")
    return Path(text)


def read_npy(path: str | os.PathLike, what: str = "input"):
    """The array in a ``.npy`` file (never unpickled), or :class:`UnreadableInput`."""
    import numpy as np

    data = read_input(path, what)
    if data[:2] == b"PK":
        raise UnreadableInput(f"{what}: {_show(os.fspath(path))} is a .npz archive, not a "
                              ".npy array (save one array with numpy.save)")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except EOFError:
        raise UnreadableInput(f"{what}: {_show(os.fspath(path))} is empty, not a .npy "
                              "array") from None
    except (ValueError, OSError, TypeError, MemoryError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise UnreadableInput(f"{what}: {_show(os.fspath(path))} is not a .npy array "
                              f"({reason})") from None
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load gives arrays or npz
        raise UnreadableInput(f"{what}: {_show(os.fspath(path))} is not a .npy array")
    return arr


def _where(path) -> str:
    return _show(os.fspath(path))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def read_text(path: str | os.PathLike, what: str = "input",
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a regular file (:func:`read_input`), or one UnreadableInput line."""
    return _decode(read_input(path, what, max_bytes), f"{what}: {_where(path)}")


def _decode(data: bytes | str, where: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableInput(f"{where}: not UTF-8 text (byte {exc.start} is "
                              f"0x{data[exc.start]:02x})") from None


def _too_long(exc: ValueError) -> str:
    if "digits" in str(exc):
        return "an integer of more than 4,300 digits"
    return _reason(exc)


def parse_json(data: bytes | str, where: str) -> Any:
    """The JSON document in ``data``; any defect raises UnreadableInput naming ``where``.

    Not UTF-8, not JSON, nested too deeply for the parser, or an integer of more digits than
    Python reads (4,300): one line each, never a traceback.
    """
    text = _decode(data, where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableInput(f"{where}: not JSON ({exc.msg}, line {exc.lineno} column "
                              f"{exc.colno})") from None
    except RecursionError:
        raise UnreadableInput(f"{where}: not usable JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer over 4,300 digits
        raise UnreadableInput(f"{where}: not usable JSON ({_too_long(exc)})") from None


def read_json(path: str | os.PathLike, what: str = "input",
              max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """The JSON document in a regular file (:func:`read_input`, :func:`parse_json`)."""
    return parse_json(read_input(path, what, max_bytes), f"{what}: {_where(path)}")


def parse_toml(data: bytes | str, where: str) -> dict:
    """The TOML document in ``data`` (a dict); any defect raises UnreadableInput."""
    text = _decode(data, where)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UnreadableInput(f"{where}: not TOML ({_reason(exc)})") from None
    except RecursionError:
        raise UnreadableInput(f"{where}: not usable TOML (nested too deeply)") from None
    except ValueError as exc:  # an integer over 4,300 digits
        raise UnreadableInput(f"{where}: not usable TOML ({_too_long(exc)})") from None


def read_toml(path: str | os.PathLike, what: str = "input",
              max_bytes: int = MAX_TEXT_BYTES) -> dict:
    """The TOML document in a regular file (:func:`read_input`, :func:`parse_toml`)."""
    return parse_toml(read_input(path, what, max_bytes), f"{what}: {_where(path)}")


def parse_npz(data: bytes, where: str, max_bytes: int = MAX_ARCHIVE_BYTES) -> dict:
    """Every array of the ``.npz`` archive in ``data`` (``{name: ndarray}``), never unpickled.

    A truncated or corrupt archive, a member that is not a ``.npy`` array, an object array,
    arrays declared larger than their data, or a total above ``max_bytes`` once expanded
    raise UnreadableInput naming ``where``.
    """
    import numpy as np  # the core imports numpy only where it reads or writes arrays

    if not data:
        raise UnreadableInput(f"{where}: empty, not a .npz archive")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError) as exc:
        raise UnreadableInput(f"{where}: not a .npz archive ({_reason(exc)})") from None
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise UnreadableInput(f"{where}: its arrays expand to {total:,} bytes; the limit is "
                              f"{max_bytes:,}")
    for info in infos:
        if not info.filename.endswith(".npy") or info.is_dir():
            raise UnreadableInput(f"{where}: member {_show(info.filename)} is not a .npy "
                                  "array (not a numpy .npz archive)")
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in infos:
                # the header's shape must fit the member's data: numpy would otherwise
                # reserve the declared size before finding the data missing
                with zf.open(info) as fh:
                    shape, dtype = _npy_header(fh, np)
                if dtype.hasobject:
                    raise UnreadableInput(f"{where}: array {_show(info.filename[:-4])} holds "
                                          "Python objects (a pickle is never loaded)")
                need = math.prod(shape) * dtype.itemsize
                if need > info.file_size:
                    raise UnreadableInput(f"{where}: array {_show(info.filename[:-4])} "
                                          f"declares {need:,} bytes of data, its member holds "
                                          f"{info.file_size:,}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for name in npz.files:
                arr = npz[name]
                if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
                    raise UnreadableInput(f"{where}: array {_show(name)} holds Python "
                                          "objects")
                out[name] = arr
    except UnreadableInput:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError,
            TypeError, MemoryError, NotImplementedError, SyntaxError, OverflowError) as exc:
        raise UnreadableInput(f"{where}: damaged .npz archive ({_reason(exc)})") from None
    return out


def _npy_header(fh, np) -> tuple[tuple, Any]:
    """(shape, dtype) of the ``.npy`` stream ``fh`` from its header alone."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
    else:  # (3, 0): UTF-8 field names; numpy reads it through its generic reader
        shape, _fortran, dtype = fmt._read_array_header(fh, version)
    return tuple(int(n) for n in shape), dtype


def read_npz(path: str | os.PathLike, what: str = "input",
             max_bytes: int = MAX_INPUT_BYTES) -> dict:
    """Every array of a ``.npz`` file (:func:`read_input`, :func:`parse_npz`)."""
    return parse_npz(read_input(path, what, max_bytes), f"{what}: {_where(path)}")


# -- all-or-nothing outputs ------------------------------------------------------------------
def _missing_ancestors(p: Path) -> list[Path]:
    """``p`` and its ancestors that do not exist yet, outermost first."""
    missing = []
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            break
        missing.append(q)
    return list(reversed(missing))


class OutputSet:
    """The outputs of one command: checked up front, written all or nothing.

    >>> with OutputSet() as out:                      # doctest: +SKIP
    ...     out.claim("C.npy"); out.claim_folder("report", files=["area.json"])
    ...     acc = run()                               # the work; nothing written yet
    ...     out.write_npy("C.npy", acc)               # staged in a temporary file
    ... # on leaving the block: renamed onto C.npy; on an exception: all removed

    :meth:`write_npy`, :meth:`write_json` and :meth:`write_text` stage a file and rename it
    onto its name when the block ends without an exception, so a target that existed keeps
    its old content if the command fails.  Files that other code writes into a claimed
    folder cannot be staged: a folder the command created is removed on failure, and in a
    folder that existed the entries that appeared during the command are removed (a file
    that was replaced there stays replaced, complete).
    """

    def __init__(self) -> None:
        self._staged: list[tuple[str, Path]] = []
        self._new_dirs: list[Path] = []          # created by this command: removed if empty
        self._new_folders: list[Path] = []       # claimed output folders that were new
        self._old_folders: list[tuple[Path, set[str]]] = []
        self._new_files: list[Path] = []         # written directly (write()) and new
        self.committed: list[Path] = []

    # -- up front --------------------------------------------------------------------------
    def claim(self, path: str | os.PathLike, what: str = "output") -> Path:
        """Check ``path`` as a file target; remember its missing folders for clean-up."""
        p = check_target(path, what)
        self._new_dirs.extend(q for q in _missing_ancestors(p.parent)
                              if q not in self._new_dirs)
        return p

    def claim_folder(self, path: str | os.PathLike, what: str = "output folder",
                     files: Iterable[str] = ()) -> Path:
        """Check an output folder and the names of the files that will be written in it."""
        p = check_folder(path, what)
        for name in files:
            check_target(p / name, what)
        if p.exists():
            self._old_folders.append((p, set(os.listdir(p))))
        else:
            self._new_dirs.extend(q for q in _missing_ancestors(p.parent)
                                  if q not in self._new_dirs)
            self._new_folders.append(p)
        return p

    def mkdir(self, path: str | os.PathLike) -> Path:
        """Create folder ``path`` (and parents); remember every folder made here."""
        p = Path(path)
        missing = _missing_ancestors(p)
        p.mkdir(parents=True, exist_ok=True)
        self._new_dirs.extend(q for q in missing if q not in self._new_dirs)
        return p

    # -- writing ---------------------------------------------------------------------------
    def stage(self, path: str | os.PathLike, payload: bytes) -> Path:
        """Write ``payload`` to a fresh temporary file beside ``path``; renamed on success."""
        target = self.claim(path)
        self.mkdir(target.parent)
        fd, tmp = _temp_beside(target)
        self._staged.append((tmp, target))
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        return target

    def write_npy(self, path: str | os.PathLike, array) -> Path:
        """Stage ``array`` as ``.npy`` for ``path``."""
        return self.stage(path, _npy_bytes(array))

    def write_json(self, path: str | os.PathLike, data: Any) -> Path:
        """Stage ``data`` as indented JSON for ``path``."""
        return self.stage(path, _json_bytes(data))

    def write_text(self, path: str | os.PathLike, text: str) -> Path:
        """Stage ``text`` (UTF-8) for ``path``."""
        return self.stage(path, text.encode())

    def write(self, writer: Callable[..., Path], path: str | os.PathLike, *args) -> Path:
        """Call ``writer(path, *args)`` now (e.g. :func:`write_npy`).

        A new file is removed on failure, a replaced one stays replaced.
        """
        p = self.claim(path)
        if not p.exists():
            self._new_files.append(p)
        return writer(path, *args)

    # -- the end ---------------------------------------------------------------------------
    def commit(self) -> list[Path]:
        """Rename every staged file onto its target (each target checked once more)."""
        while self._staged:
            tmp, target = self._staged[0]
            check_target(target)
            os.replace(tmp, target)
            self._staged.pop(0)
            self.committed.append(target)
        return self.committed

    def abort(self) -> None:
        """Remove the staged files and everything this command created."""
        for tmp, _ in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._staged.clear()
        for p in self._new_files:
            with contextlib.suppress(OSError):
                if p.is_file() and not p.is_symlink():
                    p.unlink()
        for folder, before in self._old_folders:
            with contextlib.suppress(OSError):
                for name in set(os.listdir(folder)) - before:
                    _remove(folder / name)
        for p in self._new_folders:
            _remove(p)
        for p in reversed(self._new_dirs):  # innermost first; only if nothing else is there
            with contextlib.suppress(OSError):
                p.rmdir()

    def __enter__(self) -> OutputSet:
        """Start the command."""
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Commit on success, else abort (the exception goes on)."""
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
            return
        self.abort()


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
