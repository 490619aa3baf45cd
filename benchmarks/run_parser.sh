#!/usr/bin/env bash
# Parser throughput: txsse against sseclient-py, httpx-sse and
# launchdarkly-eventsource, in one run (peers pinned in requirements.txt).
# Extra arguments go to bench_parser.py, for example:
#   benchmarks/run_parser.sh --only txsse,launchdarkly --workload a --repeat 3
source "$(dirname "$0")/_venv.sh" requirements.txt
exec "$PY" benchmarks/bench_parser.py "$@"
