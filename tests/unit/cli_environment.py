"""The environment a `codebeaker` process under test runs with, shared by the CLI tests."""

from __future__ import annotations

import os


def environment(**extra: str) -> dict[str, str]:
    """Ours without CODEBEAKER_ADDRESS (each test names its server) and without proxies
    (a loopback call must not go through one), plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "CODEBEAKER_ADDRESS" and "proxy" not in key.lower()
    }
    env.update(extra)
    return env
