#!/usr/bin/env bash
# Builds (once) a Python virtualenv with Keylime (registrar, tenant, verifier), for the Keylime interop tests
# and bench/compare-keylime.
#
#   scripts/keylime-venv.sh [VENV_DIR]      (default: target/keylime-venv)
#
# Keylime's wheel declares no dependencies, so they are pinned here by name. Keylime imports
# `gpg`, which is not on PyPI: the venv sees Debian's python3-gpg through
# --system-site-packages, so it is built with Debian's /usr/bin/python3 (install python3-gpg and
# python3-venv first: scripts/install-deps.sh --test). Idempotent: a venv that already imports
# this Keylime version is left alone. Exit status 0 = ready.
set -euo pipefail

KEYLIME_VERSION=7.14.3
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/target/keylime-venv}"
PY="${KEYLIME_PYTHON:-/usr/bin/python3}"
[[ -x "$PY" ]] || PY="$(command -v python3)"

DEPS=(
    "cryptography>=41" "tornado>=6" "pyzmq" "pyyaml" "requests" "sqlalchemy>=2.0.39" "alembic"
    "packaging" "psutil" "lark" "pyasn1" "pyasn1-modules" "jinja2" "jsonschema"
)

ready() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c "import importlib.metadata as m, sys, gpg, keylime.cmd.registrar, keylime.cmd.verifier; sys.exit(m.version('keylime') != '$KEYLIME_VERSION')" 2>/dev/null
}

if ready; then
    exit 0
fi

if ! "$PY" -c "import gpg" 2>/dev/null; then
    echo "keylime-venv: $PY cannot import gpg: install Debian's python3-gpg (scripts/install-deps.sh --test)" >&2
    exit 1
fi
rm -rf "$VENV"
"$PY" -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${DEPS[@]}"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "keylime==$KEYLIME_VERSION"
if ! ready; then
    echo "keylime-venv: $VENV was built but does not import keylime $KEYLIME_VERSION" >&2
    exit 1
fi
echo "keylime-venv: Keylime $KEYLIME_VERSION ready in $VENV"
