"""``LIGHTBOX_DIMSE_PEERS``: which calling AE titles may connect, from where, and as which user.

One entry is ``AE@address:user`` (``CT1@10.0.0.5:radiology``), entries are comma-separated. The AE
title follows PS3.5 6.2 (AE VR: at most 16 characters, no backslash or control characters, blanks
not significant); the address is an IP address (or ``localhost``) the association must come from.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

AE_TITLE_MAX = 16  # PS3.5 6.2, VR AE


@dataclass(frozen=True)
class Peer:
    """A known calling AE: it must call from ``address`` and acts as Lightbox user ``user``."""

    ae_title: str
    address: str
    user: str

    def calls_from(self, address: str) -> bool:
        """Addresses compare as IPs (``::ffff:127.0.0.1`` is ``127.0.0.1``); ``localhost`` is any loopback."""
        caller = _ip(address)
        if self.address == "localhost":
            return caller is not None and caller.is_loopback
        return caller is not None and caller == _ip(self.address)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ae_title(text: str) -> str:
    title = text.strip()
    if not title or len(title) > AE_TITLE_MAX or "\\" in title or any(ord(c) < 0x20 or ord(c) > 0x7E for c in title):
        raise ValueError(f"peer AE title {title[:20]!r} is not a valid AE title (1-16 printable characters, PS3.5 6.2)")
    return title


def parse_peers(text: str) -> dict[str, Peer]:
    """The peers of ``LIGHTBOX_DIMSE_PEERS`` by AE title; ValueError naming the first bad entry."""
    peers: dict[str, Peer] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        title, at, rest = entry.rpartition("@") if "@" in entry else ("", "", entry)
        address, colon, user = rest.rpartition(":")
        if not at or not colon or not user.strip():
            raise ValueError(f"peer entry {entry[:40]!r} must look like AE@address:user")
        ae_title = _ae_title(title)
        address = address.strip().strip("[]")
        if address != "localhost" and _ip(address) is None:
            raise ValueError(f"peer {ae_title!r}: {address[:40]!r} is not an IP address")
        if ae_title in peers:
            raise ValueError(f"peer {ae_title!r} is listed twice")
        peers[ae_title] = Peer(ae_title, address, user.strip())
    return peers


@dataclass(frozen=True)
class Destination:
    """A C-MOVE destination (Move Destination (0000,0600) names it by AE title): where to send."""

    ae_title: str
    host: str
    port: int


def parse_destinations(text: str) -> dict[str, Destination]:
    """``LIGHTBOX_DIMSE_DESTINATIONS``: comma-separated ``AE@host:port``; ValueError naming a bad entry."""
    found: dict[str, Destination] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        title, at, rest = entry.partition("@")
        host, colon, port = rest.rpartition(":")
        if not at or not colon or not host.strip() or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"destination entry {entry[:40]!r} must look like AE@host:port")
        ae_title = _ae_title(title)
        if ae_title in found:
            raise ValueError(f"destination {ae_title!r} is listed twice")
        found[ae_title] = Destination(ae_title, host.strip().strip("[]"), int(port))
    return found
