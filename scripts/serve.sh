#!/usr/bin/env bash
# Serves the app (gunicorn) with a Celery worker beside it; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
host=${1:-127.0.0.1} port=${2:-8000}
trap 'kill 0 2>/dev/null' EXIT INT TERM
.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 &
.venv/bin/gunicorn config.wsgi:application --bind "$host:$port" --workers "${WEB_WORKERS:-3}" \
  --access-logfile - &
sleep 1
echo
echo "The regional MDT demo is at http://localhost:$port/"
.venv/bin/python manage.py demo_logins
wait
