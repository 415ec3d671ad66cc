"""Where the tool keeps its caches, and how it writes a file a user asked for.

Every room writes through this module, so that the rules hold everywhere:

* **Caches** (compiled simulator models, the Yosys WebAssembly cache, generated RTL keyed by
  configuration) live under :func:`cache_dir`: ``$FTACCEL_CACHE_DIR`` if set, else
  ``$XDG_CACHE_HOME/ftaccel``, else ``~/.cache/ftaccel``; never inside the installed package.
* **Outputs** are written through a fresh, unpredictable temporary file created exclusively in
  the target's directory, then renamed onto the target.  A target that exists and is not a
  regular file (a device, a FIFO, a directory, a symbolic link) is refused with
  :class:`UnsafeTarget` *before* any work: call :func:`check_target` on every output path
  while validating the inputs.
* :class:`OutputSet` removes what a failed command created, so nothing is half-written.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["UnsafeTarget", "cache_dir", "check_target", "atomic_write", "write_text",
           "write_json", "write_npy", "OutputSet"]


class UnsafeTarget(ValueError):
    """An output path that must not be written: it exists and is not a regular file."""


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


def check_target(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` as a :class:`~pathlib.Path` if it may be written, else raise UnsafeTarget.

    A new name, or an existing regular file (not reached through a symbolic link), may be
    replaced; anything else may not.
    """
    text = os.fspath(path)
    if not text:
        raise UnsafeTarget(f"{what}: empty path")
    p = Path(text)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise UnsafeTarget(f"{what}: {text!r}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeTarget(f"{what}: {text!r} is a symbolic link; refusing to follow it")
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UnsafeTarget(f"{what}: {text!r} exists and is {kind}; refusing to replace it")
    return p


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a fresh temporary file beside ``path``; on success rename it onto ``path``.

    The temporary name is unpredictable and created with ``O_EXCL`` (:func:`tempfile.mkstemp`),
    so a planted file or link cannot redirect the write.  On any error the temporary file is
    removed and ``path`` is left as it was.
    """
    target = check_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
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
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_npy(path: str | os.PathLike, array) -> Path:
    """Write a numpy array as ``.npy`` to ``path`` atomically."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return Path(path)


class OutputSet:
    """The files and folders one command creates, removed again if the command fails.

    >>> with OutputSet() as out:          # doctest: +SKIP
    ...     out.write(write_npy, "C.npy", acc)
    ...     out.mkdir("report")

    Only what this command created is removed: a file that existed before and was replaced
    stays replaced (the replacement is complete, never partial).
    """

    def __init__(self) -> None:
        self._created: list[Path] = []

    def claim(self, path: str | os.PathLike) -> Path:
        """Check ``path`` and remember it for clean-up if it does not exist yet."""
        p = check_target(path)
        if not p.exists():
            self._created.append(p)
        return p

    def mkdir(self, path: str | os.PathLike) -> Path:
        """Create folder ``path`` (and parents); remember every folder made here."""
        p = Path(path)
        missing = [q for q in (p, *p.parents) if not q.exists()]
        p.mkdir(parents=True, exist_ok=True)
        self._created.extend(reversed(missing))
        return p

    def write(self, writer: Callable[..., Path], path: str | os.PathLike, *args) -> Path:
        """``writer(path, *args)`` (e.g. :func:`write_npy`), cleaned up on failure."""
        self.claim(path)
        return writer(path, *args)

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            return
        for p in reversed(self._created):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    _rmtree(p)
                else:
                    p.unlink()


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
