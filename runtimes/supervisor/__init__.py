"""cb-supervisor, both halves: the C program that is a host's PID 1 (`supervisor.c`,
`workspace.c`, `seccomp.c`, built into `codebeaker/supervisor` by the image builder) and the
server's side of its wire protocol (`PROTOCOL.md`): planning and encoding a
request (`protocol`), turning its frames into events (`relay`), and the
conversation over a host's byte stream that every backend shares
(`conversation`).
"""
