"""supervise: run many isolated, resource-limited containers from one process.

    import anyio
    from supervisor import ContainerSpec, Supervisor

    async def main():
        async with Supervisor() as sup:
            result = await sup.run(ContainerSpec(["echo", "hi"]))
            print(result.status, result.exit_code)

    anyio.run(main)
"""

from cgroupfs import Limits, Stats

from ._batch import Batch, BatchJob, BatchOutcome, BatchPolicy, JobOutput, run_batch
from ._container import Container
from ._errors import SuperviseError, UsageError
from ._result import Result
from ._schedule import Admission, HaltPolicy
from ._spec import DEVNULL, ContainerSpec
from ._supervisor import Supervisor

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
    "SuperviseError",
    "Supervisor",
    "UsageError",
]
