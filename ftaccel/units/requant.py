"""The fixed-point requantisation multiplier of the output stage (issue 23).

``requant = "multiplier"`` adds, per output lane, gemmlowp's fixed-point requantisation
(Jacob et al. 2018: ``SaturatingRoundingDoublingHighMul`` by a 31-bit ``M0``, then
``RoundingDivideByPOT``, a zero point and clamp bounds; :mod:`rtl_gen.output_stage`) beside the
power-of-two shift, selected at run time.  It costs :data:`REQUANT_STAGES` more pipeline
cycles and needs an accumulator of at most :data:`REQUANT_MAX_ACC` bits (gemmlowp's int32).
Its run-time inputs (per-column multiplier and shift, zero point, clamp bounds) are the
product's own (``requant=`` of every product function), not a unit option.
"""

from __future__ import annotations

from ftaccel.errors import ConfigError, check_choice

from .base import Field, Unit

__all__ = ["Requant", "REQUANT_MODES", "REQUANT_STAGES", "REQUANT_MAX_ACC"]

#: Output-stage requantisation paths: ``"shift"``, the power-of-two rounding shift only;
#: ``"multiplier"`` adds gemmlowp's fixed-point multiplier beside it, selected at run time.
REQUANT_MODES = ("shift", "multiplier")
#: Extra pipeline stages of the fixed-point path (product, high word, rounding shift).
REQUANT_STAGES = 3
#: Widest accumulator the fixed-point path takes: gemmlowp's int32.
REQUANT_MAX_ACC = 32


class Requant(Unit):
    """The fixed-point multiplier lanes of the output stage (``requant = "multiplier"``)."""

    name = "requant"
    title = "fixed-point requantisation multiplier (gemmlowp, Jacob et al. 2018)"
    switch = "requant"
    area = r"requant\w*"
    fields = (
        Field("requant", "str", "shift",
              "Output-stage requantisation (issue 23): ``\"shift\"`` (default) the "
              "power-of-two rounding shift; ``\"multiplier\"`` adds gemmlowp's fixed-point "
              "multiplier per output lane beside it (run-time select, "
              ":mod:`rtl_gen.output_stage`), which lengthens the output stage by three "
              "cycles and needs ``acc_bits ≤ 32`` (gemmlowp's int32 accumulator).",
              "output-stage requantisation: shift (power-of-two, default) or multiplier "
              "(adds gemmlowp's fixed-point multiplier per lane)", kind="text"),
    )

    def built(self, cfg) -> bool:
        """Whether the multiplier lanes are built."""
        return cfg.requant == "multiplier"

    def off_text(self) -> str:
        """The field's value without the multiplier."""
        return "'shift'"

    def check(self, cfg) -> None:
        """``requant`` one of :data:`REQUANT_MODES`; the multiplier's needs.

        It needs the output stage and an accumulator of at most :data:`REQUANT_MAX_ACC` bits.
        """
        check_choice("requant", cfg.requant, REQUANT_MODES)
        if cfg.requant == "shift":
            return
        if not cfg.output_stage:
            raise ConfigError("requant", cfg.requant, "'shift' without the output stage (the "
                              "multiplier is part of it)")
        if cfg.acc_bits > REQUANT_MAX_ACC:
            field, value = (("acc_width", cfg.acc_width) if cfg.acc_width is not None
                            else ("max_k", cfg.max_k))
            raise ConfigError(field, value, f"an accumulator of at most {REQUANT_MAX_ACC} bits "
                              f"with requant 'multiplier' (gemmlowp's int32; this one has "
                              f"{cfg.acc_bits}): lower max_k or set acc_width ≤ "
                              f"{REQUANT_MAX_ACC}")

    def suffix(self, cfg) -> str:
        """``_rqm`` with the fixed-point multiplier."""
        return "_rqm" if self.built(cfg) else ""


UNIT = Requant()
