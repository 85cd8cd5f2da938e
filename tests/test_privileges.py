"""A jobs-file line may not ask for more than its batch's command line grants (issue 11,
item 7): the pure decision, against an oracle over the specs build_spec makes, and the
CLI's refusal."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nsutil import _caps
from supervisor._errors import JobsFileError
from supervisor._jobs import merge_options, parse_jobs
from supervisor._jobs_check import batch_grant, check_jobs
from supervisor._options import HostFacts, RunOptions, build_spec
from supervisor._privileges import Grant, beyond, grant_of
from supervisor._schedule import Admission
from supervisor._spec import ContainerSpec
from supervisor.cli._flags import parse_job_options

from .containers import supervise

pytestmark = pytest.mark.no_leak_check  # nothing here starts a container but the CLI test

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
          "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n")
GROUP = "root:x:0:\nnogroup:x:65534:\nalice:x:1000:\n"
HOST = HostFacts(cpu_count=2, cpus=frozenset({0, 1}), mems=frozenset({0}), environ={})


def _files(path: str) -> str:
    return {"/etc/passwd": PASSWD, "/etc/group": GROUP}[path]


def _decide(batch: RunOptions, given: dict[str, Any]) -> list[str]:
    line = merge_options(batch, given)
    spec = build_spec(["true"], line, HOST, default_hostname="x", read_file=_files)
    return beyond(batch_grant(batch, HOST, _files), grant_of(spec), line)


NOBODY = RunOptions(user="65534:65534")


@pytest.mark.parametrize(("batch", "given", "found"), [
    # as nobody: nothing more privileged, whatever the spelling
    (NOBODY, {}, []),
    (NOBODY, {"user": "nobody"}, []),
    (NOBODY, {"user": "65534"}, []),                  # nobody's passwd group: the same
    (NOBODY, {"user": "0"}, ["-u 0"]),
    (NOBODY, {"user": "root"}, ["-u root"]),
    (NOBODY, {"user": "65534:0"}, ["-u 65534:0"]),    # group root
    (NOBODY, {"user": "alice"}, ["-u alice"]),        # another user's files
    (NOBODY, {"privileged": True}, ["--privileged"]),
    (NOBODY, {"cap_add": ("SYS_TIME",)}, ["--cap-add SYS_TIME"]),
    (NOBODY, {"cap_add": ("all",)}, ["--cap-add ALL"]),
    (NOBODY, {"net": "host"}, ["--net host"]),
    (NOBODY, {"privileged": True, "user": "0", "net": "host"},
     ["--privileged", "--net host", "-u 0"]),
    # less is always fine
    (NOBODY, {"cap_drop": ("ALL",)}, []),
    (NOBODY, {"cap_drop": ("NET_RAW",), "cap_add": ("CHOWN",)}, []),
    (NOBODY, {"memory": "64m", "timeout": "1s", "init": True, "env": ("A=1",)}, []),
    # as root with docker's set: any user, but not more capabilities
    (RunOptions(), {"user": "alice"}, []),
    (RunOptions(), {"user": "65534:0"}, []),
    (RunOptions(), {"cap_add": ("NET_ADMIN",), "cap_drop": ("NET_RAW",)},
     ["--cap-add NET_ADMIN"]),
    # a line's --cap-drop replaces the batch's: dropping less gives back the rest
    (RunOptions(cap_drop=("ALL",)), {"cap_drop": ("NET_RAW",)},
     ["--cap-drop NET_RAW (it keeps CHOWN,DAC_OVERRIDE,FOWNER,+10 more, which the batch"
      " drops)"]),
    (RunOptions(cap_drop=("NET_RAW",)), {"cap_drop": ("CHOWN",)},
     ["--cap-drop CHOWN (it keeps NET_RAW, which the batch drops)"]),
    (RunOptions(cap_add=("SYS_TIME",)), {"cap_add": ("SYS_TIME", "CHOWN")}, []),
    # root that cannot switch users may not become another
    (RunOptions(cap_drop=("SETUID",)), {"user": "alice"}, ["-u alice"]),
    (RunOptions(cap_drop=("ALL",)), {"user": "0:0"}, []),
    # a privileged batch grants every capability, not the host's network
    (RunOptions(privileged=True), {"cap_add": ("ALL",), "user": "alice"}, []),
    (RunOptions(privileged=True), {"net": "host"}, ["--net host"]),
    (RunOptions(net="host"), {"net": "host"}, []),
])
def test_what_a_line_may_not_ask_for(batch: RunOptions, given: dict[str, Any],
                                     found: list[str]) -> None:
    assert _decide(batch, given) == found


def test_the_batchs_other_flags_do_not_matter() -> None:
    """Its grant is of its privilege flags alone: --memory-swap without -m (each line
    gives -m) makes no spec, and need not."""
    batch = RunOptions(user="65534:65534", memory_swap="1g")
    assert _decide(batch, {"memory": "512m"}) == []
    assert _decide(batch, {"memory": "512m", "user": "0"}) == ["-u 0"]


@dataclasses.dataclass(frozen=True)
class _LaterSpec(ContainerSpec):
    """A ContainerSpec with what another change adds (read by name)."""

    seccomp: str | None = "default"
    no_new_privileges: bool = False
    devices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _LaterOptions(RunOptions):
    security_opt: Sequence[str] = ()


def _grant(**spec: Any) -> Grant:
    return grant_of(_LaterSpec(["true"], **spec))


# profiles in docker's format (a ContainerSpec that has seccomp checks them)
STRICT = ('{"defaultAction": "SCMP_ACT_ERRNO", '
          '"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}')
LOOSE = '{"defaultAction": "SCMP_ACT_ALLOW"}'


def test_seccomp_no_new_privileges_and_devices_by_name() -> None:
    nobody = {"user": (65534, 65534)}
    strict = _grant(seccomp=STRICT, devices=("/dev/fuse",), **nobody)
    line = _LaterOptions(security_opt=("seccomp=mine.json",))
    assert beyond(strict, _grant(seccomp=STRICT, **nobody), line) == []
    assert beyond(strict, _grant(seccomp="default", **nobody), line) == [
        "--security-opt seccomp=mine.json"]  # the builtin may be looser than the batch's
    assert beyond(strict, _grant(seccomp=None, **nobody), line) == [
        "--security-opt seccomp=mine.json"]
    assert beyond(strict, _grant(seccomp=STRICT, devices=("/dev/fuse", "/dev/sda"), **nobody),
                  RunOptions()) == ["--device /dev/sda"]
    unconfined = _grant(seccomp=None)
    assert beyond(unconfined, _grant(seccomp="default"), line) == []  # tighter is fine
    assert beyond(unconfined, _grant(seccomp=LOOSE), line) == []
    privileged = _grant(privileged=True, no_new_privileges=True)
    assert beyond(privileged, _grant(privileged=True, devices=("/dev/x",)), line) == [
        "--security-opt without the batch's no-new-privileges"]
    assert beyond(privileged, _grant(privileged=True, no_new_privileges=True), line) == []


# -- the decision against an oracle over the specs themselves ---------------------------
def _exceeds(batch: ContainerSpec, line: ContainerSpec) -> bool:
    """Whether line's spec may do what batch's may not: the specs' own capability
    numbers (None: all), network, and user (root able to switch may become anyone)."""
    every = set(range(len(_caps.CAPABILITIES)))
    batch_caps = every if batch.capabilities() is None else set(batch.capabilities() or ())
    line_caps = every if line.capabilities() is None else set(line.capabilities() or ())
    switch = {_caps.CAP_NUMBER["SETUID"], _caps.CAP_NUMBER["SETGID"]}
    batch_user, line_user = batch.user or (0, 0), line.user or (0, 0)
    return (line.privileged > batch.privileged or not line_caps <= batch_caps
            or (line.network == "host" and batch.network != "host")
            or (line_user != batch_user and not (batch_user[0] == 0
                                                 and switch <= batch_caps)))


CAPS = st.lists(st.sampled_from(["ALL", "CHOWN", "NET_RAW", "NET_ADMIN", "SETUID", "SETGID",
                                 "SYS_ADMIN", "KILL"]), max_size=3).map(tuple)
USERS = st.sampled_from([None, "0", "root", "0:65534", "65534", "65534:65534", "nobody",
                         "nobody:0", "alice", "1000:65534"])
OPTIONS = st.fixed_dictionaries({}, optional={
    "privileged": st.booleans(), "cap_add": CAPS, "cap_drop": CAPS,
    "net": st.sampled_from(["none", "host"]), "user": USERS})


@settings(max_examples=int(os.environ.get("SUPERVISE_FUZZ_EXAMPLES", "300")), deadline=None,
          database=None, derandomize=not os.environ.get("SUPERVISE_FUZZ_RANDOM"))
@given(OPTIONS, OPTIONS)
def test_the_decision_is_the_oracles(batch_given: dict[str, Any],
                                     line_given: dict[str, Any]) -> None:
    """Whatever the batch and the line say: refused exactly when the line's spec may do
    more than the batch's, and a line that says nothing is never refused."""
    batch = RunOptions(**batch_given)
    line = merge_options(batch, line_given)
    batch_spec = build_spec(["true"], batch, HOST, default_hostname="x", read_file=_files)
    line_spec = build_spec(["true"], line, HOST, default_hostname="x", read_file=_files)
    found = beyond(batch_grant(batch, HOST, _files), grant_of(line_spec), line)
    assert bool(found) == _exceeds(batch_spec, line_spec), (batch, line, found)
    assert all(f.startswith(("--privileged", "--cap-add ", "--cap-drop ", "--net host", "-u "))
               for f in found)
    assert _decide(batch, {}) == []


# -- the jobs file ---------------------------------------------------------------------
JOBS = """\
true
--privileged -u 0 -- sh -c 'id'
-m 64m -- true
--cap-add ALL --net host -- true
-u nobody -- true
-u root:root --cap-drop ALL -- true
"""


def test_every_offending_line_is_reported_at_once() -> None:
    defaults = RunOptions(user="65534:65534")
    jobs = parse_jobs(JOBS, "jobs.txt", defaults=defaults, parse_options=parse_job_options)
    admission = Admission(max_jobs=2)
    with pytest.raises(JobsFileError) as caught:
        check_jobs(jobs, "jobs.txt", HOST, admission, read_file=_files,
                   ceiling=batch_grant(defaults, HOST, _files))
    assert caught.value.exit_code == 2
    assert caught.value.errors == [
        "jobs.txt:2: --privileged and -u 0 need --allow-privileged-jobs",
        "jobs.txt:4: --cap-add ALL and --net host need --allow-privileged-jobs",
        "jobs.txt:6: -u root:root needs --allow-privileged-jobs",
    ]
    # without a ceiling (--allow-privileged-jobs) every line is a job
    assert len(check_jobs(jobs, "jobs.txt", HOST, admission, read_file=_files)) == 6


@pytest.mark.usefixtures("root_only")
def test_batch_refuses_a_privileged_line_unless_allowed(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name fine -- true\n--name root -u 0 -- id -u\n"
                    "--name priv --privileged -- true\n")
    done = supervise("batch", str(jobs), "--no-live", "-u", "65534:65534")
    assert done.returncode == 2
    assert done.stderr == (f"supervise: {jobs}:2: -u 0 needs --allow-privileged-jobs\n"
                           f"supervise: {jobs}:3: --privileged needs --allow-privileged-jobs\n")
    logs = tmp_path / "logs"
    done = supervise("batch", str(jobs), "--no-live", "-u", "65534:65534", "--logs", str(logs),
                     "--allow-privileged-jobs")
    assert done.returncode == 0, done.stderr
    assert (logs / "root.out").read_text() == "0\n"
    bad = supervise("batch", str(jobs), "--no-live", "-u", "no-such-user-xyz")
    assert bad.returncode == 2
    assert bad.stderr.startswith("supervise: -u/--user no-such-user-xyz: no user")


def test_a_lines_env_file_is_only_what_its_user_could_read() -> None:
    """supervise reads env files as root: a line's own --env-file may give its job
    only what the job's user could read itself (the batch's own --env-file is the
    operator's to choose; a root job reads anything; --allow-privileged-jobs lifts it)."""
    files = {"/etc/passwd": PASSWD, "/etc/group": GROUP, "/secret.env": "TOKEN=s3cret\n",
             "/public.env": "A=1\n", "/batch.env": "B=2\n"}
    asked: list[tuple[str, int, int]] = []

    def readable(path: str, uid: int, gid: int) -> bool:
        asked.append((path, uid, gid))
        return path != "/secret.env"

    text = ("--env-file /secret.env -- env\n--env-file /public.env -- env\n"
            "-u 0 --env-file /secret.env -- env\n-- env\n")
    for defaults, errors in [
        (RunOptions(user="65534:65534", env_files=("/batch.env",)), [
            "jobs.txt:1: --env-file /secret.env (which user 65534:65534 may not read) needs "
            "--allow-privileged-jobs",
            "jobs.txt:3: -u 0 needs --allow-privileged-jobs"]),
        (RunOptions(env_files=("/secret.env",)), []),   # as root: anything
    ]:
        asked.clear()
        jobs = parse_jobs(text, "jobs.txt", defaults=defaults, parse_options=parse_job_options)
        check = dict(read_file=files.__getitem__, readable=readable,
                     batch_env_files=defaults.env_files)
        if errors:
            with pytest.raises(JobsFileError) as caught:
                check_jobs(jobs, "jobs.txt", HOST, Admission(max_jobs=2), **check,
                           ceiling=batch_grant(defaults, HOST, files.__getitem__))
            assert caught.value.errors == errors
            # only the lines' own files, for the user each job runs as
            assert asked == [("/secret.env", 65534, 65534), ("/public.env", 65534, 65534)]
        else:
            check_jobs(jobs, "jobs.txt", HOST, Admission(max_jobs=2), **check,
                       ceiling=batch_grant(defaults, HOST, files.__getitem__))
            assert asked == []
        # --allow-privileged-jobs: no ceiling, no question
        asked.clear()
        assert len(check_jobs(jobs, "jobs.txt", HOST, Admission(max_jobs=2), **check)) == 4
        assert asked == []


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may search (pytest's tmp_path lies below a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="supervise-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.usefixtures("root_only")
def test_readable_by_asks_the_kernel(open_dir: Path) -> None:
    from supervisor._host import readable_by

    tmp_path = open_dir
    secret, public = tmp_path / "secret.env", tmp_path / "public.env"
    secret.write_text("TOKEN=s3cret\n")
    public.write_text("A=1\n")
    secret.chmod(0o600)
    public.chmod(0o644)
    tmp_path.chmod(0o755)
    assert not readable_by(str(secret), 65534, 65534)
    assert readable_by(str(public), 65534, 65534)
    os.chown(secret, 0, 65534)
    secret.chmod(0o640)
    assert readable_by(str(secret), 65534, 65534)  # by its group
    tmp_path.chmod(0o700)                            # a directory on the way it cannot search
    assert not readable_by(str(public), 65534, 65534)
    assert not readable_by(str(tmp_path / "missing"), 65534, 65534)
    tmp_path.chmod(0o755)


@pytest.mark.usefixtures("root_only")
def test_batch_as_nobody_refuses_a_line_reading_roots_env_file(open_dir: Path) -> None:
    tmp_path = open_dir
    secret = tmp_path / "secret.env"
    secret.write_text("TOKEN=s3cret\n")
    secret.chmod(0o600)
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"--name leak --env-file {secret} -- env\n")
    done = supervise("batch", str(jobs), "--no-live", "-u", "65534:65534")
    assert done.returncode == 2
    assert done.stderr == (f"supervise: {jobs}:1: --env-file {secret} (which user "
                           "65534:65534 may not read) needs --allow-privileged-jobs\n")
    assert "s3cret" not in done.stdout + done.stderr
    secret.chmod(0o644)  # one it could read: the job runs, with it
    done = supervise("batch", str(jobs), "--no-live", "-u", "65534:65534", "--logs",
                     str(tmp_path / "logs"))
    assert done.returncode == 0, done.stderr
    assert "TOKEN=s3cret" in (tmp_path / "logs" / "leak.out").read_text()
