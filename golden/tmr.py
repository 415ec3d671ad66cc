"""Golden models of the selective-TMR voters, the baseline the LCU is compared with.

Selective TMR computes each critical neuron three times (three identical array columns) and
votes on the three requantized outputs (SPEC §5 baselines):

* **word voter** (seed 001 L2126): if two or more copies agree, output that word; when all
  three differ (at least two copies faulty), output the *minimum* (signed), in the same spirit
  as the LCU: under doubt, prefer the smaller activation;
* **bitwise majority voter**: each output bit is the majority of the three copies' bits,
  ``(a & b) | (a & c) | (b & c)``.  When all three words differ it may output a word that none
  of the copies holds.

Both mask any fault confined to one copy, of any bit and direction, and are correct for
negative values too (unlike the LCU, see :mod:`golden.lcu`).  They differ only when two or
three copies are faulty.
"""

from __future__ import annotations

import numpy as np

from ftaccel.rtl_gen.config import is_int

from .bits import MAX_BITS, signed_array, to_unsigned, wrap

__all__ = ["word_vote", "bitwise_vote"]


def _signed(x, width: int, name: str) -> np.ndarray:
    if not is_int(width, numpy=True) or not 1 <= width <= MAX_BITS:
        raise ValueError(f"invalid width = {width!r}: an integer from 1 to {MAX_BITS}")
    return signed_array(x, name, width)


def word_vote(a, b, c, *, width: int = 8) -> np.ndarray:
    """Word majority of three signed copies; the minimum when all three differ (001 L2126)."""
    a, b, c = (_signed(x, width, n) for x, n in ((a, "a"), (b, "b"), (c, "c")))
    smallest = np.minimum(np.minimum(a, b), c)
    return np.where((a == b) | (a == c), a, np.where(b == c, b, smallest))


def bitwise_vote(a, b, c, *, width: int = 8) -> np.ndarray:
    """Bitwise majority of three signed ``width``-bit copies, as a signed value."""
    a, b, c = (_signed(x, width, n) for x, n in ((a, "a"), (b, "b"), (c, "c")))
    ua, ub, uc = (to_unsigned(x, width) for x in (a, b, c))
    return wrap((ua & ub) | (ua & uc) | (ub & uc), width)
