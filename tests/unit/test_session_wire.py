"""The server's half of the session agent's framing: encoding, decoding, resync."""

from __future__ import annotations

import struct

import pytest

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.sessions import wire
from codebeaker.runtimes.sessions.wire import AgentDecoder, Reply, Request

NONCE = bytes(range(16))


def agent_frame(kind: Reply, ident: int, payload: bytes = b"") -> bytes:
    return wire.HEADER.pack(kind.value, ident, len(payload)) + payload


def sync(count: int = 0, nonce: bytes = NONCE) -> bytes:
    return agent_frame(Reply.SYNC, 0, nonce + struct.pack(">I", count))


def test_everything_before_our_sync_answer_is_skipped_even_mid_frame() -> None:
    decoder = AgentDecoder(NONCE)
    stale = agent_frame(Reply.STDOUT, 7, b"old output")[5:]  # starts mid-frame
    other = sync(nonce=bytes(16))  # another server's nonce
    fresh = agent_frame(Reply.STDOUT, 9, b"new")
    stream = stale + other + sync() + fresh
    frames = [f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])]
    assert [(f.type, f.id, f.payload) for f in frames] == [
        (Reply.SYNC, 0, NONCE + b"\0\0\0\0"),
        (Reply.STDOUT, 9, b"new"),
    ]


def test_frames_come_whole_however_the_stream_is_cut() -> None:
    decoder = AgentDecoder(NONCE)
    decoder.feed(sync())
    data = agent_frame(Reply.STDOUT, 1, b"a" * 1000) + agent_frame(Reply.EXIT, 1, b"x=1\n")
    got = decoder.feed(data[:10]) + decoder.feed(data[10:1005]) + decoder.feed(data[1005:])
    assert [(f.type, len(f.payload)) for f in got] == [(Reply.STDOUT, 1000), (Reply.EXIT, 4)]


def test_an_oversized_or_unknown_frame_is_a_sandbox_failure() -> None:
    decoder = AgentDecoder(NONCE)
    decoder.feed(sync())
    with pytest.raises(SandboxFailure, match="oversized"):
        decoder.feed(wire.HEADER.pack(Reply.STDOUT.value, 1, wire.MAX_AGENT_PAYLOAD + 1))
    decoder = AgentDecoder(NONCE)
    decoder.feed(sync())
    with pytest.raises(SandboxFailure, match="unknown"):
        decoder.feed(wire.HEADER.pack(ord("?"), 1, 0))


def test_a_start_frame_carries_flags_limits_cwd_argv_and_env() -> None:
    data = wire.start(
        5,
        ["python3", "-c", "x"],
        {"A": "1"},
        "src",
        wall_time=1.5,
        cpu_time=0,
        output_cap=1024,
        close_stdin=True,
        detached=True,
    )
    kind, ident, length = wire.HEADER.unpack_from(data)
    assert (kind, ident, length) == (Request.START.value, 5, len(data) - wire.HEADER.size)
    body = data[wire.HEADER.size :]
    flags, wall, cpu, cap = struct.unpack_from(">IQQQ", body)
    assert (flags, wall, cpu, cap) == (wire.FLAG_CLOSE_STDIN | wire.FLAG_DETACHED, 1500, 0, 1024)
    assert b"\0\0\0\x03src\0\0\0\x03" in body and body.endswith(b"\0\0\0\x01\0\0\0\x03A=1")


def test_directory_entries_and_usage_parse() -> None:
    raw = b"f.txt".decode().encode()
    entry = struct.pack(">BIQQI", ord("f"), 0o644, 12, 1700000000, 500_000_000)
    entries = wire.parse_entries(entry + struct.pack(">H", len(raw)) + raw)
    assert [(e.name, e.kind, e.mode, e.size, e.mtime) for e in entries] == [
        ("f.txt", "f", 0o644, 12, 1700000000.5)
    ]
    with pytest.raises(SandboxFailure):
        wire.parse_entries(entry[:5])
    assert wire.parse_pairs(b"disk_bytes=10\nbad\nexecs=x\nprocesses=2\n") == {
        "disk_bytes": 10,
        "processes": 2,
    }
