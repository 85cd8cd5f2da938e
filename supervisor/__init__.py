"""supervise: run many isolated, resource-limited containers from one process.

    import anyio
    from supervisor import ContainerSpec, Supervisor

    async def main():
        async with Supervisor() as sup:
            result = await sup.run(ContainerSpec(["echo", "hi"]))
            print(result.status, result.exit_code)

    anyio.run(main)
"""

import sys as _sys

# Run as the command line (`supervise`, `python -m supervisor`): a Ctrl-C during the
# imports that follow is a clean exit, not a traceback (_early). A library import
# leaves the caller's handler alone.
if _sys.argv[:1] == ["-m"] or _sys.argv[0].rpartition("/")[2] == "supervise":
    from . import _early

    _early.install()

from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it. Imported on first use (PEP 562), so
# that `import supervisor.cli` does not pay for trio and anyio before it needs them.
_EXPORTS = {
    "Limits": "cgroupfs", "Stats": "cgroupfs",
    "Batch": "._batch", "BatchJob": "._batch_job", "BatchOutcome": "._batch",
    "BatchPolicy": "._batch_job", "JobOutput": "._batch", "run_batch": "._batch",
    "Container": "._container",
    "SuperviseError": "._errors", "UsageError": "._errors",
    "Result": "._result", "Status": "._result",
    "Admission": "._schedule", "HaltPolicy": "._schedule",
    "DEVNULL": "._spec", "ContainerSpec": "._spec",
    "Supervisor": "._supervisor",
}

if TYPE_CHECKING:
    from cgroupfs import Limits, Stats

    from ._batch import Batch, BatchOutcome, JobOutput, run_batch
    from ._batch_job import BatchJob, BatchPolicy
    from ._container import Container
    from ._errors import SuperviseError, UsageError
    from ._result import Result, Status
    from ._schedule import Admission, HaltPolicy
    from ._spec import DEVNULL, ContainerSpec
    from ._supervisor import Supervisor


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEVNULL",
    "Admission",
    "Batch",
    "BatchJob",
    "BatchOutcome",
    "BatchPolicy",
    "HaltPolicy",
    "JobOutput",
    "run_batch",
    "Container",
    "ContainerSpec",
    "Limits",
    "Result",
    "Stats",
    "Status",
    "SuperviseError",
    "Supervisor",
    "UsageError",
]
