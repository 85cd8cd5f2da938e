"""The signals that stop `run` and `batch` (forwarded to a container, or a batch's stop)."""

from __future__ import annotations

import signal

# SIGHUP too: a closed terminal (or tmux kill-server) must end a run or batch cleanly,
# never kill supervise outright and leave containers' cgroups and state behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
