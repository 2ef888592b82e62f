"""Which peers may tell us who the client is: the `[web] trusted_proxies` rule.

Behind an HTTPS proxy every request comes from the proxy, which names the real client
in `X-Forwarded-For` and the scheme it was reached by in `X-Forwarded-Proto`. Anyone can
send those headers, so they count only when the peer that sent them is listed in
`[web] trusted_proxies` (IP addresses or CIDR networks; empty by default: trust nobody).
uvicorn's own proxy handling is switched off (`newsletter serve`), so this is the one
place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Each value as a network (a bare address is a network of one); ValueError naming
    the first value that is neither an IP address nor a CIDR network."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or CIDR network (e.g. \"10.0.0.1\" or \"10.0.0.0/8\")"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    def trusts(self, host: str | None) -> bool:
        address = _address(host)
        return address is not None and any(address in network for network in self.networks)

    def client_ip(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        """The client's address: the peer itself unless it is a trusted proxy; then the
        nearest address in X-Forwarded-For that is not a trusted proxy, read right to left
        (each proxy appends the address it got the request from). A malformed entry ends
        the walk: the last trusted hop is the best we know."""
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        client = peer
        for hop in reversed(hops):
            if not self.trusts(client):
                break
            if _address(hop) is None:
                break
            client = hop
        return client

    def scheme(self, peer: str | None, forwarded_proto: str | None, scheme: str) -> str:
        """The scheme the client used: X-Forwarded-Proto when a trusted proxy sent it."""
        if forwarded_proto is None or not self.trusts(peer):
            return scheme
        proto = forwarded_proto.split(",")[0].strip().lower()
        return proto if proto in ("http", "https") else scheme


def _address(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host) if host else None
    except ValueError:
        return None
