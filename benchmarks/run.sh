#!/usr/bin/env bash
# The one benchmark runner: builds (or reuses) benchmarks/.venv (or $TXSSE_BENCH_VENV)
# with txsse[redis,metrics] from the checkout and the peers pinned in
# benchmarks/constraints.txt, then runs one benchmark, or all of them in turn:
#
#   benchmarks/run.sh parser   [--only txsse,launchdarkly] [--workload a] [--repeat 3]
#   benchmarks/run.sh client   [--quick] [--profile] [--repeat N]
#   benchmarks/run.sh server   [--sizes 100,1000,10000] [--only txsse,aiohttp-sse]
#   benchmarks/run.sh hub      [--scale 0.1] [--only small|big] [--processes 1,2] [--profile]  (needs redis-server)
#   benchmarks/run.sh blocking [--quick]
#   benchmarks/run.sh all      (each with its defaults; extra arguments are refused)
#
# Extra arguments go to benchmarks/bench_<name>.py.
set -euo pipefail
NAMES="parser client server hub blocking"
usage() { echo "usage: benchmarks/run.sh <${NAMES// /|}|all> [arguments for bench_<name>.py]" >&2; exit 2; }
[ $# -ge 1 ] || usage
WHAT="$1"; shift
case " $NAMES all " in *" $WHAT "*) ;; *) usage ;; esac
if [ "$WHAT" = all ] && [ $# -gt 0 ]; then usage; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TXSSE_VENV="${TXSSE_BENCH_VENV:-$HERE/.venv}"
source "$HERE/../scripts/_env.sh" "redis,metrics" "$HERE/constraints.txt"
# The server and hub benchmarks hold 10,000 sockets in the server and as many in the load.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$WHAT" = all ]; then
    for name in $NAMES; do
        echo "== benchmarks/run.sh $name"
        "$PY" "benchmarks/bench_$name.py"
    done
else
    exec "$PY" "benchmarks/bench_$WHAT.py" "$@"
fi
