"""Outgoing HTTP requests to URLs a message names: health probes, the traffic probe, webhooks.

One way out for all of them, so the operator's ``outbound`` policy cannot be got around:

* the host is resolved once (``getaddrinfo``) and the request is refused when ANY of its addresses
  is in a class the policy does not allow: loopback (127/8, ::1), private (10/8, 172.16/12,
  192.168/16, 100.64/10, fc00::/7) and link-local (169.254/16 with the instance metadata service
  and ECS's 169.254.170.2, fe80::/10). Unspecified, multicast, reserved and other non-global
  addresses are always refused. IPv4-mapped and NAT64/6to4 IPv6 addresses are judged by the IPv4
  address inside, and numeric spellings such as ``http://2852039166/`` are normalised first;
* the connection goes to the address that was checked (pinned: no second lookup, so DNS
  rebinding cannot switch it), while the Host header, TLS SNI and certificate check use the name;
* host names are matched against ``OutboundPolicy.url_hosts`` / ``webhook_hosts`` too;
* redirects are never followed; proxies and ``.netrc`` from the environment are ignored (plain
  ``http.client``, nothing reads the environment);
* the body is read with a byte cap (:data:`MAX_BODY_BYTES`), and one deadline covers the whole
  request (lookup, connect, TLS, headers and body): a server trickling bytes is cut at it.

With no policy, loopback and private addresses are allowed (as before) and link-local ones are not.
Error texts name the host and the rule, never the URL's path, query or user info.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from deploy_agent.adapters.deadline_socket import DeadlineSocket
from deploy_agent.adapters.outbound_rules import (
    MAX_BODY_BYTES,
    RULE_SETTINGS,
    Address,
    HostList,
    OutboundFailed,
    OutboundRefused,
    OutboundRules,
    Resolver,
    Response,
    _Target,
    address_class,
    literal_address,
    system_resolver,
)
from deploy_agent.models.policy import OutboundPolicy, matches

_lookups: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None


def _lookup_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that run name lookups (so the deadline bounds them); one pool per process,
    made anew after a fork (a prefork worker's child must not inherit the parent's threads)."""
    global _lookups
    if _lookups is None or _lookups[0] != os.getpid():
        _lookups = (os.getpid(), concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="outbound-dns"))
    return _lookups[1]


class Outbound:
    """Sends requests to URLs a message named, under the policy's ``outbound`` rules."""

    def __init__(
        self,
        policy: OutboundPolicy | OutboundRules | None = None,
        *,
        trusted_urls: Iterable[str] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        resolver: Resolver = system_resolver,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.rules = policy if isinstance(policy, OutboundRules) else OutboundRules.from_policy(policy)
        #: the operator's own URLs (the worker's webhook settings): not held to patterns or classes
        self.trusted_urls = frozenset(trusted_urls)
        self.max_body_bytes = max_body_bytes
        self._resolver = resolver
        self._tls = tls

    def precheck(self, url: str, *, hosts: HostList = "url_hosts", field: str | None = None) -> None:
        """Refuse what can be refused without a lookup: scheme, host patterns, IP-literal classes.

        For accept-time checks of a message; :meth:`request` checks all of it again after DNS.
        """
        target = self._target(url, field)
        self._check_host(target, hosts, field, url)
        literal = literal_address(target.host)
        if literal is not None and url not in self.trusted_urls:
            self._check_address(target.host, literal, field)

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout_seconds: float,
        hosts: HostList = "url_hosts",
        field: str | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and return the answer (any status). Raises ``OutboundRefused`` before
        anything is sent, ``OutboundFailed`` when no answer came before the deadline."""
        deadline = time.monotonic() + timeout_seconds
        target = self._target(url, field)
        trusted = url in self.trusted_urls
        self._check_host(target, hosts, field, url)
        addresses = self._addresses(target, deadline, field)
        if not trusted:
            for text, address in addresses:
                self._check_address(target.host, address, field, via=text != target.host)
        sock = self._connect(target, [text for text, _ in addresses], deadline, field)
        try:
            return self._exchange(sock, target, method, body, headers or {}, deadline, field)
        finally:
            sock.close()

    # -- checks --------------------------------------------------------------------------------

    def _target(self, url: str, field: str | None) -> _Target:
        try:
            parts = urlsplit(url)
            port = parts.port
            raw_host = parts.hostname
        except ValueError:
            raise OutboundRefused(_say(field, "is not a valid URL")) from None
        if parts.scheme not in ("http", "https"):
            raise OutboundRefused(_say(field, "must be an http:// or https:// URL"))
        if not raw_host:
            raise OutboundRefused(_say(field, "must name a host"))
        literal = literal_address(raw_host)
        if literal is not None:
            host = str(literal if literal.version == 4 else ipaddress.IPv6Address(int(literal)))
        else:
            try:
                host = raw_host.rstrip(".").encode("idna").decode("ascii")
            except UnicodeError:
                raise OutboundRefused(_say(field, "does not name a valid host")) from None
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        default_port = 443 if parts.scheme == "https" else 80
        return _Target(parts.scheme, host, port or default_port, path, authorization)

    def _check_host(self, target: _Target, hosts: HostList, field: str | None, url: str) -> None:
        patterns = getattr(self.rules, hosts)
        if url in self.trusted_urls or patterns is None:
            return
        if not matches(list(patterns), target.host):
            raise OutboundRefused(_say(field, f"host {target.host} is not in the policy's outbound.{hosts}"))

    def _check_address(self, host: str, address: Address, field: str | None, via: bool = False) -> None:
        kind = address_class(address)
        if kind is None or self.rules.allows(kind):
            return
        article = "an" if kind[0] in "aeiou" else "a"
        what = f"{host} resolves to {address}, {article}" if via else f"{address} is {article}"
        if kind in RULE_SETTINGS:
            why = f"which the policy does not allow (outbound.{RULE_SETTINGS[kind]})"
        else:
            why = "which is never allowed"
        raise OutboundRefused(_say(field, f"{what} {kind} address, {why}"))

    def _addresses(self, target: _Target, deadline: float, field: str | None) -> list[tuple[str, Address]]:
        literal = literal_address(target.host)
        if literal is not None:
            return [(target.host, literal)]
        lookup = _lookup_pool().submit(self._resolver, target.host, target.port)
        try:
            texts = lookup.result(timeout=max(deadline - time.monotonic(), 0.0))
        except concurrent.futures.TimeoutError:
            raise OutboundFailed(
                "ConnectTimeout", _say(field, f"looking up {target.host} timed out")
            ) from None
        except (OSError, UnicodeError) as exc:
            raise OutboundFailed(
                "ConnectionError", _say(field, f"cannot resolve {target.host} ({exc})")
            ) from None
        found: list[tuple[str, Address]] = []
        for text in texts:
            try:
                found.append((text, ipaddress.ip_address(text.split("%", 1)[0])))
            except ValueError:
                continue
        if not found:
            raise OutboundFailed("ConnectionError", _say(field, f"{target.host} has no address"))
        return found

    # -- the exchange --------------------------------------------------------------------------

    def _connect(
        self, target: _Target, addresses: list[str], deadline: float, field: str | None
    ) -> socket.socket:
        problem = "no address"
        timed_out = False
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                sock = socket.create_connection((address, target.port), timeout=remaining)
            except TimeoutError:
                timed_out, problem = True, "timed out"
                continue
            except OSError as exc:
                problem = exc.strerror or type(exc).__name__
                continue
            if target.scheme == "https":
                return self._wrap_tls(sock, target, deadline, field)
            return sock
        where = f"{target.host}:{target.port}"
        if timed_out:
            raise OutboundFailed("ConnectTimeout", _say(field, f"connecting to {where} timed out"))
        raise OutboundFailed("ConnectionError", _say(field, f"cannot connect to {where} ({problem})"))

    def _wrap_tls(
        self, sock: socket.socket, target: _Target, deadline: float, field: str | None
    ) -> socket.socket:
        context = self._tls or ssl.create_default_context()
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            return context.wrap_socket(sock, server_hostname=target.host)  # SNI + certificate for the name
        except TimeoutError:
            sock.close()
            raise OutboundFailed("ConnectTimeout", _say(field, f"TLS with {target.host} timed out")) from None
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            sock.close()
            text = getattr(exc, "reason", None) or type(exc).__name__
            raise OutboundFailed("SSLError", _say(field, f"TLS with {target.host} failed ({text})")) from None

    def _exchange(
        self,
        sock: socket.socket,
        target: _Target,
        method: str,
        body: bytes | None,
        headers: Mapping[str, str],
        deadline: float,
        field: str | None,
    ) -> Response:
        connection_class = (
            http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(target.host, target.port)
        connection.sock = sock  # already connected to the checked address: never connect() again
        sent = {"Connection": "close", "User-Agent": "deploy-agent", **headers}
        if target.authorization is not None:
            sent.setdefault("Authorization", target.authorization)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            connection.request(method, target.path, body=body, headers=sent)
            response = http.client.HTTPResponse(DeadlineSocket(sock, deadline), method=method)  # type: ignore[arg-type]
            response.begin()
            data = response.read(self.max_body_bytes + 1)
        except TimeoutError:
            raise OutboundFailed(
                "ReadTimeout", _say(field, f"no whole answer from {target.host} in time")
            ) from None
        except (http.client.HTTPException, ValueError) as exc:
            raise OutboundFailed(
                "ProtocolError", _say(field, f"bad answer from {target.host} ({type(exc).__name__})")
            ) from None
        except OSError as exc:
            raise OutboundFailed(
                "ConnectionError",
                _say(field, f"connection to {target.host} failed ({exc.strerror or type(exc).__name__})"),
            ) from None
        truncated = len(data) > self.max_body_bytes
        return Response(
            status=response.status,
            body=data[: self.max_body_bytes],
            truncated=truncated,
            headers={k.lower(): v for k, v in response.getheaders()},
        )


def _say(field: str | None, problem: str) -> str:
    return f"{field}: {problem}" if field else problem
