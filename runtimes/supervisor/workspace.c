/* See workspace.h. */
#define _GNU_SOURCE
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64            /* deeper directories are not walked */
#define MAX_ENTRIES 100000      /* entries walked per pass */
#define MAX_REPORTED 1000       /* output entries reported per stage */
#define PATH_CAP 4096
#define CHUNK 65536

/*
 * O_NOFOLLOW is not enough on its own: gVisor (runsc 20240729) follows a
 * trailing symlink when O_DIRECTORY comes with it. So the entry is looked at
 * first, and what was opened must be that very directory (same device and
 * inode); otherwise a program swapped it meanwhile (session mode, where
 * programs run while we walk).
 */
int dir_at(int dir, const char *name)
{
    struct stat before, after;
    if (fstatat(dir, name, &before, AT_SYMLINK_NOFOLLOW) < 0) return -1;
    if (!S_ISDIR(before.st_mode)) {
        errno = S_ISLNK(before.st_mode) ? ELOOP : ENOTDIR;
        return -1;
    }
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, &after) < 0 || after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
        close(fd);
        errno = ELOOP;
        return -1;
    }
    return fd;
}

/* ---------- walking ---------- */

typedef void (*visit_fn)(int dir, const char *name, const char *rel, const struct stat *st, void *ctx);

static size_t walked;

/* Call visit for every entry under dir (pre-order), never following symlinks. */
static void walk(int dir, char *rel, size_t len, int depth, visit_fn visit, void *ctx)
{
    int fd = dup(dir);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    rewinddir(d); /* a dup shares its offset with dir, which may have been read before */
    for (struct dirent *e; (e = readdir(d)) && walked < MAX_ENTRIES;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t n = strlen(e->d_name);
        if (len + n + 2 > PATH_CAP) continue;
        struct stat st;
        if (fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        walked++;
        if (len) rel[len] = '/';
        memcpy(rel + len + (len ? 1 : 0), e->d_name, n + 1);
        visit(dir, e->d_name, rel, &st, ctx);
        if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH) {
            int sub = dir_at(dir, e->d_name);
            if (sub >= 0) {
                walk(sub, rel, len + n + (len ? 1 : 0), depth + 1, visit, ctx);
                close(sub);
            }
        }
        rel[len] = '\0';
    }
    closedir(d);
}

static void walk_cwd(visit_fn visit, void *ctx)
{
    char rel[PATH_CAP + 1] = "";
    int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    walked = 0;
    walk(dir, rel, 0, 0, visit, ctx);
    close(dir);
}

/* ---------- wiping ---------- */

/* Remove everything inside dir; directories the program locked (mode 000)
 * are ours (same uid), so they are opened up first. */
static void wipe(int dir, int depth)
{
    int fd = dup(dir);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    rewinddir(d); /* a dup shares its offset with dir, which may have been read before */
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        struct stat st;
        if (fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (S_ISDIR(st.st_mode)) {
            fchmodat(dir, e->d_name, 0700, 0);
            int sub = depth < MAX_DEPTH ? dir_at(dir, e->d_name) : -1;
            if (sub >= 0) {
                wipe(sub, depth + 1);
                close(sub);
            }
            unlinkat(dir, e->d_name, AT_REMOVEDIR);
        } else {
            unlinkat(dir, e->d_name, 0);
        }
    }
    closedir(d);
}

static void wipe_path(const char *path)
{
    int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    fchmod(dir, 0755 | S_ISVTX); /* fails unless it is ours; then its mode stays */
    wipe(dir, 0);
    close(dir);
}

void wipe_scratch(void)
{
    wipe_path("/tmp");
    wipe_path("/dev/shm");
}

/* ---------- the snapshot ---------- */

struct entry {
    char *path;
    mode_t mode;     /* type and permission bits */
    char *data;      /* file content or symlink target */
    size_t size;
};

static struct entry *entries;
static size_t n_entries, cap_entries;
static int snap_dir = -1;

static char *read_all(int fd, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (!buf) fail("out of memory taking the snapshot");
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != size) fail("cannot read a file for the snapshot: it changed");
    return buf;
}

static void remember(int dir, const char *name, const char *rel, const struct stat *st, void *ctx)
{
    (void)ctx;
    if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode)) return;
    if (n_entries == cap_entries) {
        cap_entries = cap_entries ? cap_entries * 2 : 64;
        entries = realloc(entries, cap_entries * sizeof *entries);
        if (!entries) fail("out of memory taking the snapshot");
    }
    struct entry *e = &entries[n_entries++];
    e->path = strdup(rel);
    e->mode = st->st_mode;
    e->data = NULL;
    e->size = 0;
    if (!e->path) fail("out of memory taking the snapshot");
    if (S_ISREG(st->st_mode)) {
        int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) fail("cannot read %s for the snapshot: %s", rel, strerror(errno));
        e->size = (size_t)st->st_size;
        e->data = read_all(fd, e->size);
        close(fd);
    } else if (S_ISLNK(st->st_mode)) {
        char target[PATH_CAP];
        ssize_t n = readlinkat(dir, name, target, sizeof target - 1);
        if (n < 0) fail("cannot read the link %s for the snapshot", rel);
        e->data = strndup(target, (size_t)n);
        if (!e->data) fail("out of memory taking the snapshot");
    }
}

void snapshot_take(void)
{
    snap_dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (snap_dir < 0) fail("cannot open the working directory: %s", strerror(errno));
    walk_cwd(remember, NULL);
    wipe_scratch();
}

static void write_entry(const struct entry *e)
{
    if (S_ISDIR(e->mode)) {
        if (mkdirat(snap_dir, e->path, 0700) < 0 && errno != EEXIST)
            fail("cannot restore %s: %s", e->path, strerror(errno));
    } else if (S_ISLNK(e->mode)) {
        if (symlinkat(e->data, snap_dir, e->path) < 0)
            fail("cannot restore %s: %s", e->path, strerror(errno));
    } else {
        /* Parents were made before (pre-order) and nothing else is running:
         * O_NOFOLLOW|O_EXCL keeps even a stale link from redirecting us. */
        int fd = openat(snap_dir, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) fail("cannot restore %s: %s", e->path, strerror(errno));
        for (size_t off = 0; off < e->size;) {
            ssize_t w = write(fd, e->data + off, e->size - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) fail("cannot restore %s: %s", e->path, strerror(errno));
            off += (size_t)w;
        }
        fchmod(fd, e->mode & 07777);
        close(fd);
    }
}

void snapshot_restore(void)
{
    fchmod(snap_dir, 0755);
    wipe(snap_dir, 0);
    wipe_scratch();
    for (size_t i = 0; i < n_entries; i++) write_entry(&entries[i]);
    /* Directory modes last: a read-only directory must not stop its own files. */
    for (size_t i = n_entries; i-- > 0;)
        if (S_ISDIR(entries[i].mode)) fchmodat(snap_dir, entries[i].path, entries[i].mode & 07777, 0);
}

/* ---------- output files ---------- */

struct collection {
    char **patterns;
    uint32_t n;
    char *matched;     /* per pattern: matched anything */
    uint64_t file_cap, left;
    size_t reported;
};

char type_char(mode_t mode)
{
    if (S_ISREG(mode)) return 'f';
    if (S_ISDIR(mode)) return 'd';
    if (S_ISLNK(mode)) return 'l';
    if (S_ISFIFO(mode)) return 'p';
    if (S_ISCHR(mode)) return 'c';
    if (S_ISBLK(mode)) return 'b';
    if (S_ISSOCK(mode)) return 's';
    return '?';
}

/* H payload: status u8, type u8, size u64 (big-endian), path bytes. */
static void send_header(char status, char type, uint64_t size, const char *path)
{
    unsigned char h[10 + PATH_CAP];
    size_t n = strlen(path);
    if (n > PATH_CAP) n = PATH_CAP;
    h[0] = (unsigned char)status, h[1] = (unsigned char)type;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(size >> (56 - 8 * i));
    memcpy(h + 10, path, n);
    send_frame('H', h, 10 + n);
}

static void send_content(int fd, uint64_t want)
{
    static char buf[CHUNK];
    while (want > 0) {
        ssize_t r = read(fd, buf, want < sizeof buf ? (size_t)want : sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        send_frame('D', buf, (size_t)r);
        want -= (uint64_t)r;
    }
}

static void offer(int dir, const char *name, const char *rel, const struct stat *st, void *ctx)
{
    struct collection *c = ctx;
    int hit = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (fnmatch(c->patterns[i], rel, FNM_PATHNAME | FNM_PERIOD) == 0) c->matched[i] = hit = 1;
    if (!hit || c->reported >= MAX_REPORTED) return;
    c->reported++;
    if (!S_ISREG(st->st_mode)) {
        send_header('n', type_char(st->st_mode), 0, rel);
        return;
    }
    /* Re-checked on the open file: only a regular file is ever read. */
    struct stat now;
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &now) < 0 || !S_ISREG(now.st_mode)) {
        send_header('n', fd < 0 ? '?' : type_char(now.st_mode), 0, rel);
        if (fd >= 0) close(fd);
        return;
    }
    uint64_t size = (uint64_t)now.st_size, cap = c->file_cap < c->left ? c->file_cap : c->left;
    uint64_t send = size < cap ? size : cap;
    send_header(send < size ? 't' : 'r', 'f', size, rel);
    send_content(fd, send);
    c->left -= send;
    close(fd);
}

void collect_outputs(char **patterns, uint32_t n, uint64_t file_cap, uint64_t total_cap)
{
    if (n == 0) return;
    char matched[n];
    memset(matched, 0, n);
    struct collection c = {patterns, n, matched, file_cap, total_cap, 0};
    walk_cwd(offer, &c);
    for (uint32_t i = 0; i < n; i++)
        if (!matched[i]) send_header('m', '-', 0, patterns[i]);
}
