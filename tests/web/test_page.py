"""The page at `/`, driven by headless Chromium like a user: it records a playable file.

A real recorderd serves the page; Chromium (fake camera and microphone) publishes over WHIP
from the page, starts, pauses, resumes and stops a recording with the page's buttons, then
plays the result through a signed URL. The file is then decoded here with PyAV.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import BROWSER_DIR, CHROMIUM, browser_available, ensure_node_modules
from tests.support.daemon import Daemon, run_daemon
from tests.support.media import probe

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/recorder-page.png")
RUN_TIMEOUT = 600.0  # a hang guard only: every step inside the script has its own wait


def _get(daemon: Daemon, path: str, headers: dict[str, str] | None = None) -> tuple[int, str,
                                                                                      bytes]:
    request = urllib.request.Request(daemon.url + path, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


async def _run_page(page_url: str, token: str, room: str) -> tuple[int, dict[str, Any], str]:
    await asyncio.to_thread(ensure_node_modules)
    process = await asyncio.create_subprocess_exec(
        "node", str(BROWSER_DIR / "page.mjs"), page_url, token, room, str(SCREENSHOT),
        cwd=BROWSER_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
    result: dict[str, Any] = {}
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    code = process.returncode if process.returncode is not None else -1
    return code, result, err.decode(errors="replace")


def test_page_and_its_files_need_no_token(redis_url: str) -> None:
    with run_daemon(redis_url) as daemon:
        status, kind, body = _get(daemon, "/")
        assert (status, kind.split(";")[0]) == (200, "text/html")
        page = body.decode()
        assert '<script src="/static/app.js"' in page
        assert 'href="/static/style.css"' in page
        status, kind, script = _get(daemon, "/static/app.js")
        assert (status, kind.split(";")[0]) == (200, "text/javascript")
        assert b"/whip/" in script
        status, kind, _ = _get(daemon, "/static/style.css")
        assert (status, kind.split(";")[0]) == (200, "text/css")
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(daemon, "/static/../pyproject.toml")
        assert missing.value.code == 404


async def test_page_records_a_playable_file_in_chromium(redis_url: str) -> None:
    missing = browser_available()
    assert missing is None, missing  # the test command installs chromium and node
    room = "page-room"
    with run_daemon(redis_url) as daemon:
        token = daemon.headers("page-user", rooms=[room])["Authorization"][7:]
        code, result, stderr = await _run_page(daemon.url + "/", token, room)
        assert code == 0, f"{stderr}\n{daemon.log()[-3000:]}"
        recording_id = result["recordingId"]
        status_path = f"/api/webrtc/rooms/{room}/recording/{recording_id}/status"
        _, _, body = _get(daemon, status_path, daemon.headers("page-user", rooms=[room]))
        final = json.loads(body)
        # before it is removed
        info = probe(daemon.storage / final["recording_id"] / final["file_name"])
    assert result["seen"] == ["recording", "paused", "recording", "completed"]
    assert result["message"] == "", result["message"]  # the page showed no error
    assert result["video"]["duration"] > 0
    assert result["video"]["error"] is None
    assert f"/api/webrtc/recordings/{recording_id}/file" in result["video"]["src"]
    assert final["status"] == "completed"
    assert final["format"] == "webm"
    assert (info.video_codec, info.audio_codec) == ("vp8", "opus")
    assert info.video_frames > 0
    # Chromium's fake camera pulses between dark and bright green (a mean near 20); frames
    # without a picture are black (0).
    assert info.mean_luma > 5, f"no picture from the browser's camera: {info}"
    # About 6 s were recorded around a pause; the pause is cut out of the file.
    assert info.video_seconds > 3.0
    assert info.audio_seconds > 3.0
    assert abs(result["video"]["duration"] - final["duration_seconds"]) < 1.5
