"""Connection settings shared by `Client`, `AsyncClient` and the CLI.

Where the server is (`CODEBEAKER_ADDRESS`), the bearer token
(`CODEBEAKER_TOKEN`), how per-call deadlines fall back to the client's
default, and the channel options every SDK channel starts with (message
size, keepalive) — decided once so the two clients and the command line agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

ADDRESS_ENV = "CODEBEAKER_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:50051"
TOKEN_ENV = "CODEBEAKER_TOKEN"

KEEPALIVE_TIME_MS = 30_000
"""How often the SDK pings the server. The server accepts pings every 10 s or
less often (`codebeaker.server.transport.CLIENT_PING_INTERVAL`); more often and
it would answer GOAWAY `too_many_pings`."""
KEEPALIVE_TIMEOUT_MS = 10_000

ChannelOptions = Sequence[tuple[str, str | int]]
"""gRPC channel arguments, e.g. `[("grpc.keepalive_time_ms", 30_000)]`."""

# The server caps program output, and a buffered Execute response carries up
# to two capped streams; gRPC's 4 MiB receive default would turn a legitimate
# large result into a client-side RESOURCE_EXHAUSTED.
_DEFAULT_OPTIONS: tuple[tuple[str, str | int], ...] = (
    ("grpc.max_receive_message_length", -1),
    # A server (or a NAT between) that vanishes mid-call is noticed within
    # ~40 s instead of never: a silent program sends nothing for minutes, so
    # pings go on without data. An idle channel does not ping: a proxy with
    # gRPC's default policy would count that as abuse.
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # grpc waits this long for any ping's answer (default 60 s), keepalive too.
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
)


def default_address() -> str:
    """`$CODEBEAKER_ADDRESS` if set and non-empty, else 127.0.0.1:50051."""
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def resolve_address(address: str | None) -> str:
    return address or default_address()


def resolve_token(token: str | None) -> str:
    """The bearer token: the caller's, else `$CODEBEAKER_TOKEN`; empty means none."""
    return token if token is not None else os.environ.get(TOKEN_ENV, "")


def channel_options(extra: ChannelOptions | None) -> list[tuple[str, str | int]]:
    """The SDK defaults, overridden by the caller's options of the same name."""
    chosen = dict(_DEFAULT_OPTIONS)
    chosen.update(extra or ())
    return list(chosen.items())


def deadline(call_timeout: float | None, default_timeout: float | None) -> float | None:
    """Seconds the call may take: its own timeout, else the client's; None = no deadline."""
    return call_timeout if call_timeout is not None else default_timeout
