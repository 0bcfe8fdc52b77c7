"""Parsers and formatters for the scalar values of the task format: sizes, durations, counts, flags.

Sizes and durations accept what the original kolejka accepted (``64M``, ``1G``, ``512k``, ``1s``,
``500ms``, ``2M`` = two minutes, ``1H``) plus unambiguous spellings (``MiB``, ``GiB``, ``min``).
Memory multiples are binary: ``k``/``K``/``kB``/``KiB`` are all 1024 bytes, as in the original.
A lower-case ``m`` after a duration means milliseconds and an upper-case ``M`` minutes, as in the
original; write ``ms`` or ``min`` to leave no doubt.

Every parser takes the dotted field name so that its error names the field and the value.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from .errors import SpecError

# Values are stored in signed 64-bit columns on the server; anything larger is a mistake.
MAX_INT = 2**63 - 1

# The exponent is bounded so that exact arithmetic on "1e999999999" cannot exhaust the server.
_NUMBER = re.compile(
    r"^\s*([+-]?(?:\d{1,30}\.?\d{0,30}|\.\d{1,30})(?:[eE][+-]?\d{1,3})?)"  # the number
    r"\s*([^\s\d.+-]*)\s*$"  # the unit
)

_BINARY = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}

_MEMORY_UNITS: dict[str, int] = {"": 1, "b": 1, "B": 1}
for _prefix, _factor in _BINARY.items():
    if _prefix:
        for _spelling in (_prefix, _prefix.upper()):
            _MEMORY_UNITS[_spelling] = _factor
            _MEMORY_UNITS[_spelling + "b"] = _factor
            _MEMORY_UNITS[_spelling + "B"] = _factor
            _MEMORY_UNITS[_spelling + "iB"] = _factor
            _MEMORY_UNITS[_spelling + "ib"] = _factor

_TIME_UNITS: dict[str, float] = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "m": 1e-3,
    "ms": 1e-3,
    "µ": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "us": 1e-6,
    "n": 1e-9,
    "ns": 1e-9,
    "M": 60.0,
    "min": 60.0,
    "H": 3600.0,
    "h": 3600.0,
    "D": 86400.0,
    "d": 86400.0,
}

_MEMORY_FORMAT = (("P", 1024**5), ("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024))


def _split(value: str, field: str, kind: str) -> tuple[Fraction, str]:
    match = _NUMBER.match(value)
    if match is None:
        raise SpecError(field, value, f"is not a {kind}")
    # Exact arithmetic: a float would round sizes above 2**53 bytes.
    return Fraction(match.group(1)), match.group(2)


def _check_minimum(number: float | Fraction, minimum: float, field: str, value: object) -> None:
    if number < minimum:
        if number < 0:
            raise SpecError(field, value, "must not be negative")
        raise SpecError(field, value, f"must be at least {minimum:g}")


def parse_memory(value: object, field: str, *, minimum: int = 0) -> int:
    """Return `value` (bytes as a number, or a string like ``64M``) as a number of bytes."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(field, value, "must be a size such as 64M, 1G or a number of bytes")
    if isinstance(value, str):
        text, unit = _split(value, field, "size")
        factor = _MEMORY_UNITS.get(unit)
        if factor is None:
            raise SpecError(field, value, f"unknown size unit {unit!r}; use B, K, M, G, T or P")
        number: Fraction | int | float = text * factor
    else:
        number = value
        if isinstance(number, float) and not math.isfinite(number):
            raise SpecError(field, value, "is not a finite size")
    _check_minimum(number, minimum, field, value)
    result = round(number)
    if result > MAX_INT:
        raise SpecError(field, value, "is too large")
    return result


def parse_time(value: object, field: str, *, positive: bool = False) -> float:
    """Return `value` (seconds as a number, or a string like ``1s``, ``500ms``) in seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(field, value, "must be a duration such as 1s, 500ms or a number of seconds")
    if isinstance(value, str):
        text, unit = _split(value, field, "duration")
        factor = _TIME_UNITS.get(unit)
        if factor is None:
            raise SpecError(
                field, value, f"unknown time unit {unit!r}; use ms, s, min (or M), H or D"
            )
        try:
            number = float(text) * factor
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise SpecError(field, value, "is too large")
    else:
        number = float(value)
        if not math.isfinite(number):
            raise SpecError(field, value, "is not a finite duration")
    _check_minimum(number, 0, field, value)
    if positive and number == 0:
        raise SpecError(field, value, "must be greater than zero")
    return number


def parse_int(value: object, field: str, *, minimum: int = 0) -> int:
    """Return `value` (a whole JSON number or a string of digits, as ``"16"``) as an int."""
    if isinstance(value, bool):
        raise SpecError(field, value, "must be a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        number = int(value)
    else:
        raise SpecError(field, value, "must be a whole number")
    _check_minimum(number, minimum, field, value)
    if number > MAX_INT:
        raise SpecError(field, value, "is too large")
    return number


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(value: object, field: str) -> bool:
    """Return `value` (a JSON boolean, 0/1, or true/false/yes/no as a string) as a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise SpecError(field, value, "must be true or false")


def parse_str(value: object, field: str) -> str:
    """Return `value` if it is a string."""
    if not isinstance(value, str):
        raise SpecError(field, value, "must be a string")
    return value


def format_memory(size: int) -> str:
    """Return `size` bytes in the largest binary unit that holds it exactly (``64M``)."""
    for unit, factor in _MEMORY_FORMAT:
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def format_time(seconds: float) -> str:
    """Return `seconds` as a duration string that parses back to the same float (``1.5s``)."""
    if float(seconds).is_integer() and abs(seconds) < 2**53:
        return f"{int(seconds)}s"
    return f"{float(seconds)!r}s"
