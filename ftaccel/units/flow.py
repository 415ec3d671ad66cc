"""Flow-controlling MACs for complementary-sparse layers (Ozen 2023 ch. 12, §12.5.2).

``shortened`` selects one of ``flow_group`` activations per PE (Fig. 12.6-b),
``superposition`` updates one of ``flow_group`` partial sums (Fig. 12.6-a), ``twodim`` both,
on a √g × √g split (Fig. 12.6-c).  WS only (the extension bits travel with the stationary
weight).  The flow-controlling array is a top of its own (:mod:`rtl_gen.flow`): the
reliability units (every unit whose descriptor has ``flow_top = False``) are not built into it.
"""

from __future__ import annotations

import math

from ftaccel.enums import Dataflow
from ftaccel.errors import ConfigError, check_choice, is_int

from .base import Field, Unit

__all__ = ["Flow", "FLOW_MODES", "FLOW_GROUPS", "flow_lanes"]

#: The flow-controlling MAC variants; ``"none"`` is the plain array.
FLOW_MODES = ("none", "shortened", "superposition", "twodim")
#: Group sizes the flow-controlling multiplexers can be built for (powers of two, so that every
#: extension-bit code selects a lane; a layer may use any smaller group).
FLOW_GROUPS = tuple(1 << i for i in range(1, 9))


def flow_lanes(flow: str, group: int) -> tuple[int, int]:
    """``(activation lanes l, partial-sum lanes k)`` of a flow-controlling PE.

    Shortened ``(g, 1)``, superposition ``(1, g)``, two-dimensional ``(√g, √g)``, none ``(1, 1)``.
    """
    if flow == "shortened":
        return group, 1
    if flow == "superposition":
        return 1, group
    if flow == "twodim":
        s = math.isqrt(group)
        return s, s
    return 1, 1


class Flow(Unit):
    """The flow-controlling array (its own top)."""

    name = "flow"
    title = "flow-controlling MACs for complementary sparsity (Ozen 2023 §12.5.2)"
    switch = "flow"
    flow_top = True
    golden = "flow"
    fields = (
        Field("flow", "str", "none",
              "Flow-controlling MACs for complementary-sparse layers (WS only): ``shortened``, "
              "``superposition``, ``twodim`` or ``none``, see :data:`FLOW_MODES`.",
              "flow-controlling MACs for complementary-sparse layers: none, shortened, "
              "superposition or twodim (WS, Ozen 2023 §12.5.2)", kind="text"),
        Field("flow_group", "int", 1,
              "The largest group the multiplexers serve: a power of two 2 … 256 (``twodim``: "
              "4, 16, 64 or 256); 1 with ``flow = 'none'``.",
              "group size the flow multiplexers are built for (2 … 256; twodim 4, 16, 64, 256)"),
    )

    def check(self, cfg) -> None:
        """A mode and its group; WS.

        The units the flow top does not build are refused by the registry
        (:func:`ftaccel.units.check_config`), which knows them all.
        """
        check_choice("flow", cfg.flow, FLOW_MODES)
        if cfg.flow == "none":
            if cfg.flow_group != 1 or not is_int(cfg.flow_group):
                raise ConfigError("flow_group", cfg.flow_group, "1 when flow is 'none'")
            return
        groups = FLOW_GROUPS if cfg.flow != "twodim" else (4, 16, 64, 256)
        if not is_int(cfg.flow_group) or cfg.flow_group not in groups:
            raise ConfigError("flow_group", cfg.flow_group,
                              f"one of {', '.join(map(str, groups))} for flow '{cfg.flow}' "
                              "(the group size the multiplexers are built for)")
        if cfg.dataflow is not Dataflow.WS:
            raise ConfigError("flow", cfg.flow, "'none' unless dataflow is 'ws' (the "
                              "extension bits travel with the stationary weight)")

    def suffix(self, cfg) -> str:
        """``_flowsh8`` (mode's first two letters, group)."""
        return "" if cfg.flow == "none" else f"_flow{cfg.flow[:2]}{cfg.flow_group}"


UNIT = Flow()
