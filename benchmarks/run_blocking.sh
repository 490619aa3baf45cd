#!/usr/bin/env bash
# The blocking client (txsse.blocking) against sseclient-py and httpx-sse, and the
# asynchronous client with and without metrics, in one run (peers in
# requirements-blocking.txt). Extra arguments go to bench_blocking.py (--quick).
source "$(dirname "$0")/_venv.sh" requirements-blocking.txt
exec "$PY" benchmarks/bench_blocking.py "$@"
