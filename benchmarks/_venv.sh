# Shared set-up for the benchmark runners (sourced, not run): create or reuse
# benchmarks/.venv (or $TXSSE_BENCH_VENV), install txsse from this checkout
# (editable) and the peers pinned in the requirements file named by $1, and
# reinstall only when the packaging or that file change. Sets $PY.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${TXSSE_BENCH_VENV:-$HERE/.venv}"
REQUIREMENTS="$HERE/$1"
if [ ! -x "$VENV/bin/python" ]; then
    echo "bench: creating virtualenv $VENV" >&2
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --quiet --disable-pip-version-check)
STAMP="$VENV/.installed-$1"
WANT="$(cat "$ROOT/setup.py" "$ROOT/pyproject.toml" "$REQUIREMENTS" | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "bench: installing txsse (editable) and $1 into $VENV" >&2
    "${PIP[@]}" install --upgrade pip
    "${PIP[@]}" install -r "$REQUIREMENTS"
    "${PIP[@]}" install -e "$ROOT"
    echo "$WANT" > "$STAMP"
fi
cd "$ROOT"
