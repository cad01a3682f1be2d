"""Calls from one service to another, straight to its replicas.

Used only where an answer cannot wait for an event. The replicas are tried
in turn until one answers; the request id of the request being served goes
along, so the other service's log lines can be matched to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from services.common.errors import ServiceError
from services.common.request_log import REQUEST_ID_HEADER, request_id_var

logger = logging.getLogger(__name__)


class Unreachable(ServiceError):
    """No replica of the other service answered."""


class InternalClient:
    """JSON GETs against one service, trying each replica until one answers."""

    def __init__(self, service: str, urls: Sequence[str], *, timeout_s: float = 5.0):
        if not urls:
            raise ValueError(f"no URL for the {service} service")
        self.service = service
        self.urls = [url.rstrip("/") for url in urls]
        self._client = httpx.AsyncClient(timeout=timeout_s)

    @classmethod
    def from_setting(cls, service: str, value: str) -> InternalClient:
        """From a comma-separated list of replica URLs, as the harness passes them."""
        return cls(service, [url.strip() for url in value.split(",") if url.strip()])

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """The JSON body of a 2xx answer; Unreachable when no replica answers."""
        headers = {REQUEST_ID_HEADER: request_id_var.get()}
        errors: list[str] = []
        for url in self.urls:
            try:
                response = await self._client.get(
                    url + path, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                errors.append(f"{url}: {exc!r}")
                continue
            if response.status_code >= 500:
                errors.append(f"{url}: HTTP {response.status_code}")
                continue
            response.raise_for_status()
            return response.json()
        logger.warning("no %s replica answered %s: %s", self.service, path, errors)
        raise Unreachable(f"the {self.service} service did not answer {path}")

    async def aclose(self) -> None:
        await self._client.aclose()
