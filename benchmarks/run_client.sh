#!/usr/bin/env bash
# End-to-end client throughput: txsse's EventSource against httpx-sse (sync and
# async), sseclient-py, launchdarkly-eventsource and aiohttp-sse-client, and the
# bare-Twisted ceiling, in one run (peers in requirements-client.txt).
# Extra arguments go to bench_client.py (--quick, --profile, --repeat N).
source "$(dirname "$0")/_venv.sh" requirements-client.txt
exec "$PY" benchmarks/bench_client.py "$@"
