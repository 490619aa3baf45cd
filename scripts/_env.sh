# Shared set-up, sourced by scripts/demo, scripts/test and the benchmark runners:
# create (or reuse) a virtualenv ($TXSSE_VENV, default .venv) and install txsse into
# it, editable, with the extras named in $1 and, if $2 names one, a requirements file.
# Only python3 is needed; everything else comes from the package registries.
# Sets $PY, puts the virtualenv first on $PATH and changes to the checkout's root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TXSSE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
REQUIREMENTS="${2:-}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "txsse: creating virtualenv $VENV" >&2
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
# Reinstall only when the packaging, the extras or the requirements change.
STAMP="$VENV/.txsse-installed-$(echo "$EXTRAS" | tr ',[]' '___')${REQUIREMENTS:+-$(basename "$REQUIREMENTS")}"
WANT="$(cat "$ROOT/setup.py" "$ROOT/pyproject.toml" ${REQUIREMENTS:+"$REQUIREMENTS"} | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
# An install with more extras serves too (./scripts/demo in the virtualenv of ./scripts/test).
installed() {
    local stamp extra
    for stamp in "$STAMP" "$VENV"/.txsse-installed-*; do
        [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$WANT" ] || continue
        [ "$stamp" = "$STAMP" ] && return 0
        [ -z "$REQUIREMENTS" ] || continue
        for extra in ${EXTRAS//,/ }; do
            case "_${stamp##*/.txsse-installed-}_" in *"_${extra}_"*) ;; *) continue 2 ;; esac
        done
        return 0
    done
    return 1
}
if ! installed; then
    echo "txsse: installing txsse${EXTRAS:+[$EXTRAS]}${REQUIREMENTS:+ and $REQUIREMENTS} into $VENV" >&2
    "${PIP[@]}" --upgrade pip
    if [ -n "$REQUIREMENTS" ]; then
        "${PIP[@]}" -r "$REQUIREMENTS"
    fi
    ( cd "$ROOT" && "${PIP[@]}" -e ".${EXTRAS:+[$EXTRAS]}" )
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
