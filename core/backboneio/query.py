"""The query language of ``read`` without an id (``collection.fetch({data: ...})``).

Placeholder: equality on fields, ``$limit`` and ``$skip``. The full language
is specified in docs/query.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest


@dataclass
class Query:
    where: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    skip: int = 0

    @classmethod
    def parse(cls, data: Any, *, max_limit: int | None = None) -> Query:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise BadRequest("A query must be an object", query=data)
        where = {k: v for k, v in data.items() if not k.startswith("$")}
        unknown = [k for k in data if k.startswith("$") and k not in ("$limit", "$skip")]
        if unknown:
            raise BadRequest(f"Unknown query operator {unknown[0]}", operator=unknown[0])
        limit = data.get("$limit")
        if max_limit is not None:
            limit = max_limit if limit is None else min(limit, max_limit)
        return cls(where=where, limit=limit, skip=int(data.get("$skip", 0)))

    def matches(self, model: Mapping[str, Any]) -> bool:
        return all(k in model and model[k] == v for k, v in self.where.items())

    def apply(self, models: Iterable[Mapping[str, Any]]) -> list[Any]:
        found = [m for m in models if self.matches(m)]
        end = None if self.limit is None else self.skip + self.limit
        return found[self.skip : end]
