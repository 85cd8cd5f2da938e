"""Framing of the supervisor <-> spawner messages over a SOCK_SEQPACKET socketpair.

A message is the wire form of a record (`_messages.to_wire`: a dict of str, int,
float, bool, bytes, None, tuple and dict), marshalled (marshal is C and fast both
ways; the peer is always our own supervisor or spawner, never untrusted data; str
survives byte for byte, lone surrogates too). It travels as one or more packets of
at most CHUNK bytes, each starting with two bytes: b"+" (more follows) or b"."
(last), then how many fds ride with that packet (SCM_RIGHTS, the first packet's).
The count lets the receiver tell fds the kernel dropped (a receiver out of file
descriptors gets the bytes without them: MSG_CTRUNC) from fds never sent.
Both sides use these functions: the spawner with blocking sockets, the
supervisor with non-blocking ones driven by its event loop.
"""

from __future__ import annotations

import array
import marshal
import os
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Message = dict[str, Any]

CHUNK = 32 * 1024
MAX_FDS = 16
HEADER = 2
MORE = b"+"
LAST = b"."


def encode(message: Message, nfds: int = 0) -> list[bytes]:
    """The packets of one message whose nfds fds ride with its first packet."""
    if not 0 <= nfds <= MAX_FDS:
        raise ValueError(f"{nfds} fds in one message: at most {MAX_FDS}")
    body = marshal.dumps(message)
    if len(body) <= CHUNK:
        return [LAST + bytes((nfds,)) + body]
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)] or [b""]
    return [(LAST if i == len(chunks) - 1 else MORE) + bytes((nfds if i == 0 else 0,)) + c
            for i, c in enumerate(chunks)]


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
    """Reassembles packets into (message, fds) pairs; fds is None when some of the
    fds sent with the message never arrived (those that did are closed)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._fds: list[int] = []
        self._expected = 0

    def feed(self, packet: bytes | memoryview, fds: list[int]
             ) -> tuple[Message, list[int] | None] | None:
        """The message packet completes (None until then). packet may be a view of
        the receiver's buffer: it is copied only when the message spans packets."""
        if fds:
            self._fds.extend(fds)
        if len(packet) < HEADER:
            raise ValueError("a packet shorter than its header")
        self._expected += packet[1]
        if packet[0] == MORE[0]:
            self._parts.append(bytes(packet[HEADER:]))
            return None
        if self._parts:
            body: bytes | memoryview = b"".join([*self._parts, packet[HEADER:]])
            self._parts = []
        else:
            body = packet[HEADER:]  # the usual case: a whole message in one packet
        got, expected = self._fds, self._expected
        self._fds, self._expected = [], 0
        message = marshal.loads(body)
        if not isinstance(message, dict):
            for fd in got:
                os.close(fd)
            raise ValueError("message is not an object")
        if len(got) != expected:
            for fd in got:
                os.close(fd)
            return message, None
        return message, got


def send_blocking(sock: socket.socket, message: Message, fds: list[int] | None = None) -> None:
    """Send message with fds, on a blocking socket."""
    fds = fds or []
    for i, packet in enumerate(encode(message, len(fds))):
        sock.sendmsg([packet], fds_ancillary(fds) if i == 0 else [])


class Receiver:
    """Receives packets into one reused buffer: no 32 KiB allocation per packet (in
    the spawner, every page written between two forks is a copy-on-write fault)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray(CHUNK + HEADER)
        self._view = memoryview(self._buffer)
        self._ancillary_size = socket.CMSG_SPACE(MAX_FDS * 4)

    def recv(self, flags: int = 0) -> tuple[memoryview, list[int]]:
        """One packet (a view, valid until the next recv) and its fds; empty at EOF.
        BlockingIOError with MSG_DONTWAIT and nothing waiting."""
        size, ancdata, _flags, _addr = self._sock.recvmsg_into([self._buffer],
                                                              self._ancillary_size, flags)
        return self._view[:size], fds_from_ancillary(ancdata) if ancdata else []
