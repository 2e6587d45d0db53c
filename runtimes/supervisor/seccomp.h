/*
 * cb-supervisor's own seccomp filter, installed in the program's process
 * before exec on top of whatever the engine installs. It lives apart from
 * supervisor.c so that one policy serves every architecture, each with its
 * own audit arch and syscall numbers, and so that a check can evaluate the
 * filter for an architecture it cannot run natively
 * (scripts/check-supervisor-arches.sh). An architecture without a filter
 * does not build: the supervisor never runs a program unfiltered.
 */
#ifndef CB_SECCOMP_H
#define CB_SECCOMP_H

#include <linux/filter.h>

/* The filter for the architecture being built (static storage, never freed). */
const struct sock_fprog *syscall_filter(void);

/*
 * Set no_new_privs, install the filter on the calling thread and check that
 * the kernel enforces it. Returns NULL on success, else why not (static
 * text; errno says more where it is set, else 0).
 */
const char *restrict_syscalls(void);

#endif
