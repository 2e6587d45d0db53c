"""The raw engine's side of `python -m bench.sessions`: the baselines and the disturbances.

Every container the bench makes itself carries `io.codebeaker.bench=<run id>`, so the
final sweep finds it whatever happens. Baselines, each on the session's own image:
create+start of a container (what a cold CreateSession must at least do), `docker exec`
of `true` into a running one (through the API, as the CLI does it: create, start
attached, inspect for the exit code; and through the CLI itself), an idle container
(the least a container of the image costs in memory), and the engine's own event
stream as the bench receives it (the floor of the server's LOST latency).
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from bench.engine import api_client
from bench.programs import BENCH_LABEL
from bench.server import OWNER_LABEL
from codebeaker.runtimes.docker.labels import SESSION_LABEL

IDLE_COMMAND = ["sleep", "3600"]


def engine_time(text: str) -> float:
    """An engine timestamp (RFC 3339, nanoseconds, 'Z') as seconds since the epoch."""
    head, _, fraction = text.rstrip("Z").partition(".")
    whole = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    return whole.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


class Engine:
    """One API client, the image, and every container this bench made through it."""

    def __init__(self, image: str, run_id: str) -> None:
        self.api = api_client()
        self.image = image
        self.run_id = run_id
        self._host_config = self.api.create_host_config(network_mode="none")
        self.made: set[str] = set()

    def close(self) -> None:
        self.api.close()

    def _create(self, labels: dict[str, str] | None = None) -> str:
        created = self.api.create_container(
            self.image,
            command=IDLE_COMMAND,
            network_disabled=True,
            labels={BENCH_LABEL: self.run_id, **(labels or {})},
            host_config=self._host_config,
        )
        container = str(created["Id"])
        self.made.add(container)
        return container

    def remove(self, container: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container, force=True)
        self.made.discard(container)

    def create_start(self) -> float:
        """create + start of one container, in ms; it is removed off the clock."""
        began = time.perf_counter()
        container = self._create()
        try:
            self.api.start(container)
            return (time.perf_counter() - began) * 1e3
        finally:
            self.remove(container)

    def idle_container(self) -> str:
        """A running container of the image doing nothing (`sleep`)."""
        container = self._create()
        self.api.start(container)
        return container

    def pid(self, container: str) -> int:
        inspected: dict[str, Any] = self.api.inspect_container(container)
        return int(inspected["State"]["Pid"])

    def created(self, container: str) -> float:
        inspected: dict[str, Any] = self.api.inspect_container(container)
        return engine_time(str(inspected["Created"]))

    def exec_api(self, container: str) -> None:
        """`docker exec CONTAINER true` through the API, as the CLI makes it."""
        exec_id = self.api.exec_create(container, ["true"])["Id"]
        self.api.exec_start(exec_id)
        code = self.api.exec_inspect(exec_id)["ExitCode"]
        if code != 0:
            raise RuntimeError(f"docker exec true: exit {code}")

    def session_container(self, instance: str, session_id: str) -> str:
        """The container of one session of `instance` ('' when there is none)."""
        found = self.api.containers(
            all=True,
            filters={"label": [f"{OWNER_LABEL}={instance}", f"{SESSION_LABEL}={session_id}"]},
        )
        return str(found[0]["Id"]) if found else ""

    def containers_of(self, instance: str) -> list[dict[str, Any]]:
        return list(self.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={instance}"}))

    def session_containers(self, instance: str) -> list[dict[str, Any]]:
        """`instance`'s session containers, its spares included (not its hosts)."""
        labels = [f"{OWNER_LABEL}={instance}", SESSION_LABEL]
        return list(self.api.containers(all=True, filters={"label": labels}))

    def orphan(self, instance: str) -> str:
        """A running container that looks like one of `instance`'s sessions, which no
        session owns (a server that died mid-create leaves one): the reconcile's work."""
        session_id = "s" + secrets.token_hex(8)
        container = self._create({OWNER_LABEL: instance, SESSION_LABEL: session_id})
        self.api.start(container)
        return container


def exec_cli(container: str) -> None:
    subprocess.run(["docker", "exec", container, "true"], check=True, capture_output=True)


def host_true() -> None:
    subprocess.run(["true"], check=True)


@dataclass(frozen=True)
class Seen:
    received: float  # perf_counter when the bench had it
    action: str
    container: str
    engine_time: float  # the engine's own timestamp, seconds since the epoch


@dataclass
class EngineEvents:
    """The engine's container events of one owner, as this bench receives them."""

    instance: str
    seen: list[Seen] = field(default_factory=list)
    _api: Any = None
    _stream: Any = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> EngineEvents:
        self._api = api_client()
        self._stream = self._api.events(
            decode=True,
            filters={"type": "container", "label": f"{OWNER_LABEL}={self.instance}"},
        )
        self._thread = threading.Thread(target=self._follow, daemon=True, name="engine-events")
        self._thread.start()
        return self

    def _follow(self) -> None:
        with contextlib.suppress(Exception):  # closed under it at the end
            for item in self._stream:
                actor = item.get("Actor") or {}
                seen = Seen(
                    time.perf_counter(),
                    str(item.get("Action", "")),
                    str(actor.get("ID", "")),
                    int(item.get("timeNano", 0)) / 1e9,
                )
                with self._lock:
                    self.seen.append(seen)

    def first(self, container: str, action: str, timeout: float) -> Seen | None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for seen in self.seen:
                    if seen.container == container and seen.action == action:
                        return seen
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._api is not None:
            self._api.close()
