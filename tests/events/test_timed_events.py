"""The pure parts of timed events: the rate window, data-channel messages as events, cues
and their WebVTT text, the manifest against its schema."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from recorder.core.captions import CUE_SECONDS, Cue, chat_lines, cues, escape, vtt_block, within
from recorder.core.events import (
    MAX_EVENT_BYTES,
    EventCounts,
    RateWindow,
    from_channel,
)
from recorder.core.manifest import manifest
from recorder.core.models import FileInfo, PauseSpan
from recorder.core.tracks import PublisherSpan, TrackInfo
from recorder.room.event_log import EventLog, Outcome
from tests.support.manifests import check_manifest
from tests.support.states import make_state


def test_the_rate_window_admits_n_per_sliding_second() -> None:
    window = RateWindow(3)
    assert [window.admit(t) for t in (0.0, 0.1, 0.2, 0.3)] == [True, True, True, False]
    assert window.admit(1.05)  # 0.0 left the window
    assert not window.admit(1.06)
    assert window.admit(1.25)


def test_data_channel_messages_become_events_by_label() -> None:
    chat = from_channel("alice", "chat", "hi")
    assert chat is not None
    assert (chat.type, chat.user, chat.text, chat.channel) == ("chat", "alice", "hi", "chat")
    other = from_channel("alice", "telemetry", "x")
    assert other is not None
    assert (other.type, other.text, other.user) == ("message", "x", None)
    binary = from_channel("alice", "chat", b"\x00\xff")
    assert binary is not None
    assert binary.type == "message"
    assert base64.b64decode(binary.data) == b"\x00\xff"
    assert from_channel("alice", "chat", "é" * (MAX_EVENT_BYTES // 2 + 1)) is None  # bytes


def test_cues_last_4_s_or_until_the_next_message() -> None:
    made = list(cues([(1.0, "a", "one"), (2.5, "b", "two"), (9.0, "a", "three"),
                      (9.0, "b", "same instant")]))
    assert [(c.start, c.end) for c in made] == [(1.0, 2.5), (2.5, 2.5 + CUE_SECONDS),
                                               (9.0, 9.001), (9.0, 9.0 + CUE_SECONDS)]


def test_cue_text_is_escaped_and_cannot_end_the_cue() -> None:
    assert escape("a <b> & c\n\n--> d") == "a &lt;b&gt; &amp; c\n--&gt; d"
    cue = Cue(3661.5, 3662.25, "x>y", "hi")
    assert vtt_block(cue) == "\n01:01:01.500 --> 01:01:02.250\n<v x&gt;y>hi\n"


def test_a_files_cues_are_in_its_time_and_cut_to_it() -> None:
    made = [Cue(1.0, 5.0, "a", "early"), Cue(6.0, 10.0, "a", "inside"),
            Cue(11.0, 12.0, "a", "late")]
    assert list(within(made, offset=4.0, duration=7.0)) == [
        Cue(0.0, 1.0, "a", "early"), Cue(2.0, 6.0, "a", "inside")]


def test_chat_lines_skip_other_events_and_a_cut_last_line() -> None:
    lines = ['{"t":1,"type":"chat","user":"a","text":"x"}\n',
             '{"t":2,"type":"slide","data":{}}\n', '{"t":3,"type":"ch']
    assert list(chat_lines(lines)) == [(1.0, "a", "x")]


def test_the_event_log_counts_drops_and_flushes_lines(tmp_path: Path) -> None:
    now = [0.0]
    log = EventLog("rec", tmp_path, lambda: 12.3456, 2, clock=lambda: now[0])
    chat = from_channel("alice", "chat", "hi")
    assert log.offer(chat, "chat", recording=False) is Outcome.NOT_RECORDING
    assert log.offer(chat, "chat", recording=True) is Outcome.RECORDED
    assert log.offer(chat, "chat", recording=True) is Outcome.RECORDED
    assert log.offer(chat, "chat", recording=True) is Outcome.RATE
    assert log.offer(None, "chat", recording=True) is Outcome.TOO_LARGE
    assert not (tmp_path / "events.jsonl").exists()  # written by the next flush
    log.flush()
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [x["t"] for x in lines] == [12.346, 12.346]
    assert log.counts == {"chat": EventCounts(recorded=2, dropped=3)}
    assert log.close() == tmp_path / "events.jsonl"


def test_a_manifest_follows_the_schema() -> None:
    state = make_state()
    state.started_at = state.stopped_at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    state.files = [FileInfo(name="r.webm", kind="composite", size=10, sha256="ab" * 32,
                            duration_seconds=3.0, offset_seconds=0.0, s3_key="k/r.webm"),
                   FileInfo(name="chat.vtt", kind="captions", size=5, sha256="cd" * 32)]
    state.publishers = [PublisherSpan("alice", "camera", 0.0, 2.5,
                                      (TrackInfo("alice", "video", "vp8"),))]
    state.pauses = [PauseSpan(paused_at=state.started_at, position_seconds=1.0)]
    state.events = {"chat": EventCounts(recorded=1, dropped=2)}
    checked = check_manifest(manifest(state))
    assert checked["files"][1]["location"]["type"] == "local"
