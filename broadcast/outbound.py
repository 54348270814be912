"""Every request the service makes to a URL someone gave it (partner webhooks, BMKG feeds and the CAP documents
they link to) goes through this guard.

- Scheme: http or https only; no user:password@ in the URL.
- Address: the host is resolved once, every address it resolves to must be public (not loopback, private,
  link-local, multicast, unspecified, reserved or shared; an IPv4-mapped or 6to4/Teredo IPv6 address is judged by
  the IPv4 address inside), and the connection is made to that checked address (no second lookup a DNS
  rebinding could answer differently). TLS still verifies the certificate of the host name.
- Redirects: refused for webhooks; for fetches each hop is checked again like the first.
- No proxy from the environment (the connected address must be the checked one).

Hosts that are meant to be private (a local test fake, a partner on the agency's own network) are allowed
explicitly with BROADCAST_OUTBOUND_ALLOW_HOSTS: host names, IP addresses or networks (CIDR).
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

SCHEMES = frozenset({"http", "https"})
MAX_REDIRECTS = 5
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenURL(ValueError):
    """The URL or the address it leads to is not allowed; `reason` says which rule, in both languages."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unresolvable(ForbiddenURL):
    """The host name does not resolve (now)."""


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks allowed although they are not public (explicit, for test fakes and own networks)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts, networks = set(), []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(address in n for n in self.networks)


def _allow(allow: Sequence[str] | AllowList | None) -> AllowList:
    if isinstance(allow, AllowList):
        return allow
    if allow is None:
        from broadcast.settings import get_settings

        allow = get_settings().outbound_allow_hosts
    return AllowList.parse(allow)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if address in ipaddress.ip_network("::/96"):  # IPv4-compatible (deprecated), e.g. ::127.0.0.1
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a request may not go to this address (None: a public address)."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = forbidden_reason(inner)
        return f"{reason} (inside {address})" if reason else None
    for flag, name in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, flag):
            return f"{name} address {address}"
    if not address.is_global:
        return f"non-public address {address}"
    return None


def _host_and_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ForbiddenURL(f"URL tidak valid / invalid URL ({exc})") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise ForbiddenURL("URL harus http(s) / the URL must be http(s)")
    if parts.username is not None or parts.password is not None:
        raise ForbiddenURL("URL tidak boleh memuat nama/kata sandi / no user:password@ in the URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ForbiddenURL("URL tanpa nama host / the URL has no host")
    return host, port or (443 if parts.scheme.lower() == "https" else 80)


def resolve(host: str, port: int, allow: Sequence[str] | AllowList | None = None) -> list[IPAddress]:
    """The addresses `host` resolves to, once; every one must be public or allowed.

    Raises: ForbiddenURL (does not resolve, or an address is not allowed).
    """
    rules = _allow(allow)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"Host '{host}' tidak ditemukan / host does not resolve") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        reason = None if rules.allows(host, address) else forbidden_reason(address)
        if reason:
            raise ForbiddenURL(f"Alamat tujuan tidak diizinkan / destination not allowed: {host} → {reason}")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(f"Host '{host}' tidak ditemukan / host does not resolve")
    return addresses


def check_url(url: str, *, allow: Sequence[str] | AllowList | None = None, unresolvable_ok: bool = False) -> str:
    """The URL, when a request may go to it now (scheme, and every address its host resolves to). With
    `unresolvable_ok` (registering a URL for later), a name that does not resolve yet passes: every request is
    checked again when it connects.

    Raises: ForbiddenURL (Unresolvable when the host does not resolve).
    """
    host, port = _host_and_port(url)
    try:
        resolve(host, port, allow)
    except Unresolvable:
        if not unresolvable_ok:
            raise
    return url


class _GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend with the check between resolving and connecting: the socket is opened to an
    address that passed `resolve`, never to a name resolved again."""

    def __init__(self, allow: AllowList) -> None:
        self.allow = allow

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port, self.allow)
        except ForbiddenURL as exc:
            raise httpcore.ConnectError(exc.reason) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise httpcore.ConnectError(str(last))


def client(
    *, allow: Sequence[str] | AllowList | None = None, timeout_s: float = 10.0, follow_redirects: bool = False
) -> httpx.Client:
    """An httpx client whose every connection (redirects included) goes through the guard."""
    rules = _allow(allow)
    transport = httpx.HTTPTransport(retries=0)
    transport._pool._network_backend = _GuardedBackend(rules)  # httpx has no public hook for it

    def check_request(request: httpx.Request) -> None:  # each hop of a redirect too
        _host_and_port(str(request.url))

    return httpx.Client(
        transport=transport,
        timeout=timeout_s,
        trust_env=False,
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
        event_hooks={"request": [check_request]},
    )


def post(
    url: str, body: bytes, headers: dict[str, str], *, allow: Sequence[str] | AllowList | None = None
) -> httpx.Response:
    """POST through the guard; a redirect is not followed (its 3xx is the answer).

    Raises: ForbiddenURL, httpx.HTTPError.
    """
    check_url(url, allow=allow)
    with client(allow=allow) as c:
        return c.post(url, content=body, headers=headers)
