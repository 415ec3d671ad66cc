"""Fault and error models (SPEC §7).

* :class:`Fault`: one RTL fault in a PE register, the same description the fault hooks of
  :mod:`rtl_gen.fault` take (row, column, register, bit, mode, cycle), and
  :func:`sabotage` — its effect on a register value, bit-exact with the RTL saboteur.
* :func:`inject_bit_errors`: Algorithm 6.1 of 000 (L1201–L1220): bit errors in a tensor.
* :func:`sample_size`: statistical fault-injection sample size, 001 Eq. 4.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Fault", "REGISTERS", "MODES", "sabotage", "inject_bit_errors", "sample_size",
           "OUTCOMES"]

#: Fault sites in the encoding of the ``fault_reg`` port: three PE registers and the MAC
#: logic (multiplier ``product``, adder ``sum``), see :data:`rtl_gen.config.FAULT_REGISTERS`.
REGISTERS = ("weight", "act", "psum", "product", "sum")
#: Fault modes in the encoding of the ``fault_mode`` port.
MODES = ("sa0", "sa1", "flip")
#: Outcome classes of an injected fault (SPEC §7).
OUTCOMES = ("masked", "sdc", "detected", "corrected")


@dataclass(frozen=True)
class Fault:
    """One fault: ``mode`` on ``bit`` of PE (``row``, ``col``)'s ``register`` (a register or
    the MAC logic's ``product`` / ``sum``, which PE bypass isolates).

    ``cycle`` is the cycle of a ``flip`` (counted from reset, 0 = first cycle after it);
    stuck-at faults are permanent and ignore it.
    """

    row: int
    col: int
    register: str
    bit: int
    mode: str
    cycle: int = 0

    def __post_init__(self):
        if self.register not in REGISTERS:
            raise ValueError(f"fault register must be one of {REGISTERS}, not {self.register!r}")
        if self.mode not in MODES:
            raise ValueError(f"fault mode must be one of {MODES}, not {self.mode!r}")
        for name in ("row", "col", "bit", "cycle"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"fault {name} must be a non-negative integer, not {v!r}")

    def active(self, cycle: int) -> bool:
        return self.mode != "flip" or cycle == self.cycle

    def ports(self) -> dict[str, int]:
        """Values of the accelerator's ``fault_*`` control ports for this fault."""
        return {"fault_enable": 1, "fault_row": self.row, "fault_col": self.col,
                "fault_reg": REGISTERS.index(self.register), "fault_bit": self.bit,
                "fault_mode": MODES.index(self.mode), "fault_cycle": self.cycle}

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
    full = (1 << width) - 1
    raw = int(value) & full
    mask = (1 << bit) & full
    raw = {"sa0": raw & ~mask, "sa1": raw | mask, "flip": raw ^ mask}[mode] & full
    return raw - (1 << width) if raw >> (width - 1) else raw


def inject_bit_errors(tensor: np.ndarray, rate: float, width: int, rng: np.random.Generator,
                      scale: float = 1.0) -> np.ndarray:
    """Algorithm 6.1 (000 L1201–L1220): random bit errors in a fixed-point tensor.

    ``round(rate × size)`` distinct locations get one error each on a random bit ``i``; the
    sign bit negates the value, another bit adds ``scale × 2**i`` if that bit of the value is
    0 and subtracts it if it is 1 (a bit flip in the magnitude, applied arithmetically).
    """
    out = np.array(tensor, dtype=np.float64 if scale != 1.0 else np.int64, copy=True)
    flat = out.reshape(-1)
    count = int(round(rate * flat.size))
    if count == 0:
        return out
    where = rng.choice(flat.size, size=count, replace=False)
    bits = rng.integers(0, width, size=count)
    for loc, i in zip(where, bits, strict=True):
        n = flat[loc]
        if i == width - 1:
            flat[loc] = -n
        else:
            q = int(round(float(n) / scale)) & ((1 << width) - 1)
            flat[loc] = n + scale * (1 << i) if not (q >> i) & 1 else n - scale * (1 << i)
    return out


def sample_size(population: int, e: float = 0.01, t: float = 1.96, p: float = 0.5) -> int:
    """Fault-injection sample size, 001 Eq. 4.7: n = N / (1 + e²(N−1) / (t² p(1−p)))."""
    if population <= 0:
        return 0
    n = population / (1 + e * e * (population - 1) / (t * t * p * (1 - p)))
    return min(population, math.ceil(n))
