"""Sessions in the runtime layer: the session agent's wire protocol, the link
that multiplexes Execs and file requests over one sandbox's stdin/stdout, and
what a backend provides for sessions (PROTOCOL.md § Session mode)."""
