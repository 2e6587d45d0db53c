"""Test-wide policy: tests marked `docker` need a Docker engine and the runtime images.

Without an engine they are skipped on a developer's machine, but with CI=true
they fail instead: CI must never pass by skipping the containers.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.spans import installed_exporter


def docker_problem() -> str | None:
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker CLI unusable: {error}"
    if done.returncode != 0:
        return f"no Docker engine answers: {done.stderr.decode(errors='replace').strip()}"
    return None


def only_on_their_servers(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the items marked `servers(kind, ...)` whose `server` is another kind."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("servers")
        callspec = getattr(item, "callspec", None)
        server = callspec.params.get("server") if callspec else None
        (dropped if marker and server not in marker.args else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only_on_their_servers(config, items)
    # A test that stops and restarts the engine runs after every other test.
    items.sort(key=lambda item: item.get_closest_marker("engine_restart") is not None)
    needs_docker = [item for item in items if item.get_closest_marker("docker")]
    if not needs_docker:
        return
    problem = docker_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(f"CI=true but Docker tests cannot run: {problem}")
    skip = pytest.mark.skip(reason=problem)
    for item in needs_docker:
        item.add_marker(skip)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test (an SDK with an in-memory exporter, installed once)."""
    exporter = installed_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()
