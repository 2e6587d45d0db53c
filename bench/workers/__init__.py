"""Peer workers: one subprocess per peer and language, each in the interpreter that has that peer.

A worker imports only the standard library, `bench.programs` and its peer,
times the peer's own API over warm-up and measured runs, and prints one JSON
object on stdout. Run from the repository root as `python -m bench.workers.NAME`.
"""
