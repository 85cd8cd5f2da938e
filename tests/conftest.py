"""Shared fixtures: the session's own cgroup and state directory, real-kernel guards,
and the leak check every test runs under.

The leak check looks only at what this session made (see tests/session.py): cgroups
below ``<session>/supervise``, processes in the session's cgroups other than pytest,
state files in the session's state directory, and our fds. Another supervise on the
host, or a process that merely mentions nsutil.spawner, is none of its business.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from inspect import iscoroutinefunction
from pathlib import Path

import pytest

import cgroupfs

from .session import (
    SessionCgroup,
    SessionError,
    command_line,
    descendants,
    processes_below,
)

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

LEAK_GRACE_S = 2.0  # how long a process on its way out may take to be gone
# This session's cgroup (None: not root, or it could not be made), set by isolated_session.
SESSION: SessionCgroup | None = None


# -- where this session's things are ------------------------------------------------------
def supervise_dirs() -> list[str]:
    """`<own>/supervise` in each hierarchy: where containers' cgroups live by default
    (with the session cgroup, ``<session>/supervise``: ours alone)."""
    try:
        return cgroupfs.supervise_parents(cgroupfs.detect_layout())
    except cgroupfs.CgroupError:
        return []


def container_cgroups() -> set[str]:
    found: set[str] = set()
    for base in supervise_dirs():
        if os.path.isdir(base):
            found.update(
                os.path.join(base, entry) for entry in os.listdir(base)
                if os.path.isdir(os.path.join(base, entry))
            )
    return found


def container_processes() -> set[int]:
    """Processes in a container cgroup of this session (below `<own>/supervise`)."""
    return processes_below([d for d in supervise_dirs() if os.path.isdir(d)])


def session_processes() -> set[int]:
    """This session's processes other than pytest: containers, spawners, CLI children and
    whatever they started (without a session cgroup: pytest's descendants)."""
    if SESSION is None:
        return descendants(os.getpid())
    return SESSION.processes() - {os.getpid()}


def session_spawners() -> set[int]:
    """The spawners among this session's processes."""
    found: set[int] = set()
    for pid in session_processes():
        with contextlib.suppress(OSError):
            if b"nsutil.spawner" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
    return found


def state_files() -> set[str]:
    from supervisor._state import state_dir

    found: set[str] = set()
    for sub in ("", "names"):
        with contextlib.suppress(FileNotFoundError):
            found.update(os.path.join(sub, e) for e in os.listdir(os.path.join(state_dir(), sub))
                         if e != "names")
    return found


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


# -- async tests: one plugin each ----------------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two plugins run async tests here: pytest-trio (@pytest.mark.trio: the CLI's paths
    and the containment suite, on trio as the CLI runs) and anyio's (@pytest.mark.anyio:
    the Python API, on both backends). Each async test must be claimed by exactly one,
    which pytest-trio's trio_mode (every async test is trio's) would break."""
    if config.getini("trio_mode"):
        raise pytest.UsageError("trio_mode must stay off: anyio's plugin runs the API tests")
    wrong = []
    for item in items:
        function = getattr(item, "obj", None)
        inner = getattr(getattr(function, "hypothesis", None), "inner_test", function)
        if not iscoroutinefunction(inner):
            continue
        by_trio = item.get_closest_marker("trio") is not None
        by_anyio = "anyio_backend" in getattr(item, "fixturenames", ())
        if by_trio == by_anyio:
            wrong.append(f"{item.nodeid} ({'both plugins' if by_trio else 'no plugin'})")
    if wrong:
        raise pytest.UsageError("async tests need @pytest.mark.trio or @pytest.mark.anyio,"
                                " not both: " + ", ".join(wrong))


# -- the session ----------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def isolated_session() -> Iterator[None]:
    """A fresh state directory ($SUPERVISE_STATE_DIR, inherited by CLI children) and, as
    root, a cgroup of this session's own; both removed at the end, and anything left in
    them fails the run."""
    global SESSION
    state = tempfile.mkdtemp(prefix="supervise-tests-state-")  # mode 0700
    previous = os.environ.get("SUPERVISE_STATE_DIR")
    os.environ["SUPERVISE_STATE_DIR"] = state
    if os.geteuid() == 0:
        try:
            SESSION = SessionCgroup.create()
        except SessionError as exc:
            warnings.warn(pytest.PytestWarning(
                f"no cgroup of this test session's own ({exc}): containers go below the"
                " shared <own>/supervise, and another supervise on this host may upset the"
                " leak checks"), stacklevel=1)
    try:
        yield
    finally:
        problems = SESSION.close() if SESSION is not None else []
        SESSION = None
        if previous is None:
            del os.environ["SUPERVISE_STATE_DIR"]
        else:
            os.environ["SUPERVISE_STATE_DIR"] = previous
        left = sorted(str(p.relative_to(state)) for p in Path(state).rglob("*"))
        if left:
            problems.append(f"state files left in {state}: {left}")
        shutil.rmtree(state, ignore_errors=True)
    if problems:
        pytest.fail("the test session did not end clean:\n" + "\n".join(problems),
                    pytrace=False)


# -- guards ---------------------------------------------------------------------------------
@pytest.fixture
def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces and cgroups)")


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """No cgroup, process, state file or fd of this session outlives a test."""
    if os.geteuid() != 0 or request.node.get_closest_marker("no_leak_check"):
        yield
        return
    cgroups, procs = container_cgroups(), session_processes()
    fds, states = open_fds(), state_files()
    yield
    leaked_cgroups = container_cgroups() - cgroups
    leaked_procs = _still_there(session_processes, procs)
    leaked_fds = {fd for fd in open_fds() - fds if _fd_target(fd) is not None}
    leaked_states = state_files() - states
    assert not leaked_cgroups, f"cgroups left behind: {sorted(leaked_cgroups)}"
    assert not leaked_procs, f"processes left behind: {_describe(leaked_procs)}"
    assert not leaked_states, f"state files left behind: {sorted(leaked_states)}"
    assert not leaked_fds, f"fds left open: {[(fd, _fd_target(fd)) for fd in leaked_fds]}"


def _still_there(now: Callable[[], set[int]], before: set[int],
                 timeout: float = LEAK_GRACE_S) -> set[int]:
    """What ``now()`` has beyond ``before`` once whatever was on its way out is gone: a
    process whose parent just exited (a CLI's spawner, by its parent-death signal) takes
    a moment to end."""
    deadline = time.monotonic() + timeout
    while (new := now() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    return new


def _describe(pids: set[int]) -> list[str]:
    """pid, command line and, for a container, its cgroup: what a leak message shows."""
    containers = container_processes()
    shown = []
    for pid in sorted(pids):
        kind = "container" if pid in containers else "process"
        shown.append(f"{pid} ({kind}: {command_line(pid)})")
    return shown


def _fd_target(fd: int) -> str | None:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    # pytest's own capture files and the event loop's internals come and go.
    if target.startswith(("/tmp/pytest-of", "anon_inode:[eventpoll]", "anon_inode:[eventfd]")):
        return None
    return target
