#!/usr/bin/env bash
# Make sure VENV (default .venv) is a working virtualenv: its python runs, is
# at least 3.11, and imports pip. The Makefile calls this before every target
# that needs the venv, so a half-made one (an interrupted `python3 -m venv`,
# Debian's python3 without python3-venv, a deleted interpreter) is rebuilt
# rather than failing later in pip. Installing the package is the Makefile's.
#
# On Debian, as root, what is missing is installed (python3, python3-venv);
# otherwise it stops with one sentence saying what to run.
#
# Usage: scripts/ensure-venv.sh [--check] [VENV]     Environment: PYTHON (default python3)
#   --check   change nothing; exit 0 if VENV is usable, 1 if not
set -euo pipefail

check_only=no
if [ "${1:-}" = --check ]; then
    check_only=yes
    shift
fi
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"

say() { echo "ensure-venv: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The interpreter runs, is new enough, and has pip: the venv is usable.
usable() {
    "$1" -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

if [ -x "$VENV/bin/python" ] && usable "$VENV/bin/python"; then
    exit 0
fi
[ "$check_only" = no ] || exit 1

can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; }

apt_updated=no
apt_install() {
    if [ "$apt_updated" = no ]; then
        apt-get update -qq
        apt_updated=yes
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v "$PYTHON" >/dev/null; then
    # Debian's python3 is only an answer when python3 is what was asked for.
    if [ "$PYTHON" != python3 ] || ! can_apt; then
        die "$PYTHON not found: install Python 3.11 or newer (Debian, as root: apt-get install python3 python3-venv)"
    fi
    apt_install python3 python3-venv
    command -v python3 >/dev/null || die "python3 is still missing after apt-get install python3"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" --version 2>&1), CodeBeaker needs 3.11 or newer: run make PYTHON=python3.11 (or newer)"

if [ -e "$VENV" ]; then
    say "$VENV is half-made (no usable bin/python with pip): rebuilding it"
    rm -rf "$VENV"
fi

make_venv() {
    if "$PYTHON" -m venv "$VENV" >/dev/null 2>&1 && usable "$VENV/bin/python"; then
        return 0
    fi
    rm -rf "$VENV"  # what a failed `venv` leaves (no pip) must not look finished
    return 1
}

if make_venv; then
    say "created $VENV ($("$VENV/bin/python" --version))"
    exit 0
fi
# Debian splits venv's ensurepip into its own package.
can_apt || die "$PYTHON -m venv fails (on Debian: python3-venv is missing): as root run apt-get install python3-venv, then make again"
apt_install python3-venv
make_venv || die "$PYTHON -m venv still fails after installing python3-venv: run $PYTHON -m venv $VENV to see why"
say "created $VENV ($("$VENV/bin/python" --version))"
