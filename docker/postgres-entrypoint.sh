#!/bin/sh
# Entry point of docker/postgres.Dockerfile: on first start, initdb with POSTGRES_USER as the
# superuser (password from POSTGRES_PASSWORD, scram-sha-256 over TCP, trust on the local socket)
# and POSTGRES_DB created; then the server in the foreground, listening on every address.
set -eu
BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)
ROLE=${POSTGRES_USER:-spanstream}
DB=${POSTGRES_DB:-$ROLE}
SOCKETS=/var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set on first start}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$BIN/initdb" -D "$PGDATA" -U "$ROLE" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8
  rm -f "$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  if [ "$DB" != postgres ]; then
    "$BIN/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start
    "$BIN/createdb" -h "$SOCKETS" -U "$ROLE" "$DB"
    "$BIN/pg_ctl" -D "$PGDATA" -w -m fast stop
  fi
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$SOCKETS"
