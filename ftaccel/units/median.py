"""Median-3 / Median-5 feature selection of the streamed activations (Ozen 2023 §8.5).

One pipeline stage in front of the array (WS only), plain or comparator-sharing (Ozen 2023
Fig. 8.12); switched on and off at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftaccel.errors import ConfigError, check_bool, check_choice

from .afd import ws_only
from .base import Field, RunFlag, Unit, UnitOptions, check_keys

__all__ = ["Median", "MedianOptions", "MEDIAN_VARIANTS"]

#: Median array variants: one unit per window, or comparators shared (Ozen 2023 Fig. 8.12).
MEDIAN_VARIANTS = ("plain", "shared")


@dataclass(frozen=True)
class MedianOptions(UnitOptions):
    """The median filter's run-time switch."""

    enable: bool = True

    unit = "median"
    keywords = ("median_enable",)
    always = True
    flags = (RunFlag("--median-off", "on", "switch the median filter off at run time"),)

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> MedianOptions:
        """From ``median_enable``."""
        return cls(enable=bool(keywords.get("median_enable", True)))

    def to_keywords(self) -> dict[str, Any]:
        """``{"median_enable": bool}``."""
        return {"median_enable": bool(self.enable)}

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], n: int | None = None) -> MedianOptions | None:
        """From ``--median-off``."""
        return cls(enable=False) if values.get("median_off") else None

    def check(self, cfg, *, m: int | None = None, n: int | None = None) -> None:
        """Needs ``median``."""
        if not cfg.median:
            raise ConfigError("median", cfg.median, "3 or 5 to switch the median filter at "
                              "run time")
        check_bool("median enable", self.enable)

    def summary(self) -> dict[str, Any]:
        """``median_enable: false`` when switched off (on is the default)."""
        return {} if self.enable else {"median_enable": False}

    def off(self) -> MedianOptions:
        """The filter switched off."""
        return self.replace(enable=False)


class Median(Unit):
    """Median-3 / Median-5 of the streamed activations (WS), one stage before the skew."""

    name = "median"
    title = "Median-3 / Median-5 feature selection (Ozen 2023 §8.5)"
    switch = "median"
    options = MedianOptions
    protection = "median"
    protection_keys = ("window", "variant")
    area = r"median\w*"
    golden = "median"
    fields = (
        Field("median", "int", 0,
              "Median-3 / Median-5 feature selection on the streamed activations (WS only), "
              "0 = off; one pipeline stage.",
              "median filter window 3 or 5 (WS, Ozen 2023 §8.5)"),
        Field("median_variant", "str", "plain",
              "``plain`` or ``shared`` comparators (Ozen 2023 Fig. 8.12).",
              "plain or shared comparators", kind="text"),
    )

    def check(self, cfg) -> None:
        """Window 0, 3 or 5; a variant; WS only."""
        check_choice("median", cfg.median, (0, 3, 5), "0 (off), 3 or 5 (window size)")
        check_choice("median_variant", cfg.median_variant, MEDIAN_VARIANTS)
        ws_only("median", cfg)

    def suffix(self, cfg) -> str:
        """``_med3p`` (window, variant's initial)."""
        return f"_med{cfg.median}{cfg.median_variant[0]}" if cfg.median else ""

    def input_stages(self, cfg) -> int:
        """One registered stage."""
        return int(bool(cfg.median))

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``window`` (3 or 5, default 3), ``variant`` (``plain``)."""
        check_keys(spec, self.protection_keys, "median protection")
        window = spec.get("window", 3)
        check_choice("median", window, (3, 5), "3 or 5 (window size)")
        changes = {"median": window, "median_variant": spec.get("variant", "plain")}
        cfg.replace(**changes)  # the variant, checked by the configuration
        return changes, {}


UNIT = Median()
