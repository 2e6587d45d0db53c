#!/usr/bin/env bash
# Check cb-supervisor's seccomp filter on every architecture it has one for,
# from whatever machine this runs on, so that a change made and tested on
# x86-64 cannot leave aarch64 (Apple silicon, Graviton) without a filter or
# unable to build. For each architecture (x86_64, aarch64):
#
#   build    the supervisor with the Dockerfile's flags, by the native gcc or
#            a cross compiler (<arch>-linux-gnu-gcc; Debian:
#            gcc-aarch64-linux-gnu libc6-dev-arm64-cross);
#   filter   a harness built for that architecture evaluates the filter
#            program (seccomp.c's, with that architecture's syscall numbers)
#            with a small classic-BPF interpreter against the policy —
#            natively, or under qemu-<arch>-static (Debian: qemu-user-static);
#   live     natively only: installs the filter in a child and checks that the
#            kernel refuses what the policy refuses (qemu-user does not
#            emulate seccomp, so there it must refuse to install the filter,
#            which is the supervisor's fail-closed path);
#   unenforced  the same with a prctl that accepts the filter and installs
#            nothing (as an emulator might): installing must be reported as
#            failed, never taken for done.
#
# Then, for any cross compiler present for an architecture without a filter
# (riscv64, 32-bit arm, i686, ppc64le, s390x), it checks that the supervisor
# refuses to build there. A missing compiler or emulator is a skip with a
# message, but a failure with CB_REQUIRE_ALL_ARCHES=1, the default when
# CI=true (as Docker tests must run there, so must these). Exits 0 if every
# check that ran passed.
set -euo pipefail

cd "$(dirname "$0")/../runtimes/supervisor"
FLAGS=(-std=c11 -O2 -Wall -Wextra -Werror -static)
SOURCES=(supervisor.c workspace.c seccomp.c host.c session.c)
host=$(uname -m)
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { echo "check-supervisor-arches: $*"; }
fail() { say "FAIL: $*"; failed=1; }
if [ "${CI:-}" = true ]; then require=${CB_REQUIRE_ALL_ARCHES:-1}; else require=${CB_REQUIRE_ALL_ARCHES:-0}; fi
skip() {
    if [ "$require" = 1 ]; then fail "$* (CB_REQUIRE_ALL_ARCHES=1)"; else say "skip: $*"; fi
}

compiler_for() { # the gcc that builds for $1, or nothing
    if command -v "$1-linux-gnu-gcc" >/dev/null; then
        echo "$1-linux-gnu-gcc"
    elif [ "$1" = "$host" ] && command -v gcc >/dev/null; then
        echo gcc
    fi
}

emulator_for() { # how to run a binary for $1 here: "" natively, else qemu, else "none"
    if [ "$1" = "$host" ]; then
        echo ""
    elif command -v "qemu-$1-static" >/dev/null; then
        echo "qemu-$1-static"
    elif command -v "qemu-$1" >/dev/null; then
        echo "qemu-$1"
    else
        echo none
    fi
}

# The policy, stated apart from seccomp.c so that the two must agree.
cat >"$work/harness.c" <<'EOF'
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp.h"

#if defined(__x86_64__)
#define NATIVE AUDIT_ARCH_X86_64
#define OTHER AUDIT_ARCH_I386
#define ON_OTHER (SECCOMP_RET_ERRNO | ENOSYS)
#elif defined(__aarch64__)
#define NATIVE AUDIT_ARCH_AARCH64
#define OTHER AUDIT_ARCH_ARM
#define ON_OTHER SECCOMP_RET_KILL_PROCESS
#endif
#define ALLOW SECCOMP_RET_ALLOW
#define EPERM_ (SECCOMP_RET_ERRNO | EPERM)
#define ENOSYS_ (SECCOMP_RET_ERRNO | ENOSYS)

static int failures;

/* Classic BPF, just the instructions a seccomp filter of ours may use. */
static uint32_t run(const struct sock_fprog *p, const struct seccomp_data *d)
{
    uint32_t a = 0;
    for (unsigned pc = 0; pc < p->len; pc++) {
        const struct sock_filter *f = &p->filter[pc];
        switch (f->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (f->k % 4 || f->k + 4 > sizeof *d) goto bad;
            memcpy(&a, (const char *)d + f->k, 4);
            break;
        case BPF_JMP | BPF_JEQ | BPF_K: pc += a == f->k ? f->jt : f->jf; break;
        case BPF_JMP | BPF_JGE | BPF_K: pc += a >= f->k ? f->jt : f->jf; break;
        case BPF_JMP | BPF_JSET | BPF_K: pc += (a & f->k) ? f->jt : f->jf; break;
        case BPF_RET | BPF_K: return f->k;
        default: goto bad;
        }
    }
bad:
    printf("filter: instruction or jump the kernel would reject\n");
    exit(1);
}

static void expect(const char *what, uint32_t arch, uint32_t nr, uint64_t arg0, uint32_t want)
{
    struct seccomp_data d = {.nr = (int)nr, .arch = arch, .args = {arg0}};
    uint32_t got = run(syscall_filter(), &d);
    if (got != want) {
        printf("filter: %s: got %#x, want %#x\n", what, got, want);
        failures++;
    }
}

static const struct { const char *name; unsigned long flag; } namespaces[] = {
    {"NEWNS", CLONE_NEWNS}, {"NEWUTS", CLONE_NEWUTS}, {"NEWIPC", CLONE_NEWIPC},
    {"NEWUSER", CLONE_NEWUSER}, {"NEWPID", CLONE_NEWPID}, {"NEWNET", CLONE_NEWNET},
    {"NEWCGROUP", CLONE_NEWCGROUP},
};

static int evaluate(void)
{
    const unsigned long thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                                 CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID |
                                 CLONE_CHILD_CLEARTID;
    expect("read", NATIVE, __NR_read, 0, ALLOW);
    expect("openat", NATIVE, __NR_openat, 0, ALLOW);
    expect("execve", NATIVE, __NR_execve, 0, ALLOW);
    expect("exit_group", NATIVE, __NR_exit_group, 0, ALLOW);
    expect("io_uring_setup", NATIVE, __NR_io_uring_setup, 0, EPERM_);
    expect("io_uring_enter", NATIVE, __NR_io_uring_enter, 0, EPERM_);
    expect("io_uring_register", NATIVE, __NR_io_uring_register, 0, EPERM_);
    expect("setns", NATIVE, __NR_setns, 0, EPERM_);
    expect("clone3", NATIVE, __NR_clone3, 0, ENOSYS_);
    expect("fork by clone", NATIVE, __NR_clone, SIGCHLD, ALLOW);
    expect("thread by clone", NATIVE, __NR_clone, thread, ALLOW);
    expect("clone, high word only", NATIVE, __NR_clone, 1ull << 32 | SIGCHLD, ALLOW);
    expect("unshare files", NATIVE, __NR_unshare, CLONE_FILES | CLONE_FS, ALLOW);
    for (size_t i = 0; i < sizeof namespaces / sizeof namespaces[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "unshare %s", namespaces[i].name);
        expect(what, NATIVE, __NR_unshare, namespaces[i].flag, EPERM_);
        snprintf(what, sizeof what, "clone %s", namespaces[i].name);
        expect(what, NATIVE, __NR_clone, namespaces[i].flag | SIGCHLD, EPERM_);
    }
    expect("other ABI read", OTHER, __NR_read, 0, ON_OTHER);
    expect("other ABI io_uring_setup", OTHER, __NR_io_uring_setup, 0, ON_OTHER);
    expect("unknown arch", 0, __NR_read, 0, ON_OTHER);
#ifdef __x86_64__
    expect("x32 read", NATIVE, __X32_SYSCALL_BIT | 0, 0, ENOSYS_);
    expect("x32 io_uring_setup", NATIVE, __X32_SYSCALL_BIT | 425, 0, ENOSYS_);
#endif
    return failures ? 1 : 0;
}

/* The real thing: the kernel applies the filter. 3: it could not be installed. */
static int live(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        const char *why = restrict_syscalls();
        if (why) {
            printf("live: cannot install the filter: %s\n", why);
            _exit(3);
        }
        int bad = 0;
#define REFUSED(call, err) \
    if ((call) != -1 || errno != (err)) \
        bad = 1, printf("live: %s not refused with %s\n", #call, #err)
        REFUSED(syscall(__NR_io_uring_setup, 4, NULL), EPERM);
        REFUSED(syscall(__NR_setns, -1, 0), EPERM);
        REFUSED(syscall(__NR_unshare, CLONE_NEWUSER), EPERM);
        REFUSED(syscall(__NR_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0), EPERM);
        REFUSED(syscall(__NR_clone3, NULL, 0), ENOSYS);
        pid_t kid = fork();
        if (kid == 0) _exit(7);
        int status = 0;
        if (kid < 0 || waitpid(kid, &status, 0) != kid || WEXITSTATUS(status) != 7)
            bad = 1, printf("live: fork under the filter failed\n");
        _exit(bad);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 1;
    return WEXITSTATUS(status);
}

#ifdef FAKE_PRCTL
/* prctl, when built with -Dprctl=fake_prctl: says yes to a filter and installs none. */
int fake_prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
    va_end(ap);
    return option == PR_SET_SECCOMP ? 0 : (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}
#endif

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* the live child ends with _exit */
    return argc > 1 && strcmp(argv[1], "live") == 0 ? live() : evaluate();
}
EOF

for arch in x86_64 aarch64; do
    cc=$(compiler_for "$arch")
    if [ -z "$cc" ]; then
        skip "$arch: no compiler (${arch}-linux-gnu-gcc)"
        continue
    fi
    if ! "$cc" "${FLAGS[@]}" -o "$work/cb-supervisor-$arch" "${SOURCES[@]}"; then
        fail "$arch: the supervisor does not build with $cc"
        continue
    fi
    say "$arch: the supervisor builds ($cc)"
    if ! "$cc" "${FLAGS[@]}" -I. -o "$work/harness-$arch" "$work/harness.c" seccomp.c ||
        ! "$cc" "${FLAGS[@]}" -I. -DFAKE_PRCTL -o "$work/unenforced-$arch" "$work/harness.c" \
            -Dprctl=fake_prctl seccomp.c; then
        fail "$arch: the filter harness does not build"
        continue
    fi
    emulator=$(emulator_for "$arch")
    if [ "$emulator" = none ]; then
        skip "$arch: cannot run its binaries here (no qemu-$arch-static)"
        continue
    fi
    run=("$work/harness-$arch")
    if [ -n "$emulator" ]; then run=("$emulator" "${run[@]}"); fi
    if "${run[@]}"; then
        say "$arch: the filter program matches the policy${emulator:+ (under $emulator)}"
    else
        fail "$arch: the filter program does not match the policy"
    fi
    status=0
    out=$("${run[@]}" live) || status=$?
    if [ -z "$emulator" ] && [ "$status" = 0 ]; then
        say "$arch: the kernel enforces the filter"
    elif [ -n "$emulator" ] && [ "$status" = 3 ]; then
        say "$arch: $emulator does not emulate seccomp and the filter is refused (fail closed);" \
            "the kernel's enforcement is not checked here"
    elif [ -n "$emulator" ] && [ "$status" = 0 ]; then
        say "$arch: the filter is enforced under $emulator"
    else
        fail "$arch: live check failed (status $status: $out)"
    fi
    status=0
    out=$("${run[@]/harness-$arch/unenforced-$arch}" live) || status=$?
    if [ "$status" = 3 ] && grep -q "not enforced" <<<"$out"; then
        say "$arch: a filter accepted but not enforced is reported as not installed"
    else
        fail "$arch: a filter accepted but not enforced went unnoticed (status $status: $out)"
    fi
done

# Architectures without a filter: the build must stop with our #error.
for cc in riscv64-linux-gnu-gcc arm-linux-gnueabihf-gcc i686-linux-gnu-gcc \
    powerpc64le-linux-gnu-gcc s390x-linux-gnu-gcc; do
    command -v "$cc" >/dev/null || continue
    if out=$("$cc" "${FLAGS[@]}" -o "$work/unfiltered" "${SOURCES[@]}" 2>&1); then
        fail "$cc: the supervisor builds where it has no seccomp filter"
    elif grep -q "has no seccomp filter for" <<<"$out"; then
        say "$cc: refused: $(grep -o -m1 'cb-supervisor has no seccomp filter for [^"]*' <<<"$out")"
    else
        fail "$cc: the build failed for another reason: $(head -3 <<<"$out")"
    fi
done

exit "$failed"
