"""What /proc says about a process, read without an event loop (for `supervise
stop` as for a Container)."""

from __future__ import annotations


def catches_signal(pid: int, sig: int) -> bool | None:
    """Whether the process has a handler for sig (SigCgt in /proc/PID/status); None
    if that cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except (OSError, ValueError, IndexError):
        return None
    return None


def stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command name (field 3, the state, first);
    None if the process is gone. The name may hold spaces and parentheses: the split is
    after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()
