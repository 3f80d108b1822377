"""Logging for journald: one line per event on stderr.

Messages carry strings clients chose (room ids, user ids, metadata, track names...): the
formatter escapes control characters in every formatted message (`\\n`, `\\x1b`), so a
client can neither start a forged log line nor send escape sequences to an operator's
terminal, and no call site has to remember to. Tracebacks, appended after the message, stay
as Python prints them (see docs/security.md, "What users are shown").

aiohttp logs a client's malformed HTTP (answered 400) at ERROR with a traceback; that is the
client's mistake, not ours, so it becomes one warning line without the traceback.
"""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import HttpProcessingError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 controls, DEL and C1 controls, plus the Unicode line and paragraph separators
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7f, 0xa0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
                 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_controls(text: str) -> str:
    """`text` with every control character written as a Python-style escape."""
    return text.translate(_ESCAPES)


class EscapingFormatter(logging.Formatter):
    """Escapes control characters in the formatted message, not in the traceback after it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


class _ClientProtocolErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: bad HTTP request ({exc.message})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_ClientProtocolErrors())
