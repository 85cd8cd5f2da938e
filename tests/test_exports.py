"""The public names of each package are pinned (as trio's test_exports does)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nsutil
import supervisor


def test_supervisor_public_api() -> None:
    assert sorted(supervisor.__all__) == sorted([
        "DEVNULL", "Admission", "Batch", "BatchJob", "BatchOutcome", "BatchPolicy",
        "HaltPolicy", "JobOutput", "run_batch", "Container", "ContainerSpec", "Limits",
        "Result", "Stats", "Status", "SuperviseError", "Supervisor", "UsageError",
    ])
    for name in supervisor.__all__:
        assert getattr(supervisor, name) is not None


def _loaded(imports: str, heavy: tuple[str, ...], *, isolated: bool) -> list[str]:
    """Which of heavy a fresh interpreter has loaded after running imports (with -I -S
    and only the checkout on sys.path, as the spawner starts, when isolated)."""
    root = str(Path(nsutil.__file__).parent.parent)
    prefix = f"import sys; sys.path.insert(0, {root!r})\n" if isolated else "import sys\n"
    code = f"{prefix}{imports}\nprint([m for m in {heavy!r} if m in sys.modules])"
    flags = ["-I", "-S"] if isolated else []
    out = subprocess.run([sys.executable, *flags, "-c", code],
                         capture_output=True, text=True, check=True).stdout
    return list(ast.literal_eval(out.splitlines()[-1]))


def test_nsutil_and_cgroupfs_import_nothing_of_the_supervisor_stack() -> None:
    heavy = ("trio", "anyio", "pyroute2", "supervisor", "psutil", "rich", "click")
    assert _loaded("import nsutil, nsutil.spawner, cgroupfs", heavy, isolated=True) == []


def test_the_spawner_stays_lean() -> None:
    """The spawner (started by every supervisor, forked for every container) loads no
    typing, dataclasses or inspect: its typed messages are checked without them."""
    assert _loaded("import nsutil.spawner", ("typing", "dataclasses", "inspect"),
                   isolated=True) == []


def test_nsutil_public_api() -> None:
    assert sorted(nsutil.__all__) == sorted([
        "CHUNK", "EXIT_NOT_EXECUTABLE", "EXIT_NOT_FOUND", "EXIT_SETUP_FAILED", "Decoder",
        "Exited", "Failed", "FsView", "Host", "InitSpec", "Kill", "Place", "Placed", "Plan",
        "Receiver",
        "Record",
        "Shutdown",
        "Spawn", "Spawner", "Started", "StepError", "StepReport", "WireError", "child_main",
        "compile_plan", "encode", "fds_ancillary", "from_wire", "send_blocking",
        "spawner_command", "to_wire"])
    for name in nsutil.__all__:
        assert getattr(nsutil, name) is not None


def test_the_supervisor_launches_the_spawner_as_nsutil_says() -> None:
    from supervisor._launch import spawner_command

    assert spawner_command() == nsutil.spawner_command()


def test_ps_kill_stop_and_gc_load_no_event_loop() -> None:
    """The commands that only read the state directory and signal by pidfd start
    fast: neither anyio nor trio (nor rich, psutil or pyroute2) is imported."""
    heavy = ("anyio", "trio", "rich", "psutil", "pyroute2")
    for args in (["ps"], ["ps", "--json"], ["gc", "-q"], ["kill", "no-such"],
                 ["stop", "no-such"]):
        run = ("from supervisor.cli import _main\n"
               f"try:\n    _main({args!r})\nexcept SystemExit:\n    pass")
        assert _loaded(run, heavy, isolated=False) == [], args


def test_each_package_ships_py_typed() -> None:
    """PEP 561: without the marker in the wheel, a user's mypy skips our types. (Checked
    by hand with a built wheel: `mypy --strict` then reports `Limits(memory_bytes="x")`.)"""
    import tomllib

    import cgroupfs

    root = Path(nsutil.__file__).parent.parent
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]
    for package in (cgroupfs, nsutil, supervisor):
        assert Path(package.__file__).with_name("py.typed").is_file(), package.__name__
        assert "py.typed" in package_data[package.__name__], package.__name__
