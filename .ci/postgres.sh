# Sourced by .ci/run: a throw-away PostgreSQL cluster on loopback for the tests that need a
# database server (shared tuning storage, PostgreSQL tracking stores). Exports
# BENCH_TEST_POSTGRES_URI; the cluster is stopped and deleted when the sourcing shell exits.
# Debian's `postgresql` package is installed when its server binaries are missing.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(pg_bin)" ]; then
    echo "ci: installing PostgreSQL (apt-get install postgresql)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PGBIN="$(pg_bin)"
PGDATA_CI="$(mktemp -d /tmp/bench-ci-pg.XXXXXX)"
PGPORT_CI="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PGDATA_CI"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
as_pg "$PGBIN/initdb" -D "$PGDATA_CI" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDATA_CI" -l "$PGDATA_CI/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT_CI -k $PGDATA_CI -c fsync=off" start >/dev/null
stop_postgres() { as_pg "$PGBIN/pg_ctl" -D "$PGDATA_CI" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PGDATA_CI"; }
trap stop_postgres EXIT
as_pg "$PGBIN/psql" -q -h 127.0.0.1 -p "$PGPORT_CI" -U postgres -d postgres \
    -c "CREATE USER bench PASSWORD 'bench' CREATEDB" -c "CREATE DATABASE bench OWNER bench"
export BENCH_TEST_POSTGRES_URI="postgresql://bench:bench@127.0.0.1:$PGPORT_CI/bench"
echo "ci: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT_CI"
