"""The signals `run`, `exec` and `batch` hear: the ones that stop them (forwarded to a
container, or a batch's stop), and every other one a process can catch, which `run`
and `exec` pass on to the container as docker's sig-proxy does and `batch` refuses
to die of."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager

import trio

# SIGHUP too: a closed terminal (or tmux kill-server) must end a run or batch cleanly,
# never kill supervise outright and leave containers' cgroups and state behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# Not passed on: what cannot be caught; SIGCHLD (supervise's own children); SIGPIPE
# (supervise's own broken output: docker's proxy leaves it too); the faults a
# process raises against itself (a kill -SEGV is not one, but catching them would
# hide a real one); SIGTTIN/SIGTTOU (the terminal stopping a background supervise,
# as job control means); SIGXCPU/SIGXFSZ (supervise's own rlimits); SIGWINCH with a
# terminal (its size is copied to the container's instead).
_KEPT = frozenset({
    signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGPIPE, signal.SIGSEGV,
    signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT, signal.SIGTRAP,
    signal.SIGSYS, signal.SIGTTIN, signal.SIGTTOU, signal.SIGXCPU, signal.SIGXFSZ})


def forwarded_signals(tty: bool) -> tuple[int, ...]:
    """Every signal `run` passes on to the container, STOP_SIGNALS first: what a
    process can catch (real-time ones too), less those above."""
    kept = _KEPT | ({signal.SIGWINCH} if tty else set())
    others = sorted(int(s) for s in signal.valid_signals()
                    if s not in kept and s not in STOP_SIGNALS
                    and (s < 32 or signal.SIGRTMIN <= s <= signal.SIGRTMAX))
    return (*STOP_SIGNALS, *others)


def batch_signals() -> tuple[int, ...]:
    """What `batch` listens for: STOP_SIGNALS stop it, the others it says it ignores
    (a USR1 must not end it and orphan its containers); the terminal's job control
    (SIGTSTP, SIGCONT, SIGWINCH) keeps its usual effect."""
    return tuple(s for s in forwarded_signals(tty=True)
                 if s not in (signal.SIGTSTP, signal.SIGCONT))


def receive(signals: tuple[int, ...]) -> AbstractContextManager[AsyncIterator[int]]:
    """trio's signal receiver (the CLI runs on trio): it hands out plain numbers, the
    real-time signals included, which anyio's turns into Signals and so cannot."""
    return trio.open_signal_receiver(*signals)
