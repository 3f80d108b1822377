"""/metrics of a node on a real Redis after a refused start: refusals by limit, active
recordings (this node and all nodes), frames, queues and disk (docs/operations.md)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.support.api import (
    WAIT_SECONDS,
    call,
    metrics,
    node_settings,
    recording_url,
    room_url,
    wait_status,
)
from tests.support.daemon import run_daemon
from tests.support.publisher import WhipPublisher


async def test_metrics_after_a_refused_start(redis_url: str) -> None:
    room = "room-metrics"
    with run_daemon(redis_url, **node_settings()) as node:
        headers = node.headers("user-m", rooms=[room])
        async with WhipPublisher(f"{node.url}/whip/{room}", headers["Authorization"][7:],
                                 video=(320, 240)) as _, aiohttp.ClientSession() as http:
            state = await call(http, "POST", f"{room_url(node, room)}/recording/start",
                               headers, 201, params={"quality": "low"})
            rid = state["recording_id"]
            await wait_status(http, recording_url(node, room, rid), headers, {"recording"})
            refused = await call(http, "POST", f"{room_url(node, room)}/recording/start",
                                 headers, 429)
            assert refused["limit"] == "max_per_room"
            deadline = time.monotonic() + WAIT_SECONDS
            while True:  # the gauges follow the heartbeat
                values = await metrics(http, node)
                if values.get("recorder_frames_received_total", 0) > 0 and \
                        values.get("recorder_cluster_active_recordings") == 1:
                    break
                assert time.monotonic() < deadline, values
                await asyncio.sleep(0.5)
            await call(http, "POST", f"{room_url(node, room)}/recording/{rid}/stop", headers)
    assert values['recorder_admissions_refused_total{limit="max_per_room"}'] == 1
    assert values["recorder_recordings_started_total" '{format="webm",quality="low"}'] == 1
    assert values["recorder_active_recordings"] == 1
    assert values["recorder_whip_publishers"] == 1
    assert values["recorder_cluster_active_recordings"] == 1
    assert values["recorder_frames_dropped_total"] == 0
    assert values["recorder_storage_free_bytes"] > 0
    assert values["recorder_upload_queue_depth"] == 0
    assert values["recorder_upload_queue_oldest_age_seconds"] == 0
    assert values["recorder_webhook_queue_depth"] == 0
    assert values["recorder_webhook_queue_oldest_age_seconds"] == 0
