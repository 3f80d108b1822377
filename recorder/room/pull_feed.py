"""A pulled recording's feed: an upstream's sources and frames into its one capture.

A recording started with a pull source (WHEP, Cloudflare Realtime) records that upstream
only, not the room's WHIP publishers; :class:`recorder.rtc.pull.Pull` calls this feed. While
the upstream is broken the capture's timeline is held (:meth:`CaptureRun.hold`, as for a
pause), so the file goes on without the gap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from recorder.core.tracks import TrackInfo
from recorder.media.sources import CAMERA
from recorder.room.capture_run import CaptureRun
from recorder.room.messages import RoomEvent, TrackAdded
from recorder.room.room_events import channel_message
from recorder.rtc.publisher import Source
from recorder.rtc.receiver import Frame as PulledFrame

logger = logging.getLogger(__name__)


class PullFeed:
    """The room's side of a pull: its sources and frames into the one recording it feeds.

    ``run_of(recording_id)`` is the room's running capture of that recording (None once it
    ended), ``emit`` the room's events, ``finish(run)`` ends a capture that failed."""

    def __init__(self, recording_id: str, run_of: Callable[[str], CaptureRun | None],
                 emit: Callable[[RoomEvent], None], finish: Callable[[CaptureRun], None]
                 ) -> None:
        self._rid = recording_id
        self._run_of = run_of
        self._emit = emit
        self._finish = finish
        self._video_codec: str | None = None  # what a passthrough file's video stream holds

    def _target(self) -> CaptureRun | None:
        return self._run_of(self._rid)

    def source(self, source: Source, replaces: str | None) -> None:
        track = TrackAdded(source.session_id,
                           TrackInfo(source.publisher_id, source.kind, source.codec))
        self._emit(track)
        run = self._target()
        if run is None:
            return
        # The old source goes first, so the same publisher comes back (it continues its file
        # in a `tracks` layout); the swap happens at the new source's first frame, so the
        # picture shows no gap either.
        if replaces is not None:
            run.remove_source(replaces)
        if run.encoded is not None and source.kind == "video":
            # A passthrough file muxes video into the stream its first keyframe made: a
            # new upstream session in another codec cannot continue it (a new picture
            # size can: VP8 and H.264 keyframes carry theirs). Its pictures are left out,
            # the sound goes on, and the file stays decodable.
            if self._video_codec not in (None, source.codec):
                logger.warning("recording %s: the upstream now sends %s video, the file holds "
                               "%s: its pictures are left out", self._rid, source.codec,
                               self._video_codec)
                return
            self._video_codec = source.codec
        try:
            run.add_source(source.source_id, source.kind, track, source.role)
        except Exception:
            logger.exception("recording %s: source %s refused", self._rid, source.source_id)

    def frame(self, source: Source, frame: PulledFrame) -> None:
        run = self._target()
        if run is None:
            return
        run.push(source.source_id, frame, time.monotonic())
        if run.failure is not None:
            self._finish(run)

    def message(self, publisher_id: str, label: str, message: str | bytes) -> None:
        run = self._target()
        if run is not None:
            channel_message([run], publisher_id, publisher_id, CAMERA, label, message)

    def lost(self, at: float) -> None:
        run = self._target()
        if run is not None:
            logger.info("recording %s: upstream lost, the timeline waits for it", self._rid)
            self._hold_safely(run, True, at)

    def restored(self, at: float) -> None:
        run = self._target()
        if run is not None:
            logger.info("recording %s: upstream back, the timeline goes on", self._rid)
            self._hold_safely(run, False, at)

    def _hold_safely(self, run: CaptureRun, hold: bool, at: float) -> None:
        try:
            if hold:
                run.hold("upstream", at)
            else:
                run.release("upstream", at)
        except Exception:
            logger.exception("recording %s: the timeline could not be %s", self._rid,
                             "held" if hold else "released")
