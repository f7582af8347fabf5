#!/usr/bin/env bash
# Make PostgreSQL + PostGIS and Redis available on 127.0.0.1 for the tests (idempotent), and
# Debian's chromium for the browser tests (tests/test_webapp.py drives /usr/bin/chromium through
# playwright's Python client; no browser is downloaded).
# Installs Debian's packages when missing (root or sudo), starts the servers when they are down,
# and creates the test database with the PostGIS extension.
set -euo pipefail

PGHOST=${ASTROLOC_TEST_PGHOST:-127.0.0.1}
PGPORT=${ASTROLOC_TEST_PGPORT:-5432}
PGUSER=${ASTROLOC_TEST_PGUSER:-postgres}
TEST_DB=${ASTROLOC_TEST_PGDATABASE:-astroloc_test}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "dev_services: need root to run: $*" >&2; return 1
  fi
}

apt_install() {
  echo "dev_services: installing $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  }
}

# --- PostgreSQL + PostGIS ------------------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt_install postgresql
fi
PGVER=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if [ ! -f "/usr/share/postgresql/$PGVER/extension/postgis.control" ]; then
  apt_install "postgresql-$PGVER-postgis-3"
fi
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
  echo "dev_services: starting PostgreSQL $PGVER" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
  for _ in $(seq 30); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 1; done
fi
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres "$@"; }
if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$TEST_DB'")" ]; then
  psql_admin -c "CREATE DATABASE $TEST_DB"
fi
psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$TEST_DB" \
  -c "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null

# --- Redis ---------------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "dev_services: starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/astroloc-redis.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

# --- Chromium (browser tests) --------------------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi

echo "dev_services: PostgreSQL $PGVER + PostGIS at $PGHOST:$PGPORT/$TEST_DB, Redis at 127.0.0.1:6379, $(/usr/bin/chromium --version 2>/dev/null || echo 'no chromium')"
