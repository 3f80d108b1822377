"""Headless Chromium publishing over WHIP, for tests: the page server and the node runner.

The page is served from its own port so that, against a WHIP endpoint on another port, the
browser is cross-origin and sends the CORS preflights a real page would.

    async with serve_page() as page_url:
        result = await run_browser_publisher(page_url, whip_url, token, seconds=3)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.serve import serving

BROWSER_DIR = Path(__file__).resolve().parent.parent / "browser"
CHROMIUM = "/usr/bin/chromium"
RUN_TIMEOUT_SLACK = 90.0  # launch + connect on a busy 2-core machine: a hang guard only


def browser_available() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (Debian package chromium)"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are missing"
    return None


def ensure_node_modules() -> None:
    """Install playwright-core from the lockfile once (the test command usually did it)."""
    if (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, check=True,
                   stdout=subprocess.DEVNULL)


@asynccontextmanager
async def serve_page(host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve tests/browser/publish.html on a free port; yields the page URL."""
    app = web.Application()

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(BROWSER_DIR / "publish.html")

    app.router.add_get("/publish.html", page)
    async with serving(app, host) as url:
        yield f"{url}/publish.html"


@dataclass(frozen=True)
class BrowserRun:
    returncode: int
    result: dict[str, Any]  # the JSON the script printed ({} when it printed none)
    stderr: str


async def run_browser_publisher(page_url: str, whip_url: str, token: str,
                                seconds: float) -> BrowserRun:
    """Run tests/browser/publish.mjs to the end; exit code 0 means published and deleted."""
    await asyncio.to_thread(ensure_node_modules)
    process = await asyncio.create_subprocess_exec(
        "node", str(BROWSER_DIR / "publish.mjs"), page_url, whip_url, token, str(seconds),
        cwd=BROWSER_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds + RUN_TIMEOUT_SLACK)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
    result: dict[str, Any] = {}
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    return BrowserRun(process.returncode if process.returncode is not None else -1, result,
                      err.decode(errors="replace"))


class BrowserChat:
    """tests/browser/chat.mjs driven line by line: Chromium publishes camera, microphone
    and a `chat` data channel; :meth:`send` sends a message and returns its unix send time.

        async with BrowserChat(page_url, whip_url, token) as chat:
            sent_at = await chat.send("hello")
    """

    def __init__(self, page_url: str, whip_url: str, token: str) -> None:
        self._args = (page_url, whip_url, token)
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> BrowserChat:
        await asyncio.to_thread(ensure_node_modules)
        self._process = await asyncio.create_subprocess_exec(
            "node", str(BROWSER_DIR / "chat.mjs"), *self._args, cwd=BROWSER_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "CHROMIUM_PATH": CHROMIUM})
        ready = await self._read()
        assert ready.get("ready"), ready
        return self

    async def _read(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        while True:
            line = await asyncio.wait_for(self._process.stdout.readline(), RUN_TIMEOUT_SLACK)
            if not line:
                err = b"" if self._process.stderr is None else await self._process.stderr.read()
                raise AssertionError(f"chat.mjs ended: {err.decode(errors='replace')[-2000:]}")
            if line.startswith(b"{"):
                value: dict[str, Any] = json.loads(line)
                return value

    async def _command(self, line: str) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(line.encode() + b"\n")
        await self._process.stdin.drain()
        return await self._read()

    async def send(self, text: str) -> float:
        answer = await self._command(f"send {text}")
        return float(answer["at"]) / 1000.0

    async def stop(self) -> int:
        return int((await self._command("stop"))["deleted"])

    async def __aexit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # without a stop first, it exits 1
        try:
            await asyncio.wait_for(process.wait(), RUN_TIMEOUT_SLACK)
        except TimeoutError:
            process.kill()
            await process.wait()
