"""Switching activity for the power analysis: a stated default, or measured from a simulation.

OpenSTA (:mod:`synth.sta`) needs, for every net, how often it toggles per clock cycle
(*activity*) and the fraction of time it is high (*duty*).  The Debian build of OpenSTA on
these machines (2019) reads neither VCD nor SAIF (it has no ``read_vcd`` / ``read_saif``), so
this module computes the figures itself from a waveform and hands them to OpenSTA with
``set_power_activity -pins`` / ``-input_ports``; OpenSTA propagates them through the
combinational logic in between (its probabilistic propagation from annotated pins).

Two sources:

* :func:`default_activity`: no workload.  Every input port of every module toggles with a
  stated rate (0.1 per cycle, duty 0.5: OpenSTA's own default input activity, and the default
  toggle rate of the usual commercial flows) and OpenSTA propagates it through the logic; the
  report marks the figures as such.
* :func:`read_waveform`: a VCD (Verilator, any simulator) or FST (Icarus under cocotb) dump of
  the *whole* design running a real workload (``WAVES=1`` or :func:`tb.activity.record`).  For
  every instance of every module the toggles and the high time of every port and named
  signal bit are counted over the cycles after reset, and averaged over the instances of each
  distinct module (a 4×4 array's 16 PEs give one PE activity); the power of a module is then
  computed once and multiplied by its instance count, as the area is.  Names are matched bit
  by bit (``psum_in[3]``) between the RTL's waveform and the mapped netlist, which keeps the
  names of ports and registers; nets renamed by synthesis get OpenSTA's propagated activity.

Reading waveforms uses ``pywellen`` (the reader of the Surfer waveform viewer, Rust), which
reads both formats.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftaccel.errors import ConfigError
from ftaccel.synth.netlist import Dedup, instance_paths

__all__ = ["DEFAULT_DUTY", "DEFAULT_RATE", "Activity", "default_activity", "read_waveform"]

#: Toggles per clock cycle of every module input in the default (no workload) activity.
DEFAULT_RATE = 0.1
#: Fraction of the time every module input is high in the default activity.
DEFAULT_DUTY = 0.5
#: Signals never annotated: the clock's activity comes from the clock definition.
_CLOCKS = ("clk",)


@dataclass
class Activity:
    """Switching activity per distinct module, or the default for all.

    Attributes
    ----------
    source : str
        ``"default"`` or ``"waveform"``.
    rate, duty : float
        The default input toggle rate (per cycle) and duty (``source == "default"``; with a
        waveform, what unmatched module inputs keep: OpenSTA's default).
    modules : dict
        ``{module: {net bit: (toggles per cycle, duty)}}`` for a waveform: ``module`` is the
        class representative of :class:`synth.netlist.Dedup`, net bits are named as in the
        mapped netlist (``psum_in[3]``, ``load``).
    cycles : int
        Clock cycles measured (after reset).
    file : str or None
        The waveform read, and its ``sha256``.
    workload : str
        What ran (free text for the report: "matmul 16×4 @ 4×4, seed 1").
    """

    source: str
    rate: float = DEFAULT_RATE
    duty: float = DEFAULT_DUTY
    modules: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    cycles: int = 0
    file: str | None = None
    sha256: str | None = None
    workload: str = ""

    def describe(self) -> dict[str, Any]:
        """The record written into the report (without the per-net figures)."""
        out: dict[str, Any] = {"source": self.source, "default_input_rate": self.rate,
                               "default_input_duty": self.duty}
        if self.source == "default":
            out["note"] = (f"DEFAULT ACTIVITY (no workload): every module input toggles "
                           f"{self.rate:g} times per cycle with duty {self.duty:g}, propagated "
                           "through the logic by OpenSTA; not a measured workload")
        else:
            nets = sum(len(v) for v in self.modules.values())
            mean = (float(np.mean([a for v in self.modules.values() for a, _ in v.values()]))
                    if nets else 0.0)
            out.update({"file": self.file, "sha256": self.sha256, "cycles": self.cycles,
                        "workload": self.workload, "modules_annotated": len(self.modules),
                        "net_bits_annotated": nets, "mean_toggle_rate": mean})
        return out

    def of(self, module: str) -> dict[str, tuple[float, float]]:
        """The per-bit activity of ``module`` (empty for the default)."""
        return self.modules.get(module, {})


def default_activity(rate: float = DEFAULT_RATE, duty: float = DEFAULT_DUTY) -> Activity:
    """The stated default: every module input toggles ``rate`` times per cycle.

    Raises
    ------
    ConfigError
        ``rate`` not in 0 … 2 (a bit toggles at most twice a cycle in synchronous logic
        driven by one edge: in fact at most once) or ``duty`` not in 0 … 1.
    """
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 2:
        raise ConfigError("activity rate", rate, "toggles per cycle from 0 to 2")
    if not isinstance(duty, int | float) or isinstance(duty, bool) or not 0 <= duty <= 1:
        raise ConfigError("activity duty", duty, "a fraction from 0 to 1")
    return Activity(source="default", rate=float(rate), duty=float(duty))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _changes(var) -> tuple[np.ndarray, list]:
    """Times and values of a waveform variable (values: int, or a string with x/z)."""
    sig = var.signal
    n = len(sig)
    times = np.empty(n, dtype=np.int64)
    values = []
    for i in range(n):
        t, v = sig[i]
        times[i] = t
        values.append(v)
    return times, values


def _bit_stats(times: np.ndarray, values: list, width: int, start: int,
               end: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bit (LSB first): toggles in ``(start, end]`` and time high in ``[start, end)``.

    An X/Z value counts as 0 (registers before reset); a change at the same time as the
    previous one replaces it (delta cycles).
    """
    ints = [v if isinstance(v, int) else int(str(v).replace("x", "0").replace("z", "0")
                                              .replace("X", "0").replace("Z", "0") or "0", 2)
            for v in values]
    # the value at `start` is the last change at or before it
    first = int(np.searchsorted(times, start, side="right")) - 1
    keep_t = [start]
    keep_v = [ints[first] if first >= 0 else 0]
    for i in range(max(first + 1, 0), len(ints)):
        t = int(times[i])
        if t >= end:
            break
        if t == keep_t[-1]:
            keep_v[-1] = ints[i]
        else:
            keep_t.append(t)
            keep_v.append(ints[i])
    toggles = np.zeros(width, dtype=np.int64)
    high = np.zeros(width, dtype=np.float64)
    durations = np.diff(np.asarray(keep_t + [end], dtype=np.int64)).astype(np.float64)
    for lo in range(0, width, 62):  # numpy integers: 62 bits at a time
        n = min(62, width - lo)
        mask = (1 << n) - 1
        chunk = np.asarray([(v >> lo) & mask for v in keep_v], dtype=np.int64)
        bits = (chunk[:, None] >> np.arange(n)[None, :]) & 1
        toggles[lo:lo + n] = np.abs(np.diff(bits, axis=0)).sum(axis=0)
        high[lo:lo + n] = (bits * durations[:, None]).sum(axis=0)
    return toggles, high


def _find_scope(wave, instance: str | None):
    """The scope of the design: ``instance`` (dotted path), else the player's ``dut``.

    Without ``instance``: the scope named ``dut`` anywhere (the HDL player's instance of the
    design, :mod:`tb.hdl_player`), else the only top scope.
    """
    tops = list(wave.scopes())
    if instance:
        want = instance.split(".")
        level = tops
        scope = None
        for part in want:
            scope = next((s for s in level if s.name == part), None)
            if scope is None:
                raise ConfigError("activity scope", instance, "a scope path of the waveform "
                                  f"(top scopes: {', '.join(s.name for s in tops)})")
            level = list(scope.scopes())
        return scope
    queue = list(tops)
    while queue:
        s = queue.pop(0)
        if s.name == "dut":
            return s
        queue.extend(s.scopes())
    if len(tops) == 1:
        return tops[0]
    raise ConfigError("activity scope", None, "a waveform with one top scope or a 'dut' scope "
                      f"(top scopes: {', '.join(s.name for s in tops)})")


def _window(scope, wave) -> tuple[int, int, int]:
    """Start (reset released), end (last time) and clock period of the run, in waveform units."""
    vars_ = {v.name: v for v in scope.vars()}
    if "clk" not in vars_:
        raise ConfigError("activity waveform", scope.full_name, "a design scope with a 'clk'")
    ct, cv = _changes(vars_["clk"])
    rises = [int(t) for t, v, p in zip(ct[1:], cv[1:], cv[:-1], strict=True)
             if v == 1 and p != 1]
    if len(rises) < 3:
        raise ConfigError("activity waveform", scope.full_name, "a run of at least 3 cycles")
    period = int(np.median(np.diff(rises)))
    start = rises[0]
    if "rst" in vars_:
        rt, rv = _changes(vars_["rst"])
        released = [int(t) for t, v in zip(rt, rv, strict=True) if v == 0]
        if released:
            start = released[-1]
    end = rises[-1]
    return start, end, period


def read_waveform(path: str | Path, dd: Dedup, top: str, design_text: str, *,
                  fmt: str | None = None, instance: str | None = None,
                  workload: str = "") -> Activity:
    """Average switching activity of every distinct module from a waveform of the design.

    Parameters
    ----------
    path : path
        A VCD or FST file of a simulation of the same design (every signal dumped).
    dd : Dedup
        The deduplicated design the synthesis flow measured (module classes).
    top : str
        The design's top module.
    design_text : str
        The design's Verilog or RTLIL (for the instance names; ``fmt`` says which, default
        Verilog).
    instance : str, optional
        Dotted scope path of the design in the waveform (default: the ``dut`` scope of the
        HDL player, else the only top scope).
    workload : str
        What ran, for the report.

    Returns
    -------
    Activity
        Toggles per cycle and duty of every port and named signal bit, averaged per module
        class over its instances, counted from the release of ``rst`` to the last clock edge.

    Raises
    ------
    ConfigError
        A missing or unreadable file, no design scope, a run shorter than 3 cycles.
    """
    import pywellen  # a compiled reader: imported only when a waveform is read

    path = Path(path)
    if not path.is_file():
        raise ConfigError("activity file", str(path), "an existing VCD or FST waveform file")
    try:
        wave = pywellen.Waveform(str(path))
    except Exception as exc:  # the reader raises its own types for a broken file
        raise ConfigError("activity file", str(path),
                          f"a readable VCD or FST waveform ({str(exc).splitlines()[0][:120]})"
                          ) from None
    scope = _find_scope(wave, instance)
    start, end, period = _window(scope, wave)
    cycles = max(1, round((end - start) / period))
    paths = instance_paths(design_text, top, fmt or "verilog")
    toggles: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    high: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    count: dict[str, int] = defaultdict(int)

    def visit(s, ipath: tuple[str, ...]) -> None:
        module = paths.get(ipath)
        if module is None or module not in dd.rep:
            return
        rep = dd.rep[module]
        count[rep] += 1
        for var in s.vars():
            name = var.name
            # Amaranth's and Yosys' temporaries (``$1``, ``\\q_out$25``) do not survive
            # synthesis under their names: only ports and named signals can match
            if name in _CLOCKS or "$" in name or var.is_real or var.is_string:
                continue
            width = var.bitwidth or 1
            times, values = _changes(var)
            tg, hi = _bit_stats(times, values, width, start, end)
            for b in range(width):
                key = name if width == 1 else f"{name}[{b}]"
                toggles[rep][key] += float(tg[b])
                high[rep][key] += float(hi[b])
        for child in s.scopes():
            visit(child, ipath + (child.name,))

    visit(scope, ())
    if not count:
        raise ConfigError("activity waveform", str(path),
                          f"a dump of the design '{top}' (its instances were not found)")
    span = float(end - start)
    modules = {rep: {k: (toggles[rep][k] / (count[rep] * cycles),
                         high[rep][k] / (count[rep] * span)) for k in toggles[rep]}
               for rep in toggles}
    return Activity(source="waveform", modules=modules, cycles=cycles, file=str(path),
                    sha256=_sha256(path), workload=workload)

