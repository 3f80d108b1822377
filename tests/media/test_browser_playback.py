"""The recorded files play in a real browser: headless Chromium loads, seeks and draws them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from recorder.core.presets import Format, Quality
from recorder.media.capture import Capture, CaptureSpec
from tests.support.synth import FakeClock, Scenario, play, tone

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium"),
]

# For each file: wait for its metadata, seek to 1.5 s, draw the frame there on a canvas.
# A load error is retried once: a loaded 2-core machine sometimes starts Chromium's media
# process too late for the first file; a file Chromium cannot play fails both times.
PROBE_JS = """
const load = (name) => new Promise((resolve) => {
  const v = document.createElement("video");
  v.muted = true;
  v.src = name;
  v.onerror = () => resolve({error: v.error ? v.error.code : -1});
  v.onloadedmetadata = () => { v.currentTime = 1.5; };
  v.onseeked = () => {
    const c = document.createElement("canvas");
    c.width = 64; c.height = 36;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0, 64, 36);
    resolve({duration: v.duration, width: v.videoWidth, height: v.videoHeight,
             centre: Array.from(g.getImageData(32, 18, 1, 1).data),
             corner: Array.from(g.getImageData(1, 18, 1, 1).data)});
  };
});
(async () => {
  const out = {};
  for (const name of NAMES) {
    out[name] = await load(name);
    if (out[name].error !== undefined) {
      await new Promise((r) => setTimeout(r, 1000));
      out[name] = await load(name);
    }
  }
  return JSON.stringify(out);
})()
"""


@contextlib.asynccontextmanager
async def chromium(profile: Path, url: str) -> AsyncIterator[str]:
    """A headless Chromium on ``url``; yields its page's DevTools websocket URL."""
    proc = await asyncio.create_subprocess_exec(
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--allow-file-access-from-files", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                targets: list[dict[str, Any]] = await (
                    await session.get(f"http://127.0.0.1:{port}/json")).json()
                pages = [t for t in targets if t["type"] == "page" and t["url"] == url]
                if pages:
                    yield str(pages[0]["webSocketDebuggerUrl"])
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("chromium did not open the page")
            # Browser.close lets Chromium end its own helper processes (a signal would
            # leave them to init).
            version = await (await session.get(f"http://127.0.0.1:{port}/json/version")).json()
            async with session.ws_connect(version["webSocketDebuggerUrl"]) as ws:
                await ws.send_json({"id": 1, "method": "Browser.close"})
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.receive(), 5)
    finally:
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.terminate()
            await proc.wait()


class Page:
    """One DevTools connection to a page: evaluate expressions, await their promises."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._calls = 0

    async def loaded(self) -> None:
        """Wait until the page finished loading (its context would vanish under a probe)."""
        for _ in range(100):
            state = await self.evaluate("document.readyState")
            if state.get("result", {}).get("value") == "complete":
                return
            await asyncio.sleep(0.1)

    async def evaluate(self, expression: str) -> dict[str, Any]:
        """The CDP ``result`` of Runtime.evaluate (or the error message)."""
        self._calls += 1
        call = self._calls
        await self._ws.send_json({"id": call, "method": "Runtime.evaluate",
                                  "params": {"expression": expression, "awaitPromise": True}})
        while True:
            message: dict[str, Any] = await asyncio.wait_for(self._ws.receive_json(), 60)
            if message.get("id") == call:
                return dict(message.get("result", message))


async def make_file(path: Path, fmt: Format) -> None:
    clock = FakeClock()
    capture = Capture(CaptureSpec("rec-play", path, fmt, Quality.LOW), clock=clock)
    capture.add_source("mic", "audio")
    capture.add_source("cam", "video")
    sc = Scenario()
    sc.audio("mic", 0.0, 3.0, lambda first, n: tone(440, first, n))
    sc.video("cam", 0.0, 3.0, size=lambda t: (480, 480), luma=lambda t: 200)
    await play(capture, sc, clock, clock.now)
    clock.now += 0.1
    await asyncio.to_thread(capture.stop)


async def test_files_play_in_chromium(tmp_path: Path) -> None:
    names = []
    for fmt in Format:
        name = f"recording.{fmt.value}"
        await make_file(tmp_path / name, fmt)
        names.append(name)
    index = tmp_path / "index.html"
    index.write_text("<html><body></body></html>")
    url = index.as_uri()
    async with (chromium(tmp_path / "profile", url) as ws_url,
                aiohttp.ClientSession() as session,
                session.ws_connect(ws_url) as ws):
        page = Page(ws)
        for _ in range(3):
            await page.loaded()
            message = await page.evaluate(f"const NAMES = {json.dumps(names)};" + PROBE_JS)
            # a late navigation of the fresh page can still replace the context under it
            if "Execution context was destroyed" not in json.dumps(message):
                break
    assert "value" in message.get("result", {}), message
    results = json.loads(message["result"]["value"])
    for name in names:
        r = results[name]
        assert "error" not in r, (name, r)
        assert r["duration"] == pytest.approx(3.0, abs=0.2), name
        assert (r["width"], r["height"]) == (854, 480), name
        assert min(r["centre"][:3]) > 180, name  # the square picture, bright
        assert max(r["corner"][:3]) < 30, name  # its black pillarbox bar
