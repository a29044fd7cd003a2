#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on localhost: starts the local ones if they are installed
# but stopped, or says exactly what to install. Creates the app's database if it is missing.
set -euo pipefail
pg_host=127.0.0.1 pg_port=5432

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; }
if ! command -v pg_isready >/dev/null; then
  echo "PostgreSQL is not installed. Install it (Debian: apt-get install postgresql) or set DATABASE_URL to a server." >&2
  exit 1
fi
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "Starting PostgreSQL..."
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "PostgreSQL is installed but does not answer on $pg_host:$pg_port; start it (pg_ctlcluster 15 main start)." >&2; exit 1; }
fi
db=$(python3 -c "import os,urllib.parse as u;print(u.urlparse(os.environ.get('DATABASE_URL','postgres://postgres@127.0.0.1:5432/mdt')).path.lstrip('/') or 'mdt')")
if ! psql -h "$pg_host" -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
  createdb -h "$pg_host" -p "$pg_port" -U postgres "$db"
  echo "Created database $db."
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! command -v redis-cli >/dev/null; then
  echo "Redis is not installed. Install it (Debian: apt-get install redis-server) or set REDIS_URL." >&2
  exit 1
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "Starting Redis..."
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  fi
  redis_up || { echo "Redis is installed but does not answer on 127.0.0.1:6379; start redis-server." >&2; exit 1; }
fi
echo "PostgreSQL and Redis answer."
