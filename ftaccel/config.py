"""Configuration of a generated accelerator: one pure, frozen, validated dataclass.

:class:`AcceleratorConfig`'s fields are those of the registered units (:mod:`ftaccel.units`:
each unit declares its fields, their checks and its part of the name), so adding a unit adds
its fields here without touching this module.  This module imports nothing from Amaranth (and
nothing of the project beyond the core), so the golden models, the CLI and the tests can build
and check configurations without touching hardware generation.  Every invalid value raises
:class:`ConfigError`, which names the field, the value and what would be valid; nothing
invalid reaches Amaranth or Yosys.

Numbers (Ozen 2023 §2.3): data are two's-complement signed integers; activations are
``a_width`` bits, weights ``w_width`` bits; the accumulator is ``a_width + w_width +
ceil(log2(max_k))`` bits unless ``acc_width`` is given explicitly, where ``max_k`` is the
largest reduction length (the ``K`` of an ``M×K @ K×N`` product, summed over all tiles) that
the configuration promises never to overflow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from . import files, units
from .enums import Dataflow, FaultMode, FaultRegister
from .errors import ConfigError
from .units.afd import AFD_MODES
from .units.array import DATAFLOWS, MAX_ACC_WIDTH, MAX_DIM, MAX_K, derived_acc_width
from .units.checksum import CHECKSUM_MODES, TEMPORAL_MODES
from .units.fault_hooks import FAULT_CONTROLS, FAULT_MODES, FAULT_REGISTERS
from .units.flow import FLOW_GROUPS, FLOW_MODES, flow_lanes
from .units.median import MEDIAN_VARIANTS
from .units.requant import REQUANT_MAX_ACC, REQUANT_MODES, REQUANT_STAGES
from .units.tmr import TMR_VOTERS

__all__ = [
    "AcceleratorConfig", "ConfigError", "Dataflow", "FaultMode", "FaultRegister",
    "DATAFLOWS", "FAULT_REGISTERS", "FAULT_MODES", "FAULT_CONTROLS", "CHECKSUM_MODES",
    "TEMPORAL_MODES", "MEDIAN_VARIANTS", "TMR_VOTERS", "AFD_MODES", "FLOW_MODES",
    "FLOW_GROUPS", "flow_lanes", "derived_acc_width", "MAX_ACC_WIDTH", "MAX_K", "MAX_DIM",
    "MAX_CONFIG_BYTES", "REQUANT_MODES", "REQUANT_STAGES", "REQUANT_MAX_ACC",
]

#: Largest configuration file read (bytes); a real one is well under a kilobyte.
MAX_CONFIG_BYTES = 1 << 20


def _unit_fields(cls):
    """Give ``cls`` the fields of every registered unit (before :func:`dataclass` runs).

    The class's documentation gains an ``Attributes`` entry per field, from the descriptors.
    """
    notes = cls.__dict__.get("__annotations__", {})
    cls.__annotations__ = notes
    doc = []
    for f in units.config_fields():
        notes[f.name] = f.type
        setattr(cls, f.name, f.default)
        doc.append(f"    {f.name} : {f.type}\n        {f.doc}")
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Attributes\n    ----------\n" + \
        "\n".join(doc) + "\n"
    return cls


@dataclass(frozen=True)
@_unit_fields
class AcceleratorConfig:
    """One generated accelerator: systolic array, output stage, the configured units.

    The fields are the registered units' (:func:`ftaccel.units.config_fields`, listed below):
    each unit's descriptor in :mod:`ftaccel.units` declares, documents and checks its own.
    :meth:`from_dict` rejects keys it does not know, so an old tool never silently ignores a
    newer option.  Text choices are validated into their :mod:`ftaccel.enums` member
    (``dataflow`` is a :class:`Dataflow`, equal to its text).
    """

    def __post_init__(self) -> None:
        """Check every field (unit by unit); ConfigError naming the first bad one."""
        units.check_config(self, self._convert)

    def _convert(self, field: units.Field) -> None:
        """A checked text choice becomes its enum member (frozen: set it directly)."""
        if field.enum is not None:
            object.__setattr__(self, field.name, field.enum(getattr(self, field.name)))

    # -- derived quantities: the one place each is computed -------------------------------
    @property
    def acc_bits(self) -> int:
        """The accumulator width actually built (explicit or derived)."""
        if self.acc_width is not None:
            return self.acc_width
        return derived_acc_width(self.a_width, self.w_width, self.max_k)

    @property
    def stationary_width(self) -> int:
        """Width of the operand pinned in each PE (WS: weight, IS: activation, OS: none)."""
        return {"ws": self.w_width, "is": self.a_width, "os": 0}[self.dataflow]

    @property
    def double_buffered(self) -> bool:
        """The stationary operand has a shadow register (WS / IS with ``double_buffer``)."""
        return self.double_buffer and self.dataflow is not Dataflow.OS and self.flow == "none"

    @property
    def spatial(self) -> bool:
        """The spatial checksum (sanity column and its checker) is built."""
        return self.checksum in ("spatial", "both")

    @property
    def temporal(self) -> bool:
        """The temporal checksum (sanity-input generator and check accumulators) is built."""
        return self.checksum in ("temporal", "both")

    @property
    def stream_width(self) -> int:
        """Width of the operand streamed from the left edge (WS, OS: activation; IS: weight).

        With the exact temporal checksum on WS / IS the streamed operand is
        ``temporal_batch_bits`` wider inside the array: the sanity vector is the negated sum of
        up to ``2**temporal_batch_bits − 1`` streamed vectors.  (OS keeps its streams: its
        sanity input is one more PE row, :attr:`sanity_row_width`.)
        """
        base = self.w_width if self.dataflow is Dataflow.IS else self.a_width
        if self.dataflow is not Dataflow.OS and self.temporal and self.temporal_mode == "exact":
            return base + self.temporal_batch_bits
        return base

    @property
    def temporal_check_bits(self) -> int:
        """Modulus exponent of the temporal check: ``acc_bits`` (exact) or the residue's bits.

        Residue: the width the sanity input is wrapped to, the streamed operand's own width
        (WS and OS: ``a_width``; IS: ``w_width``).
        """
        if self.temporal_mode == "exact":
            return self.acc_bits
        return self.w_width if self.dataflow is Dataflow.IS else self.a_width

    @property
    def temporal_batch_max(self) -> int:
        """Largest run-time temporal batch N: ``2**temporal_batch_bits − 1`` data vectors."""
        return (1 << self.temporal_batch_bits) - 1

    @property
    def bias_in_psum(self) -> bool:
        """The bias enters through ``psum_in`` of the first K-tile rather than in the output stage.

        So ``acc_out`` includes it.  Always for IS (its output lanes are batch rows), and for WS
        with a checksum, so that the checks cover bias errors (Ozen 2023 Table 6.1).  OS has no
        partial-sum input: its checkers add the bias the output stage adds (:mod:`rtl_gen.
        accelerator`), so they cover bias errors too.
        """
        return self.dataflow is Dataflow.IS or (self.dataflow is Dataflow.WS
                                                and self.checksum != "none")

    @property
    def array_cols(self) -> int:
        """Columns of PEs actually built: C, plus the sanity column of the spatial checksum."""
        return self.cols + (1 if self.spatial else 0)

    @property
    def array_rows(self) -> int:
        """Rows of PEs actually built: R, plus the OS temporal checksum's sanity row."""
        return self.rows + (1 if self.temporal and self.dataflow is Dataflow.OS else 0)

    @property
    def sanity_width(self) -> int:
        """Width of the sanity column's own operand (the spatial checksum).

        WS: its stationary weights, OS: its streamed weights, both the negated sum of C weights;
        IS: its stationary activations, the negated sum of the C batch rows.  The negated sum of
        C values needs ``width + ceil(log2(C + 1))`` bits (it is carried exactly, in wider PEs).
        """
        base = self.a_width if self.dataflow is Dataflow.IS else self.w_width
        return base + math.ceil(math.log2(self.cols + 1))

    @property
    def sanity_row_width(self) -> int:
        """Width of the OS sanity row's activations (the OS temporal checksum).

        The negated sum of the R streamed activations of a step: ``a_width +
        ceil(log2(R + 1))`` bits exact, wrapped to ``a_width`` in residue mode.
        """
        if self.temporal_mode == "exact":
            return self.a_width + math.ceil(math.log2(self.rows + 1))
        return self.a_width

    def register_width(self, register: str, col: int = 0, row: int = 0) -> int:
        """Width of a PE fault site (:data:`FAULT_REGISTERS`) in PE (``row``, ``col``).

        Column ``cols`` is the spatial checksum's sanity column, row ``rows`` the OS temporal
        checksum's sanity row (wider operands); the widths are the fault-hook descriptor's
        (:func:`ftaccel.units.register_width`).
        """
        return units.register_width(self, register, col, row)

    @property
    def input_stages(self) -> int:
        """Pipeline stages on the streamed path in front of the array.

        Each stage delays every operand alike (:meth:`ftaccel.units.Unit.input_stages`): the
        WS input filters (AFD, median) and the temporal checksum's sanity-input generator on
        WS and IS (the last stage).
        """
        return units.input_stages(self)

    @property
    def filter_lead(self) -> int:
        """Cycles by which the windowed filters' operand leads the array (IS / OS; WS: 0).

        On IS and OS the input filters build their window in time (:mod:`rtl_gen.median`,
        :mod:`rtl_gen.afd`): the filtered operand (IS: the load, ``load`` and ``load_data``;
        OS: ``act_in`` and ``in_first``) enters that many cycles before the array takes it,
        the other operands do not wait (:meth:`ftaccel.units.Unit.lead_cycles`: AFD R, a
        median ``window // 2 + 1``).
        """
        return units.lead_cycles(self)

    @property
    def array_latency(self) -> int:
        """Cycles from a vector at the array's ports to its result at the array's output.

        WS / IS: ``R + NC`` (r skew registers, c operand hops and one multiply register to
        reach PE (r, c), then the deskew), NC = :attr:`array_cols`.  OS: ``R + NC + 1`` from
        the step carrying ``last`` to the first result row (the drain chain has one more
        register than a partial-sum hop); with the OS sanity row (:attr:`array_rows` = R + 1),
        which drains first and one cycle later, the first result row leaves two cycles later.
        """
        if self.dataflow is Dataflow.OS:
            return self.rows + self.array_cols + 1 + 2 * (self.array_rows - self.rows)
        return self.rows + self.array_cols

    @property
    def requant_stages(self) -> int:
        """Extra output-stage cycles of the fixed-point multiplier: 0, or :data:`REQUANT_STAGES`."""
        return REQUANT_STAGES if self.requant == "multiplier" else 0

    @property
    def output_latency(self) -> int:
        """Cycles from the array's output to the top's ports: 1, plus :attr:`requant_stages`."""
        return 1 + self.requant_stages

    @property
    def latency(self) -> int:
        """Cycles from an input vector to its output vector at the top's ports.

        :attr:`array_latency`, plus the output stage (:attr:`output_latency`: one register,
        three more with the fixed-point multiplier), plus one cycle per streamed-path input
        stage (:attr:`input_stages`): **R + C + 1** for a plain WS/IS top, **R + C + 2** for OS
        (from ``in_last`` to the first result row).  The windowed filters of IS / OS add no
        latency here: their operand leads by :attr:`filter_lead` instead.
        """
        return self.array_latency + self.output_latency + self.input_stages

    @property
    def config_cycles(self) -> int:
        """Cycles the driver spends before the first product.

        Writing the bypass map, one row per cycle, when the configuration has PE bypass
        (:meth:`ftaccel.units.Unit.prologue_cycles`).
        """
        return units.prologue_cycles(self)

    def result_vectors(self, m: int, n: int) -> int:
        """Result vectors an ``m × n`` product shows at the outputs (output-buffer rows).

        WS / OS: every row of the result in each of its N-tiles; IS: every column of it in
        each of its M-tiles (an IS output vector holds C batch rows).
        """
        if self.dataflow is Dataflow.IS:
            return n * -(-m // self.cols)
        return m * -(-n // self.cols)

    def name(self) -> str:
        """A short, file-name-safe identifier, e.g. ``ws_8x8_a8w8_acc26``.

        Every unit's part in registry order (:meth:`ftaccel.units.Unit.suffix`).
        """
        return units.name_of(self)

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable; choices as their text)."""
        return {k: (str(v) if isinstance(v, StrEnum) else v)
                for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        """The fields as indented JSON with sorted keys (stable: Verilog headers embed it)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> AcceleratorConfig:
        """A validated configuration from a dict of fields.

        Raises
        ------
        ConfigError
            ``data`` is not a dict, has an unknown key, or a value is invalid.
        """
        if not isinstance(data, dict):
            raise ConfigError("configuration", type(data).__name__, "a JSON object")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError("configuration key", key, f"one of {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> AcceleratorConfig:
        """Parse a JSON object of configuration fields; anything else is a ConfigError."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("configuration", f"not JSON ({exc.msg}, line {exc.lineno})",
                              "a JSON object of configuration fields") from None
        except RecursionError:
            raise ConfigError("configuration", "nested too deeply",
                              "a JSON object of configuration fields") from None
        except ValueError as exc:  # Python refuses integers of more than 4,300 digits
            what = ("an integer too long to read" if "digits" in str(exc)
                    else f"not usable JSON ({exc})")
            raise ConfigError("configuration", what,
                              "a JSON object of configuration fields") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> AcceleratorConfig:
        """Read a configuration file: a regular UTF-8 file of at most 1 MB holding JSON.

        Read with :func:`ftaccel.files.read_input` (never blocking on a FIFO or a device).
        """
        p = os.fspath(path)
        try:
            raw = files.read_input(p, "config file", MAX_CONFIG_BYTES)
        except files.FileProblem as exc:
            raise ConfigError("config file", p, f"a readable file (a regular file of at most "
                              f"{MAX_CONFIG_BYTES:,} bytes): {exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("config file", p, f"UTF-8 text (byte {exc.start} is not)") \
                from None
        return cls.from_json(text)

    def replace(self, **changes: Any) -> AcceleratorConfig:
        """A copy with ``changes`` applied, validated again."""
        return dataclasses.replace(self, **changes)
