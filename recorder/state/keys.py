"""Every Redis key name of the recorder, built from RECORDER_KEY_PREFIX (docs/operations.md).

Besides the contract's keys, two sets make admission atomic without scanning states:
``{prefix}active:room:{room_id}`` and ``{prefix}active:user:{user_id}`` hold the active
(pending, recording, paused) recording ids of one room and one user. Like ``{prefix}active``
they have no TTL: the same atomic writes that change a status add and remove ids there.
The per-user caps (docs/security.md, "Caps") add ``{prefix}starts:{user_id}``,
``{prefix}publishers:{user_id}`` and ``{prefix}watchers:{user_id}``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "webrtc:recording:"


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a prefix matches only itself in SCAN."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


@dataclass(frozen=True)
class KeySpace:
    prefix: str = DEFAULT_PREFIX

    def state(self, recording_id: str) -> str:
        return f"{self.prefix}state:{recording_id}"

    def room(self, room_id: str) -> str:
        return f"{self.prefix}room:{room_id}"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def active(self) -> str:
        return f"{self.prefix}active"

    def active_room(self, room_id: str) -> str:
        return f"{self.prefix}active:room:{room_id}"

    def active_user(self, user_id: str) -> str:
        return f"{self.prefix}active:user:{user_id}"

    def starts(self, user_id: str) -> str:
        """The user's admitted starts of the last minute (sorted set, scored by unix ms)."""
        return f"{self.prefix}starts:{user_id}"

    def slots(self, kind: str, user_id: str) -> str:
        """The user's live slots of one kind (`publishers`, `watchers`): slot id -> node id."""
        return f"{self.prefix}{kind}:{user_id}"

    def slots_pattern(self, kind: str) -> str:
        """SCAN pattern of every user's slots of one kind."""
        return f"{_glob_escape(self.prefix)}{kind}:*"

    def processing(self, node_id: str) -> str:
        return f"{self.prefix}processing:{node_id}"

    def processing_pattern(self) -> str:
        """SCAN pattern of every node's `processing:` set (orphan takeover reads them all)."""
        return f"{_glob_escape(self.prefix)}processing:*"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    def node_pattern(self) -> str:
        """SCAN pattern of every node key."""
        return f"{_glob_escape(self.prefix)}node:*"

    def node_seen(self, node_id: str) -> str:
        """The node's last heartbeat, kept a day after its `node:` key expired."""
        return f"{self.prefix}node-seen:{node_id}"

    def node_seen_pattern(self) -> str:
        return f"{_glob_escape(self.prefix)}node-seen:*"

    def state_pattern(self) -> str:
        """SCAN pattern of every recording's state (the cluster-wide admin list)."""
        return f"{_glob_escape(self.prefix)}state:*"

    def history(self, recording_id: str) -> str:
        """The recording's timeline: status changes and publishers (list, capped)."""
        return f"{self.prefix}history:{recording_id}"

    def jobs_upload_pattern(self) -> str:
        return f"{_glob_escape(self.prefix)}jobs:upload:*"

    def totals_day(self, day: str) -> str:
        """One UTC day's running totals (`day` as YYYY-MM-DD)."""
        return f"{self.prefix}totals:{day}"

    def events(self) -> str:
        """The pub/sub channel of status changes."""
        return f"{self.prefix}events"

    def room_owner(self, room_id: str) -> str:
        return f"{self.prefix}room-owner:{room_id}"

    def stream(self, stream_id: str) -> str:
        return f"{self.prefix}stream:{stream_id}"

    def jobs_upload(self, node_id: str) -> str:
        return f"{self.prefix}jobs:upload:{node_id}"

    def jobs_webhook(self) -> str:
        return f"{self.prefix}jobs:webhook"

    def upload(self, recording_id: str, file_name: str) -> str:
        return f"{self.prefix}upload:{recording_id}:{file_name}"

    def epoch(self) -> str:
        """Which data the store holds: rewritten when it lost it (docs/operations.md)."""
        return f"{self.prefix}epoch"

    def webhooks_dead(self) -> str:
        return f"{self.prefix}webhooks:dead"
