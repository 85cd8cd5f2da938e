"""The container's environment: docker's -e / --env-file rules and default variables.

As docker (its CLI's ValidateEnv, the daemon's ReplaceOrAppendEnvValues, runc's
setupUser): `K=V` sets K; a bare `K` copies the host's K, and removes K (a default
such as HOSTNAME or PATH included) when the host has none; later entries win, the
env files' before the -e flags; HOME left unset or empty is the user's home
(/etc/passwd; `/root` for root, `/` for a user it does not list)."""

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


# (name, value), or (name, None): remove name
Assignment = tuple[str, "str | None"]


def _assignment(text: str, host_env: Mapping[str, str]) -> Assignment:
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
    return name, host_env.get(name)


def parse_env_assignment(text: str, host_env: Mapping[str, str]) -> Assignment:
    """Parse one -e value: "K=V" sets K; a bare "K" copies the host's K, or, unset on
    the host, removes K ((K, None))."""
    return _assignment(text, host_env)


def parse_env_file(text: str, path: str, host_env: Mapping[str, str]) -> list[Assignment]:
    """Parse an --env-file as docker does: one K=V (or bare K) per line, values taken literally.

    Leading whitespace is stripped; blank lines and lines starting with # are skipped;
    there is no quote processing, so K="v" sets K to '"v"'. Errors name path:line.
    """
    assignments: list[Assignment] = []
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
            assignments.append(_assignment(line, host_env))
        except UsageError as error:
            raise UsageError(f"{path}:{number}: {error}") from None
    return assignments


def build_environment(
    base: Mapping[str, str], assignments: Iterable[Assignment], home: str | None = None
) -> dict[str, str]:
    """Apply assignments over a copy of base (a later one to a name wins; a value of
    None removes the name); given home, HOME left unset or empty becomes it."""
    environment = dict(base)
    for name, value in assignments:
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    if home is not None and not environment.get("HOME"):
        environment.pop("HOME", None)
        environment["HOME"] = home
    return environment


def default_environment(tty: bool, hostname: str) -> dict[str, str]:
    """Docker's starting environment: PATH, HOSTNAME, HOME, and TERM=xterm with a tty."""
    environment = {"PATH": DEFAULT_ENV["PATH"], "HOSTNAME": hostname}
    if tty:
        environment["TERM"] = "xterm"
    environment["HOME"] = DEFAULT_ENV["HOME"]
    return environment
