"""The sink over TLS to a PostgreSQL that accepts only TLS with client certificates (what a managed
or hardened database asks): the DSN's own libpq parameters (sslmode=verify-full, sslrootcert,
sslcert, sslkey) are all a user sets, and each wrong piece is refused with libpq's reason."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from devtools.localpostgres import ROLE, LocalPostgres, ServerTls, scratch
from stream.sink import database as db
from tests.certificates import make_certificates
from tests.sink.test_database import _event


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory) -> Iterator[tuple[LocalPostgres, dict]]:
    certs = make_certificates(tmp_path_factory.mktemp("pg-certs"), client_cn=ROLE)
    other = make_certificates(tmp_path_factory.mktemp("pg-other-ca"), client_cn=ROLE)
    pg = LocalPostgres(scratch(), tls=ServerTls(certs["server_cert"], certs["server_key"], certs["ca"]))
    try:
        pg.start()
    except Exception as exc:
        raise RuntimeError(f"could not start the TLS test PostgreSQL: {exc}\n{pg.log_tail()}") from exc
    try:
        yield pg, {"certs": certs, "other": other}
    finally:
        pg.remove()


def _dsn(pg: LocalPostgres, ca, cert, key, mode: str = "verify-full") -> str:
    return (f"postgresql://{ROLE}@localhost:{pg.port}/{ROLE}?sslmode={mode}"
            f"&sslrootcert={ca}&sslcert={cert}&sslkey={key}")


def test_the_sink_writes_over_verified_tls_with_a_client_certificate(tls_postgres):
    pg, files = tls_postgres
    c = files["certs"]
    dsn = _dsn(pg, c["ca"], c["client_cert"], c["client_key"])

    async def go():
        conn = await db.connect(dsn)
        try:
            await db.migrate(conn)
            refused = await db.write(conn, [_event(i) for i in range(3)])
            cur = await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return refused, (await cur.fetchone())[0]
        finally:
            await conn.close()

    refused, ssl_in_use = asyncio.run(go())
    assert refused == [] and ssl_in_use is True
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM spanstream_events").fetchone()[0] == 3


def test_plaintext_a_foreign_client_certificate_and_an_untrusted_server_are_refused(tls_postgres):
    pg, files = tls_postgres
    c, o = files["certs"], files["other"]
    cases = {
        "no encryption": _dsn(pg, c["ca"], c["client_cert"], c["client_key"], mode="disable"),
        "unknown ca": _dsn(pg, c["ca"], o["client_cert"], o["client_key"]),
        "certificate verify failed": _dsn(pg, o["ca"], c["client_cert"], c["client_key"]),
    }
    for reason, dsn in cases.items():
        with pytest.raises(db.SinkDatabaseError, match=reason) as err:
            asyncio.run(db.connect(dsn))
        assert err.value.retriable  # a connection failure: the sink retries with backoff, never commits
