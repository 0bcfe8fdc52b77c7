"""Where the server may send a webhook: public addresses, and what ``KOLEJKA_NOTIFY_ALLOW`` names
(networks such as ``10.0.0.0/8`` or ``127.0.0.1``, and host names).

A target's host is resolved and every address it resolves to is checked: one loopback, private,
link-local, multicast or reserved address refuses the target (a name with one public and one
private address could be steered at the private one). The check runs at submission (a 400
naming the field) and again at each delivery, which connects to the address it checked, so a
name that resolves elsewhere by then (DNS rebinding) cannot steer the server inside.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class Refused(Exception):
    """The target is not one the server may call; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked address to connect to


def _allowed(address: str, host: str) -> bool:
    networks, hosts = settings.NOTIFY_ALLOW
    if host in hosts:
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip.version == network.version and ip in network for network in networks):
        return True
    return ip.is_global and not ip.is_multicast


def resolve(url: str) -> Target:
    """`url`'s host resolved and checked; `Refused` naming the address that is not allowed, or
    saying that the host does not resolve."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused(f"{url}: not a valid port") from None
    if parts.scheme not in ("http", "https") or not host:
        raise Refused(f"{url}: not an http(s) URL")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Refused(f"{host} does not resolve ({error})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        if not _allowed(address, host):
            raise Refused(
                f"{host} resolves to {address}, a loopback, private, link-local or reserved "
                "address; the server's operator may allow it (KOLEJKA_NOTIFY_ALLOW)"
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, addresses[0])
