"""Median-3 / Median-5 feature selection of the activations (Ozen 2023 §8.4.2, §8.6.2).

WS: one pipeline stage in front of the array on the streamed vector; IS / OS: per lane in
time, on the features as they arrive (:class:`rtl_gen.median.WindowedMedian`), leading the
array by ``window // 2 + 1`` cycles.  Plain or comparator-sharing (Ozen 2023 Fig. 8.12);
switched on and off at run time.  The same filter on every dataflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftaccel.enums import Dataflow
from ftaccel.errors import ConfigError, check_bool, check_choice

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
    """Median-3 / Median-5 of the activations: WS one stage before the skew, IS / OS in time."""

    name = "median"
    title = "Median-3 / Median-5 feature selection (Ozen 2023 §8.4.2)"
    switch = "median"
    options = MedianOptions
    protection = "median"
    protection_keys = ("window", "variant")
    area = r"median\w*"
    golden = "median"
    fields = (
        Field("median", "int", 0,
              "Median-3 / Median-5 feature selection of the activations, 0 = off: WS one "
              "pipeline stage; IS / OS per lane in time, leading by window // 2 + 1 cycles.",
              "median filter window 3 or 5 (Ozen 2023 §8.4.2)"),
        Field("median_variant", "str", "plain",
              "``plain`` or ``shared`` comparators (Ozen 2023 Fig. 8.12).",
              "plain or shared comparators", kind="text"),
    )

    def check(self, cfg) -> None:
        """Window 0, 3 or 5; a variant."""
        check_choice("median", cfg.median, (0, 3, 5), "0 (off), 3 or 5 (window size)")
        check_choice("median_variant", cfg.median_variant, MEDIAN_VARIANTS)

    def suffix(self, cfg) -> str:
        """``_med3p`` (window, variant's initial)."""
        return f"_med{cfg.median}{cfg.median_variant[0]}" if cfg.median else ""

    def input_stages(self, cfg) -> int:
        """WS: one registered stage on the streamed vector."""
        return int(bool(cfg.median) and cfg.dataflow is Dataflow.WS)

    def lead_cycles(self, cfg) -> int:
        """IS / OS: ``window // 2 + 1`` (the feature ``window // 2`` places on must arrive)."""
        return cfg.median // 2 + 1 if cfg.median and cfg.dataflow is not Dataflow.WS else 0

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``window`` (3 or 5, default 3), ``variant`` (``plain``)."""
        check_keys(spec, self.protection_keys, "median protection")
        window = spec.get("window", 3)
        check_choice("median", window, (3, 5), "3 or 5 (window size)")
        changes = {"median": window, "median_variant": spec.get("variant", "plain")}
        cfg.replace(**changes)  # the variant, checked by the configuration
        return changes, {}


UNIT = Median()
