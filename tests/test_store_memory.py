"""The memory store: the conformance suite, its own settings, and a query over the network."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backboneio.stores import MemoryStore, memory
from backboneio.testing import StoreConformance
from backboneio.testing.bench import filtered_read
from backboneio.testing.data import PEOPLE

from tests.support.client import BackendClient
from tests.support.server import ServerProcess


class TestMemoryStore(StoreConformance):
    # Its lock makes it safe in OS threads; green threads could not race it,
    # since it never yields to the event loop.
    version_threads = "os"

    @pytest.fixture
    def make_store(self) -> Callable[..., MemoryStore]:
        def make(
            id_attribute: str = "id",
            max_limit: int | None = None,
            version_attribute: str | None = None,
        ) -> MemoryStore:
            return memory(
                id_attribute=id_attribute,
                max_limit=max_limit,
                version_attribute=version_attribute,
            )

        return make


def test_max_limit_must_be_a_positive_integer() -> None:
    for bad in (0, -1, "10", 2.5, True):
        with pytest.raises(ValueError, match="max_limit must be a positive integer"):
            memory(max_limit=bad)  # type: ignore[arg-type]


def test_bench_filtered_read_answers_the_top_matches() -> None:
    result = filtered_read(memory, rows=500, reads=2)
    assert (result.rows, result.reads, result.matched, result.answered) == (500, 2, 52, 50)
    assert result.read_seconds_min <= result.read_seconds_median <= result.read_seconds_max


def test_bench_filtered_read_refuses_a_wrong_answer() -> None:
    class Unsorted(MemoryStore):
        def read(self, req):  # type: ignore[no-untyped-def]
            return list(reversed(super().read(req)))

    with pytest.raises(AssertionError, match="answered the benchmark query wrongly"):
        filtered_read(Unsorted, rows=200, reads=1)


def test_the_suite_imports_without_side_effects_and_the_core_without_pytest() -> None:
    code = (
        "import sys, backboneio\n"
        "assert 'pytest' not in sys.modules, 'the core must not need pytest'\n"
        "from backboneio.testing import bench, conformance, data\n"
        "mods = (bench, conformance, data)\n"
        "hooks = [n for m in mods for n in vars(m) if n.startswith('pytest_')]\n"
        "assert not hooks, hooks\n"
    )
    cmd = [sys.executable, "-W", "error", "-c", code]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_subclass_without_make_store_fails_with_instructions(tmp_path: Path) -> None:
    (tmp_path / "test_forgot.py").write_text(
        "from backboneio.testing import StoreConformance\n\n\n"
        "class TestForgot(StoreConformance):\n"
        "    pass\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "test_read_one",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout
    assert "TestForgot must define a make_store fixture" in done.stdout
    # StoreConformance itself is not collected: only the subclass's tests ran.
    assert "1 error" in done.stdout or "1 failed" in done.stdout, done.stdout


# -- over the network ---------------------------------------------------------

NETWORK_SETTINGS = """
BACKENDS = {
    "people": {"store": "memory"},
    "capped": {"store": "memory", "max_limit": 3},
    "docs": {"store": "memory", "id_attribute": "_id"},
}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(NETWORK_SETTINGS) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(server: ServerProcess) -> Iterator[BackendClient]:
    with BackendClient(server.url, "people") as client:
        for person in PEOPLE:
            client.ok("create", person)
        yield client


def ids(answer: list[dict[str, Any]], id_attribute: str = "id") -> list[Any]:
    return [m[id_attribute] for m in answer]


def test_read_with_a_query_over_the_network(people: BackendClient) -> None:
    query = {"age": {"$gte": 25}, "$sort": {"age": 1, "name": 1}, "$skip": 2, "$limit": 3}
    assert ids(people.ok("read", {}, {"data": query})) == ["p8", "p5", "p1"]


def test_query_with_or_and_select_over_the_network(people: BackendClient) -> None:
    query = {
        "$or": [{"name": "Ada"}, {"tags": ["🎨"]}, {"address": {"city": "Berlin", "zip": "10115"}}],
        "$select": ["name"],
        "$sort": {"name": 1},
    }
    assert people.ok("read", {}, {"data": query}) == [
        {"id": "p1", "name": "Ada"},
        {"id": "p4", "name": "Dan"},
        {"id": "p7", "name": "אורי"},
    ]


def test_read_without_data_answers_every_model(people: BackendClient) -> None:
    assert sorted(ids(people.ok("read"))) == sorted(p["id"] for p in PEOPLE)


def test_a_malformed_query_is_a_bad_request_and_the_server_keeps_serving(
    people: BackendClient,
) -> None:
    answer, result = people.sync("read", {}, {"data": {"age": {"$regex": "^2"}}})
    assert result is None
    error = answer["error"]
    assert error["name"] == "BadRequest" and error["status"] == 400
    assert error["operator"] == "$regex" and error["field"] == "age"
    assert "Unknown query operator $regex" in error["message"]
    assert ids(people.ok("read", {}, {"data": {"name": "Zoë"}})) == ["p6"]


def test_max_limit_caps_reads_over_the_network(server: ServerProcess) -> None:
    with BackendClient(server.url, "capped") as client:
        for n in range(5):
            client.ok("create", {"id": f"c{n}", "n": n})
        assert ids(client.ok("read", {}, {"data": {"$sort": {"n": -1}}})) == ["c4", "c3", "c2"]
        assert len(client.ok("read", {}, {"data": {"$limit": 50}})) == 3
        assert ids(client.ok("read", {}, {"data": {"$sort": {"n": 1}, "$limit": 2}})) == [
            "c0",
            "c1",
        ]


def test_select_keeps_a_custom_id_attribute_over_the_network(server: ServerProcess) -> None:
    with BackendClient(server.url, "docs") as client:
        created = client.ok("create", {"title": "hello", "body": "…"})
        got = client.ok("read", {}, {"data": {"$select": ["title"]}})
        assert got == [{"_id": created["_id"], "title": "hello"}]


def test_a_bad_max_limit_stops_the_server_with_a_message() -> None:
    srv = ServerProcess('BACKENDS = {"x": {"store": "memory", "max_limit": "ten"}}')
    with pytest.raises(RuntimeError) as info:
        srv.start()
    assert "max_limit must be a positive integer" in str(info.value)
    assert "BACKENDS['x']" in str(info.value)
