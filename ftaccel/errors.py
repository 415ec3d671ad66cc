"""The project's one error type for bad input, and the checks every layer shares.

Every invalid value a user can give (a configuration field, an operand, a unit's run-time
option, a file) is reported as one :class:`ConfigError` naming the field, the value (shown
with :func:`shown`) and what would be valid.  The command line turns it into one line on
stderr and exit status 2; the Python API raises it.  This module imports nothing else of the
project: every room may use it.
"""

from __future__ import annotations

import numbers
from enum import StrEnum
from typing import Any

__all__ = ["ConfigError", "shown", "one_line", "is_int", "check_int", "check_bool",
           "check_choice", "SHOWN_CHARS", "Terminated"]

#: Longest value text a :class:`ConfigError` shows (the ``repr``, cut with ``...``).
SHOWN_CHARS = 60


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for a one-line message.

    Cut to ``limit`` characters, every character that is not printable escaped (so a newline or a
    terminal escape never reaches the terminal raw), and an integer too long to print (Python
    refuses beyond 4,300 digits) given by its size.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        text = f"<{'negative ' if value < 0 else ''}integer of {value.bit_length()} bits>"
    else:
        try:
            text = repr(value)
        except Exception:  # too deep, or a broken __repr__: name the type
            text = f"<{type(value).__name__}>"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class ConfigError(ValueError):
    """An invalid configuration value or operand: the project's one error type for bad input.

    The message is one line, ``invalid <field> = <value>: <valid>``, the value shown with
    :func:`shown` (its ``repr``, cut to :data:`SHOWN_CHARS` characters).

    Parameters
    ----------
    field : str
        The name of the offending field (or operand, e.g. ``"A"``).
    value : object
        The value given.
    valid : str
        What would be valid, in words.
    """

    def __init__(self, field: str, value: Any, valid: str):
        self.field = field
        self.value = value
        self.valid = valid
        super().__init__(f"invalid {field} = {shown(value)}: {valid}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the command line's handler (exit 143).

    A :class:`KeyboardInterrupt`, so that every clean-up an interrupt runs (simulators
    killed, run folders and temporaries removed, Dask workers stopped) runs for it too.
    """


def one_line(text: Any, limit: int = 400) -> str:
    """The first line of ``text``, every non-printable character escaped, cut to ``limit``."""
    line = (str(text).strip().splitlines() or [""])[0]
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
    return line if len(line) <= limit else line[:limit - 3] + "..."


def is_int(value: Any, *, numpy: bool = False) -> bool:
    """True for an integer that is not a ``bool`` (``True`` is not a width).

    Parameters
    ----------
    value : object
        The value to test.
    numpy : bool
        Also accept numpy integer scalars (operands of the golden models); configuration
        fields must be Python ``int`` so that they round-trip through JSON.
    """
    if numpy:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    # a genuine Python int: not a bool, a float, a numpy scalar or an int subclass
    return type(value) is int


def check_int(name: str, value: Any, lo: int, hi: int, *, numpy: bool = False) -> int:
    """``value`` as an ``int`` if it is an integer from ``lo`` to ``hi``.

    Else :class:`ConfigError` naming ``name``.

    The one integer-parameter check of the project's components, configurations and golden
    models (``numpy=True`` also accepts numpy integer scalars, see :func:`is_int`).
    """
    if not is_int(value, numpy=numpy) or not lo <= value <= hi:
        raise ConfigError(name, value, f"an integer from {lo} to {hi}")
    return int(value)


def check_bool(name: str, value: Any) -> None:
    """Nothing if ``value`` is a genuine ``bool``; else ConfigError naming ``name``."""
    if type(value) is not bool:
        raise ConfigError(name, value, "true or false")


def _types(choice: Any) -> tuple[type, ...]:
    """The types a value equal to ``choice`` may have: its own, and ``str`` for a StrEnum."""
    return (type(choice), str) if isinstance(choice, StrEnum) else (type(choice),)


def check_choice(name: str, value: Any, choices: tuple, valid: str | None = None) -> None:
    """Nothing if ``value`` is one of ``choices`` (of the same type); else ConfigError.

    ``valid`` replaces the default wording ("one of a, b, c") of the message.
    """
    # `value in choices` alone would accept 3.0, np.int64(3) or 3+0j for 3, and a str
    # subclass; the type must match the choice's exactly (a StrEnum member's text: str).
    if not any(type(value) in _types(c) and value == c for c in choices):
        raise ConfigError(name, value, valid or f"one of {', '.join(map(str, choices))}")
