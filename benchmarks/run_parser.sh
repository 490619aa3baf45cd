#!/usr/bin/env bash
# Kept for old commands: the same as `benchmarks/run.sh parser ...`.
exec "$(dirname "$0")/run.sh" parser "$@"
