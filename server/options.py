"""How a config section declares its settings, and the parsers of their values.

Every setting is a field of a frozen dataclass (a section: the service, the
limits, the pools, the backend) declared with `setting()`: its default, its
help text and, for sizes, its kind. The flag is the field name with dashes
(`--max-concurrency`), the variable the same in capitals with the prefix
(`CODEBEAKER_MAX_CONCURRENCY`); names are unique across sections.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import field
from typing import Any

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.errors import UnknownLanguage

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SIZE = "size"


def setting(default: object, help: str, kind: str = "") -> Any:
    """A config field: `default`, documented by `help`; `kind=SIZE` takes K/M/G."""
    return field(default=default, metadata={"help": help, "kind": kind})


def parse_size(text: str) -> int:
    """'256M' -> 268435456; plain numbers are bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 65536, 64K, 256M, 1G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_assignments(text: str) -> dict[str, str]:
    """'a=x,b=y' -> {'a': 'x', 'b': 'y'}."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def split_host_port(address: str) -> tuple[str, int]:
    """'127.0.0.1:9464' -> ('127.0.0.1', 9464); '[::1]:0' -> ('::1', 0)."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"not a host:port address: {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def language_ids(catalog: Catalog, names: Iterable[str], setting_name: str) -> list[str]:
    """Language names (ids or aliases) as ids; an unknown one is a ValueError naming
    the setting."""
    try:
        return [catalog.resolve(name).id for name in names]
    except UnknownLanguage as error:
        raise ValueError(f"{setting_name}: {error.problem}") from None
