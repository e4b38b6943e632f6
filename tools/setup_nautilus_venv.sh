#!/usr/bin/env bash
# One-command setup of the separate NautilusTrader virtualenv used only by the
# replay-throughput benchmark (tools/bench_replay.py, tools/nautilus_baseline.py).
# NautilusTrader is never a dependency of cryptoj itself.
#
#   bash tools/setup_nautilus_venv.sh [VENV_DIR]
#
# VENV_DIR defaults to .venv-nautilus in the repo root (git-ignored). The interpreter
# used to create it is $PYTHON if set, else python3.11, else python3; it must be
# Python 3.11 (nautilus_trader 1.221.0 is the last release with a cp311 wheel).
# Idempotent: if the venv already has nautilus_trader 1.221.0, nothing is installed.
# The last line printed is the venv's python path.
set -euo pipefail

NAUTILUS_VERSION="1.221.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-$REPO_ROOT/.venv-nautilus}"

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then
        PYTHON=python3.11
    else
        PYTHON=python3
    fi
fi

VENV_PY="$VENV_DIR/bin/python"

installed_version() {
    "$VENV_PY" -c 'import importlib.metadata as m; print(m.version("nautilus_trader"))' \
        2>/dev/null || true
}

if [[ -x "$VENV_PY" && "$(installed_version)" == "$NAUTILUS_VERSION" ]]; then
    echo "nautilus_trader $NAUTILUS_VERSION already installed in $VENV_DIR" >&2
    echo "$VENV_PY"
    exit 0
fi

if [[ ! -x "$VENV_PY" ]]; then
    py_minor="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ "$py_minor" != "3.11" ]]; then
        echo "error: $PYTHON is Python $py_minor; nautilus_trader $NAUTILUS_VERSION needs 3.11" \
            "(set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
    echo "creating virtualenv $VENV_DIR with $PYTHON" >&2
    "$PYTHON" -m venv "$VENV_DIR"
fi

"$VENV_PY" -m pip install --disable-pip-version-check --quiet --upgrade pip >&2
"$VENV_PY" -m pip install --disable-pip-version-check --only-binary=:all: \
    "nautilus_trader==$NAUTILUS_VERSION" >&2

if [[ "$(installed_version)" != "$NAUTILUS_VERSION" ]]; then
    echo "error: nautilus_trader $NAUTILUS_VERSION not importable from $VENV_PY" >&2
    exit 1
fi
echo "nautilus_trader $NAUTILUS_VERSION installed in $VENV_DIR" >&2
echo "$VENV_PY"
