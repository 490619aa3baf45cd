#!/usr/bin/env bash
# Server fan-out: txsse's EventStreamResource against a plain twisted.web
# resource, aiohttp-sse and sse-starlette (uvicorn), in one run. Creates (or
# reuses) benchmarks/.venv, installs txsse from this checkout (editable) and the
# peers from benchmarks/requirements-server.txt, then runs bench_server.py.
# Extra arguments go to bench_server.py, for example:
#   benchmarks/run_server.sh --sizes 100,1000 --only txsse,aiohttp-sse
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${TXSSE_BENCH_VENV:-$HERE/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "bench: creating virtualenv $VENV" >&2
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --quiet --disable-pip-version-check)
# Reinstall only when the packaging or the pinned peers change.
STAMP="$VENV/.txsse-bench-server-installed"
WANT="$(cat "$ROOT/setup.py" "$ROOT/pyproject.toml" "$HERE/requirements-server.txt" | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "bench: installing txsse (editable) and the server peers into $VENV" >&2
    "${PIP[@]}" install -r "$HERE/requirements-server.txt"
    "${PIP[@]}" install -e "$ROOT"
    echo "$WANT" > "$STAMP"
fi
# 10,000 subscribers need 10,000 descriptors in the server and in the load.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cd "$ROOT"
exec "$PY" "$HERE/bench_server.py" "$@"
