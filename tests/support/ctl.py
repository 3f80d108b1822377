"""`recorderctl` run as an operator runs it: a subprocess with its environment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from tests.support.daemon import Daemon

WAIT_SECONDS = 60.0  # a safety net against a hung test on a busy machine, not a measurement


def ctl_env(daemon: Daemon, tok: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    env["RECORDER_URL"] = daemon.url
    if tok is not None:
        env["RECORDER_TOKEN"] = tok
    env.update(extra)
    return env


async def ctl(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "recorder.ctl", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def ctl_json(env: dict[str, str], *args: str) -> Any:
    code, out, err = await ctl(env, *args, "--json")
    assert code == 0, err
    return json.loads(out)
