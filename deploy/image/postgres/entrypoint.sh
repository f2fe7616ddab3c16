#!/bin/bash
# PostgreSQL 15 for the local overlay: on first start, a cluster with one database and one role
# per service. The engine's role, zq_engine_ro, has no password and may only SELECT (tables the
# writer role creates are granted to it by default privileges), as in production.
#
#   POSTGRES_PASSWORD                  the superuser's (postgres) password
#   ZQ_PG_AUTH_PASSWORD, ZQ_PG_TASK_PASSWORD, ZQ_PG_ENGINE_WRITER_PASSWORD
#                                      zq_auth, zq_task, zq_engine_writer (migrations and imports)
#   PGPORT                             default 5432
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
port="${PGPORT:-5432}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
    "$bin/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    cat >"$PGDATA/pg_hba.conf" <<'HBA'
local all all trust
host zquant_engine zq_engine_ro 0.0.0.0/0 trust
host zquant_engine zq_engine_ro ::/0 trust
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
HBA
    "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -c port=$port -k /tmp" -w start >/dev/null
    psql=(psql -v ON_ERROR_STOP=1 -h /tmp -p "$port" -U postgres -q)
    "${psql[@]}" -v auth="$ZQ_PG_AUTH_PASSWORD" -v task="$ZQ_PG_TASK_PASSWORD" \
        -v writer="$ZQ_PG_ENGINE_WRITER_PASSWORD" <<'SQL'
CREATE ROLE zq_auth LOGIN PASSWORD :'auth';
CREATE ROLE zq_task LOGIN PASSWORD :'task';
CREATE ROLE zq_engine_writer LOGIN PASSWORD :'writer';
CREATE ROLE zq_engine_ro LOGIN;
CREATE DATABASE zquant_auth OWNER zq_auth;
CREATE DATABASE zquant_task OWNER zq_task;
CREATE DATABASE zquant_engine OWNER zq_engine_writer;
SQL
    "${psql[@]}" -d zquant_engine <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO zq_engine_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE zq_engine_writer IN SCHEMA public GRANT SELECT ON TABLES TO zq_engine_ro;
SQL
    "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi

exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c port="$port" -k /tmp
