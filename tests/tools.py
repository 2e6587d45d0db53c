"""Outside programs some tests drive (prometheus, promtool, docker-compose).

CI installs them (`scripts/ensure-test-tools.sh`); on a developer's machine
without them those tests skip, but with CI=true they fail instead: CI must
never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(tool: str) -> str:
    """The tool's path, or skip (fail when CI=true) saying how to install it."""
    path = shutil.which(tool)
    if path:
        return path
    message = f"{tool} is not installed (as root: bash scripts/ensure-test-tools.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
