/*
 * See seccomp.h. The policy: what no program needs and the host kernel
 * should not be asked for. io_uring (Docker 20.10's default profile allows it
 * under runc) and new namespaces (gVisor allows unprivileged user namespaces,
 * and with them raw sockets) fail with EPERM. clone3 passes its flags in
 * memory the filter cannot read, so it is ENOSYS, which makes the C library
 * fall back to clone, whose flags we check. Only the architecture's own
 * syscall ABI gets through; the check comes first, since the syscall numbers
 * mean nothing under another ABI.
 */
#define _GNU_SOURCE

/* Before any header, so that on another architecture this is the first error. */
#if defined(__x86_64__) && !defined(__ILP32__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
/* i386 calls (int 0x80) can come from the same 64-bit process: they fail, as before. */
#define FOREIGN_ABI (SECCOMP_RET_ERRNO | ENOSYS)
#elif defined(__x86_64__)
#error "cb-supervisor has no seccomp filter for the x32 ABI: build it for x86-64 (-m64)"
#elif defined(__aarch64__) && defined(__AARCH64EL__) && !defined(__ILP32__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
/* AArch32 calls come only from an exec'd 32-bit binary; all of them, exit
 * included, would fail, so the process dies instead. */
#define FOREIGN_ABI SECCOMP_RET_KILL_PROCESS
#elif defined(__aarch64__)
#error "cb-supervisor has no seccomp filter for big-endian or ILP32 aarch64"
#elif defined(__i386__)
#error "cb-supervisor has no seccomp filter for i386 (only for x86-64 and aarch64)"
#elif defined(__arm__)
#error "cb-supervisor has no seccomp filter for 32-bit arm (only for x86-64 and aarch64)"
#elif defined(__riscv)
#error "cb-supervisor has no seccomp filter for riscv (only for x86-64 and aarch64)"
#elif defined(__powerpc__)
#error "cb-supervisor has no seccomp filter for powerpc (only for x86-64 and aarch64)"
#elif defined(__s390__)
#error "cb-supervisor has no seccomp filter for s390 (only for x86-64 and aarch64)"
#elif defined(__mips__)
#error "cb-supervisor has no seccomp filter for mips (only for x86-64 and aarch64)"
#elif defined(__loongarch__)
#error "cb-supervisor has no seccomp filter for loongarch (only for x86-64 and aarch64)"
#else
#error "cb-supervisor has no seccomp filter for this architecture (only for x86-64 and aarch64)"
#endif

#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                         CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)
#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define DENY(nr, err) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
                      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err))
/* args[0] loads its low word (both architectures are little-endian), where
 * every namespace flag lives; clone ignores the high word of its flags. */
#define DENY_FLAGS(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 3), \
                       LOAD(args[0]), \
                       BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1), \
                       BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)

static struct sock_filter code[] = {
    LOAD(arch),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, FOREIGN_ABI),
    LOAD(nr),
#ifdef __x86_64__
    /* x32 calls share the arch value and set this bit in the number. */
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
#endif
    DENY(__NR_io_uring_setup, EPERM),
    DENY(__NR_io_uring_enter, EPERM),
    DENY(__NR_io_uring_register, EPERM),
    DENY(__NR_setns, EPERM),
    DENY(__NR_clone3, ENOSYS),
    DENY_FLAGS(__NR_unshare),
    LOAD(nr),
    DENY_FLAGS(__NR_clone),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static struct sock_fprog prog = {(unsigned short)(sizeof code / sizeof code[0]), code};

const struct sock_fprog *syscall_filter(void)
{
    return &prog;
}

const char *restrict_syscalls(void)
{
    /* no_new_privs lets an unprivileged process install a filter (the engine sets it). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return "cannot set no_new_privs";
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) return "PR_SET_SECCOMP failed";
    /* An emulator may accept a filter and not apply it: ask for something it refuses. */
    errno = 0;
    if (syscall(__NR_io_uring_setup, 0, NULL) != -1 || errno != EPERM) {
        errno = 0;
        return "it is not enforced (io_uring_setup was not refused)";
    }
    return NULL;
}
