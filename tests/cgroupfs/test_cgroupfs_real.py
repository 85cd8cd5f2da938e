"""cgroupfs against the running kernel (as root): real cgroups, processes and OOM kills.

Tests marked ``cgroup_v2`` are written against the Cgroup protocol and run on
v1/hybrid hosts and inside a cgroup-v2 VM alike; v1-only tests say so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import cgroupfs
from cgroupfs import CgroupError, Limits, _fs

from .conftest import require_controller


def joiner(cgroup: cgroupfs.Cgroup) -> Callable[[], None]:
    """A preexec_fn that joins the cgroup the way the spawner's child does without
    clone3: "0" into each of its join files (v1: tasks, which moves the writing thread,
    here the only one) and its v2 cgroup.procs."""
    join_files = (*cgroup.join_files,
                  *((cgroup.v2_join_file,) if cgroup.v2_join_file is not None else ()))

    def join() -> None:
        for path in join_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    return join


def read(directory: str, name: str) -> str:
    return Path(directory, name).read_text().strip()


def file_dir(cgroup: cgroupfs.Cgroup, filename: str) -> str:
    """The directory holding ``filename`` (on v1 each controller has its own)."""
    for path in cgroup.paths:
        if os.path.exists(os.path.join(path, filename)):
            return path
    raise AssertionError(f"{filename} in none of {cgroup.paths}")


@pytest.fixture
def made(real_layout: cgroupfs.Layout) -> Iterator[list[cgroupfs.Cgroup]]:
    """Cgroups a test makes; destroyed afterwards even when the test fails."""
    cgroups: list[cgroupfs.Cgroup] = []
    yield cgroups
    for cgroup in cgroups:
        cgroup.destroy()


@pytest.mark.cgroup_v2
def test_limits_land_in_the_files(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    for controller in ("memory", "cpu", "pids", "cpuset"):
        require_controller(real_layout, controller)
    limits = Limits(
        memory_bytes=64 << 20,
        cpu_shares=512,
        cpu_quota_us=50_000,
        cpuset_cpus="0",
        cpuset_mems="0",
        pids_max=50,
    )
    cgroup = cgroupfs.create_cgroup(cgroup_name, limits=limits, layout=real_layout)
    made.append(cgroup)
    assert all(os.path.basename(p) == cgroup_name for p in cgroup.paths)
    assert all(os.path.dirname(p).endswith("/supervise") for p in cgroup.paths)
    if real_layout.kind == "v2":
        path = cgroup.paths[0]
        assert read(path, "memory.max") == str(64 << 20)
        assert read(path, "cpu.weight") == "20"
        assert read(path, "cpu.max") == "50000 100000"
        assert read(path, "pids.max") == "50"
        assert read(path, "cpuset.cpus") == "0"
    else:
        assert read(file_dir(cgroup, "memory.limit_in_bytes"), "memory.limit_in_bytes") == str(
            64 << 20
        )
        assert read(file_dir(cgroup, "cpu.shares"), "cpu.shares") == "512"
        assert read(file_dir(cgroup, "cpu.cfs_quota_us"), "cpu.cfs_quota_us") == "50000"
        assert read(file_dir(cgroup, "cpu.cfs_period_us"), "cpu.cfs_period_us") == "100000"
        assert read(file_dir(cgroup, "pids.max"), "pids.max") == "50"
        assert read(file_dir(cgroup, "cpuset.cpus"), "cpuset.cpus") == "0"
        assert read(file_dir(cgroup, "cpuset.mems"), "cpuset.mems") == "0"


def test_v1_memsw_after_memory_and_raising_both(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    if real_layout.kind == "v2":
        pytest.skip("cgroup v1 only")
    require_controller(real_layout, "memory")
    limits = Limits(memory_bytes=32 << 20, memory_swap_bytes=48 << 20)
    try:
        cgroup = cgroupfs.create_cgroup(cgroup_name, limits=limits, layout=real_layout)
    except CgroupError as exc:
        assert "swapaccount" in str(exc)
        pytest.skip("no swap accounting (memory.memsw.* absent)")
    made.append(cgroup)
    memory_dir = file_dir(cgroup, "memory.memsw.limit_in_bytes")
    assert read(memory_dir, "memory.memsw.limit_in_bytes") == str(48 << 20)
    # raising memory above the current memsw limit needs memsw first
    cgroup.set_limits(Limits(memory_bytes=96 << 20, memory_swap_bytes=128 << 20))
    assert read(memory_dir, "memory.limit_in_bytes") == str(96 << 20)
    assert read(memory_dir, "memory.memsw.limit_in_bytes") == str(128 << 20)


def test_v1_cpuset_is_copied_from_the_parent(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    if real_layout.kind == "v2":
        pytest.skip("cgroup v1 only")
    require_controller(real_layout, "cpuset")
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout)
    made.append(cgroup)
    directory = file_dir(cgroup, "cpuset.cpus")
    parent = os.path.dirname(os.path.dirname(directory))  # above "supervise"
    assert read(directory, "cpuset.cpus") == read(parent, "cpuset.cpus") != ""
    assert read(directory, "cpuset.mems") == read(parent, "cpuset.mems") != ""


@pytest.mark.cgroup_v2
def test_process_lifecycle(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    for controller in ("memory", "pids"):
        require_controller(real_layout, controller)
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout, limits=Limits(pids_max=20))
    made.append(cgroup)
    v1_dirs = len(cgroup.paths) - (1 if real_layout.v2_mount is not None else 0)
    assert [os.path.basename(f) for f in cgroup.join_files] == ["tasks"] * v1_dirs
    if real_layout.kind == "v2":  # one directory, limited: its leaf
        assert cgroup.v2_join_file is not None
        assert cgroup.v2_join_file.endswith("/leaf/cgroup.procs")
    else:  # a leaf where a limit is held (pids), the directory itself elsewhere
        leaves = [f for f in cgroup.join_files if f.endswith("/leaf/tasks")]
        assert len(leaves) == 1 and leaves[0].startswith(real_layout.v1_mounts["pids"] + "/")
    # one process joins the spawner's way, another is added from outside
    script = "x = b'1' * (8 << 20); import time; sum(range(3_000_000)); time.sleep(100)"
    joined = subprocess.Popen([sys.executable, "-c", script], preexec_fn=joiner(cgroup))
    added = subprocess.Popen(["sleep", "100"])
    try:
        cgroup.add_pid(added.pid)
        assert sorted([joined.pid, added.pid]) == cgroup.pids()
        deadline = time.monotonic() + 10
        while (cgroup.stats().memory_usage_bytes or 0) < 8 << 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = cgroup.stats()
        assert stats.memory_usage_bytes is not None and stats.memory_usage_bytes >= 8 << 20
        assert stats.memory_peak_bytes is not None or real_layout.kind == "v2"
        assert stats.cpu_usage_ns is not None and stats.cpu_usage_ns > 0
        assert stats.cpu_user_ns is not None and stats.cpu_system_ns is not None
        assert stats.pids_current == 2
        assert stats.pids_limit == 20
        assert stats.oom_kills == 0
        assert stats.sampled_at_ns is not None
        # what a result needs, and only that
        final = cgroup.stats("final")
        assert final.cpu_user_ns is not None and final.cpu_system_ns is not None
        assert final.memory_peak_bytes is not None or real_layout.kind == "v2"
        assert final.oom_kills == 0
        assert final.memory_usage_bytes is None and final.pids_current is None
        cgroup.kill()
        assert joined.wait(5) == -signal.SIGKILL
        assert added.wait(5) == -signal.SIGKILL
    finally:
        for process in (joined, added):
            process.kill()
            process.wait()
    cgroup.destroy()
    assert not any(os.path.exists(p) for p in cgroup.paths)
    cgroup.destroy()  # idempotent


@pytest.mark.cgroup_v2
def test_kill_catches_a_forking_tree(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout)
    made.append(cgroup)
    shell = subprocess.Popen(
        ["sh", "-c", "sleep 100 & sleep 100 & while :; do sleep 0.01; done"],
        preexec_fn=joiner(cgroup),
    )
    try:
        deadline = time.monotonic() + 5
        while len(cgroup.pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(cgroup.pids()) >= 3
        cgroup.destroy()  # kills the lot, waits, removes
        assert shell.wait(5) == -signal.SIGKILL
        assert not any(os.path.exists(p) for p in cgroup.paths)
    finally:
        shell.kill()
        shell.wait()


@pytest.mark.cgroup_v2
@pytest.mark.slow
def test_real_oom_kill_is_counted(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    require_controller(real_layout, "memory")
    limits = Limits(memory_bytes=32 << 20)
    swap_file = "memory.swap.max" if real_layout.kind == "v2" else "memory.memsw.limit_in_bytes"
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout, limits=limits)
    made.append(cgroup)
    if any(os.path.exists(os.path.join(p, swap_file)) for p in cgroup.paths):
        cgroup.set_limits(Limits(memory_bytes=32 << 20, memory_swap_bytes=32 << 20))
    hog = subprocess.run(
        [sys.executable, "-c", "x = b'1' * (200 << 20)"],
        preexec_fn=joiner(cgroup),
        timeout=60,
        check=False,
    )
    assert hog.returncode == -signal.SIGKILL
    stats = cgroup.stats()
    assert stats.oom_kills is not None and stats.oom_kills >= 1
    assert stats.memory_limit_bytes == 32 << 20
    assert stats.memory_peak_bytes is None or stats.memory_peak_bytes <= 32 << 20


@pytest.mark.cgroup_v2
def test_open_cgroup_from_elsewhere(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout)
    made.append(cgroup)
    opened = cgroupfs.open_cgroup(cgroup_name, layout=real_layout)
    assert set(opened.paths) == set(cgroup.paths)
    assert opened.stats().sampled_at_ns is not None
    opened.destroy()
    assert not any(os.path.exists(p) for p in cgroup.paths)
    with pytest.raises(CgroupError, match="no such cgroup"):
        cgroupfs.open_cgroup(cgroup_name, layout=real_layout)


@pytest.mark.cgroup_v2
def test_a_kernel_refusal_names_file_and_value(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    require_controller(real_layout, "pids")
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout)
    made.append(cgroup)
    pids_max = os.path.join(file_dir(cgroup, "pids.max"), "pids.max")
    with pytest.raises(CgroupError) as caught:
        _fs.write_text(pids_max, "bogus")
    assert str(caught.value) == f"writing bogus to {pids_max}: Invalid argument"


@pytest.mark.cgroup_v2
def test_failed_creation_removes_what_it_made(
    real_layout: cgroupfs.Layout, cgroup_name: str
) -> None:
    require_controller(real_layout, "cpuset")
    nonexistent_cpu = str((os.cpu_count() or 1) + 64)
    with pytest.raises(CgroupError, match=rf"writing {nonexistent_cpu} to .*cpuset\.cpus: "):
        cgroupfs.create_cgroup(
            cgroup_name, layout=real_layout, limits=Limits(cpuset_cpus=nonexistent_cpu)
        )
    # the conftest leak check asserts nothing is left below <own>/supervise


def test_v1_cgroup_parent_overrides_placement(
    real_layout: cgroupfs.Layout, cgroup_name: str
) -> None:
    if real_layout.kind == "v2":
        pytest.skip("cgroup v1 only")
    # A --cgroup-parent is one absolute path for every hierarchy: take those where this
    # process sits at the same path (the session's cgroup; the memory one differs here),
    # and put the parent below it, where the cgroups are ours.
    by_path: dict[str, dict[str, str]] = {}
    for controller, mountpoint in real_layout.v1_mounts.items():
        by_path.setdefault(real_layout.v1_paths[controller], {})[controller] = mountpoint
    own, chosen = max(by_path.items(), key=lambda item: len(item[1]))
    layout = replace(real_layout, v1_mounts=chosen, v2_mount=None)
    top = f"{own.rstrip('/')}/{cgroup_name}-parent"
    parent = f"{top}/jobs"
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=layout, parent=parent)
    try:
        assert {os.path.dirname(p) for p in cgroup.paths} == {
            f"{m}{parent}" for m in set(chosen.values())
        }
        assert all(os.path.dirname(os.path.dirname(os.path.dirname(p))) == layout.v1_own_dir(c)
                   for c in chosen for p in cgroup.paths if p.startswith(chosen[c] + "/"))
    finally:
        cgroup.destroy()
        for mountpoint in set(chosen.values()):
            os.rmdir(f"{mountpoint}{parent}")
            os.rmdir(f"{mountpoint}{top}")


@pytest.mark.cgroup_v2
def test_cgroup_at_reopens_by_recorded_paths(
    real_layout: cgroupfs.Layout, cgroup_name: str
) -> None:
    made = cgroupfs.create_cgroup(cgroup_name, limits=Limits(pids_max=7), layout=real_layout)
    try:
        again = cgroupfs.cgroup_at(list(made.paths), layout=real_layout)
        assert sorted(again.paths) == sorted(made.paths)
        assert again.stats().pids_limit == 7
        assert again.stats("live").pids_current == 0
    finally:
        made.destroy()


def test_v1_without_a_pids_limit_counts_tasks_without_a_pids_hierarchy(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    if real_layout.kind == "v2":
        pytest.skip("v1 only: v2 has every controller in one directory")
    require_controller(real_layout, "memory")
    # A host that does not mount the pids controller.
    layout = replace(real_layout, v1_mounts={c: m for c, m in real_layout.v1_mounts.items()
                                             if c != "pids"})
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=layout,
                                    limits=Limits(memory_bytes=64 << 20))
    made.append(cgroup)
    assert not any("/pids/" in p for p in cgroup.paths)
    script = "import threading, time; threading.Thread(target=time.sleep, args=(100,)).start()"
    proc = subprocess.Popen([sys.executable, "-c", script], preexec_fn=joiner(cgroup))
    try:
        deadline = time.monotonic() + 10
        while cgroup.stats("live").pids_current != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cgroup.stats("live").pids_current == 2  # tasks: the process and its thread
        assert cgroup.stats().pids_current == 2
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.cgroup_v2
def test_an_empty_cgroup_goes_at_once_and_a_populated_one_stays(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    """remove_if_empty never waits and never kills: the usual end of a container is
    one rmdir per directory; a cgroup with a process left is not touched (the caller
    destroys it, off its event loop)."""
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout)
    made.append(cgroup)
    proc = subprocess.Popen(["sleep", "30"], preexec_fn=joiner(cgroup))
    try:
        assert cgroupfs.populated(cgroup.paths[0])
        started = time.monotonic()
        assert cgroup.remove_if_empty() is False
        assert time.monotonic() - started < 0.5
        assert all(os.path.isdir(p) for p in cgroup.paths)
        assert proc.poll() is None  # not killed
        with pytest.raises(CgroupError):
            cgroupfs.remove_empty_tree(cgroup.paths[0])
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while cgroupfs.populated(cgroup.paths[0]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert cgroup.remove_if_empty() is True
    assert not any(os.path.exists(p) for p in cgroup.paths)
    assert not cgroupfs.populated(cgroup.paths[0])  # gone: nobody there


@pytest.mark.cgroup_v2
def test_open_for_clone_gives_the_v2_cgroup_and_nothing_on_plain_v1(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout)
    made.append(cgroup)
    fd = cgroup.open_for_clone()
    if real_layout.v2_mount is None:
        assert fd is None and cgroup.v2_join_file is None
        return
    assert fd is not None and cgroup.v2_join_file is not None
    try:
        # where its processes go: the leaf on v2, the (controller-less) unified
        # directory itself on a hybrid host
        where = os.path.dirname(cgroup.v2_join_file)
        if real_layout.kind == "v2":
            assert where.endswith("/leaf") and os.path.dirname(where) in cgroup.paths
        else:
            assert where in cgroup.paths
        assert os.path.samestat(os.fstat(fd), os.stat(where))
    finally:
        os.close(fd)


@pytest.mark.cgroup_v2
def test_later_limits_reach_the_leaf_too_whoever_opened_the_cgroup(
    real_layout: cgroupfs.Layout, cgroup_name: str, made: list[cgroupfs.Cgroup]
) -> None:
    """A limit held outside the namespace and shown inside: set_limits after creation,
    by the creator or by another opening it by its paths, writes both."""
    require_controller(real_layout, "pids")
    cgroup = cgroupfs.create_cgroup(cgroup_name, layout=real_layout, limits=Limits(pids_max=7))
    made.append(cgroup)
    outer = file_dir(cgroup, "pids.max")
    leaf = os.path.join(outer, cgroupfs.LEAF)
    assert read(outer, "pids.max") == read(leaf, "pids.max") == "7"
    cgroup.set_limits(Limits(pids_max=6))
    assert read(outer, "pids.max") == read(leaf, "pids.max") == "6"
    cgroupfs.cgroup_at(list(cgroup.paths), layout=real_layout).set_limits(Limits(pids_max=5))
    assert read(outer, "pids.max") == read(leaf, "pids.max") == "5"
