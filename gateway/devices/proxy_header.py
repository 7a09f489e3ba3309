"""The PROXY protocol header a TCP load balancer (HAProxy, a cloud balancer) puts in front of a
device's bytes, so that the gateway sees the device's own address.

Parsing is the `proxy-protocol` package's; this module only finds where the header ends in a
stream that arrives in pieces (v1: a text line of at most 107 bytes ending in CRLF; v2: a 16-byte
header whose last two bytes give the length of the rest) and bounds what it buffers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from proxyprotocol import ProxyProtocolSyntaxError
from proxyprotocol.result import is_ipv4, is_ipv6, is_local
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

#: The longest v1 header, CRLF included (the PROXY protocol specification).
V1_MAX = 107
#: Addresses and TLVs of a v2 header; anything longer is refused (HAProxy sends well under it).
V2_MAX = 16 + 1024
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


class BadProxyHeader(ValueError):
    """The connection did not start with the expected PROXY header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    #: The device's address as the balancer saw it; None for a LOCAL (health check) header.
    source: str | None
    #: Bytes after the header: the device's own first bytes.
    rest: bytes


class ProxyHeaderReader:
    """Collects a connection's first bytes until its PROXY header is complete."""

    __slots__ = ("_buf", "version")

    def __init__(self, version: str) -> None:
        if version not in ("v1", "v2"):
            raise ValueError("version must be v1 or v2")
        self.version = version
        self._buf = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        """The header once complete (with the bytes after it), else None. Raises BadProxyHeader."""
        buf = self._buf = self._buf + data
        if self.version == "v1":
            end = buf.find(b"\r\n", 0, V1_MAX)
            if end < 0:
                if len(buf) >= V1_MAX or not b"PROXY "[:len(buf)] == buf[:6]:
                    raise BadProxyHeader("no PROXY v1 header line")
                return None
            length = end + 2
            parser: ProxyProtocolV1 | ProxyProtocolV2 = ProxyProtocolV1()
        else:
            if len(buf) < 16:
                if not V2_SIGNATURE.startswith(buf[:12]):
                    raise BadProxyHeader("no PROXY v2 signature")
                return None
            if buf[:12] != V2_SIGNATURE:
                raise BadProxyHeader("no PROXY v2 signature")
            length = 16 + int.from_bytes(buf[14:16], "big")
            if length > V2_MAX:
                raise BadProxyHeader(f"PROXY v2 header of {length} bytes")
            if len(buf) < length:
                return None
            parser = ProxyProtocolV2()
        try:
            result = parser.unpack(buf[:length])
        except (ProxyProtocolSyntaxError, ValueError) as exc:
            raise BadProxyHeader(f"malformed PROXY {self.version} header: {exc}") from None
        rest = buf[length:]
        self._buf = b""
        if is_local(result):
            return ProxyHeader(None, rest)
        if is_ipv4(result) or is_ipv6(result):
            host = result.source[0]
            return ProxyHeader(str(ipaddress.ip_address(host)), rest)
        return ProxyHeader(None, rest)


def trusted(address: str, networks: tuple[str, ...]) -> bool:
    """Whether `address` is one of `networks` (addresses or CIDR blocks)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)
