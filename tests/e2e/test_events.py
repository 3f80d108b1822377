"""Timed events end to end: WHIP publishers' data channels and the events API into a real
daemon's recording; events.jsonl, chat.vtt, the subtitle track, the thumbnail, the manifest."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import av
import webvtt

from tests.support.api import call, wait_status
from tests.support.daemon import run_daemon
from tests.support.manifests import check_manifest
from tests.support.publisher import WhipPublisher
from tests.support.timed_events import expected_t, subtitle_cues

ROOM = "events-room"


async def _send_at(pub: WhipPublisher, label: str, text: str) -> float:
    await pub.peer.send(label, text)
    return time.time()


async def test_data_channels_and_api_events_are_recorded_on_the_media_clock(
        redis_url: str) -> None:
    with run_daemon(redis_url, max_events_per_second=50) as daemon:
        owner = daemon.headers("events-owner", rooms=[ROOM])
        other = daemon.headers("someone-else", rooms=[ROOM])
        rooms_url = f"{daemon.url}/api/webrtc/rooms/{ROOM}"
        whip = f"{daemon.url}/whip/{ROOM}"
        sent: list[tuple[float, str, str]] = []  # (wall, user, text) of chat while recording
        async with aiohttp.ClientSession() as http, \
                WhipPublisher(whip, owner["Authorization"][7:], video=(320, 240),
                              data_channels=("chat", "telemetry")) as camera, \
                WhipPublisher(whip, daemon.headers("chatter", rooms=[ROOM])["Authorization"][7:],
                              video=None, audio=False, data_channels=("chat",)) as chatter:
            state = await call(http, "POST", f"{rooms_url}/recording/start", owner, 201,
                               params={"recording_format": "webm", "quality": "low"})
            base = f"{rooms_url}/recording/{state['recording_id']}"
            await wait_status(http, base, owner, {"recording"}, within=30)
            await asyncio.sleep(1.0)
            sent.append((await _send_at(camera, "chat", "hello from the camera"),
                         "events-owner", "hello from the camera"))
            await asyncio.sleep(0.7)
            sent.append((await _send_at(chatter, "chat", "a chat-only <publisher> & co"),
                         "chatter", "a chat-only <publisher> & co"))
            await camera.peer.send("telemetry", b"\x00\x01binary")
            await camera.peer.send("chat", "x" * (16 * 1024 + 1))  # over 16 KiB: dropped
            await call(http, "POST", f"{base}/events", owner, 202,
                       json={"type": "chat", "user": "Teacher", "text": "from the app"})
            sent.append((time.time(), "Teacher", "from the app"))
            await call(http, "POST", f"{base}/events", other, 403,
                       json={"type": "chat", "user": "x", "text": "not mine"})
            await call(http, "POST", f"{base}/events", owner, 400,
                       json={"type": "chat", "data": {}})
            await call(http, "POST", f"{base}/events", owner, 413,
                       json={"type": "note", "data": {"x": "y" * 17000}})
            await call(http, "POST", f"{base}/events", owner, 202,
                       json={"type": "slide", "data": {"page": 3}})
            await asyncio.sleep(1.0)
            await call(http, "POST", f"{base}/pause", owner, 200)
            await camera.peer.send("chat", "while paused")
            await call(http, "POST", f"{base}/events", owner, 409,
                       json={"type": "chat", "user": "Teacher", "text": "paused"})
            await asyncio.sleep(1.5)
            await call(http, "POST", f"{base}/resume", owner, 200)
            await asyncio.sleep(1.0)
            sent.append((await _send_at(camera, "chat", "after the pause"),
                         "events-owner", "after the pause"))
            await asyncio.sleep(2.5)
            await call(http, "POST", f"{base}/stop", owner, 200)
            final = await wait_status(http, base, owner, {"completed", "failed"}, within=60)
        folder = daemon.storage / final["recording_id"]
        _check_outputs(folder, final, sent)


def _check_outputs(folder: Path, final: dict[str, Any],
                   sent: list[tuple[float, str, str]]) -> None:
    assert final["status"] == "completed", final
    kinds = {f["name"]: f["kind"] for f in final["files"]}
    assert kinds == {final["file_name"]: "composite", "events.jsonl": "events",
                     "chat.vtt": "captions", "thumbnail.jpg": "thumbnail",
                     "manifest.json": "manifest"}, kinds
    lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    chats = [e for e in lines if e["type"] == "chat"]
    assert [e["text"] for e in chats] == [text for _, _, text in sent]
    started = datetime.fromisoformat(final["started_at"])
    offsets = [event["t"] - expected_t(wall, started, final["pauses"])
               for event, (wall, _, _) in zip(chats, sent, strict=True)]
    print(f"events.jsonl t minus send time: {[round(o, 3) for o in offsets]} s")
    assert [e["user"] for e in chats] == [user for _, user, _ in sent]
    assert all(abs(o) < 0.15 for o in offsets), offsets
    api = [e for e in lines if e["source"] == "api"]
    assert {e["sub"] for e in api} == {"events-owner"}
    assert {e["channel"] for e in api} == {"api"}
    binary = next(e for e in lines if e["channel"] == "telemetry")
    assert base64.b64decode(binary["data"]) == b"\x00\x01binary"
    assert final["events"]["chat"]["dropped"] == 2  # the oversized one and the paused one
    assert final["events"]["api"] == {"recorded": 2, "dropped": 1}
    assert final["events"]["telemetry"] == {"recorded": 1, "dropped": 0}
    captions = webvtt.read(str(folder / "chat.vtt")).captions
    assert [html.unescape(c.text) for c in captions] == [text for _, _, text in sent]
    assert [c.voice for c in captions] == [user for _, user, _ in sent]
    in_file = subtitle_cues(folder / final["file_name"])
    assert [text for _, _, text in in_file] == [
        f"<v {user}>{text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}"
        for _, user, text in sent]
    for (start, _, _), event in zip(in_file, chats, strict=True):
        assert abs(start - event["t"]) < 0.002
    with av.open(str(folder / "thumbnail.jpg")) as thumb:
        assert thumb.streams.video[0].codec_context.width == 640
    manifest = check_manifest(folder / "manifest.json")
    assert manifest["events"] == final["events"]
    assert {p["publisher_id"] for p in manifest["publishers"]} == {"events-owner", "chatter"}
    assert len(manifest["pauses"]) == 1


async def test_a_killed_node_keeps_its_events_and_recovers_them_into_the_files(
        redis_url: str, tmp_path: Path) -> None:
    storage = tmp_path / "recordings"
    settings: dict[str, Any] = {"node_id": "events-crash-node"}
    sent: list[tuple[float, str]] = []
    with run_daemon(redis_url, storage=storage, **settings) as daemon:
        owner = daemon.headers("events-owner", rooms=[ROOM])
        rooms_url = f"{daemon.url}/api/webrtc/rooms/{ROOM}"
        async with aiohttp.ClientSession() as http, \
                WhipPublisher(f"{daemon.url}/whip/{ROOM}", owner["Authorization"][7:],
                              video=(320, 240), data_channels=("chat",)) as camera:
            state = await call(http, "POST", f"{rooms_url}/recording/start", owner, 201,
                               params={"recording_format": "mkv", "quality": "low"})
            rid = state["recording_id"]
            await wait_status(http, f"{rooms_url}/recording/{rid}", owner, {"recording"})
            for n in range(24):
                sent.append((await _send_at(camera, "chat", f"message {n}"), f"message {n}"))
                await asyncio.sleep(0.25)
            killed_at = time.time()
            daemon.process.send_signal(signal.SIGKILL)
            assert daemon.process.wait(10) == -signal.SIGKILL
            camera.delete_status = 0  # its server is gone
        kept = [json.loads(line)["text"] for line in
                (storage / rid / "events.jsonl").read_text().splitlines()]
    due = [text for wall, text in sent if wall <= killed_at - 1.0]
    assert kept[:len(due)] == due, (kept, due)  # all but the last second survived the kill

    with run_daemon(redis_url, storage=storage, **settings) as daemon:
        owner = daemon.headers("events-owner", rooms=[ROOM])
        async with aiohttp.ClientSession() as http:
            final = await wait_status(http, f"{daemon.url}/api/webrtc/rooms/{ROOM}/recording/"
                                      f"{rid}", owner, {"completed", "failed"}, within=120)
    assert final["status"] == "completed", final
    manifest = check_manifest(storage / rid / "manifest.json")
    assert manifest["recovered"] is True
    assert manifest["events"]["chat"]["recorded"] == len(kept)
    in_file = subtitle_cues(storage / rid / final["file_name"])
    assert [text for _, _, text in in_file] == [f"<v events-owner>{t}" for t in kept]
