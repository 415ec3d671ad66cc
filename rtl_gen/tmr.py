"""Selective-TMR voters: the baseline the LCU is compared with (SPEC §5 baselines).

A critical neuron computed three times (three identical array columns) is voted on:

* :class:`WordVoter` (seed 001 L2126): the word that at least two copies agree on; when all
  three differ, the signed minimum;
* :class:`BitwiseVoter`: per-bit majority ``(a & b) | (a & c) | (b & c)``.

Golden models: :mod:`golden.tmr`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError, check_int

__all__ = ["WordVoter", "BitwiseVoter"]


class _Voter(wiring.Component):
    def __init__(self, *, width: int = 8, registered: bool = False):
        check_int("width", width, 2, 64)
        if not isinstance(registered, bool):
            raise ConfigError("registered", registered, "true or false")
        self._width = width
        self._registered = registered
        super().__init__({
            "a": In(signed(width)),
            "b": In(signed(width)),
            "c": In(signed(width)),
            "out": Out(signed(width)),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def registered(self) -> bool:
        return self._registered

    def config(self) -> dict:
        """The parameters, for the Verilog header."""
        return {"unit": self._unit, "width": self._width, "registered": self._registered}

    def _vote(self, m: Module):
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        voted = self._vote(m)
        domain = m.d.sync if self._registered else m.d.comb
        domain += self.out.eq(voted)
        return m


class WordVoter(_Voter):
    """Word majority of three signed copies; the signed minimum when all three differ.

    Parameters
    ----------
    width : int
        Word width, 2 … 64 (8 and 16 tested).
    registered : bool
        ``False``: combinational, latency 0.  ``True``: registered output, latency 1 cycle
        (the stand-alone testable top).  Throughput one vote per cycle either way.

    Attributes
    ----------
    a, b, c : In(signed(width))
        The three copies of one critical neuron.
    out : Out(signed(width))

    Hardware: three equality comparators, two signed magnitude comparators (min of a and b,
    then min with c) and four word multiplexers.  Implements 001 L2126.
    """

    _unit = "tmr_word_voter"

    def _vote(self, m: Module):
        a, b, c = self.a, self.b, self.c
        min_ab = Mux(a < b, a, b)
        smallest = Mux(min_ab < c, min_ab, c)
        # a is the majority if it agrees with either other copy; otherwise b==c decides;
        # otherwise no majority exists and the smallest activation is the safer choice.
        return Mux((a == b) | (a == c), a, Mux(b == c, b, smallest))


class BitwiseVoter(_Voter):
    """Bitwise majority of three signed copies: ``(a & b) | (a & c) | (b & c)``.

    Parameters and attributes as :class:`WordVoter`.  Hardware: one 3-input majority gate per
    bit, no comparator.  When all three words differ the output may be a word none of the
    copies holds (each bit is voted on its own).
    """

    _unit = "tmr_bitwise_voter"

    def _vote(self, m: Module):
        a, b, c = (x.as_unsigned() for x in (self.a, self.b, self.c))
        return ((a & b) | (a & c) | (b & c)).as_signed()
