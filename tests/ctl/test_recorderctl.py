"""`recorderctl` as an operator runs it: subprocesses against a real recorderd on real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ctl import WAIT_SECONDS, ctl, ctl_env, ctl_json
from tests.support.daemon import SECRET, Daemon, run_daemon, token
from tests.support.publisher import WhipPublisher


@pytest.fixture(scope="module")
def daemon(redis_url: str) -> Iterator[Daemon]:
    with run_daemon(redis_url, key_prefix="ctl-test:", max_per_room=1) as node:
        yield node


async def wait_for_status(env: dict[str, str], room: str, rid: str, wanted: str) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        for _ in range(10_000):
            if (await ctl_json(env, "status", room, rid))["status"] == wanted:
                return
            await asyncio.sleep(0.3)


async def test_a_whole_lifecycle_driven_by_recorderctl(daemon: Daemon) -> None:
    user = token("ctl-user")
    env = ctl_env(daemon, user)
    room = "ctl-room"
    async with WhipPublisher(f"{daemon.url}/whip/{room}", user, video=(320, 240), fps=15):
        state = await ctl_json(env, "start", room, "--format", "mkv", "--quality", "low",
                               "--metadata", '{"course": "c1"}')
        rid = state["recording_id"]
        assert (state["format"], state["quality"], state["metadata"]) == (
            "mkv", "low", {"course": "c1"})
        watcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder.ctl", "watch", room, rid, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await wait_for_status(env, room, rid, "recording")

        code, _, err = await ctl(env, "resume", room, rid)
        assert code == 4, err  # 409: it is not paused
        assert "409" in err
        assert "recording" in err
        assert "\n" not in err.strip()

        code, out, err = await ctl(env, "pause", room, rid)
        assert code == 0, err
        assert "paused" in out
        await asyncio.sleep(1.0)  # a paused span, so the watcher sees both changes
        code, _, err = await ctl(env, "resume", room, rid)
        assert code == 0, err
        await asyncio.sleep(1.0)
        code, _, err = await ctl(env, "stop", room, rid)
        assert code == 0, err

        out_b, err_b = await asyncio.wait_for(watcher.communicate(), WAIT_SECONDS)
    assert watcher.returncode == 0, err_b.decode()
    statuses = [line.split()[1] for line in out_b.decode().splitlines() if line.strip()]
    # The first line is the state when the watch began (pending, or recording already).
    assert statuses[0] in ("pending", "recording"), statuses
    changes = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
    assert changes[-5:] == ["recording", "paused", "recording", "processing", "completed"], (
        statuses)

    final = await ctl_json(env, "status", room, rid)
    assert final["status"] == "completed"
    assert final["stop_reason"] == "requested"
    assert final["duration_seconds"] > 0
    assert (daemon.storage / final["recording_id"] / final["file_name"]).is_file()

    code, table, err = await ctl(env, "ls", "--room", room)
    assert code == 0, err
    header, *rows = table.splitlines()
    assert header.split()[:4] == ["RECORDING", "ID", "ROOM", "ID"]
    assert any(row.split()[0] == rid and "completed" in row.split() for row in rows)
    listed = await ctl_json(env, "ls", "--status", "completed")
    assert rid in [r["recording_id"] for r in listed["recordings"]]
    assert listed["count"] == len(listed["recordings"])


async def test_exit_codes_tell_scripts_what_went_wrong(daemon: Daemon) -> None:
    env = ctl_env(daemon, token("ctl-codes"))
    code, _, err = await ctl(env, "status", "ctl-codes-room", "no-such-recording")
    assert code == 3
    assert err.startswith("recorderctl: 404 ")
    assert err.count("\n") == 1

    state = await ctl_json(env, "start", "ctl-codes-room")
    rid = state["recording_id"]
    code, _, err = await ctl(env, "start", "ctl-codes-room")
    assert code == 5, err  # 429: max_per_room is 1
    assert "max_per_room" in err
    code, _, err = await ctl(env, "pause", "ctl-codes-room", rid)
    assert code == 4, err  # 409: pending
    other = ctl_env(daemon, token("someone-else"))
    code, _, _ = await ctl(other, "stop", "ctl-codes-room", rid)
    assert code == 3  # 403: not theirs
    cancelled = await ctl_json(env, "cancel", "ctl-codes-room", rid)
    assert cancelled["status"] == "cancelled"

    code, _, err = await ctl(env, "start", "ctl-codes-room", "--metadata", "[1]")
    assert code == 2
    assert "--metadata" in err
    unreachable = dict(env, RECORDER_URL="http://127.0.0.1:9")
    code, _, err = await ctl(unreachable, "ls")
    assert code == 6
    assert "cannot reach" in err
    code, _, err = await ctl(ctl_env(daemon), "ls", "--token", "not-a-jwt")
    assert code == 3
    assert "401" in err


async def test_minted_tokens_are_accepted_and_scoped(daemon: Daemon) -> None:
    mint_env = ctl_env(daemon, RECORDER_JWT_SECRET=SECRET)
    code, minted, err = await ctl(mint_env, "token", "--sub", "ctl-minted", "--role", "user",
                                  "--rooms", "ctl-a,ctl-b", "--ttl", "300")
    assert code == 0, err
    env = ctl_env(daemon, minted.strip())
    state = await ctl_json(env, "start", "ctl-a")
    assert state["user_id"] == "ctl-minted"
    await ctl_json(env, "cancel", "ctl-a", state["recording_id"])
    code, _, err = await ctl(env, "start", "ctl-elsewhere")
    assert code == 3, err  # 403: room not in the token
    code, _, err = await ctl(env, "ls", "--user", "another-user")
    assert code == 3, err  # 403: a user token may only list itself


async def test_token_needs_a_secret_and_says_where_it_looked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    env["RECORDER_STORAGE_DIR"] = str(tmp_path)
    code, out, err = await ctl(env, "token")
    assert code == 2
    assert out == ""
    assert str(tmp_path / ".dev-jwt-secret") in err


def test_a_development_node_accepts_the_token_from_its_secret_file(redis_url: str) -> None:
    """No JWT setting: recorderd writes the development secret, recorderctl reads it."""
    with run_daemon(redis_url, key_prefix="ctl-dev:",
                    extra_env={"RECORDER_JWT_SECRET": ""}) as node:
        env = ctl_env(node, RECORDER_STORAGE_DIR=str(node.storage))
        code, out, err = asyncio.run(ctl(env, "token", "--sub", "dev", "--json"))
        assert code == 0, err
        minted = json.loads(out)
        assert minted["role"] == "admin"
        listed = asyncio.run(ctl_json(dict(env, RECORDER_TOKEN=minted["token"]), "ls"))
        assert listed == {"recordings": [], "count": 0}
        # Without RECORDER_TOKEN, recorderctl mints its own from the same file.
        listed = asyncio.run(ctl_json(env, "ls", "--user", "anyone"))
        assert listed["count"] == 0
