#!/usr/bin/env bash
# Installs the peer products each into its own git-ignored folder beside this script:
#   .dbos-venv   DBOS Transact (PyPI), in a venv of its own (never in the project's .venv)
#   .node-red    Node-RED (npm), with `npm install --prefix`
# Re-running is cheap: a folder whose stamp names the wanted version is left alone.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
DBOS_VERSION=3.4.0
NODE_RED_VERSION=4.1.8

dbos_venv="$HERE/.dbos-venv"
if [ "$(cat "$dbos_venv/.stamp" 2>/dev/null)" != "dbos==$DBOS_VERSION" ]; then
    echo "peers: installing dbos==$DBOS_VERSION into $dbos_venv"
    rm -rf "$dbos_venv"
    "$PY" -m venv "$dbos_venv"
    "$dbos_venv/bin/python" -m pip install -q --upgrade pip
    "$dbos_venv/bin/python" -m pip install -q "dbos==$DBOS_VERSION"
    echo "dbos==$DBOS_VERSION" > "$dbos_venv/.stamp"
fi

node_red="$HERE/.node-red"
if [ "$(cat "$node_red/.stamp" 2>/dev/null)" != "node-red@$NODE_RED_VERSION" ]; then
    if ! command -v npm >/dev/null; then
        echo "peers: npm not found; install Node.js >= 18.5 (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
    echo "peers: installing node-red@$NODE_RED_VERSION into $node_red"
    rm -rf "$node_red"
    mkdir -p "$node_red"
    npm install --prefix "$node_red" --no-audit --no-fund --no-update-notifier --omit=dev \
        --loglevel=error "node-red@$NODE_RED_VERSION"
    echo "node-red@$NODE_RED_VERSION" > "$node_red/.stamp"
fi
