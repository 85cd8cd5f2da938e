"""The typed boundary between supervisor and spawner (nsutil._messages): one record
per message, its wire form derived from its annotations, and a spawner that refuses
a spawn whose spec lacks a field, has one too many, or has one of the wrong type,
naming it - never starting a container with a default in its place."""

from __future__ import annotations

import os
from typing import Any

import pytest

from nsutil import _messages, _proto
from nsutil._messages import (
    Exited,
    Failed,
    InitSpec,
    Record,
    Shutdown,
    Spawn,
    Started,
    StepReport,
    WireError,
    from_wire,
    to_wire,
)

from .containers import children_of, init_spec, spawner_message, spawner_process

REPORT = StepReport(step="exec", errno=2, message="exec 'x': No such file or directory")
EXAMPLES: list[Record] = [
    Spawn(id="c1", spec=init_spec(argv=["sh", "-c", "echo \udcff"], user=(1, 2),
                                   capabilities=(0, 5), loopback_request=b"\x00\x01",
                                   cgroup_fd=3, env={"A": "b c"}, cwd="/tmp", init=True)),
    Shutdown(),
    Started(id="c1", pid=42, start_ticks=7),
    Exited(id="c1", pid=42, status=256, user_s=0.5, system_s=0, maxrss_kib=1024, error=None),
    Exited(id="c1", pid=42, status=256, user_s=0.5, system_s=0.1, maxrss_kib=1, error=REPORT),
    Failed(id="c1", error=REPORT),
]


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_every_record_survives_the_wire(record: Record) -> None:
    """to_wire, marshal (what the framing does), from_wire: the same record back."""
    ((message, fds),) = [_through_framing(to_wire(record))]
    assert fds == []
    assert from_wire(message) == record


def _through_framing(wire: dict[str, Any]) -> tuple[dict[str, Any], list[int] | None]:
    decoder = _proto.Decoder()
    for packet in _proto.encode(wire):
        decoded = decoder.feed(packet, [])
    assert decoded is not None
    return decoded


def _spawn_wire(**spec_changes: Any) -> dict[str, Any]:
    wire = to_wire(Spawn(id="c7", spec=init_spec()))
    for key, value in spec_changes.items():
        if value is _DELETE:
            del wire["spec"][key]
        else:
            wire["spec"][key] = value
    return wire


_DELETE = object()


@pytest.mark.parametrize(("changes", "message"), [
    ({"harden_mount": True}, "spawn message: field 'spec': init message: unknown field "
                             "'harden_mount'"),
    ({"harden_mounts": _DELETE}, "spawn message: field 'spec': init message: missing field "
                                 "'harden_mounts'"),
    ({"no_new_privs": 1}, "field 'no_new_privs': expected bool, got int"),
    ({"argv": ["true"]}, "field 'argv': expected tuple[str, ...], got list"),
    ({"argv": ("true", 7)}, "field 'argv': expected str, got int"),
    ({"user": (0,)}, "field 'user': expected tuple[int, int], got tuple"),
    ({"env": {"A": 1}}, "field 'env': expected dict[str, str], got dict"),
    ({"capabilities": (True,)}, "field 'capabilities': expected int, got bool"),
])
def test_a_spec_with_a_field_missing_extra_or_mistyped_is_refused_by_name(
        changes: dict[str, Any], message: str) -> None:
    with pytest.raises(WireError) as raised:
        from_wire(_spawn_wire(**changes))
    assert message in str(raised.value)
    assert raised.value.id == "c7"  # so the refusal reaches the right container


def test_a_message_of_no_known_kind_or_not_a_dict_is_refused() -> None:
    with pytest.raises(WireError, match="message kind 'launch'"):
        from_wire({"kind": "launch", "id": "x"})
    with pytest.raises(WireError, match="a message is a dict, not list"):
        from_wire([1, 2])
    with pytest.raises(WireError, match="expected step"):
        from_wire(to_wire(Started(id="x", pid=1, start_ticks=None)), StepReport)


def test_records_are_frozen_keyword_only_and_complete() -> None:
    started = Started(id="x", pid=1, start_ticks=None)
    with pytest.raises(AttributeError):
        started.pid = 2  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing \\['pid', 'start_ticks'\\]"):
        Started(id="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unknown \\['pod'\\]"):
        Started(id="x", pid=1, start_ticks=None, pod=2)  # type: ignore[call-arg]


def test_an_annotation_with_no_wire_form_is_refused_when_the_record_is_defined() -> None:
    with pytest.raises(TypeError, match="no wire form for the annotation 'list\\[int\\]'"):
        class Odd(Record, kind="test-odd"):
            numbers: list[int]
    assert "test-odd" not in _messages._KINDS


def test_init_spec_is_what_the_supervisor_builds() -> None:
    """The supervisor's ContainerSpec makes an InitSpec that survives the wire as is
    (its tuples stay tuples, its user a pair), so a real spawn is never refused."""
    from supervisor import ContainerSpec

    spec = ContainerSpec(["sh", "-c", "true"], env={"A": "1"}, user=(5, 6), init=True)
    made = spec.init_spec(hostname="h", cgroup_join=["/x/tasks"], cgroup_fd=None,
                          cgroup_v2_join="/y/cgroup.procs", loopback_request=b"lo",
                          stdio=(0, 1, 2), devices=spec.device_rules(None),
                          device_cgroup_fd=3, cwd="/tmp/here")
    assert isinstance(made, InitSpec)
    assert from_wire(to_wire(made)) == made
    view = made.filesystem  # the caller's directory hidden below /tmp: shown, read-only
    assert view is not None and view.read_only and view.dev and made.cwd == "/tmp/here"
    assert view.volumes == (("/tmp/here", "/tmp/here", True, True),)
    assert made.user == (5, 6) and made.harden_mounts and made.no_new_privs
    assert made.devices is not None and ("c", 1, 3, "rwm") in made.devices
    assert ("c", -1, -1, "m") in made.devices  # any: -1 on the wire


@pytest.mark.usefixtures("root_only")
def test_the_spawner_answers_a_misspelt_hardening_field_with_failed_naming_it() -> None:
    """A spawn whose spec says harden_mount (not harden_mounts) must not start an
    unhardened container: the spawner answers `failed`, naming the field, forks
    nothing, and goes on serving."""
    with spawner_process() as (ours, spawner):
        devnull = os.open("/dev/null", os.O_RDWR)
        try:
            wire = _spawn_wire(harden_mount=True)
            _proto.send_blocking(ours, wire, [devnull])
            message, fds = spawner_message(ours)
            assert fds == []
            assert isinstance(message, Failed) and message.id == "c7"
            assert "unknown field 'harden_mount'" in message.error.message
            assert children_of(spawner.pid) == []
            # Lost fds: the header says one rides along, none does.
            (packet,) = _proto.encode(to_wire(Spawn(id="c8", spec=init_spec())), nfds=1)
            ours.sendmsg([packet])
            message, fds = spawner_message(ours)
            assert isinstance(message, Failed) and message.id == "c8"
            assert "file descriptors were lost" in message.error.message
            # Still serving: a good spawn starts.
            _proto.send_blocking(ours, to_wire(Spawn(id="c9", spec=init_spec())), [devnull])
            message, fds = spawner_message(ours)
            for fd in fds:
                os.close(fd)
            assert isinstance(message, Started) and message.id == "c9"
            message, fds = spawner_message(ours)
            assert isinstance(message, Exited) and message.status == 0
        finally:
            os.close(devnull)
