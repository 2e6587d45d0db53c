/*
 * What supervisor.c shares with session mode (session.c): the limits of a
 * request's fields, the program's side of a fork (run_child), the uid we keep
 * apart from the program's (take_own_uid), the frame header, and the cgroup
 * and clock readings both modes report from.
 */
#ifndef CB_SUPERVISOR_H
#define CB_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#define MAX_PATH 4096              /* bytes per file path */
#define MAX_ARGS 4096
#define MAX_ENVS 4096
#define MAX_PATTERNS 256
#define MAX_STR (1u << 20)         /* bytes per argv/env/pattern string */
#define MAX_LIMIT_MS 1000000000000ull /* wall_ms/cpu_ms are clamped to this */
#define CHUNK 65536                /* frame payload limit and read size */
#define CPU_POLL_MS 10             /* CPU sampling period */
#define SANDBOX_ID 65534           /* uid and gid of the program */
#define SUPERVISOR_UID 65533       /* our real and saved uid when started as root */

/* We hold a uid the program does not (set by take_own_uid, or by the host). */
extern int own_uid;
/* Session mode: every frame carries a u32 id after its type, frame_id. */
extern int frame_tagged;
extern uint32_t frame_id;
/* The SIGCHLD self-pipe (watch_children): readable after a child changed state. */
extern int sig_pipe[2];
/* Whether the cgroup's OOM kill counter could be read by the last oom_kills(). */
extern int oom_counted;

uint64_t now_us(void);
int write_all(int fd, const void *buf, size_t n);
/* Why a request's file path is unacceptable, or NULL if it is fine. */
const char *bad_path(const char *p, size_t len);
/* OOM kills counted by the sandbox's cgroup so far (0 if unknown: see oom_counted). */
uint64_t oom_kills(void);
/* Make SIGCHLD wake a poll loop through sig_pipe. */
void watch_children(void);

/*
 * Started as root (gVisor): drop every capability and keep a uid of our own,
 * the effective uid the program's. A no-op when started as the program's user.
 */
void take_own_uid(void);

/*
 * In a forked child: become the command argv (environment envp, RLIMIT_CPU
 * from cpu_ms if not 0, working directory cwd if not NULL or empty) with
 * stdin, stdout and stderr on the pipes in[0], out[1], err[1]; or say why
 * not and exit 127. What keeps it from running at all (the syscall filter,
 * the working directory) is written to why_fd, which is closed unwritten
 * otherwise just before the exec.
 */
__attribute__((noreturn)) void run_child(const int *in, const int *out, const int *err, int why_fd,
                                         char *const *argv, char *const *envp, uint64_t cpu_ms,
                                         const char *cwd);

#endif
