"""A private PostgreSQL for the sink tests (``devtools.localpostgres``): one per session, from
Debian's package. Not finding PostgreSQL is a failure, never a skip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.localpostgres import LocalPostgres, scratch


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    pg = LocalPostgres(scratch())
    try:
        pg.start()
    except Exception as exc:
        raise RuntimeError(f"could not start the test PostgreSQL: {exc}\n{pg.log_tail()}") from exc
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def database(postgres: LocalPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database of its own for one test: its DSN."""
    import uuid

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres.dsn.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
