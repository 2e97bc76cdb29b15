"""Middleware the test settings modules name by dotted path."""

from __future__ import annotations

import time
from typing import Any

from backboneio import NotFound


def record_context(req: Any, res: Any, next: Any) -> None:
    """Answers with what a middleware can see of the request."""
    res.end(
        {
            "method": req.method,
            "model": req.model,
            "options": req.options,
            "backend": req.backend,
            "channel": req.channel,
            "sid": req.sid,
            "has_environ": "REMOTE_ADDR" in req.environ,
            "user_agent": req.environ.get("HTTP_USER_AGENT"),
            "identity": req.identity,
            "id_attribute": req.id_attribute,
        }
    )


def tag_first(req: Any, res: Any, next: Any) -> None:
    req.model.setdefault("trail", []).append("first")
    next()


def tag_second(req: Any, res: Any, next: Any) -> None:
    req.model.setdefault("trail", []).append("second")
    next()


def raise_on_boom(req: Any, res: Any, next: Any) -> None:
    if req.model.get("boom"):
        raise RuntimeError("database password is hunter2")
    next()


def not_found_on_missing(req: Any, res: Any, next: Any) -> None:
    if req.model.get("missing"):
        next(NotFound("nothing here", hint="try another"))
        return
    next()


def never_answer(req: Any, res: Any, next: Any) -> None:
    """Forgets to call next() or res.end(): the sync timeout must answer."""


def slow(req: Any, res: Any, next: Any) -> None:
    # time.sleep is cooperative here: `backboneio serve` monkey-patches first.
    time.sleep(float(req.model.get("seconds", 1.5)))
    next()


def only_create(req: Any, res: Any, next: Any) -> None:
    req.model["create_only"] = True
    next()
