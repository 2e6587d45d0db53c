/*
 * cb-supervisor: the PID 1 of a CodeBeaker sandbox container.
 *
 * Reads one request from fd 0, writes the program's files into the working
 * directory and runs its stages one after another: an optional compile, then
 * the program once or once per test case. Each stage's command runs as our
 * only child; we pump its stdin, forward its stdout/stderr as frames on fd 1,
 * enforce the stage's wall, CPU and output limits, kill every process in the
 * sandbox when it ends, return the output files it asks for and report. The
 * wire format is specified in PROTOCOL.md next to this file. Nothing but
 * frames ever goes to fd 1; diagnostics go to fd 2.
 *
 * With --host it serves one request after another, each in fresh namespaces
 * (host.c); with --session it is a session's agent (session.c).
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra -Werror -static -o cb-supervisor \
 *            supervisor.c workspace.c seccomp.c host.c session.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "seccomp.h"
#include "session.h"
#include "supervisor.h"
#include "workspace.h"

#define MAX_FILES 1024
#define MAX_STAGES 1025            /* a compile and up to 1024 runs */
#define MAX_STRS (16u << 20)       /* bytes of all strings of the request together */
#define DRAIN_MS 500               /* longest wait for pipe EOF after the child exits */
#define CG "/sys/fs/cgroup/"

enum { STAGE_GATE = 1, STAGE_FRESH = 2, STAGE_PAUSE = 4 }; /* stage flags, see PROTOCOL.md */

struct stage {
    uint32_t flags;
    char **argv, **envp, **patterns;
    uint32_t n_patterns;
    uint64_t wall_ms, cpu_ms, cap, file_cap, files_cap, stdin_len;
};

static unsigned char frame[9 + CHUNK]; /* header + payload: one write per frame */
static unsigned char ibuf[CHUNK];      /* stdin pump buffer, file copy buffer */
static int is_init;                    /* getpid() == 1, so kill(-1) is safe */
static pid_t child = -1;
static int child_alive, child_status, killed;
static struct rusage child_usage;
int sig_pipe[2] = {-1, -1};            /* SIGCHLD self-pipe */
static size_t strings_total;           /* bytes of all request strings so far */
int own_uid;                           /* we hold a uid the program does not */
int frame_tagged;                      /* session mode: frames carry frame_id */
uint32_t frame_id;

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int write_all(int fd, const void *buf, size_t n)
{
    for (const unsigned char *p = buf; n > 0;) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/*
 * Kill every process of the sandbox but us. As PID 1 of the container's PID
 * namespace, kill(-1) does exactly that (init is immune). Anywhere else it
 * would hit the whole host, so there we only kill the child's process group
 * and the child, and only while its pid is still ours (alive or an unreaped
 * zombie), so that the pid and group id cannot have been reused.
 */
static void kill_all(void)
{
    killed = 1;
    if (is_init) {
        kill(-1, SIGKILL);
    } else if (child_alive) {
        kill(-child, SIGKILL);
        kill(child, SIGKILL);
    }
}

/*
 * Send one frame: type, in session mode frame_id, length, payload. If the
 * server is gone nobody can hear us: give up, except in session mode, where
 * a server may attach again (and finds its place by the Y frame it asks for).
 */
void send_frame(int type, const void *payload, size_t n)
{
    size_t head = frame_tagged ? 9 : 5;
    if (n > 0 && payload != frame + head) memmove(frame + head, payload, n);
    frame[0] = (unsigned char)type;
    if (frame_tagged)
        for (int i = 0; i < 4; i++) frame[1 + i] = (unsigned char)(frame_id >> (24 - 8 * i));
    for (int i = 0; i < 4; i++) frame[head - 4 + i] = (unsigned char)(n >> (24 - 8 * i));
    if (write_all(1, frame, n + head) < 0) {
        if (frame_tagged) return;
        kill_all();
        _exit(1);
    }
}

/* A fatal setup error: an F frame with an ASCII message, then exit 2. */
void fail(const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    n = n < 0 ? 0 : n >= (int)sizeof msg ? (int)sizeof msg - 1 : n;
    for (int i = 0; i < n; i++) /* paths may hold any byte: keep it ASCII */
        if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e) msg[i] = '?';
    if (child_alive) kill_all();
    dprintf(2, "cb-supervisor: %.*s\n", n, msg);
    send_frame('F', msg, (size_t)n);
    exit(2);
}

/* ---------- the request: exact-length reads, never past what is needed ---------- */

static void get_bytes(void *buf, size_t n)
{
    for (unsigned char *p = buf; n > 0;) {
        ssize_t r = read(0, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail("malformed request: truncated");
        p += r, n -= (size_t)r;
    }
}

static uint64_t get_be(size_t bytes)
{
    unsigned char b[8];
    uint64_t v = 0;
    get_bytes(b, bytes);
    for (size_t i = 0; i < bytes; i++) v = v << 8 | b[i];
    return v;
}
#define get_u32() ((uint32_t)get_be(4))
#define get_u64() get_be(8)

/* One string of the request; all of them together are bounded. */
static char *get_string(const char *what)
{
    uint32_t len = get_u32();
    if (len > MAX_STR || (strings_total += len) > MAX_STRS) fail("malformed request: %s too long", what);
    char *s = malloc((size_t)len + 1);
    if (!s) fail("out of memory");
    get_bytes(s, len);
    s[len] = '\0';
    if (memchr(s, '\0', len)) fail("malformed request: %s contains NUL", what);
    return s;
}

/* A counted list of strings, NULL-terminated. */
static char **get_strings(uint32_t count, uint32_t max, const char *what)
{
    if (count > max) fail("malformed request: too many %ss (%" PRIu32 ")", what, count);
    char **list = calloc((size_t)count + 1, sizeof *list);
    if (!list) fail("out of memory");
    for (uint32_t i = 0; i < count; i++) list[i] = get_string(what);
    return list;
}

/* Why a file path is unacceptable, or NULL if it is fine. */
const char *bad_path(const char *p, size_t len)
{
    if (memchr(p, '\0', len)) return "contains NUL";
    if (p[0] == '/') return "is absolute";
    for (const char *c = p, *end = p + len;;) {
        const char *slash = memchr(c, '/', (size_t)(end - c));
        size_t n = (size_t)((slash ? slash : end) - c);
        if (n == 0) return "has an empty component";
        if (c[0] == '.' && (n == 1 || (n == 2 && c[1] == '.'))) return "has a . or .. component";
        if (!slash) return NULL;
        c = slash + 1;
    }
}

/*
 * Read one file entry and create the file under the cwd. Directories are
 * walked with O_NOFOLLOW so that no symlink can redirect a write, and the
 * file itself must not exist yet (O_EXCL).
 */
static void write_file(void)
{
    char path[MAX_PATH + 1], *comp = path, *slash;
    uint32_t len = get_u32();
    if (len == 0 || len > MAX_PATH) fail("malformed request: bad path length %" PRIu32, len);
    get_bytes(path, len);
    path[len] = '\0';
    const char *why = bad_path(path, len);
    if (why) fail("malformed request: path %s %s", path, why);
    mode_t mode = get_u32() & 0777;
    uint64_t size = get_u64();
    int dir = AT_FDCWD, fd, err;
    while ((slash = strchr(comp, '/'))) {
        int sub = -1;
        *slash = '\0';
        if (mkdirat(dir, comp, 0755) == 0 || errno == EEXIST)
            sub = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        err = errno;
        *slash = '/';
        if (sub < 0) fail("cannot create the directories of %s: %s", path, strerror(err));
        if (dir != AT_FDCWD) close(dir);
        dir = sub, comp = slash + 1;
    }
    fd = openat(dir, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    err = errno;
    if (dir != AT_FDCWD) close(dir);
    if (fd < 0) fail("cannot create %s: %s", path, strerror(err));
    for (size_t n; size > 0; size -= n) {
        n = size < sizeof ibuf ? (size_t)size : sizeof ibuf;
        get_bytes(ibuf, n);
        if (write_all(fd, ibuf, n) < 0) fail("cannot write %s: %s", path, strerror(errno));
    }
    if (close(fd) < 0) fail("cannot write %s: %s", path, strerror(errno));
}

static void get_stage(struct stage *st)
{
    st->flags = get_u32();
    uint32_t argc = get_u32();
    if (argc < 1) fail("malformed request: a stage without a command");
    st->argv = get_strings(argc, MAX_ARGS, "argument");
    st->envp = get_strings(get_u32(), MAX_ENVS, "environment entry");
    for (char **e = st->envp; *e; e++)
        if ((*e)[0] == '=' || !strchr(*e, '='))
            fail("malformed request: environment entry is not KEY=VALUE");
    st->wall_ms = get_u64(), st->cpu_ms = get_u64(), st->cap = get_u64();
    st->wall_ms = st->wall_ms > MAX_LIMIT_MS ? MAX_LIMIT_MS : st->wall_ms;
    st->cpu_ms = st->cpu_ms > MAX_LIMIT_MS ? MAX_LIMIT_MS : st->cpu_ms;
    st->n_patterns = get_u32();
    st->patterns = get_strings(st->n_patterns, MAX_PATTERNS, "output pattern");
    st->file_cap = get_u64(), st->files_cap = get_u64();
    st->stdin_len = get_u64();
}

/* Read and drop the rest of a stage's stdin, so the next stage's starts in place. */
static void skip_input(uint64_t left)
{
    while (left > 0) {
        ssize_t r = read(0, ibuf, left < sizeof ibuf ? (size_t)left : sizeof ibuf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail("malformed request: truncated stdin");
        left -= (uint64_t)r;
    }
}

/* ---------- cgroup readings: v2, then v1, then /proc and getrusage ---------- */

static int slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    return 0;
}

/* The value of the "key N" line of buf, or -1. */
static int64_t field(const char *buf, const char *key)
{
    size_t k = strlen(key);
    for (const char *line = buf;; line++) {
        if (strncmp(line, key, k) == 0 && line[k] == ' ') return strtoll(line + k + 1, NULL, 10);
        if (!(line = strchr(line, '\n'))) return -1;
    }
}

/* CPU time of every process in our PID namespace, from /proc: each live
 * process's own time plus what it collected from the children it reaped
 * (cutime/cstime), so exited processes still count, once. */
static uint64_t proc_cpu_us(void)
{
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    uint64_t ticks = 0;
    char path[64], b[1024];
    for (struct dirent *e; (e = readdir(proc));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        if (slurp(path, b, sizeof b) < 0) continue;
        char *p = strrchr(b, ')'); /* the command name may hold spaces */
        if (!p) continue;
        p++;
        for (int i = 0; i < 11 && p; i++) p = strchr(p + 1, ' '); /* to field 14, utime */
        for (int i = 0; i < 4 && p; i++) ticks += strtoull(p + 1, &p, 10);
    }
    closedir(proc);
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? ticks * 1000000u / (uint64_t)hz : 0;
}

static int cpu_from_proc;     /* no cgroup files: CPU time is summed from /proc */
static uint32_t cpu_quota_milli; /* the sandbox's CPU quota, from the request; 0 unknown */

static uint64_t cpu_usage_us(void)
{
    char b[4096];
    int64_t v;
    if (slurp(CG "cpu.stat", b, sizeof b) == 0 && (v = field(b, "usage_usec")) >= 0) return (uint64_t)v;
    if (slurp(CG "cpuacct/cpuacct.usage", b, sizeof b) == 0 ||
        slurp(CG "cpu,cpuacct/cpuacct.usage", b, sizeof b) == 0)
        return strtoull(b, NULL, 10) / 1000; /* ns */
    cpu_from_proc = 1;
    return proc_cpu_us(); /* no cgroup files (e.g. gVisor): ask /proc */
}

/*
 * CPU time used since a stage started (cpu0 at t0). gVisor's /proc, and the
 * cgroup files its own kernel offers, count a task that waits for the host
 * CPU as running, so with more runnable tasks than the quota allows the sum
 * runs ahead of the truth; no sandbox can use more than its quota times the
 * wall time, so that bounds every reading.
 */
static uint64_t stage_cpu_us(uint64_t cpu0, uint64_t t0)
{
    uint64_t used = cpu_usage_us();
    used = used > cpu0 ? used - cpu0 : 0;
    if (cpu_quota_milli) {
        uint64_t most = (now_us() - t0) * cpu_quota_milli / 1000;
        if (used > most) used = most;
    }
    return used;
}

/* The cgroup's peak memory so far (it only grows), or 0 if unknown. */
static uint64_t cgroup_peak(void)
{
    char b[64];
    if (slurp(CG "memory.peak", b, sizeof b) == 0 ||
        slurp(CG "memory/memory.max_usage_in_bytes", b, sizeof b) == 0)
        return strtoull(b, NULL, 10);
    return 0;
}

/* Where the cgroup has no peak to read (gVisor): the memory the sandbox's
 * programs hold now, anonymous and tmpfs pages (not the file cache, which
 * gVisor lets fill the limit and gives back), from its /proc/meminfo; 0 if
 * unknown. Sampled while a stage runs. */
static uint64_t sandbox_memory(void)
{
    char b[4096];
    if (slurp("/proc/meminfo", b, sizeof b) < 0) return 0;
    const char *anon = strstr(b, "AnonPages:"), *shmem = strstr(b, "Shmem:");
    if (!anon) return 0;
    uint64_t kb = strtoull(anon + strlen("AnonPages:"), NULL, 10);
    if (shmem) kb += strtoull(shmem + strlen("Shmem:"), NULL, 10);
    return kb * 1024u;
}

int oom_counted; /* the cgroup counts OOM kills for us (not so under gVisor) */

uint64_t oom_kills(void)
{
    char b[4096];
    int64_t v = -1;
    if (slurp(CG "memory.events", b, sizeof b) == 0) v = field(b, "oom_kill");
    if (v < 0 && slurp(CG "memory/memory.oom_control", b, sizeof b) == 0) v = field(b, "oom_kill");
    oom_counted = v >= 0;
    return v < 0 ? 0 : (uint64_t)v;
}

/* ---------- processes ---------- */

static void on_sigchld(int sig)
{
    int saved = errno;
    (void)sig;
    if (write(sig_pipe[1], "c", 1) < 0) { /* pipe full: a wake-up is pending anyway */ }
    errno = saved;
}

/*
 * Reap whatever exited; returns the time the child was found dead, or 0.
 * The child is first only peeked at (WNOWAIT) so that everything else is
 * killed while its zombie still pins its pid and process group. As PID 1 we
 * also reap every orphan that was handed to us.
 */
static uint64_t reap(void)
{
    uint64_t t_exit = 0;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(is_init ? P_ALL : P_PID, (id_t)child, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
            si.si_pid == 0)
            return t_exit;
        if (si.si_pid == child && child_alive) {
            t_exit = now_us();
            kill_all(); /* daemons must not outlive the program */
            while (wait4(child, &child_status, 0, &child_usage) < 0 && errno == EINTR) {}
            child_alive = 0;
        } else {
            waitpid(si.si_pid, NULL, 0);
        }
    }
}

/*
 * Started as root (with nothing but CAP_SETUID, CAP_SETGID and CAP_SETPCAP),
 * we first empty the capability bounding set, then give the
 * program its uid and keep one of our own: real and saved uid 65533, the
 * effective uid the program's (so files we write are its files and we may
 * signal it). The program then can neither signal us nor open our /proc
 * files (kill and ptrace access need its uid to match ours), even under a
 * kernel that ignores PR_SET_DUMPABLE and init's signal protection (gVisor).
 * Every uid being non-zero, we keep no capability at all.
 */
void take_own_uid(void)
{
    if (getuid() != 0) return; /* started as the program's user: nothing to separate */
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            dprintf(2, "cb-supervisor: cannot drop capability %d: %s\n", cap, strerror(errno));
            _exit(2);
        }
    if (setgroups(0, NULL) < 0 || setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) < 0 ||
        setresuid(SUPERVISOR_UID, SANDBOX_ID, SUPERVISOR_UID) < 0) {
        dprintf(2, "cb-supervisor: cannot give up root: %s\n", strerror(errno));
        _exit(2);
    }
    own_uid = 1;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/*
 * In the forked child: become the stage's (or an Exec's) command, or say why
 * not and exit 127. If the syscall filter cannot be installed (or, for an
 * Exec, its working directory cannot be entered), the reason goes to the
 * parent on why_fd (closed unwritten otherwise), which ends the request (the
 * Exec) with an F frame: no program ever runs without the filter.
 */
void run_child(const int *in, const int *out, const int *err, int why_fd, char *const *argv,
               char *const *envp, uint64_t cpu_ms, const char *cwd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    setpgid(0, 0);
    if (own_uid && setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) < 0) _exit(127);
    /* Our /proc files stay root's while we are non-dumpable; exec resets it anyway. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) { /* the OOM killer should pick the program, not the supervisor */
        if (write(fd, "1000", 4) < 0) { /* best effort */ }
        close(fd);
    }
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(127);
    if (cwd && cwd[0] && chdir(cwd) < 0) { /* as the program's uid, relative to ours */
        dprintf(why_fd, "cannot enter the directory %s: %s", cwd, strerror(errno));
        _exit(127);
    }
    const char *why = restrict_syscalls();
    if (why) {
        int e = errno;
        dprintf(why_fd, "cannot install the syscall filter: %s%s%s", why, e ? ": " : "",
                e ? strerror(e) : "");
        _exit(127);
    }
    if (close_range(3, ~0u, 0) < 0) /* everything is O_CLOEXEC anyway */
        for (int i = 3; i < 4096; i++) close(i);
    if (cpu_ms > 0) { /* a per-process backstop; the cgroup check comes first */
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = (rlim_t)((cpu_ms + 999) / 1000 + 1);
        setrlimit(RLIMIT_CPU, &rl);
    }
    /* execvpe searches our own PATH: use the request's if it sets one. */
    for (char *const *e = envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) setenv("PATH", *e + 5, 1);
    execvpe(argv[0], argv, envp);
    dprintf(2, "cb-supervisor: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* ---------- output ---------- */

struct stream {
    int fd, type;  /* our read end; '1' or '2' */
    uint64_t sent; /* bytes forwarded */
    int cut;       /* the program wrote more than the cap */
};

/* One read from a program pipe, forwarded up to the cap (cut exactly there). */
static void pump_output(struct stream *s, uint64_t cap)
{
    ssize_t n = read(s->fd, frame + 5, CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    uint64_t fwd = (uint64_t)n;
    if (cap > 0 && fwd > cap - s->sent) {
        fwd = cap - s->sent;
        if (!s->cut) s->cut = 1, kill_all();
    }
    if (fwd > 0) send_frame(s->type, frame + 5, (size_t)fwd);
    s->sent += fwd;
}

/* ---------- one stage ---------- */

struct report {
    uint64_t wall_us, cpu_us, peak, ooms;
    int wall_hit, cpu_hit, out_cut, err_cut;
};

/*
 * Run one stage to its end. Stdin: exactly stdin_len bytes are read from fd 0
 * and written to the program, then its stdin is closed; if the program closes
 * it first, the rest is read and dropped (so the sender never blocks on us).
 * Output is forwarded as it comes. Ends when the child has exited and both
 * pipes reached EOF, or DRAIN_MS after the child's exit (a process that we
 * may not kill as non-init can hold a pipe open).
 */
static void run_stage(const struct stage *st, struct report *rep)
{
    int in[2], out[2], err[2], why[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(why, O_CLOEXEC) < 0)
        fail("pipe: %s", strerror(errno));
    uint64_t cpu0 = cpu_usage_us(), oom0 = oom_kills(), peak0 = cgroup_peak();
    uint64_t t0 = now_us(), t_exit = 0, left = st->stdin_len;
    killed = 0;
    memset(&child_usage, 0, sizeof child_usage);
    if ((child = fork()) < 0) fail("fork: %s", strerror(errno));
    if (child == 0) run_child(in, out, err, why[1], st->argv, st->envp, st->cpu_ms, NULL);
    child_alive = 1;
    setpgid(child, child); /* the child does it too: no race either way */
    close(in[0]), close(out[1]), close(err[1]), close(why[1]);
    char msg[256];
    ssize_t got; /* EOF as soon as the child's filter is on (or it died before) */
    while ((got = read(why[0], msg, sizeof msg)) < 0 && errno == EINTR) {}
    close(why[0]);
    if (got > 0) fail("%.*s", (int)got, msg);
    int in_fd = in[1];
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    send_frame('S', NULL, 0);

    struct stream so = {out[0], '1', 0, 0}, se = {err[0], '2', 0, 0};
    size_t ilen = 0, ioff = 0;
    uint64_t deadline = st->wall_ms ? t0 + st->wall_ms * 1000 : 0, next_cpu = t0, drain_end = 0;
    /* Without a cgroup peak (gVisor), the stage's peak is sampled. */
    int sampling = !peak0 && !oom_counted && sandbox_memory() > 0; /* not the host's meminfo */
    uint64_t sampled = 0;
    int wall_hit = 0, cpu_hit = 0;
    for (;;) {
        uint64_t now = now_us();
        if (in_fd >= 0 && (!child_alive || (ioff == ilen && left == 0))) {
            close(in_fd); /* EOF for the program */
            in_fd = -1;
        }
        if (!child_alive) {
            if (!drain_end) drain_end = now + DRAIN_MS * 1000;
            if ((so.fd < 0 && se.fd < 0) || now >= drain_end) break;
        }
        struct pollfd pf[5] = {{sig_pipe[0], POLLIN, 0}};
        int n = 1, i_in = -1, i_pipe = -1, i_so = -1, i_se = -1;
        if (child_alive && left > 0 && ioff == ilen) i_in = n, pf[n++] = (struct pollfd){0, POLLIN, 0};
        if (in_fd >= 0 && ioff < ilen) i_pipe = n, pf[n++] = (struct pollfd){in_fd, POLLOUT, 0};
        if (so.fd >= 0) i_so = n, pf[n++] = (struct pollfd){so.fd, POLLIN, 0};
        if (se.fd >= 0) i_se = n, pf[n++] = (struct pollfd){se.fd, POLLIN, 0};

        int64_t timeout = -1; /* ms, rounded up */
        if (!child_alive) {
            timeout = (int64_t)(drain_end - now + 999) / 1000;
        } else if (!killed) {
            if (deadline) timeout = deadline > now ? (int64_t)(deadline - now + 999) / 1000 : 0;
            if ((st->cpu_ms || sampling) && (timeout < 0 || timeout > CPU_POLL_MS))
                timeout = CPU_POLL_MS;
        }
        if (timeout > 3600000) timeout = 3600000; /* fits an int; we just loop again */
        if (poll(pf, (nfds_t)n, (int)timeout) < 0) {
            if (errno == EINTR) continue;
            fail("poll: %s", strerror(errno));
        }

        if (pf[0].revents) {
            char junk[64];
            while (read(sig_pipe[0], junk, sizeof junk) > 0) {}
            uint64_t t = reap();
            if (t) t_exit = t;
        }
        if (i_in >= 0 && pf[i_in].revents) {
            ssize_t r = read(0, ibuf, left < sizeof ibuf ? (size_t)left : sizeof ibuf);
            if (r > 0) {
                left -= (uint64_t)r;
                if (in_fd >= 0) ilen = (size_t)r, ioff = 0;
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                fail("malformed request: truncated stdin");
            }
        }
        if (i_pipe >= 0 && pf[i_pipe].revents) {
            ssize_t w = write(in_fd, ibuf + ioff, ilen - ioff);
            if (w > 0) {
                ioff += (size_t)w;
            } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
                close(in_fd); /* EPIPE: the program closed its stdin; drop the rest */
                in_fd = -1;
                ilen = ioff = 0;
            }
        }
        if (i_so >= 0 && pf[i_so].revents) pump_output(&so, st->cap);
        if (i_se >= 0 && pf[i_se].revents) pump_output(&se, st->cap);

        /* Limits, checked while the program runs and nothing has killed it yet. */
        now = now_us();
        if (child_alive && !killed) {
            if (deadline && now >= deadline) {
                wall_hit = 1;
                kill_all();
            } else if ((st->cpu_ms || sampling) && now >= next_cpu) {
                next_cpu = now + CPU_POLL_MS * 1000;
                if (sampling) {
                    uint64_t used = sandbox_memory();
                    if (used > sampled) sampled = used;
                }
                if (st->cpu_ms && stage_cpu_us(cpu0, t0) >= st->cpu_ms * 1000) cpu_hit = 1, kill_all();
            }
        }
    }
    if (in_fd >= 0) close(in_fd);
    if (so.fd >= 0) close(so.fd);
    if (se.fd >= 0) close(se.fd);
    skip_input(left);

    /* Peak memory of this stage: the cgroup's peak if it was reached now,
     * else (or without cgroup files) the largest process of the stage. */
    uint64_t cpu_used = stage_cpu_us(cpu0, t0), oom1 = oom_kills(), peak1 = cgroup_peak();
    uint64_t rss = (uint64_t)child_usage.ru_maxrss * 1024u;
    rep->wall_us = t_exit - t0;
    rep->cpu_us = cpu_used;
    if (sampling) {
        uint64_t used = sandbox_memory();
        rep->peak = used > sampled ? used : sampled;
    } else {
        rep->peak = peak1 > peak0 ? peak1 : rss;
    }
    rep->ooms = oom1 > oom0 ? oom1 - oom0 : 0;
    rep->wall_hit = wall_hit, rep->cpu_hit = cpu_hit, rep->out_cut = so.cut, rep->err_cut = se.cut;
}

/* Whether a gating stage (the compile) lets the next stages run. */
static int succeeded(const struct report *rep)
{
    return WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0 && !rep->wall_hit &&
           !rep->cpu_hit && !rep->out_cut && !rep->err_cut && !rep->ooms;
}

static void send_report(const struct report *rep)
{
    int sig = WIFSIGNALED(child_status) ? WTERMSIG(child_status) : 0;
    int code = sig ? 128 + sig : WEXITSTATUS(child_status);
    char text[512];
    int len = snprintf(text, sizeof text,
                       "exit_code=%d\nsignal=%d\nwall_us=%" PRIu64 "\ncpu_us=%" PRIu64
                       "\npeak_memory=%" PRIu64 "\noom_kills=%" PRIu64 "\noom_counted=%d"
                       "\nwall_limit=%d\ncpu_limit=%d\nstdout_truncated=%d\nstderr_truncated=%d\n",
                       code, sig, rep->wall_us, rep->cpu_us, rep->peak, rep->ooms, oom_counted,
                       rep->wall_hit, rep->cpu_hit, rep->out_cut, rep->err_cut);
    send_frame('X', text, (size_t)len);
}

/* SIGCHLD wakes the poll loop through a self-pipe of this process's own. */
void watch_children(void)
{
    if (sig_pipe[0] >= 0) close(sig_pipe[0]), close(sig_pipe[1]);
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) fail("pipe: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
}

int serve_request(int as_init, int separate_uid)
{
    is_init = as_init;
    own_uid = separate_uid;
    watch_children();

    /* The request: magic, files, stages; the stages' stdin follows, read as they run. */
    char magic[4];
    get_bytes(magic, 4);
    if (memcmp(magic, "CBX2", 4) != 0) fail("malformed request: bad magic");
    cpu_quota_milli = get_u32();
    uint32_t n_files = get_u32(), n_stages;
    if (n_files > MAX_FILES) fail("malformed request: too many files (%" PRIu32 ")", n_files);
    for (uint32_t i = 0; i < n_files; i++) write_file();
    if ((n_stages = get_u32()) < 1 || n_stages > MAX_STAGES)
        fail("malformed request: bad stage count %" PRIu32, n_stages);
    struct stage *stages = calloc(n_stages, sizeof *stages);
    if (!stages) fail("out of memory");
    for (uint32_t i = 0; i < n_stages; i++) get_stage(&stages[i]);

    int fresh_taken = 0;
    for (uint32_t i = 0; i < n_stages; i++) {
        const struct stage *st = &stages[i];
        if (st->flags & STAGE_FRESH) {
            if (fresh_taken) {
                snapshot_restore();
            } else {
                snapshot_take();
                fresh_taken = 1;
            }
        }
        struct report rep;
        run_stage(st, &rep);
        collect_outputs(st->patterns, st->n_patterns, st->file_cap, st->files_cap);
        send_report(&rep);
        if ((st->flags & STAGE_GATE) && !succeeded(&rep)) break;
        if (st->flags & STAGE_PAUSE) { /* the server changes the sandbox, then says go on */
            char go;
            get_bytes(&go, 1);
            if (go != 'G') break;
        }
    }
    send_frame('E', NULL, 0);
    return 0;
}

int main(int argc, char **argv)
{
    umask(022);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* the program may not read /proc/1/fd or ptrace us */
    for (int fd = 0; fd < 3; fd++) /* so that no pipe can land on 0..2 */
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) return 2;
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "--host") == 0) return host_main(argc, argv);
    take_own_uid();
    if (argc > 1 && strcmp(argv[1], "--session") == 0) return session_main();
    return serve_request(getpid() == 1, own_uid);
}
