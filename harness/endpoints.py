"""Where the running components can be reached: the stack's public face.

Endpoints are what a state file stores, what xdist workers receive, and what
the ``stack`` fixture yields. They are plain data and survive a JSON round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError


@dataclass(frozen=True)
class Endpoint:
    """The addresses of one component: every replica's ports and URLs."""

    name: str
    kind: str
    host: str
    replicas: tuple[Mapping[str, int], ...]
    urls: tuple[str, ...] = ()
    dsn: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def ports(self) -> Mapping[str, int]:
        """The named ports of the first replica."""
        return self.replicas[0]

    @property
    def port(self) -> int:
        """The first port of the first replica."""
        return next(iter(self.replicas[0].values()))

    @property
    def url(self) -> str:
        if not self.urls:
            raise ConfigError(f"component {self.name!r} ({self.kind}) has no URL")
        return self.urls[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "host": self.host,
            "replicas": [dict(ports) for ports in self.replicas],
            "urls": list(self.urls),
            "dsn": self.dsn,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoint:
        return cls(
            name=data["name"],
            kind=data["kind"],
            host=data["host"],
            replicas=tuple(
                {str(k): int(v) for k, v in ports.items()} for ports in data["replicas"]
            ),
            urls=tuple(data.get("urls", ())),
            dsn=data.get("dsn"),
            extra=dict(data.get("extra", {})),
        )


class Endpoints(Mapping[str, Endpoint]):
    """Every component's endpoint by name, plus the stack's settings."""

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._endpoints = dict(endpoints)
        self.settings: dict[str, str] = dict(settings or {})

    def __getitem__(self, name: str) -> Endpoint:
        try:
            return self._endpoints[name]
        except KeyError:
            known = ", ".join(self._endpoints) or "none"
            raise KeyError(
                f"the stack has no component {name!r} (it has: {known})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._endpoints)

    def __len__(self) -> int:
        return len(self._endpoints)

    def __repr__(self) -> str:
        return f"Endpoints({', '.join(self._endpoints)})"

    def of_kind(self, kind: str) -> list[Endpoint]:
        return [e for e in self._endpoints.values() if e.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "components": {name: e.to_json() for name, e in self._endpoints.items()},
            "settings": dict(self.settings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoints:
        components = data.get("components")
        if not isinstance(components, Mapping):
            raise ConfigError("endpoints data has no 'components' table")
        return cls(
            {name: Endpoint.from_json(e) for name, e in components.items()},
            {str(k): str(v) for k, v in data.get("settings", {}).items()},
        )
