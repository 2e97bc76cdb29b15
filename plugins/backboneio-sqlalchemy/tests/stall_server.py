"""``backboneio serve`` with one extra plugin that holds the first create before its ack.

Usage: python stall_server.py PORT. The environment gives the database
(``STALL_URL``) and where the create is held (``STALL_AT``):

* ``stored`` -- in ``after_write``: the store has committed the model (and its
  idempotency key), nobody has been notified, the author has no answer;
* ``notified`` -- right after the change log delivered it: the other clients
  have the notification, the author still has no answer.

``STALL_KEYS=0`` turns the store's idempotency keys off (the control experiment).

The held green thread sleeps; the process prints ``STALLED`` and keeps
serving everyone else until the test kills it with SIGKILL, so the write is
lost between the database and its author exactly as in a crash.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from backboneio import runner

runner.monkey_patch()

from backboneio import hookimpl  # noqa: E402
from backboneio.app import build_server  # noqa: E402
from backboneio.changelog import Entry, MemoryChangeLog  # noqa: E402
from backboneio.settings import Settings  # noqa: E402

AT = os.environ["STALL_AT"]
held = False


def hold(where: str) -> None:
    global held
    if held:
        return
    held = True
    print(f"STALLED {where}", flush=True)
    time.sleep(600)  # a green sleep: only this request waits


class NotifiedLog(MemoryChangeLog):
    def append(self, *args: Any, **kwargs: Any) -> Entry:
        entry = super().append(*args, **kwargs)  # delivers before it returns
        if entry.method == "create":
            hold("after notifying")
        return entry


class Stall:
    @hookimpl
    def after_write(self, method: str) -> None:
        if AT == "stored" and method == "create":
            hold("after storing")

    @hookimpl
    def change_log(self, settings: Any) -> Any:
        return NotifiedLog() if AT == "notified" else None


if __name__ == "__main__":
    entry = {"store": "sqlalchemy", "url": os.environ["STALL_URL"]}
    if os.environ.get("STALL_KEYS") == "0":
        entry["idempotency_keys"] = False
    settings = Settings({"BACKENDS": {"todos": entry}})
    server = build_server(settings, extra_plugins=(Stall(),))
    sock = runner.listen_socket("127.0.0.1", int(sys.argv[1]), settings)
    runner.serve(
        server.app,
        sock=sock,
        settings=settings,
        on_ready=lambda url: print(f"backboneio serving on {url}", flush=True),
    )
