"""Logging set-up: one line per event, as text for people or JSON for log collectors."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

#: Record attributes that are not extras of ours: the standard ones, and `color_message`, the
#: copy of its message with terminal colour codes that uvicorn adds to its records (it would
#: put escape sequences into log files and the journal).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # An extra keeps its record on one line: a database driver's error text spans several
        # (SQLAlchemy adds "(Background on this error at: ...)" on a line of its own).
        extras = " ".join(
            f"{key}={' '.join(str(value).splitlines())}" for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        base = (f"{self.formatTime(record)} {record.levelname:<7} {record.name}: "
                f"{record.getMessage()}")
        text = f"{base} {extras}" if extras else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Instance(logging.Filter):
    """Names the gateway instance in every record (several instances share a log collector)."""

    name: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.name is not None:
            record.instance = self.name
        return True


_INSTANCE = _Instance()


def set_instance(name: str) -> None:
    """Name the instance in every log line from now on (known once the gateway has bound its
    HTTP port, when instance.name is empty)."""
    _INSTANCE.name = name


def configure(level: str = "INFO", fmt: str = "text", instance: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_INSTANCE)
    if instance is not None:
        set_instance(instance)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Access logs of the web server would drown device events; warnings still show.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # Migrations log every plugin they load at INFO; only their problems matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
