"""Asynchronous executions as google.longrunning operations: the queue store, its workers,
the SubmitExecution and Operations services."""
