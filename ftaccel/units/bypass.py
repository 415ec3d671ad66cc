"""PE bypass: a run-time R×C map isolates faulty PEs (Ozen 2023 ch. 10, Fig. 10.2).

A bypassed PE forwards the partial sum it receives (WS / IS, Fig. 10.2-A) or zeroes its
pinned output (OS, Fig. 10.2-B); the map is written one row per cycle before the product.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftaccel.errors import ConfigError, check_bool

from .base import Field, RunFlag, Unit, UnitOptions, check_keys

__all__ = ["Bypass", "BypassOptions"]


@dataclass(frozen=True, eq=False)
class BypassOptions(UnitOptions):
    """The bypass map: ``map[r, c]`` true bypasses PE (r, c); None: no PE bypassed."""

    map: np.ndarray | None = None

    unit = "bypass"
    keywords = ("bypass_map",)
    flags = (RunFlag("--bypass-map", "npy", "R×C 0/1 .npy: PEs to bypass (with --bypass)"),)

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> BypassOptions:
        """From ``bypass_map``."""
        return cls(map=keywords.get("bypass_map"))

    def to_keywords(self) -> dict[str, Any]:
        """``{"bypass_map": R×C flags}`` when a map was given (as given: checked, not cast)."""
        return {} if self.map is None else {"bypass_map": self.map}

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], n: int | None = None) -> BypassOptions | None:
        """From ``--bypass-map`` (read as an array)."""
        return None if values.get("bypass_map") is None else cls(map=values["bypass_map"])

    def check(self, cfg, *, m: int | None = None, n: int | None = None) -> None:
        """The map needs ``bypass``; R×C flags, each 0 or 1."""
        if self.map is None:
            return
        if not cfg.bypass:
            raise ConfigError("bypass", cfg.bypass, "true to use a bypass map")
        bmap = np.asarray(self.map)
        if bmap.shape != (cfg.rows, cfg.cols):
            raise ConfigError("bypass map shape", bmap.shape,
                              f"({cfg.rows}, {cfg.cols}): one flag per PE")
        if bmap.dtype.kind not in "iub":
            raise ConfigError("bypass map dtype", str(bmap.dtype), "integers or booleans 0/1")
        bad = bmap[~np.isin(bmap, (0, 1))]
        if bad.size:
            raise ConfigError("bypass map value", int(bad[0]), "0 (keep) or 1 (bypass)")

    def summary(self) -> dict[str, Any]:
        """``bypassed_pes``: the (row, column) of every bypassed PE."""
        return {} if self.map is None else {
            "bypassed_pes": np.argwhere(np.asarray(self.map)).tolist()}


class Bypass(Unit):
    """PE bypass with a run-time map (Ozen 2023 ch. 10)."""

    name = "bypass"
    title = "PE bypass (Ozen 2023 ch. 10, Fig. 10.2)"
    switch = "bypass"
    options = BypassOptions
    protection = "bypass"
    protection_keys = ("threshold",)
    area = r"bypass\w*"
    golden = "bypass"
    fields = (
        Field("bypass", "bool", False,
              "PE bypass: a run-time R×C map, written through the ``bypass_*`` ports, makes a "
              "PE forward its partial sum (WS/IS) or zero its output (OS).",
              "PE bypass with a run-time R×C map (Ozen 2023 ch. 10)", kind="on"),
    )

    def check(self, cfg) -> None:
        """``bypass`` is a bool."""
        check_bool("bypass", cfg.bypass)

    def suffix(self, cfg) -> str:
        """``_bp`` with bypass."""
        return "_bp" if cfg.bypass else ""

    def prologue_cycles(self, cfg) -> int:
        """R: the map is written one row per cycle before the product."""
        return cfg.rows if cfg.bypass else 0

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``threshold`` (0 … 1, default 0.5: the campaign bypasses the PEs it knows faulty)."""
        check_keys(spec, self.protection_keys, "bypass protection")
        threshold = spec.get("threshold", 0.5)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
                or not 0 <= threshold <= 1:
            raise ConfigError("bypass threshold", threshold, "a share of FR_max from 0 to 1")
        return {"bypass": True}, {}


UNIT = Bypass()
