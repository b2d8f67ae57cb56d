"""The sink's PostgreSQL side (psycopg 3): its tables, created and versioned by the sink, and one
transaction per batch.

Tables (``SCHEMA_VERSION`` 1; ``spanstream_schema`` records the version, and a sink refuses a
database whose version is newer than its own):

- ``spanstream_events``: one row per input event, primary key the input record's coordinates
  (``source_topic``, ``source_partition``, ``source_offset``); the whole event as ``jsonb``
  (``event -> 'result'`` holds an extraction event's structures, classifications and relations,
  GIN-indexed), its id, key, model, timestamps, and where the sink read it.
- ``spanstream_entities``: one row per entity (label, text, character offsets, score, the input
  record's timestamp), keyed by its event and position; indexed by (label, time) and by the text's
  words (``to_tsvector('simple', text)``, GIN).

A batch is written in one transaction with ``ON CONFLICT DO NOTHING``: a replayed batch writes
nothing twice. A row the database refuses (a NUL character in a text, for one) is found by
writing the batch's events one by one under savepoints, and returned to the caller for a dead
letter; the others commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import psycopg
from psycopg import errors

from stream.sink.rows import EntityRow, EventRow

SCHEMA_VERSION = 1
LOCK_KEY = 0x5350414E  # pg_advisory_xact_lock key: one replica creates the tables at a time

DDL = [
    """CREATE TABLE IF NOT EXISTS spanstream_schema (
        version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS spanstream_events (
        source_topic text NOT NULL, source_partition integer NOT NULL, source_offset bigint NOT NULL,
        kind text NOT NULL, event_id text NOT NULL, key bytea, model text NOT NULL, model_version text NOT NULL,
        source_time timestamptz, processed_at timestamptz, event jsonb NOT NULL,
        topic text NOT NULL, "partition" integer NOT NULL, "offset" bigint NOT NULL,
        stored_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source_topic, source_partition, source_offset))""",
    "CREATE INDEX IF NOT EXISTS spanstream_events_event_id ON spanstream_events (event_id)",
    "CREATE INDEX IF NOT EXISTS spanstream_events_source_time ON spanstream_events (source_time)",
    """CREATE INDEX IF NOT EXISTS spanstream_events_result ON spanstream_events
        USING gin ((event -> 'result') jsonb_path_ops)""",
    """CREATE TABLE IF NOT EXISTS spanstream_entities (
        source_topic text NOT NULL, source_partition integer NOT NULL, source_offset bigint NOT NULL,
        ordinal integer NOT NULL, label text NOT NULL, text text NOT NULL, start_char integer, end_char integer,
        score real, source_time timestamptz,
        PRIMARY KEY (source_topic, source_partition, source_offset, ordinal),
        CONSTRAINT spanstream_entities_event FOREIGN KEY (source_topic, source_partition, source_offset)
            REFERENCES spanstream_events ON DELETE CASCADE)""",
    "CREATE INDEX IF NOT EXISTS spanstream_entities_label_time ON spanstream_entities (label, source_time)",
    """CREATE INDEX IF NOT EXISTS spanstream_entities_words ON spanstream_entities
        USING gin (to_tsvector('simple', text))""",
]

INSERT_EVENT = """INSERT INTO spanstream_events (source_topic, source_partition, source_offset, kind, event_id, key,
    model, model_version, source_time, processed_at, event, topic, "partition", "offset")
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s) ON CONFLICT DO NOTHING"""
INSERT_ENTITY = """INSERT INTO spanstream_entities (source_topic, source_partition, source_offset, ordinal, label, text,
    start_char, end_char, score, source_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"""


class SinkDatabaseError(Exception):
    """A database failure, classified: ``retriable`` (the connection, a serialization failure: write
    the batch again) or not (permissions, a schema the sink does not own: stop without committing)."""

    def __init__(self, message: str, retriable: bool):
        super().__init__(message)
        self.retriable = retriable


class Refused(NamedTuple):
    event: EventRow
    reason: str
    message: str


RECORD_ERRORS = (psycopg.DataError, psycopg.IntegrityError)
"What the database refuses about one record's data (a dead letter, not a failure of the sink)."


def classify(exc: BaseException) -> SinkDatabaseError:
    if isinstance(exc, (errors.SerializationFailure, errors.DeadlockDetected, psycopg.OperationalError,
                        errors.AdminShutdown, errors.CannotConnectNow)):
        return SinkDatabaseError(f"{type(exc).__name__}: {exc}".strip(), retriable=True)
    return SinkDatabaseError(f"{type(exc).__name__}: {exc}".strip(), retriable=False)


async def connect(dsn: str) -> psycopg.AsyncConnection:
    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=False)
    except psycopg.Error as exc:
        raise classify(exc) from exc


async def migrate(conn: psycopg.AsyncConnection) -> int:
    """Create the tables (once, under an advisory lock); the version found or created."""
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            for statement in DDL:
                await conn.execute(statement)
            row = await (await conn.execute("SELECT max(version) FROM spanstream_schema")).fetchone()
            version = row[0] if row and row[0] is not None else None
            if version is None:
                await conn.execute("INSERT INTO spanstream_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
    except psycopg.Error as exc:
        raise classify(exc) from exc
    if version > SCHEMA_VERSION:
        raise SinkDatabaseError(f"the database holds spanstream tables of version {version}; this sink writes "
                                f"version {SCHEMA_VERSION}: upgrade the sink", retriable=False)
    return version


def _event_params(e: EventRow) -> tuple:
    return (e.source_topic, e.source_partition, e.source_offset, e.kind, e.event_id, e.key, e.model,
            e.model_version, e.source_time, e.processed_at, e.event.decode("utf-8"), e.topic, e.partition, e.offset)


def _entity_params(x: EntityRow, event: EventRow) -> tuple:
    return (x.source_topic, x.source_partition, x.source_offset, x.ordinal, x.label, x.text, x.start, x.end,
            x.score, event.source_time)


async def _insert(cur: psycopg.AsyncCursor, batch: Sequence[tuple[EventRow, Sequence[EntityRow]]]) -> None:
    await cur.executemany(INSERT_EVENT, [_event_params(e) for e, _ in batch])
    entities = [_entity_params(x, e) for e, xs in batch for x in xs]
    if entities:
        await cur.executemany(INSERT_ENTITY, entities)


async def write(conn: psycopg.AsyncConnection, batch: Sequence[tuple[EventRow, Sequence[EntityRow]]]
                ) -> list[Refused]:
    """Write a batch in one transaction; the events the database refused (the rest committed).
    Raises ``SinkDatabaseError`` (nothing committed) for anything but a refused record."""
    try:
        try:
            async with conn.transaction():
                async with conn.cursor() as cur:
                    await _insert(cur, batch)
            return []
        except RECORD_ERRORS:
            pass  # find the refused records one by one
        refused = []
        async with conn.transaction():
            async with conn.cursor() as cur:
                for event, entities in batch:
                    try:
                        async with conn.transaction():  # a savepoint
                            await _insert(cur, [(event, entities)])
                    except RECORD_ERRORS as exc:
                        refused.append(Refused(event, "database_refused", f"{type(exc).__name__}: {exc}".strip()))
        return refused
    except psycopg.Error as exc:
        raise classify(exc) from exc
