"""Who may call the server: the `--tenants` file, read into typed, validated values.

A tenant is a name, the credentials that identify it (API keys, stored only as
SHA-256 digests so the file is not a secret worth stealing, and/or the subject
of an mTLS client certificate) and its quotas. The file is TOML, one table per
tenant:

    [tenants.grader]
    api_key_sha256 = ["<64 hex digits>"]   # codebeaker tenants hash-key
    subject = "CN=grader-1"
    max_executions = 4

Everything is checked when the file is read, so a typo never becomes an open
door or a quota silently ignored: an unknown key, a plain key where a digest
belongs, a key or subject two tenants share, a quota that is not a positive
number are a ValueError naming the tenant and the field. The config section
`AccessConfig` lives here too: it names the file (and the audit log).
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType

from codebeaker.server.options import setting

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
_IDENTITY = ("api_key_sha256", "subject")


@dataclass(frozen=True)
class AccessConfig:
    tenants: str = setting("", "TOML file of tenants, API key digests and quotas; empty: open")
    audit_log: str = setting("", "file to append one JSON line per call to; empty: off")

    def directory(self) -> Tenants | None:
        """The tenants file, read and checked; None when the server is open."""
        return load_tenants(Path(self.tenants)) if self.tenants else None

    def check(self) -> None:
        """Refuse a bad tenants file at start-up (ValueError naming tenant and field)."""
        self.directory()


@dataclass(frozen=True)
class Quotas:
    """A tenant's limits; None is unlimited."""

    max_executions: int | None = None  # running at once
    requests_per_second: float | None = None  # token bucket: the refill rate ...
    burst: int | None = None  # ... and its size (default: one second's worth)
    max_sessions: int | None = None  # alive at once
    max_queued_operations: int | None = None  # submitted and not yet running
    cpu_seconds_per_hour: float | None = None  # measured CPU time over the last hour


_QUOTA_TYPES: Mapping[str, type] = MappingProxyType(
    {
        "max_executions": int,
        "requests_per_second": float,
        "burst": int,
        "max_sessions": int,
        "max_queued_operations": int,
        "cpu_seconds_per_hour": float,
    }
)
assert set(_QUOTA_TYPES) == {f.name for f in fields(Quotas)}


@dataclass(frozen=True)
class Tenant:
    name: str
    key_digests: frozenset[str]
    subject: str  # "" if the tenant has no certificate
    quotas: Quotas

    def burst(self) -> int:
        """The token bucket's size: `burst`, else one second of `requests_per_second`."""
        rate = self.quotas.requests_per_second
        if self.quotas.burst is not None or rate is None:
            return self.quotas.burst or 0
        return max(1, math.ceil(rate))


@dataclass(frozen=True)
class Tenants:
    """Every tenant, found by a key's digest or a certificate's subject."""

    by_name: Mapping[str, Tenant]
    by_digest: Mapping[str, Tenant]
    by_subject: Mapping[str, Tenant]

    def for_key(self, key: str) -> Tenant | None:
        return self.by_digest.get(hash_key(key))

    def for_subject(self, subject: str) -> Tenant | None:
        return self.by_subject.get(normalize_subject(subject))


def hash_key(key: str) -> str:
    """The digest the tenants file stores for an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def normalize_subject(subject: str) -> str:
    """'CN = grader-1, O=Acme' -> 'CN=grader-1,O=Acme': spacing is not identity.

    gRPC reports a peer's subject in RFC 2253 form (most specific first, comma
    separated); the file may be written with spaces, the order must match.
    """
    parts = []
    for rdn in subject.split(","):
        attribute, equals, value = rdn.partition("=")
        parts.append(f"{attribute.strip().upper()}{equals}{value.strip()}")
    return ",".join(parts)


def load_tenants(path: Path) -> Tenants:
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"tenants: cannot read {path}: {error.strerror or error}") from None
    return parse_tenants(text, str(path))


def parse_tenants(text: str, source: str = "tenants file") -> Tenants:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{source}: not valid TOML: {error}") from None
    unknown = set(document) - {"tenants"}
    if unknown:
        raise ValueError(
            f"{source}: unknown top-level key {sorted(unknown)[0]!r}; use [tenants.NAME]"
        )
    tables = document.get("tenants", {})
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{source}: no tenants; declare at least one [tenants.NAME] table")
    by_name: dict[str, Tenant] = {}
    by_digest: dict[str, Tenant] = {}
    by_subject: dict[str, Tenant] = {}
    for name, table in tables.items():
        tenant = _tenant(source, name, table)
        for digest in sorted(tenant.key_digests):
            _claim(by_digest, digest, tenant, source, "api_key_sha256", "key")
        if tenant.subject:
            _claim(by_subject, tenant.subject, tenant, source, "subject", "subject")
        by_name[name] = tenant
    return Tenants(
        MappingProxyType(by_name), MappingProxyType(by_digest), MappingProxyType(by_subject)
    )


def _claim(
    index: dict[str, Tenant], value: str, tenant: Tenant, source: str, field: str, what: str
) -> None:
    other = index.get(value)
    if other is not None:
        raise ValueError(
            f"{source}: tenants.{tenant.name}.{field}: the same {what} as tenant "
            f"{other.name!r}; a credential identifies one tenant"
        )
    index[value] = tenant


def _tenant(source: str, name: str, table: object) -> Tenant:
    where = f"{source}: tenants.{name}"
    if not NAME.match(name):
        raise ValueError(f"{where}: a tenant name is 1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table ([tenants.{name}])")
    unknown = set(table) - set(_IDENTITY) - set(_QUOTA_TYPES)
    if unknown:
        known = ", ".join((*_IDENTITY, *_QUOTA_TYPES))
        raise ValueError(f"{where}.{sorted(unknown)[0]}: unknown key; known keys: {known}")
    digests = _digests(where, table.get("api_key_sha256", []))
    subject = table.get("subject", "")
    if not isinstance(subject, str):
        raise ValueError(f'{where}.subject: must be a string such as "CN=grader-1"')
    subject = normalize_subject(subject) if subject.strip() else ""
    if subject and "=" not in subject:
        raise ValueError(f'{where}.subject: expected ATTRIBUTE=VALUE pairs, e.g. "CN=grader-1"')
    if not digests and not subject:
        raise ValueError(f"{where}: no credentials; give api_key_sha256 and/or subject")
    numbers = {key: _quota(where, key, table[key]) for key in _QUOTA_TYPES if key in table}

    def whole(key: str) -> int | None:
        return None if key not in numbers else int(numbers[key])

    def real(key: str) -> float | None:
        return None if key not in numbers else float(numbers[key])

    quotas = Quotas(
        max_executions=whole("max_executions"),
        requests_per_second=real("requests_per_second"),
        burst=whole("burst"),
        max_sessions=whole("max_sessions"),
        max_queued_operations=whole("max_queued_operations"),
        cpu_seconds_per_hour=real("cpu_seconds_per_hour"),
    )
    if quotas.burst is not None and quotas.requests_per_second is None:
        raise ValueError(f"{where}.burst: needs requests_per_second (the bucket's refill rate)")
    return Tenant(name, frozenset(digests), subject, quotas)


def _digests(where: str, value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{where}.api_key_sha256: must be a list of SHA-256 hex digests")
    digests = []
    for index, digest in enumerate(value):
        if not isinstance(digest, str) or not DIGEST.match(digest.strip().lower()):
            raise ValueError(
                f"{where}.api_key_sha256[{index}]: not a SHA-256 hex digest (64 hex digits); "
                "store the key's digest, never the key (codebeaker tenants hash-key)"
            )
        digests.append(digest.strip().lower())
    return digests


def _quota(where: str, key: str, value: object) -> int | float:
    kind = _QUOTA_TYPES[key]
    number_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types):
        wanted = "a whole number" if kind is int else "a number"
        raise ValueError(f"{where}.{key}: must be {wanted}, got {value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{where}.{key}: must be more than 0, got {value!r}; omit it for no limit")
    return int(value) if kind is int else float(value)
