"""SessionService: stateful sandboxes with a life cycle, Execs, files and events.

`record` is what the server knows of a session, `registry` keeps it in SQLite
under --state-dir, `execs` keeps each Exec's record and retained output,
`manager` runs the life cycle (create from spares, pause, resume, delete,
expiry, reconcile with the engine), `watch` fans events out, `service` is the
gRPC face and `convert` its protobuf translation.
"""
