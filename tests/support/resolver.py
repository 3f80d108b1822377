"""A resolver that answers from a table: tests decide what a name resolves to (a public
address, or an internal one, as a rebinding DNS server would) without touching real DNS."""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class MappedResolver(AbstractResolver):
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table  # name -> addresses; change it to make a name "resolve" elsewhere
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = self.table.get(host)
        if not addresses:
            raise OSError(f"{host}: no such name in the test table")
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ipaddress.ip_address(a).version == 6
                 else socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}
                for a in addresses]

    async def close(self) -> None:
        return None
