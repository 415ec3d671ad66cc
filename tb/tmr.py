"""Stimulus runners for the selective-TMR voters and their voting controller (:mod:`rtl_gen.tmr`).

The fault scenarios are those of :func:`tb.lcu.fault_scenarios` (three copies per case, faults
on copies 0 and 1), so the voters and the LCU are checked against the same faults.
:func:`voting_script` builds a random per-cycle stimulus for
:class:`rtl_gen.tmr.VotingController` (captures, triple lists drawn from a few word addresses so
that triples share words and the forwarding paths are exercised, runs with random inputs poked
while busy, read-back of a random row in every cycle); :func:`run_voting_controller` plays it and
returns every output port, to compare row by row with :class:`golden.tmr.VotingControllerModel`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftaccel.rtl_gen.emit import write_verilog
from ftaccel.rtl_gen.tmr import BitwiseVoter, VotingController, WordVoter, voting_cycles
from ftaccel.tb.runner import default_sim, run_stream

__all__ = ["VOTERS", "generate_voter", "run_voter", "voting_script", "run_voting_controller"]

#: Voter kinds: name -> component class.
VOTERS = {"word": WordVoter, "bitwise": BitwiseVoter}


def generate_voter(kind: str, *, width: int, build_dir: Path) -> tuple[Path, str]:
    """Emit the registered voter of ``kind`` (``"word"`` or ``"bitwise"``)."""
    if kind not in VOTERS:
        raise ValueError(f"invalid voter kind {kind!r}: one of {', '.join(VOTERS)}")
    dut = VOTERS[kind](width=width, registered=True)
    name = f"tmr_{kind}_voter_w{width}"
    return write_verilog(dut, name, dut.config(), Path(build_dir) / f"{name}.v"), name


def run_voter(kind: str, copies, *, width: int, build_dir: Path,
              sim: str | None = None) -> np.ndarray:
    """Voter outputs for rows of ``copies`` ``[T, 3]``, aligned with the input rows."""
    sim = (sim or default_sim()).lower()
    path, name = generate_voter(kind, width=width, build_dir=build_dir)
    c = np.asarray(copies, dtype=np.int64).reshape(-1, 3)
    c = np.concatenate([c, np.zeros((1, 3), dtype=np.int64)])
    res = run_stream(verilog=[path], toplevel=name,
                     inputs={"a": c[:, 0], "b": c[:, 1], "c": c[:, 2]},
                     outputs={"out": (0, True)}, build_dir=Path(build_dir) / sim, sim=sim)
    return res.outputs["out"][1:]


def voting_script(rng: np.random.Generator, *, width: int, depth: int, max_triples: int,
                  lanes: int, runs: int = 4) -> tuple[dict[str, np.ndarray], list[int]]:
    """Random per-cycle stimulus for the capture-mode voting controller; also the start rows.

    Fills the buffer by captures (values from a small set half the time, so that copies
    agree), then ``runs`` times: loads up to ``max_triples`` triples whose words come from a
    pool of six addresses, starts with ``n_triples`` (sometimes above ``max_triples``: the
    clamp), pokes random inputs while busy; finally reads every row back.
    """
    lb = (lanes - 1).bit_length()
    words = depth << lb
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    rows: list[dict] = []

    def vec():
        if rng.integers(2):
            return [int(v) for v in rng.integers(-2, 3, lanes)]
        return [int(v) for v in rng.integers(lo, hi, lanes)]

    def row(**kw):
        kw.setdefault("buf_rd_row", int(rng.integers(0, depth)))
        rows.append(kw)
        return len(rows) - 1

    row(cap_clear=1)
    for i in range(depth):
        row(cap_en=1, cap_data=vec(), cap_clear=int(i == 0))
    starts = []
    for _ in range(runs):
        pool = rng.integers(0, words, 6)
        n = int(rng.integers(1, max_triples + 1))
        for i in range(n):
            a, b, c = (int(x) for x in rng.choice(pool, 3))
            row(triple_wr_en=1, triple_wr_index=i, triple_wr_a=a, triple_wr_b=b, triple_wr_c=c)
        n_port = n if rng.integers(3) else max_triples + int(rng.integers(0, 2))
        n_port = min(n_port, (1 << max_triples.bit_length()) - 1)
        n_run = min(n_port, max_triples)
        if n_run > n:
            for i in range(n, n_run):  # entries the clamp lets in: defined ones
                row(triple_wr_en=1, triple_wr_index=i, triple_wr_a=int(pool[0]),
                    triple_wr_b=int(pool[1]), triple_wr_c=int(pool[2]))
        starts.append(row(start=1, n_triples=n_port))
        for k in range(1, voting_cycles(n_run) + 1):
            if k < voting_cycles(n_run) and rng.integers(2):
                row(cap_en=1, cap_clear=int(rng.integers(2)), cap_data=vec(), buf_wr_en=1,
                    buf_wr_addr=int(rng.integers(0, words)), buf_wr_data=int(rng.integers(lo, hi)),
                    triple_wr_en=1, triple_wr_index=int(rng.integers(0, max_triples)),
                    triple_wr_a=int(rng.integers(0, words)), start=1,
                    n_triples=int(rng.integers(0, max_triples + 1)))
            else:
                row()
        if rng.integers(2):  # a capture between runs lands wherever the counter points
            row(cap_en=1, cap_data=vec())
    for r in range(depth):
        row(buf_rd_row=r)
    row()
    ports = ["cap_en", "cap_clear", "buf_wr_en", "buf_wr_addr", "buf_wr_data", "triple_wr_en",
             "triple_wr_index", "triple_wr_a", "triple_wr_b", "triple_wr_c", "n_triples",
             "start", "buf_rd_row"]
    stim = {k: np.zeros(len(rows), dtype=np.int64) for k in ports}
    stim["cap_data"] = np.zeros((len(rows), lanes), dtype=np.int64)
    for t, r in enumerate(rows):
        for k, v in r.items():
            stim[k][t] = v
    return stim, starts


def run_voting_controller(stim: dict[str, np.ndarray], *, width: int, depth: int,
                          max_triples: int, lanes: int, voter: str, build_dir: Path,
                          sim: str | None = None) -> dict[str, np.ndarray]:
    """Play ``stim`` on the capture-mode :class:`rtl_gen.tmr.VotingController`; every output."""
    sim = (sim or default_sim()).lower()
    dut = VotingController(width=width, depth=depth, max_triples=max_triples, voter=voter,
                           lanes=lanes, capture=True)
    name = f"tmr_ctrl_{voter}_w{width}_d{depth}_t{max_triples}_l{lanes}"
    path = write_verilog(dut, name, dut.config(), Path(build_dir) / f"{name}.v")
    outputs = {"busy": (0, False), "done": (0, False), "cap_row": (0, False),
               "buf_rd_rows": (lanes, True)}
    res = run_stream(verilog=[path], toplevel=name, inputs=stim, outputs=outputs,
                     build_dir=Path(build_dir) / sim, sim=sim)
    return res.outputs
