#!/usr/bin/env bash
# Serves the app (gunicorn) with a Celery worker and beat beside it, the demo region's FHIR
# sources, the local MESH server (mesh-sandbox) and the demo practices' MESH inbox process;
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
host=${1:-127.0.0.1} port=${2:-8000}
trap 'kill 0 2>/dev/null' EXIT INT TERM
# The local MESH server the GP letters go to (messages kept in var/mesh-store across restarts),
# with a mailbox for each demo practice; its request log goes to var/mesh-sandbox.log.
mesh_port=${MESH_SANDBOX_PORT:-8700}
export MESH_URL=${MESH_URL:-http://127.0.0.1:$mesh_port}
mesh_up() {
  .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://127.0.0.1:$mesh_port/health" >/dev/null 2>&1
}
if mesh_up; then
  echo "Something already answers on port $mesh_port: using it as the MESH server."
else
  mkdir -p var
  # shellcheck disable=SC2046 # one word per mailbox id
  (MESH_SANDBOX_PORT=$mesh_port exec scripts/mesh-sandbox.sh run \
    $(.venv/bin/python manage.py run_practice_inbox --list-mailboxes)) >>var/mesh-sandbox.log 2>&1 &
fi
# The demo region's record sources (three trusts, the GP record, the demographics service).
.venv/bin/python manage.py run_demo_sources &
# The Celery worker sends letters as soon as it starts: wait for MESH first (at most a minute).
for _ in $(seq 1 120); do
  mesh_up && break
  sleep 0.5
done
mesh_up || echo "The MESH sandbox is not answering yet (see var/mesh-sandbox.log); letters will retry."
# The demo practices downloading and acknowledging their letters (one practice never does).
.venv/bin/python manage.py run_practice_inbox &
.venv/bin/celery -A config worker --loglevel=INFO --concurrency="${CELERY_WORKER_CONCURRENCY:-2}" &
.venv/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule &
.venv/bin/gunicorn config.wsgi:application --bind "$host:$port" --workers "${WEB_WORKERS:-3}" \
  --access-logfile - &
sleep 1
echo
echo "The regional MDT demo is at http://localhost:$port/"
.venv/bin/python manage.py demo_logins
wait
