/*
 * Session mode: see session.h and PROTOCOL.md § Session mode.
 *
 * One single-threaded poll(2) loop. The server's frames are read from fd 0
 * as they come (a partial frame never holds the loop up) and dispatched by
 * type. Each Exec is a forked child that becomes its program through
 * run_child, exactly as a one-shot stage's child does, in its own process
 * group; its stdin is fed from a queue of the server's `i` frames and its
 * stdout and stderr are forwarded as `1`/`2` frames tagged with its id.
 * Once its program is reaped and both pipes reached EOF (or DRAIN_MS after
 * the exit) its report goes out as `X`; a pipe a background process still
 * holds is then read and dropped until EOF, so that process never gets
 * SIGPIPE. File, usage and hello requests are served at once, between two
 * rounds of the loop. One bad request never ends the session: it gets an
 * `F` frame for its id and the loop goes on.
 */
#define _GNU_SOURCE
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor.h"
#include "workspace.h"

#define WORKSPACE "/workspace"
#define MAX_EXECS 64                      /* Execs running at once */
#define MAX_FRAME ((16u << 20) + 65536u)  /* payload bytes of a frame towards us */
#define MAX_UNACKED (256u << 10)          /* stdin bytes of an Exec not yet acknowledged */
#define DRAIN_MS 100                      /* longest wait for pipe EOF after the program exits */
#define MAX_DISCARDS 256                  /* pipes of ended Execs still read and dropped */
#define MAX_LISTED 1000                   /* entries per `l` reply */
#define MAX_SCANNED 100000                /* entries read from one directory */
#define ENTRY_HEAD 27                     /* bytes of an N entry before its name */
#define NONCE 16
#define CREATE_MASK 022                   /* the umask main() sets */
#define HEAD 9                            /* type u8, id u32, len u32 */

enum { EXEC_CLOSE_STDIN = 1 }; /* `s` flags; bit 1 (detached) is the server's, only kept */

struct chunk { /* one `i` frame waiting for the program's stdin */
    struct chunk *next;
    size_t len, off;
    unsigned char data[];
};

struct output { /* an Exec's stdout or stderr */
    int fd, type;  /* our read end; '1' or '2' */
    uint64_t sent; /* bytes forwarded */
    int cut;       /* the program wrote more than the cap */
};

struct exec {
    int used;      /* slot taken: started, X not sent yet */
    uint32_t id, flags;
    pid_t pid;
    int running;   /* the program is not reaped yet: its pid and process group are ours */
    int killed;    /* we sent it SIGKILL */
    int status;
    struct rusage usage;
    uint64_t t0, t_exit, deadline, drain_end, next_cpu, cpu_ms, cap, oom0;
    int wall_hit, cpu_hit;
    int in_fd;         /* the program's stdin, -1 once closed */
    int close_stdin;   /* `c` came: close once the queue is written */
    struct chunk *head, *tail;
    uint64_t unacked;  /* stdin bytes queued, not acknowledged yet */
    struct output out, err;
};

static struct exec execs[MAX_EXECS];
static int discards[MAX_DISCARDS];
static size_t n_discards;
static unsigned char obuf[CHUNK];  /* program output, listing frames */
static unsigned char rbuf[CHUNK];  /* what was read from fd 0 */

/* The frame being read from fd 0. */
static struct {
    unsigned char head[HEAD];
    size_t head_got;
    unsigned char *payload; /* len bytes, got of them so far */
    size_t len, got;
    size_t skip;            /* payload bytes of a refused frame still to drop */
    int eof;
} in;

/* ---------- frames to the server ---------- */

static void send_to(uint32_t id, int type, const void *payload, size_t n)
{
    frame_id = id;
    send_frame(type, payload, n);
}

static void put_be(unsigned char *p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
}

static void send_u32(uint32_t id, int type, uint32_t v)
{
    unsigned char b[4];
    put_be(b, v, 4);
    send_to(id, type, b, 4);
}

/* An F frame for id with an ASCII message (also to stderr). */
static void refuse(uint32_t id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(uint32_t id, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    n = n < 0 ? 0 : n >= (int)sizeof msg ? (int)sizeof msg - 1 : n;
    for (int i = 0; i < n; i++) /* paths may hold any byte: keep it ASCII */
        if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e) msg[i] = '?';
    dprintf(2, "cb-supervisor: %" PRIu32 ": %.*s\n", id, n, msg);
    send_to(id, 'F', msg, (size_t)n);
}

/* ---------- reading a payload ---------- */

struct cursor {
    const unsigned char *p;
    size_t left;
    const char *why; /* set at the first problem; later reads give 0 or NULL */
};

static uint64_t take(struct cursor *c, size_t bytes)
{
    uint64_t v = 0;
    if (c->why) return 0;
    if (c->left < bytes) {
        c->why = "truncated";
        return 0;
    }
    for (size_t i = 0; i < bytes; i++) v = v << 8 | c->p[i];
    c->p += bytes, c->left -= bytes;
    return v;
}

/* A u32-counted string as a NUL-terminated copy, or NULL (c->why says why). */
static char *take_string(struct cursor *c, size_t max)
{
    size_t len = (size_t)take(c, 4);
    if (c->why) return NULL;
    if (len > c->left) c->why = "truncated";
    else if (len > max) c->why = "a string is too long";
    else if (memchr(c->p, '\0', len)) c->why = "a string contains NUL";
    char *s = c->why ? NULL : malloc(len + 1);
    if (!s) {
        if (!c->why) c->why = "out of memory";
        return NULL;
    }
    memcpy(s, c->p, len);
    s[len] = '\0';
    c->p += len, c->left -= len;
    return s;
}

static void free_strings(char **list)
{
    for (char **s = list; s && *s; s++) free(*s);
    free(list);
}

/* A u32 count, then that many strings: a NULL-terminated list, or NULL. */
static char **take_strings(struct cursor *c, uint32_t max_count, uint32_t *count)
{
    *count = (uint32_t)take(c, 4);
    if (c->why) return NULL;
    if (*count > max_count || *count > c->left / 4) {
        c->why = "too many strings";
        return NULL;
    }
    char **list = calloc((size_t)*count + 1, sizeof *list);
    if (!list) c->why = "out of memory";
    for (uint32_t i = 0; list && i < *count; i++)
        if (!(list[i] = take_string(c, MAX_STR))) {
            free_strings(list);
            return NULL;
        }
    return list;
}

/* ---------- Execs ---------- */

static struct exec *find_exec(uint32_t id)
{
    for (int i = 0; i < MAX_EXECS; i++)
        if (execs[i].used && execs[i].id == id) return &execs[i];
    return NULL;
}

static int running_execs(void)
{
    int n = 0;
    for (int i = 0; i < MAX_EXECS; i++) n += execs[i].used;
    return n;
}

/* SIGKILL the Exec's process group and its program, while they are still ours. */
static void kill_exec(struct exec *e)
{
    e->killed = 1;
    if (!e->running) return; /* reaped: the pid and group id may be someone else's now */
    kill(-e->pid, SIGKILL);
    kill(e->pid, SIGKILL);
}

/* Keep reading (and dropping) a pipe of an ended Exec until EOF; past the cap, close it. */
static void discard(int fd)
{
    if (fd < 0) return;
    if (n_discards < MAX_DISCARDS) discards[n_discards++] = fd;
    else close(fd);
}

/* Acknowledge and free the first stdin frame of the queue. */
static void ack_head(struct exec *e)
{
    struct chunk *c = e->head;
    e->head = c->next;
    if (!e->head) e->tail = NULL;
    e->unacked -= c->len;
    send_u32(e->id, 'A', (uint32_t)c->len);
    free(c);
}

/* Close the program's stdin; what is still queued is dropped (acknowledged if ack). */
static void close_stdin(struct exec *e, int ack)
{
    if (e->in_fd >= 0) close(e->in_fd);
    e->in_fd = -1;
    while (e->head) {
        if (ack) {
            ack_head(e);
        } else {
            struct chunk *c = e->head;
            e->head = c->next;
            free(c);
        }
    }
    e->tail = NULL;
    e->unacked = 0;
}

/* Write what the pipe takes of the queue; acknowledge each frame once all of it is written. */
static void feed_stdin(struct exec *e)
{
    while (e->in_fd >= 0 && e->head) {
        struct chunk *c = e->head;
        if (c->off < c->len) {
            ssize_t w = write(e->in_fd, c->data + c->off, c->len - c->off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                if (w < 0 && errno != EAGAIN) close_stdin(e, 1); /* EPIPE: the program closed it */
                return;
            }
            c->off += (size_t)w;
            if (c->off < c->len) continue;
        }
        ack_head(e);
    }
    if (e->in_fd >= 0 && e->close_stdin) close_stdin(e, 1);
}

/*
 * End an Exec with an F frame (its last): kill it, drop its stdin unacknowledged
 * and let its pipes be drained. Its slot (and id) is free at once; the program
 * is reaped later like any orphan.
 */
static void abort_exec(struct exec *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void abort_exec(struct exec *e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kill_exec(e);
    close_stdin(e, 0);
    discard(e->out.fd), discard(e->err.fd);
    e->used = 0;
    refuse(e->id, "%s", msg);
}

/* One read from a program pipe, forwarded up to the cap (cut exactly there). */
static void pump(struct exec *e, struct output *s)
{
    ssize_t n = read(s->fd, obuf, sizeof obuf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    uint64_t fwd = (uint64_t)n;
    if (e->cap > 0 && fwd > e->cap - s->sent) {
        fwd = e->cap - s->sent;
        if (!s->cut) s->cut = 1, kill_exec(e);
    }
    if (fwd > 0) send_to(e->id, s->type, obuf, (size_t)fwd);
    s->sent += fwd;
}

/* CPU time of a process and the children it waited for, from /proc, or 0. */
static uint64_t program_cpu_us(pid_t pid)
{
    char path[64], b[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0) return 0;
    b[n] = '\0';
    char *p = strrchr(b, ')'); /* the command name may hold spaces */
    if (!p) return 0;
    p++;
    uint64_t ticks = 0;
    for (int i = 0; i < 11 && p; i++) p = strchr(p + 1, ' '); /* to field 14, utime */
    for (int i = 0; i < 4 && p; i++) /* utime, stime, cutime, cstime */
        ticks += strtoull(p + 1, &p, 10);
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? ticks * 1000000u / (uint64_t)hz : 0;
}

static uint64_t timeval_us(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* The X frame: the program's end, its limits, its usage; the slot is free after it. */
static void finish_exec(struct exec *e)
{
    discard(e->out.fd), discard(e->err.fd);
    e->out.fd = e->err.fd = -1;
    int sig = WIFSIGNALED(e->status) ? WTERMSIG(e->status) : 0;
    int code = sig ? 128 + sig : WEXITSTATUS(e->status);
    uint64_t cpu = timeval_us(e->usage.ru_utime) + timeval_us(e->usage.ru_stime);
    /* RLIMIT_CPU (or our check, between two samples) ended it at its CPU time. */
    if (e->cpu_ms && (sig == SIGXCPU || sig == SIGKILL) && cpu >= e->cpu_ms * 1000) e->cpu_hit = 1;
    uint64_t oom1 = oom_kills(), ooms = oom1 > e->oom0 ? oom1 - e->oom0 : 0;
    uint64_t peak = (uint64_t)e->usage.ru_maxrss * 1024u;
    char text[512];
    int len = snprintf(text, sizeof text,
                       "exit_code=%d\nsignal=%d\nwall_us=%" PRIu64 "\ncpu_us=%" PRIu64
                       "\npeak_memory=%" PRIu64 "\noom_kills=%" PRIu64 "\noom_counted=%d"
                       "\nwall_limit=%d\ncpu_limit=%d\nstdout_truncated=%d\nstderr_truncated=%d\n",
                       code, sig, e->t_exit - e->t0, cpu, peak, ooms, oom_counted, e->wall_hit,
                       e->cpu_hit, e->out.cut, e->err.cut);
    e->used = 0;
    send_to(e->id, 'X', text, (size_t)len);
}

/* Limits of a running program; the end of an Exec whose program is reaped. */
static void check_exec(struct exec *e, uint64_t now)
{
    if (e->running && !e->killed) {
        if (e->deadline && now >= e->deadline) {
            e->wall_hit = 1;
            kill_exec(e);
        } else if (e->cpu_ms && now >= e->next_cpu) {
            e->next_cpu = now + CPU_POLL_MS * 1000;
            if (program_cpu_us(e->pid) >= e->cpu_ms * 1000) e->cpu_hit = 1, kill_exec(e);
        }
    }
    if (!e->running && ((e->out.fd < 0 && e->err.fd < 0) || now >= e->drain_end)) finish_exec(e);
}

/* Reap whatever exited (as PID 1, orphans too); a program's exit closes its stdin. */
static void reap_children(void)
{
    char junk[64];
    while (read(sig_pipe[0], junk, sizeof junk) > 0) {}
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid < 0 && errno == EINTR) continue;
        if (pid <= 0) return;
        for (int i = 0; i < MAX_EXECS; i++) {
            struct exec *e = &execs[i];
            if (!e->used || !e->running || e->pid != pid) continue;
            e->running = 0;
            e->status = status, e->usage = ru;
            e->t_exit = now_us();
            e->drain_end = e->t_exit + DRAIN_MS * 1000;
            close_stdin(e, 1); /* dropped: the program ended */
        }
    }
}

static int make_pipes(int p[][2], int n)
{
    for (int i = 0; i < n; i++)
        if (pipe2(p[i], O_CLOEXEC) < 0) {
            int err = errno;
            while (i-- > 0) close(p[i][0]), close(p[i][1]);
            errno = err;
            return -1;
        }
    return 0;
}

/* Why an Exec's working directory is unacceptable, or NULL (empty, ".", "a/" are fine). */
static const char *bad_cwd(const char *cwd)
{
    if (cwd[0] == '/') return "is absolute";
    for (const char *c = cwd;;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') return "has a .. component";
        if (!c[n]) return NULL;
        c += n + 1;
    }
}

/*
 * Fork the Exec's program (run_child, in cwd under the workspace) and wait
 * until it runs under its syscall filter (the why pipe closes), or refuse
 * the Exec with what kept it from running.
 */
static void spawn(struct exec *e, uint32_t id, uint32_t flags, const uint64_t limits[3],
                  const char *cwd, char **argv, char **envp)
{
    int p[4][2]; /* stdin, stdout, stderr, why */
    if (make_pipes(p, 4) < 0) {
        refuse(id, "pipe: %s", strerror(errno));
        return;
    }
    uint64_t oom0 = oom_kills(), t0 = now_us();
    pid_t pid = fork();
    if (pid == 0) run_child(p[0], p[1], p[2], p[3][1], argv, envp, limits[1], cwd);
    int fork_err = errno;
    close(p[0][0]), close(p[1][1]), close(p[2][1]), close(p[3][1]);
    char msg[512];
    ssize_t got = -1;
    if (pid > 0) {
        setpgid(pid, pid); /* the child does it too: no race either way */
        while ((got = read(p[3][0], msg, sizeof msg)) < 0 && errno == EINTR) {}
    }
    close(p[3][0]);
    if (got != 0) {
        close(p[0][1]), close(p[1][0]), close(p[2][0]);
        if (pid < 0) {
            refuse(id, "fork: %s", strerror(fork_err));
            return;
        }
        int err = errno;
        if (got < 0) kill(pid, SIGKILL); /* else it exits right after saying why */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        if (got > 0) refuse(id, "%.*s", (int)got, msg);
        else refuse(id, "cannot start the program: %s", strerror(err));
        return;
    }
    for (int i = 0; i < 3; i++) fcntl(p[i][i == 0 ? 1 : 0], F_SETFL, O_NONBLOCK);
    memset(e, 0, sizeof *e);
    e->used = e->running = 1;
    e->id = id, e->flags = flags, e->pid = pid;
    e->t0 = t0, e->next_cpu = t0, e->oom0 = oom0;
    e->deadline = limits[0] ? t0 + limits[0] * 1000 : 0;
    e->cpu_ms = limits[1], e->cap = limits[2];
    e->in_fd = p[0][1];
    e->out = (struct output){p[1][0], '1', 0, 0};
    e->err = (struct output){p[2][0], '2', 0, 0};
    send_u32(id, 'S', (uint32_t)pid);
    if (flags & EXEC_CLOSE_STDIN) close_stdin(e, 1);
}

/* `s`: flags, wall_ms, cpu_ms, output_cap, cwd, argv, envp. */
static void start_exec(uint32_t id, const unsigned char *p, size_t n)
{
    struct exec *e = NULL;
    for (int i = 0; i < MAX_EXECS && !e; i++)
        if (!execs[i].used) e = &execs[i];
    if (find_exec(id)) {
        refuse(id, "id %" PRIu32 " is a running Exec's", id);
        return;
    }
    if (!e) {
        refuse(id, "too many running Execs (at most %d)", MAX_EXECS);
        return;
    }
    struct cursor c = {p, n, NULL};
    uint32_t flags = (uint32_t)take(&c, 4), argc, envc;
    uint64_t limits[3]; /* wall_ms, cpu_ms, output_cap */
    for (int i = 0; i < 3; i++) limits[i] = take(&c, 8);
    for (int i = 0; i < 2; i++) limits[i] = limits[i] > MAX_LIMIT_MS ? MAX_LIMIT_MS : limits[i];
    char *cwd = take_string(&c, MAX_PATH);
    char **argv = take_strings(&c, MAX_ARGS, &argc), **envp = take_strings(&c, MAX_ENVS, &envc);
    const char *why = c.why;
    if (!why && c.left) why = "bytes after the environment";
    if (!why && argc < 1) why = "no command";
    for (char **v = envp; !why && *v; v++)
        if ((*v)[0] == '=' || !strchr(*v, '=')) why = "an environment entry is not KEY=VALUE";
    if (!why && (why = bad_cwd(cwd)))
        refuse(id, "malformed s frame: the working directory %s %s", cwd, why);
    else if (why)
        refuse(id, "malformed s frame: %s", why);
    else
        spawn(e, id, flags, limits, cwd, argv, envp);
    free(cwd);
    free_strings(argv), free_strings(envp);
}

/*
 * `i`: bytes for the program's stdin, queued; acknowledged once written or
 * dropped. For an Exec that already ended (X or F sent) there is no reply:
 * its id may name a new Exec by the time the server reads one.
 */
static void stdin_frame(uint32_t id, const unsigned char *p, size_t n)
{
    struct exec *e = find_exec(id);
    if (!e) {
        dprintf(2, "cb-supervisor: %" PRIu32 ": stdin for no running Exec: dropped\n", id);
    } else if (n > CHUNK) {
        abort_exec(e, "a stdin frame of more than %d bytes", CHUNK);
    } else if (e->in_fd < 0 || e->close_stdin) {
        send_u32(id, 'A', (uint32_t)n); /* no stdin to write to: dropped */
    } else if (e->unacked + n > MAX_UNACKED) {
        abort_exec(e, "more than %u bytes of stdin unacknowledged", MAX_UNACKED);
    } else {
        struct chunk *c = malloc(sizeof *c + n);
        if (!c) {
            abort_exec(e, "out of memory for stdin");
            return;
        }
        c->next = NULL, c->len = n, c->off = 0;
        memcpy(c->data, p, n);
        if (e->tail) e->tail->next = c;
        else e->head = c;
        e->tail = c;
        e->unacked += n;
        feed_stdin(e);
    }
}

/* `c`: close the program's stdin once its queue is written. */
static void close_frame(uint32_t id, size_t n)
{
    struct exec *e = find_exec(id);
    if (!e) return; /* it ended already */
    if (n) {
        abort_exec(e, "malformed c frame: not empty");
        return;
    }
    e->close_stdin = 1;
    feed_stdin(e);
}

/* `k`: a signal for the program's process group, while the program runs. */
static void signal_frame(uint32_t id, const unsigned char *p, size_t n)
{
    struct exec *e = find_exec(id);
    if (!e) return; /* it ended already */
    if (n != 4) {
        abort_exec(e, "malformed k frame: %zu bytes, not 4", n);
        return;
    }
    struct cursor c = {p, n, NULL};
    int sig = (int)take(&c, 4);
    if (!e->running) return; /* reaped: the group id may be someone else's now */
    /* A program that left its group (setsid) still gets it. */
    if (kill(-e->pid, sig) < 0 && (errno != ESRCH || kill(e->pid, sig) < 0))
        dprintf(2, "cb-supervisor: %" PRIu32 ": cannot send signal %d: %s\n", id, sig,
                strerror(errno));
}

/* ---------- files ---------- */

/* The directory comp of dir (made 0755 first if make), never through a symlink; closes dir. */
static int step_into(int dir, const char *comp, int make)
{
    int sub = -1;
    if (!make || mkdirat(dir, comp, 0755) == 0 || errno == EEXIST) sub = dir_at(dir, comp);
    int err = errno;
    close(dir);
    errno = err;
    return sub;
}

/* Write data to the regular file path (which bad_path accepted); why not, or NULL. */
static const char *replace_file(char *path, mode_t mode, const unsigned char *data, size_t size)
{
    static char why[MAX_PATH + 128];
    char *comp = path, *slash;
    int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (dir >= 0 && (slash = strchr(comp, '/'))) {
        *slash = '\0';
        dir = step_into(dir, comp, 1);
        *slash = '/';
        comp = slash + 1;
    }
    if (dir < 0) {
        snprintf(why, sizeof why, "cannot create the directories of %s: %s", path, strerror(errno));
        return why;
    }
    /* Not O_TRUNC: nothing changes before the open file is known to be regular and ours.
     * O_NONBLOCK: a FIFO must not hold us up (it is refused as soon as it is open). */
    int fd = openat(dir, comp, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                    mode);
    int err = errno;
    struct stat st; /* the open file's, or what is in the way */
    int known = fd >= 0 ? fstat(fd, &st) : fstatat(dir, comp, &st, AT_SYMLINK_NOFOLLOW);
    if (fd >= 0 && known < 0) err = errno;
    close(dir);
    if (known == 0 && !S_ISREG(st.st_mode)) {
        snprintf(why, sizeof why, "cannot write %s: not a regular file (%c)", path,
                 type_char(st.st_mode));
    } else if (fd < 0 || known < 0) {
        snprintf(why, sizeof why, "cannot create %s: %s", path, strerror(err));
    } else if (st.st_uid != geteuid()) {
        snprintf(why, sizeof why, "cannot write %s: not the program's file", path);
    } else if (ftruncate(fd, 0) < 0 || fchmod(fd, mode & ~CREATE_MASK) < 0 ||
               write_all(fd, data, size) < 0) {
        snprintf(why, sizeof why, "cannot write %s: %s", path, strerror(errno));
    } else {
        int closed = close(fd);
        if (closed == 0) return NULL;
        snprintf(why, sizeof why, "cannot write %s: %s", path, strerror(errno));
        return why;
    }
    if (fd >= 0) close(fd);
    return why;
}

/* `w`: mode, path, content. */
static void write_request(uint32_t id, const unsigned char *p, size_t n)
{
    struct cursor c = {p, n, NULL};
    mode_t mode = (mode_t)take(&c, 4) & 0777;
    size_t len = (size_t)take(&c, 4);
    if (c.why || len == 0 || len > MAX_PATH || len > c.left) {
        refuse(id, "malformed w frame: %s", c.why ? c.why : "bad path length");
        return;
    }
    char path[MAX_PATH + 1];
    memcpy(path, c.p, len);
    path[len] = '\0';
    const char *why = bad_path(path, len);
    if (why) {
        refuse(id, "malformed w frame: path %s %s", path, why);
        return;
    }
    if ((why = replace_file(path, mode, c.p + len, c.left - len))) refuse(id, "%s", why);
    else send_to(id, 'K', NULL, 0);
}

/* `r`: file_cap, total_cap, patterns: H/D frames as for output files, then K. */
static void read_request(uint32_t id, const unsigned char *p, size_t n)
{
    struct cursor c = {p, n, NULL};
    uint64_t file_cap = take(&c, 8), total_cap = take(&c, 8);
    uint32_t count;
    char **patterns = take_strings(&c, MAX_PATTERNS, &count);
    if (c.why || c.left) {
        refuse(id, "malformed r frame: %s", c.why ? c.why : "bytes after the patterns");
    } else {
        frame_id = id; /* collect_outputs sends its frames with it */
        collect_outputs(patterns, count, file_cap, total_cap);
        send_to(id, 'K', NULL, 0);
    }
    free_strings(patterns);
}

struct listed {
    char *name;
    struct stat st;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct listed *)a)->name, ((const struct listed *)b)->name);
}

/* One N entry: type, mode, size, mtime (s, ns), name. */
static size_t put_entry(unsigned char *p, const struct listed *item)
{
    const struct stat *st = &item->st;
    size_t len = strlen(item->name);
    p[0] = (unsigned char)type_char(st->st_mode);
    put_be(p + 1, st->st_mode & 0777, 4);
    put_be(p + 5, S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0, 8);
    put_be(p + 13, st->st_mtim.tv_sec > 0 ? (uint64_t)st->st_mtim.tv_sec : 0, 8);
    put_be(p + 21, (uint64_t)st->st_mtim.tv_nsec, 4);
    put_be(p + 25, len, 2);
    memcpy(p + ENTRY_HEAD, item->name, len);
    return ENTRY_HEAD + len;
}

/* Read dir's entries (closing it), sort them by name and send the first MAX_LISTED. */
static void list_dir(uint32_t id, int dir)
{
    DIR *d = fdopendir(dir);
    if (!d) {
        close(dir);
        refuse(id, "cannot list: %s", strerror(errno));
        return;
    }
    struct listed *items = NULL;
    size_t count = 0, cap = 0;
    int truncated = 0;
    for (struct dirent *ent; (ent = readdir(d));) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        if (count == MAX_SCANNED) {
            truncated = 1;
            break;
        }
        if (count == cap) {
            struct listed *more = realloc(items, (cap = cap ? cap * 2 : 64) * sizeof *items);
            if (!more) break;
            items = more;
        }
        struct listed *item = &items[count];
        if (fstatat(dirfd(d), ent->d_name, &item->st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !(item->name = strdup(ent->d_name)))
            continue;
        count++;
    }
    closedir(d);
    if (count) qsort(items, count, sizeof *items, by_name);
    if (count > MAX_LISTED) truncated = 1;
    size_t used = 0;
    for (size_t i = 0; i < count && i < MAX_LISTED; i++) {
        if (used + ENTRY_HEAD + strlen(items[i].name) > sizeof obuf) {
            send_to(id, 'N', obuf, used);
            used = 0;
        }
        used += put_entry(obuf + used, &items[i]);
    }
    if (used) send_to(id, 'N', obuf, used);
    for (size_t i = 0; i < count; i++) free(items[i].name);
    free(items);
    unsigned char flag = (unsigned char)truncated;
    send_to(id, 'K', &flag, 1);
}

/* `l`: a directory under the workspace (the whole payload), no symlink followed. */
static void list_request(uint32_t id, const unsigned char *p, size_t n)
{
    char path[MAX_PATH + 1];
    if (n > MAX_PATH || memchr(p, '\0', n)) {
        refuse(id, "malformed l frame: the path is too long or contains NUL");
        return;
    }
    memcpy(path, p, n);
    path[n] = '\0';
    const char *why = bad_cwd(path);
    if (why) {
        refuse(id, "malformed l frame: the path %s %s", path, why);
        return;
    }
    int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (char *comp = path, *next; dir >= 0 && *comp; comp = next) {
        next = comp + strcspn(comp, "/");
        if (*next) *next++ = '\0';
        if (*comp && strcmp(comp, ".") != 0) dir = step_into(dir, comp, 0);
    }
    if (dir < 0) {
        memcpy(path, p, n); /* the components were cut apart */
        refuse(id, "cannot list %s: %s", path, strerror(errno));
        return;
    }
    list_dir(id, dir);
}

/* ---------- usage and hello ---------- */

/* Used bytes of the workspace (our cwd), /tmp and /dev/shm; each filesystem once, not the root. */
static uint64_t disk_used(void)
{
    static const char *const where[] = {".", "/tmp", "/dev/shm"};
    dev_t seen[4];
    size_t n_seen = 0;
    struct stat st;
    if (stat("/", &st) == 0) seen[n_seen++] = st.st_dev;
    uint64_t used = 0;
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        struct statvfs fs;
        int dup = stat(where[i], &st) < 0;
        for (size_t j = 0; j < n_seen && !dup; j++) dup = seen[j] == st.st_dev;
        if (dup || statvfs(where[i], &fs) < 0) continue;
        seen[n_seen++] = st.st_dev;
        used += (uint64_t)(fs.f_blocks - fs.f_bfree) * fs.f_frsize;
    }
    return used;
}

/* Processes in our PID namespace but us. */
static int other_processes(void)
{
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    int n = 0;
    pid_t self = getpid();
    for (struct dirent *e; (e = readdir(proc));)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && atoi(e->d_name) != self) n++;
    closedir(proc);
    return n;
}

/* `u`: usage as key=value lines. */
static void usage_request(uint32_t id, size_t n)
{
    if (n) {
        refuse(id, "malformed u frame: not empty");
        return;
    }
    char text[256];
    int len = snprintf(text, sizeof text, "disk_bytes=%" PRIu64 "\nprocesses=%d\nexecs=%d\n",
                       disk_used(), other_processes(), running_execs());
    send_to(id, 'U', text, (size_t)len);
}

/* `h`: the server (re)attached: Y with its nonce (id 0), then an L per running Exec. */
static void hello(uint32_t id, const unsigned char *p, size_t n)
{
    if (n != NONCE) {
        refuse(id, "malformed h frame: a nonce of %zu bytes, not %d", n, NONCE);
        return;
    }
    unsigned char y[NONCE + 4];
    memcpy(y, p, NONCE);
    put_be(y + NONCE, (uint64_t)running_execs(), 4);
    send_to(0, 'Y', y, sizeof y);
    for (int i = 0; i < MAX_EXECS; i++) {
        if (!execs[i].used) continue;
        unsigned char l[8];
        put_be(l, (uint64_t)execs[i].pid, 4);
        put_be(l + 4, execs[i].flags, 4);
        send_to(execs[i].id, 'L', l, sizeof l);
    }
}

/* ---------- frames from the server ---------- */

static void dispatch(int type, uint32_t id, const unsigned char *p, size_t n)
{
    switch (type) {
    case 's': start_exec(id, p, n); break;
    case 'i': stdin_frame(id, p, n); break;
    case 'c': close_frame(id, n); break;
    case 'k': signal_frame(id, p, n); break;
    case 'w': write_request(id, p, n); break;
    case 'r': read_request(id, p, n); break;
    case 'l': list_request(id, p, n); break;
    case 'u': usage_request(id, n); break;
    case 'h': hello(id, p, n); break;
    default: refuse(id, "unknown frame type %d", type);
    }
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A frame's header is in: take its payload, or refuse the frame and skip its payload. */
static void begin_payload(void)
{
    int type = in.head[0];
    uint32_t id = be32(in.head + 1);
    size_t len = be32(in.head + 5);
    const char *why = len > MAX_FRAME ? "longer than the limit" : NULL;
    if (!why && !(in.payload = malloc(len ? len : 1))) why = "out of memory";
    if (why) {
        struct exec *e = type && strchr("ick", type) ? find_exec(id) : NULL;
        if (e) abort_exec(e, "a frame of %zu bytes: %s", len, why);
        else refuse(id, "a frame of %zu bytes: %s", len, why);
        in.head_got = 0;
        in.skip = len;
        return;
    }
    in.len = len, in.got = 0;
}

/* Feed bytes read from fd 0 to the frame parser, dispatching every complete frame. */
static void parse(const unsigned char *p, size_t n)
{
    while (n > 0 || (in.head_got == HEAD && in.got == in.len)) {
        size_t k;
        if (in.skip) {
            k = n < in.skip ? n : in.skip;
            in.skip -= k;
        } else if (in.head_got < HEAD) {
            k = HEAD - in.head_got < n ? HEAD - in.head_got : n;
            memcpy(in.head + in.head_got, p, k);
            if ((in.head_got += k) == HEAD) begin_payload();
        } else {
            k = in.len - in.got < n ? in.len - in.got : n;
            memcpy(in.payload + in.got, p, k);
            if ((in.got += k) == in.len) {
                in.head_got = 0;
                dispatch(in.head[0], be32(in.head + 1), in.payload, in.len);
                free(in.payload);
                in.payload = NULL;
            }
        }
        p += k, n -= k;
    }
}

/* One read from fd 0. At EOF (the server detached for good) we stop reading, nothing else. */
static void read_frames(void)
{
    ssize_t r = read(0, rbuf, sizeof rbuf);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0) {
        dprintf(2, "cb-supervisor: stdin %s; the Execs go on\n",
                r < 0 ? strerror(errno) : "closed");
        in.eof = 1;
        free(in.payload);
        in.payload = NULL;
        return;
    }
    parse(rbuf, (size_t)r);
}

/* ---------- the loop ---------- */

/* Milliseconds until the next wall limit, CPU sample or drain end; -1: none. */
static int next_timeout(uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < MAX_EXECS; i++) {
        const struct exec *e = &execs[i];
        if (!e->used) continue;
        if (e->running && !e->killed && e->deadline && e->deadline < next) next = e->deadline;
        if (e->running && !e->killed && e->cpu_ms && e->next_cpu < next) next = e->next_cpu;
        if (!e->running && e->drain_end < next) next = e->drain_end;
    }
    if (next == UINT64_MAX) return -1;
    if (next <= now) return 0;
    uint64_t ms = (next - now + 999) / 1000;
    return ms > 3600000 ? 3600000 : (int)ms;
}

/* Read and drop what the discarded pipe i holds; forget it at EOF. */
static void drain_discard(size_t i)
{
    ssize_t n = read(discards[i], obuf, sizeof obuf);
    if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN))) return;
    close(discards[i]);
    discards[i] = discards[--n_discards];
}

/*
 * One round: poll everything, then serve the pipes (by the indices just
 * polled, before anything can close or reuse a descriptor), reap, read the
 * server's frames, and check limits and ends.
 */
static void serve_round(void)
{
    struct pollfd pf[2 + 3 * MAX_EXECS + MAX_DISCARDS];
    int at[MAX_EXECS][3]; /* per Exec: indices of its stdin, stdout, stderr in pf, or -1 */
    nfds_t n = 0;
    pf[n++] = (struct pollfd){sig_pipe[0], POLLIN, 0};
    int i_stdin = in.eof ? -1 : (int)n;
    if (!in.eof) pf[n++] = (struct pollfd){0, POLLIN, 0};
    for (int i = 0; i < MAX_EXECS; i++) {
        const struct exec *e = &execs[i];
        int fds[3] = {e->head ? e->in_fd : -1, e->out.fd, e->err.fd};
        for (int j = 0; j < 3; j++) {
            at[i][j] = e->used && fds[j] >= 0 ? (int)n : -1;
            if (at[i][j] >= 0) pf[n++] = (struct pollfd){fds[j], j ? POLLIN : POLLOUT, 0};
        }
    }
    size_t d0 = n, nd = n_discards;
    for (size_t i = 0; i < nd; i++) pf[n++] = (struct pollfd){discards[i], POLLIN, 0};

    if (poll(pf, n, next_timeout(now_us())) < 0) {
        if (errno != EINTR) dprintf(2, "cb-supervisor: poll: %s\n", strerror(errno));
        return;
    }
    for (int i = 0; i < MAX_EXECS; i++) {
        struct exec *e = &execs[i];
        if (at[i][0] >= 0 && pf[at[i][0]].revents) feed_stdin(e);
        if (at[i][1] >= 0 && pf[at[i][1]].revents) pump(e, &e->out);
        if (at[i][2] >= 0 && pf[at[i][2]].revents) pump(e, &e->err);
    }
    for (size_t i = nd; i-- > 0;) /* backwards: a removal moves the last one into i */
        if (pf[d0 + i].revents) drain_discard(i);
    if (pf[0].revents) reap_children();
    if (i_stdin >= 0 && pf[i_stdin].revents) read_frames();
    uint64_t now = now_us();
    for (int i = 0; i < MAX_EXECS; i++)
        if (execs[i].used) check_exec(&execs[i], now);
}

int session_main(void)
{
    frame_tagged = 1;
    if (chdir(WORKSPACE) < 0)
        dprintf(2, "cb-supervisor: cannot enter %s (%s): serving the current directory\n",
                WORKSPACE, strerror(errno));
    watch_children();
    for (;;) serve_round();
}
