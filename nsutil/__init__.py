"""Namespaces and a container's first moments, with the standard library only.

`spawner_command()` starts the lean spawner process; `encode`/`Decoder` frame
the messages it exchanges with its supervisor; `child_main` is the init
sequence of a container's PID 1; `_libc` wraps the syscalls the stdlib lacks.
"""

from ._init import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_SETUP_FAILED,
    StepError,
    bring_loopback_up,
    child_main,
)
from ._proto import CHUNK, Decoder, Message, encode, fds_ancillary, recv_packet, send_blocking
from .spawner import Spawner, spawner_command

__all__ = [
    "CHUNK",
    "EXIT_NOT_EXECUTABLE",
    "EXIT_NOT_FOUND",
    "EXIT_SETUP_FAILED",
    "Decoder",
    "Message",
    "Spawner",
    "StepError",
    "bring_loopback_up",
    "child_main",
    "encode",
    "fds_ancillary",
    "recv_packet",
    "send_blocking",
    "spawner_command",
]
