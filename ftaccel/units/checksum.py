"""Sanity-Check: the spatial and temporal checksums (Ozen 2023 ch. 6), on every dataflow.

Spatial: one extra *sanity* PE column and a checker (adder tree) over the C + 1 output lanes.
Temporal: one extra *sanity* input per batch and per-lane check accumulators (Fig. 6.9).  What
each holds follows from the dataflow (:mod:`rtl_gen.accelerator`):

====  ==================================================  ====================================
      spatial (extra PE column)                           temporal (sanity input)
====  ==================================================  ====================================
WS    sanity neuron: negated row sums of the weight tile  negated sum of N streamed activation
      (Eq. 6.5; the weight checksum)                      vectors after every batch (Eq. 6.7)
IS    sanity batch row: negated sum of the tile's C       sanity neuron on the fly: negated sum
      loaded inputs (Eq. 6.7; the *input* checksum)       of N streamed weight columns (Eq. 6.5)
OS    sanity neuron: its weights stream down the extra    one extra PE row, a sanity batch row:
      column (Eq. 6.5)                                    the negated sum of the R streamed
                                                          activations (Eq. 6.7; N = R, fixed)
====  ==================================================  ====================================

On IS the array's columns are batch rows, so the two checks swap the invariants they hold:
Table 6.1's spatial and temporal columns swap there.  Run time: the batch N (WS / IS), the
checkers' thresholds (0 = exact), and, for Table 6.1's bias row, an error in a bias word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftaccel.enums import Dataflow
from ftaccel.errors import ConfigError, check_choice, check_int, is_int

from .base import Field, RunFlag, Unit, UnitOptions, check_keys

__all__ = ["Checksum", "ChecksumOptions", "CHECKSUM_MODES", "TEMPORAL_MODES"]

#: Which checksums are built.
CHECKSUM_MODES = ("none", "spatial", "temporal", "both")
#: How the temporal checksum's sanity input crosses the array: ``"residue"`` wraps it to the
#: width of the operand it joins (WS, OS: ``a_width``; IS: ``w_width``; the PEs are unchanged,
#: the check holds modulo 2**that width), ``"exact"`` carries it whole (WS / IS: the streamed
#: path widened by ``temporal_batch_bits`` bits, every PE's multiplier grows; OS: only the
#: sanity row's PEs are ``ceil(log2(R + 1))`` bits wider) and the check holds modulo
#: 2**acc_bits.
TEMPORAL_MODES = ("residue", "exact")

_BIAS_ERROR_WHERE = "none unless a checksum is built (the checks must see the bias)"


def _optional_int(value):
    return int(value) if is_int(value, numpy=True) else value


@dataclass(frozen=True)
class ChecksumOptions(UnitOptions):
    """The checksums' run-time controls (None: the default).

    Parameters
    ----------
    temporal_batch : int or None
        N, data vectors per temporal batch (default the largest, ``2**bits − 1``).
    checksum_threshold, temporal_threshold : int or None
        The spatial / temporal checker's threshold: a syndrome whose magnitude exceeds it
        fails (default 0, the exact check).
    bias_error : tuple or None
        ``(row, column, delta)``: the bias word entering ``C[row, column]`` is off by
        ``delta`` (``row`` None: the stored word, every row), the checkers' constants keep
        the true bias (Ozen 2023 Table 6.1's bias row).
    bias_flip : tuple or None
        ``(column, bit, row)``: the same error given as a flipped ``bit`` of column
        ``column``'s bias word (``row`` None: every row), what ``--bias-error`` takes.
    """

    temporal_batch: int | None = None
    checksum_threshold: int | None = None
    temporal_threshold: int | None = None
    bias_error: tuple | None = None
    bias_flip: tuple | None = None

    unit = "checksum"
    keywords = ("temporal_batch", "checksum_threshold", "temporal_threshold", "bias_error",
                "bias_flip")
    flags = (
        RunFlag("--temporal-batch", "int",
                "temporal checksum batch N (default the largest, 2^bits − 1)"),
        RunFlag("--checksum-threshold", "int",
                "spatial checker threshold: a vector fails when |syndrome| exceeds it "
                "(default 0, exact)"),
        RunFlag("--temporal-threshold", "int", "temporal checker threshold (default 0, exact)"),
        RunFlag("--bias-error", "ints",
                "flip bit BIT of the bias word of column COL on its way into the array: "
                "COL,BIT (the stored word, every row) or COL,BIT,ROW (one row); with a "
                "checksum (Ozen 2023 Table 6.1's bias row)", per_product=True),
    )

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> ChecksumOptions:
        """From the five keywords (integers may be numpy scalars)."""
        return cls(**{k: _optional_int(keywords.get(k)) for k in cls.keywords[:3]},
                   bias_error=keywords.get("bias_error"), bias_flip=keywords.get("bias_flip"))

    def to_keywords(self) -> dict[str, Any]:
        """The keywords given."""
        return {k: getattr(self, k) for k in self.keywords if getattr(self, k) is not None}

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], n: int | None = None
                   ) -> ChecksumOptions | None:
        """From ``--temporal-batch``, the thresholds and ``--bias-error COL,BIT[,ROW]``."""
        flip = values.get("bias_error")
        if flip is not None:
            if len(flip) not in (2, 3):
                raise ConfigError("--bias-error", ",".join(map(str, flip)),
                                  "COL,BIT or COL,BIT,ROW")
            flip = (flip[0], flip[1], flip[2] if len(flip) == 3 else None)
        given = {k: values.get(k) for k in cls.keywords[:3]}
        if flip is None and all(v is None for v in given.values()):
            return None
        return cls(**given, bias_flip=flip)

    def check(self, cfg, *, m: int | None = None, n: int | None = None) -> None:
        """Each control needs its checksum and its range; a bias error needs WS + checksum."""
        if self.temporal_batch is not None:
            if not cfg.temporal:
                raise ConfigError("checksum", cfg.checksum,
                                  "'temporal' or 'both' to set a temporal batch size")
            if cfg.dataflow is Dataflow.OS:
                raise ConfigError("temporal batch", self.temporal_batch,
                                  "none on dataflow 'os' (its temporal batch is the R rows of "
                                  "a tile, checked by the sanity row)")
            check_int("temporal batch", self.temporal_batch, 1, cfg.temporal_batch_max,
                      numpy=True)
        if self.checksum_threshold is not None:
            if not cfg.spatial:
                raise ConfigError("checksum", cfg.checksum,
                                  "'spatial' or 'both' to set the spatial checksum threshold")
            check_int("checksum threshold", self.checksum_threshold, 0,
                      (1 << cfg.acc_bits) - 1, numpy=True)
        if self.temporal_threshold is not None:
            if not cfg.temporal:
                raise ConfigError("checksum", cfg.checksum,
                                  "'temporal' or 'both' to set the temporal checksum threshold")
            check_int("temporal threshold", self.temporal_threshold, 0,
                      (1 << cfg.temporal_check_bits) - 1, numpy=True)
        for error in (self.bias_flip, self.bias_error):
            if error is not None and cfg.checksum == "none":
                raise ConfigError("bias error", error, _BIAS_ERROR_WHERE)
        if self.bias_flip is not None:
            col, bit, row = self.bias_flip
            self._check_place(col, row, m, n)
            check_int("bias error bit", bit, 0, cfg.acc_bits - 1, numpy=True)
        if self.bias_error is not None:
            row, col, delta = self.bias_error
            self._check_place(col, row, m, n)
            check_int("bias error delta", delta, -(1 << 62), 1 << 62, numpy=True)

    @staticmethod
    def _check_place(col, row, m, n) -> None:
        check_int("bias error column", col, 0, (n if n is not None else 1 << 16) - 1,
                  numpy=True)
        if row is not None:
            check_int("bias error row", row, 0, (m if m is not None else 1 << 40) - 1,
                      numpy=True)

    def summary(self) -> dict[str, Any]:
        """The batch and thresholds given, and the bias error as ``column``, ``bit``, ``row``."""
        out = {k: getattr(self, k) for k in self.keywords[:3] if getattr(self, k) is not None}
        if self.bias_flip is not None:
            col, bit, row = self.bias_flip
            out["bias_error"] = {"column": col, "bit": bit, "row": row}
        return out


class Checksum(Unit):
    """Sanity-Check, spatial and/or temporal, on every dataflow."""

    name = "checksum"
    title = "Sanity-Check spatial and temporal checksums (Ozen 2023 ch. 6)"
    switch = "checksum"
    options = ChecksumOptions
    protection = "sanity"
    protection_keys = ("checksum", "temporal_mode", "temporal_batch")
    area = r"checksum\w*|sanity\w*|sc"
    golden = "checksum"
    fields = (
        Field("checksum", "str", "none",
              "``spatial``: one extra *sanity* PE column and a checker over the C + 1 outputs; "
              "``temporal``: one extra sanity input per batch (WS / IS: a vector after every "
              "batch of N streamed vectors, N set at run time; OS: one extra PE row) and "
              "per-lane check accumulators; ``both``; ``none``: off.",
              "none, spatial, temporal or both (Sanity-Check, Ozen 2023 ch. 6)",
              kind="text"),
        Field("temporal_batch_bits", "int", 4,
              "Width of the run-time batch size N (1 … 2**bits − 1 vectors per batch), 1 … 8.",
              "width of the run-time temporal batch size N (default 4: N ≤ 15)"),
        Field("temporal_mode", "str", "residue",
              "``residue`` (default) or ``exact``, see :data:`TEMPORAL_MODES`.",
              "residue (sanity input wrapped to its operand's width, check modulo 2^that "
              "width) or exact (carried whole, check mod 2^acc; default residue)", kind="text"),
    )

    def check(self, cfg) -> None:
        """A mode; batch bits 1 … 8; the exact mode's accumulator wide enough; not OS + bypass."""
        check_choice("checksum", cfg.checksum, CHECKSUM_MODES)
        check_int("temporal_batch_bits", cfg.temporal_batch_bits, 1, 8)
        check_choice("temporal_mode", cfg.temporal_mode, TEMPORAL_MODES)
        if cfg.temporal:
            widest = (cfg.sanity_row_width + cfg.w_width if cfg.dataflow is Dataflow.OS
                      else cfg.stream_width + cfg.stationary_width)
            if cfg.acc_bits < widest:
                raise ConfigError("acc_width", cfg.acc_width,
                                  f"at least {widest} bits: the exact temporal checksum "
                                  "streams wider sanity inputs")
        if cfg.checksum != "none" and cfg.dataflow is Dataflow.OS and cfg.bypass:
            raise ConfigError("checksum", cfg.checksum,
                              "'none' with bypass on dataflow 'os': a bypassed OS PE forces "
                              "its output to zero (Ozen 2023 Fig. 10.2-B), which no sanity "
                              "row or column can account for")

    def suffix(self, cfg) -> str:
        """``_css`` / ``_cst4r`` / ``_csb4e``: mode, then the temporal batch bits and mode."""
        if cfg.checksum == "none":
            return ""
        s = f"_cs{cfg.checksum[0]}"
        return s + (f"{cfg.temporal_batch_bits}{cfg.temporal_mode[0]}" if cfg.temporal else "")

    def input_stages(self, cfg) -> int:
        """WS / IS: the temporal sanity-input generator, the last stage of the streamed path.

        OS: none (the sanity row's input is an adder tree over the step's activations).
        """
        return int(cfg.temporal and cfg.dataflow is not Dataflow.OS)

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``checksum`` (``both``), ``temporal_mode`` (``residue``), ``temporal_batch`` (15).

        The batch sizes the hardware: ``temporal_batch_bits`` is the batch's bit length.
        """
        check_keys(spec, self.protection_keys, "sanity protection")
        mode = spec.get("checksum", "both")
        check_choice("checksum", mode, CHECKSUM_MODES[1:])
        os_flow = cfg.dataflow is Dataflow.OS
        if os_flow and "temporal_batch" in spec:
            raise ConfigError("sanity protection key", "temporal_batch",
                              "none on dataflow 'os' (its temporal batch is a tile's R rows)")
        batch = spec.get("temporal_batch", 15)
        check_int("temporal batch", batch, 1, 255)
        changes = {"checksum": mode, "temporal_mode": spec.get("temporal_mode", "residue"),
                   "temporal_batch_bits": max(1, batch.bit_length())}
        keywords = {} if mode == "spatial" or os_flow else {"temporal_batch": batch}
        cfg.replace(**changes)  # (checked by the configuration: OS with bypass is refused)
        return changes, keywords


UNIT = Checksum()
