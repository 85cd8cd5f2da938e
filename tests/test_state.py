"""The state directory: live containers announced for other processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from supervisor import ContainerSpec, Limits, Supervisor
from supervisor import _state as state_module
from supervisor._state import (
    ContainerState,
    Journal,
    find,
    process_start_ticks,
    read_states,
    remove_states,
    replay,
    supervisor_alive,
)

pytestmark = pytest.mark.usefixtures("root_only")


def _cid(tag: str) -> str:
    """A container id (12 hex digits) standing for a short tag."""
    return tag.encode().hex()[:12].ljust(12, "0")


def _state(cid: str, name: str, **kw: object) -> ContainerState:
    values: dict[str, object] = dict(
        id=cid, name=name, pid=1, pid_start_ticks=None, supervisor_pid=os.getpid(),
        supervisor_start_ticks=process_start_ticks(os.getpid()), cgroup_paths=[],
        argv=["true"], started_at="2026-01-01T00:00:00.000000Z")
    values.update(kw)
    return ContainerState(**values)  # type: ignore[arg-type]


def test_write_read_find(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), "1-2-aaaaaa")
    journal.add(_state("abc123def456", "web"))
    other = Journal(str(tmp_path), "3-4-bbbbbb")
    other.add(_state("abd999000111", "db"))
    # a write under way: the torn last line is not (yet) a container
    with open(other.path, "ab") as f:
        f.write(b'+{"id": "x"')
    states = read_states(str(tmp_path))
    assert sorted(s.name for s in states) == ["db", "web"]
    assert [s.id for s in find(states, "web")] == ["abc123def456"]
    assert [s.id for s in find(states, "abc")] == ["abc123def456"]
    assert len(find(states, "ab")) == 0  # too short to be a prefix
    assert len(find(states, "abd9")) == 1
    journal.close()
    other.close()


def test_a_journal_records_starts_and_ends_and_goes_when_empty(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "new"), "1-2-cccccc")  # the directory is made on demand
    journal.add(_state(_cid("a1"), "one"))
    journal.add(_state(_cid("b2"), "two"))
    journal.remove(_cid("a1"))
    text = Path(journal.path).read_bytes()
    assert text.count(b"\n") == 3 and text.endswith(f"-{_cid('a1')}\n".encode())
    assert [s.id for s in read_states(str(tmp_path / "new"))] == [_cid("b2")]
    journal.remove(_cid("b2"))
    assert not Path(journal.path).exists()  # nothing live: no journal
    journal.add(_state(_cid("c3"), "three"))  # and a new one when something starts again
    assert [s.id for s in read_states(str(tmp_path / "new"))] == [_cid("c3")]
    journal.remove(_cid("c3"))
    journal.close()
    assert list((tmp_path / "new").iterdir()) == []


def test_a_journal_is_compacted_once_it_has_grown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "COMPACT_BYTES", 4096)
    journal = Journal(str(tmp_path), "1-2-dddddd")
    journal.add(_state(_cid("keep"), "kept"))
    for i in range(100):
        journal.add(_state(_cid(f"c{i}"), f"n{i}"))
        journal.remove(_cid(f"c{i}"))
        assert Path(journal.path).stat().st_size <= 4096 + 512
    assert [s.id for s in read_states(str(tmp_path))] == [_cid("keep")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-2-dddddd.journal"]
    journal.close()  # a live container: the journal stays, for gc
    assert [s.id for s in read_states(str(tmp_path))] == [_cid("keep")]


def test_gc_strikes_entries_and_removes_an_emptied_journal(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), "9-9-eeeeee")
    journal.add(_state(_cid("x1"), "x"))
    journal.add(_state(_cid("y2"), "y"))
    journal.close()
    remove_states([_cid("x1")], str(tmp_path))
    assert [s.id for s in read_states(str(tmp_path))] == [_cid("y2")]
    remove_states([_cid("y2"), _cid("unknown")], str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_replay_skips_what_it_cannot_read() -> None:
    good = _state(_cid("g1"), "good").to_json().encode()
    text = b"+" + good + b"\n+not json\n-nobody\n?odd\n+" + good[:10]
    live, ignored = replay(text)
    assert (list(live), ignored) == ([_cid("g1")], 3)  # the torn last one is not counted


def test_a_dead_or_reused_supervisor_is_stale() -> None:
    assert supervisor_alive(_state(_cid("a"), "a"))
    assert not supervisor_alive(_state(_cid("a"), "a", supervisor_pid=2**22 + 1))
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None
    assert not supervisor_alive(_state(_cid("a"), "a", supervisor_start_ticks=ticks + 1))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_a_running_container_is_announced(tmp_path: Path) -> None:
    async with Supervisor(state_dir=str(tmp_path)) as sup:
        container = await sup.start(ContainerSpec(["sleep", "30"], name="announced",
                                                  limits=Limits(memory_bytes=64 << 20)))
        (state,) = read_states(str(tmp_path))
        assert (state.id, state.name, state.pid) == (container.id, "announced", container.pid)
        assert state.pid_start_ticks == process_start_ticks(container.pid) is not None
        assert state.supervisor_pid == os.getpid() and supervisor_alive(state)
        assert state.limits == {"memory_bytes": 64 << 20}
        assert sorted(state.cgroup_paths) == sorted(container.cgroup.paths)
        container.kill()
        await container.wait()
        assert read_states(str(tmp_path)) == []


def test_names_are_unique_across_processes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from .containers import PYTHON, supervise

    env = {**os.environ, "SUPERVISE_STATE_DIR": str(tmp_path)}
    first = subprocess.Popen([PYTHON, "-m", "supervisor", "run", "--name", "solo", "--",
                              "sleep", "30"], env=env)
    try:
        deadline = time.monotonic() + 20
        while not read_states(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        (held,) = read_states(str(tmp_path))
        second = supervise("run", "--name", "solo", "--", "true", env=env)
        assert second.returncode == 125
        assert second.stderr == (
            f"supervise: the name 'solo' is already in use by container {held.id}\n")
    finally:
        first.send_signal(signal.SIGKILL)  # its name link and state are now stale
        first.wait()
    # A dead supervisor's name is taken over (and gc cleans the rest).
    again = supervise("run", "--name", "solo", "--", "true", env=env)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "names" / "solo").exists()
    assert read_states(str(tmp_path)) == []


def test_compaction_stays_linear_when_many_are_live(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Live entries alone past the threshold: the journal is not rewritten at every
    end (that would cost O(live) per container), only once it is half dead."""
    monkeypatch.setattr(state_module, "COMPACT_BYTES", 4096)
    journal = Journal(str(tmp_path), "1-2-ffffff")
    rewrites = 0
    real = Journal._compact

    def counting(self: Journal) -> None:
        nonlocal rewrites
        rewrites += 1
        real(self)

    monkeypatch.setattr(Journal, "_compact", counting)
    for i in range(200):  # ~40 KiB live, ten times the threshold
        journal.add(_state(_cid(f"c{i:03}"), f"n{i}"))
    for i in range(150):
        journal.remove(_cid(f"c{i:03}"))
    assert 1 <= rewrites <= 3
    assert len(read_states(str(tmp_path))) == 50
    for i in range(150, 200):
        journal.remove(_cid(f"c{i:03}"))
    journal.close()
    assert list(tmp_path.iterdir()) == []


def test_a_zombie_is_not_alive() -> None:
    """A PID 1 that died but is not reaped yet (its new parent is slow) must not be
    signalled as running: it still shows its v2 cgroup."""
    from supervisor._state import is_alive, process_start_ticks

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert process_start_ticks(pid) is None
        assert not is_alive(pid, None)
    finally:
        os.waitpid(pid, 0)
    assert process_start_ticks(os.getpid()) is not None


def test_the_state_directory_is_roots_alone(tmp_path: Path) -> None:
    """Made 0700, or tightened to it (an older supervise made it 0755); journals 0600."""
    fresh = tmp_path / "fresh"
    journal = Journal(str(fresh), "1-2-aaaaaa")
    journal.add(_state(_cid("a1"), "one"))
    assert (fresh.stat().st_mode & 0o777, Path(journal.path).stat().st_mode & 0o777) == (
        0o700, 0o600)
    journal.remove(_cid("a1"))
    journal.close()
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    journal = Journal(str(loose), "1-2-bbbbbb")
    journal.add(_state(_cid("b2"), "two"))
    assert loose.stat().st_mode & 0o777 == 0o700
    journal.remove(_cid("b2"))
    journal.close()
    # a name claimed before any journal was written makes both directories 0700
    named = tmp_path / "named"
    state_module.claim_name("web", "abc123def456", os.getpid(), None, str(named))
    assert [p.stat().st_mode & 0o777 for p in (named, named / "names")] == [0o700, 0o700]
    state_module.release_name("web", "abc123def456", str(named))


def test_the_cache_directory_is_roots_alone(tmp_path: Path) -> None:
    from supervisor._loopback import loopback_up_request

    fresh = tmp_path / "cache"
    loopback_up_request(str(fresh))
    (cached,) = fresh.iterdir()
    assert (fresh.stat().st_mode & 0o777, cached.stat().st_mode & 0o777) == (0o700, 0o600)
    fresh.chmod(0o755)
    loopback_up_request(str(fresh))  # read from the cache, and the directory tightened
    assert fresh.stat().st_mode & 0o777 == 0o700


def test_an_unreadable_state_directory_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor._errors import SuperviseError

    def refuse(path: str) -> list[str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(state_module.os, "listdir", refuse)
    with pytest.raises(SuperviseError, match=r"^reading /x: Permission denied \(it is root's\)$"):
        read_states("/x")


GOOD = {"id": "0123456789ab", "name": "web", "pid": 42, "pid_start_ticks": 7,
        "supervisor_pid": 41, "supervisor_start_ticks": 6,
        "cgroup_paths": ["/sys/fs/cgroup/memory/supervise/0123456789ab"],
        "argv": ["sleep", "9"], "started_at": "2026-01-01T00:00:00.000000Z"}


@pytest.mark.parametrize("change", [
    {"id": "0123456789AB"}, {"id": "0123456789a"}, {"id": "../../etc/x"}, {"id": 12},
    {"name": ""}, {"name": None}, {"name": "a\0b"},
    {"pid": 0}, {"pid": -1}, {"pid": "42"}, {"pid": True}, {"pid": 4.2},
    {"pid_start_ticks": -5}, {"pid_start_ticks": "7"},
    {"supervisor_pid": 0}, {"supervisor_start_ticks": []},
    {"cgroup_paths": "/sys/fs/cgroup/memory/supervise/0123456789ab"},
    {"cgroup_paths": ["/sys/fs/cgroup/memory/user.slice"]},              # not the id's
    {"cgroup_paths": ["sys/fs/cgroup/memory/0123456789ab"]},             # relative
    {"cgroup_paths": ["/sys/fs/cgroup/memory/0123456789ab/../x"]},       # not normalized
    {"cgroup_paths": ["/sys/fs/cgroup/memory/x0123456789ab"]},
    {"cgroup_paths": [7]}, {"argv": "sleep 9"}, {"argv": [None]}, {"started_at": 0},
    {"hostname": 5}, {"limits": []}, {"line": 0}, {"line": "3"},
])
def test_a_record_of_the_wrong_shape_is_refused(change: dict[str, object]) -> None:
    import json

    assert ContainerState.from_json(json.dumps(GOOD)).id == GOOD["id"]
    with pytest.raises(ValueError, match=r"^(bad |no container id)"):
        ContainerState.from_json(json.dumps({**GOOD, **change}))


def test_below_the_id_and_unknown_fields_are_fine() -> None:
    import json

    below = {**GOOD, "cgroup_paths": ["/sys/fs/cgroup/x/supervise/0123456789ab/leaf"],
             "pid_start_ticks": None, "future_field": 1}
    state = ContainerState.from_json(json.dumps(below))
    assert state.cgroup_paths == below["cgroup_paths"] and state.pid_start_ticks is None


def test_malformed_lines_are_ignored_with_one_warning(tmp_path: Path) -> None:
    import json

    journal = Journal(str(tmp_path), "1-2-aaaaaa")
    journal.add(_state(_cid("ok"), "fine"))
    journal.close()
    with open(journal.path, "ab") as f:
        f.write(b"+" + json.dumps({**GOOD, "id": "user.slice"}).encode() + b"\n"
                b"-../x\n\n#\n+" + json.dumps({**GOOD, "pid": -1}).encode() + b"\n")
    (tmp_path / "forged.journal").write_bytes(b"garbage\n")
    heard: list[str] = []
    states = read_states(str(tmp_path), warn=heard.append)
    assert [s.id for s in states] == [_cid("ok")]
    assert heard == [f"ignored 6 malformed lines in {tmp_path}"]
    assert read_states(str(tmp_path)) == states  # without warn: quietly
    (tmp_path / "forged.journal").unlink()
    remove_states([_cid("ok")], str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_strike_after_a_torn_line_is_a_line_of_its_own(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), "1-2-aaaaaa")
    journal.add(_state(_cid("a"), "a"))
    journal.add(_state(_cid("b"), "b"))
    journal.close()
    with open(journal.path, "ab") as f:
        f.write(b'+{"id": "torn')  # its writer died mid-line
    remove_states([_cid("a")], str(tmp_path))
    assert [s.id for s in read_states(str(tmp_path))] == [_cid("b")]
    remove_states([_cid("b")], str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_reservation_is_replaced_by_its_record_or_struck(tmp_path: Path) -> None:
    """Journal.reserve (before the cgroup's mkdir), then add: the record stands and no
    reservation is left; a reservation removed (the start failed) is gone; one left
    (the supervisor was killed) is found, with the journal's supervisor."""
    journal = Journal(str(tmp_path), "4242-7-cccccc")
    a, b, c = _cid("a1"), _cid("b2"), _cid("c3")
    for cid in (a, b, c):
        journal.reserve(cid)
    journal.add(_state(a, "a"))
    journal.remove(b)
    assert [s.id for s in read_states(str(tmp_path))] == [a]
    assert state_module.reserved(str(tmp_path)) == {c: (4242, 7)}
    journal.remove(a)
    journal.remove(c)
    assert not list(tmp_path.glob("*.journal"))
