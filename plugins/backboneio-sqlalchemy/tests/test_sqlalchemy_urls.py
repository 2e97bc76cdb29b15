"""URLs that name no driver get psycopg2; a missing driver says what to install; the gate."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import eventlet
import pytest
from backboneio.errors import ConfigurationError
from backboneio.testing import StoreClient
from backboneio_sqlalchemy import store
from backboneio_sqlalchemy.database import Gate, get_database, resolve_url
from eventlet.event import Event


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        ("postgresql://app@db/app", "postgresql+psycopg2://app@db/app"),
        ("postgresql://localhost/app", "postgresql+psycopg2://localhost/app"),
        ("postgres://u:pw@db:5433/app", "postgresql+psycopg2://u:pw@db:5433/app"),
        ("postgres+pg8000://u@db/app", "postgresql+pg8000://u@db/app"),
        ("postgresql+psycopg2://app@/app", "postgresql+psycopg2://app@/app"),
        # a driver the URL names is kept, even one the extra does not install
        ("postgresql+psycopg://app@/app", "postgresql+psycopg://app@/app"),
        ("sqlite:///app.sqlite3", "sqlite:///app.sqlite3"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_a_url_naming_no_driver_gets_psycopg2(given: str, resolved: str) -> None:
    assert resolve_url(given).render_as_string(hide_password=False) == resolved


def test_a_missing_driver_is_a_configuration_error_that_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a plugin installed without its [postgresql] extra meets: the
    # import of psycopg2 fails (None in sys.modules makes ``import`` raise).
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ConfigurationError) as info:
        store("postgresql://app:s3cret@db.invalid/app", "todos")
    message = str(info.value)
    assert "psycopg2" in message and "backboneio-sqlalchemy[postgresql]" in message
    assert "s3cret" not in message and "db.invalid" not in message


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_plain_postgres_urls_keep_models_in_postgresql(postgres: Any, scheme: str) -> None:
    url = postgres.url.replace("postgresql+psycopg2://", f"{scheme}://")
    client = StoreClient(store(url, f"plain_{uuid.uuid4().hex[:8]}"))
    created = client.create({"title": "over " + scheme})
    assert client.read() == [created]
    database = get_database(url, {})
    assert database.url.drivername == "postgresql+psycopg2"
    # psycopg2 and a plain URL share one pool with the explicit spelling.
    assert get_database(postgres.url, {}) is database


# -- the gate a green thread is killed in ------------------------------------------


def test_a_waiter_killed_in_the_gate_gives_its_place_up() -> None:
    gate = Gate(1)
    entered: list[str] = []

    def enter(name: str, hold: Event | None = None) -> None:
        with gate():
            entered.append(name)
            if hold is not None:
                hold.wait()

    hold = Event()
    holder = eventlet.spawn(enter, "holder", hold)
    eventlet.sleep(0)
    killed = eventlet.spawn(enter, "killed")
    eventlet.sleep(0)
    assert len(gate.waiters) == 1
    killed.kill()
    assert not gate.waiters
    hold.send()
    holder.wait()
    with eventlet.Timeout(5):
        eventlet.spawn(enter, "next").wait()
    assert entered == ["holder", "next"]
    assert gate.free == 1


def test_a_waiter_killed_after_being_handed_the_slot_passes_it_on() -> None:
    gate = Gate(1)
    entered: list[str] = []

    def enter(name: str) -> None:
        with gate():
            entered.append(name)

    with gate():  # the slot is ours; two wait behind us
        first = eventlet.spawn(enter, "first")
        second = eventlet.spawn(enter, "second")
        eventlet.sleep(0)
        assert len(gate.waiters) == 2
    # Leaving handed the slot to "first", which is killed before it runs.
    first.kill()
    with eventlet.Timeout(5):  # a lost slot would leave "second" waiting forever
        second.wait()
    assert entered == ["second"]
    assert gate.free == 1 and not gate.waiters
