"""A container's cgroups, tried from inside as an attacker would: its cgroup namespace
is rooted at its own leaf cgroup in every hierarchy, its limits show there, and the
limits hold even where the leaf can be written (privileged: its cgroup files are
writable), because they are held one level up, out of the namespace's reach."""

from __future__ import annotations

import json
import os

import pytest

from supervisor import ContainerSpec, Limits, Supervisor

from .containers import PYTHON, run_capture

pytestmark = [pytest.mark.trio, pytest.mark.usefixtures("root_only")]

VIEW = """
import json, os
def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as exc:
        return 'error: ' + exc.strerror
root = '/sys/fs/cgroup'
v2 = os.path.exists(root + '/cgroup.controllers')
if v2:
    files = {'memory': 'memory.max', 'pids': 'pids.max', 'cpu': 'cpu.max'}
    got = {k: read(f'{root}/{name}') for k, name in files.items()}
else:
    got = {'memory': read(root + '/memory/memory.limit_in_bytes'),
           'pids': read(root + '/pids/pids.max'),
           'cpu': read(root + '/cpu/cpu.cfs_quota_us')}
got['where'] = sorted({l.split(':', 2)[2].strip() for l in open('/proc/self/cgroup')})
got['v2'] = v2
print(json.dumps(got))
"""


async def test_the_container_sees_its_own_limits_at_the_root_of_its_namespace() -> None:
    """What the JVM, Go's runtime and others read to size themselves: the container's
    own limits, as docker shows them; and its cgroup is '/' in every hierarchy."""
    limits = Limits(memory_bytes=32 << 20, pids_max=16, cpu_quota_us=50_000)
    async with Supervisor() as sup:
        result, out, err = await run_capture(sup, [PYTHON, "-c", VIEW], limits=limits)
    assert result.exit_code == 0, err
    got = json.loads(out)
    assert got["where"] == ["/"]
    if got["v2"]:
        assert (got["memory"], got["pids"], got["cpu"]) == (
            str(32 << 20), "16", "50000 100000")
    else:
        assert (got["memory"], got["pids"], got["cpu"]) == (str(32 << 20), "16", "50000")


RAISE_AND_USE = """
import json, os, sys, threading, time
root = '/sys/fs/cgroup'
v2 = os.path.exists(root + '/cgroup.controllers')
def write(path, text):
    try:
        with open(path, 'w') as f:
            f.write(text)
        return 'ok'
    except OSError as exc:
        return exc.strerror
if v2:
    raised = {'memory': write(root + '/memory.max', 'max'),
              'pids': write(root + '/pids.max', 'max')}
else:
    # memory+swap first: the kernel refuses a memory limit above it
    write(root + '/memory/memory.memsw.limit_in_bytes', str(1 << 30))
    raised = {'memory': write(root + '/memory/memory.limit_in_bytes', str(1 << 30)),
              'pids': write(root + '/pids/pids.max', 'max')}
started = 0
def nap():
    time.sleep(2)
threads = []
try:
    for _ in range(64):
        t = threading.Thread(target=nap)
        t.start()
        threads.append(t)
        started += 1
except RuntimeError:
    pass
for t in threads:
    t.join()
print(json.dumps({'raised': raised, 'threads': started}), flush=True)
hog = bytearray(160 << 20)  # past -m 64m: the OOM killer, whatever the leaf says
for i in range(0, len(hog), 4096):
    hog[i] = 1
print('survived', flush=True)
"""


@pytest.mark.cgroup_v2
async def test_limits_hold_even_where_the_namespace_root_is_writable() -> None:
    """Privileged, the container may write its own cgroup files (docker's --privileged
    does too): it raises its memory and pids limits there, and still cannot pass
    them, because they are held on the cgroup above its namespace's root."""
    limits = Limits(memory_bytes=64 << 20, memory_swap_bytes=64 << 20, pids_max=16)
    async with Supervisor() as sup:
        result, out, err = await run_capture(sup, [PYTHON, "-c", RAISE_AND_USE],
                                             limits=limits, privileged=True)
    first = out.splitlines()[0] if out else "{}"
    got = json.loads(first)
    # v1: the leaf's files are the container's to write; v2's nsdelegate keeps even
    # a privileged namespace from writing its own root's: the limits hold either way.
    allowed = {"ok", "Operation not permitted"}
    assert set(got["raised"].values()) <= allowed and len(got["raised"]) == 2, (got, err)
    assert got["threads"] < 16  # the held pids limit: the main thread counts too
    assert "survived" not in out
    assert result.status == "oom" and result.oom_killed, (result, err)


async def test_a_cgroup2_mount_inside_is_rooted_at_the_container() -> None:
    """Even with the power to mount (privileged), a cgroup2 file system mounted inside
    shows the container's own cgroup, not the host's root: nothing of the host (no
    other process to kill through cgroup.kill, no other cgroup) is there."""
    script = (
        "import os, subprocess, json\n"
        "os.makedirs('/dev/shm/cg2', exist_ok=True)\n"
        "subprocess.run(['mount', '-t', 'cgroup2', 'none', '/dev/shm/cg2'], check=True)\n"
        "try:\n"
        "    procs = open('/dev/shm/cg2/cgroup.procs').read().split()\n"
        "    entries = sorted(e for e in os.listdir('/dev/shm/cg2')\n"
        "                     if os.path.isdir('/dev/shm/cg2/' + e))\n"
        "finally:\n"
        "    subprocess.run(['umount', '/dev/shm/cg2'], check=True)\n"
        "    os.rmdir('/dev/shm/cg2')\n"
        "print(json.dumps({'procs': procs, 'dirs': entries}))\n")
    async with Supervisor() as sup:
        result, out, err = await run_capture(sup, [PYTHON, "-c", script], privileged=True,
                                             network="host")
    assert result.exit_code == 0, err
    got = json.loads(out)
    assert got["dirs"] == []  # no cgroup below it: not the host's root, nor supervise's
    # Only the container's own processes (pids as its namespace numbers them, small).
    assert got["procs"] and all(int(p) < 100 for p in got["procs"]), got
    assert str(os.getpid()) not in got["procs"]


async def test_unprivileged_root_cannot_make_or_move_to_another_cgroup() -> None:
    script = ("for p in /sys/fs/cgroup/unified/x /sys/fs/cgroup/x /sys/fs/cgroup/memory/x; do"
              " mkdir $p 2>/dev/null && echo made || echo refused; done;"
              " echo 1 > /sys/fs/cgroup/unified/cgroup.procs 2>/dev/null && echo moved;"
              " cat /proc/self/cgroup")
    async with Supervisor() as sup:
        result, out, _ = await run_capture(sup, ["sh", "-c", script])
        as_nobody, out2, _ = await run_capture(sup, ["sh", "-c", script], user=(65534, 65534))
    assert result.exit_code == 0 and as_nobody.exit_code == 0
    for text in (out, out2):
        lines = text.splitlines()
        assert lines[:3] == ["refused"] * 3 and "moved" not in lines
        assert {line.split(":", 2)[2] for line in lines[3:]} == {"/"}


async def test_every_hierarchy_roots_it_below_supervise_never_at_the_hosts_root() -> None:
    """Seen from the host: in each hierarchy a container has a cgroup of its own (its
    figures and limits) or sits in its supervisor's spawner cgroup, born there;
    never the host's root, where a cgroup namespace would reach every host process."""
    from pathlib import Path

    import anyio

    import cgroupfs

    layout = cgroupfs.detect_layout()

    async def cgroups_of(sup: Supervisor, spec: ContainerSpec) -> tuple[str, dict[str, str]]:
        container = await sup.start(spec)
        try:
            with anyio.fail_after(5):  # its setup (the joins among it) done: it runs sleep
                while Path(f"/proc/{container.pid}/comm").read_text().strip() != "sleep":
                    await anyio.sleep(0.01)
            lines = Path(f"/proc/{container.pid}/cgroup").read_text().splitlines()
        finally:
            container.kill()
            await container.wait()
        return container.id, {line.split(":", 2)[1]: line.split(":", 2)[2] for line in lines}

    async with Supervisor() as sup:
        cid, own = await cgroups_of(sup, ContainerSpec(["sleep", "30"]))
        # One that may mount (privileged, or with CAP_SYS_ADMIN) has a cgroup of its
        # own in every hierarchy: mounted inside, none shows the spawner's and siblings.
        for spec in (ContainerSpec(["sleep", "30"], privileged=True),
                     ContainerSpec(["sleep", "30"], cap_add=("SYS_ADMIN",))):
            mounter_id, mounter = await cgroups_of(sup, spec)
            assert mounter and all(mounter_id in path.strip("/").split("/")
                                   for path in mounter.values()), mounter
    if layout.kind == "hybrid":
        # The unified tree has no controllers: a container is born in the spawner's
        # cgroup there.
        assert own[""].rstrip("/").split("/")[-1].startswith("spawner-"), own
    container_id = cid
    assert own
    for hierarchy, path in own.items():
        parts = path.strip("/").split("/")
        assert "supervise" in parts, (hierarchy, path)
        below = parts[parts.index("supervise") + 1:]
        assert below and (below[0] == container_id or below[0].startswith("spawner-")), path
    if layout.kind != "v2":  # its figures: a memory cgroup of its own
        assert own["memory"].rstrip("/").split("/")[-1] == container_id
