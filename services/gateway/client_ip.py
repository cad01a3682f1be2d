"""Who the client is, by address, for per-IP limits.

The peer of the TCP connection is the client, unless it is a trusted proxy
(GATEWAY_TRUSTED_PROXIES, a list of CIDRs). Then ``X-Forwarded-For`` is
read from the right, hop by hop: each address was written by the hop after
it, so it is believed only while that hop is trusted, and the first address
written by a trusted hop that is not itself trusted is the client. Anything
to its left could have been sent by the client and is ignored. An entry that
is not an address ends the walk at the last hop that could be believed.

IPv6 clients are keyed by their /64: one host usually holds a whole /64 and
can pick a new address in it for every request. IPv4-mapped IPv6 addresses
count as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from services.gateway.errors import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TRUSTED_PROXIES_VARIABLE = "GATEWAY_TRUSTED_PROXIES"


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (GATEWAY_TRUSTED_PROXIES); an address is a /32 or /128."""
    networks: list[Network] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"{TRUSTED_PROXIES_VARIABLE} has {part!r}, which is not an address "
                "or CIDR like 10.0.0.0/8 or fd00::/8"
            ) from exc
    return tuple(networks)


class ClientAddresses:
    """Derives the rate-limit key of a request's client from its peer and headers."""

    def __init__(self, trusted: Sequence[Network] = ()) -> None:
        self.trusted = tuple(trusted)

    def key(self, peer: str | None, forwarded_for: Iterable[bytes] = ()) -> str:
        """``ip:203.0.113.7`` or ``ip6:2001:db8:1:2::/64``."""
        if not self.trusted and peer is not None and ":" not in peer:
            return "ip:" + peer  # the common case needs no parsing
        address = parse_address(peer or "")
        if address is None:
            return "ip:unknown"
        if self.trusted and self._is_trusted(address):
            address = self._walk(address, forwarded_for)
        return _key(address)

    def trusts(self, peer: str) -> bool:
        """Whether ``peer`` is a trusted proxy (whose X-Forwarded-For counts)."""
        address = parse_address(peer) if self.trusted else None
        return address is not None and self._is_trusted(address)

    def _walk(self, address: Address, forwarded_for: Iterable[bytes]) -> Address:
        hops = [
            hop.strip().decode("latin-1")
            for header in forwarded_for
            for hop in header.split(b",")
        ]
        for hop in reversed(hops):
            if not self._is_trusted(address):
                break
            parsed = parse_address(hop)
            if parsed is None:
                break
            address = parsed
        return address

    def _is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self.trusted)


def parse_address(text: str) -> Address | None:
    """An address as X-Forwarded-For writes it (maybe with a port); None if not one."""
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv4Address):
        return f"ip:{address}"
    network = ipaddress.IPv6Network((int(address) >> 64 << 64, 64))
    return f"ip6:{network}"
