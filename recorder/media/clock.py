"""Mapping sender timestamps to one media timeline, with pauses cut out.

Each track's pts count from its own first packet in its own time base, so pts of an audio
and a video track cannot be compared directly, and counting frames (a fixed 1/30 clock)
drifts as soon as a sender varies its frame rate. Instead every source is anchored at the
local arrival time of its first frame, and later frames keep the sender's spacing from
there, following slow clock drift (``SourceClock``). A publisher's tracks are then put on
one clock by the sender's own wall time (RTCP sender reports, ``PublisherClock``): first
arrivals differ by whatever the receiver held each track back (aiortc holds audio in its
jitter buffer, not video), and that difference must not reach the file. ``MediaClock``
turns those wall times into media time: seconds since the recording's first accepted
frame, minus the paused spans. The classes are pure (no I/O, no threads, no clock
reads): callers pass the times in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction

from recorder.media.encoded import OPUS_LOOKAHEAD_SECONDS

# A frame whose sender time is this far ahead of where its arrival puts it, or this far
# behind the previous frame's, is not the same timeline any more (a new sender or SSRC,
# an encoder restart): the mapping restarts at the frame's arrival. A frame this late is
# only late (a stall in the sender, the network or this process): its RTP time still
# says where it belongs, so it moves nothing, unless a whole window is that late.
REANCHOR_SECONDS = 1.0
# Sender and receiver clocks run at slightly different rates (100 ppm is common: 0.36 s
# an hour), and a first frame may have been unusually late. So the mapping follows the
# earliest arrivals: over each window, the least late frame says how far off it is; past
# the tolerance it moves by at most one step, small enough for the audio mixer to absorb
# without a click (it snaps up to 40 ms) and fast enough for 5000 ppm.
SLEW_WINDOW_SECONDS = 2.0
SLEW_TOLERANCE_SECONDS = 0.02
SLEW_STEP_SECONDS = 0.01
# Every frame of a window later than this (well inside the 0.25 s the encoders wait):
# the delay grew for good (a slower path, a sender that fell behind), and slewing would
# leave minutes of frames later than their place; the mapping moves at once.
LATE_SECONDS = 0.1
# The rate is fitted over the least late frame of each window for the last few minutes,
# once there are this many windows spanning this long; a window further off the line
# than the outlier limit is not taken in (three in a row: the line is fitted again); no
# clock is trusted further off than 1 %.
FIT_WINDOWS = 150
FIT_MIN_WINDOWS = 5
FIT_MIN_SECONDS = 8.0
FIT_OUTLIER_SECONDS = 0.05
FIT_REFIT_WINDOWS = 3
MAX_RATE_ERROR = 0.01


def with_the_sound(sound_at: float, sound_ntp: float, picture_ntp: float) -> float:
    """Where a picture goes, on any timeline, against a sound at ``sound_at``: by the two
    frames' sender times, plus the Opus lookahead (the sound of an RTP time is heard 6.5 ms
    after it). Both captures place pictures with it."""
    return sound_at + (picture_ntp - sound_ntp) + OPUS_LOOKAHEAD_SECONDS


@dataclass(frozen=True, slots=True)
class SenderTime:
    """What the receiver tap puts in a decoded frame's ``opaque``: the sender's wall time
    (seconds, by its latest RTCP sender report) of that frame."""

    ntp: float


def sender_ntp(frame: object) -> float | None:
    """The sender's wall time a receiver tap stamped on a decoded frame, if it did."""
    stamp = getattr(frame, "opaque", None)
    return stamp.ntp if isinstance(stamp, SenderTime) else None


class _RateFit:
    """The sender clock's rate against ours, from the least late frame of each window.

    Lateness (arrival minus sender time) of those frames lies on a line whose slope is
    the rate difference; a least-squares fit over the last few minutes of windows reads
    it to a few ppm. A window far off the line (a stall, a burst of jitter) is left out.
    """

    def __init__(self) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=FIT_WINDOWS)
        self._rejected = 0  # windows off the line in a row

    def clear(self) -> None:
        self._points.clear()
        self._rejected = 0

    def add(self, seconds: float, lateness: float) -> float | None:
        """Note a window's least late frame; the fitted slope once there are enough.
        Windows off the line several times in a row mean the line was wrong (fitted
        while the sender or this process stalled): it is fitted again from there."""
        slope = self._slope()
        if slope is not None:
            s0, l0 = self._points[-1]
            if abs(l0 + slope * (seconds - s0) - lateness) > FIT_OUTLIER_SECONDS:
                self._rejected += 1
                if self._rejected < FIT_REFIT_WINDOWS:
                    return slope
                self.clear()
        self._rejected = 0
        self._points.append((seconds, lateness))
        return self._slope()

    def _slope(self) -> float | None:
        points = self._points
        if len(points) < FIT_MIN_WINDOWS or points[-1][0] - points[0][0] < FIT_MIN_SECONDS:
            return None
        n = len(points)
        mean_s = sum(p[0] for p in points) / n
        mean_l = sum(p[1] for p in points) / n
        sxx = sum((p[0] - mean_s) ** 2 for p in points)
        sxy = sum((p[0] - mean_s) * (p[1] - mean_l) for p in points)
        slope = sxy / sxx if sxx > 0 else 0.0
        return max(-MAX_RATE_ERROR, min(MAX_RATE_ERROR, slope))


class SourceClock:
    """Wall time of a source's frames: first arrival plus the sender's pts spacing, at
    the sender clock's measured rate.

    Network jitter and stalls move arrival times but not pts, so frames keep their true
    spacing. A sender's clock runs at its own rate (a microphone 0.5 % off is not rare):
    the rate is measured from the least late frame of each window (``ppm``) and the
    mapping follows it smoothly; what is left is slewed in small steps. It jumps only on
    an RTP discontinuity (pts far ahead of arrival, or stepping back), or when a whole
    window arrives later than ``reanchor_seconds`` (the sender's RTP clock stood still
    while time passed).
    """

    def __init__(self, reanchor_seconds: float = REANCHOR_SECONDS) -> None:
        self._reanchor = reanchor_seconds
        self._base: tuple[float, float] | None = None  # (pts seconds, wall) on the line
        self._scale = 1.0  # wall seconds per sender second
        self._last = 0.0  # pts seconds of the previous frame
        self._window_start = 0.0
        self._window_min = float("inf")  # least lateness seen in the current window
        self._raw_min = (0.0, float("inf"))  # (pts seconds, arrival - pts seconds) least
        self._fit = _RateFit()
        self.reanchors = 0

    @property
    def ppm(self) -> float:
        """How fast the sender's clock runs against ours, in parts per million."""
        return (1.0 / self._scale - 1.0) * 1e6

    def _map(self, seconds: float) -> float:
        assert self._base is not None
        base_seconds, base_wall = self._base
        return base_wall + (seconds - base_seconds) * self._scale

    def wall(self, pts: int | None, time_base: Fraction | None, arrival: float) -> float:
        if pts is None or time_base is None:
            return arrival
        # float arithmetic: a Fraction product per frame costs microseconds
        seconds = pts * time_base.numerator / time_base.denominator
        if (self._base is None or self._map(seconds) - arrival > self._reanchor
                or seconds < self._last - self._reanchor):
            if self._base is not None:
                self.reanchors += 1
            self._anchor(seconds, arrival)
            return arrival
        self._last = seconds
        self._window_min = min(self._window_min, arrival - self._map(seconds))
        if arrival - seconds < self._raw_min[1]:
            self._raw_min = (seconds, arrival - seconds)
        if arrival - self._window_start >= SLEW_WINDOW_SECONDS:
            self._close_window(seconds, arrival)
        return self._map(seconds)

    def _anchor(self, seconds: float, arrival: float) -> None:
        self._base, self._last = (seconds, arrival), seconds
        self._fit.clear()
        self._open_window(arrival)

    def _open_window(self, arrival: float) -> None:
        self._window_start, self._window_min = arrival, float("inf")
        self._raw_min = (0.0, float("inf"))

    def _close_window(self, seconds: float, arrival: float) -> None:
        error = self._window_min
        slope = self._fit.add(*self._raw_min)
        wall = self._map(seconds)
        if slope is not None:  # the line turns about this frame: no step in wall time
            self._base, self._scale = (seconds, wall), 1.0 + slope
        base_seconds, base_wall = self._base or (seconds, wall)
        if error > self._reanchor:  # late all window long: not a stall but a jump
            self.reanchors += 1
            self._fit.clear()
            base_wall += error
        elif error > LATE_SECONDS:  # the path got slower for good: follow it at once,
            base_wall += error  # or every frame would come after its place was encoded
        elif abs(error) > SLEW_TOLERANCE_SECONDS:
            base_wall += max(-SLEW_STEP_SECONDS, min(SLEW_STEP_SECONDS, error))
        self._base = (base_seconds, base_wall)
        self._open_window(arrival)


class PublisherClock:
    """Wall time of one publisher's frames, its sound as the reference.

    Audio keeps the sender's RTP spacing from its first arrival (a player plays sound
    back to back, so any step in its timestamps would move every later sound against
    the pictures). Video is placed against the latest audio frame by the two frames'
    sender clock times (RTCP SR) when both tracks have them: that is the sender's own
    lip sync, whatever the receiver held either track back. Without them video keeps
    its own RTP spacing from its first arrival. Both captures (transcoding and
    passthrough) place frames with it.
    """

    def __init__(self) -> None:
        self._tracks: dict[str, SourceClock] = {}
        self._audio: tuple[float, float] | None = None  # latest audio (NTP, wall)

    def wall(self, source_id: str, kind: str, pts: int | None, time_base: Fraction | None,
             ntp: float | None, arrival: float) -> float:
        clock = self._tracks.get(source_id)
        if clock is None:
            clock = self._tracks[source_id] = SourceClock()
        own = clock.wall(pts, time_base, arrival)
        if kind == "audio":
            self._audio = None if ntp is None or pts is None else (ntp, own)
            return own
        if ntp is not None and self._audio is not None:
            audio_ntp, audio_wall = self._audio
            return with_the_sound(audio_wall, audio_ntp, ntp)
        return own

    def forget(self, source_id: str) -> None:
        """The source left: a source of that id later starts a mapping of its own."""
        self._tracks.pop(source_id, None)

    def ppm(self, source_id: str) -> float | None:
        """The measured rate of the source's clock against ours (None: no such source)."""
        clock = self._tracks.get(source_id)
        return None if clock is None else clock.ppm


class MediaClock:
    """Wall time to media time: since the first accepted frame, paused spans removed.

    While paused the media clock stands still; a frame whose wall time falls inside a
    paused span has no media time (it is cut). Resume continues at the media time where
    the pause began, so the file has no gap.
    """

    def __init__(self) -> None:
        self.start: float | None = None
        self._spans: list[tuple[float, float]] = []  # closed paused spans, wall times
        self._paused_since: float | None = None
        self._paused_total = 0.0  # sum of the closed spans

    @property
    def started(self) -> bool:
        return self.start is not None

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    def begin(self, wall: float) -> None:
        if self.start is None:
            self.start = wall

    def pause(self, at: float) -> None:
        if self._paused_since is None:
            self._paused_since = at

    def resume(self, at: float) -> None:
        since = self._paused_since
        if since is None:
            return
        self._paused_since = None
        if self.start is None or at <= self.start:
            return  # nothing was recorded yet: there is no span to cut
        since = max(since, self.start)
        if at > since:
            self._spans.append((since, at))
            self._paused_total += at - since

    def media_time(self, wall: float) -> float | None:
        """Media time of a frame at ``wall``; None before the start or inside a pause."""
        if self.start is None:
            return None
        if self._paused_since is not None and wall >= self._paused_since:
            return None
        cut = 0.0
        # Spans are few (one per pause) and ordered, and most frames are after the last.
        if self._spans and wall >= self._spans[-1][1]:
            cut = self._paused_total
        else:
            for begin, end in self._spans:
                if wall >= end:
                    cut += end - begin
                elif wall >= begin:
                    return None
                else:
                    break
        return wall - self.start - cut

    def cuts_before(self, wall: float) -> int:
        """How many paused spans end at or before ``wall``: frames of the same count are
        on one uncut stretch of the recording."""
        return sum(1 for _, end in self._spans if end <= wall)

    def now(self, at: float) -> float:
        """Media time reached at ``at`` (frozen while paused, 0 before the start)."""
        if self.start is None:
            return 0.0
        if self._paused_since is not None:
            at = max(self._paused_since, self.start)
        return max(0.0, at - self.start - self._paused_total)
