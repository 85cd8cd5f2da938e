"""The netlink request that brings `lo` up in a new network namespace, encoded once.

pyroute2 encodes an RTM_NEWLINK for interface index 1 (`lo` is always index 1
in a fresh network namespace) with IFF_UP set. The 32 bytes travel in each
container's spec; the container's init sends them on a plain netlink socket,
so no container pays for pyroute2 (about 120 ms to import) and the supervisor
pays once, in a worker thread, while the spawner starts.
"""

from __future__ import annotations

import functools

IFF_UP = 0x1
LOOPBACK_INDEX = 1


@functools.cache
def loopback_up_request() -> bytes:
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
