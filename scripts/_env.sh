# Shared set-up for scripts/demo and scripts/test: create (or reuse) the project's
# virtualenv and install txsse into it, editable, with the extras named in $1.
# Only python3 is needed; everything else comes from the package registries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TXSSE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "txsse: creating virtualenv $VENV" >&2
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Reinstall only when the packaging or the extras change.
STAMP="$VENV/.txsse-installed-$(echo "$EXTRAS" | tr ',[]' '___')"
WANT="$(cat "$ROOT/setup.py" "$ROOT/pyproject.toml" | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "txsse: installing txsse${EXTRAS:+[$EXTRAS]} into $VENV" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    ( cd "$ROOT" && "$PY" -m pip install --quiet --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}" )
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
