"""Namespaces and a container's first moments, with the standard library only.

`spawner_command()` starts the lean spawner process; the messages it exchanges
with its supervisor are the typed records of `_messages` (`Spawn` carrying an
`InitSpec`, `Started`, `Exited`, `Failed`...), turned into wire dicts and back by
`to_wire`/`from_wire` and framed by `encode`/`Decoder`; `compile_plan` turns a
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
    from ._messages import (
        Exited,
        Failed,
        FsView,
        InitSpec,
        Kill,
        Place,
        Placed,
        Record,
        Shutdown,
        Spawn,
        Started,
        StepReport,
        WireError,
        from_wire,
        to_wire,
    )
    from ._plan import Host, Plan, compile_plan
    from ._proto import CHUNK, Decoder, Receiver, encode, fds_ancillary, send_blocking
    from .spawner import Spawner, spawner_command

_EXPORTS = {
    "EXIT_NOT_EXECUTABLE": "._init", "EXIT_NOT_FOUND": "._init",
    "EXIT_SETUP_FAILED": "._init", "StepError": "._init", "child_main": "._init",
    "Exited": "._messages", "Failed": "._messages", "FsView": "._messages",
    "InitSpec": "._messages", "Kill": "._messages",
    "Place": "._messages", "Placed": "._messages", "Record": "._messages",
    "Shutdown": "._messages", "Spawn": "._messages",
    "Started": "._messages", "StepReport": "._messages", "WireError": "._messages",
    "from_wire": "._messages", "to_wire": "._messages",
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
    "Exited",
    "Failed",
    "FsView",
    "Host",
    "InitSpec",
    "Kill",
    "Place",
    "Placed",
    "Plan",
    "Receiver",
    "Record",
    "Shutdown",
    "Spawn",
    "Spawner",
    "Started",
    "StepError",
    "StepReport",
    "WireError",
    "child_main",
    "compile_plan",
    "encode",
    "fds_ancillary",
    "from_wire",
    "send_blocking",
    "spawner_command",
    "to_wire",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
