"""The supervisor <-> spawner framing: marshalled messages, split into packets of at
most CHUNK bytes, fds riding with the first; received into one reused buffer."""

from __future__ import annotations

import os
import socket

from nsutil import _proto


def _roundtrip(message: dict[str, object], fds: list[int]) -> tuple[object, list[int]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        _proto.send_blocking(ours, message, fds)
        receiver, decoder = _proto.Receiver(theirs), _proto.Decoder()
        packets = 0
        while True:
            packet, got = receiver.recv()
            packets += 1
            decoded = decoder.feed(packet, got)
            if decoded is not None:
                return (decoded[0], packets), decoded[1]


def test_a_small_message_is_one_packet_and_brings_its_fds() -> None:
    r, w = os.pipe()
    try:
        (message, packets), fds = _roundtrip({"ev": "started", "id": "x", "pid": 7}, [w])
        assert packets == 1
        assert message == {"ev": "started", "id": "x", "pid": 7, "nfds": 1}
        assert len(fds) == 1 and os.path.sameopenfile(fds[0], w)
        os.close(fds[0])
    finally:
        os.close(r)
        os.close(w)


def test_a_message_larger_than_a_packet_arrives_whole_and_byte_exact() -> None:
    """The receiver's buffer is reused for each packet: parts must be copied out."""
    argv = ["x" * (3 * _proto.CHUNK), "\udcff\udc80", "é", ""]
    (message, packets), fds = _roundtrip({"op": "spawn", "argv": argv, "n": 1.5}, [])
    assert packets == 4
    assert fds == []
    assert message == {"op": "spawn", "argv": argv, "n": 1.5, "nfds": 0}


def test_end_of_stream_is_an_empty_packet() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        ours.close()
        packet, fds = _proto.Receiver(theirs).recv()
        assert (len(packet), fds) == (0, [])
