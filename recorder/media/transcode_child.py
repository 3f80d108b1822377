"""The process a deferred transcode runs in: ``python -m recorder.media.transcode_child``.

Why a process of its own: the transcode may take many times the recording's length on a
small node (that is the point of deferring it), and live recordings on the same node must
keep their CPU meanwhile. So before any thread starts, this process lowers its priority as
far as it goes (nice 19, and the ``SCHED_IDLE`` class where the kernel has it: it then
only gets cores nobody else wants); the encoder threads inherit that. A crash or a kill
of a codec takes down this process only, and the main process can stop it at any moment
(drain) and start it again later from the same job file.

Usage: ``python -m recorder.media.transcode_child JOB_JSON RESULT_JSON``; exit 0 with a
result, 1 with a result that carries ``error``, 2 for bad arguments.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path

from recorder.core.errors import MediaError
from recorder.core.frames import FrameCounts
from recorder.logs import EscapingFormatter
from recorder.media.transcode_job import TranscodeJob, TranscodeResult

logger = logging.getLogger(__name__)

NICENESS = 19
_PR_SET_PDEATHSIG = 1


def lower_priority() -> str:
    """Nice 19 and SCHED_IDLE for this thread and every thread it starts; what was set."""
    done: list[str] = []
    try:
        current = os.nice(0)
        os.nice(max(0, NICENESS - current))
        done.append(f"nice {os.nice(0)}")
    except OSError as exc:
        logger.warning("cannot lower the priority: %s", exc)
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        try:
            os.sched_setscheduler(0, idle, os.sched_param(0))
            done.append("SCHED_IDLE")
        except OSError as exc:
            logger.info("SCHED_IDLE not available: %s", exc)
    return ", ".join(done) or "unchanged"


def die_with_parent() -> None:
    """Linux: be killed when the main process dies, so a restarted node never finds a
    leftover transcode writing the same outputs as the one it starts again."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError) as exc:
        logger.info("no parent-death signal: %s", exc)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(job: TranscodeJob) -> TranscodeResult:
    """Transcode and read every output back; errors become a result with ``error``."""
    from recorder.media.transcode import describe_output, transcode

    started = time.monotonic()
    rid = job.recording_id
    try:
        capture, first = transcode(job)
        files = tuple(describe_output(f.path, f.kind, f.duration_seconds, f.offset_seconds)
                      for f in capture.files)
    except (MediaError, OSError) as exc:
        logger.error("recording %s: transcode failed: %s", rid, exc)
        return TranscodeResult(rid, (), 0.0, FrameCounts(), cpu_seconds(),
                               time.monotonic() - started, error=str(exc))
    frames = capture.frames
    result = TranscodeResult(rid, files, capture.duration_seconds, frames, cpu_seconds(),
                             time.monotonic() - started, extra={"first_frame_seconds": first})
    logger.info("recording %s: transcoded %d file(s), %.2f s of media in %.1f s "
                "(%.1f s CPU), frames %s", rid, len(files), result.duration_seconds,
                result.wall_seconds, result.cpu_seconds, frames)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m recorder.media.transcode_child JOB_JSON RESULT_JSON",
              file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)  # recorderd's line format, marked as this child's
    handler.setFormatter(EscapingFormatter(
        "%(asctime)s %(levelname)s %(name)s [transcode pid %(process)d]: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    die_with_parent()
    priority = lower_priority()
    job = TranscodeJob.from_json(Path(args[0]).read_text())
    logger.info("recording %s: transcoding %d live file(s) to %s %s %s (%s)",
                job.recording_id, len(job.sources), job.layout.value, job.quality.value,
                job.format.value, priority)
    result = run(job)
    out = Path(args[1])
    partial = out.with_name(out.name + ".part")
    partial.write_text(result.to_json())
    partial.replace(out)
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
