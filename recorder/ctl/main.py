"""`recorderctl`: drive recordings from a shell or a script.

The token comes from ``--token``, else RECORDER_TOKEN, else it is minted here as an admin
token from the secret recorderd itself uses (RECORDER_JWT_SECRET, or the development secret
file in the storage directory), so on the daemon's own machine it works with no setup.
Every failure prints one line on stderr and exits with a code a script can branch on
(see :mod:`recorder.ctl.client`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from recorder.api.auth import DEV_SECRET_FILE, mint_token
from recorder.config.loading import SettingsError, load_settings
from recorder.config.settings import Settings
from recorder.core.models import Transcode
from recorder.core.paging import MAX_LIMIT
from recorder.core.presets import Format, Layout, Quality
from recorder.ctl import admin, output
from recorder.ctl.client import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    ApiError,
    Client,
    recording_path,
    room_path,
)

DEFAULT_URL = "http://127.0.0.1:8080"
LOCAL_TOKEN_SECONDS = 600  # a token minted for one command need not outlive it
RECONNECT_SECONDS = 1.0
TERMINAL = frozenset({"completed", "cancelled", "failed"})
STATUSES = ("pending", "recording", "paused", "processing", "completed", "cancelled", "failed")


class UsageError(Exception):
    """Arguments argparse accepted but that make no sense (bad JSON, a missing secret)."""


def local_secret(config: str | None) -> tuple[str, Settings]:
    """The HS256 secret recorderd verifies with, found the way recorderd finds it."""
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        raise UsageError(str(exc)) from exc
    if settings.jwt_secret:
        return settings.jwt_secret, settings
    if settings.jwt_public_key:
        raise UsageError("RECORDER_JWT_PUBLIC_KEY is set: tokens come from your issuer, not "
                         "from recorderctl (set RECORDER_TOKEN)")
    path = settings.storage / DEV_SECRET_FILE
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise UsageError(
            f"no RECORDER_JWT_SECRET and no development secret at {path} ({exc.strerror}); "
            "start recorderd once, or set RECORDER_STORAGE_DIR to its storage directory"
        ) from exc
    if not secret:
        raise UsageError(f"the development secret {path} is empty")
    return secret, settings


def _mint(secret: str, settings: Settings, sub: str, role: str | None,
          rooms: list[str] | None, ttl: int) -> str:
    return mint_token(secret, sub, role, rooms, ttl, audience=settings.jwt_audience,
                      issuer=settings.jwt_issuer)


def bearer(args: argparse.Namespace) -> str | None:
    """--token, RECORDER_TOKEN, or a short admin token from the local secret (if any)."""
    token: str | None = args.token or os.environ.get("RECORDER_TOKEN")
    if token:
        return token
    try:
        secret, settings = local_secret(args.config)
    except UsageError:
        return None  # the server's 401 then says what is missing
    return _mint(secret, settings, "recorderctl", "admin", None, LOCAL_TOKEN_SECONDS)


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--metadata is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError("--metadata must be a JSON object")
    return value


def cmd_start(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {key: value for key, value in (
        ("format", args.format), ("quality", args.quality), ("layout", args.layout),
        ("transcode", args.transcode), ("max_duration_seconds", args.max_duration),
        ("metadata", _metadata(args.metadata))) if value is not None}
    state = client.request("POST", room_path(args.room) + "/recording/start", body=body)
    return _show_state(state, args)


def cmd_action(client: Client, args: argparse.Namespace) -> int:
    path = recording_path(args.room, args.recording_id)
    if args.command == "cancel":
        state = client.request("DELETE", path)
    elif args.command == "status":
        state = client.request("GET", path + "/status")
    else:
        state = client.request("POST", f"{path}/{args.command}")
    return _show_state(state, args)


def _show_state(state: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        output.print_json(state, sys.stdout)
    else:
        output.print_state(state, sys.stdout)
    return EXIT_OK


def cmd_ls(client: Client, args: argparse.Namespace) -> int:
    if args.all:
        recordings = list_all(client, admin.ADMIN + "/recordings", admin.fleet_query(args),
                              args.page_size)
    elif args.node is not None:
        raise UsageError("ls: --node needs --all (the whole cluster)")
    elif args.room is not None:
        if args.user is not None:
            raise UsageError("ls: --room lists a room; --user cannot be combined with it")
        recordings = list_all(client, room_path(args.room) + "/recordings", {}, args.page_size)
        if args.status is not None:
            recordings = [r for r in recordings if r.get("status") == args.status]
    else:
        query = {k: v for k, v in (("status", args.status), ("user_id", args.user)) if v}
        recordings = list_all(client, "/api/webrtc/recordings", query, args.page_size)
    if args.json:
        output.print_json({"recordings": recordings, "count": len(recordings)}, sys.stdout)
    else:
        output.print_list(recordings, sys.stdout)
    return EXIT_OK


def list_all(client: Client, path: str, query: dict[str, str],
             page_size: int) -> list[dict[str, Any]]:
    """Every page of a list, newest first, following `next_cursor` until it is null."""
    recordings: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_query = dict(query, limit=str(page_size))
        if cursor is not None:
            page_query["cursor"] = cursor
        answer = client.request("GET", path, query=page_query)
        recordings += answer["recordings"]
        cursor = answer.get("next_cursor")
        if not cursor:
            return recordings


def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    """Until a terminal status; a stream that ends early (node restart) is reopened, and its
    first message, the current state, is shown only if the status moved meanwhile."""
    path = recording_path(args.room, args.recording_id) + "/events"
    shown: str | None = None
    while True:
        for event in client.events(path):
            status = str(event.data.get("status"))
            if event.name == "state" and status == shown:
                continue
            shown = status
            if args.json:
                print(json.dumps({"event": event.name, "data": event.data}), flush=True)
            else:
                print(output.watch_line(event.name, event.data), flush=True)
        if shown in TERMINAL:
            return EXIT_OK if shown == "completed" else EXIT_FAILED
        time.sleep(RECONNECT_SECONDS)


def cmd_token(args: argparse.Namespace) -> int:
    secret, settings = local_secret(args.config)
    rooms = [r for r in args.rooms.split(",") if r] if args.rooms is not None else None
    role = None if args.role == "user" else args.role
    token = _mint(secret, settings, args.sub, role, rooms, args.ttl)
    if args.json:
        expires = datetime.fromtimestamp(time.time() + args.ttl, UTC)
        output.print_json({"token": token, "sub": args.sub, "role": args.role, "rooms": rooms,
                           "expires_at": expires.isoformat(timespec="seconds")}, sys.stdout)
    else:
        print(token)
    return EXIT_OK


def _common(suppress: bool) -> argparse.ArgumentParser:
    """Options valid before and after the command; after it they override."""
    parser = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--url", default=default,
                        help=f"control API (else RECORDER_URL, else {DEFAULT_URL})")
    parser.add_argument("--token", default=default, help="bearer JWT (else RECORDER_TOKEN)")
    parser.add_argument("--config", default=default,
                        help="recorderd's TOML settings, to find its secret (else "
                             "RECORDER_CONFIG)")
    parser.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="print JSON for scripts instead of tables")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recorderctl", parents=[_common(False)],
        description="Command-line client of recorderd's control API.",
        epilog="exit codes: 0 ok; 1 watch ended failed/cancelled; 2 usage or invalid request; "
               "3 not found, forbidden or unauthorized; 4 conflict (409); 5 limit (429); "
               "6 server error or unreachable")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(True)]
    _recording_commands(commands, common)
    admin.add_commands(commands, common)
    _other_commands(commands, common)
    return parser


def _recording_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                         common: list[argparse.ArgumentParser]) -> None:
    start = commands.add_parser("start", parents=common, help="start recording a room")
    start.add_argument("room")
    start.add_argument("--format", choices=[f.value for f in Format])
    start.add_argument("--quality", choices=[q.value for q in Quality])
    start.add_argument("--layout", choices=[x.value for x in Layout])
    start.add_argument("--transcode", choices=[t.value for t in Transcode])
    start.add_argument("--max-duration", type=int, metavar="SECONDS")
    start.add_argument("--metadata", metavar="JSON", help="a JSON object kept with the state")
    start.set_defaults(run=cmd_start)

    for name, summary in (("stop", "stop and finalise"), ("pause", "pause"),
                          ("resume", "resume a paused recording"),
                          ("cancel", "stop and delete the files"),
                          ("status", "show the state")):
        action = commands.add_parser(name, parents=common, help=summary)
        action.add_argument("room")
        action.add_argument("recording_id")
        action.set_defaults(run=cmd_action)

    ls = commands.add_parser("ls", parents=common,
                             help="list a room's recordings, or a user's (default: yours)")
    ls.add_argument("--room")
    ls.add_argument("--user", help="whose recordings (admins)")
    admin.add_ls_options(ls)
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--page-size", type=int, default=MAX_LIMIT,
                    help=f"recordings per request (1 to {MAX_LIMIT}); every page is listed")
    ls.set_defaults(run=cmd_ls)


def _other_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                    common: list[argparse.ArgumentParser]) -> None:
    watch = commands.add_parser("watch", parents=common,
                                help="follow a recording's status until it ends")
    watch.add_argument("room")
    watch.add_argument("recording_id")
    watch.set_defaults(run=cmd_watch)

    token = commands.add_parser("token", parents=common,
                                help="mint a development JWT from the configured secret")
    token.add_argument("--sub", default="admin", help="user id (default: admin)")
    token.add_argument("--role", choices=("admin", "user"), default="admin")
    token.add_argument("--rooms", help="comma-separated room ids (default: any room)")
    token.add_argument("--ttl", type=int, default=3600, metavar="SECONDS")
    token.set_defaults(run=None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "token":
            return cmd_token(args)
        url = args.url or os.environ.get("RECORDER_URL") or DEFAULT_URL
        client = Client(url, bearer(args))
        code: int = args.run(client, args)
        return code
    except UsageError as exc:
        print(f"recorderctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"recorderctl: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except (BrokenPipeError, ValueError) as exc:  # a closed pipe, or an answer that is not JSON
        print(f"recorderctl: {exc}", file=sys.stderr)
        return EXIT_SERVER


if __name__ == "__main__":
    sys.exit(main())
