"""The seeds' published area, power and delay figures (Ozen 2023 ch. 6, 8, 10, 12), as data.

Every figure is a ratio on a named denominator (README, Area reports): ``"pe"`` (one processing
element), ``"array"`` (the systolic array) or ``"design"`` (the whole synthesised accelerator,
on-chip buffers excluded in every seed experiment).  Each figure cites its table or figure and the
section that prints it (docs/references.md).  The conditions say which configuration of this
project a figure applies to; :mod:`synth.report` puts the project's own ratio beside it.

Ahmadilivani 2025 (the LCU thesis) publishes no silicon area (§4.3.1): its unit
has a row without a figure. Power figures (README, Timing and power) are the same tables' power
columns; the flow-controlling MACs' (Table 12.9) are overheads on one MAC unit, compared by
``bench/bench_unit_costs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FLOW_MAC_FIGURES", "FLOW_MAC_SOURCE", "NO_FIGURE", "SEED_FIGURES", "SETTINGS",
           "TECHNOLOGY_GAP", "SeedFigure", "figures_for"]

#: Synthesis settings of the seed experiments, quoted once and referred to by key.
SETTINGS = {
    "sc": "64×64 array, 16-bit, Synopsys Design Compiler + DesignWare, Silvaco Open-Cell 15 nm, "
          "1 GHz, on-chip buffers excluded (Ozen 2023 §6.4)",
    "afd": "DNNWeaver v2.0, Synopsys Design Compiler + DesignWare, Silvaco Open-Cell 15 nm, "
           "1 GHz, on-chip buffers excluded (Ozen 2023 §8.7.1)",
    "median": "DNNWeaver v2.0, 8- and 16-bit, Synopsys Design Compiler + DesignWare, "
              "Silvaco Open-Cell 15 nm, 200 MHz, buffers excluded (Ozen 2023 §8.7.2)",
    "bypass": "one PE, 8-bit fixed point, 15 nm, 1 GHz target (Ozen 2023 §10.5.2)",
    "flow": "one 8-bit fixed-point MAC unit, Synopsys Design Compiler + DesignWare, Silvaco "
            "Open-Cell 15 nm, 1 GHz, MAC input switching modelled on a WS array "
            "(Ozen 2023 §12.6.3)",
}


@dataclass(frozen=True)
class SeedFigure:
    """One published figure.

    Attributes
    ----------
    unit : str
        Unit name as in the area report (``checksum``, ``afd``, ``median``, ``bypass``, ``tmr``).
    label : str
        What was measured, in the seed's words.
    metric : str
        ``"area"``, ``"power"`` or ``"delay"``.
    denominator : str
        ``"pe"``, ``"array"`` or ``"design"``.
    low, high : float
        The figure in percent (``low == high`` for a single value, else a range).
    source : str
        Table or figure, e.g. ``"Ozen 2023 Table 6.3"``.
    section : str
        The section of the source that prints the figure, e.g. ``"§6.4"``.
    setting : str
        Key into :data:`SETTINGS`.
    when : dict
        Configuration conditions under which the figure applies (``a_width``, ``dataflow``,
        ``window``); a condition on a field the design's configuration lacks is not checked.
    """

    unit: str
    label: str
    metric: str
    denominator: str
    low: float
    high: float
    source: str
    section: str
    setting: str
    when: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The figure as printed: ``3.08 %`` or ``0.19–0.23 %`` (``+2.2 %`` for delay)."""
        sign = "+" if self.metric == "delay" else ""
        if self.low == self.high:
            return f"{sign}{self.low:g} %"
        return f"{sign}{self.low:g}–{self.high:g} %"


SEED_FIGURES: tuple[SeedFigure, ...] = (
    SeedFigure("checksum", "Sanity-Check (extra column, adder tree, temporal accumulators)",
               "area", "array", 3.08, 3.08, "Ozen 2023 Table 6.3", "§6.4", "sc"),
    SeedFigure("checksum", "Sanity-Check (extra column, adder tree, temporal accumulators)",
               "area", "design", 1.64, 1.64, "Ozen 2023 Table 6.3", "§6.4", "sc"),
    SeedFigure("checksum", "Sanity-Check estimate (n+3)/(n·S), n = 5, S = 64",
               "area", "array", 2.5, 2.5, "Ozen 2023 §6.3.3", "§6.3.3", "sc", {}),
    SeedFigure("afd", "AFD + suppression, 8-bit design", "area", "design", 0.23, 0.23,
               "Ozen 2023 Table 8.1", "§8.8.2", "afd", {"a_width": 8}),
    SeedFigure("afd", "AFD + suppression, 16-bit design", "area", "design", 0.31, 0.31,
               "Ozen 2023 Table 8.1", "§8.8.2", "afd", {"a_width": 16}),
    SeedFigure("median", "Median-3 unit array (8/16-bit designs)", "area", "design", 0.19, 0.23,
               "Ozen 2023 Fig. 8.15", "§8.8.2", "median", {"window": 3}),
    SeedFigure("median", "Median-5 unit array (8/16-bit designs)", "area", "design", 0.39, 0.48,
               "Ozen 2023 Fig. 8.15", "§8.8.2", "median", {"window": 5}),
    SeedFigure("tmr", "coarse-grained TMR of the systolic array", "area", "design", 64.0, 108.0,
               "Ozen 2023 §8.8.2", "§8.8.2", "median", {}),
    SeedFigure("bypass", "bypass multiplexer, 8-bit fixed-point WS/IS PE", "area", "pe",
               7.087, 7.087, "Ozen 2023 Table 10.1", "§10.5.1", "bypass",
               {"dataflow": ("ws", "is")}),
    SeedFigure("bypass", "bypass AND gates, 8-bit fixed-point OS PE", "area", "pe",
               4.003, 4.003, "Ozen 2023 Table 10.1", "§10.5.1", "bypass",
               {"dataflow": ("os",)}),
    SeedFigure("bypass", "longest-path delay increase of the PE", "delay", "pe", 2.2, 2.2,
               "Ozen 2023 §10.5.2", "§10.5.2", "bypass", {}),
    # power (README, Timing and power): the same tables' power columns
    SeedFigure("checksum", "Sanity-Check power (13.1 of 238.3 mW)", "power", "array", 5.50,
               5.50, "Ozen 2023 Table 6.3", "§6.4", "sc"),
    SeedFigure("checksum", "Sanity-Check power (13.1 of 1170 mW)", "power", "design", 1.12,
               1.12, "Ozen 2023 Table 6.3", "§6.4", "sc"),
    # 8-bit: 0.9 of 955.5 mW = 0.094 %, which the text rounds to 0.1 (Ozen 2023 §8.8.2)
    SeedFigure("afd", "AFD + suppression power, 8-bit design (0.9 of 955.5 mW)", "power",
               "design", 0.1, 0.1, "Ozen 2023 Table 8.1", "§8.8.2", "afd",
               {"a_width": 8}),
    SeedFigure("afd", "AFD + suppression power, 16-bit design (1.7 of 1160 mW)", "power",
               "design", 0.15, 0.15, "Ozen 2023 Table 8.1", "§8.8.2", "afd",
               {"a_width": 16}),
    SeedFigure("median", "Median-3 unit array power (8/16-bit designs)", "power", "design",
               0.07, 0.13, "Ozen 2023 Fig. 8.15", "§8.8.2", "median", {"window": 3}),
    SeedFigure("median", "Median-5 unit array power (8/16-bit designs)", "power", "design",
               0.13, 0.19, "Ozen 2023 Fig. 8.15", "§8.8.2", "median", {"window": 5}),
    SeedFigure("bypass", "bypass multiplexer power, 8-bit fixed-point WS/IS PE", "power", "pe",
               5.357, 5.357, "Ozen 2023 Table 10.1", "§10.5.1", "bypass",
               {"dataflow": ("ws", "is")}),
    SeedFigure("bypass", "bypass AND gates power, 8-bit fixed-point OS PE", "power", "pe",
               2.273, 2.273, "Ozen 2023 Table 10.1", "§10.5.1", "bypass",
               {"dataflow": ("os",)}),
)

#: Ozen 2023 Table 12.9 (§12.7.3): area and power overhead (%) of the flow-controlling MAC on
#: the 8-bit fixed-point MAC unit, by (flow kind, group size): ``(area %, power %)``.
FLOW_MAC_FIGURES: dict[tuple[str, int], tuple[float, float]] = {
    ("shortened", 8): (14.63, 14.06), ("superposition", 8): (111.68, 95.85),
    ("shortened", 16): (32.04, 19.59), ("superposition", 16): (229.68, 192.63),
    ("twodim", 16): (63.73, 65.67), ("shortened", 64): (125.36, 36.87),
    ("superposition", 64): (932.12, 609.68), ("twodim", 64): (126.30, 111.75),
    ("shortened", 256): (487.00, 91.71), ("superposition", 256): (3628.66, 2694.93),
    ("twodim", 256): (261.72, 213.36),
}
#: Where :data:`FLOW_MAC_FIGURES` come from.
FLOW_MAC_SOURCE = ("Ozen 2023 Table 12.9", "§12.7.3", "flow")

#: Technology gap stated beside every comparison (README, Area reports; Timing and power).
TECHNOLOGY_GAP = ("the seeds: Synopsys Design Compiler + DesignWare on Silvaco Open-Cell 15 nm "
                  "at 1 GHz (0.8 V class); this project: Yosys/ABC (area-oriented mapping, no "
                  "timing constraint) on OSU 0.18 µm at 1.8 V, timed and powered by OpenSTA: "
                  "absolute figures differ by orders of magnitude, compare ratios only")

#: Units the seeds give no area for, with the reason (a row saying so, not a missing row).
NO_FIGURE = {
    "lcu": "Ahmadilivani 2025 §4.3.1 publishes no silicon area: the LCU-vs-TMR area is this "
           "project's own measurement",
    "fault_hooks": "test infrastructure (fault injection), not in the seeds",
    "double_buffer": "the seeds' PEs are single-buffered",
    "requant": "the seeds give no area for an output stage; gemmlowp's fixed-point multiplier "
               "is issue 23's (README, Two quantisation paths)",
}


def _matches(fig: SeedFigure, config: dict[str, Any] | None) -> bool:
    if not config:
        return True
    for key, want in fig.when.items():
        have = config.get(key)
        if have is None:
            continue
        if isinstance(want, tuple):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def figures_for(unit: str, config: dict[str, Any] | None = None) -> list[SeedFigure]:
    """The seed figures for ``unit`` that apply to ``config``.

    Conditions choose among alternatives (the 8- or the 16-bit AFD figure, Median-3 or -5, the
    WS/IS or the OS bypass); when none applies (a 12-bit design), all of the unit's figures are
    returned, so that a unit present in the design always has its seed rows.
    """
    mine = [f for f in SEED_FIGURES if f.unit == unit]
    chosen = [f for f in mine if _matches(f, config)]
    return chosen or mine
