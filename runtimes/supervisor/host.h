/*
 * Host mode: many runs in one container, each in fresh namespaces of its own
 * (host.c), and the one-shot request loop it runs for each (supervisor.c).
 */
#ifndef CB_HOST_H
#define CB_HOST_H

/* Serve `cb-supervisor --host WORKSPACE_BYTES TMP_BYTES SHM_BYTES`; returns the exit status. */
int host_main(int argc, char **argv);

/*
 * Read one request from fd 0 and run it, as PID 1 of the sandbox's PID
 * namespace (`as_init`) or not, with a uid of our own the program does not
 * have (`separate_uid`) or sharing its uid. Returns 0 after the E frame.
 */
int serve_request(int as_init, int separate_uid);

#endif
