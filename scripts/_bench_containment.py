"""What containment costs per container, step by step, measured with supervise's own code.

Used by scripts/_bench.py (sections single and batch). Two sides:

- The supervisor: the container's cgroups as `Supervisor._start` makes them for
  `-m 64m` (its own cgroup in the hierarchies with figures or a limit, and the
  `leaf` child that holds its processes, the root of its cgroup namespace), made and
  removed; and the same without the leaf, so the leaf's share shows.
- PID 1: the plan the spawner compiles for a default container (`nsutil._plan`), run
  one step at a time in a child the spawner's way (clone3 into a new PID namespace),
  each step timed and grouped by what it does: the keyring, joining the cgroups,
  namespaces and lo, /proc, the cgroup view (`/sys/fs/cgroup`), /sys and /proc
  hardening, stdio and hostname, capabilities, signals and fds, and seccomp. The child
  stops before exec (the command's own cost is not containment). The first steps
  (the death signal's prctl) also pay the child's first copy-on-write faults.

Root only; everything it makes is removed before it returns.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The groups of PID 1's steps that are containment: what docker's defaults stand for
# (capabilities, a read-only /sys, a masked /proc) and what issue 11 added (keyring,
# the cgroup view, seccomp). With the cgroup leaf, the containment a container costs.
CONTAINMENT_GROUPS = ("keyring", "cgroup view", "hardening /sys, /proc", "file system view",
                      "capabilities",
                      "seccomp")


def group_of(step: str, what: str) -> str:
    """The group a plan step belongs to, by its failure's step name and description."""
    if step == "mount":
        if what.startswith(("making / private", "making the host's tree", "unmounting the host",
                            "making the container's /dev", "mounting the container's /dev",
                            "mounting a tmpfs", "making /dev/console")):
            return "file system view"
        if "cgroup" in what:
            return "cgroup view"
        if what == "mounting /proc":
            return "namespaces, /proc"
        return "hardening /sys, /proc"
    return {
        "keyring": "keyring", "cgroup": "joining cgroups", "unshare": "namespaces, /proc",
        "loopback": "lo up", "hostname": "stdio, hostname", "stdio": "stdio, hostname",
        "capabilities": "capabilities", "user": "capabilities", "seccomp": "seccomp",
        "signals": "signals, fds", "fds": "signals, fds", "prctl": "prctl",
    }.get(step, "other")


def _spec(cgroup: Any, loopback: bytes | None) -> Any:
    from supervisor._spec import ContainerSpec

    return ContainerSpec(["true"]).init_spec(
        hostname="bench", cgroup_join=cgroup.join_files, cgroup_fd=None,
        cgroup_v2_join=cgroup.v2_join_file, loopback_request=loopback, stdio=(0, 0, 0),
        devices=None, device_cgroup_fd=None, cwd=os.getcwd())


def _timed_child(plan: Any, write_end: int) -> None:
    """In the child: each step alone (with its failure policy), timed; the times go
    up the pipe as JSON (write is allowed after seccomp too); never returns."""
    from nsutil import _init

    try:
        times: list[tuple[str, int]] = []
        for step in plan.steps:
            _fn, _args, failure = step
            t0 = time.perf_counter_ns()
            _init.run_steps((step,))
            times.append((group_of(failure[0], failure[1]), time.perf_counter_ns() - t0))
        os.write(write_end, json.dumps(times).encode())
        os._exit(0)
    except BaseException as exc:  # report anything, never return
        os.write(write_end, json.dumps({"error": repr(exc)}).encode())
        os._exit(1)


def _cgroup(name: str, layout: Any) -> Any:
    """A -m 64m container's cgroups, as the supervisor makes them."""
    import cgroupfs

    return cgroupfs.create_cgroup(name, limits=cgroupfs.Limits(memory_bytes=64 << 20),
                                  layout=layout, remove_parent=False,
                                  v1_controllers={"memory", "cpuacct"})


def _plan_for(cgroup: Any, layout: Any, host: Any, loopback: bytes | None, devnull: int
              ) -> tuple[int | None, int, int, Any]:
    """A default container's plan in that cgroup: (the cgroup's fd for clone3 on v2,
    the error pipe's two ends, the plan)."""
    from nsutil import _plan

    clone_fd = cgroup.open_for_clone() if layout.kind == "v2" else None
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    plan = _plan.compile_plan(_spec(cgroup, loopback), [devnull], host, write_end,
                              joined=clone_fd is not None)
    return clone_fd, read_end, write_end, plan


def pid1_steps(runs: int) -> dict[str, float]:
    """Median microseconds per group of PID 1's steps, over runs children."""
    sys.path.insert(0, str(ROOT))
    import cgroupfs
    from nsutil import _libc, _plan
    from supervisor._loopback import loopback_up_request
    from supervisor._state import cache_dir

    layout = cgroupfs.detect_layout()
    host = _plan.Host.learn()
    loopback = loopback_up_request(cache_dir())
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    totals: dict[str, list[float]] = {}
    try:
        for n in range(runs):
            cgroup = _cgroup(f"bench-{os.getpid()}-{n}", layout)
            try:
                clone_fd, read_end, write_end, plan = _plan_for(cgroup, layout, host, loopback,
                                                                devnull)
                pid = _libc.clone3(_libc.CLONE_NEWPID, clone_fd)
                if pid == 0:
                    _timed_child(plan, write_end)
                os.close(write_end)
                if clone_fd is not None:
                    os.close(clone_fd)
                with os.fdopen(read_end, "rb") as f:
                    report = json.loads(f.read() or b"{}")
                os.waitpid(pid, 0)
            finally:
                cgroup.destroy(timeout=5.0)
            if isinstance(report, dict):
                raise RuntimeError(f"PID 1's steps failed: {report.get('error')}")
            run: dict[str, float] = {}
            for group, ns in report:
                run[group] = run.get(group, 0.0) + ns / 1000
            for group, us in run.items():
                totals.setdefault(group, []).append(us)
    finally:
        os.close(devnull)
    return {group: statistics.median(values) for group, values in totals.items()}


def native_start(runs: int) -> float | None:
    """Median microseconds of a default container's native start (nsutil._native: its
    plan as machine code's data, in a child sharing this process's memory), from the
    clone to the child's exec of `true` (the launcher is blocked until then); None
    where there is no native start."""
    sys.path.insert(0, str(ROOT))
    import cgroupfs
    from nsutil import _libc, _native, _plan
    from supervisor._loopback import loopback_up_request
    from supervisor._state import cache_dir

    if not _native.available():
        return None
    layout = cgroupfs.detect_layout()
    host = _plan.Host.learn()
    host.spawner_pidfd = os.pidfd_open(os.getpid())
    launcher = _native.Launcher()
    loopback = loopback_up_request(cache_dir())
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    times: list[float] = []
    try:
        for n in range(runs + 1):  # the first compiles the seccomp filter: untimed
            cgroup = _cgroup(f"bench-native-{os.getpid()}-{n}", layout)
            try:
                clone_fd, read_end, write_end, plan = _plan_for(cgroup, layout, host, loopback,
                                                                devnull)
                program = _native.lower(plan, host)
                if program is None:
                    raise RuntimeError("a default container's plan was not lowered")
                t0 = time.perf_counter_ns()
                pid, pidfd = launcher.spawn(program, write_end, _libc.CLONE_NEWPID, clone_fd)
                elapsed = time.perf_counter_ns() - t0
                os.close(write_end)
                os.close(pidfd)
                if clone_fd is not None:
                    os.close(clone_fd)
                report = program.report(os.read(read_end, 4096))
                os.close(read_end)
                os.waitpid(pid, 0)
                if report is not None:
                    raise RuntimeError(f"the native start failed: {report.message}")
            finally:
                cgroup.destroy(timeout=5.0)
            if n:
                times.append(elapsed / 1000)
    finally:
        os.close(devnull)
        os.close(host.spawner_pidfd)
    return statistics.median(times)


def cgroup_costs(runs: int) -> tuple[float, float]:
    """Median microseconds to make and remove a `-m 64m` container's cgroups, with
    the leaf (as supervise does) and without it."""
    sys.path.insert(0, str(ROOT))
    import cgroupfs

    layout = cgroupfs.detect_layout()
    limits = cgroupfs.Limits(memory_bytes=64 << 20)

    def once(n: int, leaf: str | None) -> float:
        t0 = time.perf_counter_ns()
        cgroup = cgroupfs.create_cgroup(
            f"bench-{os.getpid()}-{n}", limits=limits, layout=layout, remove_parent=False,
            v1_controllers={"memory", "cpuacct"}, leaf=leaf, unified=False)
        if not cgroup.remove_if_empty():
            cgroup.destroy(timeout=5.0)
        return (time.perf_counter_ns() - t0) / 1000

    with_leaf: list[float] = []
    without: list[float] = []
    for n in range(runs):
        with_leaf.append(once(n, cgroupfs.LEAF))
        without.append(once(n, None))
    return statistics.median(with_leaf), statistics.median(without)


def measure(runs: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Everything above: {"pid1_us": {group: us}, "native_us": ..., "cgroups_us": with
    leaf, "cgroups_without_leaf_us": ...}; {"error": message} if it could not be
    measured."""
    try:
        steps = pid1_steps(runs)
        native = native_start(runs)
        with_leaf, without = cgroup_costs(runs)
    except Exception as exc:  # a bench row left empty, with the reason
        say(f"containment costs: {exc}")
        return {"error": str(exc)}
    return {"pid1_us": steps, "native_us": native, "cgroups_us": with_leaf,
            "cgroups_without_leaf_us": without}
