"""The request log: one line per sync, as an HTTP server's access log has one per request.

The hub calls :func:`synced` once a sync has its answer. The record goes to the
``backboneio.requests`` logger at INFO (WARNING for a 5xx the server meant,
such as ``Unavailable`` or ``Timeout``; ERROR for an unexpected exception,
whose traceback the ``backboneio`` logger has just written), with the fields
of :data:`FIELDS` as attributes, so a formatter of your own can use them.

``backboneio serve`` sets up logging with :func:`configure`: ``text``
(``asctime name level message``, the lines it always printed) or ``json``
(one object per line, :class:`JSONFormatter`), written by a :class:`Writer`.
An application that calls ``backboneio.listen`` configures logging itself, as
with any library.

Why a writer of our own: inside a busy server a line through the standard
logging machinery (a ``LogRecord`` of some 25 attributes, the handler's lock,
``time.strftime``, %-formatting, a ``write`` and a ``flush``) cost 34 µs of
CPU (11 % of a create), three times what the same call costs in a tight loop,
since between two syncs the rest of the server has pushed that code and data
out of the caches (docs/benchmarks.md). So while the logging setup is still
the one :func:`configure` made, a successful or refused sync (INFO) only
appends a tuple to the writer's queue; the writer formats the queued lines
in a batch, with the time's text cached per second, and writes them with one
``write`` at most every :attr:`Writer.interval` seconds (about 5 µs a line
in all). Any other record (a
warning, a traceback, a request line at WARNING or ERROR) first writes out
what is queued, then itself, so lines stay in order; ``logging.shutdown``
(at exit) and :meth:`Writer.flush` write out the rest. Once anyone changes
the setup (a handler or filter on these loggers, another formatter, a wrapped
``Logger.callHandlers``), queued lines become ordinary records handled by
``logging`` as usual.
"""

from __future__ import annotations

import collections
import datetime
import logging
import sys
import threading
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
    writer = _writer
    if level == logging.INFO and writer is not None:
        writer.queue.append((time.time(), backend, method, model_id, status, name, ms, sid))
        if len(writer.queue) == 1:
            writer.wake()
        elif len(writer.queue) >= writer.max_queued:
            writer.flush()
        return
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


def _record(entry: tuple[Any, ...]) -> logging.LogRecord:
    """The record :func:`synced` would have logged for a queued line."""
    created, backend, method, model_id, status, name, ms, sid = entry
    record = log.makeRecord(
        log.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %s %s%s %.1fms sid=%s",
        (backend, _text(method), _text(model_id), status, f" {name}" if name else "", ms, sid),
        None,
        extra={
            "backend": backend,
            "method": method,
            "id": model_id,
            "status": status,
            "error": name,
            "ms": round(ms, 3),
            "sid": sid,
        },
    )
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


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

    def line(self, entry: tuple[Any, ...], clock: _Clock) -> str:
        """A queued request's line, as :meth:`format` writes its record."""
        created, backend, method, model_id, status, name, ms, sid = entry
        message = (
            f"{backend} {_text(method)} {_text(model_id)} {status}"
            f"{' ' + name if name else ''} {ms:.1f}ms sid={sid}"
        )
        return orjson.dumps(
            {
                "time": clock.iso(created),
                "level": "INFO",
                "logger": log.name,
                "message": message,
                "backend": backend,
                "method": method,
                "id": model_id,
                "status": status,
                "error": name,
                "ms": round(ms, 3),
                "sid": sid,
            },
            default=str,
            option=orjson.OPT_APPEND_NEWLINE,
        ).decode()


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, with the time's text computed once per second."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self.clock = _Clock()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return f"{self.clock.local(record.created)},{int(record.msecs):03d}"

    def line(self, entry: tuple[Any, ...], clock: _Clock) -> str:
        """A queued request's line, as :meth:`format` writes its record."""
        created, backend, method, model_id, status, name, ms, sid = entry
        msecs = int((created - int(created)) * 1000)
        return (
            f"{clock.local(created)},{msecs:03d} {log.name} INFO {backend} {_text(method)} "
            f"{_text(model_id)} {status}{' ' + name if name else ''} {ms:.1f}ms sid={sid}\n"
        )


class _Clock:
    """A time's text, cached for the second it is in."""

    def __init__(self) -> None:
        self._local: tuple[int, str] = (-1, "")
        self._iso: tuple[int, str] = (-1, "")

    def local(self, created: float) -> str:
        second = int(created)
        if self._local[0] != second:
            self._local = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
        return self._local[1]

    def iso(self, created: float) -> str:
        second = int(created)
        if self._iso[0] != second:
            text = datetime.datetime.fromtimestamp(second, tz=datetime.timezone.utc)
            self._iso = (second, text.strftime("%Y-%m-%dT%H:%M:%S"))
        return f"{self._iso[1]}.{int((created - second) * 1000):03d}Z"


class Writer(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs: records written at once, request
    lines queued by :func:`synced` and written in batches (see the module's
    docstring). ``interval``: the most a queued line waits; ``max_queued``: a
    batch written at once when that many are queued."""

    def __init__(
        self,
        stream: IO[str],
        formatter: TextFormatter | JSONFormatter,
        interval: float = 0.1,
        max_queued: int = 1000,
    ) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self.own_formatter = formatter
        self.interval = interval
        self.max_queued = max_queued
        self.queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self.clock = _Clock()
        self._wakeup = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False

    def wake(self) -> None:
        """Have the queue written within :attr:`interval` seconds."""
        if self._flusher is None:
            # A green thread under `backboneio serve` (threading is monkey-patched).
            self._flusher = threading.Thread(
                target=self._flush_loop, name="backboneio-request-log", daemon=True
            )
            self._flusher.start()
        self._wakeup.set()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wakeup.wait()
            self._wakeup.clear()
            time.sleep(self.interval)
            try:
                self.flush()
            except Exception:  # a handler of someone else's failed; the next batch still goes
                if logging.raiseExceptions:
                    sys.excepthook(*sys.exc_info())

    def emit(self, record: logging.LogRecord) -> None:
        if self.queue:
            self._write_queued()
        super().emit(record)

    def flush(self) -> None:
        if self.queue:
            with self.lock:  # type: ignore[union-attr]
                self._write_queued()
        super().flush()

    def close(self) -> None:
        global _writer
        self.flush()
        self._closed = True
        if _writer is self:
            _writer = None  # synced() logs through `logging` again
        self._wakeup.set()
        super().close()

    def _write_queued(self) -> None:
        queue, batch = self.queue, []
        for _ in range(len(queue)):
            batch.append(queue.popleft())
        if not self._plain():
            # Someone changed the setup: the lines are records like any other.
            for entry in batch:
                record = _record(entry)
                if log.isEnabledFor(logging.INFO):
                    log.handle(record)
            return
        line = self.own_formatter.line
        clock = self.clock
        try:
            # One write for the batch (StreamHandler.emit makes two per record, and flushes).
            self.stream.write("".join([line(entry, clock) for entry in batch]))
            self.stream.flush()
        except Exception:
            self.handleError(_record(batch[-1]))

    def _plain(self) -> bool:
        """Whether a request's record would reach this handler alone, to be
        formatted by its own formatter."""
        root = logging.root
        return (
            # An integration that patches `logging` (Sentry's does) sees every record.
            logging.Logger.callHandlers is _CALL_HANDLERS
            and logging.Logger.handle is _HANDLE
            and self.formatter is self.own_formatter
            and not self.filters
            and not log.handlers
            and not log.filters
            and log.propagate
            and not root.filters
            and root.handlers == [self]
            and self.level <= logging.INFO
        )


_writer: Writer | None = None
_CALL_HANDLERS = logging.Logger.callHandlers
_HANDLE = logging.Logger.handle


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
    global _writer
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk for the caller's file and line
    writer = Writer(stream or sys.stderr, JSONFormatter() if fmt == "json" else TextFormatter())
    # basicConfig(force=True) closes the handlers it replaces: a writer's queue is written first.
    logging.basicConfig(level=level.upper(), handlers=[writer], force=True)
    _writer = writer


def flush() -> None:
    """Write out the request lines still queued (``backboneio serve`` calls it
    before its "stopped" line; ``logging.shutdown`` at exit does it anyway)."""
    if _writer is not None:
        _writer.flush()
