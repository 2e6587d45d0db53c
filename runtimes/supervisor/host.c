/*
 * Host mode (cb-supervisor --host): one long-lived container runs many
 * programs, each request in a fresh nested sandbox of its own.
 *
 * For every run we (the host's PID 1) fork a helper that enters new user,
 * mount, IPC, UTS, network and PID namespaces; its child is PID 1 of the new
 * PID namespace (the run's supervisor). That one mounts a fresh size-capped
 * tmpfs on the working directory, /tmp and /dev/shm, a /proc of its own (with
 * the paths Docker masks masked again), drops every capability and then
 * serves exactly one request as the one-shot supervisor does, as init of its
 * namespace. When it exits, the kernel kills whatever of the run is left and
 * its namespaces, mounts and IPC objects go with it. We then check that
 * (no process but us, no SysV IPC object, our own mounts as they were, the
 * host's directories empty), set up the next run's sandbox ahead of its
 * request and say so with an R frame. Anything unexpected ends the host:
 * the server sees it end and replaces it.
 *
 * The sandbox is set up before its request arrives, so its cost is off the
 * request's path; only the run's supervisor reads fd 0 and writes frames
 * while a run is on, we write an R (or F) frame only between runs.
 */
#define _GNU_SOURCE
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "workspace.h"

#define RUN_NAMESPACES (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | \
                        CLONE_NEWNET | CLONE_NEWPID)
#define SANDBOX_ID 65534     /* the program's uid and gid, in and out of the namespace */
#define SUPERVISOR_UID 65533 /* the run supervisor's real and saved uid, when we can map two */
#define LEFTOVER_WAIT_MS 1000
#define MOUNTS_CAP 65536

/* Docker's masked and read-only paths, applied inside each run's own /proc and /sys. */
static const char *const masked[] = {
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const read_only[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

struct sizes {
    unsigned long long workspace, tmp, shm;
};

static char workdir[4096];
static char mounts_at_start[MOUNTS_CAP];
static int two_uids; /* started as root (gVisor): the run supervisor gets a uid of its own */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n >= (int)sizeof msg) n = (int)sizeof msg - 1;
    if (write(fd, msg, (size_t)n) < 0) { /* the reader is gone: nothing to tell */ }
}

static int write_file_at(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int err = errno;
    close(fd);
    errno = err;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t got = 0;
    for (ssize_t n; got + 1 < cap && (n = read(fd, buf + got, cap - 1 - got)) != 0;) {
        if (n < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return 0;
}

/* ---------- inside the run's namespaces ---------- */

static int mount_tmpfs(const char *where, unsigned long flags, const char *opts)
{
    return mount("tmpfs", where, "tmpfs", flags | MS_NOSUID | MS_NODEV, opts);
}

/* Hide what Docker hides: an empty read-only tmpfs on a directory, /dev/null on a file,
 * a read-only bind on the rest. What this kernel does not have is not there to hide. */
static const char *mask_paths(void)
{
    static char why[256];
    struct stat st;
    for (size_t i = 0; i < sizeof masked / sizeof masked[0]; i++) {
        if (lstat(masked[i], &st) < 0) continue;
        int r = S_ISDIR(st.st_mode)
                    ? mount_tmpfs(masked[i], MS_RDONLY | MS_NOEXEC, "size=4k,mode=0555")
                    : mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
        if (r < 0) {
            snprintf(why, sizeof why, "cannot mask %s: %s", masked[i], strerror(errno));
            return why;
        }
    }
    for (size_t i = 0; i < sizeof read_only / sizeof read_only[0]; i++) {
        if (lstat(read_only[i], &st) < 0) continue;
        if (mount(read_only[i], read_only[i], NULL, MS_BIND | MS_REC, NULL) < 0 ||
            mount(NULL, read_only[i], NULL,
                  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
            snprintf(why, sizeof why, "cannot make %s read-only: %s", read_only[i], strerror(errno));
            return why;
        }
    }
    return NULL;
}

static const char *mount_run_files(const struct sizes *sz)
{
    static char why[256];
    char opts[128];
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        snprintf(why, sizeof why, "cannot make the mounts private: %s", strerror(errno));
        return why;
    }
    snprintf(opts, sizeof opts, "size=%llu,mode=0755,uid=%d,gid=%d", sz->workspace, SANDBOX_ID,
             SANDBOX_ID);
    const char *where = workdir;
    int r = mount_tmpfs(where, 0, opts);
    if (r == 0) {
        snprintf(opts, sizeof opts, "size=%llu,mode=1777", sz->tmp);
        r = mount_tmpfs(where = "/tmp", MS_NOEXEC, opts);
    }
    if (r == 0) {
        snprintf(opts, sizeof opts, "size=%llu,mode=1777", sz->shm);
        r = mount_tmpfs(where = "/dev/shm", MS_NOEXEC, opts);
    }
    if (r == 0)
        r = mount("proc", where = "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (r < 0) {
        snprintf(why, sizeof why, "cannot mount %.128s: %s", where, strerror(errno));
        return why;
    }
    const char *masking = mask_paths();
    if (masking) return masking;
    if (chdir(workdir) < 0) {
        snprintf(why, sizeof why, "cannot enter %.128s: %s", workdir, strerror(errno));
        return why;
    }
    return NULL;
}

/* Empty the bounding set, then the effective, permitted and inheritable sets. */
static const char *drop_all_capabilities(void)
{
    static char why[128];
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            snprintf(why, sizeof why, "cannot drop capability %d: %s", cap, strerror(errno));
            return why;
        }
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct none[2];
    memset(none, 0, sizeof none);
    if (syscall(SYS_capset, &head, none) < 0) {
        snprintf(why, sizeof why, "cannot drop capabilities: %s", strerror(errno));
        return why;
    }
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return NULL;
}

/* Give up every capability for good; keep (with two uids) a uid the program does not have. */
static const char *drop_privileges(void)
{
    static char why[128];
    if (two_uids && (setgroups(0, NULL) < 0 || setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) < 0 ||
                     setresuid(SUPERVISOR_UID, SANDBOX_ID, SUPERVISOR_UID) < 0)) {
        snprintf(why, sizeof why, "cannot take the run's uids: %s", strerror(errno));
        return why;
    }
    return drop_all_capabilities();
}

/*
 * The run's supervisor: PID 1 of the run's namespaces. Sets the run up, says
 * it is ready on ready_fd (one byte; or why not, and exit 2), then serves one
 * request.
 */
__attribute__((noreturn)) static void run_supervisor(int ready_fd, const struct sizes *sz)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    const char *why = mount_run_files(sz);
    if (!why) why = drop_privileges();
    if (why) {
        say(ready_fd, "%s", why);
        _exit(2);
    }
    if (write(ready_fd, "r", 1) != 1) _exit(2);
    close(ready_fd);
    _exit(serve_request(1, two_uids));
}

/*
 * The helper between us and the run: enters the namespaces, waits for us to
 * write its uid and gid maps, then forks the run's supervisor and ends as it
 * does (its exit status, or 3 if it was killed).
 */
__attribute__((noreturn)) static void enter_run(int ready_fd, int mapped_fd, int entered_fd,
                                                const struct sizes *sz)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* With two uids we stay root here, so that we (root without CAP_DAC_OVERRIDE) may
     * open its map files; the run's supervisor takes its own uid inside. */
    if (two_uids && setgroups(0, NULL) < 0) {
        say(ready_fd, "cannot drop supplementary groups: %s", strerror(errno));
        _exit(2);
    }
    if (unshare(RUN_NAMESPACES) < 0) {
        say(ready_fd, "cannot create the run's namespaces: %s", strerror(errno));
        _exit(2);
    }
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); /* so that we (same uid) may write its maps */
    char go;
    if (write(entered_fd, "u", 1) != 1 || read(mapped_fd, &go, 1) != 1 || go != 'm') _exit(2);
    close(entered_fd), close(mapped_fd);
    pid_t pid = fork();
    if (pid < 0) {
        say(ready_fd, "fork: %s", strerror(errno));
        _exit(2);
    }
    if (pid == 0) run_supervisor(ready_fd, sz);
    close(ready_fd);
    /* All that is left for us is to wait: no capability in the run's namespace either. */
    const char *why = drop_all_capabilities();
    if (why) {
        dprintf(2, "cb-supervisor: %s\n", why);
        kill(pid, SIGKILL);
        _exit(3);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) _exit(3);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 3);
}

/* Map the program's uid (and, with two, the run supervisor's) into the helper's namespace. */
static const char *write_maps(pid_t helper)
{
    static char why[160];
    char path[64], map[128];
    if (two_uids) {
        snprintf(map, sizeof map, "%d %d 1\n%d %d 1\n", SUPERVISOR_UID, SUPERVISOR_UID, SANDBOX_ID,
                 SANDBOX_ID);
    } else {
        snprintf(map, sizeof map, "%d %d 1\n", SANDBOX_ID, SANDBOX_ID);
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)helper);
        if (write_file_at(path, "deny") < 0 && errno != ENOENT) {
            snprintf(why, sizeof why, "cannot write %s: %s", path, strerror(errno));
            return why;
        }
    }
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)helper);
    if (write_file_at(path, map) == 0) {
        snprintf(map, sizeof map, "%d %d 1\n", SANDBOX_ID, SANDBOX_ID);
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)helper);
        if (write_file_at(path, map) == 0) return NULL;
    }
    snprintf(why, sizeof why, "cannot write %s: %s", path, strerror(errno));
    return why;
}

/* ---------- between runs ---------- */

/* Fork the next run's sandbox and wait until it is set up; fail() if it cannot be. */
static pid_t start_run(const struct sizes *sz)
{
    int ready[2], mapped[2], entered[2];
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(mapped, O_CLOEXEC) < 0 || pipe2(entered, O_CLOEXEC) < 0)
        fail("pipe: %s", strerror(errno));
    pid_t helper = fork();
    if (helper < 0) fail("fork: %s", strerror(errno));
    if (helper == 0) {
        close(ready[0]), close(mapped[1]), close(entered[0]);
        enter_run(ready[1], mapped[0], entered[1], sz);
    }
    close(ready[1]), close(mapped[0]), close(entered[1]);
    char got;
    const char *why = NULL;
    if (read(entered[0], &got, 1) == 1) {
        why = write_maps(helper);
        if (!why && write(mapped[1], "m", 1) != 1) why = "the run's helper went away";
    }
    close(entered[0]), close(mapped[1]);
    char msg[512];
    ssize_t n;
    while ((n = read(ready[0], msg, sizeof msg)) < 0 && errno == EINTR) {}
    close(ready[0]);
    if (why) fail("%s", why);
    if (n == 1 && msg[0] == 'r') return helper;
    if (n > 0) fail("%.*s", (int)n, msg);
    fail("the run's sandbox could not be set up");
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT;
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

/* Processes of ours but us, after reaping whatever ended. */
static int others_alive(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    DIR *proc = opendir("/proc");
    if (!proc) return -1;
    int found = 0;
    pid_t self = getpid();
    for (struct dirent *e; (e = readdir(proc));)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && atoi(e->d_name) != self) found++;
    closedir(proc);
    return found;
}

/* A SysV IPC table with an entry in it (its first line is a header). */
static int ipc_left(const char *table)
{
    char buf[4096];
    if (read_text(table, buf, sizeof buf) < 0) return 0; /* no such table here */
    char *nl = strchr(buf, '\n');
    return nl && nl[1] != '\0';
}

/* Why the host is no longer as it was before the run, or NULL. */
static const char *leftovers(void)
{
    static char mounts[MOUNTS_CAP];
    int alive = others_alive();
    for (int waited = 0; alive > 0 && waited < LEFTOVER_WAIT_MS; waited += 10) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        alive = others_alive();
    }
    if (alive != 0) return alive < 0 ? "cannot read /proc" : "a process of the run is still alive";
    if (ipc_left("/proc/sysvipc/shm") || ipc_left("/proc/sysvipc/msg") ||
        ipc_left("/proc/sysvipc/sem"))
        return "a SysV IPC object is left in the host";
    if (read_text("/proc/self/mountinfo", mounts, sizeof mounts) < 0 ||
        strcmp(mounts, mounts_at_start) != 0)
        return "the host's mounts changed";
    if (!dir_is_empty(workdir) || !dir_is_empty("/tmp") || !dir_is_empty("/dev/shm"))
        return "a file is left in the host's own directories";
    return NULL;
}

static unsigned long long size_arg(const char *text)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v == 0) fail("host mode: bad size %s", text);
    return v;
}

int host_main(int argc, char **argv)
{
    if (argc != 5) fail("usage: cb-supervisor --host WORKSPACE_BYTES TMP_BYTES SHM_BYTES");
    struct sizes sz = {size_arg(argv[2]), size_arg(argv[3]), size_arg(argv[4])};
    if (!getcwd(workdir, sizeof workdir)) fail("getcwd: %s", strerror(errno));
    two_uids = geteuid() == 0;
    if (read_text("/proc/self/mountinfo", mounts_at_start, sizeof mounts_at_start) < 0)
        fail("cannot read /proc/self/mountinfo: %s", strerror(errno));
    for (;;) {
        pid_t helper = start_run(&sz);
        send_frame('R', NULL, 0);
        int status;
        while (waitpid(helper, &status, 0) < 0)
            if (errno != EINTR) fail("waitpid: %s", strerror(errno));
        /* 0: the run ended with E; 2: with F (the request could not be run). Either way
         * the request was read to its end; anything else leaves us nothing to trust. */
        if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 2)) {
            dprintf(2, "cb-supervisor: the run's supervisor ended abnormally (status %d)\n", status);
            return 3;
        }
        if (WEXITSTATUS(status) == 2) return 2; /* its F frame said why */
        const char *left = leftovers();
        if (left) {
            dprintf(2, "cb-supervisor: retiring the host: %s\n", left);
            return 4;
        }
    }
}
