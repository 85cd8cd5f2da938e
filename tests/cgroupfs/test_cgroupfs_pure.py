"""Pure cgroupfs tests: exports, limit translation, stats parsing, layout detection."""

from __future__ import annotations

from pathlib import Path

import pytest

import cgroupfs
from cgroupfs import Limits
from cgroupfs._stats import V1_STATS_FILES, V2_STATS_FILES, parse_cpu_max

FIXTURES = Path(__file__).parent / "fixtures"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_public_names_are_pinned() -> None:
    assert sorted(cgroupfs.__all__) == sorted(
        [
            "CgroupError",
            "Limits",
            "Stats",
            "Layout",
            "Cgroup",
            "V1Cgroup",
            "V2Cgroup",
            "v1_limit_files",
            "v2_limit_files",
            "shares_to_weight",
            "parse_v1_stats",
            "parse_v2_stats",
            "detect_layout",
            "swap_limit_supported",
            "with_default_swap",
            "prepare_v2_delegation",
            "create_cgroup",
            "open_cgroup",
            "cgroup_at",
            "remove_unused_parents",
            "LEAF",
            "DeviceRule",
            "parse_device_rule",
            "limited_controllers",
            "StatsMode",
            "mount_of",
            "SUPERVISE_DIR",
            "supervise_parents",
            "delegation_leaves",
            "populated",
            "remove_empty_tree",
        ]
    )
    for name in cgroupfs.__all__:
        assert hasattr(cgroupfs, name)


# --- translation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(2, 1), (1024, 39), (262144, 10000), (512, 20), (1, 1), (10**6, 10000)],
)
def test_shares_to_weight_as_runc(shares: int, weight: int) -> None:
    assert cgroupfs.shares_to_weight(shares) == weight


def test_empty_limits_write_nothing() -> None:
    assert cgroupfs.v1_limit_files(Limits()) == []
    assert cgroupfs.v2_limit_files(Limits()) == []


FULL = Limits(
    memory_bytes=64 << 20,
    memory_swap_bytes=128 << 20,
    cpu_shares=512,
    cpu_quota_us=50_000,
    cpuset_cpus="0-1",
    cpuset_mems="0",
    pids_max=100,
)


def test_v1_limit_files_in_write_order() -> None:
    assert cgroupfs.v1_limit_files(FULL) == [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("memory", "memory.memsw.limit_in_bytes", "134217728"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "100"),
    ]


def test_v2_limit_files() -> None:
    assert cgroupfs.v2_limit_files(FULL) == [
        ("memory.max", "67108864"),
        ("memory.swap.max", "67108864"),
        ("cpu.weight", "20"),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "100"),
    ]


def test_unlimited_values() -> None:
    limits = Limits(memory_bytes=-1, memory_swap_bytes=-1, cpu_quota_us=-1, pids_max=-1)
    assert cgroupfs.v1_limit_files(limits) == [
        ("memory", "memory.limit_in_bytes", "-1"),
        ("memory", "memory.memsw.limit_in_bytes", "-1"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "-1"),
        ("pids", "pids.max", "max"),
    ]
    assert cgroupfs.v2_limit_files(limits) == [
        ("memory.max", "max"),
        ("memory.swap.max", "max"),
        ("cpu.max", "max 100000"),
        ("pids.max", "max"),
    ]


def test_swap_equal_to_memory_means_no_swap() -> None:
    limits = Limits(memory_bytes=1 << 20, memory_swap_bytes=1 << 20)
    assert ("memory.swap.max", "0") in cgroupfs.v2_limit_files(limits)


@pytest.mark.parametrize(("limits", "swap_limit", "swap"), [
    (Limits(memory_bytes=64 << 20), True, 128 << 20),           # docker: as much swap again
    (Limits(memory_bytes=64 << 20), False, None),               # no swap accounting: alone
    (Limits(memory_bytes=64 << 20, memory_swap_bytes=64 << 20), True, 64 << 20),  # as given
    (Limits(memory_bytes=64 << 20, memory_swap_bytes=-1), True, -1),
    (Limits(), True, None),
    (Limits(memory_bytes=-1), True, None),
])
def test_a_memory_limit_alone_gets_dockers_swap(limits: Limits, swap_limit: bool,
                                                swap: int | None) -> None:
    assert cgroupfs.with_default_swap(limits, swap_limit).memory_swap_bytes == swap


def test_swap_limits_are_supported_where_the_files_are(tmp_path: Path) -> None:
    """v2: memory.swap.max on a cgroup below the root (the root has none); v1: the memory
    hierarchy's memory.memsw.* (fixture trees: this machine shows one of the two)."""
    (tmp_path / "child").mkdir()
    v2 = cgroupfs.Layout(kind="v2", v2_mount=str(tmp_path), v2_path="/")
    assert not cgroupfs.swap_limit_supported(v2)
    (tmp_path / "child" / "memory.swap.max").write_text("max\n")
    assert cgroupfs.swap_limit_supported(v2)
    v1 = cgroupfs.Layout(kind="v1", v1_mounts={"memory": str(tmp_path)}, v1_paths={"memory": "/"})
    assert not cgroupfs.swap_limit_supported(v1)
    (tmp_path / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroupfs.swap_limit_supported(v1)
    assert not cgroupfs.swap_limit_supported(cgroupfs.Layout(kind="v1"))  # no memory hierarchy


def test_cpu_period_alone_and_custom() -> None:
    assert cgroupfs.v2_limit_files(Limits(cpu_quota_us=25_000, cpu_period_us=50_000)) == [
        ("cpu.max", "25000 50000")
    ]
    assert cgroupfs.v1_limit_files(Limits(cpu_period_us=50_000)) == [
        ("cpu", "cpu.cfs_period_us", "50000")
    ]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (Limits(memory_swap_bytes=1 << 20), "needs a memory_bytes"),
        (Limits(memory_bytes=2 << 20, memory_swap_bytes=1 << 20), "below memory_bytes"),
        (Limits(cpu_period_us=0), "cpu_period_us=0"),
        (Limits(cpu_shares=0), "cpu_shares=0"),
    ],
)
def test_invalid_limits_are_cgroup_errors(limits: Limits, message: str) -> None:
    with pytest.raises(cgroupfs.CgroupError, match=message):
        cgroupfs.v1_limit_files(limits)
    with pytest.raises(cgroupfs.CgroupError, match=message):
        cgroupfs.v2_limit_files(limits)


# --- stats -------------------------------------------------------------------


def files_of(directory: str, names: tuple[str, ...]) -> dict[str, str]:
    return {n: text(f"{directory}/{n}") for n in names if (FIXTURES / directory / n).exists()}


def test_parse_v1_stats_from_kernel_files() -> None:
    stats = cgroupfs.parse_v1_stats(files_of("v1", V1_STATS_FILES), sampled_at_ns=7)
    assert stats == cgroupfs.Stats(
        memory_usage_bytes=7483392,
        memory_peak_bytes=int(text("v1/memory.max_usage_in_bytes")),
        memory_limit_bytes=None,  # 9223372036854771712 is "unlimited"
        memory_inactive_file_bytes=700416,
        cpu_usage_ns=75897052913,
        cpu_user_ns=40409145635,  # cpuacct.usage_user, in ns, preferred over ticks
        cpu_system_ns=34252072485,
        pids_current=2,
        pids_limit=None,
        oom_kills=0,
        oom_events=None,
        throttled_periods=0,
        total_periods=0,
        throttled_ns=0,
        sampled_at_ns=7,
    )


def test_parse_v1_stats_takes_user_and_system_from_usage_all() -> None:
    """A finished container's figures read one file for both (cpuacct.usage_all, a
    line per CPU): the same sums as cpuacct.usage_user and usage_sys; ticks if neither."""
    files = {n: text(f"v1/{n}") for n in ("cpuacct.usage_all", "cpuacct.stat")}
    stats = cgroupfs.parse_v1_stats(files)
    assert (stats.cpu_user_ns, stats.cpu_system_ns) == (
        int(text("v1/cpuacct.usage_user")), int(text("v1/cpuacct.usage_sys")))
    for broken in ("cpu user\n0 1\n", "cpu user system\n0 1 x\n", ""):
        stats = cgroupfs.parse_v1_stats({"cpuacct.usage_all": broken,
                                         "cpuacct.stat": "user 3\nsystem 4\n"}, clk_tck=100)
        assert (stats.cpu_user_ns, stats.cpu_system_ns) == (30_000_000, 40_000_000)


def test_parse_v1_stats_prefers_hierarchical_inactive_file() -> None:
    files = {"memory.stat": "inactive_file 4096\ntotal_inactive_file 8192\n"}
    assert cgroupfs.parse_v1_stats(files).memory_inactive_file_bytes == 8192


def test_parse_v1_stats_cpuacct_stat_ticks_fallback() -> None:
    files = {"cpuacct.stat": text("v1/cpuacct.stat"), "cpuacct.usage": "1000\n"}
    stats = cgroupfs.parse_v1_stats(files, clk_tck=100)
    assert stats.cpu_user_ns == 4107 * 10_000_000
    assert stats.cpu_system_ns == 3481 * 10_000_000
    assert stats.cpu_usage_ns == 1000


def test_parse_v1_stats_oom_and_throttling() -> None:
    files = {
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        "memory.limit_in_bytes": "33554432\n",
        "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 123456789\n"
        "nr_bursts 0\nburst_time 0\n",
        "pids.max": "50\n",
    }
    stats = cgroupfs.parse_v1_stats(files)
    assert (stats.oom_kills, stats.memory_limit_bytes, stats.pids_limit) == (3, 33554432, 50)
    assert (stats.total_periods, stats.throttled_periods, stats.throttled_ns) == (
        10,
        4,
        123456789,
    )


def test_missing_files_are_unknown_not_zero() -> None:
    assert cgroupfs.parse_v1_stats({}) == cgroupfs.Stats()
    assert cgroupfs.parse_v2_stats({}) == cgroupfs.Stats()
    assert all(v is None for v in vars(cgroupfs.Stats()).values())


def test_parse_v2_stats_from_kernel_files() -> None:
    stats = cgroupfs.parse_v2_stats(files_of("v2", V2_STATS_FILES), sampled_at_ns=9)
    assert stats == cgroupfs.Stats(
        memory_usage_bytes=5746688,
        memory_peak_bytes=33554432,
        memory_limit_bytes=33554432,
        memory_inactive_file_bytes=2457600,
        cpu_usage_ns=2237153000,
        cpu_user_ns=1576853000,
        cpu_system_ns=660300000,
        pids_current=3,
        pids_limit=None,
        oom_kills=2,
        oom_events=3,
        throttled_periods=37,
        total_periods=412,
        throttled_ns=1538120000,
        sampled_at_ns=9,
    )


def test_parse_v2_stats_without_peak_and_unlimited() -> None:
    files = files_of("v2", V2_STATS_FILES)
    del files["memory.peak"]  # kernels before 5.19
    files["memory.max"] = "max\n"
    stats = cgroupfs.parse_v2_stats(files)
    assert stats.memory_peak_bytes is None
    assert stats.memory_limit_bytes is None


def test_parse_cpu_max() -> None:
    assert parse_cpu_max(text("v2/cpu.max")) == (50000, 100000)
    assert parse_cpu_max("max 100000\n") == (None, 100000)


# --- layout ------------------------------------------------------------------


def test_detect_hybrid_layout_of_this_kind_of_machine() -> None:
    layout = cgroupfs.detect_layout(text("mountinfo.hybrid"), text("proc_cgroup.hybrid"))
    assert layout.kind == "hybrid"
    assert layout.v2_mount == "/sys/fs/cgroup/unified"
    assert layout.v1_mounts["cpu"] == "/sys/fs/cgroup/cpu"
    assert layout.v1_mounts["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    # every hierarchy mounted, the named one too: a container is placed in each
    assert set(layout.v1_mounts) == {"cpu", "cpuacct", "cpuset", "memory", "freezer", "pids",
                                     "devices", "blkio", "name=systemd"}
    assert layout.v1_paths["memory"].startswith("/process_api/")
    assert layout.v1_own_dir("pids") == "/sys/fs/cgroup/pids"
    assert layout.v1_own_dir("memory") == "/sys/fs/cgroup/memory" + layout.v1_paths["memory"]


def test_detect_v1_layout_with_comounted_cpu_cpuacct() -> None:
    layout = cgroupfs.detect_layout(text("mountinfo.v1"), text("proc_cgroup.v1"))
    assert layout.kind == "v1"
    assert layout.v2_mount is None
    assert layout.v1_mounts["cpu"] == layout.v1_mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.v1_mounts["blkio"] == "/sys/fs/cgroup/blkio"
    assert layout.v1_mounts["name=systemd"] == "/sys/fs/cgroup/systemd"
    assert layout.v1_mounts["net_cls"] == layout.v1_mounts["net_prio"]
    assert (
        layout.v1_own_dir("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct/system.slice/ci-runner.service"
    )
    assert layout.v1_own_dir("freezer") == "/sys/fs/cgroup/freezer"


def test_detect_v2_layout() -> None:
    layout = cgroupfs.detect_layout(text("mountinfo.v2"), text("proc_cgroup.v2"))
    assert layout.kind == "v2"
    assert layout.v1_mounts == {}
    assert layout.v2_own_dir() == "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"


def test_v2_delegation_leaf_is_not_the_own_cgroup() -> None:
    layout = cgroupfs.detect_layout(text("mountinfo.v2"), text("proc_cgroup.v2_leaf"))
    assert layout.v2_path == "/user.slice/user-1000.slice/session-3.scope"


def test_detect_layout_inside_a_container_mount() -> None:
    layout = cgroupfs.detect_layout(text("mountinfo.v1_nested"), text("proc_cgroup.v1_nested"))
    assert layout.v1_own_dir("cpu") == "/sys/fs/cgroup/cpu acct"
    assert layout.v1_own_dir("memory") == "/sys/fs/cgroup/memory/job"


def test_no_cgroup_mount_is_an_error() -> None:
    with pytest.raises(cgroupfs.CgroupError, match="no cgroup"):
        cgroupfs.detect_layout("", "0::/\n")


def test_supervise_parents_one_per_hierarchy_directory() -> None:
    """Where containers go by default: co-mounted controllers share one directory."""
    v1 = cgroupfs.detect_layout(text("mountinfo.v1"), text("proc_cgroup.v1"))
    parents = cgroupfs.supervise_parents(v1)
    hybrid = cgroupfs.detect_layout(text("mountinfo.hybrid"), text("proc_cgroup.hybrid"))
    assert "/sys/fs/cgroup/unified/supervise" in cgroupfs.supervise_parents(hybrid)
    assert "/sys/fs/cgroup/cpu,cpuacct/system.slice/ci-runner.service/supervise" in parents
    assert len(parents) == len(set(v1.v1_mounts.values()))
    v2 = cgroupfs.detect_layout(text("mountinfo.v2"), text("proc_cgroup.v2_leaf"))
    assert cgroupfs.supervise_parents(v2) == [
        "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/supervise"]
    assert cgroupfs.delegation_leaves(v1) == []  # v1 has none, and looks at nothing


def test_cgroup_at_tells_the_hierarchy_by_the_mount_a_path_is_on() -> None:
    hybrid = cgroupfs.detect_layout(text("mountinfo.hybrid"), text("proc_cgroup.hybrid"))
    v1 = cgroupfs.cgroup_at(["/sys/fs/cgroup/memory/x/supervise/abc",
                             "/sys/fs/cgroup/cpuacct/supervise/abc"], layout=hybrid)
    assert isinstance(v1, cgroupfs.V1Cgroup) and v1.name == "abc"
    assert len(v1.paths) == 2
    # a hybrid host's cgroup: the v1 directories plus the unified tree's
    both = cgroupfs.cgroup_at(["/sys/fs/cgroup/memory/x/supervise/abc",
                               "/sys/fs/cgroup/unified/supervise/abc"], layout=hybrid)
    assert isinstance(both, cgroupfs.V1Cgroup)
    # opened by its recorded paths, a v1 cgroup has a leaf where one is on disk (none
    # here: these paths are not on this machine)
    assert both.v2_join_file == "/sys/fs/cgroup/unified/supervise/abc/cgroup.procs"
    assert both.join_files == ("/sys/fs/cgroup/memory/x/supervise/abc/tasks",)
    v2_layout = cgroupfs.detect_layout(text("mountinfo.v2"), text("proc_cgroup.v2"))
    v2 = cgroupfs.cgroup_at(["/sys/fs/cgroup/x/supervise/abc"], layout=v2_layout)
    assert isinstance(v2, cgroupfs.V2Cgroup) and v2.path.endswith("/abc")
    assert v2.join_files == () and v2.leaf_paths == ("/sys/fs/cgroup/x/supervise/abc/leaf",)
    with pytest.raises(cgroupfs.CgroupError, match="not on a cgroup mount"):
        cgroupfs.cgroup_at(["/tmp/supervise/abc"], layout=hybrid)
    assert cgroupfs.mount_of("/sys/fs/cgroup/cpuacct/a", ["/sys/fs/cgroup",
                                                           "/sys/fs/cgroup/cpuacct"]) == (
        "/sys/fs/cgroup/cpuacct")
    assert cgroupfs.mount_of("/sys/fs/cgroupx/a", ["/sys/fs/cgroup"]) is None


def test_rebased_layout() -> None:
    layout = cgroupfs.detect_layout(text("mountinfo.v1"), text("proc_cgroup.v1")).rebased("/tmp/x")
    assert layout.v1_mounts["memory"] == "/tmp/x/memory"


