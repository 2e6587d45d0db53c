"""CodeBeaker's benchmark: `python -m bench` (or `make bench`).

One run measures hello world in Python and JavaScript against the physical
limit (the bare interpreter), the raw Docker engine, CodeBeaker's `Execute`
with and without its warm pool, `ExecuteStream`'s first-output latency,
throughput, and two peers (epicbox, llm-sandbox) on the same images. It prints
a table and PASS/MISS per target and writes `bench/results/latest.json`.

Importing this package imports nothing: peer workers run it from another
virtualenv that has only the standard library and the peer.
"""
