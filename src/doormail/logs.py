"""The service's log (SPEC section 1): its level, its format (text for a console, JSON lines for
log collectors), and the libraries whose per-request lines are kept to debug level. What is
logged is decided where it happens: one line per event taken and per mail sent, failed or
expired, and every warning."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal, get_args

__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "LogFormat", "LogLevel", "configure"]

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# httpx logs every request at INFO: a camera polled for snapshots (or an intercom's log
# followed) made 1,141 of 1,225 lines in 9 minutes and pushed the warnings off the screen.
PER_REQUEST_LOGGERS = ("httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: LogLevel = "info", form: LogFormat = "text") -> None:
    """Send the log to stderr at `level` in `form`; per-request lines only at debug level."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
