"""Placeholders in a component's command, environment and setup steps.

Own replica:  {host} {port} {port.NAME} {replica} {workdir} {python}
Any component: {NAME.url} {NAME.urls} {NAME.dsn} {NAME.host} {NAME.port}
               {NAME.port.PORT} {NAME.EXTRA}   (urls are joined with commas)
(Naming a component does not wait for it: ``depends_on`` orders the start.)
Stack settings: {settings.KEY}
Write ``{{`` and ``}}`` for literal braces.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from harness.endpoints import Endpoint
from harness.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True)
class Context:
    """What a template of one replica of one component may refer to."""

    component: str
    host: str
    ports: Mapping[str, int]
    replica: int
    workdir: str
    endpoints: Mapping[str, Endpoint]
    settings: Mapping[str, str]


def render(template: str, context: Context, *, key: str) -> str:
    """Fill every placeholder; an unknown one is a ConfigError naming ``key``."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        return _lookup(match.group(1).strip(), context, key)

    return _PLACEHOLDER.sub(replace, template)


def _lookup(name: str, context: Context, key: str) -> str:
    own: dict[str, str] = {
        "host": context.host,
        "replica": str(context.replica),
        "workdir": context.workdir,
        "python": sys.executable,
    }
    if context.ports:
        own["port"] = str(next(iter(context.ports.values())))
    own.update({f"port.{n}": str(p) for n, p in context.ports.items()})
    own.update({f"settings.{k}": v for k, v in context.settings.items()})
    if name in own:
        return own[name]
    target, _, attribute = name.partition(".")
    endpoint = context.endpoints.get(target)
    value = _attribute(endpoint, attribute) if endpoint else None
    if value is None:
        if endpoint is None and target not in ("settings", "port"):
            hint = f"{target!r} is not a component of the stack"
        else:
            hint = "see the list of placeholders in harness.templates"
        raise ConfigError(f"{key}: unknown placeholder {{{name}}}: {hint}")
    return value


def _attribute(endpoint: Endpoint, attribute: str) -> str | None:
    if attribute == "url" and endpoint.urls:
        return endpoint.url
    if attribute == "urls" and endpoint.urls:
        return ",".join(endpoint.urls)
    if attribute == "dsn":
        return endpoint.dsn
    if attribute == "host":
        return endpoint.host
    if attribute == "port":
        return str(endpoint.port)
    if attribute.startswith("port."):
        port = endpoint.ports.get(attribute.removeprefix("port."))
        return None if port is None else str(port)
    return endpoint.extra.get(attribute)
