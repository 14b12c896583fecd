"""The rules of outgoing requests: which address classes and host names a URL may reach, and the
errors and response a request gives (``adapters.outbound`` sends them)."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from deploy_agent.core.errors import DeployError
from deploy_agent.models.policy import OutboundPolicy

#: the most response body bytes read; the rest is left unread (``Response.truncated``)
MAX_BODY_BYTES = 64 * 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; the default asks the system resolver (getaddrinfo)
Resolver = Callable[[str, int], list[str]]
HostList = Literal["url_hosts", "webhook_hosts"]

_NETWORKS: dict[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = {
    "loopback": (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    "link-local": (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")),
    "private": (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("172.16.0.0/12"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("100.64.0.0/10"),
        ipaddress.ip_network("fc00::/7"),
        ipaddress.ip_network("fec0::/10"),  # deprecated site-local
    ),
}
#: the OutboundRules field that allows each address class
RULE_SETTINGS = {"loopback": "allow_loopback", "link-local": "allow_link_local", "private": "allow_private"}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: what inet_aton may read as an IPv4 address: 2852039166, 0xa9.0xfe.0xa9.0xfe, 0251.0376.0251.0376
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")


class OutboundRefused(DeployError):
    """The URL names a host or an address the policy does not allow; nothing was sent."""

    kind = "outbound_refused"


class OutboundFailed(DeployError):
    """The request went out but got no answer; ``reason`` is a short name such as ``ReadTimeout``."""

    kind = "outbound_failed"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    #: the body was longer than the byte cap; ``body`` holds its first bytes
    truncated: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


def address_class(address: Address) -> str | None:
    """Return ``loopback``, ``link-local``, ``private``, ``unspecified``, ``multicast`` or
    ``reserved`` for an address a request may not reach by default, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drops a %zone
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_class(embedded)
    for name, networks in _NETWORKS.items():
        if any(address in network for network in networks):
            return name
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def literal_address(host: str) -> Address | None:
    """Return the address a host written as an IP literal means (any spelling), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def url_host(url: str) -> str:
    """Return just the host of ``url`` (for logs), or ``<invalid URL>``."""
    try:
        return urlsplit(url).hostname or "<no host>"
    except ValueError:
        return "<invalid URL>"


@dataclass(frozen=True)
class OutboundRules:
    """The address classes and host patterns outgoing requests obey."""

    allow_loopback: bool = True
    allow_private: bool = True
    allow_link_local: bool = False
    url_hosts: tuple[str, ...] | None = None
    webhook_hosts: tuple[str, ...] | None = None

    @classmethod
    def from_policy(cls, policy: OutboundPolicy | None) -> OutboundRules:
        """The policy's rules; with no policy: anything but link-local (and the never-allowed classes)."""
        if policy is None:
            return cls()
        return cls(
            allow_loopback=policy.allow_loopback,
            allow_private=policy.allow_private,
            allow_link_local=policy.allow_link_local,
            url_hosts=None if policy.url_hosts is None else tuple(policy.url_hosts),
            webhook_hosts=None if policy.webhook_hosts is None else tuple(policy.webhook_hosts),
        )

    def allows(self, address_kind: str) -> bool:
        return (
            bool(getattr(self, RULE_SETTINGS[address_kind], False))
            if address_kind in RULE_SETTINGS
            else False
        )


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # ASCII (IDNA) name or canonical IP text
    port: int
    path: str
    authorization: str | None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
