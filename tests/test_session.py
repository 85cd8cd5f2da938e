"""The test session's own cgroup and state directory (tests/session.py): what makes the
suite indifferent to another supervise on the host."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import cgroupfs
from supervisor import ContainerSpec, Supervisor
from supervisor._state import read_states, state_dir

from . import conftest
from .containers import PYTHON
from .session import SESSION_PREFIX, SessionCgroup

pytestmark = [pytest.mark.cgroup_v2, pytest.mark.usefixtures("root_only")]


def _session() -> SessionCgroup:
    if conftest.SESSION is None:  # the fallback, announced by a warning
        pytest.skip("no cgroup of the session's own (see the warning)")
    return conftest.SESSION


def _below(path: str, directories: list[str]) -> bool:
    return any(path.startswith(d.rstrip("/") + "/") for d in directories)


def test_pytest_is_in_the_sessions_cgroup_and_state_directory() -> None:
    session = _session()
    layout = cgroupfs.detect_layout()
    assert {os.path.basename(d) for d in session.dirs} == {f"{SESSION_PREFIX}{os.getpid()}"}
    if layout.kind == "v2":
        # In <session>/supervisor-<pid>, which detect_layout sees through: the session
        # holds no process of its own, so it delegates controllers to its children.
        (directory,) = session.dirs
        assert session.leaf == f"{directory}/supervisor-{os.getpid()}"
        assert layout.v2_mount is not None
        own = Path("/proc/self/cgroup").read_text().splitlines()[-1].split(":", 2)[2]
        assert layout.v2_mount.rstrip("/") + own == session.leaf
        assert layout.v2_own_dir() == directory
        available = set(Path(directory, "cgroup.controllers").read_text().split())
        enabled = set(Path(directory, "cgroup.subtree_control").read_text().split())
        assert {"cpu", "memory", "pids"} & available <= enabled
    else:
        unified = {layout.v2_own_dir()} if layout.v2_mount is not None else set()
        own = {layout.v1_own_dir(c) for c in layout.v1_mounts} | unified
        assert own == set(session.dirs)
    assert conftest.supervise_dirs() == sorted(session.supervise_dirs())
    assert os.getpid() in session.processes()
    assert state_dir() == os.environ["SUPERVISE_STATE_DIR"] != "/run/supervise"
    assert stat.S_IMODE(os.stat(state_dir()).st_mode) == 0o700


@pytest.mark.trio
async def test_an_in_process_supervisor_makes_its_containers_below_the_session() -> None:
    session = _session()
    async with Supervisor() as sup:
        container = await sup.start(ContainerSpec(["sleep", "30"]))
        paths = list(container.cgroup.paths)
        assert container.pid in session.processes()
        (state,) = read_states()
        container.kill()
        await container.wait()
    assert paths and all(_below(p, session.supervise_dirs()) for p in paths), paths
    assert sorted(state.cgroup_paths) == sorted(paths)
    if session.leaf is not None:  # v2: pytest was not moved again (the session is empty)
        assert os.getpid() in session.processes()
        assert str(os.getpid()) in Path(session.leaf, "cgroup.procs").read_text().split()


def test_a_cli_child_makes_its_containers_below_the_session() -> None:
    session = _session()
    proc = subprocess.Popen([PYTHON, "-m", "supervisor", "run", "--name", "session-probe",
                             "--stop-timeout", "0.1s", "--", "sleep", "30"])
    try:
        deadline = time.monotonic() + 20
        while not (states := [s for s in read_states() if s.name == "session-probe"]):
            assert time.monotonic() < deadline and proc.poll() is None, "it never started"
            time.sleep(0.02)
        (state,) = states
        assert state.supervisor_pid == proc.pid
        assert all(_below(p, session.supervise_dirs()) for p in state.cgroup_paths), state
        assert {proc.pid, state.pid} <= session.processes()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 137  # sleep as PID 1 ignores SIGTERM: killed
