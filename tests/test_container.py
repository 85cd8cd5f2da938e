"""Real containers through the Supervisor API, on trio and on asyncio."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import anyio
import pytest

import cgroupfs
from supervisor import ContainerSpec, Limits, SuperviseError, Supervisor

from .containers import PYTHON, run_capture, shown

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("root_only")]


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.cgroup_v2
async def test_pid_one_and_only_its_processes() -> None:
    async with Supervisor() as sup:
        result, out, _ = await run_capture(sup, ["sh", "-c", "echo $$; ps -e -o pid=,comm="])
    assert result.status == "ok" and result.exit_code == 0
    lines = out.split()
    assert lines[0] == "1"
    pids = [int(p) for p in lines[1::2]]
    assert pids[0] == 1 and len(pids) == 2, out  # sh and ps, nothing of the host


async def test_hostname_is_the_containers_and_the_hosts_is_unchanged() -> None:
    before = socket.gethostname()
    async with Supervisor() as sup:
        _, out, _ = await run_capture(sup, ["hostname"], hostname="box-1")
    assert out.strip() == "box-1"
    assert socket.gethostname() == before


async def test_only_loopback_and_it_is_up() -> None:
    async with Supervisor() as sup:
        _, out, _ = await run_capture(sup, ["ip", "-o", "link"])
        _, ping, _ = await run_capture(
            sup, [PYTHON, "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); "
                  "s.listen(); c=socket.create_connection(s.getsockname()); print('connected')"])
        _, host_net, _ = await run_capture(sup, ["ip", "-o", "link"], network="host")
    links = out.strip().splitlines()
    assert len(links) == 1 and links[0].startswith("1: lo:"), out
    assert "UP" in links[0].split("<")[1].split(">")[0].split(",")
    assert ping.strip() == "connected"
    assert len(host_net.strip().splitlines()) == len(socket.if_nameindex())


async def test_mount_inside_is_invisible_outside(tmp_path: Path) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    async with Supervisor() as sup:
        result, out, _ = await run_capture(
            sup, ["sh", "-c", f"mount -t tmpfs none {target} && touch {target}/inside "
                  f"&& grep -c ' {target} ' /proc/self/mountinfo"],
            cap_add=["SYS_ADMIN"],  # mounting needs it; the default set lacks it
            volumes=shown(tmp_path))
    assert result.exit_code == 0 and out.strip() == "1"
    assert str(target) not in Path("/proc/self/mountinfo").read_text()
    assert not (target / "inside").exists()


@pytest.mark.cgroup_v2
async def test_memory_limit_oom_kill() -> None:
    async with Supervisor() as sup:
        result, _, _ = await run_capture(
            sup, [PYTHON, "-c", "x = bytearray(200 << 20)"],
            limits=Limits(memory_bytes=32 << 20, memory_swap_bytes=32 << 20))
    assert result.oom_killed is True
    assert result.exit_code == 137
    assert result.status == "oom"
    assert result.peak_memory_bytes is not None
    assert result.peak_memory_bytes <= 32 << 20
    assert result.memory_limit_bytes == 32 << 20


FORK_UNTIL_REFUSED = """
import os, time
children = []
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print(len(children) + 1)
"""


@pytest.mark.cgroup_v2
async def test_pids_limit_stops_a_fork_loop() -> None:
    async with Supervisor() as sup:
        result, out, _ = await run_capture(
            sup, [PYTHON, "-c", FORK_UNTIL_REFUSED], limits=Limits(pids_max=16))
    # PID 1 exits, the namespace goes with it: no sleeper outlives the test.
    assert result.exit_code == 0
    assert int(out) == 16


@pytest.mark.cgroup_v2
async def test_cpu_quota_holds_a_busy_loop_to_half_a_cpu() -> None:
    async with Supervisor() as sup:
        container = await sup.start(ContainerSpec(
            ["sh", "-c", "while :; do :; done"], limits=Limits(cpu_quota_us=50000,
                                                               cpu_period_us=100000)))
        await anyio.sleep(0.5)  # past the start
        first = container.stats()
        await anyio.sleep(3)
        second = container.stats()
        await container.stop(0)
        await container.wait()
    assert first.cpu_usage_ns is not None and second.cpu_usage_ns is not None
    elapsed = (second.sampled_at_ns or 0) - (first.sampled_at_ns or 0)
    cpus = (second.cpu_usage_ns - first.cpu_usage_ns) / elapsed
    assert 0.4 <= cpus <= 0.6, cpus
    assert second.throttled_periods and second.throttled_periods > 0


@pytest.mark.cgroup_v2
async def test_cpuset_pins_the_command() -> None:
    async with Supervisor() as sup:
        _, out, _ = await run_capture(
            sup, ["grep", "Cpus_allowed_list", "/proc/self/status"],
            limits=Limits(cpuset_cpus="0"))
    assert out.split()[-1] == "0"


@pytest.mark.cgroup_v2
async def test_shares_land_as_runc_writes_them() -> None:
    async with Supervisor() as sup:
        container = await sup.start(ContainerSpec(["sleep", "30"], limits=Limits(cpu_shares=512)))
        try:
            files = {Path(p).name: Path(p) for p in container.cgroup.paths}
            if sup.layout is not None and sup.layout.kind == "v2":
                (path,) = container.cgroup.paths
                weight = Path(path, "cpu.weight").read_text().strip()
                assert weight == str(cgroupfs.shares_to_weight(512)) == "20"
            else:
                cpu_dir = next(p for p in container.cgroup.paths if "/cpu/" in p)
                assert Path(cpu_dir, "cpu.shares").read_text().strip() == "512"
            assert files
        finally:
            container.kill()
            await container.wait()


async def test_environment_and_workdir(tmp_path: Path) -> None:
    async with Supervisor() as sup:
        _, out, _ = await run_capture(
            sup, ["sh", "-c", 'echo "$GREETING|$PWD|$PATH"'],
            env={"GREETING": "hello world", "PATH": "/usr/bin:/bin"}, workdir=str(tmp_path),
            volumes=shown(tmp_path))
    assert out.strip() == f"hello world|{tmp_path}|/usr/bin:/bin"


async def test_arguments_reach_the_command_byte_for_byte() -> None:
    args = ["a b", "'q'", '"dq"', "", "line\nbreak", "ünï€ode", "$HOME", "*", "\t"]
    async with Supervisor() as sup:
        _, out, _ = await run_capture(
            sup, [PYTHON, "-c", "import sys; print(repr(sys.argv[1:]))", *args])
    assert out.strip() == repr(args)


async def test_exit_status_signal_and_exec_failures(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho no\n")
    async with Supervisor() as sup:
        status, _, _ = await run_capture(sup, ["sh", "-c", "exit 3"])
        # PID 1 without a handler is protected from signals sent inside its namespace.
        protected, _, _ = await run_capture(sup, ["sh", "-c", "kill -USR1 $$; sleep 0.2"])
        child, _, _ = await run_capture(sup, ["sh", "-c", "sh -c 'kill -KILL $$'; exit $?"])
        missing, _, _ = await run_capture(sup, ["no-such-command-xyz"])
        denied, _, _ = await run_capture(sup, [str(script)], volumes=shown(tmp_path))
    assert (status.exit_code, status.status) == (3, "failed")
    assert (protected.exit_code, protected.status) == (0, "ok")
    assert child.exit_code == 137
    assert missing.exit_code == 127 and "No such file" in (missing.error or "")
    assert denied.exit_code == 126 and "Permission denied" in (denied.error or "")


async def test_killed_by_a_signal_reports_it() -> None:
    async with Supervisor() as sup:
        container = await sup.start(ContainerSpec(["sleep", "30"]))
        container.kill()
        result = await container.wait()
    assert (result.exit_code, result.signal, result.status) == (137, 9, "signaled")


async def test_timeout_stops_the_container() -> None:
    async with Supervisor() as sup:
        started = time.monotonic()
        result, _, _ = await run_capture(
            sup, ["sleep", "30"], timeout=0.5, stop_timeout=0.5)
        elapsed = time.monotonic() - started
    assert result.timed_out and result.status == "timeout"
    assert elapsed < 5


async def test_leaving_the_supervisor_stops_everything() -> None:
    async with Supervisor() as sup:
        containers = [await sup.start(ContainerSpec(["sleep", "30"], stop_timeout=0.2))
                      for _ in range(3)]
        pids = [c.pid for c in containers]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


async def test_cancellation_stops_and_removes_the_container() -> None:
    async with Supervisor() as sup:
        container = await sup.start(ContainerSpec(["sleep", "30"], stop_timeout=0.2))
        with anyio.move_on_after(0.3):
            await container.wait()
        result = await container.wait()
        assert result.status == "cancelled"
        assert not any(os.path.exists(p) for p in container.cgroup.paths)


async def test_names_are_unique_among_live_containers() -> None:
    async with Supervisor() as sup:
        first = await sup.start(ContainerSpec(["sleep", "30"], name="web"))
        with pytest.raises(SuperviseError, match="already in use"):
            await sup.start(ContainerSpec(["true"], name="web"))
        first.kill()
        await first.wait()
        again, _, _ = await run_capture(sup, ["true"], name="web")
    assert again.status == "ok"


async def test_cpu_and_memory_figures_come_from_the_cgroup() -> None:
    async with Supervisor() as sup:
        result, _, _ = await run_capture(
            sup, [PYTHON, "-c", "x = bytearray(50 << 20); sum(range(3_000_000))"],
            limits=Limits(memory_bytes=256 << 20))
    assert result.status == "ok"
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes >= 50 << 20
    assert result.cpu_user_s is not None and result.cpu_user_s > 0
    assert result.cpu_system_s is not None
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", result.started_at)
    assert result.wall_s > 0


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"argv": "echo hi"}, TypeError, "argv must be a list of strings"),  # would run "e"
    ({"argv": [b"echo"]}, TypeError, "argv must be a list of strings"),
    ({"argv": []}, ValueError, "needs a command"),
    ({"argv": ["true"], "network": "bridge"}, ValueError, "network='bridge'"),  # ran as none
    ({"argv": ["true"], "fs": "overlay"}, ValueError, "fs='overlay'"),
    ({"argv": ["true"], "stdout": "out.txt"}, TypeError, "stdout must be an fd"),
    ({"argv": ["true"], "env": {"N": 1}}, TypeError, "env must map names to values"),
    ({"argv": ["true"], "limits": {"memory_bytes": 1}}, TypeError, "cgroupfs.Limits"),
])
def test_the_api_refuses_wrong_types_and_values_at_once(kwargs: dict[str, object],
                                                       error: type[Exception],
                                                       words: str) -> None:
    """A wrong type or an unknown value raises where the spec is made, with the field
    named, not at exec (or silently, as network="bridge" ran without a network)."""
    with pytest.raises(error, match=re.escape(words)):
        ContainerSpec(**kwargs)  # type: ignore[arg-type]
