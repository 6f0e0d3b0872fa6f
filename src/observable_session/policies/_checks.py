"""Argument checks of the policy objects: typed errors that name the argument, never the value."""

from __future__ import annotations

import math

from ..errors import InvalidConfigError


def positive_number(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a float when it is a finite real number > 0 (or >= 0); else raise."""
    rule = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidConfigError(f"{name} must be a finite number {rule}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float: refused like infinity
        number = math.inf
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise InvalidConfigError(f"{name} must be a finite number {rule}")
    return number


def positive_int(name: str, value: object) -> int:
    """``value`` when it is an int >= 1 (not a bool); else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigError(f"{name} must be an int >= 1")
    return value


def ratio(name: str, value: object) -> float:
    """``value`` as a float when it is a finite number in (0, 1]; else raise."""
    number = positive_number(name, value)
    if number > 1:
        raise InvalidConfigError(f"{name} must be a finite number in (0, 1]")
    return number
