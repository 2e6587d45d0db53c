"""Connection settings shared by `Client`, `AsyncClient` and the CLI.

Where the server is (`CODEBEAKER_ADDRESS`), how per-call deadlines fall back
to the client's default, and the channel options every SDK channel starts
with — decided once so the two clients and the command line agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

ADDRESS_ENV = "CODEBEAKER_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:50051"

ChannelOptions = Sequence[tuple[str, str | int]]
"""gRPC channel arguments, e.g. `[("grpc.keepalive_time_ms", 30_000)]`."""

# The server caps program output, and a buffered Execute response carries up
# to two capped streams; gRPC's 4 MiB receive default would turn a legitimate
# large result into a client-side RESOURCE_EXHAUSTED.
_DEFAULT_OPTIONS: tuple[tuple[str, str | int], ...] = (("grpc.max_receive_message_length", -1),)


def default_address() -> str:
    """`$CODEBEAKER_ADDRESS` if set and non-empty, else 127.0.0.1:50051."""
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def resolve_address(address: str | None) -> str:
    return address or default_address()


def channel_options(extra: ChannelOptions | None) -> list[tuple[str, str | int]]:
    """The SDK defaults, overridden by the caller's options of the same name."""
    chosen = dict(_DEFAULT_OPTIONS)
    chosen.update(extra or ())
    return list(chosen.items())


def deadline(call_timeout: float | None, default_timeout: float | None) -> float | None:
    """Seconds the call may take: its own timeout, else the client's; None = no deadline."""
    return call_timeout if call_timeout is not None else default_timeout
