"""The supervisor <-> spawner framing: marshalled messages, split into packets of at
most CHUNK bytes, fds riding with the first (their count in its header); received
into one reused buffer."""

from __future__ import annotations

import os
import socket

import pytest

from nsutil import _proto


def _roundtrip(message: dict[str, object], fds: list[int]
               ) -> tuple[tuple[object, int], list[int] | None]:
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
        assert message == {"ev": "started", "id": "x", "pid": 7}
        assert fds is not None and len(fds) == 1 and os.path.sameopenfile(fds[0], w)
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
    assert message == {"op": "spawn", "argv": argv, "n": 1.5}


def test_end_of_stream_is_an_empty_packet() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        ours.close()
        packet, fds = _proto.Receiver(theirs).recv()
        assert (len(packet), fds) == (0, [])


def test_fds_the_kernel_dropped_are_told_from_fds_never_sent() -> None:
    """A receiver out of descriptors gets a packet without its fds (MSG_CTRUNC): the
    count in the header says some were sent, so the message comes with None, and the
    ones that did arrive are closed, never mistaken for the next message's."""
    r, w = os.pipe()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with ours, theirs:
            # As if the kernel had dropped the second of two fds: one rides along.
            (packet,) = _proto.encode({"op": "spawn"}, nfds=2)
            ours.sendmsg([packet], _proto.fds_ancillary([w]))
            _proto.send_blocking(ours, {"op": "next"}, [r])
            receiver, decoder = _proto.Receiver(theirs), _proto.Decoder()
            before = set(os.listdir("/proc/self/fd"))
            first = decoder.feed(*receiver.recv())
            assert first == ({"op": "spawn"}, None)
            second = decoder.feed(*receiver.recv())
            assert second is not None and second[0] == {"op": "next"}
            assert second[1] is not None and os.path.sameopenfile(second[1][0], r)
            os.close(second[1][0])
            assert set(os.listdir("/proc/self/fd")) <= before
    finally:
        os.close(r)
        os.close(w)


def test_more_fds_than_a_message_may_carry_are_refused_when_sending() -> None:
    with pytest.raises(ValueError, match="at most 16"):
        _proto.encode({}, nfds=_proto.MAX_FDS + 1)
