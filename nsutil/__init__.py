"""Namespaces and a container's first moments, with the standard library only.

`spawner_command()` starts the lean spawner process; `encode`/`Decoder` frame
the messages it exchanges with its supervisor; `compile_plan` turns a
container's spec into the calls its PID 1 makes, and `child_main` makes them;
`_libc` wraps the syscalls the stdlib lacks.
"""

from ._init import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_SETUP_FAILED,
    StepError,
    child_main,
)
from ._plan import Host, Plan, compile_plan
from ._proto import CHUNK, Decoder, encode, fds_ancillary, recv_packet, send_blocking
from .spawner import Spawner, spawner_command

__all__ = [
    "CHUNK",
    "EXIT_NOT_EXECUTABLE",
    "EXIT_NOT_FOUND",
    "EXIT_SETUP_FAILED",
    "Decoder",
    "Spawner",
    "StepError",
    "Host",
    "Plan",
    "child_main",
    "compile_plan",
    "encode",
    "fds_ancillary",
    "recv_packet",
    "send_blocking",
    "spawner_command",
]
