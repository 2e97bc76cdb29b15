"""The middleware stack: order, method scopes, errors, answers, timeouts."""

from __future__ import annotations

from typing import Any

import backboneio
import pytest
from backboneio import BadRequest, NotFound, Request, SyncTimeout, runner

SETTINGS = """
BACKENDS = {
    "context": {"middleware": ["apps.middleware.record_context"]},
    "ordered": {"middleware": ["apps.middleware.tag_first", "apps.middleware.tag_second"]},
}
"""


def req(method: str = "create", **model: Any) -> Request:
    return Request(method=method, model=model)


def test_middleware_runs_in_the_order_it_was_added():
    seen = []
    backend = backboneio.create_backend("b")
    backend.use(lambda req, res, next: (seen.append(1), next()))
    backend.use(lambda req, res, next: (seen.append(2), next()))
    backend.use(lambda req, res, next: res.end(seen.copy()))
    assert backend.handle(req()) == [1, 2]


def test_method_scoped_middleware_only_runs_for_those_methods():
    backend = backboneio.create_backend("b")
    backend.use("create", "update", lambda req, res, next: res.end("write"))
    backend.read(lambda req, res, next: res.end("read"))
    backend.delete(lambda req, res, next: res.end("delete"))
    assert backend.handle(req("create")) == "write"
    assert backend.handle(req("update")) == "write"
    assert backend.handle(req("read")) == "read"
    assert backend.handle(req("delete")) == "delete"
    assert backend.handle(req("patch", id=1)) == {"id": 1}


def test_reaching_the_bottom_answers_the_request_model():
    backend = backboneio.create_backend("b", lambda req, res, next: next())
    assert backend.handle(req(text="echo")) == {"text": "echo"}


def test_next_with_an_error_skips_to_error_middleware():
    calls = []
    backend = backboneio.create_backend("b")
    backend.use(lambda req, res, next: next(NotFound("gone")))
    backend.use(lambda req, res, next: calls.append("skipped"))

    def handler(err, req, res, next):
        res.end({"handled": type(err).__name__})

    backend.use(handler)
    assert backend.handle(req()) == {"handled": "NotFound"}
    assert calls == []


def test_parameters_with_defaults_do_not_make_an_error_middleware():
    def with_option(req, res, next, prefix="seen:"):
        res.end(prefix + req.method)

    assert backboneio.create_backend("b", with_option).handle(req()) == "seen:create"


def test_error_middleware_does_not_run_without_an_error():
    def handler(err, req, res, next):
        res.end("error path")

    backend = backboneio.create_backend("b", handler, lambda req, res, next: res.end("normal"))
    assert backend.handle(req()) == "normal"


def test_an_exception_in_middleware_becomes_next_with_that_error():
    def broken(req, res, next):
        raise BadRequest("bad model")

    backend = backboneio.create_backend("b", broken)
    with pytest.raises(BadRequest, match="bad model"):
        backend.handle(req())


def test_error_middleware_can_pass_the_error_on():
    seen = []

    def log_errors(err, req, res, next):
        seen.append(str(err))
        next(err)

    backend = backboneio.create_backend("b")
    backend.use(lambda req, res, next: next("plain string error"))
    backend.use(log_errors)
    # A plain string is private (it could be a driver's message): a RuntimeError.
    with pytest.raises(RuntimeError, match="plain string error"):
        backend.handle(req())
    assert seen == ["plain string error"]


def test_only_the_first_answer_counts():
    def twice(req, res, next):
        res.end("first")
        res.end("second")
        res.error(BadRequest("late"))

    assert backboneio.create_backend("b", twice).handle(req()) == "first"


def test_calling_next_twice_runs_the_rest_once():
    count = []

    def twice(req, res, next):
        next()
        next()

    backend = backboneio.create_backend("b", twice, lambda req, res, next: count.append(1))
    backend.use(lambda req, res, next: res.end(len(count)))
    with pytest.raises(SyncTimeout):
        backend.handle(req(), timeout=0.05)
    assert count == [1]


def test_a_middleware_may_answer_later_from_another_green_thread():
    def later(req, res, next):
        runner.spawn(lambda: (runner.sleep(0.01), res.end("later")))

    assert backboneio.create_backend("b", later).handle(req(), timeout=5) == "later"


def test_a_middleware_that_never_answers_times_out():
    backend = backboneio.create_backend("b", lambda req, res, next: None)
    with pytest.raises(SyncTimeout):
        backend.handle(req(), timeout=0.05)


def test_use_refuses_unknown_methods_and_non_callables():
    backend = backboneio.create_backend("b")
    with pytest.raises(ValueError, match="frobnicate"):
        backend.use("frobnicate", lambda req, res, next: None)
    with pytest.raises(TypeError):
        backend.use("create")
    with pytest.raises(TypeError):
        backend.use(42)


def test_emit_refuses_unknown_events():
    with pytest.raises(ValueError, match="exploded"):
        backboneio.create_backend("b").emit("exploded", {})


def test_memory_store_as_a_middleware():
    backend = backboneio.create_backend("b", backboneio.stores.memory())
    created = backend.handle(req(text="x"))
    assert backend.handle(Request("read", {"id": created["id"]})) == created
    assert backend.handle(Request("read", {})) == [created]


# -- over the network: what a middleware sees -----------------------------------


def test_middleware_sees_the_request_context(start_server, connect):
    srv = start_server(SETTINGS)
    client = connect(srv.url, "context", headers={"User-Agent": "context-test/1"})
    client.listen("room-9")
    seen = client.ok("read", {"id": 5}, {"data": {"q": 1}})
    assert seen["method"] == "read"
    assert seen["model"] == {"id": 5}
    assert seen["options"] == {"data": {"q": 1}}
    assert seen["backend"] == "context"
    assert seen["channel"] == "room-9"
    assert seen["sid"] == client.sio.get_sid("/context")
    assert seen["has_environ"] is True
    assert seen["user_agent"] == "context-test/1"
    assert seen["identity"] is None
    assert seen["id_attribute"] == "id"


def test_settings_middleware_runs_in_order_before_the_store(start_server, connect):
    srv = start_server(SETTINGS)
    client = connect(srv.url, "ordered")
    created = client.ok("create", {"text": "x"})
    assert created["trail"] == ["first", "second"]
    assert client.ok("read", {"id": created["id"]})["trail"] == ["first", "second"]
