"""Stimulus builders and runner for the AFD unit (:class:`rtl_gen.afd.AnomalySuppression`).

A *stimulus* is a dict of per-cycle input rows named like the unit's ports: ``i__data``
``[T, lanes]`` and the scalars ``i__valid``, ``ctl__shift``, ``ctl__gates``, ``ctl__mode``,
``ctl__enable`` ``[T]``.  :func:`run_afd` plays it on
the generated Verilog and returns the outputs aligned with the inputs (row ``t`` of the result
is the unit's answer to input row ``t``, read one cycle later), so that they compare directly
with :func:`expected`, the golden model applied row by row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftaccel.golden.afd import anomaly_suppression_detail
from ftaccel.golden.bits import flip_bit
from ftaccel.rtl_gen.afd import AnomalySuppression, shift_port_width
from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.tb.runner import default_sim, run_stream

__all__ = ["CONTROLS", "generate", "random_stimulus", "mode_sweep", "smooth_vectors",
           "inject_spike", "concat", "constant_controls", "expected", "run_afd"]

#: Scalar input ports, keyed by the keyword the stimulus builders take.
CONTROLS = {"valid": "i__valid", "shift": "ctl__shift", "gates": "ctl__gates",
            "mode": "ctl__mode", "enable": "ctl__enable"}


def toplevel_name(width: int, lanes: int, max_shift: int | None) -> str:
    """Verilog module name of one AFD configuration."""
    ms = width if max_shift is None else max_shift
    return f"afd_w{width}_n{lanes}_s{ms}"


def generate(*, width: int, lanes: int, max_shift: int | None = None,
             build_dir: Path) -> tuple[Path, str]:
    """Emit the Verilog of one AFD configuration; return ``(path, module name)``."""
    dut = AnomalySuppression(width=width, lanes=lanes, max_shift=max_shift)
    name = toplevel_name(width, lanes, max_shift)
    path = write_verilog(dut, name, dut.config(), Path(build_dir) / f"{name}.v")
    return path, name


def _shift_range(width: int, max_shift: int | None) -> tuple[int, int]:
    """The values the ``ctl.shift`` port can carry (signed), including ones that get clamped."""
    bits = shift_port_width(width if max_shift is None else max_shift)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _stimulus(act, **controls) -> dict[str, np.ndarray]:
    act = np.asarray(act, dtype=np.int64)
    rows = len(act)
    stim = {"i__data": act}
    for name, port in CONTROLS.items():
        stim[port] = np.broadcast_to(np.asarray(controls[name], dtype=np.int64), (rows,)).copy()
    return stim


def random_stimulus(rng: np.random.Generator, rows: int, *, width: int, lanes: int,
                    max_shift: int | None = None) -> dict[str, np.ndarray]:
    """Random vectors with random controls every cycle, over the whole shift port range.

    Activations mix three distributions so that every decision path is exercised: uniform
    over the full signed range (includes the most negative value now and then), small values
    around zero (many ties and zero neighbours), and the extreme values ``−2^(w−1)``,
    ``2^(w−1)−1``, ``0``, ``±1``.
    """
    lo, hi = -(1 << (width - 1)), (1 << (width - 1))
    uniform = rng.integers(lo, hi, size=(rows, lanes))
    small = np.clip(rng.integers(-4, 5, size=(rows, lanes)), lo, hi - 1)
    extremes = np.clip(rng.choice(np.array([lo, hi - 1, 0, 1, -1, lo + 1]),
                                  size=(rows, lanes)), lo, hi - 1)
    pick = rng.integers(0, 3, size=(rows, 1))
    act = np.where(pick == 0, uniform, np.where(pick == 1, small, extremes))
    s_lo, s_hi = _shift_range(width, max_shift)
    return _stimulus(
        act,
        valid=rng.integers(0, 2, rows),
        shift=rng.integers(s_lo, s_hi + 1, rows),
        gates=rng.integers(0, 4, rows),  # 0 and 3 too: only bit 1 is decoded
        mode=rng.integers(0, 2, rows),
        enable=(rng.random(rows) < 0.9).astype(np.int64),
    )


def mode_sweep(rng: np.random.Generator, per_setting: int, *, width: int, lanes: int,
               max_shift: int | None = None) -> dict[str, np.ndarray]:
    """``per_setting`` random vectors for every gate count × drop/clip × ``shift`` value.

    Every ``shift`` value the port can carry (negative, zero, positive, and beyond ±max_shift),
    enable on.
    """
    s_lo, s_hi = _shift_range(width, max_shift)
    settings = [(g, md, s) for g in (1, 2) for md in (0, 1) for s in range(s_lo, s_hi + 1)]
    ctrl = np.repeat(np.array(settings, dtype=np.int64), per_setting, axis=0)
    act = random_stimulus(rng, len(ctrl), width=width, lanes=lanes,
                          max_shift=max_shift)["i__data"]
    return _stimulus(act, valid=1, gates=ctrl[:, 0], mode=ctrl[:, 1], shift=ctrl[:, 2],
                     enable=1)


def smooth_vectors(rng: np.random.Generator, rows: int, *, width: int, lanes: int,
                   low: int) -> np.ndarray:
    """Vectors whose magnitudes all lie in ``[low, 2·low)``, random signs.

    Any two magnitudes differ by less than a factor of 2, so with γ = 2^s, s ≥ 1, no threshold
    is violated under either gate rule: ``γ·|A_{c±1}| ≥ 2·low > |A_c|``.
    """
    if low < 1 or 2 * low - 1 > (1 << (width - 1)) - 1:
        raise ValueError(f"low = {low} does not fit a smooth {width}-bit vector")
    mag = rng.integers(low, 2 * low, size=(rows, lanes))
    sign = rng.choice(np.array([-1, 1]), size=(rows, lanes))
    return mag * sign


def inject_spike(vectors: np.ndarray, rng: np.random.Generator, *, width: int,
                 bit: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``bit`` of one random element per vector (a transient bit error).

    Returns ``(vectors with the flip, index of the flipped element per row)``; values are
    reinterpreted as signed ``width``-bit two's complement after the flip.
    """
    out = np.array(vectors, dtype=np.int64, copy=True)
    idx = rng.integers(0, out.shape[1], size=len(out))
    rows = np.arange(len(out))
    out[rows, idx] = flip_bit(out[rows, idx], bit, width)
    return out, idx


def concat(*stimuli: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stimuli played one after the other."""
    return {k: np.concatenate([s[k] for s in stimuli]) for k in stimuli[0]}


def constant_controls(act, **controls) -> dict[str, np.ndarray]:
    """A stimulus of ``act`` rows, every control fixed (``valid`` defaults to 1)."""
    controls.setdefault("valid", 1)
    controls.setdefault("enable", 1)
    return _stimulus(act, **controls)


def expected(stim: dict[str, np.ndarray], *, width: int,
             max_shift: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Golden ``(o__data, suppressed)`` for each input row of ``stim``.

    The hardware decodes only bit 1 of ``ctl.gates`` (0 acts as 1, 3 as 2); the golden model
    takes the gate count, so the stimulus value is mapped the same way here.
    """
    gates = np.where(stim["ctl__gates"] & 2, 2, 1)
    return anomaly_suppression_detail(
        stim["i__data"], width=width, shift=stim["ctl__shift"], gates=gates,
        mode=stim["ctl__mode"], enable=stim["ctl__enable"], max_shift=max_shift)


def run_afd(stim: dict[str, np.ndarray], *, width: int, lanes: int,
            max_shift: int | None = None, build_dir: Path,
            sim: str | None = None) -> dict[str, np.ndarray]:
    """Play ``stim`` on the RTL; return outputs aligned with the input rows.

    One idle row is appended so that the answer to the last input row is read too; output
    row ``t + 1`` of the recording (the registered result of input row ``t``) becomes row
    ``t`` of the returned arrays.  ``"first"`` holds recorded row 0 (the state after reset).
    """
    build_dir = Path(build_dir)
    sim = (sim or default_sim()).lower()
    path, name = generate(width=width, lanes=lanes, max_shift=max_shift, build_dir=build_dir)
    idle = {k: np.zeros((1,) + v.shape[1:], dtype=np.int64) for k, v in stim.items()}
    played = concat(stim, idle)
    res = run_stream(
        verilog=[path], toplevel=name, inputs=played,
        outputs={"o__data": (lanes, True), "suppressed": (lanes, False),
                 "o__valid": (0, False)},
        build_dir=build_dir / sim, sim=sim,
    )
    out = {k: v[1:] for k, v in res.outputs.items()}
    out["first"] = {k: v[0] for k, v in res.outputs.items()}
    return out
