#!/usr/bin/env bash
# `buf breaking` against the previous commit: fails when the .proto files of
# the working tree break compatibility with HEAD~1 (rules in buf.yaml). Skips,
# saying so, where there is no previous commit to compare with (a one-commit
# repository, a clone of depth 1, a tree outside git). `make lint` runs it.
#
# The previous commit's proto/ and buf.yaml are unpacked into a temporary
# directory, beside the same include directory of googleapis symlinks the
# working tree uses (PROTO_DEPS, `make proto-deps`; it is git-ignored, so the
# commit does not carry it).
#
# Environment: BUF (the buf binary, default: buf on PATH),
#              PROTO_DEPS (default build/proto-deps).
set -euo pipefail

BUF="${BUF:-buf}"
PROTO_DEPS="${PROTO_DEPS:-build/proto-deps}"
cd "$(dirname "$0")/.."

if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null 2>&1; then
    echo "buf breaking: skipped, no previous commit to compare against" >&2
    exit 0
fi
before="$(mktemp -d)"
trap 'rm -rf "$before"' EXIT
git archive HEAD~1 proto buf.yaml | tar -x -C "$before"
if [ -d "$PROTO_DEPS" ]; then
    mkdir -p "$before/$(dirname "$PROTO_DEPS")"
    ln -s "$PWD/$PROTO_DEPS" "$before/$PROTO_DEPS"
fi
# Only our module is compared: the dependencies are the installed package's.
"$BUF" build "$before/proto" -o "$before/image.binpb"
exec "$BUF" breaking proto --against "$before/image.binpb"
