"""The output stage: bias, ReLU, rounding right shift, saturation (Ozen 2023 §2.3).

Its run-time inputs (bias, ReLU, shift) are the product's own, not a unit option: they are
the ``bias`` / ``relu`` / ``shift`` arguments of every product function.
"""

from __future__ import annotations

from ftaccel.errors import check_bool

from .base import Field, Unit

__all__ = ["OutputStage"]


class OutputStage(Unit):
    """Bias, ReLU and requantisation after the array (on unless ``output_stage = false``)."""

    name = "output_stage"
    title = "output stage: bias, ReLU, requantisation (Ozen 2023 §2.3)"
    area = r"output_stage|out_stage"
    golden = "output_stage"
    flow_top = True
    fields = (
        Field("output_stage", "bool", True,
              "Add the bias / ReLU / requantisation stage after the array.",
              "omit bias/ReLU/requantisation", kind="off", flag="--no-output-stage"),
    )

    def built(self, cfg) -> bool:
        """Always: without ``output_stage`` the stage still registers the accumulators."""
        return True

    def check(self, cfg) -> None:
        """``output_stage`` is a bool."""
        check_bool("output_stage", cfg.output_stage)

    def suffix(self, cfg) -> str:
        """``_noout`` without the requantisation."""
        return "" if cfg.output_stage else "_noout"


UNIT = OutputStage()
