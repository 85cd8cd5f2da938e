"""A running batch, sampled every interval: for the live view (rich Live on stdout)
and/or --stats-json."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import anyio

from .._results_file import LineWriter
from .._sampling import BatchProgress, ContainerSample, FinishedJob, HostSample

if TYPE_CHECKING:
    from rich.live import Live

    from .._sampler import Target


class Watched(Protocol):
    """What the monitor shows of a batch (BatchRunner is one)."""

    @property
    def finished(self) -> Sequence[FinishedJob]: ...

    def progress(self) -> BatchProgress: ...

    def targets(self) -> list[Target]: ...


class Monitor:
    """Active with the live view or --stats-json; `run` samples until cancelled."""

    def __init__(self, live: bool, interval_s: float, stats_json: str | None,
                 warn: Callable[[str, str], None] = lambda key, message: None) -> None:
        self.live = live
        self.interval_s = interval_s
        self.stats_json = stats_json
        self.warn = warn  # (key, message): said once a key

    @property
    def active(self) -> bool:
        return self.live or self.stats_json is not None

    async def run(self, batch: Watched) -> None:
        """Until cancelled (the batch is over); the last frame shows the end state."""
        # Lazy: psutil (~7 ms) is needed only when sampling.
        from .._sampler import Sampler, sample_record

        sampler = Sampler()
        writer = LineWriter(self.stats_json) if self.stats_json is not None else None
        display: Live | None = None
        if self.live:
            # Lazy: rich (~15 ms) only for the live view, not for --stats-json alone.
            from rich.console import Console
            from rich.live import Live

            from .._view import batch_view

            console = Console(highlight=False)
            display = Live(console=console, auto_refresh=False, redirect_stdout=False,
                           redirect_stderr=True)

        def show(host: HostSample, rows: list[ContainerSample]) -> None:
            if display is not None:
                width, height = display.console.size
                display.update(batch_view(batch.progress(), host, rows, list(batch.finished),
                                          width=width, height=height - 1), refresh=True)

        try:
            with display if display is not None else contextlib.nullcontext():
                try:
                    while True:
                        now = time.time()
                        host = sampler.host()
                        rows = sampler.sample(batch.targets(), host, now)
                        if writer is not None and not writer.write(
                                json.dumps(sample_record(host, rows, now))):
                            # a full disk: samples are lost, the batch goes on
                            self.warn(writer.path, f"--stats-json {writer.path}: "
                                      f"{writer.error}: samples are being lost")
                        show(host, rows)
                        await anyio.sleep(self.interval_s)
                finally:
                    show(sampler.host(), [])
        finally:
            if writer is not None:
                writer.close()
