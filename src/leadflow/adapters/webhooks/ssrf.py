"""Where a webhook may go: http(s) URLs whose host resolves only to public addresses.

Private, loopback, link-local, multicast, reserved and unspecified addresses (IPv4 and IPv6,
IPv4-mapped and NAT64/6to4-embedded IPv4 included) are refused unless the configuration
allows private targets. The host is resolved at config load and again before every send,
since DNS can change, and the send connects to an address that this check approved.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
SCHEMES = ("http", "https")


class Unresolved(ValueError):
    """The host does not resolve (now): worth another try later, unlike a refusal."""


def refusal(address: Address) -> str | None:
    """Why an address may not be called, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = refusal(embedded)
            return f"{reason} (inside {address})" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally reachable", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            article = "an" if name[0] in "aeiou" else "a"
            return f"{address} is {article} {name} address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (empty when it does not resolve)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in found})


def split_target(url: str) -> tuple[str, int]:
    """The host and port of a webhook URL; ValueError for another scheme or no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(f"{url!r}: only http and https URLs are allowed")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if parts.username or parts.password:
        raise ValueError(f"{url!r}: credentials in the URL are not allowed; sign with the secret")
    return parts.hostname, port or (443 if parts.scheme.lower() == "https" else 80)


def check_target(
    url: str,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    unresolved_ok: bool = False,
) -> list[str]:
    """The addresses the URL's host resolves to, the ones a request may connect to;
    ValueError when it may not be called (Unresolved when its host does not resolve). With
    ``allow_private`` any address is let through.

    ``unresolved_ok`` accepts a host that does not resolve now (config load: DNS may come
    back before the first send, which checks again)."""
    host, port = split_target(url)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else resolver(host, port)
    if not addresses:
        if unresolved_ok:
            return []
        raise Unresolved(f"{host!r} does not resolve")
    if allow_private:
        return addresses
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text))
        if reason:
            where = "" if literal is not None else f"{host!r} resolves to {text}: "
            raise ValueError(f"{where}{reason}; set webhooks.allow_private_targets to allow it")
    return addresses


def check_configured_target(url: str, allow_private: bool) -> None:
    """The check at config load: the URL's form always; its addresses unless private targets
    are allowed, accepting a host that does not resolve yet (each send checks again)."""
    if allow_private:
        split_target(url)
    else:
        check_target(url, allow_private, unresolved_ok=True)
