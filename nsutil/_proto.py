"""Framing of the supervisor <-> spawner messages over a SOCK_SEQPACKET socketpair.

A message is a dict of str, int, float, bool, None, list and dict, marshalled
(marshal is C and fast both ways; the peer is always our own supervisor or
spawner, never untrusted data; str survives byte for byte, lone surrogates
too). It travels as one or more packets of at most CHUNK bytes, each starting
with one byte: b"+" (more follows) or b"." (last).
File descriptors ride with the first packet (SCM_RIGHTS); the message says
how many it carries in "nfds", so the receiver knows which fds are whose.
Both sides use these functions: the spawner with blocking sockets, the
supervisor with non-blocking ones driven by its event loop.
"""

from __future__ import annotations

import array
import marshal
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Message = dict[str, Any]

CHUNK = 32 * 1024
MAX_FDS = 16
MORE = b"+"
LAST = b"."


def encode(message: Message) -> list[bytes]:
    """The packets of one message."""
    body = marshal.dumps(message)
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)] or [b""]
    return [(LAST if i == len(chunks) - 1 else MORE) + c for i, c in enumerate(chunks)]


def fds_ancillary(fds: list[int]) -> list[tuple[int, int, bytes]]:
    if not fds:
        return []
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]


def fds_from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - (len(data) % arr.itemsize)])
            fds.extend(arr)
    return fds


class Decoder:
    """Reassembles packets into (message, fds) pairs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._fds: list[int] = []

    def feed(self, packet: bytes, fds: list[int]) -> tuple[Message, list[int]] | None:
        self._fds.extend(fds)
        if not packet:
            raise ValueError("empty packet")
        self._parts.append(packet[1:])
        if packet[:1] == MORE:
            return None
        body = b"".join(self._parts)
        self._parts = []
        message = marshal.loads(body)
        if not isinstance(message, dict):
            raise ValueError("message is not an object")
        nfds = int(message.get("nfds", 0))
        got, self._fds = self._fds[:nfds], self._fds[nfds:]
        return message, got


def send_blocking(sock: socket.socket, message: Message, fds: list[int] | None = None) -> None:
    fds = fds or []
    message = {**message, "nfds": len(fds)}
    for i, packet in enumerate(encode(message)):
        sock.sendmsg([packet], fds_ancillary(fds) if i == 0 else [])


def recv_packet(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One packet and the fds that came with it; b"" at EOF."""
    data, ancdata, _flags, _addr = sock.recvmsg(
        CHUNK + 1, socket.CMSG_SPACE(MAX_FDS * 4)
    )
    return data, fds_from_ancillary(ancdata)
