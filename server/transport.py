"""How the server's port is secured and how its connections are kept honest.

Two concerns of the transport, decided in one place so `config.check` and
`app` agree: the credentials of the listening port (plaintext, TLS, or mTLS
when a client CA is configured), and the HTTP/2 channel options that bound a
connection's life. Keepalive matters because a caller whose machine vanishes
(no FIN, no RST) would otherwise keep its call, and so its sandbox, until the
wall limit: the server pings every `keepalive_time` and, without an answer
within `keepalive_timeout`, drops the connection, which cancels its calls.

The SDK pings too (every 30 s, see `codebeaker.client._settings`); the server
must permit that or it answers GOAWAY `too_many_pings`, so the interval the
server permits (`CLIENT_PING_INTERVAL`) is never longer than the SDK's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from codebeaker.server.config import ServerConfig, ServiceConfig

CLIENT_PING_INTERVAL = 10.0
"""Seconds: the shortest interval between a client's pings the server accepts."""

CONNECTION_AGE_GRACE_MARGIN = 30.0
"""Seconds beyond the longest compile plus run a closing connection's calls get."""

_PEM_MARKERS = {
    "tls_cert": "-----BEGIN CERTIFICATE-----",
    "tls_key": "PRIVATE KEY-----",
    "tls_client_ca": "-----BEGIN CERTIFICATE-----",
}


def check(config: ServerConfig) -> None:
    """Refuse an inconsistent or unreadable transport setup (ValueError naming the setting)."""
    service = config.service
    if service.tls_cert and not service.tls_key:
        raise ValueError("tls_cert needs tls_key (the certificate's private key)")
    if service.tls_key and not service.tls_cert:
        raise ValueError("tls_key needs tls_cert (the certificate it belongs to)")
    if service.tls_client_ca and not service.tls_cert:
        raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key: mTLS is TLS first")
    for name in _PEM_MARKERS:
        if getattr(service, name):
            _read_pem(service, name)
    for name in ("keepalive_time", "keepalive_timeout"):
        if getattr(service, name) <= 0:
            raise ValueError(f"{name} must be more than 0 seconds")
    for name in ("max_connection_age", "max_connection_age_grace"):
        if getattr(service, name) < 0:
            raise ValueError(f"{name} must be 0 or more seconds")


def server_credentials(service: ServiceConfig) -> grpc.ServerCredentials | None:
    """The port's TLS credentials; None serves plaintext."""
    if not service.tls_cert:
        return None
    key = _read_pem(service, "tls_key")
    chain = _read_pem(service, "tls_cert")
    client_ca = _read_pem(service, "tls_client_ca") if service.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def connection_age_grace(config: ServerConfig) -> float:
    """Seconds a connection past its age lets its calls finish: the setting, or if 0
    the longest compile plus the longest run plus a margin."""
    if config.service.max_connection_age_grace > 0:
        return config.service.max_connection_age_grace
    limits = config.limits
    return limits.max_compile_time + limits.max_wall_time + CONNECTION_AGE_GRACE_MARGIN


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channel arguments of the server: keepalive, the ping policy, connection age."""
    service = config.service
    options = [
        ("grpc.keepalive_time_ms", _ms(service.keepalive_time)),
        ("grpc.keepalive_timeout_ms", _ms(service.keepalive_timeout)),
        # This grpc waits `ping_timeout` (default 60 s) for any ping's answer,
        # keepalive pings included; without it the timeout above is not kept.
        ("grpc.http2.ping_timeout_ms", _ms(service.keepalive_timeout)),
        # Ping idle connections too (a vanished idle caller still holds a
        # connection), and accept the SDK's pings when it has no call open.
        ("grpc.keepalive_permit_without_calls", 1),
        # A silent program sends no data for minutes; our pings must not stop.
        ("grpc.http2.max_pings_without_data", 0),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            _ms(min(CLIENT_PING_INTERVAL, service.keepalive_time)),
        ),
    ]
    if service.max_connection_age > 0:
        options += [
            ("grpc.max_connection_age_ms", _ms(service.max_connection_age)),
            ("grpc.max_connection_age_grace_ms", _ms(connection_age_grace(config))),
        ]
    return options


def _read_pem(service: ServiceConfig, name: str) -> bytes:
    path = Path(getattr(service, name))
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{name}: cannot read {path}: {error.strerror or error}") from None
    if _PEM_MARKERS[name].encode() not in data:
        raise ValueError(f"{name}: {path} is not PEM ({_PEM_MARKERS[name]!r} missing)")
    return data


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
