"""Selective TMR: the voting controller on the shared output buffer (Ahmadilivani 2025).

The LCU's baseline: a critical neuron and its two copies are voted after a layer, the voted
word written to the three places; ``word`` voter (the word two copies agree on, the signed
minimum when all three differ) or ``bitwise`` majority.  The buffer is the LCU's
(``lcu_depth`` rows; the two units are exclusive).  Run time: the triples to vote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftaccel.errors import ConfigError, check_choice, check_int

from .base import Field, RunFlag, Unit, UnitOptions, check_keys
from .lcu import check_buffer, check_columns

__all__ = ["TMR", "TMROptions", "TMR_VOTERS"]

#: The voter of the composed top: ``"word"``, ``"bitwise"``, or ``"none"``: not built.
TMR_VOTERS = ("none", "word", "bitwise")


@dataclass(frozen=True, eq=False)
class TMROptions(UnitOptions):
    """The voter's run-time inputs (in array-column order).

    Parameters
    ----------
    triples : int array or None
        ``[n, 3]`` column triples (a critical neuron and its two copies) voted in every
        result row, in order; None: none (the buffer still captures and reads back).
    voter : str or None
        The voter the caller expects; it must be the configuration's ``tmr`` (built into the
        hardware).  Engines that vote on the host use it when the top has no voter.
    """

    triples: np.ndarray | None = None
    voter: str | None = None

    unit = "tmr"
    keywords = ("tmr_triples", "tmr_voter")
    flags = (
        RunFlag("--tmr-triples", "triples",
                "TMR: column triples (a neuron and its two copies) voted in every row, "
                "e.g. 0:4:5,1:6:7", per_product=True),
    )

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> TMROptions:
        """From ``tmr_triples`` and ``tmr_voter``."""
        return cls(triples=keywords.get("tmr_triples"), voter=keywords.get("tmr_voter"))

    def to_keywords(self) -> dict[str, Any]:
        """``tmr_triples`` and ``tmr_voter``, those given (as given: checked, not cast)."""
        out: dict[str, Any] = {}
        if self.triples is not None:
            out["tmr_triples"] = self.triples
        if self.voter is not None:
            out["tmr_voter"] = self.voter
        return out

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], n: int | None = None) -> TMROptions | None:
        """From ``--tmr-triples``."""
        triples = values.get("tmr_triples")
        return None if triples is None else cls(triples=np.asarray(triples))

    def check(self, cfg, *, m: int | None = None, n: int | None = None) -> None:
        """Needs ``tmr`` (its voter); triples of three different columns of the product."""
        if self.triples is None and self.voter is None:
            return
        if cfg.tmr == "none":
            raise ConfigError("tmr", cfg.tmr, "'word' or 'bitwise' for TMR triples (without "
                              "the on-chip voter, app.protect.VotingEngine votes on the host)")
        if self.voter is not None and self.voter != cfg.tmr:
            raise ConfigError("tmr voter", self.voter,
                              f"{cfg.tmr!r}, the configuration's voter (built into the "
                              "hardware)")
        if self.triples is not None:
            for t in check_columns("tmr triple", self.triples, 3, n).tolist():
                if len(set(t)) != 3:
                    raise ConfigError("tmr triple", tuple(t), "three different columns")

    def summary(self) -> dict[str, Any]:
        """``tmr_triples`` as a list."""
        return {} if self.triples is None else {
            "tmr_triples": np.asarray(self.triples).reshape(-1, 3).tolist()}


class TMR(Unit):
    """The selective-TMR voting controller (needs the output stage; not with the LCU)."""

    name = "tmr"
    title = "selective-TMR voting controller (Ahmadilivani 2025, the LCU's baseline)"
    switch = "tmr"
    options = TMROptions
    protection = "tmr"
    protection_keys = ("voter",)
    area = r"tmr\w*|voter\w*|majority\w*"
    golden = "tmr"
    fields = (
        Field("tmr", "str", "none",
              "Selective-TMR voting controller on the LCU's output buffer (``lcu_depth`` rows) "
              "voting up to ``tmr_max_triples`` word triples per run after a layer: ``word`` "
              "or ``bitwise`` voter; ``none``: not built.  Needs the output stage; not with "
              "``lcu``.",
              "selective-TMR voting controller on the output buffer: none, word (Ahmadilivani "
              "2025) or bitwise (buffer rows: --lcu-depth)", kind="text"),
        Field("tmr_max_triples", "int", 16, "Word triples per voting run.",
              "word triples per voting run (default 16)"),
    )

    def check(self, cfg) -> None:
        """A voter; triples per run; the output stage; not with the LCU."""
        check_choice("tmr", cfg.tmr, TMR_VOTERS)
        check_int("tmr_max_triples", cfg.tmr_max_triples, 1, 1 << 16)
        if cfg.tmr == "none":
            return
        if not cfg.output_stage:
            raise ConfigError("tmr", cfg.tmr, "'none' without the output stage (the voter "
                              "votes requantised activations)")
        if cfg.lcu:
            raise ConfigError("tmr", cfg.tmr, "'none' with lcu (the LCU and the TMR voter "
                              "would share one output buffer; build one of them)")

    def check_product(self, cfg, m: int, n: int) -> None:
        """The output buffer holds the product's result vectors."""
        if cfg.tmr != "none":
            check_buffer(cfg, m, n)

    def suffix(self, cfg) -> str:
        """``_tmrw64x16`` (voter's initial, depth × triples)."""
        return "" if cfg.tmr == "none" else \
            f"_tmr{cfg.tmr[0]}{cfg.lcu_depth}x{cfg.tmr_max_triples}"

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``voter``: ``word`` (default) or ``bitwise``.

        The on-chip voter, as ``rtlgen protect`` writes it into its configuration.
        """
        check_keys(spec, self.protection_keys, "tmr protection")
        voter = spec.get("voter", "word")
        check_choice("tmr voter", voter, TMR_VOTERS[1:])
        return {"tmr": voter}, {}


UNIT = TMR()
