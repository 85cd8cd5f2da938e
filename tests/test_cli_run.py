"""`supervise run` as a user runs it: exit statuses, messages, flags, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import container_cgroups
from .containers import PYTHON, supervise

pytestmark = pytest.mark.usefixtures("root_only")


def test_prints_pid_one_and_returns_the_commands_status() -> None:
    done = supervise("run", "--", "sh", "-c", "echo $$; exit 3")
    assert done.stdout == "1\n"
    assert done.returncode == 3
    assert done.stderr == ""


def test_stdout_and_stderr_stay_separate() -> None:
    done = supervise("run", "--", "sh", "-c", "echo out; echo err >&2")
    assert (done.stdout, done.stderr) == ("out\n", "err\n")


@pytest.mark.cgroup_v2
@pytest.mark.parametrize(("flags", "swap"), [
    (["-m", "64m"], 64 << 20),                          # docker: as much swap as memory
    (["-m", "64m", "--memory-swap", "0"], 64 << 20),    # 0 is unset
    (["-m", "64m", "--memory-swap", "80m"], 16 << 20),
    (["-m", "64m", "--memory-swap", "-1"], None),       # unlimited
])
def test_memory_alone_gets_as_much_swap_as_memory(flags: list[str], swap: int | None) -> None:
    """Read inside, from the container's own cgroup view: v1 memory.memsw (memory plus
    swap), v2 memory.swap.max (swap alone)."""
    import cgroupfs

    if not cgroupfs.swap_limit_supported(cgroupfs.detect_layout()):
        pytest.skip("no swap accounting here")
    done = supervise("run", *flags, "--", "sh", "-c",
                     "cat /sys/fs/cgroup/memory.swap.max 2>/dev/null || "
                     "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    assert done.returncode == 0, done.stderr
    value = done.stdout.strip()
    if cgroupfs.detect_layout().kind == "v2":
        assert value == ("max" if swap is None else str(swap))
    else:
        assert int(value) == (1 << 63) - 4096 if swap is None else int(value) == (64 << 20) + swap


def test_oom_kill_exit_137_message_and_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = supervise("run", "-m", "32m", "--memory-swap", "32m", "--name", "hog",
                     "--report", str(report), "--", PYTHON, "-c", "x = bytearray(200 << 20)")
    assert done.returncode == 137
    assert done.stderr.strip() == "supervise: hog was killed: out of memory (limit 32 MiB)"
    record = json.loads(report.read_text())
    assert record["oom_killed"] is True and record["status"] == "oom"
    assert record["exit_code"] == 137 and record["memory_limit_bytes"] == 32 << 20
    for key in ("wall_s", "cpu_user_s", "cpu_system_s", "peak_memory_bytes", "started_at",
                "ended_at", "timed_out", "signal", "argv", "name"):
        assert key in record
    assert record["argv"] == [PYTHON, "-c", "x = bytearray(200 << 20)"]


def test_report_of_a_successful_run(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = supervise("run", "--report", str(report), "--", "true")
    assert done.returncode == 0
    record = json.loads(report.read_text())
    assert (record["status"], record["exit_code"], record["oom_killed"]) == ("ok", 0, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "12x", "true"], "invalid size '12x'"),
        (["--cpus", "-1", "true"], "--cpus -1"),
        (["--cpus", "abc", "true"], "--cpus abc"),
        (["--cpuset-cpus", "99", "true"], "CPU 99"),
        (["--pids-limit", "many", "true"], "--pids-limit"),
        (["--timeout", "soon", "true"], "--timeout"),
        (["--memory-swap", "1m", "-m", "64m", "true"], "--memory-swap"),
        (["-c", "1", "true"], "cpu-shares"),
        (["--net", "bridge", "true"], "bridge"),
        (["--bogus", "true"], "No such option"),
        (["-w", "relative", "true"], "absolute"),
        (["--env-file", "/nonexistent/env", "true"], "/nonexistent/env"),
        ([], "Missing argument"),
    ],
)
def test_bad_values_are_one_line_and_125(args: list[str], message: str) -> None:
    done = supervise("run", *args)
    assert done.returncode == 125, done.stderr
    assert done.stderr.startswith("supervise: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_and_not_executable_commands(tmp_path: Path) -> None:
    missing = supervise("run", "--", "no-such-command-xyz")
    assert missing.returncode == 127
    assert missing.stderr == (
        "supervise: exec 'no-such-command-xyz': No such file or directory\n")
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    denied = supervise("run", "-v", f"{tmp_path}:{tmp_path}", "--", str(script))
    assert denied.returncode == 126
    assert "Permission denied" in denied.stderr


def test_missing_workdir_is_a_supervise_failure() -> None:
    done = supervise("run", "-w", "/no/such/dir", "--", "true")
    assert done.returncode == 125
    assert done.stderr.startswith("supervise: working directory '/no/such/dir'")


def test_signal_exit_is_128_plus_n() -> None:
    done = supervise("run", "--", "sh", "-c", "sh -c 'kill -TERM $$'")
    assert done.returncode == 128 + signal.SIGTERM


def test_env_env_file_and_workdir(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=file value\nOVERRIDDEN=file\n\n")
    done = supervise(
        "run", "--env-file", str(env_file), "-e", "OVERRIDDEN=flag", "-e", "FROM_HOST",
        "-w", str(tmp_path), "-v", f"{tmp_path}:{tmp_path}", "--", "sh", "-c",
        'echo "$FROM_FILE|$OVERRIDDEN|$FROM_HOST|$PWD|$HOSTNAME"',
        env={**os.environ, "FROM_HOST": "host value"},
    )
    assert done.returncode == 0, done.stderr
    fields = done.stdout.strip().split("|")
    assert fields[:4] == ["file value", "flag", "host value", str(tmp_path)]
    assert fields[4]  # docker sets HOSTNAME to the container's hostname


def test_a_bare_name_unset_on_the_host_removes_it_and_empty_home_is_the_users() -> None:
    """docker: -e HOSTNAME (unset here) erases the default HOSTNAME; -e HOME= gives
    HOME back to the user's home (runc); an env file's bare name likewise."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOSTNAME", "GONE")}
    done = supervise("run", "-e", "HOSTNAME", "-e", "HOME=", "-e", "KEPT=1", "-e", "GONE=x",
                     "-e", "GONE", "-u", "65534:65534", "--", "env", env=env)
    assert done.returncode == 0, done.stderr
    names = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert "HOSTNAME" not in names and "GONE" not in names and names["KEPT"] == "1"
    assert names["HOME"] == "/nonexistent"  # nobody's, from /etc/passwd


def test_the_hosts_environment_does_not_leak_in() -> None:
    done = supervise("run", "--", "sh", "-c", 'echo "${SECRET-unset}"',
                     env={**os.environ, "SECRET": "x"})
    assert done.stdout == "unset\n"


def test_arguments_reach_the_command_byte_for_byte() -> None:
    args = ["a b", "it's", '"q"', "", "two\nlines", "ünï€ode", "$HOME", "*", "--", "-m"]
    done = supervise("run", "--", PYTHON, "-c", "import sys; print(repr(sys.argv[1:]))", *args)
    assert done.stdout.strip() == repr(args)


def test_non_utf8_bytes_survive() -> None:
    raw = b"caf\xe9"
    done = subprocess.run(
        [PYTHON, "-m", "supervisor", "run", "--", PYTHON, "-c",
         "import os, sys; sys.stdout.buffer.write(os.fsencode(sys.argv[1]))", raw],
        capture_output=True, timeout=60)
    assert done.stdout == raw


def test_hostname_flag_and_name_default() -> None:
    named = supervise("run", "--name", "web-1", "--", "hostname")
    flagged = supervise("run", "--hostname", "box", "--", "hostname")
    assert named.stdout == "web-1\n" and flagged.stdout == "box\n"
    # a name longer than a hostname holds (64): the hostname is its first 64 characters
    long = "n" * 63 + "-" + "x" * 40
    cut = supervise("run", "--name", long, "--", "hostname")
    assert (cut.returncode, cut.stdout) == (0, "n" * 63 + "\n"), cut.stderr
    too_long = supervise("run", "--hostname", "h" * 65, "--", "true")
    assert too_long.returncode != 0 and "--hostname" in too_long.stderr


def test_seed_aliases_cpushare_and_cpuset() -> None:
    done = supervise("run", "--cpushare", "512", "--cpuset", "0", "--", "grep",
                     "Cpus_allowed_list", "/proc/self/status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "0"


def test_timeout_stops_and_says_so() -> None:
    started = time.monotonic()
    done = supervise("run", "--timeout", "0.5s", "--stop-timeout", "0.5s", "--", "sleep", "30")
    assert time.monotonic() - started < 10
    assert done.returncode == 137  # sleep as PID 1 ignores SIGTERM: killed after the grace
    assert "timed out after 0.5s" in done.stderr


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-m", "supervisor", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_container(before: set[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container_cgroups() - before:
            return
        time.sleep(0.02)
    raise AssertionError("no container appeared")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_are_forwarded(sig: int) -> None:
    before = container_cgroups()
    proc = _start("--", "sh", "-c", "trap 'echo got; exit 5' TERM INT HUP; echo ready; "
                  "while :; do sleep 0.05; done")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    _wait_for_container(before)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert out == "got\n"
    assert proc.returncode == 5


def test_every_catchable_signal_is_forwarded_and_none_ends_supervise() -> None:
    """docker's sig-proxy: USR1, USR2, a real-time signal reach the command, and
    supervise carries on (USR1 used to kill it, exit 138, and orphan the container);
    such a signal starts no stop timer."""
    rt = signal.SIGRTMIN + 3
    proc = _start("--stop-timeout", "0.2s", "--", "sh", "-c",
                  "trap 'echo usr1' USR1; trap 'echo usr2' USR2; "
                  f"trap 'echo rt; exit 7' {int(rt)}; echo ready; while :; do sleep 0.05; done")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGUSR1)
    assert proc.stdout.readline() == "usr1\n"
    time.sleep(0.5)  # past the stop timeout: nothing was stopped
    proc.send_signal(signal.SIGUSR2)
    assert proc.stdout.readline() == "usr2\n"
    proc.send_signal(rt)
    out, err = proc.communicate(timeout=20)
    assert (out, proc.returncode) == ("rt\n", 7), err


def test_forwarded_signals_leave_out_what_is_supervises_own() -> None:
    from supervisor.cli._signals import STOP_SIGNALS, batch_signals, forwarded_signals

    plain, tty = set(forwarded_signals(False)), set(forwarded_signals(True))
    assert forwarded_signals(False)[:3] == STOP_SIGNALS
    assert {signal.SIGUSR1, signal.SIGQUIT, signal.SIGWINCH, signal.SIGRTMAX} <= plain
    assert not {signal.SIGCHLD, signal.SIGPIPE, signal.SIGKILL, signal.SIGSEGV,
                signal.SIGTTIN} & plain
    assert plain - tty == {signal.SIGWINCH}  # with a terminal: its size is copied instead
    assert signal.SIGTSTP not in batch_signals() and signal.SIGUSR1 in batch_signals()


def test_stop_timeout_kills_a_pid_one_that_ignores_the_signal() -> None:
    before = container_cgroups()
    proc = _start("--stop-timeout", "0.5s", "--", "sleep", "60")
    _wait_for_container(before)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 137
    assert time.monotonic() - started < 8


def test_second_interrupt_kills_at_once() -> None:
    # The command says when the first SIGINT has reached it and carries on; only then
    # comes the second (two sent at once may arrive as one).
    proc = _start("--stop-timeout", "60s", "--", "sh", "-c",
                  "trap 'echo got-int' INT; echo ready; while :; do sleep 0.05; done")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline() == "got-int\n"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 137
    assert time.monotonic() - started < 5


def test_not_root_is_refused(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    # The interpreter lives under /root here, out of reach of an unprivileged
    # user: check the CLI in-process with a non-root effective uid instead.
    from supervisor.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as exited:
        main(["run", "--", "true"])
    assert exited.value.code == 125
    assert capsys.readouterr().err == "supervise: needs root (namespaces and cgroups); try sudo\n"


def test_net_host_keeps_the_hosts_interfaces() -> None:
    done = supervise("run", "--net", "host", "--", "ip", "-o", "link")
    assert len(done.stdout.strip().splitlines()) == len(os.listdir("/sys/class/net"))


@pytest.mark.parametrize("command", [["run", "--", "sleep", "1"], ["batch", "-"]])
def test_an_early_ctrl_c_is_never_a_traceback(command: list[str]) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while
    supervise is still importing click and trio, or while its spawner is starting:
    one line or a clean run, never a KeyboardInterrupt traceback. (From 40 ms: before
    that the interpreter itself is starting, which no code of ours can reach.)"""
    for delay_ms in range(40, 240, 10):
        proc = subprocess.Popen([PYTHON, "-m", "supervisor", *command], start_new_session=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(delay_ms / 1000)
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate("sleep 1\n", timeout=30)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, (delay_ms, err)
        assert proc.returncode in (0, 130), (delay_ms, proc.returncode, err)


def test_the_spawner_survives_signals_sent_while_it_starts(capfd: pytest.CaptureFixture[str]
                                                           ) -> None:
    """Started with SIGINT, SIGHUP and SIGTERM blocked (exec keeps the mask) until it
    ignores them: a group's Ctrl-C in its first milliseconds neither kills it nor
    prints a traceback."""
    from supervisor import _launch

    sock, process = _launch.launch(PYTHON)
    try:
        for _ in range(20):
            for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
                process.send_signal(sig)
            time.sleep(0.005)
        time.sleep(0.2)
        assert process.poll() is None
    finally:
        sock.close()  # EOF: it exits
        process.wait(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in capfd.readouterr().err
