#!/usr/bin/env bash
# NHS England's mesh-sandbox (PyPI), the local MESH server that `make run` and the tests send GP
# letters to. It runs in its own virtualenv, var/mesh-sandbox-venv, from the pinned, hashed
# scripts/mesh-sandbox.requirements.txt (its FastAPI stack stays out of the app's environment).
#
#   scripts/mesh-sandbox.sh install             make the virtualenv if missing or out of date
#   scripts/mesh-sandbox.sh run [MAILBOX ...]   install, register the mailboxes, serve (foreground)
#
# `run` keeps messages in file store mode under MESH_SANDBOX_STORE (default var/mesh-store), so
# they survive a restart. The sandbox knows the canned mailboxes X26ABC1-X26ABC3 from its package
# data, and in file mode also every upper-case folder in the store when it starts: `run` makes one
# per MAILBOX argument (and per word of MESH_SANDBOX_MAILBOXES). Authentication is MESH's own
# (AUTH_MODE=full: the NHSMESH HMAC token, shared key MESH_SHARED_KEY, password "password" for the
# registered mailboxes); plain HTTP on MESH_SANDBOX_HOST:MESH_SANDBOX_PORT (127.0.0.1:8700).
set -euo pipefail
cd "$(dirname "$0")/.."
MESH_SANDBOX_VERSION=1.0.137 # must match scripts/mesh-sandbox.requirements.txt
requirements=scripts/mesh-sandbox.requirements.txt
venv=${MESH_SANDBOX_VENV:-var/mesh-sandbox-venv}
stamp=$venv/.requirements.sha256

install() {
  local want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$venv/bin/uvicorn" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  grep -q "^mesh-sandbox==$MESH_SANDBOX_VERSION " "$requirements" || {
    echo "$requirements does not pin mesh-sandbox==$MESH_SANDBOX_VERSION" >&2
    exit 1
  }
  command -v python3 >/dev/null || { echo "mesh-sandbox needs python3 with venv." >&2; exit 1; }
  echo "Installing mesh-sandbox $MESH_SANDBOX_VERSION into $venv..."
  mkdir -p "$(dirname "$venv")"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || {
      echo "Could not make a virtualenv: install python3-venv (Debian: apt-get install python3-venv)." >&2
      exit 1
    }
  fi
  if [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip sync --quiet --python "$venv/bin/python" --require-hashes "$requirements"
  else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
      -r "$requirements"
  fi
  echo "$want" >"$stamp"
}

run() {
  install
  local store=${MESH_SANDBOX_STORE:-var/mesh-store}
  local mailbox
  # shellcheck disable=SC2086 # MESH_SANDBOX_MAILBOXES is a list of words
  for mailbox in "$@" ${MESH_SANDBOX_MAILBOXES:-}; do
    mailbox=${mailbox^^}
    [[ $mailbox =~ ^[A-Z0-9]+$ ]] || { echo "Not a mailbox id: $mailbox" >&2; exit 1; }
    mkdir -p "$store/$mailbox/in"
  done
  mkdir -p "$store"
  export STORE_MODE=file FILE_STORE_DIR MAILBOXES_DATA_DIR AUTH_MODE SHARED_KEY ENV=local
  FILE_STORE_DIR=$(cd "$store" && pwd)
  MAILBOXES_DATA_DIR=$FILE_STORE_DIR
  AUTH_MODE=${MESH_SANDBOX_AUTH_MODE:-full}
  SHARED_KEY=${MESH_SHARED_KEY:-TestKey}
  exec "$venv/bin/uvicorn" mesh_sandbox.api:app --host "${MESH_SANDBOX_HOST:-127.0.0.1}" \
    --port "${MESH_SANDBOX_PORT:-8700}" --workers 1 --log-level "${MESH_SANDBOX_LOG_LEVEL:-warning}" \
    --no-access-log
}

case "${1:-run}" in
  install) install ;;
  run) shift || true; run "$@" ;;
  *) echo "usage: $0 install | run [MAILBOX ...]" >&2; exit 2 ;;
esac
