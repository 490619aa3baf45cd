#!/usr/bin/env bash
# Server fan-out: txsse's EventStreamResource against a plain twisted.web
# resource, aiohttp-sse and sse-starlette (uvicorn), in one run (peers pinned in
# requirements-server.txt). Extra arguments go to bench_server.py, for example:
#   benchmarks/run_server.sh --sizes 100,1000 --only txsse,aiohttp-sse
source "$(dirname "$0")/_venv.sh" requirements-server.txt
# 10,000 subscribers need 10,000 descriptors in the server and in the load.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$PY" benchmarks/bench_server.py "$@"
