"""What a unit descriptor is: its configuration fields, run-time options and everything derived.

A *unit* is one block of the accelerator that a configuration can build or leave out (the
array itself, the output stage, each reliability unit).  Its descriptor, a :class:`Unit`
subclass in a module of :mod:`ftaccel.units`, says once:

* its **configuration fields** (:class:`Field`: name, type, default, documentation, the
  command-line option that sets it), from which :class:`ftaccel.config.AcceleratorConfig`
  gets its dataclass fields and ``rtlgen`` its configuration options;
* its **validation** (:meth:`Unit.check`: the fields against each other and the rest of the
  configuration) and its part of the configuration's **name** (:meth:`Unit.suffix`);
* its **run-time options** (:attr:`Unit.options`, a :class:`UnitOptions` subclass: one typed,
  validated object used by the command line, :mod:`tb.product`, the driver program and the
  engines alike), with the command-line flags that set them (:class:`RunFlag`);
* the **fault sites** it adds to a PE, the **campaign protection** it is (:attr:`Unit.protection`)
  and the **area-flow pattern** that attributes its synthesised modules (:attr:`Unit.area`);
* the **golden module** (:attr:`Unit.golden`) whose uniform functions the engines call: the
  functions a golden unit module may define are listed in :mod:`ftaccel.golden.units`.

Nothing here imports a room: descriptors are plain data and checks, so the core stays the
floor every room may stand on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ftaccel.errors import ConfigError

__all__ = ["Field", "RunFlag", "Unit", "UnitOptions"]


@dataclass(frozen=True)
class Field:
    """One configuration field and the ``rtlgen`` option that sets it.

    Parameters
    ----------
    name : str
        The dataclass field (and JSON key) of :class:`ftaccel.config.AcceleratorConfig`.
    type : str
        Its annotation, e.g. ``"int"``, ``"bool"``, ``"str"``, ``"int | None"``.
    default : object
        The default value (immutable).
    doc : str
        What it means, for the configuration's documentation (numpydoc prose).
    help : str
        The command-line help of its option.
    kind : str
        How the option takes its value: ``"int"`` (an integer argument), ``"text"`` (a word),
        ``"on"`` (a flag that sets ``True``), ``"off"`` (a flag that sets ``False``).
    flag : str or None
        The option; default ``--`` and the name with dashes (``--lcu-depth``).
    enum : type or None
        A :class:`enum.StrEnum` the configuration converts the checked text into.
    """

    name: str
    type: str
    default: Any
    doc: str
    help: str
    kind: str = "int"
    flag: str | None = None
    enum: type | None = None

    @property
    def option(self) -> str:
        """The command-line option, e.g. ``--lcu-depth`` or ``--no-output-stage``."""
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class RunFlag:
    """A command-line flag of a unit's run-time options.

    Parameters
    ----------
    flag : str
        The option, e.g. ``--afd-shift``.
    kind : str
        ``"int"``, ``"text"`` (a word, ``choices`` if given), ``"on"`` (a flag), ``"npy"`` (a
        ``.npy`` file read as an array), ``"columns"`` (``1,3,4``), ``"ints"`` (``3,5`` or
        ``3,5,1``), ``"pairs"`` (``1:4,3:5``), ``"triples"`` (``0:4:5``: three different
        columns).
    help : str
        Its command-line help.
    per_product : bool
        Only for one product (``rtlgen matmul``: it names output columns or rows of that
        product); ``False``: also for a whole network (``rtlgen infer``).
    choices : tuple or None
        The words a ``"text"`` flag accepts.
    """

    flag: str
    kind: str
    help: str
    per_product: bool = False
    choices: tuple | None = None

    @property
    def dest(self) -> str:
        """The argparse destination: the flag without dashes, ``_`` for ``-``."""
        return self.flag.lstrip("-").replace("-", "_")


class UnitOptions:
    """Base of a unit's run-time options: a frozen dataclass per unit, validated once.

    A subclass lists :attr:`keywords`, the names under which its values travel in a *units*
    mapping (the keyword arguments of :func:`golden.schedule.build_program` and
    :attr:`golden.network.LayerOptions.units`), and implements :meth:`from_keywords`,
    :meth:`to_keywords`, :meth:`check` and, with command-line flags, :meth:`from_flags`.
    """

    #: The unit (descriptor name) these options belong to.
    unit: ClassVar[str] = ""
    #: Keys of a units mapping that belong to this unit.
    keywords: ClassVar[tuple[str, ...]] = ()
    #: Command-line flags (``rtlgen matmul``; ``infer`` for those not ``per_product``).
    flags: ClassVar[tuple[RunFlag, ...]] = ()
    #: The unit's controls are always programmed: without options given, a configuration
    #: that builds the unit runs it with the defaults (and a product's record lists them).
    always: ClassVar[bool] = False

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> UnitOptions:
        """The options from this unit's keys of a units mapping (absent keys: defaults)."""
        raise NotImplementedError

    def to_keywords(self) -> dict[str, Any]:
        """The options as keys of a units mapping (only those that were given)."""
        raise NotImplementedError

    @classmethod
    def from_flags(cls, values: Mapping[str, Any], n: int | None = None) -> UnitOptions | None:
        """The options from parsed command-line values by :attr:`RunFlag.dest`, or None.

        None when no flag of this unit was given.  ``values`` hold the parsed values
        (integers, words, arrays, column lists), never raw text; ``n`` is the number of
        output columns of the product (None for a network).
        """
        return None

    def check(self, cfg, *, m: int | None = None, n: int | None = None) -> None:
        """Raise :class:`ConfigError` for an option ``cfg`` cannot honour.

        ``m`` / ``n`` are the product's result rows and columns when the options are checked
        for one product (column and row numbers are then range-checked), else None.
        """

    def summary(self) -> dict[str, Any]:
        """The given options as JSON values (``rtlgen matmul --json``)."""
        return self.to_keywords()

    def off(self) -> UnitOptions | None:
        """These options with the unit switched off at run time; None if it cannot be."""
        return None

    def replace(self, **changes: Any) -> UnitOptions:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


class Unit:
    """A unit's descriptor; subclasses set the class attributes and override the methods.

    Attributes
    ----------
    name : str
        The unit's name: the same in the RTL submodule and port group, the golden module and
        the area report (``afd``, ``lcu``, ...).
    title : str
        What it is, in a few words, and its source ("Ozen 2023 §8.4").
    fields : tuple of Field
        Its configuration fields.
    switch : str or None
        The field that builds it (``afd``, ``checksum``); None for a unit always built.
    options : type or None
        Its :class:`UnitOptions` subclass, if it has run-time options.
    protection : str or None
        The campaign protection kind it is (``"sanity"`` for the checksums).
    protection_keys : tuple of str
        The keys a campaign protection entry of that kind may give the unit
        (:meth:`protection_spec` refuses others).
    area : str or None
        Regular expression (full match, case-insensitive) of the module-name components whose
        synthesised area is this unit's.
    golden : str or None
        The module of :mod:`ftaccel.golden` that models it (see :mod:`ftaccel.golden.units`).
    flow_top : bool
        Built into the flow-controlling top too (else refused with ``flow``).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()
    switch: ClassVar[str | None] = None
    options: ClassVar[type[UnitOptions] | None] = None
    protection: ClassVar[str | None] = None
    protection_keys: ClassVar[tuple[str, ...]] = ()
    area: ClassVar[str | None] = None
    golden: ClassVar[str | None] = None
    flow_top: ClassVar[bool] = False

    def built(self, cfg) -> bool:
        """Whether ``cfg`` builds this unit (its switch field is on)."""
        if self.switch is None:
            return True
        value = getattr(cfg, self.switch)
        return value not in (False, 0, "none", None)

    def check(self, cfg) -> None:
        """Raise :class:`ConfigError` naming the first invalid field of this unit."""

    def check_product(self, cfg, m: int, n: int) -> None:
        """ConfigError if ``cfg`` cannot run an ``m``-row, ``n``-column product (e.g. a buffer)."""

    def suffix(self, cfg) -> str:
        """The unit's part of :meth:`ftaccel.config.AcceleratorConfig.name` (``""``: none)."""
        return ""

    def input_stages(self, cfg) -> int:
        """Pipeline stages this unit adds in front of the array (input units: one)."""
        return 0

    def lead_cycles(self, cfg) -> int:
        """Cycles a windowed input unit (IS / OS) makes its operand lead the array (0: none)."""
        return 0

    def prologue_cycles(self, cfg) -> int:
        """Cycles the driver spends on this unit before the first product (bypass map)."""
        return 0

    def area_patterns(self) -> tuple[tuple[str, str], ...]:
        """``(unit, pattern)`` pairs of the area flow: ``(name, area)`` when :attr:`area`."""
        return ((self.name, self.area),) if self.area else ()

    def off_text(self) -> str:
        """How the switch field reads when the unit is not built: ``off`` or ``'none'``."""
        default = next(f.default for f in self.fields if f.name == self.switch)
        return "'none'" if isinstance(default, str) else "off"

    def protection_spec(self, spec: Mapping[str, Any], cfg) -> tuple[dict, dict]:
        """``(configuration changes, run-time keywords)`` of a campaign protection entry.

        ``spec`` holds the entry's keys (without ``kind``, ``name`` and ``layers``); every
        value is checked with the same :class:`ConfigError` the command line and the API
        give for it.  Only units with a :attr:`protection`.
        """
        raise NotImplementedError(f"unit {self.name} is not a campaign protection")

    def __repr__(self) -> str:
        """``<unit afd>``."""
        return f"<unit {self.name}>"


def check_keys(spec: Mapping[str, Any], known: tuple[str, ...], what: str) -> None:
    """ConfigError for a key of ``spec`` that is not in ``known`` (``what`` names the table)."""
    for key in spec:
        if key not in known:
            raise ConfigError(f"{what} key", key, f"one of {', '.join(known)}"
                              if known else "none (this protection has no keys)")
