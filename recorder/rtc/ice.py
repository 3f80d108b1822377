"""Which addresses aiortc gathers host candidates on.

aioice skips loopback when it lists interfaces, so a node (or a test) that must stay on
127.0.0.1 replaces that list. aioice reads it through one module function; swapping it is
the only hook, applied once at start-up from RECORDER_ICE_HOST_ADDRESSES.
"""

from __future__ import annotations

import aioice.ice


def restrict_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates only on `addresses` (empty: aioice's default, all interfaces)."""
    if not addresses:
        return
    fixed = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses
