"""The public names of each package are pinned (as trio's test_exports does)."""

from __future__ import annotations

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


def test_nsutil_and_cgroupfs_import_nothing_of_the_supervisor_stack() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(nsutil.__file__).parent.parent)
    heavy = ("trio", "anyio", "pyroute2", "supervisor", "psutil", "rich", "click")
    code = (f"import sys; sys.path.insert(0, {root!r}); import nsutil, nsutil.spawner, "
            f"cgroupfs; print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_supervisor_launches_the_spawner_as_nsutil_says() -> None:
    from supervisor._launch import spawner_command

    assert spawner_command() == nsutil.spawner_command()


def test_each_package_ships_py_typed() -> None:
    """PEP 561: without the marker in the wheel, a user's mypy skips our types. (Checked
    by hand with a built wheel: `mypy --strict` then reports `Limits(memory_bytes="x")`.)"""
    import tomllib
    from pathlib import Path

    import cgroupfs

    root = Path(nsutil.__file__).parent.parent
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]
    for package in (cgroupfs, nsutil, supervisor):
        assert Path(package.__file__).with_name("py.typed").is_file(), package.__name__
        assert "py.typed" in package_data[package.__name__], package.__name__
