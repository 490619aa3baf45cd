#!/usr/bin/env bash
# Kept for old commands: the same as `benchmarks/run.sh blocking ...`.
exec "$(dirname "$0")/run.sh" blocking "$@"
