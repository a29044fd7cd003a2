#!/usr/bin/env bash
# Serves the app (gunicorn) with a Celery worker and beat beside it, and the demo region's FHIR
# sources; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
host=${1:-127.0.0.1} port=${2:-8000}
trap 'kill 0 2>/dev/null' EXIT INT TERM
# The demo region's record sources (three trusts, the GP record, the demographics service).
.venv/bin/python manage.py run_demo_sources &
.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 &
.venv/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule &
.venv/bin/gunicorn config.wsgi:application --bind "$host:$port" --workers "${WEB_WORKERS:-3}" \
  --access-logfile - &
sleep 1
echo
echo "The regional MDT demo is at http://localhost:$port/"
.venv/bin/python manage.py demo_logins
wait
