"""Forwarding one request to a replica of a service, over a pooled aiohttp session."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

from services.gateway.errors import BadGateway, GatewayTimeout, Unavailable
from services.gateway.headers import response_headers
from services.gateway.upstreams import Upstream

# Headers aiohttp would add on its own; a client that did not send them
# must not get them added on its behalf (Accept-Encoding especially: bodies
# pass through undecoded).
_NOT_ADDED = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def open_session(
    *, timeout_s: float, connect_timeout_s: float
) -> aiohttp.ClientSession:
    """The one client session a gateway process uses for every upstream call."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=256, keepalive_timeout=30, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s),
        auto_decompress=False,
        skip_auto_headers=_NOT_ADDED,
        # Cookies set by a service for one client must never ride along with
        # the next client's request.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def forward(
    session: aiohttp.ClientSession,
    upstream: Upstream,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> tuple[Response, str]:
    """Send the request to the next healthy replica; returns its answer and URL.

    ``target`` is the raw path and query. A replica that refuses the
    connection has not seen the request, so the next one is tried, whatever
    the method.
    """
    for _ in range(len(upstream.replicas)):
        replica = upstream.pick()
        if replica is None:
            break
        url = URL(replica.url + target, encoded=True)
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
                kept = response_headers(answer.raw_headers)
                return Response(answer.status, kept, content), replica.url
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            upstream.mark_down(replica, str(exc) or type(exc).__name__)
        except TimeoutError as exc:
            raise GatewayTimeout(
                f"service {upstream.service!r} did not answer within "
                f"{session.timeout.total}s",
                upstream=replica.url,
            ) from exc
        except aiohttp.ClientError as exc:
            raise BadGateway(
                f"service {upstream.service!r} failed to answer: {type(exc).__name__}",
                upstream=replica.url,
            ) from exc
    raise Unavailable(
        f"no healthy replica of service {upstream.service!r}; "
        f"{len(upstream.replicas)} replica(s) refused connections",
        headers=(("retry-after", str(max(1, round(upstream.cooldown_s)))),),
    )
