"""The admin page at `/admin`, driven by headless Chromium against two nodes on one Redis.

A user token gets nothing but the token prompt. With an admin token the page lists the
recordings of both nodes with their pictures; Stop on a live recording and Retry upload on a
failed one are done from the page and seen in the stored state; a dead letter is replayed;
a node stopped while the page is open shows as late. Screenshots go to the artefact folder
(RECORDER_TEST_ARTEFACTS, else the test's tmp folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from recorder.core.lifecycle import Action
from tests.support.api import call, node_settings, recording_url, room_url, wait_status
from tests.support.browser import BROWSER_DIR, CHROMIUM, browser_available, ensure_node_modules
from tests.support.daemon import Daemon, run_daemon, token
from tests.support.fleet import Cluster
from tests.support.publisher import WhipPublisher

pytestmark = pytest.mark.browser

RUN_TIMEOUT = 300.0  # a hang guard only: every step inside the script has its own wait
ROOM = "admin-live"


def _artefacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RECORDER_TEST_ARTEFACTS") or tmp_path) / "admin-page"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_admin_page_is_served_with_its_policy(redis_url: str) -> None:
    with run_daemon(redis_url) as node, urllib.request.urlopen(node.url + "/admin") as page:
        policy = page.headers["Content-Security-Policy"]
        html = page.read().decode()
    assert "img-src 'self' data: blob:" in policy
    assert "script-src 'self';" in policy
    assert '<script src="/static/admin.js"' in html
    assert "<style" not in html
    assert "style=" not in html


async def _arrange(cluster: Cluster, one: Daemon, two: Daemon) -> dict[str, Any]:
    listed = [(await cluster.recording(node.node_id, node.storage, "admin-old", "someone",
                                       (Action.MEDIA_STARTED, Action.STOP), video=True)
               ).recording_id for node in (one, two) for _ in range(2)]
    failed = await cluster.failed_upload(two.node_id, two.storage, "admin-up", "someone")
    letter = await cluster.dead_letter(failed.recording_id)
    return {"userToken": token("someone"), "adminToken": token("ops", "admin"),
            "nodes": [one.node_id, two.node_id], "listed": [*listed, failed.recording_id],
            "failedUpload": failed.recording_id, "deadLetter": letter.id,
            "stoppedNode": two.node_id}


async def _drive(page_url: str, plan_path: Path, shots: Path,
                 stop_node: Any) -> tuple[int, dict[str, Any], str]:
    """Run tests/browser/admin.mjs; when it asks, stop the node and tell it to go on."""
    await asyncio.to_thread(ensure_node_modules)
    process = await asyncio.create_subprocess_exec(
        "node", str(BROWSER_DIR / "admin.mjs"), page_url, str(plan_path), str(shots),
        cwd=BROWSER_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "CHROMIUM_PATH": CHROMIUM})
    assert process.stdout is not None
    assert process.stdin is not None
    result: dict[str, Any] = {}

    async def talk() -> None:
        assert process.stdout is not None
        assert process.stdin is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace")
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            if message.get("step") == "stop-node":
                await asyncio.to_thread(stop_node)
                process.stdin.write(b"go\n")
                await process.stdin.drain()
            else:
                result.update(message)

    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            await asyncio.gather(talk(), process.wait())
    except TimeoutError:
        process.kill()
        await process.wait()
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode(errors="replace")
    return process.returncode if process.returncode is not None else -1, result, stderr


async def test_the_admin_page_shows_and_steers_two_nodes(redis_url: str,
                                                         tmp_path: Path) -> None:
    missing = browser_available()
    assert missing is None, missing  # the test command installs chromium and node
    shots = _artefacts(tmp_path)
    settings = node_settings()
    cluster = Cluster(redis_url, settings["key_prefix"])
    with ExitStack() as stack, ExitStack() as second:
        one = stack.enter_context(run_daemon(redis_url, **settings))
        two = second.enter_context(run_daemon(redis_url, **settings))
        plan = await _arrange(cluster, one, two)
        user = one.headers("publisher", rooms=[ROOM])
        async with WhipPublisher(f"{one.url}/whip/{ROOM}", user["Authorization"][7:],
                                 video=(320, 240)), aiohttp.ClientSession() as http:
            live = await call(http, "POST", f"{room_url(one, ROOM)}/recording/start", user,
                              201, params={"quality": "low"})
            live_url = recording_url(one, ROOM, live["recording_id"])
            await wait_status(http, live_url, user, {"recording"})
            plan["live"] = live["recording_id"]
            plan["listed"].append(live["recording_id"])
            plan_path = tmp_path / "plan.json"
            plan_path.write_text(json.dumps(plan))
            code, result, stderr = await _drive(f"{one.url}/admin", plan_path, shots,
                                                second.close)
            assert code == 0, f"{stderr}\n{one.log()[-3000:]}"
            stopped = await wait_status(http, live_url, user, {"processing", "completed"})
        retried = await cluster.store.get(plan["failedUpload"])
        dead = await cluster.redis.llen(cluster.keys.webhooks_dead())
        queued = await cluster.redis.xlen(cluster.keys.jobs_webhook())
        uploads = await cluster.redis.xlen(cluster.keys.jobs_upload(two.node_id))
    await cluster.close()
    await _check(result, stopped)
    assert (retried.status.value, retried.upload and retried.upload.state.value) == (
        "processing", "queued")
    assert uploads >= 1  # its job is queued again on the node that holds the file
    assert (dead, queued) == (0, 1)


async def _check(result: dict[str, Any], stopped: dict[str, Any]) -> None:
    """What the browser reported, and the stopped recording's state."""
    view = result["userView"]
    assert view["dashboardHidden"] is True
    assert view["dashboardVisible"] is False
    assert view["rows"] == 0
    assert "Nodes" not in view["visibleText"]
    assert view["message"]
    assert result["pictures"] >= 1
    assert stopped["stop_reason"] == "requested"
    timeline = result["timeline"]
    assert timeline[0] == "recording_pending"
    assert timeline.index("recording_started") < timeline.index("recording_stopped")
    assert timeline.count("publisher_joined") == 2  # the WHIP publisher's video and audio
    assert result["stoppedHealth"] in ("late", "gone")
    assert result["message"] == "replayed 1 dead letter(s)"  # and no error since
    sizes = await asyncio.to_thread(lambda: [Path(p).stat().st_size
                                             for p in result["screenshots"]])
    assert len(sizes) == 2
    assert min(sizes) > 10_000
