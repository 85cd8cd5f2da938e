"""The state directory: live containers announced for other processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor import ContainerSpec, Limits, Supervisor
from supervisor._state import (
    ContainerState,
    find,
    process_start_ticks,
    read_states,
    supervisor_alive,
    write_state,
)

pytestmark = pytest.mark.usefixtures("root_only")


def _state(cid: str, name: str, **kw: object) -> ContainerState:
    values: dict[str, object] = dict(
        id=cid, name=name, pid=1, pid_start_ticks=None, supervisor_pid=os.getpid(),
        supervisor_start_ticks=process_start_ticks(os.getpid()), cgroup_paths=[],
        argv=["true"], started_at="2026-01-01T00:00:00.000000Z")
    values.update(kw)
    return ContainerState(**values)  # type: ignore[arg-type]


def test_write_read_find(tmp_path: Path) -> None:
    write_state(_state("abc123def456", "web"), str(tmp_path))
    write_state(_state("abd999000111", "db"), str(tmp_path))
    (tmp_path / "torn.json").write_text('{"id": "x"')
    states = read_states(str(tmp_path))
    assert [s.name for s in states] == ["web", "db"] or [s.name for s in states] == ["db", "web"]
    assert [s.id for s in find(states, "web")] == ["abc123def456"]
    assert [s.id for s in find(states, "abc")] == ["abc123def456"]
    assert len(find(states, "ab")) == 0  # too short to be a prefix
    assert len(find(states, "abd9")) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_a_dead_or_reused_supervisor_is_stale() -> None:
    assert supervisor_alive(_state("a", "a"))
    assert not supervisor_alive(_state("a", "a", supervisor_pid=2**22 + 1))
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None
    assert not supervisor_alive(_state("a", "a", supervisor_start_ticks=ticks + 1))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_running_container_is_announced(tmp_path: Path) -> None:
    async with Supervisor(state_dir=str(tmp_path)) as sup:
        container = await sup.start(ContainerSpec(["sleep", "30"], name="announced",
                                                  limits=Limits(memory_bytes=64 << 20)))
        (state,) = read_states(str(tmp_path))
        assert (state.id, state.name, state.pid) == (container.id, "announced", container.pid)
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
