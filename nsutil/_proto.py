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
    if len(body) <= CHUNK:
        return [LAST + body]
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

    def feed(self, packet: bytes | memoryview, fds: list[int]
             ) -> tuple[Message, list[int]] | None:
        """The message packet completes (None until then). packet may be a view of
        the receiver's buffer: it is copied only when the message spans packets."""
        if fds:
            self._fds.extend(fds)
        if not packet:
            raise ValueError("empty packet")
        if packet[0] == MORE[0]:
            self._parts.append(bytes(packet[1:]))
            return None
        if self._parts:
            body: bytes | memoryview = b"".join([*self._parts, packet[1:]])
            self._parts = []
        else:
            body = packet[1:]  # the usual case: a whole message in one packet
        message = marshal.loads(body)
        if not isinstance(message, dict):
            raise ValueError("message is not an object")
        nfds = int(message.get("nfds", 0))
        if not nfds and not self._fds:
            return message, []
        got, self._fds = self._fds[:nfds], self._fds[nfds:]
        return message, got


def send_blocking(sock: socket.socket, message: Message, fds: list[int] | None = None) -> None:
    """Send message (to which "nfds" is added) with fds, on a blocking socket."""
    fds = fds or []
    message["nfds"] = len(fds)
    for i, packet in enumerate(encode(message)):
        sock.sendmsg([packet], fds_ancillary(fds) if i == 0 else [])


class Receiver:
    """Receives packets into one reused buffer: no 32 KiB allocation per packet (in
    the spawner, every page written between two forks is a copy-on-write fault)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray(CHUNK + 1)
        self._view = memoryview(self._buffer)
        self._ancillary_size = socket.CMSG_SPACE(MAX_FDS * 4)

    def recv(self, flags: int = 0) -> tuple[memoryview, list[int]]:
        """One packet (a view, valid until the next recv) and its fds; empty at EOF.
        BlockingIOError with MSG_DONTWAIT and nothing waiting."""
        size, ancdata, _flags, _addr = self._sock.recvmsg_into([self._buffer],
                                                              self._ancillary_size, flags)
        return self._view[:size], fds_from_ancillary(ancdata) if ancdata else []
