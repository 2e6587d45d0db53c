"""How the SDK reaches the server: plaintext, TLS, mTLS or a caller's channel.

`Client` and `AsyncClient` take the same connection arguments; they are
checked and turned into a `Connection` here once, so the blocking and the
asyncio client (and the CLI above them) secure and authenticate alike. What
differs between the two is only which grpc module opens the channel.

Per-call metadata (the caller's pairs, `authorization: Bearer <token>`) is
decided here too; the clients add the trace context of each call to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import grpc
from grpc import aio

from codebeaker.client._settings import (
    ChannelOptions,
    channel_options,
    resolve_address,
    resolve_token,
)

PemSource: TypeAlias = "str | os.PathLike[str] | bytes"
"""A PEM file's path, or its contents as bytes."""

Metadata: TypeAlias = tuple[tuple[str, str], ...]

AUTHORIZATION = "authorization"


@dataclass(frozen=True)
class Connection:
    """Where to connect, how, and what every call carries."""

    address: str
    credentials: grpc.ChannelCredentials | None  # None: plaintext
    options: tuple[tuple[str, str | int], ...]
    metadata: Metadata

    def with_call(self, call_metadata: Metadata) -> Metadata:
        """This connection's metadata followed by one call's own (its trace context)."""
        return (*self.metadata, *call_metadata)

    def open(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.address, options=self.options)
        return grpc.secure_channel(self.address, self.credentials, options=self.options)

    def open_aio(self) -> aio.Channel:
        if self.credentials is None:
            return aio.insecure_channel(self.address, options=self.options)
        return aio.secure_channel(self.address, self.credentials, options=self.options)


def connection(
    address: str | None,
    *,
    tls: bool = False,
    ca: PemSource | None = None,
    cert: PemSource | None = None,
    key: PemSource | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    token: str | None = None,
    options: ChannelOptions | None = None,
    own_channel: bool = True,
) -> Connection:
    """Check the connection arguments; ValueError names the one that is wrong.

    With `own_channel=False` (the caller passed `channel=`) nothing about the
    channel itself may be given: only what goes with each call.
    """
    if not own_channel:
        given = [
            name
            for name, value in (
                ("tls", tls),
                ("ca", ca),
                ("cert", cert),
                ("key", key),
                ("credentials", credentials),
                ("options", options),
            )
            if value
        ]
        if given:
            raise ValueError(f"channel= is ready-made; {', '.join(given)} cannot apply to it")
    return Connection(
        address=resolve_address(address),
        credentials=_credentials(tls, ca, cert, key, credentials) if own_channel else None,
        options=tuple(channel_options(options)),
        metadata=_call_metadata(metadata, resolve_token(token)),
    )


def _credentials(
    tls: bool,
    ca: PemSource | None,
    cert: PemSource | None,
    key: PemSource | None,
    credentials: grpc.ChannelCredentials | None,
) -> grpc.ChannelCredentials | None:
    if credentials is not None:
        if ca is not None or cert is not None or key is not None:
            raise ValueError("credentials= already hold the CA and certificate; drop ca/cert/key")
        return credentials
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together (the client certificate and its key)")
    if not (tls or ca is not None or cert is not None):
        return None
    return grpc.ssl_channel_credentials(
        # None: the system's trusted roots, as grpc finds them.
        root_certificates=read_pem("ca", ca) if ca is not None else None,
        private_key=read_pem("key", key) if key is not None else None,
        certificate_chain=read_pem("cert", cert) if cert is not None else None,
    )


def read_pem(name: str, source: PemSource) -> bytes:
    """A PEM's bytes from a path or as given; ValueError names the argument."""
    if isinstance(source, bytes):
        data = source
        where = "the bytes given"
    else:
        path = Path(source)
        where = str(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ValueError(f"{name}: cannot read {path}: {error.strerror or error}") from None
    if b"-----BEGIN " not in data:
        raise ValueError(f"{name}: {where} is not PEM (no -----BEGIN line)")
    return data


def _call_metadata(pairs: Sequence[tuple[str, str]], token: str) -> Metadata:
    metadata: list[tuple[str, str]] = []
    for key, value in pairs:
        # grpc would refuse these only at call time, with a less helpful error.
        if not key or key != key.lower() or key.startswith("grpc-") or key.endswith("-bin"):
            raise ValueError(f"metadata key {key!r}: use lowercase, no grpc- prefix, no -bin")
        if not _printable(value):
            raise ValueError(f"metadata {key!r}: the value must be printable ASCII")
        if key == AUTHORIZATION and token:
            raise ValueError("metadata has authorization and token= is set: choose one")
        metadata.append((key, value))
    if token:
        if not _printable(token) or " " in token:
            raise ValueError("token must be printable ASCII without spaces")
        metadata.append((AUTHORIZATION, f"Bearer {token}"))
    return tuple(metadata)


def _printable(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)
