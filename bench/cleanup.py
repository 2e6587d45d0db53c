"""Removes every container this bench run created, and only those.

Ours carry `io.codebeaker.bench=<run id>` (raw engine, llm-sandbox) or
`io.codebeaker.owner=<instance>` (the servers we started). epicbox has no
label option: its containers are named `epicbox-<uuid>`, so those from our
images created since this run began are ours too. Containers of other
instances (e.g. a test run beside us) are never touched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import docker
import docker.errors

from bench.engine import api_client
from bench.programs import BENCH_LABEL, PROGRAMS
from bench.server import OWNER_LABEL

EPICBOX_PREFIX = "/epicbox-"


def _ours(api: docker.APIClient, run_id: str, instances: list[str], since: float) -> set[str]:
    found: set[str] = set()
    labels = [f"{BENCH_LABEL}={run_id}"] + [f"{OWNER_LABEL}={name}" for name in instances]
    for label in labels:
        for item in api.containers(all=True, filters={"label": label}):
            found.add(str(item["Id"]))
    images = {program.image for program in PROGRAMS.values()}
    for item in api.containers(all=True, filters={"name": "epicbox-"}):
        names = item.get("Names") or []
        image = str(item.get("Image", "")).removesuffix(":latest")
        created = float(item.get("Created", 0))
        named = any(str(n).startswith(EPICBOX_PREFIX) for n in names)
        if named and image in images and created >= since - 1:
            found.add(str(item["Id"]))
    return found


def sweep(run_id: str, instances: list[str], since: float) -> int:
    """Force-removes what is left; returns how many were removed."""
    api = api_client()
    try:
        removed = 0
        for container in _ours(api, run_id, instances, since):
            try:
                api.remove_container(container, force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
        return removed
    finally:
        api.close()


def others_running(instances: list[str]) -> int:
    """Containers running that are not ours: a sign something else loads the machine."""
    api = api_client()
    try:
        count = 0
        for item in api.containers():
            labels = item.get("Labels") or {}
            names = item.get("Names") or []
            if labels.get(OWNER_LABEL) in instances or BENCH_LABEL in labels:
                continue
            if any(str(n).startswith(EPICBOX_PREFIX) for n in names):
                continue
            count += 1
        return count
    finally:
        api.close()


class NoiseMonitor:
    """Samples, every few seconds, how many containers not ours are running.

    Two cores are easily disturbed: a test suite starting beside the bench
    halves the churn rate. The maximum seen goes into the results.
    """

    def __init__(
        self, instances: list[str], phase: Callable[[], str], interval: float = 2.0
    ) -> None:
        self._instances = instances  # the live list: servers are added as they start
        self._phase = phase
        self._interval = interval
        self.by_phase: dict[str, int] = {}  # phase -> most containers not ours seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="noise-monitor")
        self.max_seen = 0
        self.samples_with_others = 0
        self.samples = 0

    def __enter__(self) -> NoiseMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                seen = others_running(list(self._instances))
            except Exception:  # the monitor must never fail the run
                continue
            self.samples += 1
            self.max_seen = max(self.max_seen, seen)
            self.samples_with_others += seen > 0
            if seen:
                phase = self._phase()
                self.by_phase[phase] = max(self.by_phase.get(phase, 0), seen)
