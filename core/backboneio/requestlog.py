"""The request log: one line per sync, as an HTTP server's access log has one per request.

The hub calls :func:`synced` once a sync has its answer. The record goes to the
``backboneio.requests`` logger at INFO (WARNING for a 5xx the server meant,
such as ``Unavailable`` or ``Timeout``; ERROR for an unexpected exception,
whose traceback the ``backboneio`` logger has just written), with the fields
of :data:`FIELDS` as attributes, so a formatter of your own can use them.

``backboneio serve`` sets up logging with :func:`configure`: ``text``
(``asctime name level message``, the lines it always printed) or ``json``
(one object per line, :class:`JSONFormatter`). An application that calls
``backboneio.listen`` configures logging itself, as with any library.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import orjson

log = logging.getLogger("backboneio.requests")

#: ``--log-level`` / ``LOG_LEVEL`` values (upper or lower case).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: ``--log-format`` / ``LOG_FORMAT`` values.
FORMATS = ("text", "json")
#: The attributes a request record carries (and the keys of its JSON object).
FIELDS = ("backend", "method", "id", "status", "error", "ms", "sid")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# Ids and method names come from clients: a long or multi-line one must not
# fill the console or forge a line of its own in the text format.
_MAX_TEXT = 80


def synced(
    backend: str,
    sid: str,
    args: tuple[Any, ...],
    answer: tuple[Any, ...],
    started: float,
    id_attribute: str,
) -> None:
    """Log the sync that ``args`` asked for and ``answer`` answered (``started``
    is its :func:`time.perf_counter`)."""
    error = answer[0] if answer else None
    if error is None and not log.isEnabledFor(logging.INFO):  # the cost when the log is off
        return
    ms = (time.perf_counter() - started) * 1000.0
    request = args[0] if len(args) == 1 and isinstance(args[0], Mapping) else {}
    method = request.get("method")
    model = request.get("model")
    model_id = None
    if error is None:
        status, name, level = 200, None, logging.INFO
        result = answer[1] if len(answer) > 1 else None
        if isinstance(result, Mapping):  # a create's id is the store's
            model_id = result.get(id_attribute)
    else:
        body = error.get("error") if isinstance(error, Mapping) else None
        body = body if isinstance(body, Mapping) else {}
        status, name = body.get("status", 500), body.get("name")
        # A 500 is an exception nobody raised on purpose (its traceback is
        # logged just before); other 5xx are the server saying it cannot.
        level = logging.INFO if status < 500 else logging.WARNING if status > 500 else logging.ERROR
        if not log.isEnabledFor(level):
            return
    if model_id is None and isinstance(model, Mapping):
        model_id = model.get(id_attribute)
    fields = {
        "backend": backend,
        "method": method,
        "id": model_id,
        "status": status,
        "error": name,
        "ms": round(ms, 3),
        "sid": sid,
    }
    log.log(
        level,
        "%s %s %s %s%s %.1fms sid=%s",
        backend,
        _text(method),
        _text(model_id),
        status,
        f" {name}" if name else "",
        ms,
        sid,
        extra=fields,
    )


def _text(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_TEXT or not text.isprintable() or " " in text or not text:
        return ascii(text[:_MAX_TEXT])
    return text


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``,
    ``logger``, ``message``, a request's :data:`FIELDS`, and ``traceback``
    when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["traceback"] = self.formatStack(record.stack_info)
        # default=str: a client's id may be any JSON value, a plugin's extra anything.
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every log record at ``level`` or above to ``stream`` (stderr) as
    ``fmt`` (``text`` or ``json``), replacing the root logger's handlers.

    For the process that serves (``backboneio serve``): records stop carrying
    their thread, process and source line, which neither format shows (a
    thread means little among green threads); the logging HOWTO's
    "Optimization" recipe, about a sixth of a line's cost.
    """
    if not isinstance(level, str) or level.upper() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk for the caller's file and line
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
