#!/usr/bin/env bash
# Make sure the outside programs the observability tests drive are installed,
# on a fresh Debian machine (CI calls this after ensure-docker.sh; run as root).
# Idempotent: with both present it changes nothing.
#
#   prometheus      a real Prometheus server: the metrics test starts one on a
#                   free loopback port and queries it through its HTTP API
#                   (the test never uses the packaged systemd service).
#   docker-compose  Debian's compose v1, to validate deploy/compose.yaml
#                   (`docker-compose config`); Debian's Docker 20.10 has no
#                   `docker compose` plugin.
#   redis-server    a real Redis (Debian's 7.0): the operations queue's Redis
#                   store and the two-servers-on-one-Redis tests start their own
#                   on a free loopback port (never the packaged service).
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user-static
#                   scripts/check-supervisor-arches.sh builds cb-supervisor for
#                   aarch64 and checks its seccomp filter there.
set -euo pipefail

say() { echo "ensure-test-tools: $*" >&2; }
die() { say "error: $*"; exit 1; }

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)

if [ "${#missing[@]}" -eq 0 ]; then
    say "prometheus, docker-compose, redis-server and the aarch64 tools present; nothing to do"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root: run this script as root (sudo $0)"
apt-get update -qq
say "installing ${missing[*]}"
# policy-rc.d: the packages must not start their own Prometheus (port 9090) or
# Redis (port 6379) service on a machine with an init system; the tests start
# their own on free ports.
policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=yes
fi
trap 'if [ "$created_policy" = yes ]; then rm -f "$policy"; fi' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
say "installed: prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}'), $(docker-compose version --short 2>/dev/null || echo docker-compose), $(redis-server --version | awk '{print $1, $3}')"
