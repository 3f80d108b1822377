"""The monitoring files in deploy/ against the real tools: promtool checks and unit-tests the
rules, and a real Prometheus scrapes a node that made a recording, evaluates every rule and
dashboard expression, and fires the node-down alert when the node stops."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.api import (
    WAIT_SECONDS,
    call,
    node_settings,
    recording_url,
    room_url,
    wait_status,
)
from tests.support.daemon import run_daemon
from tests.support.publisher import WhipPublisher
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"
RULE_FILES = (RULES / "recording-rules.yml", RULES / "alerts.yml")
DASHBOARD = ROOT / "deploy" / "grafana" / "recorder.json"
ALERT_TESTS = Path(__file__).parent / "monitoring" / "alerts_test.yml"
METRIC = re.compile(r"\brecorder_[a-z0-9_]+")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is missing (Debian package prometheus)")
    return path


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def _expressions() -> list[str]:
    """Every PromQL expression of the rule files and the dashboard."""
    exprs = [str(rule["expr"]) for rule in _rules()]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        exprs.extend(target["expr"] for target in panel["targets"])
    return exprs


def test_promtool_checks_the_rules_and_the_example_config() -> None:
    promtool = _tool("promtool")
    run = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    run = subprocess.run([promtool, "check", "config", str(RULES / "prometheus.yml")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_is_proved_by_its_own_unit_test() -> None:
    promtool = _tool("promtool")
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert alerts == tested
    run = subprocess.run([promtool, "test", "rules", str(ALERT_TESTS)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    async def get(self, http: aiohttp.ClientSession, path: str, **params: str) -> Any:
        async with http.get(f"{self.url}{path}", params=params) as resp:
            body = await resp.json()
            assert body["status"] == "success", body
            return body["data"]


def _fast_copies(folder: Path) -> list[Path]:
    """The rule files with every interval and `for` at one second, so the test sees them act
    in seconds; the expressions are the shipped ones."""
    copies = []
    for path in RULE_FILES:
        text = re.sub(r"(interval|for): \d+[smh]", r"\1: 1s", path.read_text())
        copy = folder / path.name
        copy.write_text(text)
        copies.append(copy)
    return copies


@pytest.fixture
def prometheus_for() -> Iterator[Any]:
    binary = _tool("prometheus")
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str, folder: Path) -> Prometheus:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in _fast_copies(folder)],
            "scrape_configs": [{"job_name": "recorder", "static_configs": [
                {"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (folder / "prometheus.log").open("wb")
        processes.append(subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT))
        return Prometheus(f"http://127.0.0.1:{port}")

    yield start
    for process in processes:
        process.terminate()
        process.wait(20)


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        if await check():
            return
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.5)


async def test_prometheus_scrapes_a_node_evaluates_everything_and_sees_it_go_down(
    redis_url: str, prometheus_for: Any, tmp_path: Path
) -> None:
    room = "room-monitoring"
    async with aiohttp.ClientSession() as http:
        with run_daemon(redis_url, **node_settings()) as node:
            headers = node.headers("user-mon", rooms=[room])
            async with WhipPublisher(f"{node.url}/whip/{room}", headers["Authorization"][7:],
                                     video=(320, 240)):
                state = await call(http, "POST", f"{room_url(node, room)}/recording/start",
                                   headers, 201, params={"quality": "low"})
                rid = state["recording_id"]
                await wait_status(http, recording_url(node, room, rid), headers, {"recording"})
                await call(http, "POST", f"{room_url(node, room)}/recording/{rid}/stop",
                           headers)
            await wait_status(http, recording_url(node, room, rid), headers, {"completed"})
            finished = 'recorder_recordings_finished_total{status="completed"} 1.0'
            await _until("the finished recording is counted",
                         lambda: _exported(http, node.url, finished))
            async with http.get(f"{node.url}/metrics") as resp:
                exported = await resp.text()
            described = {line.split()[2] for line in exported.splitlines()
                         if line.startswith(("# HELP ", "# TYPE "))}
            named = {m for expr in _expressions() for m in METRIC.findall(expr)}
            missing = {m for m in named
                       if m not in described and re.sub(r"_(bucket|sum|count)$", "", m)
                       not in described}
            assert not missing, f"named by a rule or panel but not exported: {missing}"

            prometheus = prometheus_for(node.url.removeprefix("http://"), tmp_path)
            await _until("the node is scraped", lambda: _scraped(http, prometheus))
            for expr in _expressions():  # each answers "success"; `get` asserts it
                await prometheus.get(http, "/api/v1/query", query=expr)
            frames = await prometheus.get(http, "/api/v1/query",
                                          query="recorder_frames_received_total")
            assert float(frames["result"][0]["value"][1]) > 0
        await _until("RecorderNodeDown fires", lambda: _firing(http, prometheus,
                                                               "RecorderNodeDown"))


async def _exported(http: aiohttp.ClientSession, url: str, line: str) -> bool:
    async with http.get(f"{url}/metrics") as resp:
        return line in (await resp.text()).splitlines()


async def _scraped(http: aiohttp.ClientSession, prometheus: Prometheus) -> bool:
    try:  # Prometheus takes a moment to open its storage and listen
        async with http.get(f"{prometheus.url}/-/ready") as resp:
            if resp.status != 200:
                return False
    except aiohttp.ClientConnectionError:
        return False
    data = await prometheus.get(http, "/api/v1/query", query='up{job="recorder"} == 1')
    return bool(data["result"])


async def _firing(http: aiohttp.ClientSession, prometheus: Prometheus, name: str) -> bool:
    data = await prometheus.get(http, "/api/v1/alerts")
    return any(alert["labels"]["alertname"] == name and alert["state"] == "firing"
               for alert in data["alerts"])
