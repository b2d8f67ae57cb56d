"""The sink's tables and transactions against a real PostgreSQL: created once and versioned, a
replayed batch stores nothing twice, a record the database refuses is returned and the rest commit."""

from __future__ import annotations

import asyncio

import orjson
import psycopg
import pytest

from stream.sink import database as db
from stream.sink.rows import event_rows
from tests.sink.test_rows import MODEL, SOURCE


def _event(offset: int, text: str = "Ada") -> tuple:
    value = orjson.dumps({"schema_version": 1, "id": f"e{offset}", "source": {**SOURCE, "offset": offset},
                          "model": MODEL, "labels": ["person"], "windowed": False, "processing": {},
                          "entities": [{"text": text, "label": "person", "start": 0, "end": len(text), "score": 0.9}]})
    return event_rows(value, None, "events", 0, offset)


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def _write(dsn: str, batch) -> list:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        return await db.write(conn, batch)
    finally:
        await conn.close()


def test_tables_are_created_once_and_versioned(database):
    async def go():
        conns = [await db.connect(database) for _ in range(3)]
        versions = await asyncio.gather(*(db.migrate(c) for c in conns))  # replicas starting at once
        for c in conns:
            await c.close()
        return versions
    assert asyncio.run(go()) == [1, 1, 1]
    assert _count(database, "spanstream_schema") == 1
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO spanstream_schema (version) VALUES (2)")
    with pytest.raises(db.SinkDatabaseError, match="version 2") as err:
        asyncio.run(_write(database, []))
    assert not err.value.retriable


def test_a_replayed_batch_is_stored_once(database):
    batch = [_event(i) for i in range(20)]
    assert asyncio.run(_write(database, batch)) == []
    assert asyncio.run(_write(database, batch[5:] + [_event(20)])) == []  # a replay and one new event
    assert _count(database, "spanstream_events") == 21 and _count(database, "spanstream_entities") == 21


def test_a_record_the_database_refuses_is_returned_and_the_others_commit(database):
    batch = [_event(0), _event(1, "Ad\x00a"), _event(2)]
    refused = asyncio.run(_write(database, batch))
    assert [(r.event.offset, r.reason) for r in refused] == [(1, "database_refused")]
    assert "NUL" in refused[0].message or "0x00" in refused[0].message or "\\u0000" in refused[0].message
    with psycopg.connect(database) as conn:
        stored = [r[0] for r in conn.execute("SELECT source_offset FROM spanstream_events ORDER BY 1")]
    assert stored == [0, 2] and _count(database, "spanstream_entities") == 2


def test_an_unreachable_database_is_retriable_and_a_permission_error_is_not(database):
    with pytest.raises(db.SinkDatabaseError) as err:
        asyncio.run(_write("postgresql://spanstream@127.0.0.1:1/x", []))
    assert err.value.retriable
    role = "reader_" + database.rsplit("_", 1)[1]
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")  # may connect, may not create tables in public
    with pytest.raises(db.SinkDatabaseError) as err:
        asyncio.run(_write(database.replace("spanstream@", f"{role}@"), [_event(0)]))
    assert not err.value.retriable and "InsufficientPrivilege" in str(err.value)
