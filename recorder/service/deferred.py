"""Deferred transcodes on this node: queued after the as-received capture, run in child
processes.

Design note. A `transcode: deferred` recording is first captured as received (passthrough
files, every publisher as it sent) in ``{local_path}/live/`` (cheap: no encoder). When that
capture finishes, the service hands the finished event here instead of describing the
files: the job (sources, offsets, the requested format, quality and layout) is written next
to them as ``live/job.json``, and a child process (:mod:`recorder.media.transcode_child`,
nice 19 and SCHED_IDLE) makes the outputs. At most RECORDER_DEFERRED_CONCURRENCY children
run at once (a semaphore); the recording stays `processing` until its outputs are described
and completed through the same path as a live recording's files, and only then are the
as-received files deleted: until that moment they are what a failed or interrupted
transcode starts again from.

Drain stops running children (killed, outputs left half-written) and starts no new ones;
the recordings stay `processing` in `processing:{node_id}` and :meth:`resume` finds their
job files after the restart. A child that fails fails the recording (`transcode: ...`)
with the as-received files kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Final

from recorder.core.models import RecordingState, Status, Transcode
from recorder.core.presets import Format, Layout, Quality
from recorder.media.transcode_job import (
    AS_RECEIVED_FOLDER,
    JOB_FILE,
    TranscodeJob,
    TranscodeResult,
    source_of,
)
from recorder.room import messages as msg

logger = logging.getLogger(__name__)

CHILD_MODULE: Final = "recorder.media.transcode_child"
RESULT_FILE: Final = "result.json"
KILL_GRACE_SECONDS: Final = 5.0

Complete = Callable[[msg.CaptureFinished], Awaitable[None]]
Fail = Callable[[str, str], Awaitable[None]]


def captured_as_received(event: msg.CaptureFinished) -> bool:
    """Whether finished files are a deferred recording's as-received sources (not its outputs)."""
    return bool(event.files) and all(Path(f.path).parent.name == AS_RECEIVED_FOLDER
                                     for f in event.files)


def as_received_capture(command: msg.StartCapture) -> msg.StartCapture:
    """The first part of a deferred recording: every publisher as received (`source`,
    `tracks`), in Matroska, under ``live/``; the requested preset is made after stop."""
    return replace(command, directory=str(Path(command.directory) / AS_RECEIVED_FOLDER),
                   file_name="", format=Format.MKV, quality=Quality.SOURCE,
                   layout=Layout.TRACKS, as_received=True)


def as_received_folder(state: RecordingState) -> Path:
    return Path(state.local_path) / AS_RECEIVED_FOLDER


def job_for(state: RecordingState, event: msg.CaptureFinished) -> TranscodeJob:
    """The transcode of `state`'s request over the as-received files `event` reports."""
    return TranscodeJob(
        recording_id=state.recording_id, directory=state.local_path, format=state.format,
        quality=state.quality, layout=state.layout,
        duration_seconds=round(event.duration_seconds, 3),
        sources=tuple(source_of(Path(f.path), f.offset_seconds, f.duration_seconds,
                                f.clock_ppm) for f in event.files),
        received_frames=event.frames,
        tracks=tuple(event.tracks),
    )


class DeferredTranscodes:
    """`complete(event)` describes and completes finished outputs (the service's live path);
    `fail(recording_id, error)` fails a recording."""

    def __init__(self, concurrency: int, complete: Complete, fail: Fail,
                 python: str = sys.executable) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._complete = complete
        self._fail = fail
        self._python = python
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # the states of the recordings queued or transcoding, as the store had them: the
        # node writes them back if the store loses them (docs/operations.md)
        self._states: dict[str, RecordingState] = {}
        self._children: dict[str, asyncio.subprocess.Process] = {}
        self._stopped = False

    def owns(self, recording_id: str) -> bool:
        """A transcode of it is queued or running here."""
        return recording_id in self._tasks

    @property
    def running(self) -> int:
        return len(self._children)

    def states(self) -> list[RecordingState]:
        """The recordings queued or transcoding here (`processing`), as the store had them."""
        return [state for rid, state in self._states.items() if rid in self._tasks]

    async def submit(self, state: RecordingState, event: msg.CaptureFinished) -> None:
        """Keep the job beside the as-received files, then run it (unless draining).

        A job already there (the as-received files came back through crash recovery or a takeover,
        which know nothing of offsets) keeps its sources; the request comes from `state`."""
        job = job_for(state, event)
        path = as_received_folder(state) / JOB_FILE
        earlier = await asyncio.to_thread(_saved_job, path)
        if earlier is not None and {s.path for s in earlier.sources} == {
                s.path for s in job.sources}:
            job = replace(earlier, directory=job.directory, format=job.format,
                          quality=job.quality, layout=job.layout)
        await asyncio.to_thread(job.save, path)
        logger.info("recording %s: as-received capture finished (%d file(s), %.2f s); transcode to "
                    "%s %s %s queued", state.recording_id, len(job.sources),
                    job.duration_seconds, job.layout.value, job.quality.value, job.format.value)
        self._start(job, state)

    async def resume(self, states: Iterable[RecordingState]) -> int:
        """After a restart: run again the transcodes of `processing` recordings left
        without outputs. Returns how many were found."""
        found = 0
        for state in states:
            if (state.transcode is not Transcode.DEFERRED or state.status is not Status.PROCESSING
                    or state.files or self.owns(state.recording_id)):
                continue
            path = as_received_folder(state) / JOB_FILE
            try:
                job = TranscodeJob.from_json(await asyncio.to_thread(path.read_bytes))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("recording %s: deferred transcode not resumed: %s",
                               state.recording_id, exc)
                continue
            found += 1
            logger.info("recording %s: resuming its deferred transcode after a restart",
                        state.recording_id)
            self._start(job, state)
        return found

    def _start(self, job: TranscodeJob, state: RecordingState) -> None:
        rid = job.recording_id
        if self._stopped:
            logger.info("recording %s: draining: its transcode runs after the restart", rid)
            return
        if rid in self._tasks:
            return
        task = asyncio.create_task(self._run(job), name=f"transcode-{rid[:8]}")
        self._tasks[rid] = task
        self._states[rid] = state
        task.add_done_callback(lambda _: self._ended(rid))

    def _ended(self, recording_id: str) -> None:
        self._tasks.pop(recording_id, None)
        self._states.pop(recording_id, None)

    async def stop(self) -> None:
        """Drain: no new transcodes; running children are stopped (their recordings stay
        `processing` and resume after the restart). Safe to call twice."""
        self._stopped = True
        for rid, child in list(self._children.items()):
            logger.info("recording %s: stopping its transcode for the shutdown", rid)
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=KILL_GRACE_SECONDS)
            for rid, child in list(self._children.items()):
                logger.warning("recording %s: transcode did not stop: killed", rid)
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
            if pending:
                await asyncio.wait(pending)

    async def _run(self, job: TranscodeJob) -> None:
        rid = job.recording_id
        folder = Path(job.directory) / AS_RECEIVED_FOLDER
        result_path = folder / RESULT_FILE
        try:
            async with self._slots:
                if self._stopped:
                    return
                await asyncio.to_thread(result_path.unlink, missing_ok=True)
                child = await asyncio.create_subprocess_exec(
                    self._python, "-m", CHILD_MODULE, str(folder / JOB_FILE), str(result_path),
                    stdin=asyncio.subprocess.DEVNULL)
                self._children[rid] = child
                logger.info("recording %s: transcode started (pid %d)", rid, child.pid)
                try:
                    code = await child.wait()
                finally:
                    del self._children[rid]
            if self._stopped:
                logger.info("recording %s: transcode stopped (exit %s); it runs again after "
                            "the restart", rid, code)
                return
            await self._finish(job, code, result_path)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the recording hanging silently
            logger.exception("recording %s: transcode not finished", rid)
            await self._fail(rid, f"transcode: {type(exc).__name__}: {exc}")

    async def _finish(self, job: TranscodeJob, code: int, result_path: Path) -> None:
        rid = job.recording_id
        result: TranscodeResult | None = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            result = TranscodeResult.from_json(await asyncio.to_thread(result_path.read_bytes))
        if code != 0 or result is None or result.error is not None or not result.files:
            error = (result.error if result is not None and result.error
                     else "no output" if result is not None and code == 0
                     else f"the transcoding process ended with {_exit(code)}")
            logger.error("recording %s: transcode failed: %s (as-received files kept in %s)", rid,
                         error, Path(job.directory) / AS_RECEIVED_FOLDER)
            await self._fail(rid, f"transcode: {error}")
            return
        logger.info("recording %s: transcoded %d file(s) in %.1f s (%.1f s CPU); frames "
                    "received %d, written %d, dropped %d", rid, len(result.files),
                    result.wall_seconds, result.cpu_seconds, result.frames.received,
                    result.frames.written, result.frames.dropped)
        first = job.received_frames
        event = msg.CaptureFinished(
            recording_id=rid,
            files=[msg.FileResult(f.path, f.kind, f.duration_seconds, f.offset_seconds)
                   for f in result.files],
            duration_seconds=result.duration_seconds,
            frames=replace(first, dropped=first.dropped + result.frames.dropped),
            tracks=list(job.tracks),
        )
        await self._complete(event)
        # the outputs are described (they exist and decoded in the child): the sources go
        await asyncio.to_thread(shutil.rmtree, Path(job.directory) / AS_RECEIVED_FOLDER, True)
        logger.info("recording %s: as-received files of the deferred transcode deleted", rid)


def _saved_job(path: Path) -> TranscodeJob | None:
    try:
        return TranscodeJob.from_json(path.read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"
