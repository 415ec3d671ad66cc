"""Benchmark: RTL simulation speed of the in-simulator player, beside a preloaded-stimulus run.

For each simulator and array size, one weight-stationary product (K = 2 × rows, so two
K-tiles chained by the loopback, N = cols) streams enough vectors for a run of a few seconds,
and is simulated several ways, side by side in the same process and cache:

* **build**: compile time of the player's model (a fresh cache folder; ccache off, so this is
  a first build; later builds of the same model are cache hits and cost nothing);
* **start**: wall time of a 1-vector run on the built model: simulator, cocotb and Python
  start-up, stimulus and record files, paid once per run;
* **player**: the HDL player under cocotb (stimulus file in, every output port of every cycle
  out, Python only before and after); cycles/s = cycles / (CPU − start CPU), CPU seconds of
  the simulator and of Python together (steadier than wall time on a shared machine), so it
  includes encoding the stimulus and decoding the record; "simulator only" counts the
  simulator process alone;
* **preloaded**: the same design and stimulus with no per-cycle file I/O (``+raw``: the
  dense stimulus preloaded into a memory, outputs folded into one XOR word, checked equal to
  the player's record), simulator CPU only; under cocotb like the player, and for Icarus
  also as a bare ``vvp`` run without cocotb or Python.  It is *not* a bound on the player:
  reading the preloaded memory and folding the outputs cost the simulator about as much as
  the player's buffered file I/O, and on Verilator the player ran at 106–114 % of it in
  every run (issue 24), so no "share of the ceiling" is printed;
* **cocotb per-cycle**: the previous player (Python drives and reads every port every cycle,
  :mod:`tb.player`) on the *same* program as the player (the same stimulus, checked against
  numpy), so that "player / per-cycle cocotb" compares one stimulus in one run (issue 24
  item 5; it used to time a shorter stream of other data);
* **golden**: the Python cycle model's speed on the same program (capped at 4,000 cycles).

Every recorded run is checked against the golden cycle model on its first cycles and the
assembled product against numpy.  Prints a Markdown table; ``--json FILE`` also writes the
figures.  ``python bench/bench_sim.py [--sizes 8 16 32] [--sims icarus verilator]
[--scale 1.0] [--cocotb-sizes 8 16]``
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ftaccel.config import AcceleratorConfig
from ftaccel.golden.accelerator import simulate
from ftaccel.golden.schedule import assemble, build_program
from ftaccel.rtl_gen.accelerator import TOP_NAME
from ftaccel.tb import hdl_player as hp
from ftaccel.tb.accelerator import rtl_for
from ftaccel.tb.runner import build_model, play_file, player_spec, run_stream

#: Streamed vectors per K-tile, per simulator and array size (scaled by --scale): a few
#: CPU seconds of player time each on this machine.
STREAM = {"icarus": {8: 5000, 16: 1500, 32: 400},
          "verilator": {8: 300_000, 16: 100_000, 32: 25_000}}


def _program(cfg: AcceleratorConfig, stream: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    A = rng.integers(-128, 128, (stream, 2 * cfg.rows))
    B = rng.integers(-128, 128, (2 * cfg.rows, cfg.cols))
    return A, B, build_program(cfg, A, B)


def _sim_cpu() -> float:
    """CPU seconds of the finished children (the simulators, with cocotb inside)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


class _Clock:
    """Per label, the wall, CPU and simulator-only CPU seconds of the calls it times.

    CPU seconds count this process and the simulators: steadier than wall time on a shared machine.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.sim: dict[str, float] = {}

    def __call__(self, label: str, fn):
        w, p, k = time.perf_counter(), time.process_time(), _sim_cpu()
        out = fn()
        self.wall[label] = time.perf_counter() - w
        self.sim[label] = _sim_cpu() - k
        self.cpu[label] = time.process_time() - p + self.sim[label]
        return out


def measure(cfg: AcceleratorConfig, sim: str, stream: int, cocotb: bool,
            cache: Path) -> dict:
    """Every figure of one row; ``*_wall`` and ``*_cpu`` seconds per timed step."""
    clock = _Clock()
    verilog = rtl_for(cfg, cache)
    A, B, program = _program(cfg, stream)
    _, _, tiny = _program(cfg, 1, seed=1)
    spec = player_spec([verilog], TOP_NAME, program.outputs, program.loopback)
    # the same model for the long and the tiny run: the history depth the long one needs
    kw = dict(verilog=[verilog], toplevel=TOP_NAME, outputs=program.outputs, sim=sim,
              cache_dir=cache, loopback_depth=spec.depth)
    env = dict(os.environ)
    os.environ["CCACHE_DISABLE"] = "1"  # an honest first build
    try:
        clock("build", lambda: build_model([verilog], TOP_NAME, sim=sim, spec=spec,
                                           cache_dir=cache))
    finally:
        os.environ.clear()
        os.environ.update(env)
    clock("start", lambda: run_stream(inputs=tiny.inputs, loopback=tiny.loopback, **kw))
    played = clock("player", lambda: run_stream(inputs=program.inputs, keep=True,
                                                loopback=program.loopback, **kw))
    assert np.array_equal(assemble(program, played.outputs, "acc_out"), A @ B), \
        "player: product differs from numpy"
    head = min(program.cycles, 4000)
    gold = clock("golden", lambda: simulate(cfg, _cut(program, head)))
    for port, want in gold.items():
        assert np.array_equal(played.outputs[port][:head], want), f"player: {port} differs"
    fold = hp.record_fold(spec, (played.run_dir / "record.bin").read_bytes(), program.cycles)
    shutil.rmtree(played.run_dir)
    # preloaded: the same stimulus in a memory, no I/O (a model of its own, with the memory)
    raw_spec = player_spec([verilog], TOP_NAME, program.outputs, program.loopback,
                           cycles=program.cycles, idle=True, loopback_depth=spec.depth)
    raw_model = build_model([verilog], TOP_NAME, sim=sim, spec=raw_spec, cache_dir=cache)
    clock("raw_start", lambda: _raw(raw_model, tiny, cache))
    assert clock("raw", lambda: _raw(raw_model, program, cache)) == fold, \
        "raw run folded different outputs than the player recorded"
    if sim == "icarus":
        clock("bare_start", lambda: _raw(raw_model, tiny, cache, bare=True))
        assert clock("bare", lambda: _raw(raw_model, program, cache, bare=True)) == fold, \
            "bare raw run folded different outputs"
    r = {"sim": sim, "array": f"{cfg.rows}×{cfg.cols}", "n": cfg.rows,
         "cycles": program.cycles, "golden_cycles": head}
    if cocotb:  # the same program as the player: one stimulus for the ratio
        build_model([verilog], TOP_NAME, sim=sim, player="cocotb", cache_dir=cache)
        clock("cocotb_start", lambda: run_stream(inputs=tiny.inputs, loopback=tiny.loopback,
                                                 player="cocotb", **kw))
        crec = clock("cocotb", lambda: run_stream(inputs=program.inputs,
                                                  loopback=program.loopback,
                                                  player="cocotb", **kw))
        r["cocotb_cycles"] = program.cycles
        assert np.array_equal(assemble(program, crec.outputs, "acc_out"), A @ B)
    r.update({f"{k}_wall": v for k, v in clock.wall.items()})
    r.update({f"{k}_cpu": v for k, v in clock.cpu.items()})
    r.update({f"{k}_sim": v for k, v in clock.sim.items()})
    return r


def _cut(program, head):
    """The first ``head`` cycles of ``program`` (for the golden model's speed)."""
    return replace(program, inputs={k: v[:head] for k, v in program.inputs.items()},
                   loopback={p: (s, src[:head]) for p, (s, src) in program.loopback.items()},
                   cycles=head)


def _raw(model, program, cache: Path, bare: bool = False) -> int:
    """A ``+raw`` run of ``program`` (stimulus preloaded, no I/O), encoding included.

    Returns its output fold. ``bare``: plain ``vvp``, no cocotb and no Python.
    """
    data = hp.encode_raw(model.spec, program.inputs, program.loopback)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        stim = Path(tmp) / "raw.bin"
        stim.write_bytes(data)
        if bare:
            log = subprocess.run(["vvp", "-n", str(model.build_dir / "sim.vvp"),
                                  f"+stimulus={stim}", "+raw", "+standalone"],
                                 capture_output=True, text=True, timeout=3600).stdout
        else:
            play_file(model, stim, Path(tmp), cycles=program.cycles, raw=True)
            log = (Path(tmp) / "sim.log").read_text()
        m = re.search(r"FTPLAYER RAW fold=([0-9a-fA-F]+)", log)
        assert m, f"no fold in the raw run's output: {log[-500:]}"
    return int(m.group(1), 16)


def _rate(r: dict, run: str, start: str, cycles: str = "cycles", kind: str = "cpu") -> float:
    """Cycles per CPU second of ``run``, its start-up (a 1-vector run) taken off.

    ``kind`` ``"sim"`` counts the simulator's CPU only.
    """
    return r[cycles] / max(r[f"{run}_{kind}"] - r[f"{start}_{kind}"], 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--sims", nargs="+", default=["icarus", "verilator"])
    ap.add_argument("--scale", type=float, default=1.0, help="scale every stream length")
    ap.add_argument("--cocotb-sizes", type=int, nargs="*", default=[8, 16],
                    help="sizes also run with the per-cycle cocotb player (the same "
                         "program: about 100 s on Verilator 8×8)")
    ap.add_argument("--skip", nargs="*", default=[], help="e.g. verilator:32")
    ap.add_argument("--json", type=Path, help="also write every timing here")
    args = ap.parse_args()
    rows = []
    print("Rates are array-cycles per CPU second, start-up taken off: the player's count the")
    print("simulator and Python (encoding, decoding), the preloaded runs the simulator only.")
    print()
    print("| simulator | array | cycles | build (s) | start (s, wall) | player (cycles/s) | "
          "player (MAC/s) | player, simulator only | preloaded (cycles/s) | "
          "bare vvp preloaded | per-cycle cocotb (cycles/s) | player / per-cycle cocotb | "
          "golden model (cycles/s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench_sim-") as tmp:
        for sim in args.sims:
            for n in args.sizes:
                if f"{sim}:{n}" in args.skip:
                    continue
                cfg = AcceleratorConfig(rows=n, cols=n)
                stream = max(1, int(STREAM[sim].get(n, 1000) * args.scale))
                r = measure(cfg, sim, stream, n in args.cocotb_sizes, Path(tmp))
                rows.append(r)
                player = _rate(r, "player", "start")
                player_sim = _rate(r, "player", "start", kind="sim")
                preloaded = _rate(r, "raw", "raw_start", kind="sim")
                bare = (f"{_rate(r, 'bare', 'bare_start', kind='sim'):,.0f}"
                        if "bare_sim" in r else "—")
                coc = (_rate(r, "cocotb", "cocotb_start", "cocotb_cycles")
                       if "cocotb_cpu" in r else None)
                golden = r["golden_cycles"] / r["golden_cpu"]
                print(f"| {sim} | {r['array']} | {r['cycles']:,} | {r['build_wall']:.1f} | "
                      f"{r['start_wall']:.2f} | {player:,.0f} | {player * n * n:,.3g} | "
                      f"{player_sim:,.0f} | {preloaded:,.0f} | {bare} | "
                      f"{f'{coc:,.0f}' if coc else '—'} | "
                      f"{f'{player / coc:,.1f}×' if coc else '—'} | {golden:,.0f} |",
                      flush=True)
    if args.json:
        from ftaccel.files import write_json

        write_json(args.json, rows)


if __name__ == "__main__":
    main()
