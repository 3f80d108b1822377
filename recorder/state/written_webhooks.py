"""The webhook jobs of status changes this process wrote, kept until they cannot be lost.

When the store loses its data after a status change was written, the change's webhook job
may be lost with it before anyone delivered it. The node writes the state back
(:mod:`recorder.state.reassert`) and queues these jobs again, with their own webhook ids, for
the versions the store lost: a receiver sees an event at most twice (delivered once before
the loss, once after), never not at all. A job is queued again at most once, which is what
keeps it at twice (docs/operations.md, "When the store fails").
"""

from __future__ import annotations


class WrittenWebhooks:
    def __init__(self) -> None:
        self._jobs: dict[str, dict[int, str]] = {}  # recording id -> version -> job JSON

    def record(self, recording_id: str, version: int, job: str) -> None:
        self._jobs.setdefault(recording_id, {})[version] = job

    def of(self, recording_id: str) -> list[tuple[int, str]]:
        """(version, job JSON) of the recording's jobs not queued again yet, oldest first."""
        return sorted(self._jobs.get(recording_id, {}).items())

    def requeued(self, recording_id: str, after_version: int) -> None:
        """The jobs newer than `after_version` were queued again: never again."""
        jobs = self._jobs.get(recording_id)
        if jobs is None:
            return
        for version in [v for v in jobs if v > after_version]:
            del jobs[version]

    def forget(self, recording_id: str) -> None:
        """The recording left this node (finished elsewhere, or its upload is done)."""
        self._jobs.pop(recording_id, None)
