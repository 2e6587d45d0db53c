#!/usr/bin/env bash
# `buf breaking` against the previous commit: fails when the .proto files of
# the working tree break compatibility with HEAD~1 (rules in buf.yaml). Skips,
# saying so, where there is no previous commit to compare with (a one-commit
# repository, a clone of depth 1, a tree outside git). `make lint` runs it.
#
# Environment: BUF (the buf binary, default: buf on PATH).
set -euo pipefail

BUF="${BUF:-buf}"
cd "$(dirname "$0")/.."

if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null 2>&1; then
    echo "buf breaking: skipped, no previous commit to compare against" >&2
    exit 0
fi
exec "$BUF" breaking --against '.git#ref=HEAD~1'
