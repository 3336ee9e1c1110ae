"""Log output: plain text for a terminal, or one JSON object per line (`LOG_FORMAT=json`) for a
log collector."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """`time`, `level`, `logger`, `message`; with an exception its type and the frames it went
    through, but never its text: a driver's or a library's exception message can carry SQL
    parameters, a request or what a person wrote."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            line["exc_type"] = _name(kind)
            line["traceback"] = "".join(traceback.format_tb(tb))
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False)


def _name(kind: type[BaseException]) -> str:
    return kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"


def configure_logging(format: str, level: int | str = logging.INFO) -> None:
    """Send the root logger's records to stderr in `format` ("text" or "json"); a ValueError
    names the choices."""
    if format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
