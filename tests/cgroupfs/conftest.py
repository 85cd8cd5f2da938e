"""Fixtures for cgroupfs tests: real-kernel guards, unique names, a leak check."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import cgroupfs

from ..conftest import supervise_dirs

FIXTURES = Path(__file__).parent / "fixtures"
# Every real cgroup a test makes is named with this prefix: what the cleanup below
# removes is only what these tests made, below this session's `<own>/supervise`.
PREFIX = f"cgtest-{os.getpid()}-"
_counter = itertools.count()


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def _ours_below() -> list[str]:
    found: list[str] = []
    for supervise in supervise_dirs():
        if os.path.isdir(supervise):
            found += [
                os.path.join(supervise, entry)
                for entry in os.listdir(supervise)
                if entry.startswith(PREFIX) and os.path.isdir(os.path.join(supervise, entry))
            ]
    return found


@pytest.fixture
def real_layout() -> cgroupfs.Layout:
    """The running kernel's layout; skips unless root with a writable cgroup fs."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        layout = cgroupfs.detect_layout()
    except cgroupfs.CgroupError as exc:
        pytest.skip(str(exc))
    if layout.kind != "v2" and not layout.v1_mounts:
        pytest.skip("no usable cgroup controllers")
    return layout


def require_controller(layout: cgroupfs.Layout, controller: str) -> None:
    if layout.kind == "v2":
        assert layout.v2_mount is not None
        available = Path(layout.v2_own_dir(), "cgroup.controllers").read_text().split()
        if controller not in available:
            pytest.skip(f"{controller} controller not available on cgroup v2")
    elif controller not in layout.v1_mounts:
        pytest.skip(f"{controller} controller not mounted")


@pytest.fixture
def cgroup_name() -> str:
    return f"{PREFIX}{next(_counter)}"


@pytest.fixture(autouse=True)
def no_leftover_cgroups(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each real-kernel test, nothing of ours is left below ``<own>/supervise``."""
    yield
    if "real_layout" not in request.fixturenames:
        return
    leftovers = _ours_below()
    for path in leftovers:  # clean up so one failure does not cascade
        for child in sorted(Path(path).rglob("*"), reverse=True):
            if child.is_dir():
                os.rmdir(child)
        os.rmdir(path)
    if leftovers:
        for supervise in supervise_dirs():
            with contextlib.suppress(OSError):  # busy while a container of ours is left
                os.rmdir(supervise)
    assert not leftovers, f"cgroups left behind: {leftovers}"
