#!/usr/bin/env bash
# The hub: publish-to-receive latency and throughput through one and two
# `twistd sse-hub` processes with 1,000 subscribers, memory vs Redis backend.
# Needs redis-server on the PATH (Debian package redis-server).
# Extra arguments go to bench_hub.py (--subscribers N, --throughput-events N).
source "$(dirname "$0")/_venv.sh" requirements-hub.txt
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$PY" benchmarks/bench_hub.py "$@"
