"""Namespaces and a container's first moments, with the standard library only.

`spawner_command()` starts the lean spawner process; `encode`/`Decoder` frame
the messages it exchanges with its supervisor; `compile_plan` turns a
container's spec into the calls its PID 1 makes, and `child_main` makes them;
`_libc` wraps the syscalls the stdlib lacks.

The names load on first use (PEP 562): a supervisor that only frames messages
(`nsutil._proto`) does not pay for ctypes and the init.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._init import (
        EXIT_NOT_EXECUTABLE,
        EXIT_NOT_FOUND,
        EXIT_SETUP_FAILED,
        StepError,
        child_main,
    )
    from ._plan import Host, Plan, compile_plan
    from ._proto import CHUNK, Decoder, Receiver, encode, fds_ancillary, send_blocking
    from .spawner import Spawner, spawner_command

_EXPORTS = {
    "EXIT_NOT_EXECUTABLE": "._init", "EXIT_NOT_FOUND": "._init",
    "EXIT_SETUP_FAILED": "._init", "StepError": "._init", "child_main": "._init",
    "Host": "._plan", "Plan": "._plan", "compile_plan": "._plan",
    "CHUNK": "._proto", "Decoder": "._proto", "encode": "._proto",
    "fds_ancillary": "._proto", "Receiver": "._proto", "send_blocking": "._proto",
    "Spawner": ".spawner", "spawner_command": ".spawner",
}

__all__ = [
    "CHUNK",
    "EXIT_NOT_EXECUTABLE",
    "EXIT_NOT_FOUND",
    "EXIT_SETUP_FAILED",
    "Decoder",
    "Host",
    "Plan",
    "Receiver",
    "Spawner",
    "StepError",
    "child_main",
    "compile_plan",
    "encode",
    "fds_ancillary",
    "send_blocking",
    "spawner_command",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
