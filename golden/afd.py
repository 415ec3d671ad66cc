"""Golden model of anomalous feature detection and suppression, AFD (Ozen 2023 §8.4.1, §8.6.1).

Bit-exact numpy model of :class:`rtl_gen.afd.AnomalySuppression` (Ozen 2023 §8.3–8.4.1; §8.2–8.4.1,
§8.6.1, §8.7.1).  It imports nothing of the project.

Semantics, element by element
-----------------------------
Let ``A`` be a vector of ``n`` signed ``width``-bit integers and ``c`` an index; neighbours wrap
around (Ozen 2023 §8.4.1, footnote 3): ``next = (c + 1) mod n`` and ``prev = (c − 1) mod n``.  With
``n = 1`` both neighbours are ``A_0`` itself; with ``n = 2`` both are the other element.

Magnitude
    ``|A_c|`` exactly, as a non-negative integer: the most negative value ``−2^(w−1)`` has
    magnitude ``2^(w−1)`` (it fits an unsigned ``w``-bit number; no wrap-around).

Scaling factor and threshold
    γ is a power of two applied as an arithmetic shift (Ozen 2023 §8.6.1).  The effective shift is
    ``s = clip(shift, −max_shift, +max_shift)`` (``max_shift`` defaults to ``width``; any larger
    shift is equivalent, see below).  The threshold contributed by an element is

    * ``s ≥ 0``: ``T(x) = min(|x| · 2^s, SAT)`` with ``SAT = 2^w − 1`` (saturated);
    * ``s < 0``: ``T(x) = floor(|x| / 2^(−s))`` (the right shift truncates).

    Saturation is invisible in every output: ``|A_c| ≤ 2^(w−1) < SAT``, so a saturated
    threshold is never violated and every comparison gives the same answer as the exact
    product; and a threshold that is violated is ``≤ |A_c|``, never saturated.  For the same
    reasons a shift beyond ``±w`` changes nothing (right: every threshold is already 0;
    left: every threshold of a non-zero neighbour is already ``≥ 2^w > |A_c|``), so with the
    default ``max_shift = width`` the clamping is invisible as well.

    Truncation is *not* invisible: the threshold is ``floor(γ·|x|)``, an integer, and the
    comparisons below are taken on that integer.  For two gates this equals the real-valued
    rule (for integer ``a``: ``a > x ⟺ a > floor(x)``); for one gate with a negative shift it
    suppresses slightly more: with γ = 1/2, ``|A_c| = 2``, ``|A_{c+1}| = 5`` the real rule keeps
    (2.5 > 2) but ``floor(2.5) = 2`` is not ``> 2``, so the element is suppressed.  This is what
    a shifter does (Fig. 8.8); a training-time model of the rule must use the same floor.

One gate, Eq. (8.1)
    ``keep ⟺ T(A_next) > |A_c|`` (strict, as written: ``U(0) = 0``), i.e.
    ``suppress ⟺ |A_c| ≥ T(A_next)``.  A tie suppresses.  A zero neighbour gives ``T = 0``,
    which suppresses every element before it (a zero ``A_c`` stays zero either way).

Two gates, Eq. (8.2)
    ``suppress ⟺ |A_c| > T(A_next) and |A_c| > T(A_prev)`` (strict, as written).  A tie with
    either threshold keeps the element; ``A_c = 0`` is never suppressed.  Note the opposite
    tie rules of the two equations; both are taken literally.

Suppression (Ozen 2023 §8.6.1)
    *drop* (``mode = 0``): the output is 0.
    *clip* (``mode = 1``): the output is ``sign(A_c) × T*`` where ``T*`` is the largest violated
    threshold.  With one gate ``T* = T(A_next)``, the only threshold.  With two gates an
    element is suppressed only when both thresholds are violated, so ``T* = max(T(A_next),
    T(A_prev))``.  Since a violated threshold is ``≤ |A_c|`` (one gate) or ``< |A_c|`` (two
    gates), ``|output| ≤ |A_c|``: the clipped value always fits the signed ``w``-bit range (for
    ``A_c = −2^(w−1)`` it is at least ``−2^(w−1)``); no saturation is needed, none happens.
    ``sign(0)`` never matters: a suppressed zero has ``T* = 0``.

Enable
    ``enable = 0`` passes the vector through unchanged and suppresses nothing.

Encodings shared with the hardware ports: ``gates`` is the gate count (1 or 2), ``mode`` is
0 = drop, 1 = clip (or the strings ``"drop"``, ``"clip"``), ``enable`` is 0 or 1.
"""

from __future__ import annotations

import numpy as np

from ftaccel.errors import is_int

__all__ = ["MODE_DROP", "MODE_CLIP", "MODES", "anomaly_suppression", "anomaly_suppression_detail",
           "thresholds", "effective_shift", "WindowedAFDModel"]

MODE_DROP = 0
MODE_CLIP = 1
#: Mode names in the encoding of the ``mode`` port.
MODES = ("drop", "clip")

_MAX_WIDTH = 32  # thresholds are capped before shifting, so int64 suffices


def _check_width(width) -> None:
    if not is_int(width, numpy=True) \
            or not 2 <= width <= _MAX_WIDTH:
        raise ValueError(f"invalid width = {width!r}: an integer from 2 to {_MAX_WIDTH}")


def _check_max_shift(max_shift, width: int) -> int:
    if max_shift is None:
        return int(width)
    if not is_int(max_shift, numpy=True) \
            or not 1 <= max_shift <= width:
        raise ValueError(f"invalid max_shift = {max_shift!r}: an integer from 1 to width={width}")
    return int(max_shift)


def _as_int_array(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"invalid {name} = {value!r}: integers")
    return arr.astype(np.int64)


def effective_shift(shift, *, width: int, max_shift: int | None = None) -> np.ndarray:
    """The shift actually applied: ``clip(shift, −max_shift, max_shift)`` (int64 array)."""
    _check_width(width)
    ms = _check_max_shift(max_shift, width)
    return np.clip(_as_int_array("shift", shift), -ms, ms)


def thresholds(act, shift, *, width: int, max_shift: int | None = None) -> np.ndarray:
    """Per-element thresholds ``T(A_c)`` (see the module docstring), int64, same shape as ``act``.

    ``shift`` is a scalar or broadcasts against ``act.shape[:-1]`` (one shift per vector).
    """
    a = _check_act(act, width)
    s = effective_shift(shift, width=width, max_shift=max_shift)[..., None]
    mag = np.abs(a)  # int64: the most negative w-bit value has no overflow here
    sat = (1 << width) - 1
    s_left = np.maximum(s, 0)
    # Cap the magnitude before shifting so that int64 never overflows (w = 32, s = 32 would
    # need 2^63): anything above sat >> s saturates anyway.
    left = np.minimum(np.minimum(mag, (sat >> s_left) + 1) << s_left, sat)
    right = mag >> np.maximum(-s, 0)
    return np.where(s >= 0, left, right)


def _check_act(act, width: int) -> np.ndarray:
    _check_width(width)
    shape = np.shape(act)
    if len(shape) == 0 or shape[-1] == 0:
        raise ValueError(f"invalid act shape {shape}: [..., n] with n >= 1")
    a = _as_int_array("act", act)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"invalid act: values must lie in the signed {width}-bit range "
                         f"[{lo}, {hi}]")
    return a


def _mode_array(mode) -> np.ndarray:
    if isinstance(mode, str):
        if mode not in MODES:
            raise ValueError(f"invalid mode = {mode!r}: one of {', '.join(MODES)} (or 0, 1)")
        return np.int64(MODES.index(mode))
    arr = _as_int_array("mode", mode)
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"invalid mode = {mode!r}: 0 (drop) or 1 (clip)")
    return arr


def anomaly_suppression_detail(act, *, width: int, shift, gates, mode, enable=1,
                               max_shift: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply Eq. (8.1)/(8.2) with drop or clip; return ``(out, suppressed)``.

    Parameters
    ----------
    act : int array ``[..., n]``
        Activations, signed ``width``-bit values; the last axis is the vector (channels).
    width : int
        Data width in bits (2 … 32).
    shift, gates, mode, enable : int or int array broadcasting to ``act.shape[:-1]``
        Per-vector controls: γ = 2^shift (clamped to ±max_shift); gate count 1 or 2;
        0 = drop / 1 = clip (or ``"drop"``/``"clip"``); 1 = on, 0 = pass-through.
    max_shift : int, optional
        Largest shift amount in either direction (1 … width); default ``width``.

    Returns
    -------
    out : int64 array, shape of ``act``
        The suppressed vector (always within the signed ``width``-bit range).
    suppressed : bool array, shape of ``act``
        Which elements the rule suppressed (all False where ``enable = 0``).
    """
    a = _check_act(act, width)
    g = _as_int_array("gates", gates)
    if g.size and not np.isin(g, (1, 2)).all():
        raise ValueError(f"invalid gates = {gates!r}: the gate count, 1 or 2")
    md = _mode_array(mode)
    en = _as_int_array("enable", enable)
    if en.size and not np.isin(en, (0, 1)).all():
        raise ValueError(f"invalid enable = {enable!r}: 0 or 1")
    thr = thresholds(a, shift, width=width, max_shift=max_shift)
    mag = np.abs(a)
    t_next = np.roll(thr, -1, axis=-1)  # t_next[..., c] = T(A_{(c+1) mod n})
    t_prev = np.roll(thr, 1, axis=-1)   # t_prev[..., c] = T(A_{(c-1) mod n})
    two = (g == 2)[..., None]
    one_gate = mag >= t_next                          # Eq. 8.1: not (T_next > |A_c|)
    two_gate = (mag > t_next) & (mag > t_prev)        # Eq. 8.2
    suppressed = np.where(two, two_gate, one_gate) & (en == 1)[..., None]
    largest = np.where(two, np.maximum(t_next, t_prev), t_next)
    clipped = np.sign(a) * largest
    replacement = np.where((md == MODE_CLIP)[..., None], clipped, 0)
    out = np.where(suppressed, replacement, a)
    return out.astype(np.int64), np.asarray(suppressed, dtype=bool)


def anomaly_suppression(act, *, width: int, shift, gates, mode, enable=1,
                        max_shift: int | None = None) -> np.ndarray:
    """The suppressed vector only; see :func:`anomaly_suppression_detail`."""
    return anomaly_suppression_detail(act, width=width, shift=shift, gates=gates, mode=mode,
                                      enable=enable, max_shift=max_shift)[0]


# -- the unit's functions for the engines and the driver program (golden.units) ---------------
def filter_inputs(cfg, x, opts) -> np.ndarray:
    """The streamed chunks ``x`` (``[M, chunks, R]``) after the suppression of ``opts``."""
    c = opts.controls()
    return anomaly_suppression(x, width=cfg.a_width, shift=c["shift"], gates=c["gates"],
                               mode=c["mode"], enable=c["enable"])


def stimulus(cfg, draft, opts) -> None:
    """The ``afd__*`` controls, held for the whole program."""
    for name, value in opts.controls().items():
        draft.constant(f"afd__{name}", value)


class WindowedAFDModel:
    """Cycle model of :class:`rtl_gen.afd.WindowedAFD` (IS / OS), one :meth:`step` a cycle.

    Per lane a shift register of ``chunk`` taps (tap 0 is this cycle's feature); the decision
    is taken on tap ``chunk − 1`` (element E) with its neighbours in its chunk, wrapping
    around: the newer neighbour is tap ``chunk − 2`` (zero when that tap starts a new chunk),
    or, when E is its chunk's last, the chunk's first (kept when it was decided; E itself when
    it is also first); the older neighbour is tap ``chunk``, or, when E is its chunk's first,
    tap 0 if that is the chunk's last (the chunk is whole), else zero.  ``reverse`` makes the
    older neighbour the next element (IS loads in falling K).  The rule is
    :func:`anomaly_suppression_detail` on the three values; every register resets to zero.

    Inputs of :meth:`step`: ``data``, ``first``, ``last`` (``[lanes]``) and the controls
    ``shift``, ``gates``, ``mode``, ``enable``; outputs: ``data``, ``suppressed``, ``first``,
    ``last``.
    """

    def __init__(self, *, width: int, lanes: int, chunk: int, reverse: bool = False,
                 max_shift: int | None = None):
        _check_width(width)
        self.width, self.lanes, self.chunk, self.reverse = width, lanes, chunk, bool(reverse)
        self.max_shift = max_shift
        R = chunk
        self.v = np.zeros((R + 1, lanes), dtype=np.int64)  # row k: tap k (row 0 unused)
        self.f = np.zeros((R, lanes), dtype=bool)
        self.last = np.zeros((R, lanes), dtype=bool)
        self.chunk_first = np.zeros(lanes, dtype=np.int64)
        self.y = np.zeros(lanes, dtype=np.int64)
        self.suppressed = np.zeros(lanes, dtype=bool)
        self.y_first = np.zeros(lanes, dtype=bool)
        self.y_last = np.zeros(lanes, dtype=bool)

    def outputs(self) -> dict:
        """The registered outputs."""
        return {"data": self.y.copy(), "suppressed": self.suppressed.copy(),
                "first": self.y_first.copy(), "last": self.y_last.copy()}

    def step(self, inputs: dict) -> None:
        """One clock cycle."""
        R = self.chunk
        v, f, last = self.v.copy(), self.f.copy(), self.last.copy()
        v[0] = np.asarray(inputs["data"], dtype=np.int64)
        f[0] = np.asarray(inputs["first"], dtype=bool)
        last[0] = np.asarray(inputs["last"], dtype=bool)
        e, e_first, e_last = v[R - 1], f[R - 1], last[R - 1]
        cont = np.where(f[R - 2], 0, v[R - 2]) if R >= 2 else np.zeros_like(e)
        newer = np.where(e_last, np.where(e_first, e, self.chunk_first), cont)
        older = np.where(e_first, np.where(last[0], v[0], 0), v[R])
        nxt, prv = (older, newer) if self.reverse else (newer, older)
        out, sup = anomaly_suppression_detail(
            np.stack([prv, e, nxt], axis=-1), width=self.width, shift=int(inputs["shift"]),
            gates=2 if int(inputs["gates"]) & 2 else 1, mode=int(inputs["mode"]) & 1,
            enable=int(inputs["enable"]) & 1, max_shift=self.max_shift)
        self.chunk_first = np.where(e_first, e, self.chunk_first)
        self.y, self.suppressed = out[:, 1], sup[:, 1]
        self.y_first, self.y_last = e_first.copy(), e_last.copy()
        self.v[1:] = v[:-1]
        self.f[1:], self.last[1:] = f[:-1], last[:-1]
