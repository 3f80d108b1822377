"""recorderctl's operator commands: `nodes`, `queues`, `webhooks replay` and `ls --all`,
clients of the admin routes (docs/usage.md, "recorderctl"). They need an admin token; the
one recorderctl mints from the local secret is one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from recorder.ctl import output
from recorder.ctl.client import EXIT_OK, Client

ADMIN = "/api/webrtc/admin"


def cmd_nodes(client: Client, args: argparse.Namespace) -> int:
    return _show(client, args, "/nodes", lambda answer: print_nodes(answer["nodes"],
                                                                      sys.stdout))


def cmd_queues(client: Client, args: argparse.Namespace) -> int:
    return _show(client, args, "/queues", lambda answer: print_queues(answer, sys.stdout))


def _show(client: Client, args: argparse.Namespace, route: str,
          table: Callable[[Any], None]) -> int:
    """GET an admin route: its JSON with --json, else the table."""
    answer = client.request("GET", ADMIN + route)
    if args.json:
        output.print_json(answer, sys.stdout)
    else:
        table(answer)
    return EXIT_OK


def cmd_webhooks(client: Client, args: argparse.Namespace) -> int:
    """`webhooks replay`: every dead letter back to the queue, endpoints enabled again."""
    answer = client.request("POST", ADMIN + "/webhooks/replay")
    if args.json:
        output.print_json(answer, sys.stdout)
    else:
        enabled = ", ".join(answer["endpoints_enabled"]) or "none"
        print(f"replayed {answer['replayed']} dead letter(s); endpoints enabled: {enabled}")
    return EXIT_OK


def fleet_query(args: argparse.Namespace) -> dict[str, str]:
    """`ls --all`'s filters as the admin list's query."""
    pairs = (("status", args.status), ("room_id", args.room), ("user_id", args.user),
             ("node_id", args.node))
    return {name: value for name, value in pairs if value}


def _mib(value: Any) -> str:
    return "-" if value is None else f"{int(value) / (1 << 20):.1f}M"


def print_nodes(nodes: list[dict[str, Any]], out: TextIO) -> None:
    if not nodes:
        print("no nodes", file=out)
        return
    rows = []
    for node in nodes:
        disk = node.get("disk") or {}
        rows.append([node["node_id"], node["health"], output.cell(node["heartbeat_age_seconds"]),
                     node["version"] or "-",
                     f"{node['cpu_used']:.1f}/{node['cpu_capacity']:.1f}",
                     str(node["rooms"]), str(node["room_workers"]),
                     str(node["active_recordings"]), "yes" if node["draining"] else "no",
                     _mib(disk.get("used_bytes")), _mib(disk.get("free_bytes"))])
    print(output.table(rows, ["node", "health", "age s", "version", "cpu", "rooms", "workers",
                              "active", "draining", "disk used", "disk free"]), file=out)


def print_queues(answer: dict[str, Any], out: TextIO) -> None:
    uploads = [[q["node_id"], str(q["depth"]), str(q["in_progress"]),
                output.cell(q["oldest_age_seconds"])] for q in answer["uploads"]]
    print(output.table(uploads, ["upload queue", "depth", "in progress", "oldest s"]), file=out)
    hooks = answer["webhooks"]
    queue = hooks["queue"]
    print(f"\nwebhooks: depth {queue['depth']} (ready {queue['ready']}, delayed "
          f"{queue['delayed']}, in progress {queue['in_progress']}), oldest "
          f"{output.cell(queue['oldest_age_seconds'])} s, dead letters {hooks['dead']}",
          file=out)
    for endpoint in hooks["endpoints"]:
        if endpoint["disabled"]:
            print(f"disabled endpoint: {endpoint['url']} (HTTP {endpoint['status']})",
                  file=out)
    letters = [[d["id"], d["event"], d["recording_id"], str(d["attempts"]),
                output.cell(d["last_error"])] for d in hooks["dead_letters"]]
    if letters:
        print(file=out)
        print(output.table(letters, ["dead letter", "event", "recording", "attempts",
                                     "last error"]), file=out)


def add_ls_options(ls: argparse.ArgumentParser) -> None:
    ls.add_argument("--all", action="store_true",
                    help="every recording of the cluster (admins), with the filters")
    ls.add_argument("--node", help="with --all: only this node's recordings")


def add_commands(commands: Any, common: list[argparse.ArgumentParser]) -> None:
    nodes = commands.add_parser("nodes", parents=common,
                                help="the cluster's nodes: health, heartbeat age, load (admin)")
    nodes.set_defaults(run=cmd_nodes)
    queues = commands.add_parser("queues", parents=common,
                                 help="upload and webhook queues, dead letters (admin)")
    queues.set_defaults(run=cmd_queues)
    webhooks = commands.add_parser("webhooks", parents=common, help="webhook outbox (admin)")
    webhooks.add_argument("action", choices=("replay",),
                          help="replay: dead letters back to the queue, endpoints enabled")
    webhooks.set_defaults(run=cmd_webhooks)
