#!/usr/bin/env bash
# The client benchmark: builds benchmarks/.venv with the peers (once), then runs
# benchmarks/bench_client.py once. Extra arguments go to it (--quick, --profile).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv"
PEERS="twisted treq httpx httpx-sse sseclient-py requests launchdarkly-eventsource aiohttp aiohttp-sse-client"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if [ ! -f "$VENV/.client-peers" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PEERS
    touch "$VENV/.client-peers"
fi
exec "$VENV/bin/python" "$HERE/bench_client.py" "$@"
