/*
 * The sandbox's files between stages: a snapshot of the working directory
 * that every test case starts from, wiping what a run left behind, and
 * collecting the output files a request names. Every walk is done with
 * O_NOFOLLOW and *at() calls relative to directory descriptors, so no
 * symlink the program planted can point the supervisor elsewhere.
 */
#ifndef CB_WORKSPACE_H
#define CB_WORKSPACE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sends one frame to the server (supervisor.c). */
void send_frame(int type, const void *payload, size_t n);
/* A fatal setup error: an F frame, then exit (supervisor.c). */
__attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...);

/* Remember the working directory as it is now (the state every case starts from). */
void snapshot_take(void);
/* Empty the working directory, /tmp and /dev/shm, then recreate the snapshot. */
void snapshot_restore(void);
/* Empty /tmp and /dev/shm (best effort: what cannot go is left). */
void wipe_scratch(void);

/* The directory name of dir, opened without following a symlink; -1 with errno if not. */
int dir_at(int dir, const char *name);

/* What a file is, as an output file header and a listing say: f d l p c b s, else ?. */
char type_char(mode_t mode);

/*
 * Send an H frame, then D frames with the content, for each entry of the
 * working directory matching one of `patterns` (fnmatch with FNM_PATHNAME |
 * FNM_PERIOD), and an H frame "missing" for each pattern that matched
 * nothing. Regular files only are read, at most file_cap bytes each and
 * total_cap bytes in all.
 */
void collect_outputs(char **patterns, uint32_t n, uint64_t file_cap, uint64_t total_cap);

#endif
