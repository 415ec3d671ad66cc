"""The Lightweight Correction Unit and neuron splitting (Ahmadilivani 2025 §4.3.1).

An output buffer of ``lcu_depth`` rows of C requantised words captures output vectors; a
correction controller ANDs up to ``lcu_max_pairs`` critical pairs in place after a layer (the
mask clearing bit ``a_width − 2``); per-column *split* requantisation (``shift + 1``, one bit
narrower) makes a split neuron's two halves bit-identical (Fig. 4.15).  Run time: which
columns are split copies and the pairs to correct.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftaccel.errors import ConfigError, check_bool, check_int

from .base import Field, RunFlag, Unit, UnitOptions, check_keys

__all__ = ["LCU", "LCUOptions", "LCU_MODES", "check_buffer", "check_columns"]

#: How ``rtlgen protect`` builds the copies: the thesis' halves, or unhalved copies whose
#: pure AND (mask all ones) is bit-identical without faults.
LCU_MODES = ("halve", "exact")


def check_columns(name: str, groups, k: int, n: int | None) -> np.ndarray:
    """``groups`` as a ``[g, k]`` int64 array of columns ``0 … n − 1`` (ConfigError else).

    ``n`` None (a network: every layer has its own width) checks only that they are columns.
    """
    cols = np.asarray(groups)
    if cols.size and cols.dtype.kind not in "iu":
        raise ConfigError(f"{name} dtype", str(cols.dtype), "integer column numbers")
    if cols.size % k or (cols.ndim > 1 and cols.shape[-1] != k):
        raise ConfigError(f"{name}s shape", cols.shape, f"(n, {k}): {k} columns per {name}")
    cols = cols.astype(np.int64).reshape(-1, k)
    hi = n if n is not None else 1 << 16
    if cols.size and (cols.min() < 0 or cols.max() >= hi):
        raise ConfigError(f"{name} column", int(cols.max() if cols.max() >= hi
                                                 else cols.min()), f"0 … {hi - 1}")
    return cols


def check_buffer(cfg, m: int, n: int) -> None:
    """ConfigError unless the output buffer holds every result vector of the product."""
    need = cfg.result_vectors(m, n)
    if need > cfg.lcu_depth:
        raise ConfigError("lcu_depth", cfg.lcu_depth,
                          f"at least {need} output-buffer rows for this product (one per "
                          "result vector); use a smaller batch or a deeper buffer")


@dataclass(frozen=True, eq=False)
class LCUOptions(UnitOptions):
    """The LCU's run-time inputs (in array-column order).

    Parameters
    ----------
    split : bool array or None
        The N output columns that are split copies (their output-stage lanes use
        ``shift + 1`` and one bit less); None: none.
    pairs : int array or None
        ``[n, 2]`` column pairs corrected in every result row, in order; None: none.
    """

    split: np.ndarray | None = None
    pairs: np.ndarray | None = None

    unit = "lcu"
    keywords = ("split", "lcu_pairs")
    flags = (
        RunFlag("--split-cols", "columns",
                "LCU: output columns that are split copies, e.g. 1,3,4,5", per_product=True),
        RunFlag("--lcu-pairs", "pairs",
                "LCU: column pairs to correct in every row, e.g. 1:4,3:5", per_product=True),
    )

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> LCUOptions:
        """From ``split`` and ``lcu_pairs``."""
        return cls(split=keywords.get("split"), pairs=keywords.get("lcu_pairs"))

    def to_keywords(self) -> dict[str, Any]:
        """``split`` and ``lcu_pairs``, those given (as given: checked, not cast)."""
        out: dict[str, Any] = {}
        if self.split is not None:
            out["split"] = self.split
        if self.pairs is not None:
            out["lcu_pairs"] = self.pairs
        return out

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], n: int | None = None) -> LCUOptions | None:
        """From ``--split-cols`` (columns) and ``--lcu-pairs`` (pairs).

        Pairs without split columns correct unsplit copies: every column unsplit.
        """
        cols, pairs = values.get("split_cols"), values.get("lcu_pairs")
        if cols is None and pairs is None:
            return None
        split = None
        if cols is not None or n is not None:
            split = np.zeros(n or 0, dtype=bool)
            if cols is not None:
                split[check_columns("split", cols, 1, n).ravel()] = True
        return cls(split=split, pairs=None if pairs is None else np.asarray(pairs))

    def check(self, cfg, *, m: int | None = None, n: int | None = None) -> None:
        """Needs ``lcu``; one split flag per column; pairs of columns of the product."""
        if self.split is None and self.pairs is None:
            return
        if not cfg.lcu:
            raise ConfigError("lcu", cfg.lcu, "true for split columns and LCU pairs")
        if self.split is not None and n is not None and np.asarray(self.split).shape != (n,):
            raise ConfigError("split shape", np.asarray(self.split).shape,
                              f"({n},): one flag per column of B")
        if self.pairs is not None:
            check_columns("lcu pair", self.pairs, 2, n)

    def summary(self) -> dict[str, Any]:
        """``split_columns`` and ``lcu_pairs`` as lists."""
        out: dict[str, Any] = {}
        if self.split is not None:
            out["split_columns"] = np.nonzero(self.split)[0].tolist()
        if self.pairs is not None:
            out["lcu_pairs"] = np.asarray(self.pairs).reshape(-1, 2).tolist()
        return out


class LCU(Unit):
    """Output buffer + correction controller + split lanes (needs the output stage)."""

    name = "lcu"
    title = "Lightweight Correction Unit (Ahmadilivani 2025 §4.3.1)"
    switch = "lcu"
    options = LCUOptions
    protection = "lcu"
    protection_keys = ("lcu_mode",)
    area = r"lcu\w*|correction\w*"
    golden = "lcu"
    fields = (
        Field("lcu", "bool", False,
              "Lightweight Correction Unit: an output buffer of ``lcu_depth`` rows of C "
              "requantised words, a correction controller that ANDs up to ``lcu_max_pairs`` "
              "critical pairs in place after a layer, and per-column split requantisation.  "
              "Needs the output stage.",
              "output buffer + LCU correction controller + split lanes (Ahmadilivani 2025 "
              "§4.3.1)", kind="on"),
        Field("lcu_depth", "int", 64,
              "Output-buffer rows of C words (the one buffer-depth field of the LCU and the "
              "TMR voter, which are exclusive).", "output-buffer rows of C words (default 64)"),
        Field("lcu_max_pairs", "int", 16, "Pairs per correction run.",
              "pairs per correction run (default 16)"),
        Field("lcu_mask", "int | None", None,
              "The bits the LCU keeps when it ANDs a pair (1 = keep), ``a_width`` bits; "
              "``None`` is the thesis' mask, every bit but ``a_width − 2`` "
              "(:func:`golden.lcu.default_mask`).  A constant of the hardware, not a port.",
              "bits the LCU keeps (a_width bits, e.g. 0xBF; default: all but bit a_width − 2)"),
    )

    def check(self, cfg) -> None:
        """A bool, buffer sizes, the output stage, a mask of ``a_width`` bits with the LCU."""
        check_bool("lcu", cfg.lcu)
        check_int("lcu_depth", cfg.lcu_depth, 2, 1 << 16)
        check_int("lcu_max_pairs", cfg.lcu_max_pairs, 1, 1 << 16)
        if cfg.lcu and not cfg.output_stage:
            raise ConfigError("lcu", cfg.lcu, "false without the output stage (the LCU "
                              "corrects requantised activations)")
        if cfg.lcu_mask is not None:
            check_int("lcu_mask", cfg.lcu_mask, 0, (1 << cfg.a_width) - 1)
            if not cfg.lcu:
                raise ConfigError("lcu_mask", cfg.lcu_mask, "null without the LCU (lcu)")

    def check_product(self, cfg, m: int, n: int) -> None:
        """The output buffer holds the product's result vectors."""
        if cfg.lcu:
            check_buffer(cfg, m, n)

    def suffix(self, cfg) -> str:
        """``_lcu64x16`` (depth × pairs), ``m`` and the mask in hex when given."""
        if not cfg.lcu:
            return ""
        mask = "" if cfg.lcu_mask is None else f"m{cfg.lcu_mask:x}"
        return f"_lcu{cfg.lcu_depth}x{cfg.lcu_max_pairs}{mask}"

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``lcu_mode``: ``halve`` (default) or ``exact`` (mask all ones).

        The critical neurons (NVF threshold or a protected model) are the campaign's own keys.
        """
        check_keys(spec, self.protection_keys, "lcu protection")
        mode = spec.get("lcu_mode", "halve")
        if mode not in LCU_MODES:
            raise ConfigError("lcu_mode", mode, f"one of {', '.join(LCU_MODES)}")
        changes = {"lcu": True} if mode == "halve" else {
            "lcu": True, "lcu_mask": (1 << cfg.a_width) - 1}
        return changes, {}


UNIT = LCU()
