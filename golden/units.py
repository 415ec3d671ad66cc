"""The units' golden behaviour, found through the registry by one interface.

Every descriptor of :mod:`ftaccel.units` names its golden module (:attr:`Unit.golden`); the
engines and the driver program never name a unit, they call the functions below, which call
the same-named function of every golden unit module that defines it, in registry order:

=====================  ========================================================================
``filter_inputs``      ``(cfg, x, opts) -> x``: an input unit on the R-lane chunks of the
                       rows of A, ``[M, chunks, R]`` (AFD, median), in pipeline order
``stimulus``           ``(cfg, draft, opts)``: the unit's ports in the driver program
                       (held controls, the output buffer's capture and runs); may return a
                       :class:`golden.output_buffer.Readback`
``prologue``           ``(cfg, draft, opts) -> cycles``: cycles written in front of the
                       product (the bypass map)
``output_ports``       ``(cfg) -> {port: (lanes, signed)}``: the output ports a program records
``requant_keywords``   ``(cfg, opts) -> dict``: keywords of the output stage (the LCU's split
                       lanes)
``correct``            ``(cfg, q, opts) -> q``: what the unit does to the requantised result
                       after a layer (LCU pairs, TMR votes), in closed form
``alarms``             ``(cfg, recorded) -> {name: count}``: what a checker flagged
``run_record``         ``(cfg, program, q, corrected, opts) -> dict``: what the unit did in a
                       product on the RTL (``rtlgen matmul --json``)
``run_line``           ``(cfg, record) -> str``: that record in one line (``rtlgen matmul``)
=====================  ========================================================================

``opts`` is the unit's :class:`ftaccel.units.UnitOptions`, its defaults when none were given
(None for a unit without run-time options).  A hook runs for every unit the configuration
builds; ``correct`` also runs for a unit whose options are given without the unit on chip (the
host applies it: the campaigns' selective-TMR fallback votes on the host).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import import_module
from types import ModuleType
from typing import Any

import numpy as np

from ftaccel import units
from ftaccel.units import UnitOptions

__all__ = ["model", "options", "units_matrix", "filters_inputs", "stimulus", "prologue",
           "output_ports", "requant_keywords", "correct", "alarms", "run_records", "run_lines",
           "bypass_map", "temporal_batch"]


@cache
def model(name: str) -> ModuleType | None:
    """The golden module of unit ``name`` (:attr:`ftaccel.units.Unit.golden`), or None."""
    golden = units.unit(name).golden
    return None if golden is None else import_module(f"{__package__}.{golden}")


def options(cfg, keywords: Mapping[str, Any]) -> dict[str, UnitOptions]:
    """The typed options of a units mapping, with the defaults of always-programmed units.

    Keys that are not unit options (a fault model's ``errors``, ...) are left out; nothing is
    checked here (the API checks once, :func:`ftaccel.units.check_options`).
    """
    given = units.options_from_keywords(keywords, strict=False)
    return units.with_defaults(cfg, given)


def _hooks(cfg, opts: Mapping[str, UnitOptions], hook: str, *, given_too: bool = False):
    """``(function, unit options)`` of every unit with ``hook`` that ``cfg`` builds.

    A unit with options but none given gets its defaults; ``given_too`` adds the units whose
    options are given although ``cfg`` does not build them.
    """
    for u in units.UNITS:
        if u.golden is None or not (u.built(cfg) or (given_too and u.name in opts)):
            continue
        fn = getattr(model(u.name), hook, None)
        if fn is not None:
            default = u.options() if u.options is not None else None
            yield fn, opts.get(u.name, default)


def units_matrix(cfg, A: np.ndarray, opts: Mapping[str, UnitOptions]) -> np.ndarray:
    """The activations the array multiplies after the input units (AFD, median).

    The units filter each R-lane chunk of a row of ``A`` (zero-padded to R lanes), in pipeline
    order (Ozen 2023 Fig. 8.9: at the activation buffer's output), on every dataflow: WS
    streams a chunk as one vector, OS streams it over R cycles of one lane, IS loads it into
    one column (the windowed units of :mod:`rtl_gen.afd` and :mod:`rtl_gen.median` give the
    same result, tested), so one model holds for all three.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The configuration: ``rows`` (R) and the input units built.
    A : ndarray
        The M×K activations as the layer gives them (int64).
    opts : mapping
        The typed unit options (:func:`options`), or a units mapping of keywords.

    Returns
    -------
    ndarray
        The M×K activations after the units; ``A`` itself when no input unit is on.
    """
    if any(not isinstance(v, UnitOptions) for v in opts.values()):
        opts = options(cfg, opts)
    filters = list(_hooks(cfg, opts, "filter_inputs"))
    if not filters:
        return A
    R = cfg.rows
    M, K = A.shape
    nk = -(-K // R)
    x = np.zeros((M, nk * R), dtype=np.int64)
    x[:, :K] = A
    x = x.reshape(M, nk, R)
    for fn, o in filters:
        x = fn(cfg, x, o)
    return x.reshape(M, nk * R)[:, :K]


def filters_inputs(cfg, opts: Mapping[str, UnitOptions]) -> bool:
    """Whether an input unit (AFD, median) is built: :func:`units_matrix` is not the identity."""
    return any(True for _ in _hooks(cfg, opts, "filter_inputs"))


def stimulus(cfg, draft, opts: Mapping[str, UnitOptions]):
    """Every built unit's ports in ``draft``; the output buffer's read-back if one is built."""
    readback = None
    for fn, o in _hooks(cfg, opts, "stimulus"):
        readback = fn(cfg, draft, o) or readback
    return readback


def prologue(cfg, draft, opts: Mapping[str, UnitOptions]) -> int:
    """Cycles the built units write in front of the product (the bypass map); their total."""
    return sum(fn(cfg, draft, o) for fn, o in _hooks(cfg, opts, "prologue"))


def output_ports(cfg) -> dict[str, tuple[int, bool]]:
    """The built units' output ports a program records: ``name → (lanes or 0, signed)``."""
    out: dict[str, tuple[int, bool]] = {}
    for fn, _ in _hooks(cfg, {}, "output_ports"):
        out.update(fn(cfg))
    return out


def requant_keywords(cfg, opts: Mapping[str, UnitOptions]) -> dict[str, Any]:
    """Keywords of :func:`golden.output_stage.output_stage` the built units set (split lanes)."""
    out: dict[str, Any] = {}
    for fn, o in _hooks(cfg, opts, "requant_keywords", given_too=True):
        out.update(fn(cfg, o))
    return out


def correct(cfg, q: np.ndarray, opts: Mapping[str, UnitOptions]) -> np.ndarray:
    """``q`` after every unit's correction of a layer's result (LCU pairs, then TMR votes)."""
    for fn, o in _hooks(cfg, opts, "correct", given_too=True):
        q = fn(cfg, q, o)
    return q


def alarms(cfg, recorded: Mapping[str, np.ndarray]) -> dict[str, int]:
    """What the built checkers flagged in a recorded program, by checker."""
    out: dict[str, int] = {}
    for fn, _ in _hooks(cfg, {}, "alarms"):
        out.update(fn(cfg, recorded))
    return out


def run_records(cfg, program, q, corrected, opts: Mapping[str, UnitOptions]) -> dict:
    """Per built unit that reports one, what it did in a product (a JSON-ready dict)."""
    out = {}
    for u in units.UNITS:
        if u.golden is None or not u.built(cfg):
            continue
        fn = getattr(model(u.name), "run_record", None)
        if fn is not None:
            default = u.options() if u.options is not None else None
            out[u.name] = fn(cfg, program, q, corrected, opts.get(u.name, default))
    return out


def run_lines(cfg, records: Mapping[str, dict]) -> list[str]:
    """One line per unit record of :func:`run_records`."""
    return [model(name).run_line(cfg, rec) for name, rec in records.items()]


def bypass_map(opts: Mapping[str, UnitOptions]) -> np.ndarray | None:
    """The bypass map the options give (the array's product depends on it), or None."""
    o = opts.get("bypass")
    return None if o is None else o.map


def temporal_batch(opts: Mapping[str, UnitOptions]) -> int | None:
    """The temporal checksum's batch N the options give (the schedule depends on it)."""
    o = opts.get("checksum")
    return None if o is None else o.temporal_batch
