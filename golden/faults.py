"""Fault and error models (README, Fault campaigns).

* :class:`Fault`: one RTL fault in a PE register, the same description the fault hooks of
  :mod:`rtl_gen.fault` take (row, column, register, bit, mode, cycle), and
  :func:`sabotage` — its effect on a register value, bit-exact with the RTL saboteur.
* :func:`inject_bit_errors`: Ozen 2023 Algorithm 6.1 (§6.3.1): bit errors in a tensor.
* :func:`sample_size`: statistical fault-injection sample size, Ahmadilivani 2025 Eq. 4.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ftaccel.config import FAULT_CONTROLS, FAULT_MODES, FAULT_REGISTERS
from ftaccel.enums import FaultMode, FaultRegister

from .bits import to_unsigned, wrap

__all__ = ["Fault", "REGISTERS", "MODES", "sabotage", "inject_bit_errors", "sample_size",
           "OUTCOMES"]

#: Register kinds in the encoding of the ``reg`` fault control.
REGISTERS = FAULT_REGISTERS
#: Fault modes in the encoding of the ``mode`` fault control.
MODES = FAULT_MODES
#: Outcome classes of an injected fault (README, Fault campaigns).
OUTCOMES = ("masked", "sdc", "detected", "corrected")


@dataclass(frozen=True)
class Fault:
    """One fault: ``mode`` on ``bit`` of PE (``row``, ``col``)'s ``register``.

    ``register`` is a register or the MAC logic's ``product`` / ``sum``, which PE bypass isolates.

    ``cycle`` is the cycle of a ``flip`` (counted from reset, 0 = first cycle after it);
    stuck-at faults are permanent and ignore it.
    """

    row: int
    col: int
    register: FaultRegister
    bit: int
    mode: FaultMode
    cycle: int = 0

    def __post_init__(self):
        """Check register, mode and the non-negative integer fields; ValueError otherwise.

        ``register`` and ``mode`` may be given as text; they become their enum members.
        """
        for name, kind in (("register", FaultRegister), ("mode", FaultMode)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in tuple(kind):
                raise ValueError(f"fault {name} must be one of {', '.join(kind)}, not "
                                 f"{value!r}")
            object.__setattr__(self, name, kind(value))  # frozen: set the member directly
        for name in ("row", "col", "bit", "cycle"):
            v = getattr(self, name)
            # numpy integer scalars arrive from sampled fault lists; stored as plain int
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"fault {name} must be a non-negative integer, not {v!r}")
            object.__setattr__(self, name, int(v))

    def active(self, cycle: int) -> bool:
        """Whether the fault acts in ``cycle``: always for stuck-at, in its cycle for a flip."""
        return self.mode is not FaultMode.FLIP or cycle == self.cycle

    def controls(self) -> dict[str, int]:
        """Values of the fault hooks' run-time controls that arm this fault.

        The controls are :data:`ftaccel.config.FAULT_CONTROLS`, the top's ``fault`` ports.
        """
        values = {"enable": 1, "row": self.row, "col": self.col,
                  "reg": REGISTERS.index(self.register), "bit": self.bit,
                  "mode": MODES.index(self.mode), "cycle": self.cycle}
        assert values.keys() == FAULT_CONTROLS.keys()
        return values

    @classmethod
    def parse(cls, text: str) -> Fault:
        """Parse ``ROW,COL,REG,BIT,MODE[,CYCLE]``, e.g. ``1,2,psum,7,flip,40``."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (5, 6):
            raise ValueError(f"fault {text!r}: expected ROW,COL,REG,BIT,MODE[,CYCLE], "
                             f"e.g. 0,1,weight,3,sa1 or 1,2,psum,7,flip,40")
        try:
            row, col, bit = int(parts[0]), int(parts[1]), int(parts[3])
            cycle = int(parts[5]) if len(parts) == 6 else 0
        except ValueError:
            raise ValueError(f"fault {text!r}: ROW, COL, BIT and CYCLE must be integers") from None
        return cls(row, col, parts[2], bit, parts[4], cycle)


def sabotage(value: int, width: int, bit: int, mode: str) -> int:
    """``value`` (signed, ``width`` bits) with ``bit`` forced to 0 / 1 or inverted.

    A bit index at or beyond ``width`` selects nothing (the RTL mask is truncated to the
    register width), so the value is unchanged.
    """
    raw = int(to_unsigned(value, width))
    mask = (1 << bit) & ((1 << width) - 1)
    raw = {"sa0": raw & ~mask, "sa1": raw | mask, "flip": raw ^ mask}[mode]
    return int(wrap(raw, width))


def inject_bit_errors(tensor: np.ndarray, rate: float, width: int, rng: np.random.Generator,
                      scale: float = 1.0) -> np.ndarray:
    """Algorithm 6.1 (Ozen 2023 §6.3.1): random bit errors in a fixed-point tensor, vectorised.

    ``round(rate × size)`` distinct locations get one error each on a random bit ``i``; the
    sign bit negates the value, another bit adds ``scale × 2**i`` if that bit of the value is
    0 and subtracts it if it is 1 (a bit flip in the magnitude, applied arithmetically).  The
    negation of ``−2**(width−1)``, which a ``width``-bit register cannot hold, saturates to
    ``2**(width−1) − 1`` (times ``scale``).  The one bit-error injector of the project
    (``golden.fault_models.bit_errors`` is this function).

    Parameters
    ----------
    tensor : array_like
        Fixed-point values: integers (``scale`` 1), or real values ``q × scale``.
    rate : float
        Share of the values that get an error (0 … 1).
    width : int
        Bits of a value; bit ``width − 1`` is the sign.
    rng : numpy.random.Generator
        The draws: first the locations (``choice``), then the bits (``integers``).
    scale : float
        The value of one least significant bit (1: an int64 result, else float64).

    Returns
    -------
    ndarray
        A copy of ``tensor`` with the errors applied.
    """
    out = np.array(tensor, dtype=np.float64 if scale != 1.0 else np.int64, copy=True)
    flat = out.reshape(-1)
    count = int(round(rate * flat.size))
    if count == 0:
        return out
    where = rng.choice(flat.size, size=count, replace=False)
    bits = rng.integers(0, width, size=count)
    n = flat[where]
    q = n if scale == 1.0 else np.round(n / scale).astype(np.int64)
    q = q & ((1 << width) - 1)
    step = np.left_shift(np.int64(1), bits) * (1 if scale == 1.0 else scale)
    magnitude = np.where((q >> bits) & 1 == 0, n + step, n - step)
    hi = ((1 << (width - 1)) - 1) * (1 if scale == 1.0 else scale)
    flat[where] = np.where(bits == width - 1, np.minimum(-n, hi), magnitude)
    return out


def sample_size(population: int, e: float = 0.01, t: float = 1.96, p: float = 0.5) -> int:
    """Statistical fault-injection sample size (README, Fault campaigns), Ahmadilivani 2025 Eq. 4.7.

    ``n = N / (1 + e²(N − 1) / (t² p(1 − p)))``, rounded up and never more than the
    population (a campaign that large is exhaustive).

    Parameters
    ----------
    population : int
        N, the number of possible faults; 0 or less gives 0.
    e : float
        Error margin (0.01: ±1 %).
    t : float
        Cut-off of the normal distribution for the confidence level (1.96: 95 %).
    p : float
        Expected proportion of the outcome (0.5: the worst case).

    Returns
    -------
    int
        The number of faults to draw.
    """
    if population <= 0:
        return 0
    n = population / (1 + e * e * (population - 1) / (t * t * p * (1 - p)))
    return min(int(population), math.ceil(n))


# -- the fault hooks' functions for the driver program (golden.units) -------------------------
def stimulus(cfg, draft, opts) -> None:
    """The fault hooks' controls, held for the whole program (all zero: no fault armed).

    The fault is the product's (``draft.fault``, a :class:`Fault` or None).
    """
    values = draft.fault.controls() if draft.fault is not None else {}
    for name in FAULT_CONTROLS:
        draft.constant(f"fault__{name}", values.get(name, 0))
