"""Benchmark supervise against the kernel, process and language floors.

Run as root, from anywhere (`scripts/bench` is a two-line sh wrapper that runs
this file with the project's interpreter, .venv/bin/python; never use the
`python3` on PATH: on these machines it is a pyenv shim, a bash script):

    scripts/bench [--jobs N] [--rounds R] [--runs N] [--scale N | --big]
                  [--skip SECTION]... [--quick] [--json] [--slurm [--slurm-jobs N]]
    .venv/bin/python scripts/_bench.py ...      (the same)

Everything is measured in one run on this machine, side by side, and printed as
one table with ratios and the issue's targets (`--json`: the same as JSON).

  batch     N jobs of `true`, each in its own namespaces, at concurrency 8:
            `supervise batch -j 8 -m 64m` (real cgroups; and with --security-opt
            seccomp=unconfined, for what the filter costs; and containment's
            CPU per job, measured as in single, against the CPU a job takes
            here), `xargs -P8 unshare
            -fpmuin --mount-proc true` (the kernel floor), GNU `parallel -j8
            unshare ...`, `xargs -P8 bwrap --unshare-all --ro-bind / / --dev /dev
            --proc /proc --tmpfs /tmp --tmpfs /run --new-session --die-with-parent
            true` (the same isolation as supervise's default view), and `xargs -P8
            true` (the process floor). Jobs/s,
            median of R rounds, tools alternating within each round.
  single    one container: `supervise run -- true` against `unshare -fpmuin
            --mount-proc true`, `bwrap --unshare-all --dev-bind / / --proc /proc
            true` and `python -c 'import trio'` (the same interpreter: the
            language floor), and with --security-opt seccomp=unconfined; the
            default seccomp filter's compile (once a spawner) and install (once a
            container). Median wall time of N interleaved runs. What
            containment costs a container, step by step with supervise's own
            code (scripts/_bench_containment.py): PID 1's steps before exec,
            grouped, each timed alone as the Python path makes them (median of
            N); the native start that runs them all as machine code, clone to
            exec'd; and its cgroups made and removed, with and without the leaf
            that holds its limits out of its reach.
  scale     N concurrent `sleep 30` containers (`--big`: 1000): time until all
            run; the supervisor's and the spawner's resident memory and its
            growth per container; that no interpreter is resident per container;
            supervisor CPU while idle with the sampler on (--stats-json, 1 s).
  slurm     (only with --slurm) N x true (1000) locally at -j 8, over Slurm with
            --slurm --shards 4 -j 2, Slurm's fixed cost (a 4-task array), and a
            plain array of one task per job (100 tasks, extrapolated to N), on a
            throw-away one-host Slurm (scripts/_bench_slurm.py; installed with
            apt-get if missing); medians of 5 interleaved rounds.
  accuracy  a busy loop under --cpus 0.5 (CPU share over 5 s, from the
            container's cgroup); a job allocating 50, 100, 150 MiB in steps
            under -m 512m (the reported peak against what was allocated, raw
            and minus the same interpreter's baseline peak).

supervise is run as `<this interpreter> -m supervisor` from this working tree.
Every tool runs with bytecode caches, as a user's would: PYTHONDONTWRITEBYTECODE
is dropped from the children's environment. Progress goes to stderr.

Debian's bubblewrap and parallel are installed with apt-get if missing. The
benchmark is not a pass/fail test: it exits 0 whether targets are met or not
(2: bad usage or not root; 1: a tool failed). It cleans up after itself on every
path and runs `supervise gc -q` at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _bench_containment
import _bench_slurm

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SUPERVISE = [PY, "-m", "supervisor"]
UNSHARE = ["unshare", "-fpmuin", "--mount-proc", "true"]
BWRAP = ["bwrap", "--unshare-all", "--dev-bind", "/", "/", "--proc", "/proc", "true"]
# The peer with supervise's default isolation (issue 12): the host read-only, a /dev,
# /proc, /tmp and /run of its own, a session of its own, dying with its parent.
BWRAP_ISOLATED = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc",
                  "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run", "--new-session",
                  "--die-with-parent", "true"]
SECTIONS = ("batch", "single", "scale", "accuracy")
MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Every tool runs as a user would run it: with bytecode caches (this machine's
# sessions export PYTHONDONTWRITEBYTECODE, which would make each supervise start
# recompile the project's modules: ~40 ms).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
NAME_CLASH = "is already in use by container"
SUMMARY_LINES = ("supervise: wall", "supervise: slowest", "supervise: largest")
clashes: list[str] = []


class BenchError(Exception):
    """A tool did not do what was asked (a failed job, a container that never ran)."""


# -- results --------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    what: str
    value: float | None
    unit: str
    ratio: float | None = None      # value / the reference named in `ratio_of`
    ratio_of: str = ""
    target: str = ""                # human text, e.g. ">= 0.6x"
    meets: bool | None = None       # None: no target, or not measurable here


@dataclass
class Report:
    machine: dict[str, Any]
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def metric(self, section: str, name: str, value: Any) -> None:
        self.metrics.setdefault(section, {})[name] = value


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def say(*parts: object) -> None:
    print("bench:", *parts, file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------

_live: list[subprocess.Popen[bytes]] = []   # background processes to stop on any exit


def spawn(argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(list(argv), cwd=ROOT, env=ENV, **kw)
    _live.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    """Stop a supervise we started: SIGINT (stop), again (kill the containers now),
    then SIGKILL if it still lingers. Returns its exit status."""
    for s, grace in ((sig, 3.0), (signal.SIGINT, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    rc = proc.wait()
    if proc in _live:
        _live.remove(proc)
    return rc


def stop_all() -> None:
    for proc in list(_live):
        stop(proc)


def timed(argv: Sequence[str], *, stdin_path: Path | None = None,
          expect: Callable[[subprocess.CompletedProcess[bytes]], str | None] | None = None,
          timeout: float = 600) -> float:
    """Wall seconds of one command run to its end; raise if it failed."""
    for attempt in range(3):
        with open(stdin_path or os.devnull, "rb") as stdin:
            t0 = time.perf_counter()
            done = subprocess.run(list(argv), cwd=ROOT, env=ENV, stdin=stdin,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=timeout)
            elapsed = time.perf_counter() - t0
        problem = f"exit status {done.returncode}" if done.returncode != 0 else None
        if problem is None and expect is not None:
            problem = expect(done)
        if problem is None:
            return elapsed
        err = done.stderr.decode(errors="replace").strip()
        if NAME_CLASH in err and attempt < 2:
            # Another supervise on this host runs a container with the same default
            # name (batch names its jobs job-1, job-2...): not ours to measure; again.
            say(f"name clash with another supervise on this host, again: {err.splitlines()[0]}")
            clashes.append(err.splitlines()[0])
            continue
        break
    lines = [x for x in err.splitlines() if not x.startswith(SUMMARY_LINES)]
    raise BenchError(f"{' '.join(argv[:6])}...: {problem}: {' / '.join(lines)[-400:]}")


def supervise(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SUPERVISE, *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def children(pid: int) -> list[int]:
    """pid's children, made by any of its threads (the spawner's launchers)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    found, todo = [], children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children(p))
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])   # utime, stime (fields 14 and 15)


def spawner_of(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(pid):
            with contextlib.suppress(OSError):
                if b"nsutil.spawner" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
        time.sleep(0.01)
    raise BenchError(f"supervise {pid} started no spawner within {timeout:.0f}s")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# -- setup --------------------------------------------------------------------------------


def ensure_tools() -> dict[str, bool]:
    """bubblewrap and GNU parallel from Debian, if missing: apt-get update once, install."""
    wanted = {"bwrap": "bubblewrap", "parallel": "parallel"}
    missing = [pkg for cmd, pkg in wanted.items() if shutil.which(cmd) is None]
    if missing and shutil.which("apt-get"):
        say(f"installing {' '.join(missing)} (apt-get update, apt-get install -y)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for apt in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            subprocess.run(apt, check=False, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    have = {cmd: shutil.which(cmd) is not None for cmd in wanted}
    for cmd, ok in have.items():
        if not ok:
            say(f"{cmd} is missing and could not be installed: its rows are empty")
    return have


def machine_info() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    try:
        import cgroupfs
        layout: str = cgroupfs.detect_layout().kind
    except Exception as exc:   # the table still says what it could measure
        layout = f"unknown ({exc})"
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(), "kernel": platform.release(), "cgroups": layout,
        "python": platform.python_version(), "interpreter": PY,
        "loadavg_at_start": [round(x, 2) for x in load],
        "mem_total_mib": _meminfo("MemTotal") // 1024,
    }


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# -- 1. batch throughput -------------------------------------------------------------------


def bench_batch(rep: Report, tmp: Path, jobs: int, rounds: int, have: dict[str, bool]) -> None:
    sec = "batch"
    say(f"batch: {jobs} jobs x {rounds} rounds, concurrency 8")
    numbers = tmp / "numbers.txt"
    numbers.write_text("".join(f"{i}\n" for i in range(jobs)))

    def jobs_file(n: int) -> Path:
        path = tmp / f"jobs-{n}.txt"
        path.write_text("true\n" * n)
        return path

    def all_ok(n: int) -> Callable[[subprocess.CompletedProcess[bytes]], str | None]:
        def check(done: subprocess.CompletedProcess[bytes]) -> str | None:
            ok = f"{n} jobs: {n} ok" in done.stderr.decode(errors="replace")
            return None if ok else f"not all {n} jobs ran ok"
        return check

    batch_argv = [*SUPERVISE, "batch", "-j", "8", "-m", "64m", "--no-live"]
    full, one = jobs_file(jobs), jobs_file(1)
    unconfined = [*batch_argv, "--security-opt", "seccomp=unconfined"]
    tools: dict[str, Callable[[], float]] = {
        "supervise": lambda: timed([*batch_argv, str(full)], expect=all_ok(jobs)),
        "supervise-unconfined": lambda: timed([*unconfined, str(full)], expect=all_ok(jobs)),
        "xargs-unshare": lambda: timed(["xargs", "-P8", "-n1", *UNSHARE], stdin_path=numbers),
        "xargs-true": lambda: timed(["xargs", "-P8", "-n1", "true"], stdin_path=numbers),
        "supervise-1job": lambda: timed([*batch_argv, str(one)], expect=all_ok(1)),
    }
    if have["parallel"]:
        tools["parallel"] = lambda: timed(
            ["parallel", "--will-cite", "-j8", *UNSHARE], stdin_path=numbers)
    if have["bwrap"]:
        tools["xargs-bwrap"] = lambda: timed(["xargs", "-P8", "-n1", *BWRAP_ISOLATED],
                                             stdin_path=numbers)
    # Warm the page cache and the kernel's namespace paths once, untimed.
    timed([*batch_argv, str(jobs_file(min(jobs, 16)))], expect=all_ok(min(jobs, 16)))
    timed(["xargs", "-P8", "-n1", *UNSHARE], stdin_path=numbers)

    walls: dict[str, list[float]] = {name: [] for name in tools}
    order = list(tools)
    for r in range(rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:   # rotate each round
            walls[name].append(tools[name]())
        say(f"batch round {r + 1}: " + ", ".join(
            f"{n} {jobs / walls[n][-1]:.0f}/s" for n in order if n != "supervise-1job"))

    med = {name: median(w) for name, w in walls.items()}
    rate = {name: jobs / med[name] for name in tools if name != "supervise-1job"}
    rate.setdefault("parallel", None)  # type: ignore[arg-type]
    rate.setdefault("xargs-bwrap", None)  # type: ignore[arg-type]
    sup = rate["supervise"]
    startup = med["supervise-1job"]
    net = (jobs - 1) / (med["supervise"] - startup) if med["supervise"] > startup else None
    r_xargs, r_par = ratio(sup, rate["xargs-unshare"]), ratio(sup, rate["parallel"])
    r_bwrap = ratio(sup, rate["xargs-bwrap"])
    rep.add(Row(sec, f"supervise batch -j8 -m 64m ({jobs} x true)", sup, "jobs/s"))
    rep.add(Row(sec, "  the same, minus supervise's startup", net, "jobs/s"))
    rep.add(Row(sec, "  supervise batch of 1 job (startup)", startup * 1000, "ms"))
    free = rate["supervise-unconfined"]
    seccomp_ms = (1 / sup - 1 / free) * 1000 if sup and free else None
    rep.add(Row(sec, "  the same, --security-opt seccomp=unconfined", free, "jobs/s"))
    rep.add(Row(sec, "  seccomp's cost per job (wall, at -j8)", seccomp_ms, "ms"))
    cost = containment_costs(rep, max(rounds * 5, 15))
    budget_us = (os.cpu_count() or 1) * 1e6 / net if net else None
    share = cost / budget_us * 100 if cost is not None and budget_us else None
    rep.add(Row(sec, "  containment's CPU per job (see single), of the CPU a job takes here",
                share, "%"))
    rep.metric(sec, "cpu_per_job_us", budget_us)
    rep.metric(sec, "containment_share_percent", share)
    rep.add(Row(sec, "xargs -P8 unshare -fpmuin --mount-proc true", rate["xargs-unshare"],
                "jobs/s"))
    rep.add(Row(sec, "parallel -j8 unshare -fpmuin --mount-proc true", rate["parallel"],
                "jobs/s"))
    rep.add(Row(sec, "xargs -P8 bwrap --unshare-all --ro-bind / / --dev --proc --tmpfs "
                "/tmp /run ...", rate["xargs-bwrap"], "jobs/s"))
    rep.add(Row(sec, "xargs -P8 true (the process floor)", rate["xargs-true"], "jobs/s"))
    rep.add(Row(sec, "supervise / xargs-unshare", r_xargs, "x", target=">= 0.6x",
                meets=at_least(r_xargs, 0.6)))
    rep.add(Row(sec, "supervise / parallel", r_par, "x", target=">= 1.5x",
                meets=at_least(r_par, 1.5)))
    rep.add(Row(sec, "supervise / xargs-bwrap (the same isolation)", r_bwrap, "x",
                target=">= 1.0x", meets=at_least(r_bwrap, 1.0)))
    for name in tools:
        rep.metric(sec, f"{name}_wall_s", walls[name])
    rep.metric(sec, "jobs", jobs)
    rep.metric(sec, "rounds", rounds)
    rep.metric(sec, "supervise_jobs_per_s", sup)
    rep.metric(sec, "supervise_jobs_per_s_minus_startup", net)
    rep.metric(sec, "supervise_startup_s", startup)
    rep.metric(sec, "supervise_unconfined_jobs_per_s", free)
    rep.metric(sec, "seccomp_cost_per_job_ms", seccomp_ms)
    rep.metric(sec, "xargs_unshare_jobs_per_s", rate["xargs-unshare"])
    rep.metric(sec, "parallel_jobs_per_s", rate["parallel"])
    rep.metric(sec, "xargs_true_jobs_per_s", rate["xargs-true"])
    rep.metric(sec, "xargs_bwrap_jobs_per_s", rate["xargs-bwrap"])
    rep.metric(sec, "ratio_supervise_xargs_bwrap", r_bwrap)
    rep.metric(sec, "ratio_supervise_xargs_unshare", r_xargs)
    rep.metric(sec, "ratio_supervise_parallel", r_par)


# -- 2. one container ------------------------------------------------------------------------


def bench_slurm(rep: Report, jobs: int) -> None:
    """Issue 14: a batch of short jobs over 4 Slurm shards against the same batch run
    here and against a plain array of one task per job (scripts/_bench_slurm.py)."""
    sec = "slurm"
    try:
        m = _bench_slurm.measure(jobs, sys.executable, say)
    except (_bench_slurm.SlurmBenchError, subprocess.SubprocessError, OSError) as exc:
        raise BenchError(f"slurm: {exc}") from exc
    for name, value in m.items():
        rep.metric(sec, name, value)
    plain_n = m["plain_s"] * jobs / m["plain_tasks"]
    bound = m["local_s"] + m["fixed_s"]
    r_local = ratio(m["sharded_s"], bound)
    r_plain = ratio(plain_n, m["sharded_s"])
    rep.add(Row(sec, f"supervise batch -j 8 ({jobs} x true), here", m["local_s"], "s"))
    rep.add(Row(sec, "Slurm's fixed cost: a 4-task array of true, submit to done",
                m["fixed_s"], "s"))
    rep.add(Row(sec, "  the same batch, --slurm --shards 4 -j 2", m["sharded_s"], "s",
                r_local, "sharded / (here + fixed)", "<= 1.2x", at_most(r_local, 1.2)))
    rounds = m["rounds"]
    # (two local runs a round, each before one of the round's arrays: their mean)
    locals_ = rounds["local_s"]
    each = sorted(s / ((locals_[2 * i] + locals_[2 * i + 1]) / 2 + f)
                  for i, (s, f) in enumerate(zip(rounds["sharded_s"], rounds["fixed_s"],
                                                 strict=True)))
    rep.add(Row(sec, f"  the same ratio in each of {len(each)} rounds, worst "
                f"(best {each[0]:.2f}x)", each[-1], "x"))
    rep.add(Row(sec, f"a plain array, one task per job ({m['plain_tasks']} x true)",
                m["plain_s"], "s"))
    rep.add(Row(sec, f"  the same, {jobs} tasks (extrapolated)", plain_n, "s", r_plain,
                "plain / sharded", ">= 5x", at_least(r_plain, 5.0)))


def bench_single(rep: Report, runs: int, have: dict[str, bool]) -> None:
    sec = "single"
    say(f"single: {runs} interleaved runs each")
    cmds: dict[str, list[str]] = {
        "supervise": [*SUPERVISE, "run", "--", "true"],
        "supervise-unconfined": [*SUPERVISE, "run", "--security-opt", "seccomp=unconfined",
                                 "--", "true"],
        "unshare": UNSHARE,
        "python-import-trio": [PY, "-c", "import trio"],
    }
    if have["bwrap"]:
        cmds["bwrap"] = BWRAP
    for argv in cmds.values():        # warm up, untimed
        timed(argv)
    walls: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, argv in cmds.items():
            walls[name].append(timed(argv))
    med: dict[str, float | None] = {name: median(w) for name, w in walls.items()}
    med.setdefault("bwrap", None)
    sup, trio = med["supervise"], med["python-import-trio"]
    ms = {k: None if v is None else v * 1000 for k, v in med.items()}
    r_trio = ratio(sup, trio)
    rep.add(Row(sec, "supervise run -- true", ms["supervise"], "ms"))
    rep.add(Row(sec, "  the same, --security-opt seccomp=unconfined",
                ms["supervise-unconfined"], "ms", ratio(sup, med["supervise-unconfined"]),
                "default / unconfined"))
    compile_ms, install_us = seccomp_costs()
    rep.add(Row(sec, "seccomp: compiling docker's profile (once a spawner)", compile_ms, "ms"))
    rep.add(Row(sec, "seccomp: installing it (once a container)", install_us, "us"))
    rep.metric(sec, "seccomp_compile_ms", compile_ms)
    rep.metric(sec, "seccomp_install_us", install_us)
    containment_costs(rep, runs)
    measured = _containment.get("measured") or {}
    steps: dict[str, float] = measured.get("pid1_us", {})
    for group, us in sorted(steps.items(), key=lambda item: -item[1]):
        mark = " (containment)" if group in _bench_containment.CONTAINMENT_GROUPS else ""
        rep.add(Row(sec, f"PID 1's steps: {group}{mark}", us, "us"))
    if steps:
        rep.add(Row(sec, "PID 1's steps: all, before exec", sum(steps.values()), "us"))
    native = measured.get("native_us")
    rep.add(Row(sec, "PID 1's start, native: clone to exec'd (the steps as machine code)",
                native, "us"))
    rep.metric(sec, "native_start_us", native)
    with_leaf, without = measured.get("cgroups_us"), measured.get("cgroups_without_leaf_us")
    rep.add(Row(sec, "cgroups of a -m 64m container, made and removed", with_leaf, "us"))
    rep.add(Row(sec, "  of which the leaf (delegation: limits out of reach)",
                None if with_leaf is None or without is None else with_leaf - without, "us"))
    rep.add(Row(sec, "containment per container: the steps marked, the leaf",
                _containment.get("total_us"), "us"))
    rep.add(Row(sec, "unshare -fpmuin --mount-proc true", ms["unshare"], "ms",
                ratio(sup, med["unshare"]), "supervise / unshare"))
    rep.add(Row(sec, "bwrap --unshare-all ... true", ms["bwrap"], "ms",
                ratio(sup, med["bwrap"]), "supervise / bwrap"))
    rep.add(Row(sec, "python -c 'import trio' (the language floor)", ms["python-import-trio"],
                "ms", r_trio, "supervise / import trio", "<= 1.5x", at_most(r_trio, 1.5)))
    rep.metric(sec, "runs", runs)
    for name, w in walls.items():
        rep.metric(sec, f"{name.replace('-', '_')}_wall_s", w)
    for name, v in med.items():
        rep.metric(sec, f"{name.replace('-', '_')}_median_s", v)
    rep.metric(sec, "ratio_supervise_import_trio", r_trio)


def seccomp_costs(runs: int = 21) -> tuple[float | None, float | None]:
    """What the default seccomp filter costs, measured here with the spawner's own code:
    compiling it (libseccomp already loaded; median of a few), and one child's
    seccomp(2) installing it (after no_new_privs, as PID 1 does; median of runs)."""
    sys.path.insert(0, str(ROOT))
    try:
        from nsutil import _caps, _libc, _seccomp, _seccomp_bpf
        caps = tuple(_caps.effective_set())
        _seccomp_bpf.prepare(_seccomp.DEFAULT, caps)   # loads libseccomp
    except Exception as exc:   # no libseccomp: the rows stay empty
        say(f"seccomp: {exc}")
        return None, None
    compiles = []
    for _ in range(5):
        t0 = time.perf_counter()
        program = _seccomp_bpf.prepare(_seccomp.DEFAULT, caps)
        compiles.append((time.perf_counter() - t0) * 1000)
    installs = []
    for _ in range(runs):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            _libc.libc.prctl(_libc.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            t0 = time.perf_counter_ns()
            done = _libc.libc.syscall(*program.args)
            elapsed = time.perf_counter_ns() - t0
            os.write(write_end, str(elapsed if done == 0 else -1).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as f:
            ns = int(f.read() or b"-1")
        os.waitpid(pid, 0)
        if ns >= 0:
            installs.append(ns / 1000)
    return median(compiles), median(installs) if installs else None


_containment: dict[str, Any] = {}


def containment_costs(rep: Report, runs: int) -> float | None:
    """What a default container's containment costs (microseconds of CPU, measured
    once a bench with _bench_containment: PID 1's containment steps and the cgroup
    leaf); kept for the other section. Metrics under "single", containment_*."""
    if "measured" not in _containment:
        say(f"containment: {runs} containers' setup, step by step")
        measured = _bench_containment.measure(runs, say)
        _containment["measured"] = measured
        steps = measured.get("pid1_us", {})
        leaf = (measured["cgroups_us"] - measured["cgroups_without_leaf_us"]
                if "cgroups_us" in measured else None)
        total = (sum(us for group, us in steps.items()
                     if group in _bench_containment.CONTAINMENT_GROUPS) + leaf
                 if steps and leaf is not None else None)
        _containment["total_us"] = total
        for group, us in steps.items():
            rep.metric("single", "containment_pid1_" + group.replace(" ", "_").replace(
                ",", "").replace("/", "") + "_us", us)
        rep.metric("single", "containment_pid1_total_us", sum(steps.values()) if steps else None)
        rep.metric("single", "containment_cgroups_us", measured.get("cgroups_us"))
        rep.metric("single", "containment_cgroups_without_leaf_us",
                   measured.get("cgroups_without_leaf_us"))
        rep.metric("single", "containment_total_us", total)
    total_us: float | None = _containment.get("total_us")
    return total_us


# -- 3. scale --------------------------------------------------------------------------------


@dataclass
class ScaleRun:
    n: int
    start_s: float
    supervisor_rss: int
    spawner_rss: int
    container_procs: int
    python_procs: int
    supervisor_fds: int = 0
    spawner_fds: int = 0
    idle_cpu_pct: float | None = None
    idle_cpu_pct_supervisor_only: float | None = None
    idle_window_s: float | None = None


SLEEP_S = 30


def scale_run(tmp: Path, n: int, idle_window: float | None) -> ScaleRun:
    """Start n `sleep 30` containers at once (longer for thousands: all must still run
    when the last starts), wait until all run, measure, stop them."""
    sleep_s = SLEEP_S + n // 100
    jobs = tmp / f"sleep-{n}.txt"
    jobs.write_text(f"sleep {sleep_s}\n" * n)
    t0 = time.perf_counter()
    proc = spawn([*SUPERVISE, "batch", "-j", str(n), "--no-live", "--stop-timeout", "1s",
                  "--stats-json", os.devnull, "--interval", "1s", str(jobs)],
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE)
    try:
        spawner = spawner_of(proc.pid)
        deadline = time.monotonic() + max(60, n * 0.2)
        while True:
            running = sum(comm(p) == "sleep" for p in children(spawner))
            if running >= n:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"only {running} of {n} containers ran "
                                 f"(supervise exit status {proc.poll()})")
            time.sleep(0.05 if n > 50 else 0.005)
        start_s = time.perf_counter() - t0
        time.sleep(0.5)     # let the batch settle (state files, first sample) before RSS
        procs = descendants(spawner)
        run = ScaleRun(
            n=n, start_s=start_s,
            supervisor_rss=rss_bytes(proc.pid) or 0, spawner_rss=rss_bytes(spawner) or 0,
            container_procs=len(procs),
            python_procs=sum("python" in os.path.basename(exe(p)) for p in procs),
            supervisor_fds=fd_count(proc.pid), spawner_fds=fd_count(spawner),
        )
        if idle_window:
            # Containers started first end sleep_s after they started: stay clear of that.
            window = min(idle_window, sleep_s - (time.perf_counter() - t0) - 2)
            if window >= 1:
                a0, b0, w0 = cpu_ticks(proc.pid), cpu_ticks(spawner), time.perf_counter()
                time.sleep(window)
                a1, b1, w1 = cpu_ticks(proc.pid), cpu_ticks(spawner), time.perf_counter()
                if None not in (a0, a1, b0, b1):
                    assert a0 is not None and a1 is not None and b0 is not None \
                        and b1 is not None
                    run.idle_window_s = w1 - w0
                    run.idle_cpu_pct = (a1 - a0 + b1 - b0) / CLK_TCK / (w1 - w0) * 100
                    run.idle_cpu_pct_supervisor_only = (a1 - a0) / CLK_TCK / (w1 - w0) * 100
        return run
    finally:
        stop(proc)


def bench_scale(rep: Report, tmp: Path, n: int, idle_window: float) -> None:
    sec = "scale"
    say(f"scale: 1 container, then {n} concurrent `sleep` containers")
    base = scale_run(tmp, 1, None)
    big = scale_run(tmp, n, idle_window)
    total_1 = base.supervisor_rss + base.spawner_rss
    total_n = big.supervisor_rss + big.spawner_rss
    growth = (total_n - total_1) / (n - 1) if n > 1 else None
    at_1000 = total_1 + growth * 999 if growth is not None else None
    rate = (n - 1) / (big.start_s - base.start_s) if big.start_s > base.start_s else None
    rep.add(Row(sec, f"time until {n} containers run", big.start_s, "s",
                target="<= 60 s" if n >= 10_000 else "",
                meets=at_most(big.start_s, 60) if n >= 10_000 else None))
    rep.add(Row(sec, "  time until 1 container runs", base.start_s, "s"))
    rep.add(Row(sec, "  starts per second, minus the 1-container time", rate, "/s"))
    rep.add(Row(sec, f"all {n} running at once", float(big.container_procs), "procs",
                target=f"= {n}", meets=big.container_procs == n))
    rep.add(Row(sec, "Python interpreters resident per container",
                big.python_procs / n, "per container", target="= 0",
                meets=big.python_procs == 0))
    for who, with_n, with_1 in (("supervisor", big.supervisor_fds, base.supervisor_fds),
                                ("spawner", big.spawner_fds, base.spawner_fds)):
        rep.add(Row(sec, f"{who}'s file descriptors per container", (with_n - with_1)
                    / max(n - 1, 1), "fds"))
        rep.metric(sec, f"{who}_fds", with_n)
    rep.add(Row(sec, f"supervisor RSS with {n}", big.supervisor_rss / MiB, "MiB"))
    rep.add(Row(sec, f"spawner RSS with {n}", big.spawner_rss / MiB, "MiB"))
    own_target = 300 if n >= 10_000 else 100  # (issue 16: 300 MiB with 10,000 live)
    rep.add(Row(sec, f"supervise's own memory with {n} (both)", total_n / MiB, "MiB",
                target=f"<= {own_target} MiB" if n >= 1000 else "",
                meets=at_most(total_n / MiB, own_target) if n >= 1000 else None))
    rep.add(Row(sec, "  with 1 container", total_1 / MiB, "MiB"))
    rep.add(Row(sec, "  growth per container", None if growth is None else growth / 1024,
                "KiB"))
    if n < 1000:
        rep.add(Row(sec, "  projected for 1000 (1 + growth x 999)",
                    None if at_1000 is None else at_1000 / MiB, "MiB",
                    target="<= 100 MiB", meets=at_most(
                        None if at_1000 is None else at_1000 / MiB, 100)))
    cpu_what = f"CPU while idle, sampler at 1s, {n} containers"
    if big.idle_window_s is not None and big.idle_window_s < idle_window - 0.5:
        cpu_what += f" ({big.idle_window_s:.0f}s window)"
    # Targets at 200 and 1,000 containers (5 %) and 10,000 (20 %); the cost grows
    # with their number.
    bound = {200: 5.0, 1000: 5.0, 10_000: 20.0}.get(n)
    rep.add(Row(sec, cpu_what, big.idle_cpu_pct, "% of a CPU",
                target="" if bound is None else f"<= {bound:g}% (at {n})",
                meets=None if bound is None else at_most(big.idle_cpu_pct, bound)))
    rep.add(Row(sec, "  of which the supervisor process", big.idle_cpu_pct_supervisor_only,
                "% of a CPU"))
    rep.metric(sec, "containers", n)
    rep.metric(sec, "start_all_s", big.start_s)
    rep.metric(sec, "start_one_s", base.start_s)
    rep.metric(sec, "containers_running", big.container_procs)
    rep.metric(sec, "python_per_container", big.python_procs / n)
    rep.metric(sec, "supervisor_rss_bytes", big.supervisor_rss)
    rep.metric(sec, "spawner_rss_bytes", big.spawner_rss)
    rep.metric(sec, "own_rss_bytes", total_n)
    rep.metric(sec, "own_rss_bytes_one", total_1)
    rep.metric(sec, "growth_per_container_bytes", growth)
    rep.metric(sec, "idle_cpu_percent", big.idle_cpu_pct)
    rep.metric(sec, "idle_cpu_percent_supervisor_only", big.idle_cpu_pct_supervisor_only)
    rep.metric(sec, "idle_window_s", big.idle_window_s)


# -- 4. accuracy -------------------------------------------------------------------------------


def find_state(name: str, timeout: float = 30) -> dict[str, Any]:
    from dataclasses import asdict

    from supervisor._state import read_states
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in read_states():
            if state.name == name:
                return asdict(state)
        time.sleep(0.02)
    raise BenchError(f"container {name} did not appear in the state directory")


def cpu_usage_reader(cgroup_paths: Sequence[str]) -> Callable[[], float]:
    """Seconds of CPU the cgroup has used: v1 cpuacct.usage, v2 cpu.stat usage_usec."""
    for path in cgroup_paths:
        if os.path.exists(os.path.join(path, "cpuacct.usage")):
            file = os.path.join(path, "cpuacct.usage")
            return lambda: int(Path(file).read_text()) / 1e9
    for path in cgroup_paths:
        stat = os.path.join(path, "cpu.stat")
        if os.path.exists(stat) and "usage_usec" in Path(stat).read_text():
            def v2(stat: str = stat) -> float:
                for line in Path(stat).read_text().splitlines():
                    key, value = line.split()
                    if key == "usage_usec":
                        return int(value) / 1e6
                raise BenchError(f"no usage_usec in {stat}")
            return v2
    raise BenchError(f"no CPU accounting file in {list(cgroup_paths)}")


def memory_job(steps: int, step_mib: int) -> list[str]:
    code = (
        "import time\n"
        "keep = []\n"
        f"for _ in range({steps}):\n"
        f"    b = bytearray({step_mib} << 20)\n"
        "    b[::4096] = b'\\x01' * len(range(0, len(b), 4096))\n"
        "    keep.append(b)\n"
        "    time.sleep(0.2)\n"
        "time.sleep(0.2)\n"
    )
    return [PY, "-I", "-c", code]


def bench_accuracy(rep: Report, tmp: Path, window: float) -> None:
    sec = "accuracy"
    say(f"accuracy: --cpus 0.5 over {window:g}s; 50/100/150 MiB under -m 512m")
    name = f"bench-cpu-{os.getpid()}"
    proc = spawn([*SUPERVISE, "run", "--name", name, "--cpus", "0.5", "--stop-timeout", "1s",
                  "--", "sh", "-c", "while :; do :; done"],
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        usage = cpu_usage_reader(find_state(name)["cgroup_paths"])
        time.sleep(min(1.0, window))          # past the first period
        u0, t0 = usage(), time.perf_counter()
        time.sleep(window)
        u1, t1 = usage(), time.perf_counter()
        share = (u1 - u0) / (t1 - t0)
    finally:
        supervise("kill", name)
        stop(proc)
    err = abs(share - 0.5)
    rep.add(Row(sec, f"busy loop under --cpus 0.5, CPU share over {t1 - t0:.0f}s", share,
                "CPUs", target="0.5 +- 0.1", meets=err <= 0.1))

    steps, step_mib = 3, 50
    allocated = steps * step_mib * MiB
    peaks: dict[str, int] = {}
    for label, n in (("baseline", 0), ("allocating", steps)):
        report = tmp / f"mem-{label}.json"
        timed([*SUPERVISE, "run", "-m", "512m", "--report", str(report), "--",
               *memory_job(n, step_mib)])
        peak = json.loads(report.read_text())["peak_memory_bytes"]
        if not isinstance(peak, int):
            raise BenchError(f"no peak memory in the {label} report: {peak!r}")
        peaks[label] = peak
    raw, net = peaks["allocating"], peaks["allocating"] - peaks["baseline"]
    net_err = abs(net - allocated) / allocated
    rep.add(Row(sec, "peak, allocating 50+50+50 MiB under -m 512m", raw / MiB, "MiB",
                raw / allocated, "peak / allocated"))
    rep.add(Row(sec, "  the same interpreter allocating nothing", peaks["baseline"] / MiB,
                "MiB"))
    rep.add(Row(sec, "  peak minus baseline, against 150 MiB", net / MiB, "MiB",
                net / allocated, "(peak - baseline) / allocated", "within 5%",
                net_err <= 0.05))
    rep.metric(sec, "cpus_limit", 0.5)
    rep.metric(sec, "cpu_share", share)
    rep.metric(sec, "cpu_window_s", t1 - t0)
    rep.metric(sec, "allocated_bytes", allocated)
    rep.metric(sec, "peak_bytes", raw)
    rep.metric(sec, "baseline_peak_bytes", peaks["baseline"])
    rep.metric(sec, "peak_minus_baseline_bytes", net)
    rep.metric(sec, "peak_error_fraction", net_err)


# -- output ------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rep: Report) -> str:
    head = ("", "value", "unit", "ratio", "target", "meets")
    lines: list[tuple[str, ...]] = []
    for section in (*SECTIONS, "slurm"):
        rows = [r for r in rep.rows if r.section == section]
        if not rows:
            continue
        lines.append((f"[{section}]",))
        for r in rows:
            rat = "" if r.ratio is None else f"{r.ratio:.2f}x" + (
                f" ({r.ratio_of})" if r.ratio_of else "")
            meets = "" if r.meets is None else ("yes" if r.meets else "NO")
            lines.append((r.what, fmt(r.value), r.unit, rat, r.target, meets))
    widths = [max(len(x[i]) for x in [head, *lines] if len(x) > i) for i in range(len(head))]
    out = []
    for x in [head, *lines]:
        if len(x) == 1:
            out.append(x[0])
            continue
        cells = [x[0].ljust(widths[0]), x[1].rjust(widths[1]),
                 *(c.ljust(w) for c, w in zip(x[2:], widths[2:], strict=True))]
        out.append("  ".join(cells).rstrip())
    m = rep.machine
    title = (f"supervise benchmark: {m['cpus']} CPUs, Linux {m['kernel']}, cgroups "
             f"{m['cgroups']}, Python {m['python']}, load {m['loadavg_at_start'][0]}")
    return "\n".join([title, *out, *(f"note: {n}" for n in rep.notes)])


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=500, metavar="N",
                   help="batch: jobs per tool and round (default 500)")
    p.add_argument("--rounds", type=int, default=3, metavar="R",
                   help="batch: rounds, median reported (default 3)")
    p.add_argument("--runs", type=int, default=20, metavar="N",
                   help="single: runs of each command (default 20)")
    p.add_argument("--scale", type=int, default=200, metavar="N",
                   help="scale: concurrent containers (default 200)")
    p.add_argument("--big", action="store_true", help="scale: 1000 containers (--scale 10000 "
                   "for issue 16's ten thousand)")
    p.add_argument("--skip", action="append", default=[], choices=SECTIONS,
                   help="leave a section out (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes for a smoke test: 20 jobs, 1 round, 3 runs, scale 5, "
                        "1 s windows")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--slurm", action="store_true",
                   help="also the slurm section: a batch over Slurm shards against local "
                        "and a plain array (installs and starts a one-host Slurm)")
    p.add_argument("--slurm-jobs", type=int, default=1000, metavar="N",
                   help="slurm: jobs in the batch (default 1000)")
    args = p.parse_args(argv)
    if args.quick:
        args.jobs, args.rounds, args.runs, args.scale = 20, 1, 3, 5
    if args.big:
        args.scale = 1000
    args.window = 1.0 if args.quick else 5.0        # accuracy: CPU share window
    args.idle_window = 2.0 if args.quick else 10.0  # scale: idle CPU window
    for name in ("jobs", "rounds", "runs", "scale"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    # Ctrl-C or SIGTERM: stop what runs, clean up, exit 130 (even if started with
    # SIGINT ignored, as a shell does for background jobs).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if os.geteuid() != 0:
        print("scripts/bench: needs root (namespaces and cgroups)", file=sys.stderr)
        return 2
    if shutil.which("unshare") is None:
        print("scripts/bench: needs unshare (util-linux)", file=sys.stderr)
        return 2
    sections = [s for s in SECTIONS if s not in args.skip]
    if args.slurm:
        sections.append("slurm")
    have = ensure_tools() if {"batch", "single"} & set(sections) else \
        {"bwrap": False, "parallel": False}
    rep = Report(machine_info(), {
        "jobs": args.jobs, "rounds": args.rounds, "runs": args.runs, "scale": args.scale,
        "quick": args.quick, "sections": sections, "cpu_window_s": args.window,
        "idle_window_s": args.idle_window,
    })
    failed = False
    with tempfile.TemporaryDirectory(prefix="supervise-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            for section in sections:
                t0 = time.perf_counter()
                try:
                    if section == "batch":
                        bench_batch(rep, tmp, args.jobs, args.rounds, have)
                    elif section == "single":
                        bench_single(rep, args.runs, have)
                    elif section == "scale":
                        bench_scale(rep, tmp, args.scale, args.idle_window)
                    elif section == "slurm":
                        bench_slurm(rep, 20 if args.quick else args.slurm_jobs)
                    else:
                        bench_accuracy(rep, tmp, args.window)
                except (BenchError, subprocess.TimeoutExpired) as exc:
                    failed = True
                    rep.notes.append(f"{section} failed: {exc}")
                    say(f"{section} failed: {exc}")
                    stop_all()
                rep.metric(section, "section_wall_s", time.perf_counter() - t0)
        except KeyboardInterrupt:
            say("interrupted: cleaning up")
            return 130
        finally:
            stop_all()
            with contextlib.suppress(Exception):
                supervise("gc", "-q")
    if clashes:
        rep.notes.append(f"{len(clashes)} batch run(s) repeated after a job-name clash with "
                         f"another supervise on this host: {clashes[0]}")
    if args.json:
        print(json.dumps({"machine": rep.machine, "config": rep.config,
                          "metrics": rep.metrics, "rows": [asdict(r) for r in rep.rows],
                          "notes": rep.notes}, indent=2))
    else:
        print(table(rep))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
