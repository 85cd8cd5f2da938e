"""The netlink request that brings `lo` up in a new network namespace, encoded once.

pyroute2 encodes an RTM_NEWLINK for interface index 1 (`lo` is always index 1
in a fresh network namespace) with IFF_UP set. The 32 bytes travel in each
container's spec; the container's init sends them on a plain netlink socket,
so no container pays for pyroute2. The supervisor pays once: importing
pyroute2 costs about 120 ms here, so the encoded bytes are also kept in a
small cache file (keyed by the installed pyroute2's files), and later runs
read 32 bytes instead of importing it again.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import struct

from ._state import private_dir

IFF_UP = 0x1
LOOPBACK_INDEX = 1
_RTM_NEWLINK = 16
_IFINFO = struct.Struct("=LHHLL BxHiII")  # nlmsghdr + ifinfomsg: 32 bytes


@functools.cache
def encode_with_pyroute2() -> bytes:
    from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["index"] = LOOPBACK_INDEX
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK
    msg["header"]["sequence_number"] = 1
    msg.encode()
    return bytes(msg.data)


def is_loopback_up_request(data: bytes) -> bool:
    """What a cache file holds must be exactly this request, or it is not used."""
    if len(data) != _IFINFO.size:
        return False
    length, kind, _flags, _seq, _pid, _family, _type, index, flags, change = _IFINFO.unpack(data)
    return bool(length == len(data) and kind == _RTM_NEWLINK and index == LOOPBACK_INDEX
                and flags & IFF_UP == IFF_UP and change & IFF_UP == IFF_UP)


def _cache_key() -> str | None:
    spec = importlib.util.find_spec("pyroute2")  # finds it without importing it
    if spec is None or spec.origin is None:
        return None
    st = os.stat(spec.origin)
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def loopback_up_request(cache_dir: str | None = None) -> bytes:
    """The request; from the cache in cache_dir when pyroute2 has not changed."""
    key = None
    if cache_dir is not None:
        with contextlib.suppress(OSError, ValueError, ImportError):
            key = _cache_key()
    path = os.path.join(cache_dir, f"loopback-{key}.bin") if cache_dir and key else None
    if path is not None:
        # Root's alone, as the state directory (tightened if an older supervise made it
        # 0755): what it holds, only root may have put there.
        with contextlib.suppress(OSError):
            private_dir(os.path.dirname(path))
        with contextlib.suppress(OSError), open(path, "rb") as f:
            cached = f.read(64)
            if is_loopback_up_request(cached):
                return cached
    request = encode_with_pyroute2()
    if path is not None:
        with contextlib.suppress(OSError):
            temporary = f"{path}.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(request)
            os.rename(temporary, path)
    return request
