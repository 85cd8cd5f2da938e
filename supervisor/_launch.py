"""Launching the spawner process; light on imports, so that it can happen first."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from ._errors import SuperviseError
from ._fds import STARTED_SOFT

# nsutil lives beside this package (in a checkout and in site-packages alike).
_PACKAGES_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spawner_command(python: str | None = None) -> list[str]:
    """nsutil.spawner_command(), without importing nsutil (ctypes and all: ~10 ms)
    in the supervisor before the spawner is even launched."""
    code = (f"import sys; sys.path.insert(0, {_PACKAGES_ROOT!r}); "
            "import nsutil.spawner as s; s.main()")
    return [python or sys.executable, "-I", "-S", "-c", code]

Launched = tuple[socket.socket, "subprocess.Popen[bytes]"]
_SPAWNER_IGNORES = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)


def launch(python: str | None = None) -> Launched:
    """A spawner and our end of its socket (non-blocking)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # The spawner ignores Ctrl-C, a closed terminal and a group's SIGTERM (they are the
    # supervisor's to forward), but only once its interpreter has started: until then
    # they stay blocked (exec keeps the mask), never a KeyboardInterrupt traceback.
    # Held here, not lost: they reach this process when the mask is restored.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SPAWNER_IGNORES)
    try:
        process = subprocess.Popen(
            [*spawner_command(python), str(theirs.fileno()), str(os.getpid()),
             str(STARTED_SOFT)],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
    except OSError as exc:
        ours.close()
        raise SuperviseError(f"starting the spawner: {exc.strerror}") from exc
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
    ours.setblocking(False)
    return ours, process


_prestarted: Launched | None = None


def prestart(python: str | None = None) -> None:
    """Launch the spawner now, before the caller imports its event loop, so the two
    start in parallel; the next SpawnerClient.start() takes it. Call it from the
    thread that will run the supervisor (PR_SET_PDEATHSIG follows the thread that
    forked)."""
    global _prestarted
    if _prestarted is None:
        _prestarted = launch(python)


def take_prestarted() -> Launched | None:
    global _prestarted
    launched, _prestarted = _prestarted, None
    return launched
