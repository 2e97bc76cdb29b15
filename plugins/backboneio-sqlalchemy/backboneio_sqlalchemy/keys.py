"""The table of idempotency keys a store records in its write transactions.

One row per key: ``(backend, owner, key)`` is the primary key; ``method`` and
``fingerprint`` say which request it belongs to; ``answer`` is the JSON text
of ``{"result": ...}`` or ``{"error": ...}``; ``expires_at`` (seconds since the
epoch) is when it may be forgotten. The row is written in the same
transaction as the model, so either both are stored or neither is
(docs/idempotency.md).

Recording is an upsert that only replaces an expired row. Two transactions
recording one key cannot both succeed: on PostgreSQL the second waits on the
first's row and then finds it live; on SQLite writes are serialized anyway.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from backboneio import jsonutil
from backboneio.idempotency import Answer, IdempotencyKey, Record
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

#: Seconds between two deletions of expired keys (each done inside a write).
PURGE_INTERVAL = 60.0
#: The columns an upsert writes (a live row keeps its own).
RECORDED = ("method", "fingerprint", "answer", "expires_at")


class KeyTable:
    """The keys of one store, in ``<its table>_idempotency`` next to its table."""

    def __init__(self, name: str, *, schema: str | None, postgresql: bool) -> None:
        self.name = name
        self.postgresql = postgresql
        self.table = sa.Table(
            name,
            sa.MetaData(schema=schema),
            sa.Column("backend", sa.Text(), primary_key=True),
            sa.Column("owner", sa.Text(), primary_key=True),
            sa.Column("key", sa.Text(), primary_key=True),
            sa.Column("method", sa.Text(), nullable=False),
            sa.Column("fingerprint", sa.Text(), nullable=False),
            # Text, not jsonb: it is never queried, and jsonb refuses "\u0000",
            # which an error message quoting a client's id may hold.
            sa.Column("answer", sa.Text(), nullable=False),
            sa.Column("expires_at", sa.Float(), nullable=False, index=True),
        )
        self._next_purge = 0.0
        # Built once: constructing an upsert costs more than running it.
        c = self.table.c
        insert = (pg_dialect.insert if postgresql else sqlite_dialect.insert)(self.table)
        self._upsert = insert.on_conflict_do_update(
            index_elements=[c.backend, c.owner, c.key],
            set_={name: insert.excluded[name] for name in RECORDED},
            where=c.expires_at <= sa.bindparam("now"),
        )
        self._lookup = sa.select(c.method, c.fingerprint, c.answer, c.expires_at).where(
            c.backend == sa.bindparam("b"), c.owner == sa.bindparam("o"), c.key == sa.bindparam("k")
        )

    def prepare(self, conn: Connection) -> None:
        self.table.create(conn, checkfirst=True)

    def record(self, conn: Connection, key: IdempotencyKey, answer: Answer) -> bool:
        """Record ``answer`` for ``key`` unless a live record of it exists; True if recorded."""
        now = time.time()
        if key.expires_at <= now:
            return True  # forgotten at once: nothing to keep
        values = {
            "backend": key.backend,
            "owner": key.owner,
            "key": key.key,
            "method": key.method,
            "fingerprint": key.fingerprint,
            "answer": jsonutil.dumps(answer),
            "expires_at": key.expires_at,
            "now": now,
        }
        recorded = conn.execute(self._upsert, values).rowcount == 1
        if recorded and now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            conn.execute(sa.delete(self.table).where(self.table.c.expires_at <= now))
        return recorded

    def lookup(self, conn: Connection, key: IdempotencyKey) -> Record | None:
        """The live record of ``key``, or None."""
        row = conn.execute(self._lookup, {"b": key.backend, "o": key.owner, "k": key.key}).first()
        if row is None:
            return None
        record = Record(row.method, row.fingerprint, jsonutil.loads(row.answer), row.expires_at)
        return record if record.live() else None
