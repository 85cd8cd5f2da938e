"""The container's environment: docker's -e / --env-file rules and default variables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from supervisor._errors import UsageError
from supervisor._units import quote_value

__all__ = [
    "DEFAULT_ENV",
    "build_environment",
    "default_environment",
    "parse_env_assignment",
    "parse_env_file",
]

DEFAULT_ENV: Mapping[str, str] = MappingProxyType(
    {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
    }
)


def _assignment(text: str, host_env: Mapping[str, str]) -> tuple[str, str] | None:
    """Shared -e / --env-file rule; raises UsageError with the reason only (no location)."""
    name, has_value, value = text.partition("=")
    if not name:
        raise UsageError(f"invalid environment variable {quote_value(text)}: the name is empty")
    # execve() takes NUL-terminated strings: a NUL would silently cut the variable short.
    if "\0" in text:
        raise UsageError(
            f"invalid environment variable {quote_value(text)}: contains a NUL character"
        )
    if has_value:
        return name, value
    host_value = host_env.get(name)
    return None if host_value is None else (name, host_value)


def parse_env_assignment(text: str, host_env: Mapping[str, str]) -> tuple[str, str] | None:
    """Parse one -e value: "K=V" sets K; a bare "K" copies the host's K, or is skipped (None)."""
    return _assignment(text, host_env)


def parse_env_file(text: str, path: str, host_env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Parse an --env-file as docker does: one K=V (or bare K) per line, values taken literally.

    Leading whitespace is stripped; blank lines and lines starting with # are skipped;
    there is no quote processing, so K="v" sets K to '"v"'. Errors name path:line.
    """
    assignments: list[tuple[str, str]] = []
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, as docker skips
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        name = line.partition("=")[0]
        if any(c.isspace() for c in name):
            raise UsageError(
                f"{path}:{number}: invalid environment variable {quote_value(line)}: "
                f"the name {quote_value(name)} contains whitespace"
            )
        try:
            assignment = _assignment(line, host_env)
        except UsageError as error:
            raise UsageError(f"{path}:{number}: {error}") from None
        if assignment is not None:
            assignments.append(assignment)
    return assignments


def build_environment(
    base: Mapping[str, str], assignments: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """Apply assignments over a copy of base; a later assignment to a name wins."""
    environment = dict(base)
    for name, value in assignments:
        environment[name] = value
    return environment


def default_environment(tty: bool, hostname: str) -> dict[str, str]:
    """Docker's starting environment: PATH, HOSTNAME, HOME, and TERM=xterm with a tty."""
    environment = {"PATH": DEFAULT_ENV["PATH"], "HOSTNAME": hostname}
    if tty:
        environment["TERM"] = "xterm"
    environment["HOME"] = DEFAULT_ENV["HOME"]
    return environment
