#!/usr/bin/env bash
# Kept for old commands: the same as `benchmarks/run.sh hub ...`.
exec "$(dirname "$0")/run.sh" hub "$@"
