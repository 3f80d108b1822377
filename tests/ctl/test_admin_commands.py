"""recorderctl's operator commands against a real node on real Redis: `nodes`, `queues`,
`webhooks replay` and `ls --all` (tables, --json, every page)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from recorder.core.lifecycle import Action
from tests.support.api import node_settings
from tests.support.ctl import ctl, ctl_env, ctl_json
from tests.support.daemon import Daemon, run_daemon, token
from tests.support.fleet import Cluster

OTHER_NODE = "ctl-other:1"


@pytest.fixture(scope="module")
def node(redis_url: str) -> Iterator[tuple[Daemon, str]]:
    settings = node_settings()
    with run_daemon(redis_url, **settings) as daemon:
        yield daemon, settings["key_prefix"]


@pytest.fixture
async def cluster(redis_url: str, node: tuple[Daemon, str]) -> AsyncIterator[Cluster]:
    arranged = Cluster(redis_url, node[1])
    yield arranged
    await arranged.close()


async def test_ls_all_follows_every_page_with_filters(node: tuple[Daemon, str],
                                                      cluster: Cluster) -> None:
    daemon = node[0]
    here = [(await cluster.recording(daemon.node_id, daemon.storage, "ctl-a", "u-a",
                                     (Action.MEDIA_STARTED,))).recording_id for _ in range(3)]
    there = [(await cluster.recording(OTHER_NODE, daemon.storage, "ctl-b", "u-b")).recording_id
             for _ in range(2)]
    env = ctl_env(daemon, token("ops", "admin"))
    listed = await ctl_json(env, "ls", "--all", "--page-size", "2")
    assert sorted(r["recording_id"] for r in listed["recordings"]) == sorted(here + there)
    assert listed["count"] == 5
    by_node = await ctl_json(env, "ls", "--all", "--node", OTHER_NODE, "--page-size", "1")
    assert sorted(r["recording_id"] for r in by_node["recordings"]) == sorted(there)
    recording = await ctl_json(env, "ls", "--all", "--status", "recording", "--user", "u-a")
    assert sorted(r["recording_id"] for r in recording["recordings"]) == sorted(here)
    code, out, err = await ctl(env, "ls", "--all", "--room", "ctl-b")
    assert code == 0, err
    assert all(rid in out for rid in there)
    assert not any(rid in out for rid in here)
    assert out.splitlines()[0].split()[:3] == ["RECORDING", "ID", "ROOM"]

    code, _, err = await ctl(env, "ls", "--node", OTHER_NODE)
    assert code == 2, err  # --node needs --all
    user = ctl_env(daemon, token("u-a"))
    for command in (("ls", "--all"), ("nodes",), ("queues",), ("webhooks", "replay")):
        code, _, err = await ctl(user, *command)
        assert code == 3, (command, err)  # 403
        assert "403" in err


async def test_nodes_queues_and_replay(node: tuple[Daemon, str], cluster: Cluster) -> None:
    daemon = node[0]
    env = ctl_env(daemon, token("ops", "admin"))
    nodes = await ctl_json(env, "nodes")
    assert [n["node_id"] for n in nodes["nodes"]] == [daemon.node_id]
    code, out, err = await ctl(env, "nodes")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["NODE", "HEALTH", "AGE"]
    assert row.split()[:2] == [daemon.node_id, "ok"]

    failed = await cluster.failed_upload(daemon.node_id, daemon.storage, "ctl-q", "u-q")
    letter = await cluster.dead_letter(failed.recording_id, last_error="HTTP 502")
    code, out, err = await ctl(env, "queues")
    assert code == 0, err
    assert "dead letters 1" in out
    dead_row = next(line for line in out.splitlines() if line.startswith(letter.id))
    assert dead_row.split()[1:3] == ["recording.complete", failed.recording_id]
    assert dead_row.endswith("HTTP 502")

    code, out, err = await ctl(env, "webhooks", "replay")
    assert code == 0, err
    assert out.startswith("replayed 1 dead letter(s)")
    queues = await ctl_json(env, "queues")
    assert queues["webhooks"]["dead"] == 0
    assert queues["webhooks"]["queue"]["depth"] == 1
    assert [q["node_id"] for q in queues["uploads"]] == [daemon.node_id]
