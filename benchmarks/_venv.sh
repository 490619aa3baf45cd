# Shared set-up for the benchmark runners (sourced, not run): scripts/_env.sh on
# benchmarks/.venv (or $TXSSE_BENCH_VENV), with the peers pinned in the
# requirements file named by $1. Sets $PY.
TXSSE_VENV="${TXSSE_BENCH_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv}"
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/_env.sh" "" "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$1"
