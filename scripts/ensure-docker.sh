#!/usr/bin/env bash
# Make sure a Docker engine answers and mmdebstrap is installed, on a fresh
# Debian machine (CI calls this; run as root). Idempotent: with Docker already
# answering and mmdebstrap present it changes nothing.
#
# No container registry can be reached from our machines, so the runtime images
# are built from Debian packages: mmdebstrap makes the base image
# (python -m codebeaker.runtimes.docker.images build does that when needed).
#
# Environment: DOCKERD_LOG (default /var/log/dockerd.log),
#              DOCKER_WAIT_SECONDS (default 60).
set -euo pipefail

LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
PIDFILE=/var/run/docker.pid

say() { echo "ensure-docker: $*" >&2; }
die() { say "error: $*"; exit 1; }

docker_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

apt_updated=no
apt_install() {
    [ "$(id -u)" -eq 0 ] || die "installing $* needs root: run this script as root (sudo $0)"
    if [ "$apt_updated" = no ]; then
        apt-get update -qq
        apt_updated=yes
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
}

DAEMON_JSON=/etc/docker/daemon.json
runsc_registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

# gVisor's release: trixie's runsc (2024-07-29). Bookworm's (2022-12-19)
# answers statx with EINVAL, so the nested mounts of a sandbox host fail under
# it. The binary is static with no package dependencies; trixie is added as an
# apt source pinned low (100), so nothing else is taken from it.
RUNSC_RELEASE=20240729
TRIXIE_SOURCES=/etc/apt/sources.list.d/codebeaker-trixie.sources
TRIXIE_PIN=/etc/apt/preferences.d/codebeaker-trixie
runsc_current() { # not a pipe: under pipefail, a reader that stops early fails it
    command -v runsc >/dev/null && [[ "$(runsc --version 2>/dev/null)" == *"$RUNSC_RELEASE"* ]]
}
install_trixie_runsc() {
    [ "$(id -u)" -eq 0 ] || die "installing gVisor's runsc ($RUNSC_RELEASE) needs root: sudo $0"
    if ! grep -qs trixie /etc/os-release && [ ! -s "$TRIXIE_SOURCES" ]; then
        say "adding Debian trixie as an apt source pinned at 100 (for runsc only)"
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            >"$TRIXIE_SOURCES"
        printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$TRIXIE_PIN"
        apt_updated=no
    fi
    [ "$apt_updated" = yes ] || { apt-get update -qq; apt_updated=yes; }
    say "installing runsc from trixie"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t trixie runsc >/dev/null
    runsc_current || die "runsc --version does not report release $RUNSC_RELEASE"
}

# gVisor as a second OCI runtime: Debian's runsc, registered with the engine
# with its own network stack off (--network=none; the ptrace platform, as the
# KVM one hangs here) and without direct file access from the Sentry
# (--directfs=false: with it, the 2024 release runs the Sentry as host root in
# its own user namespace; without, as nobody with no capability, file access
# going through the gofer). A running engine re-reads its runtimes on SIGHUP.
RUNSC_ARGS='["--network=none", "--directfs=false"]'
runsc_configured() {
    python3 - "$DAEMON_JSON" "$(command -v runsc)" "$RUNSC_ARGS" <<'PY'
import json, os, sys
path, runsc, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
wanted = {"path": runsc, "runtimeArgs": args}
sys.exit(0 if config.get("runtimes", {}).get("runsc") == wanted else 1)
PY
}
ensure_runsc() {
    runsc_current || install_trixie_runsc
    runsc_registered && runsc_configured && return 0
    say "registering runsc with the Docker engine ($DAEMON_JSON)"
    mkdir -p "$(dirname "$DAEMON_JSON")"
    python3 - "$DAEMON_JSON" "$(command -v runsc)" "$RUNSC_ARGS" <<'PY'
import json, os, sys
path, runsc, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
config.setdefault("runtimes", {})["runsc"] = {"path": runsc, "runtimeArgs": args}
with open(path, "w") as out:
    json.dump(config, out, indent=2)
PY
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl reload docker || true
    elif [ -s "$PIDFILE" ]; then
        kill -HUP "$(cat "$PIDFILE")"
    fi
    for ((i = 0; i < 20; i++)); do
        runsc_registered && return 0
        sleep 0.5
    done
    die "runsc is installed but the engine did not pick it up: check $DAEMON_JSON"
}

if docker_answers; then
    ensure_mmdebstrap
    ensure_runsc
    say "Docker engine answers (runtimes: runc, runsc); mmdebstrap present"
    exit 0
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
# docker.io also brings the client; a client may exist alone (e.g. /usr/local/bin/docker).
command -v docker >/dev/null || [[ " ${missing[*]} " == *" docker.io "* ]] || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"

[ "$(id -u)" -eq 0 ] || die "no Docker engine answers and starting one needs root: sudo $0"

# A dockerd that is still starting (or a second call of this script) must not
# get a twin: a live pid in its pid file means wait for it instead.
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "dockerd (pid $(cat "$PIDFILE")) is already running; waiting for it to answer"
elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    say "starting docker with systemd"
    systemctl start docker || true  # the wait below reports what went wrong
    LOG="(see: journalctl -u docker)"
else
    say "starting dockerd in the background (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # setsid + nohup: the daemon outlives this script and its terminal.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
    started_pid=$!
fi

answered=no
for ((i = 0; i < WAIT_SECONDS; i++)); do
    if docker_answers; then
        answered=yes
        break
    fi
    # No point waiting out the clock for a daemon that already gave up.
    if [ -n "${started_pid:-}" ] && ! kill -0 "$started_pid" 2>/dev/null; then
        break
    fi
    sleep 1
done
if [ "$answered" = yes ]; then
    say "Docker engine answers (server $(docker info --format '{{.ServerVersion}}'))"
    ensure_runsc
    exit 0
fi

if [ -n "${started_pid:-}" ] && ! kill -0 "$started_pid" 2>/dev/null; then
    say "error: dockerd exited instead of starting"
else
    say "error: the Docker engine did not answer within ${WAIT_SECONDS}s"
fi
if [ -f "$LOG" ]; then
    say "last lines of $LOG:"
    tail -n 30 "$LOG" >&2
else
    say "log: $LOG"
    if [ -d /run/systemd/system ]; then journalctl -u docker -n 30 --no-pager >&2 || true; fi
fi
exit 1
