"""Golden models of the selective-TMR voters, the baseline the LCU is compared with.

Selective TMR computes each critical neuron three times (three identical array columns) and
votes on the three requantized outputs (Ahmadilivani 2025 §4.3.1 baselines):

* **word voter** (Ahmadilivani 2025 §5.3.3): if two or more copies agree, output that word; when all
  three differ (at least two copies faulty), output the *minimum* (signed), in the same spirit
  as the LCU: under doubt, prefer the smaller activation;
* **bitwise majority voter**: each output bit is the majority of the three copies' bits,
  ``(a & b) | (a & c) | (b & c)``.  When all three words differ it may output a word that none
  of the copies holds.

Both mask any fault confined to one copy, of any bit and direction, and are correct for
negative values too (unlike the LCU, see :mod:`golden.lcu`).  They differ only when two or
three copies are faulty.

On the composed top (configuration ``tmr``) the voting controller works on the output buffer
(:class:`rtl_gen.tmr.VotingController`): after a layer, for each word triple in list order,
the three words are voted and the result written to all three (:func:`vote_buffer`);
:class:`VotingControllerModel` is its cycle model.
"""

from __future__ import annotations

import numpy as np

from ftaccel.errors import is_int

from .bits import MAX_BITS, signed_array, to_unsigned, wrap
from .output_buffer import BufferControllerModel, buffer_ports, buffer_stimulus, combine_in_order

__all__ = ["word_vote", "bitwise_vote", "VOTES", "vote_columns", "vote_buffer",
           "VotingControllerModel"]


def _signed(x, width: int, name: str) -> np.ndarray:
    if not is_int(width, numpy=True) or not 1 <= width <= MAX_BITS:
        raise ValueError(f"invalid width = {width!r}: an integer from 1 to {MAX_BITS}")
    return signed_array(x, name, width)


def word_vote(a, b, c, *, width: int = 8) -> np.ndarray:
    """Majority of three signed words; the minimum if all differ (Ahmadilivani 2025 §5.3.3)."""
    a, b, c = (_signed(x, width, n) for x, n in ((a, "a"), (b, "b"), (c, "c")))
    smallest = np.minimum(np.minimum(a, b), c)
    return np.where((a == b) | (a == c), a, np.where(b == c, b, smallest))


def bitwise_vote(a, b, c, *, width: int = 8) -> np.ndarray:
    """Bitwise majority of three signed ``width``-bit copies, as a signed value."""
    a, b, c = (_signed(x, width, n) for x, n in ((a, "a"), (b, "b"), (c, "c")))
    ua, ub, uc = (to_unsigned(x, width) for x in (a, b, c))
    return wrap((ua & ub) | (ua & uc) | (ub & uc), width)


#: The voters by the name the configuration uses (``AcceleratorConfig.tmr``).
VOTES = {"word": word_vote, "bitwise": bitwise_vote}


def vote_columns(q, triples, *, width: int = 8, voter: str = "word") -> np.ndarray:
    """A copy of the result ``q`` (rows × columns) with every column triple voted, in order.

    The voted word of each row is written to the triple's three columns, as the voting
    controller does after a layer (:class:`VotingControllerModel` on the buffer); ``triples``
    (``[n, 3]`` column indices) may be empty or ``None``.
    """
    if voter not in VOTES:
        raise ValueError(f"invalid voter = {voter!r}: one of {', '.join(VOTES)}")
    out = np.array(q, dtype=np.int64, copy=True)
    if triples is None:
        return out
    for a, b, c in np.asarray(triples, dtype=np.int64).reshape(-1, 3):
        out[:, a] = out[:, b] = out[:, c] = VOTES[voter](out[:, a], out[:, b], out[:, c],
                                                         width=width)
    return out


def _vote_fn(voter: str, width: int):
    if voter not in VOTES:
        raise ValueError(f"invalid voter = {voter!r}: one of {', '.join(VOTES)}")
    fn = VOTES[voter]
    return lambda a, b, c: int(fn(a, b, c, width=width))


def vote_buffer(buffer, triples, *, width: int = 8, voter: str = "word") -> np.ndarray:
    """The output buffer (flat word view) after the controller has voted ``triples`` in order.

    Parameters
    ----------
    buffer : int array [words]
        Signed ``width``-bit words.
    triples : int array [n, 3]
        Word indices ``(a, b, c)``, each in ``0 … words − 1``; ``n`` may be 0.  Each triple's
        voted word is written to its three places before the next triple is read.
    voter : str
        ``"word"`` (Ahmadilivani 2025 §5.3.3) or ``"bitwise"``.
    """
    buf = _signed(buffer, width, "buffer").reshape(-1)
    return combine_in_order(buf, np.asarray(triples, dtype=np.int64).reshape(-1, 3),
                            _vote_fn(voter, width))


class VotingControllerModel(BufferControllerModel):
    """Cycle-level model of every output port of ``rtl_gen.tmr.VotingController``.

    :class:`golden.output_buffer.BufferControllerModel` with triples (``triple_wr_*``,
    ``n_triples``) combined by the voter: the run is :func:`vote_buffer` applied at the edge
    that samples ``start``; ``busy`` for ``3n + 3`` rows, then ``done`` for one row
    (:func:`rtl_gen.tmr.voting_cycles`).
    """

    def __init__(self, *, width: int = 8, depth: int = 64, max_triples: int = 16,
                 voter: str = "word", lanes: int = 1, capture: bool | None = None):
        super().__init__(width=width, depth=depth, max_entries=max_triples, lanes=lanes,
                         capture=capture, group=3, entry="triple",
                         combine=_vote_fn(voter, width))
        self.voter = voter


# -- the unit's functions for the engines and the driver program (golden.units) ---------------
def stimulus(cfg, draft, opts):
    """Output-buffer capture, voting runs and read-back (the on-chip voter).

    See :func:`golden.output_buffer.buffer_stimulus`; a voting run of n triples shows
    ``done`` ``3n + 4`` cycles after ``tmr__start`` (:func:`rtl_gen.tmr.voting_cycles`).
    Without triples the buffer still captures the result and reads it back unchanged.
    """
    return buffer_stimulus(cfg, draft, None if opts is None else opts.triples, prefix="tmr",
                           entry="triple", fields=("a", "b", "c"),
                           max_entries=cfg.tmr_max_triples, run_cycles=lambda n: 3 * n + 4)


def output_ports(cfg) -> dict[str, tuple[int, bool]]:
    """The controller's flags and the buffer's read-back."""
    return buffer_ports("tmr", cfg.cols)


def correct(cfg, q, opts) -> np.ndarray:
    """``q`` with the options' triples voted: the on-chip voter's run in closed form.

    Without the voter on the top (``cfg.tmr`` none) the host votes with the options' voter
    (default ``word``): the campaigns' and :class:`app.protect.VotingEngine`'s fallback.
    """
    if opts is None or opts.triples is None or not len(opts.triples):
        return q
    voter = opts.voter or (str(cfg.tmr) if cfg.tmr != "none" else "word")
    return vote_columns(q, opts.triples, width=cfg.a_width, voter=voter)


def run_record(cfg, program, q, corrected, opts) -> dict:
    """The voter, voting runs, triples voted (per result row) and words the vote changed."""
    triples = 0 if opts.triples is None else len(np.asarray(opts.triples).reshape(-1, 3))
    return {"voter": str(cfg.tmr), "voting_runs": int(program.inputs["tmr__start"].sum()),
            "triples": triples * int(q.shape[0]),
            "words_changed": int(np.sum(corrected != q))}


def run_line(cfg, record: dict) -> str:
    """``TMR (word voter): 4 triples voted in 1 run(s); 1 words changed by the vote``."""
    return (f"TMR ({record['voter']} voter): {record['triples']} triples voted in "
            f"{record['voting_runs']} run(s); {record['words_changed']} words changed by the "
            "vote")
