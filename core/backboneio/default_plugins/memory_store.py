"""The ``memory`` store: models in a dict, for demos, tests and prototypes."""

from __future__ import annotations

from collections.abc import Callable

from backboneio import hookimpl
from backboneio.stores import MemoryStore, StoreConfig


def make_memory_store(config: StoreConfig) -> MemoryStore:
    return MemoryStore(
        id_attribute=config.id_attribute,
        max_limit=config.options["max_limit"],
        version_attribute=config.version_attribute,
    )


@hookimpl(trylast=True)
def register_stores(register: Callable[..., None]) -> None:
    register(
        "memory",
        make_memory_store,
        options={"max_limit": None},
        description="Models kept in the server process; lost on restart.",
    )
