"""Argument validators shared by every package: one rule for each kind of value.

The Python-level checks raise :class:`ValueError` (or :class:`TypeError`) naming the
argument; the ``*_option`` functions are ``coerce`` functions for
:class:`twisted.python.usage.Options`, where a :class:`ValueError` becomes a usage
error naming the option.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

_Coerce = TypeVar("_Coerce", bound=Callable[[str], object])


def check_count(name: str, value: int | None, *, minimum: int = 0, unit: str = "") -> None:
    """Check that ``value`` is an ``int`` (not a ``bool``) of at least ``minimum``.

    :param name: the argument's name, for the message.
    :param value: the value given; ``None`` is accepted (an optional argument).
    :param minimum: the smallest value accepted: 0 or 1.
    :param unit: what the number counts, for the message (``" of bytes"``).
    :raises ValueError: when it is not such an int.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "positive" if minimum >= 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} int{unit}, not {value!r}")


def check_seconds(
    name: str, value: float | None, *, positive: bool = True, optional: bool = True
) -> float | None:
    """Check a duration in seconds: a finite number, positive (or 0 when allowed).

    :param name: the argument's name, for the message.
    :param value: the value given.
    :param positive: refuse 0 as well as negative numbers.
    :param optional: accept ``None`` (meaning "off").
    :returns: the duration as a float, or ``None``.
    :raises ValueError: for anything else (NaN, infinity, a bool, a string...).
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(
            f"{name} must be {'positive' if positive else 'non-negative'}, got {value}"
        )
    return float(value)


def check_url(url: str) -> str:
    """Check that ``url`` is an absolute ``http`` or ``https`` URL.

    :param url: the URL.
    :returns: the URL, unchanged.
    :raises ValueError: when it is not one.
    :raises TypeError: when it is not a ``str``.
    """
    if not isinstance(url, str):
        raise TypeError(f"the URL must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise ValueError(f"invalid event stream URL {url!r}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid event stream URL {url!r}: need an absolute http(s) URL")
    if any(c in url for c in " \r\n\t"):
        raise ValueError(f"invalid event stream URL {url!r}: it contains whitespace")
    if not url.isascii():
        raise ValueError(
            f"invalid event stream URL {url!r}: percent-encode non-ASCII characters "
            "(and write international host names in punycode)"
        )
    return url


def coerce_doc(coerce: _Coerce, doc: str) -> _Coerce:
    """Give a ``coerce`` function the help text ``twisted.python.usage`` shows for it.

    :param coerce: a function an option's ``coerce`` names.
    :param doc: the sentence shown after the option's help (usage reads it
        from the function's ``coerceDoc`` attribute).
    :returns: ``coerce`` itself.
    """
    coerce.__dict__["coerceDoc"] = doc
    return coerce


def seconds_option(value: str) -> float:
    """``coerce`` for a command-line duration: a finite number of seconds, 0 or more.

    :param value: the text given on the command line.
    :returns: the number of seconds.
    :raises ValueError: when it is not one.
    """
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} must be a finite number of seconds, 0 or more")
    return seconds


coerce_doc(seconds_option, "Seconds, 0 or more.")


def positive_int_option(value: str) -> int:
    """``coerce`` for a command-line count: a whole number, 1 or more.

    :param value: the text given on the command line.
    :returns: the number.
    :raises ValueError: when it is not one.
    """
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise ValueError(f"must be a positive integer, not {value}")
    return number


coerce_doc(positive_int_option, "A positive integer.")


__all__ = [
    "check_count",
    "check_seconds",
    "check_url",
    "coerce_doc",
    "positive_int_option",
    "seconds_option",
]
