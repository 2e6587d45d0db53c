/*
 * Session mode (cb-supervisor --session): the PID 1 of a session's
 * container, the *agent*. It runs many Execs at once and serves file and
 * usage requests, all multiplexed over fd 0 and fd 1 as tagged frames
 * (PROTOCOL.md § Session mode).
 */
#ifndef CB_SESSION_H
#define CB_SESSION_H

/* Serve the session until the container ends; never returns on its own. */
int session_main(void);

#endif
