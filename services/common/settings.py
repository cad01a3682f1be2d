"""Reading a service's settings from its environment; errors name the variable."""

from __future__ import annotations

import math
from collections.abc import Mapping

from services.common.errors import ConfigError


def require(env: Mapping[str, str], name: str, service: str) -> str:
    """The value of ``name``; a ConfigError naming it when it is unset or empty."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set; the {service} service needs it")
    return value


def number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    maximum: float | None = None,
    integer: bool = False,
) -> float:
    """A positive number of seconds from ``name``, or ``default`` when it is unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = "a whole number of seconds" if integer else "a number of seconds"
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={raw!r} must be more than 0")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={raw!r} is over the maximum of {maximum:g}")
    return value
