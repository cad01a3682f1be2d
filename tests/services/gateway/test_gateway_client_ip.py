"""The client address a per-IP limit keys on, behind trusted proxies or not."""

from __future__ import annotations

import pytest

from services.gateway.client_ip import ClientAddresses, parse_address, parse_networks
from services.gateway.errors import ConfigError

PROXIES = parse_networks("10.0.0.0/8, 2001:db8:ffff::/48, 192.0.2.1")


def test_client_key_is_the_peer_without_trusted_proxies() -> None:
    clients = ClientAddresses()

    assert clients.key("203.0.113.7", [b"198.51.100.1"]) == "ip:203.0.113.7"
    assert clients.key(None) == "ip:unknown"


def test_client_key_ignores_forwarded_for_from_an_untrusted_peer() -> None:
    clients = ClientAddresses(PROXIES)

    assert clients.key("203.0.113.7", [b"198.51.100.1"]) == "ip:203.0.113.7"


def test_client_key_takes_the_right_most_untrusted_hop() -> None:
    clients = ClientAddresses(PROXIES)

    # The client forged the first entry; our proxies appended the rest.
    key = clients.key("10.0.0.5", [b"1.1.1.1, 203.0.113.9", b"10.1.2.3"])

    assert key == "ip:203.0.113.9"


def test_client_key_takes_the_left_most_hop_when_every_hop_is_trusted() -> None:
    clients = ClientAddresses(PROXIES)

    assert clients.key("10.0.0.5", [b"10.9.9.9, 192.0.2.1"]) == "ip:10.9.9.9"


def test_client_key_stops_at_an_entry_that_is_not_an_address() -> None:
    clients = ClientAddresses(PROXIES)

    assert clients.key("10.0.0.5", [b"203.0.113.9, unknown"]) == "ip:10.0.0.5"


def test_client_key_of_trusted_peer_without_forwarded_for_is_the_peer() -> None:
    assert ClientAddresses(PROXIES).key("10.0.0.5") == "ip:10.0.0.5"


def test_client_key_groups_ipv6_by_64() -> None:
    clients = ClientAddresses(PROXIES)

    first = clients.key("2001:db8:1:2::5")
    second = clients.key("2001:db8:1:2:ffff:ffff:ffff:1")
    other = clients.key("2001:db8:1:3::5")
    behind_proxy = clients.key("2001:db8:ffff:1::1", [b"[2001:db8:1:2::9]:443"])

    assert first == second == behind_proxy == "ip6:2001:db8:1:2::/64"
    assert other == "ip6:2001:db8:1:3::/64"


def test_client_key_reads_ipv4_mapped_ipv6_as_ipv4() -> None:
    assert ClientAddresses(PROXIES).key("::ffff:203.0.113.7") == "ip:203.0.113.7"


def test_client_key_of_unparseable_peer_is_unknown() -> None:
    assert ClientAddresses(PROXIES).key("not-an-address") == "ip:unknown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("203.0.113.7:8080", "203.0.113.7"), ("[::1]:80", "::1"), ("[::1", None),
     (" 2001:db8::1 ", "2001:db8::1"), ("", None), ("x", None)],
)  # fmt: skip
def test_parse_address_accepts_forwarded_for_forms(
    text: str, expected: str | None
) -> None:
    parsed = parse_address(text)

    assert (str(parsed) if parsed else None) == expected


def test_trusts_only_peers_in_the_trusted_networks() -> None:
    clients = ClientAddresses(PROXIES)

    assert clients.trusts("10.2.3.4")
    assert not clients.trusts("11.2.3.4")
    assert not clients.trusts("garbage")
    assert not ClientAddresses().trusts("10.2.3.4")


def test_parse_networks_names_the_bad_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_networks("10.0.0.0/8, 10.0.0.0/33")

    assert str(caught.value) == (
        "GATEWAY_TRUSTED_PROXIES has '10.0.0.0/33', which is not an address or CIDR "
        "like 10.0.0.0/8 or fd00::/8"
    )
