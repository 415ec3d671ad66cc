"""Anomalous feature detection and suppression, AFD (Ozen 2023 §8.4.1, Eqs. 8.1–8.2).

WS: one pipeline stage in front of the array, on the streamed vector (one R-lane chunk of a
row of A).  IS and OS: a cycle's vector does not hold neighbouring features of one input, so
the rule works in time, per lane, on the features as they arrive (OS: the streamed
activations; IS: the stationary activations as they are loaded), each chunk of R features
wrapped on its own; its operand leads the array by R cycles (:mod:`rtl_gen.afd`).  The same
filter on every dataflow (:func:`golden.units.units_matrix`).  Run time: the threshold
γ = 2**shift, one or two gates (Eq. 8.1 / 8.2), drop or clip, on or off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftaccel.enums import Dataflow
from ftaccel.errors import ConfigError, check_bool, check_choice, check_int

from .base import Field, RunFlag, Unit, UnitOptions, check_keys

__all__ = ["AFD", "AFDOptions", "AFD_MODES"]

#: What a suppressed feature becomes: zero (``drop``) or the threshold (``clip``), in the
#: encoding of the ``afd__mode`` control.
AFD_MODES = ("drop", "clip")


@dataclass(frozen=True)
class AFDOptions(UnitOptions):
    """The anomaly suppression's run-time controls (Ozen 2023 Eqs. 8.1–8.2).

    Parameters
    ----------
    shift : int
        γ = 2**shift, within ±``a_width``.
    gates : int
        1 (Eq. 8.1) or 2 (Eq. 8.2).
    mode : str
        ``"drop"`` or ``"clip"`` (:data:`AFD_MODES`).
    enable : bool
        False passes the vectors through.
    """

    shift: int = 1
    gates: int = 1
    mode: str = "drop"
    enable: bool = True

    unit = "afd"
    keywords = ("afd",)
    #: The controls are held at these defaults when none are given (the stage is always
    #: programmed), so a product's options always list them.
    always = True
    flags = (
        RunFlag("--afd-shift", "int", "AFD threshold γ = 2**shift (default 1)"),
        RunFlag("--afd-gates", "int", "AFD gates: 1 (Eq. 8.1, default) or 2 (Eq. 8.2)"),
        RunFlag("--afd-mode", "text", "AFD action: drop (default) or clip", choices=AFD_MODES),
        RunFlag("--afd-off", "on", "switch anomaly suppression off at run time"),
    )

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> AFDOptions:
        """From ``afd``: a dict of ``shift``, ``gates``, ``mode`` (0/1 or the word), ``enable``."""
        ctl = dict(keywords.get("afd") or {})
        mode = ctl.get("mode", "drop")
        if type(mode) is int and mode in (0, 1):  # the control's encoding
            mode = AFD_MODES[mode]
        enable = ctl.get("enable", True)
        return cls(shift=ctl.get("shift", 1), gates=ctl.get("gates", 1), mode=mode,
                   enable=bool(enable) if type(enable) is int else enable)

    def to_keywords(self) -> dict[str, Any]:
        """``{"afd": {"shift", "gates", "mode", "enable"}}`` in the controls' encoding."""
        return {"afd": self.controls()}

    def controls(self) -> dict[str, int]:
        """The values of the ``afd__*`` control ports."""
        return {"shift": int(self.shift), "gates": int(self.gates),
                "mode": AFD_MODES.index(self.mode), "enable": int(bool(self.enable))}

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], n: int | None = None) -> AFDOptions | None:
        """From ``--afd-shift``, ``--afd-gates``, ``--afd-mode``, ``--afd-off``."""
        given = {k: values.get(f"afd_{k}") for k in ("shift", "gates", "mode")}
        if all(v is None for v in given.values()) and not values.get("afd_off"):
            return None
        return cls(**{k: v for k, v in given.items() if v is not None},
                   enable=not values.get("afd_off"))

    def check(self, cfg, *, m: int | None = None, n: int | None = None) -> None:
        """Needs ``afd``; gates 1 or 2, shift within ±``a_width``, mode drop or clip."""
        if not cfg.afd:
            raise ConfigError("afd", cfg.afd, "true to set the anomaly-suppression controls")
        check_int("afd gates", self.gates, 1, 2, numpy=True)
        # (the signed shift port holds ±a_width: rtl_gen.afd.shift_port_width)
        check_int("afd shift", self.shift, -cfg.a_width, cfg.a_width, numpy=True)
        check_choice("afd mode", self.mode, AFD_MODES)
        check_bool("afd enable", self.enable)

    def summary(self) -> dict[str, Any]:
        """``afd``: the controls as the ports take them."""
        return {"afd": self.controls()}

    def off(self) -> AFDOptions:
        """These controls with the suppression switched off."""
        return self.replace(enable=False)


class AFD(Unit):
    """Anomaly suppression of the activations: WS one stage before the skew, IS / OS in time."""

    name = "afd"
    title = "anomalous feature detection and suppression (Ozen 2023 §8.4.1)"
    switch = "afd"
    options = AFDOptions
    protection = "afd"
    protection_keys = ("gates", "mode", "gamma")
    area = r"afd\w*|anomal\w*|suppress\w*"
    golden = "afd"
    fields = (
        Field("afd", "bool", False,
              "Anomalous feature detection and suppression of the activations: WS one "
              "pipeline stage before the skew; IS / OS per lane in time, leading by R cycles.",
              "anomaly suppression of the activations (Ozen 2023 §8.4.1)",
              kind="on"),
    )

    def check(self, cfg) -> None:
        """A bool."""
        check_bool("afd", cfg.afd)

    def suffix(self, cfg) -> str:
        """``_afd``."""
        return "_afd" if cfg.afd else ""

    def input_stages(self, cfg) -> int:
        """WS: one registered stage on the streamed vector."""
        return int(cfg.afd and cfg.dataflow is Dataflow.WS)

    def lead_cycles(self, cfg) -> int:
        """IS / OS: R (a chunk's first element waits for its last, the wrap-around)."""
        return cfg.rows if cfg.afd and cfg.dataflow is not Dataflow.WS else 0

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``gates`` (1), ``mode`` (``drop``), ``gamma`` (2: the threshold γ, a power of two)."""
        check_keys(spec, self.protection_keys, "afd protection")
        gamma = spec.get("gamma", 2)
        ok = isinstance(gamma, int | float) and not isinstance(gamma, bool) and gamma > 0 \
            and math.isfinite(math.log2(gamma)) and math.log2(gamma) == int(math.log2(gamma))
        if not ok:
            raise ConfigError("afd gamma", gamma, "a power of two (γ = 2**shift)")
        opts = AFDOptions(shift=int(math.log2(gamma)), gates=spec.get("gates", 1),
                          mode=spec.get("mode", "drop"))
        changes = {"afd": True}
        opts.check(cfg.replace(**changes))
        return changes, opts.to_keywords()


UNIT = AFD()
