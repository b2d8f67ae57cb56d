# PostgreSQL from Debian's package (no registry image needed), for the compose stack's sink.
#   docker build -f docker/postgres.Dockerfile -t spanstream-postgres .
# Environment: POSTGRES_PASSWORD (required on first start), POSTGRES_USER (default spanstream),
# POSTGRES_DB (default: the user's name). Data in /var/lib/postgresql/data (a volume).
FROM debian:bookworm-slim
# the package's postinst creates a "main" cluster: removed, the entrypoint makes its own in PGDATA
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && rm -rf /var/lib/postgresql/*/main /etc/postgresql/*/main \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
# the package's system user (its uid is assigned by Debian's adduser)
# hadolint ignore=DL3066
USER postgres
EXPOSE 5432
VOLUME /var/lib/postgresql/data
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s CMD ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
