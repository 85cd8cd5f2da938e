"""The lo-up request: encoded by pyroute2, cached as its bytes."""

from __future__ import annotations

from pathlib import Path

from supervisor._loopback import encode_with_pyroute2, is_loopback_up_request, loopback_up_request


def test_pyroute2_encodes_rtm_newlink_for_lo_up() -> None:
    request = encode_with_pyroute2()
    assert is_loopback_up_request(request)
    assert not is_loopback_up_request(request[:-1])
    assert not is_loopback_up_request(b"\0" * 32)


def test_the_cache_holds_pyroute2s_bytes_and_a_bad_cache_is_ignored(tmp_path: Path) -> None:
    first = loopback_up_request(str(tmp_path))
    (cached,) = tmp_path.glob("loopback-*.bin")
    assert cached.read_bytes() == first == encode_with_pyroute2()
    assert loopback_up_request(str(tmp_path)) == first
    cached.write_bytes(b"garbage")
    assert loopback_up_request(str(tmp_path)) == first
    assert cached.read_bytes() == first  # rewritten
    assert loopback_up_request(None) == first
