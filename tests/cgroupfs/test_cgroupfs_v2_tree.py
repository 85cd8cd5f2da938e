"""V2Cgroup against a directory tree mirroring /sys/fs/cgroup (cgroup v2 formats).

This machine's cgroup v2 mount has no controllers, so the v2 logic
(delegation, subtree_control, limits, kill, destroy) runs against a fake
kernel: ``_fs`` is monkeypatched to do what the kernel does on mkdir (populate
the interface files), rmdir (refuse while busy, else drop the files) and on
writes to the special files. Regular files are the kernel's formats.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import cgroupfs
from cgroupfs import CgroupError, Limits, _fs, _v2

FIXTURES = Path(__file__).parent / "fixtures"
OWN = "user.slice/user-1000.slice/session-3.scope"
ALL_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"
OTHER_PID = 111  # another process in our session scope (never signalled: kill is faked)

CONTROLLER_FILES = {
    "memory": {
        "memory.current": "0",
        "memory.peak": "0",
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.stat": (FIXTURES / "v2/memory.stat").read_text().strip(),
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0",
    },
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000"},
    "pids": {"pids.current": "0", "pids.max": "max"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
}


class FakeV2Kernel:
    """Plays the kernel's part for a cgroup2 tree in a temporary directory."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, *, has_kill: bool) -> None:
        self.root = root
        self.has_kill = has_kill
        self.killed: list[tuple[int, str]] = []  # (pid, cgroup.freeze at the time)
        self._real_write = _fs.write_text
        self._real_mkdir = _fs.mkdir
        self._real_rmdir = _fs.rmdir
        monkeypatch.setattr(_fs, "write_text", self.write_text)
        monkeypatch.setattr(_fs, "mkdir", self.mkdir)
        monkeypatch.setattr(_fs, "rmdir", self.rmdir)
        monkeypatch.setattr(_v2, "kill_pids", self.kill_pids)

    # --- tree helpers ---
    def populate(self, directory: Path, controllers: str, procs: tuple[int, ...] = ()) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "cgroup.controllers": controllers,
            "cgroup.subtree_control": "",
            "cgroup.procs": "\n".join(map(str, procs)),
            "cgroup.events": f"populated {int(bool(procs))}\nfrozen 0",
            "cgroup.freeze": "0",
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0",
        }
        if self.has_kill:
            files["cgroup.kill"] = ""
        for controller in controllers.split():
            files.update(CONTROLLER_FILES.get(controller, {}))
        if "cpu" in controllers.split():
            files["cpu.stat"] += "\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0"
        for name, content in files.items():
            (directory / name).write_text(content + "\n" if content else "")

    def procs(self, directory: Path) -> list[int]:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]

    def set_procs(self, directory: Path, pids: list[int]) -> None:
        (directory / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))
        # "populated" counts the subtree: recompute it here and in every ancestor.
        while directory == self.root or self.root in directory.parents:
            below = any(self.procs(d.parent) for d in directory.rglob("cgroup.procs"))
            frozen = (directory / "cgroup.freeze").read_text().strip()
            (directory / "cgroup.events").write_text(f"populated {int(below)}\nfrozen {frozen}\n")
            directory = directory.parent

    # --- the kernel's side of _fs ---
    def mkdir(self, path: str) -> bool:
        made = self._real_mkdir(path)
        if made:
            parent = Path(path).parent
            self.populate(Path(path), (parent / "cgroup.subtree_control").read_text().strip())
        return made

    def rmdir(self, path: str) -> bool:
        directory = Path(path)
        if not directory.exists():
            return False
        if self.procs(directory) or any(p.is_dir() for p in directory.iterdir()):
            raise CgroupError(f"removing {path}: busy", path=path, errno=errno.EBUSY)
        for file in directory.iterdir():
            file.unlink()
        return self._real_rmdir(path)

    def write_text(self, path: str, text: str) -> None:
        file = Path(path)
        if not file.exists():
            self._real_write(path, text)  # ENOENT, as from the kernel
        directory, name = file.parent, file.name
        if name == "cgroup.subtree_control":
            if directory != self.root and self.procs(directory):
                raise CgroupError(f"writing {text} to {path}: busy", path=path, errno=errno.EBUSY)
            available = (directory / "cgroup.controllers").read_text().split()
            enabled = file.read_text().split()
            for token in text.split():
                if token[1:] not in available:
                    raise CgroupError(f"writing {text} to {path}: EINVAL", errno=errno.EINVAL)
                if token[0] == "+" and token[1:] not in enabled:
                    enabled.append(token[1:])
                elif token[0] == "-" and token[1:] in enabled:
                    enabled.remove(token[1:])
            file.write_text(" ".join(enabled) + "\n")
        elif name == "cgroup.procs":
            pid = int(text)
            for other in self.root.rglob("cgroup.procs"):
                if pid in self.procs(other.parent):
                    self.set_procs(other.parent, [p for p in self.procs(other.parent) if p != pid])
            self.set_procs(directory, [*self.procs(directory), pid])
        elif name == "cgroup.kill":  # the whole subtree
            for procs in sorted(directory.rglob("cgroup.procs"), reverse=True):
                self.set_procs(procs.parent, [])
        elif name == "cgroup.freeze":
            file.write_text(text + "\n")
            self.set_procs(directory, self.procs(directory))  # frozen state follows at once
        else:
            file.write_text(text + "\n")

    def kill_pids(self, pids: list[int], sig: int = 9) -> None:
        for cgroup_procs in self.root.rglob("cgroup.procs"):
            directory = cgroup_procs.parent
            for pid in pids:
                if pid in self.procs(directory):
                    # frozen when it or an ancestor is (cgroup.freeze is hierarchical)
                    frozen = any((d / "cgroup.freeze").read_text().strip() == "1"
                                 for d in (directory, *directory.parents)
                                 if d == self.root or self.root in d.parents)
                    self.killed.append((pid, "1" if frozen else "0"))
                    self.set_procs(directory, [p for p in self.procs(directory) if p != pid])


@pytest.fixture(params=[True, False], ids=["cgroup.kill", "freeze"])
def fake(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeV2Kernel:
    kernel = FakeV2Kernel(tmp_path, monkeypatch, has_kill=request.param)
    kernel.populate(tmp_path, ALL_CONTROLLERS, (1,))
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    kernel.populate(tmp_path / "user.slice", "cpu memory pids")
    (tmp_path / "user.slice/cgroup.subtree_control").write_text("cpu memory pids\n")
    kernel.populate(tmp_path / "user.slice/user-1000.slice", "cpu memory pids")
    (tmp_path / "user.slice/user-1000.slice/cgroup.subtree_control").write_text("cpu memory pids\n")
    kernel.populate(tmp_path / OWN, "cpu memory pids", (OTHER_PID, os.getpid()))
    return kernel


def layout() -> cgroupfs.Layout:
    return cgroupfs.detect_layout(
        (FIXTURES / "mountinfo.v2").read_text(), (FIXTURES / "proc_cgroup.v2").read_text()
    )


def move_other_out(fake: FakeV2Kernel) -> None:
    fake.populate(fake.root / OWN / "other", "")
    fake.write_text(str(fake.root / OWN / "other/cgroup.procs"), str(OTHER_PID))


def test_busy_own_cgroup_gives_a_hint_and_leaves_nothing(fake: FakeV2Kernel) -> None:
    with pytest.raises(CgroupError, match=r"has processes of its own.*--cgroup-parent"):
        cgroupfs.create_cgroup("c1", layout=layout(), root=str(fake.root))
    own = fake.root / OWN
    assert fake.procs(own / f"supervisor-{os.getpid()}") == [os.getpid()]
    assert not (own / "supervise").exists()


def test_create_delegates_and_sets_limits(fake: FakeV2Kernel) -> None:
    move_other_out(fake)
    limits = Limits(
        memory_bytes=32 << 20,
        memory_swap_bytes=48 << 20,
        cpu_shares=1024,
        cpu_quota_us=50_000,
        pids_max=20,
    )
    cgroup = cgroupfs.create_cgroup("c1", limits=limits, layout=layout(), root=str(fake.root))
    own = fake.root / OWN
    outer = own / "supervise/c1"
    leaf = outer / "leaf"
    assert isinstance(cgroup, cgroupfs.V2Cgroup)
    assert cgroup.paths == (str(outer),)
    assert cgroup.leaf_paths == (str(leaf),)
    assert cgroup.procs_files == (str(leaf / "cgroup.procs"),)
    assert cgroup.join_files == () and cgroup.v2_join_file == cgroup.procs_files[0]
    # the leaf's parent holds no process, so it delegates to the leaf
    assert (outer / "cgroup.subtree_control").read_text().split() == ["cpu", "memory", "pids"]
    # the supervisor moved itself into a leaf; the own cgroup delegates
    assert fake.procs(own / f"supervisor-{os.getpid()}") == [os.getpid()]
    assert (own / "cgroup.subtree_control").read_text().split() == ["cpu", "memory", "pids"]
    assert (own / "supervise/cgroup.subtree_control").read_text().split() == [
        "cpu",
        "memory",
        "pids",
    ]
    for directory in (outer, leaf):  # held outside the namespace, shown inside it
        assert (directory / "memory.max").read_text() == f"{32 << 20}\n"
        assert (directory / "memory.swap.max").read_text() == f"{16 << 20}\n"
        assert (directory / "cpu.weight").read_text() == "39\n"
        assert (directory / "cpu.max").read_text() == "50000 100000\n"
        assert (directory / "pids.max").read_text() == "20\n"
    cgroup.destroy()
    assert not (own / "supervise").exists()


def test_cpuset_limit_without_the_controller_is_a_clear_error(fake: FakeV2Kernel) -> None:
    move_other_out(fake)
    with pytest.raises(CgroupError, match=r"cpuset.cpus=0: .* does not exist"):
        cgroupfs.create_cgroup(
            "c1", limits=Limits(cpuset_cpus="0"), layout=layout(), root=str(fake.root)
        )
    assert not (fake.root / OWN / "supervise").exists()


def test_pids_stats_kill_destroy(fake: FakeV2Kernel) -> None:
    move_other_out(fake)
    cgroup = cgroupfs.create_cgroup("c1", layout=layout(), root=str(fake.root))
    leaf = fake.root / OWN / "supervise/c1/leaf"
    fake.set_procs(leaf, [424242, 424243])
    for name in ("memory.stat", "memory.events", "cpu.stat", "memory.current", "pids.current"):
        (leaf / name).write_text((FIXTURES / "v2" / name).read_text())
    assert cgroup.pids() == [424242, 424243]
    stats = cgroup.stats()
    assert stats.memory_usage_bytes == 5746688
    assert stats.memory_peak_bytes == 0
    assert stats.memory_limit_bytes is None
    assert stats.oom_kills == 2
    assert stats.cpu_user_ns == 1576853000
    assert stats.sampled_at_ns is not None
    cgroup.kill()
    assert cgroup.pids() == []
    if not fake.has_kill:  # freeze, SIGKILL each pid while frozen, thaw
        assert fake.killed == [(424242, "1"), (424243, "1")]
        assert (leaf / "cgroup.freeze").read_text() == "0\n"
    fake.set_procs(leaf, [424244])
    cgroup.destroy()
    assert not leaf.parent.exists()
    assert not leaf.parent.parent.exists()
    cgroup.destroy()  # idempotent


def test_destroy_keeps_a_shared_supervise_dir(fake: FakeV2Kernel) -> None:
    move_other_out(fake)
    first = cgroupfs.create_cgroup("c1", layout=layout(), root=str(fake.root))
    second = cgroupfs.create_cgroup("c2", layout=layout(), root=str(fake.root))
    first.destroy()
    assert (fake.root / OWN / "supervise/c2").is_dir()
    with pytest.raises(CgroupError, match="already exists"):
        cgroupfs.create_cgroup("c2", layout=layout(), root=str(fake.root))
    opened = cgroupfs.open_cgroup("c2", layout=layout(), root=str(fake.root))
    assert opened.paths == second.paths
    opened.destroy()
    assert not (fake.root / OWN / "supervise").exists()
    with pytest.raises(CgroupError, match="no such cgroup"):
        cgroupfs.open_cgroup("c2", layout=layout(), root=str(fake.root))


def test_cgroup_parent_enables_controllers_from_the_root(fake: FakeV2Kernel) -> None:
    cgroup = cgroupfs.create_cgroup(
        "c1", parent="/batch/jobs", layout=layout(), root=str(fake.root)
    )
    assert cgroup.paths == (str(fake.root / "batch/jobs/c1"),)
    enabled = (fake.root / "batch/jobs/cgroup.subtree_control").read_text().split()
    assert sorted(enabled) == ["cpu", "cpuset", "memory", "pids"]
    assert fake.procs(fake.root / OWN) == [OTHER_PID, os.getpid()]  # nobody moved
    cgroup.destroy()
    assert (fake.root / "batch/jobs").is_dir()  # a --cgroup-parent is the user's


def test_destroy_times_out_with_a_named_error(
    fake: FakeV2Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    move_other_out(fake)
    cgroup = cgroupfs.create_cgroup("c1", layout=layout(), root=str(fake.root))
    leaf = fake.root / OWN / "supervise/c1/leaf"
    fake.set_procs(leaf, [424242])
    monkeypatch.setattr(cgroupfs.V2Cgroup, "kill", lambda self: None)  # an unkillable process
    with pytest.raises(CgroupError, match=r"destroying .*c1: processes \[424242\] still there"):
        cgroup.destroy(timeout=0.05)
    fake.set_procs(leaf, [])
    cgroup.destroy()


def test_mkdir_retries_when_the_shared_dir_vanishes(
    fake: FakeV2Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another supervise may rmdir "supervise" between our mkdirs: start over."""
    move_other_out(fake)
    fake_mkdir = _fs.mkdir
    vanished: list[str] = []

    def racing_mkdir(path: str) -> bool:
        if path.endswith("/supervise/c1") and not vanished:
            vanished.append(path)
            fake.rmdir(os.path.dirname(path))  # the other supervise wins the race once
            raise CgroupError(f"creating {path}: No such file", path=path, errno=errno.ENOENT)
        return fake_mkdir(path)

    monkeypatch.setattr(_fs, "mkdir", racing_mkdir)
    cgroup = cgroupfs.create_cgroup("c1", layout=layout(), root=str(fake.root))
    assert vanished and os.path.isdir(cgroup.paths[0])
    cgroup.destroy()
