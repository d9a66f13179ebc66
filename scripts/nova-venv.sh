#!/usr/bin/env bash
# Builds (once) a Python virtualenv with OpenStack Nova from PyPI, so the Cairn scheduler filter
# (contrib/nova) is tested against Nova's own BaseHostFilter, HostState and RequestSpec.
#
#   scripts/nova-venv.sh [VENV_DIR]      (default: target/nova-venv)
#
# Idempotent: a venv that already imports this Nova version is left alone. Exit status 0 = ready.
set -euo pipefail

NOVA_VERSION=34.0.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/target/nova-venv}"
PY="${NOVA_PYTHON:-/usr/bin/python3}"
[[ -x "$PY" ]] || PY="$(command -v python3)"

ready() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -W ignore -c "import importlib.metadata as m, sys, nova.scheduler.filters, nova.scheduler.host_manager; sys.exit(m.version('nova') != '$NOVA_VERSION')" 2>/dev/null
}

if ready; then
    exit 0
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "nova==$NOVA_VERSION"
ready || { echo "nova-venv: Nova $NOVA_VERSION installed but its scheduler filters do not import" >&2; exit 1; }
