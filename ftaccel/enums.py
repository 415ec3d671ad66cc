"""The named choices of the hardware: dataflow, fault mode, fault register.

Each is an :class:`enum.StrEnum`, so a member *is* its string: ``Dataflow.WS == "ws"``, it
formats and serialises as ``ws`` (JSON, TOML, file names) and indexes a dict keyed by strings.
The configuration and :class:`golden.faults.Fault` validate their text into these members, so
code compares with the member (``cfg.dataflow is Dataflow.WS``) and a misspelt mode is an
error where it is written, not a silent ``False`` far away.  The order of the members is the
encoding of the fault hooks' ``reg`` and ``mode`` controls (:mod:`rtl_gen.fault`).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Dataflow", "FaultMode", "FaultRegister"]


class Dataflow(StrEnum):
    """What stays in a PE (Ozen 2023 §2.3, §10.3.2; the mapping of Eqs. 10.3–10.5)."""

    #: weight-stationary: weights pinned, activations stream left to right
    WS = "ws"
    #: input-stationary: activations pinned, weights stream
    IS = "is"
    #: output-stationary: each PE keeps one output; activations and weights both stream
    OS = "os"


class FaultMode(StrEnum):
    """What a fault does to its bit, in the encoding of the ``fault__mode`` control."""

    #: stuck-at-0 (permanent)
    SA0 = "sa0"
    #: stuck-at-1 (permanent)
    SA1 = "sa1"
    #: inverted for one cycle (transient; a held register keeps the flipped value)
    FLIP = "flip"


class FaultRegister(StrEnum):
    """A PE fault site, in the encoding of the ``fault__reg`` control.

    The registers of the PE and its MAC logic (Ozen 2023 §6.3, Fig. 10.2; the sites of
    Ahmadilivani 2025 §3.4): which exist in a configuration is decided by
    :func:`ftaccel.units.fault_sites`.
    """

    #: the weight register (stationary in WS, moving in IS and OS)
    WEIGHT = "weight"
    #: the activation register
    ACT = "act"
    #: the partial-sum register
    PSUM = "psum"
    #: the multiplier's product (MAC logic, combinational; isolated by PE bypass)
    PRODUCT = "product"
    #: the adder's sum (MAC logic, combinational; what the partial-sum register stores)
    SUM = "sum"
    #: the shadow of the stationary operand (double-buffered WS / IS only)
    SHADOW = "shadow"
