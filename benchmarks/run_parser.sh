#!/usr/bin/env bash
# Parser throughput: txsse against sseclient-py, httpx-sse and
# launchdarkly-eventsource, in one run. Creates (or reuses) benchmarks/.venv,
# installs txsse from this checkout (editable) and the peers from
# benchmarks/requirements.txt, then runs benchmarks/bench_parser.py.
# Extra arguments go to bench_parser.py, for example:
#   benchmarks/run_parser.sh --only txsse,launchdarkly --workload a --repeat 3
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
STAMP="$VENV/.txsse-bench-installed"
WANT="$(cat "$ROOT/setup.py" "$ROOT/pyproject.toml" "$HERE/requirements.txt" | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "bench: installing txsse (editable) and the peers into $VENV" >&2
    "${PIP[@]}" install --upgrade pip
    "${PIP[@]}" install -r "$HERE/requirements.txt"
    FALLBACK="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/txsse-source-tree.pth"
    rm -f "$FALLBACK"
    if ! "${PIP[@]}" install -e "$ROOT"; then
        # The parser needs nothing but the txsse package itself: if the checkout's
        # packaging is broken, benchmark the source tree rather than nothing.
        echo "bench: WARNING: 'pip install -e $ROOT' failed; importing txsse from the source tree" >&2
        echo "$ROOT" > "$FALLBACK"
    fi
    echo "$WANT" > "$STAMP"
fi
cd "$ROOT"
exec "$PY" "$HERE/bench_parser.py" "$@"
