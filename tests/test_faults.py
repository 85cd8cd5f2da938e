"""Faults: the supervisor or the spawner killed, mid-batch and mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from supervisor import ContainerSpec, Supervisor
from supervisor._state import read_states

from .conftest import container_cgroups, container_processes, session_spawners, state_files
from .containers import PYTHON, supervise

pytestmark = [pytest.mark.usefixtures("root_only"), pytest.mark.hardening]


def _children_named(parent: int, needle: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
            cmdline = Path("/proc", entry, "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        if ppid == parent and needle in cmdline:
            found.append(int(entry))
    return found


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for the host's init (its parent, the spawner, died)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def _wait_until(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - started


def test_sigkill_of_the_supervisor_mid_batch(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\n" * 20 + "sleep 60\n" * 50 + "true\n" * 30)
    results = tmp_path / "r.jsonl"
    procs_before, cgroups_before = container_processes(), container_cgroups()
    states_before = state_files()
    batch = subprocess.Popen([PYTHON, "-m", "supervisor", "batch", str(jobs), "-j", "50",
                              "--no-live", "--results", str(results)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # 50 sleeps recorded as started fill every slot (-j 50): no container is being made
    # when the supervisor dies, so each one left behind is in a state file for gc.
    _wait_until(lambda: sum(s.argv == ["sleep", "60"] for s in read_states()) == 50, 60,
                "50 running containers")
    batch.send_signal(signal.SIGKILL)
    batch.wait()
    gone = _wait_until(lambda: not (container_processes() - procs_before), 5,
                       "every container process gone")
    assert gone < 2.0, f"containers outlived their supervisor by {gone:.2f}s"
    # The results so far are valid JSON Lines (a torn last line at most).
    lines = results.read_text().splitlines() if results.exists() else []
    for line in lines[:-1]:
        json.loads(line)
    # Stale cgroups and state files remain until the next supervise cleans them up.
    assert container_cgroups() - cgroups_before
    assert state_files() - states_before
    done = supervise("gc")
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stdout
    assert not (container_cgroups() - cgroups_before)
    assert not (state_files() - states_before)


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_a_killed_spawner_is_replaced() -> None:
    warnings: list[str] = []
    async with Supervisor(warn=warnings.append) as sup:
        running = [await sup.start(ContainerSpec(["sleep", "60"])) for _ in range(3)]
        (spawner,) = _children_named(os.getpid(), b"nsutil.spawner")
        os.kill(spawner, signal.SIGKILL)
        results = [await c.wait() for c in running]
        assert [r.status for r in results] == ["error"] * 3
        assert all("spawner died" in (r.error or "") for r in results)
        for c in running:  # PID 1s died with their spawner; cgroups are gone
            assert _dead(c.pid)
            assert not any(os.path.exists(p) for p in c.cgroup.paths)
        # A new spawner serves what comes next.
        after = await sup.run(ContainerSpec(["sh", "-c", "exit 4"]))
        assert (after.status, after.exit_code) == ("failed", 4)
        assert sup.spawner_restarts == 1
        (successor,) = _children_named(os.getpid(), b"nsutil.spawner")
        assert successor != spawner
    assert len(warnings) == 1 and "died" in warnings[0]


@pytest.mark.anyio
async def test_a_spawner_that_keeps_dying_is_given_up() -> None:
    from supervisor import SuperviseError
    from supervisor._supervisor import SPAWNER_RESTARTS

    warnings: list[str] = []
    async with Supervisor(warn=warnings.append) as sup:
        for _ in range(SPAWNER_RESTARTS):
            (spawner,) = _children_named(os.getpid(), b"nsutil.spawner")
            os.kill(spawner, signal.SIGKILL)
            with anyio.fail_after(10):
                while not warnings or (str(spawner) not in warnings[-1]
                                       and "giving up" not in warnings[-1]):
                    await anyio.sleep(0.01)
        with pytest.raises(SuperviseError, match="giving up"):
            await sup.run(ContainerSpec(["true"]))
    assert not session_spawners()


def test_a_full_logs_directory_warns_once_and_the_batch_goes_on(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,nr_inodes=8", "tmpfs", str(logs)],
                   check=True)
    try:
        jobs = tmp_path / "jobs.txt"
        jobs.write_text("head -c 100000 /dev/zero\n" * 12 + "echo last\n")
        results = tmp_path / "r.jsonl"
        done = supervise("batch", str(jobs), "-j", "1", "--logs", str(logs),
                         "--results", str(results))
        records = [json.loads(line) for line in results.read_text().splitlines()]
        assert len(records) == 13  # every job ran and was recorded
        warnings = [line for line in done.stderr.splitlines() if str(logs) in line]
        # one warning: "is full", or "cannot be created" (out of inodes), whichever first
        assert len(warnings) == 1, done.stderr
        assert "is full" in warnings[0] or "No space left on device" in warnings[0]
        assert records[0]["status"] == "ok" and records[0]["stdout_path"]
        # Once no log can be created, jobs run with their output discarded: ok again.
        assert records[-1]["status"] == "ok" and records[-1]["stdout_path"] is None
        assert "Traceback" not in done.stderr
    finally:
        subprocess.run(["umount", str(logs)], check=True)


@pytest.mark.anyio
async def test_a_cgroup_that_cannot_be_removed_keeps_its_state_for_gc(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cgroupfs
    from supervisor._gc import gc

    async with Supervisor(state_dir=str(tmp_path)) as sup:
        container = await sup.start(ContainerSpec(["true"]))

        def failing_destroy(timeout: float = 5.0) -> None:
            raise cgroupfs.CgroupError("destroying: processes still there (simulated)")

        # A process that will not die keeps it busy: not empty, and destroy gives up.
        monkeypatch.setattr(container.cgroup, "remove_if_empty", lambda: False)
        monkeypatch.setattr(container.cgroup, "destroy", failing_destroy)
        result = await container.wait()
        monkeypatch.undo()
        assert result.error is not None and "simulated" in result.error
        (kept,) = read_states(str(tmp_path))
        assert kept.id == container.id
    # Once its supervisor is gone, gc removes the cgroup everywhere from the recorded paths
    # (our own process is the "supervisor" here: pretend it is dead).
    monkeypatch.setattr("supervisor._state.supervisor_alive", lambda state: False)
    report = gc(str(tmp_path))
    assert any(container.id in line for line in report.removed), report
    assert read_states(str(tmp_path)) == []
    assert not any(os.path.exists(p) for p in container.cgroup.paths)
