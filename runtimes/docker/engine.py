"""Async access to the Docker engine.

Control calls (create, start, kill, remove, inspect, list) go through the
`docker` package's low-level APIClient on a dedicated thread pool, so they
never block the event loop. The attach stream, the hot data path, is a raw
HTTP upgrade on an asyncio connection: bytes flow without a thread per
execution, and nothing is lost to a library's read buffer. Both reach the
engine at one `EngineAddress` (unix socket, or TCP with or without TLS) and
speak the API version negotiated with the engine on first contact
(`connection.negotiate`): never a pinned one, which one engine or another
would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import docker
import docker.errors
import requests

from codebeaker.runtimes.docker.connection import NEWEST_API, EngineAddress, negotiate
from codebeaker.runtimes.errors import CodeBeakerError, EngineUnavailable, SandboxFailure

log = logging.getLogger(__name__)
T = TypeVar("T")
PING_TIMEOUT = 10
REMOVE_ATTEMPTS = 4
REMOVE_RETRY_DELAY = 0.1
EVENTS_RETRY_DELAY = 0.5


@dataclass(frozen=True)
class ContainerState:
    running: bool
    exit_code: int
    oom_killed: bool
    pid: int = 0  # its first process, on the engine's host (0 once it stopped)


@dataclass(frozen=True)
class ContainerSummary:
    """One container as the engine lists it."""

    id: str
    labels: Mapping[str, str]
    state: str  # created, running, paused, restarting, removing, exited, dead
    created: float  # seconds since the epoch


@dataclass
class AttachStream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class Engine:
    def __init__(self, address: EngineAddress, threads: int) -> None:
        self._address = address
        self._host = address.text
        self._ssl = address.tls.ssl_context() if address.tls else None
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docker-api")
        self._threads = threads
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()  # API threads race to make the client on first use
        self.api_version: str | None = None  # known once the engine has been asked

    def _new_client(self, version: str) -> docker.APIClient:
        tls = self._address.tls.docker_tls() if self._address.tls else False
        client = docker.APIClient(
            base_url=self._address.base_url,
            version=version,
            timeout=60,
            tls=tls,
            max_pool_size=self._threads,
        )
        if tls:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the
            # session's CA: the engine must be checked against DOCKER_CERT_PATH's.
            client.trust_env = False
        return client

    def _api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                self._client = self._negotiated()
            return self._client

    def _negotiated(self) -> docker.APIClient:
        """A client speaking the version negotiated the way Docker's CLI does it:
        the engine's newest (the API-Version header of the unversioned /_ping),
        capped at the newest we know."""
        probe = self._new_client(NEWEST_API)  # makes no request
        try:
            answer = probe.get(f"{probe.base_url}/_ping", timeout=PING_TIMEOUT)
        finally:
            probe.close()
        offered = answer.headers.get("API-Version", "")
        if not answer.ok or not offered:
            raise EngineUnavailable(
                f"the Docker engine at {self._host} answered /_ping with HTTP "
                f"{answer.status_code} and API version {offered or 'none'}"
            )
        version = negotiate(offered)
        client = self._new_client(version)
        try:
            # One call in the chosen version, so a refusal is a clear error here.
            release = client.version().get("Version", "?")
        except docker.errors.APIError as error:
            client.close()
            raise EngineUnavailable(
                f"the Docker engine at {self._host} refused API {version}: {error.explanation}"
            ) from error
        log.info(
            "Docker engine %s at %s offers API %s; speaking %s",
            release,
            self._host,
            offered,
            version,
        )
        self.api_version = version
        return client

    def _forget_version(self) -> None:
        """After an engine upgrade under us: negotiate again on the next call.

        No lock and no close: a negotiating thread may hold the lock for seconds
        (this runs on the event loop), and other threads may still be using the
        old client; dropping the reference is enough."""
        self._client = None
        self.api_version = None

    async def _call(self, fn: Callable[[docker.APIClient], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(self._api()))
        except docker.errors.ImageNotFound as error:
            raise EngineUnavailable(
                f"runtime image missing ({error.explanation}); build it with "
                "`codebeaker images build` (`make images`)"
            ) from error
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as error:
            if error.status_code == 400 and "client version" in str(error.explanation):
                self._forget_version()
                raise EngineUnavailable(f"docker: {error.explanation}") from error
            raise SandboxFailure(f"docker: {error.explanation or error}") from error
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as error:
            raise EngineUnavailable(
                f"Docker engine unreachable at {self._host}: {error}"
            ) from error

    async def ping(self) -> None:
        await self._call(lambda api: api.ping())

    async def create(self, config: Mapping[str, object]) -> str:
        created = await self._call(
            lambda api: api.create_container_from_config(dict(config))  # type: ignore[no-untyped-call]
        )
        return str(created["Id"])

    async def start(self, container_id: str) -> None:
        await self._call(lambda api: api.start(container_id))

    async def kill(self, container_id: str) -> None:
        """Kill; a container that already stopped or vanished is fine."""
        with contextlib.suppress(docker.errors.NotFound, SandboxFailure):
            await self._call(lambda api: api.kill(container_id))

    async def remove(self, container_id: str) -> None:
        """Force-remove (kills if needed); a vanished container is fine.

        Docker 20.10 can refuse a force-remove that races the container's own
        exit ("cannot remove - Container ... is not running"); a retry succeeds.
        """
        for attempt in range(1, REMOVE_ATTEMPTS + 1):
            try:
                with contextlib.suppress(docker.errors.NotFound):
                    await self._call(functools.partial(_remove, container_id=container_id))
                return
            except SandboxFailure:
                if attempt == REMOVE_ATTEMPTS:
                    raise
                await asyncio.sleep(REMOVE_RETRY_DELAY * attempt)

    async def set_memory(self, container_id: str, memory_bytes: int) -> None:
        """Change a running container's memory limit (swap stays off)."""
        await self._call(
            lambda api: api.update_container(
                container_id, mem_limit=memory_bytes, memswap_limit=memory_bytes
            )
        )

    async def state(self, container_id: str) -> ContainerState:
        info = await self._call(lambda api: api.inspect_container(container_id))
        state = info.get("State", {})
        return ContainerState(
            running=bool(state.get("Running")),
            exit_code=int(state.get("ExitCode", -1)),
            oom_killed=bool(state.get("OOMKilled")),
            pid=int(state.get("Pid") or 0),
        )

    async def oci_runtimes(self) -> set[str]:
        info = await self._call(lambda api: api.info())
        return {str(name) for name in (info.get("Runtimes") or {})}

    async def wait_exit(self, container_id: str, within: float) -> ContainerState:
        """The state once the container has stopped (or after `within` seconds)."""
        seconds = max(1, math.ceil(within))
        with contextlib.suppress(CodeBeakerError, requests.exceptions.RequestException):
            await self._call(lambda api: api.wait(container_id, timeout=seconds))
        return await self.state(container_id)

    async def containers_with_label(self, label: str) -> list[str]:
        found = await self._call(
            lambda api: api.containers(all=True, quiet=True, filters={"label": label})
        )
        return [str(item["Id"]) for item in found]

    async def containers(self, label: str) -> list[ContainerSummary]:
        """Every container carrying `label`, with its labels and state."""
        found = await self._call(lambda api: api.containers(all=True, filters={"label": label}))
        return [
            ContainerSummary(
                id=str(item["Id"]),
                labels={str(k): str(v) for k, v in (item.get("Labels") or {}).items()},
                state=str(item.get("State", "")),
                created=float(item.get("Created") or 0),
            )
            for item in found
        ]

    async def pause(self, container_id: str) -> None:
        await self._call(lambda api: api.pause(container_id))

    async def unpause(self, container_id: str) -> None:
        await self._call(lambda api: api.unpause(container_id))

    async def update(self, container_id: str, resources: Mapping[str, int]) -> None:
        """POST /containers/{id}/update with these HostConfig resources."""
        await self._call(functools.partial(_update, container_id=container_id, resources=resources))

    async def events(self, label: str) -> AsyncIterator[Mapping[str, object]]:
        """The engine's container events for containers carrying `label`, as they
        come. A dedicated thread follows the engine's event stream and follows it
        again when the engine goes and comes back; each (re)connection is announced
        by an item {"Action": "reconnected"}."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Mapping[str, object]] = asyncio.Queue()
        stop = threading.Event()
        streams: list[object] = []

        def follow() -> None:
            while not stop.is_set():
                try:
                    stream = self._api().events(
                        filters={"type": "container", "label": label}, decode=True
                    )
                    streams[:] = [stream]
                    loop.call_soon_threadsafe(queue.put_nowait, {"Action": "reconnected"})
                    for item in stream:
                        if stop.is_set():
                            return
                        loop.call_soon_threadsafe(queue.put_nowait, item)
                except Exception as error:  # the engine went away: follow it again soon
                    log.debug("engine event stream ended: %s", error)
                    self._forget_version()
                stop.wait(EVENTS_RETRY_DELAY)

        thread = threading.Thread(target=follow, name="docker-events", daemon=True)
        thread.start()
        try:
            while True:
                yield await queue.get()
        finally:
            stop.set()
            for stream in streams:
                with contextlib.suppress(Exception):
                    stream.close()  # type: ignore[attr-defined]

    async def image_id(self, image: str) -> str:
        info = await self._call(lambda api: api.inspect_image(image))  # type: ignore[no-untyped-call]
        return str(info["Id"])

    async def image_labels(self, image: str) -> Mapping[str, str]:
        info = await self._call(lambda api: api.inspect_image(image))  # type: ignore[no-untyped-call]
        labels = (info.get("Config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    async def attach(self, container_id: str) -> AttachStream:
        """Attach stdin, stdout and stderr as one raw, multiplexed stream."""
        version = self.api_version or await self._call(lambda api: api.api_version)
        try:
            reader, writer = await self._address.connect(self._ssl)
        except OSError as error:  # ssl.SSLError included: a refused certificate
            raise EngineUnavailable(
                f"Docker engine unreachable at {self._host}: {error}"
            ) from error
        request = (
            f"POST /v{version}/containers/{container_id}/attach"
            "?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        writer.write(request.encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            writer.close()
            raise SandboxFailure(f"attach to {container_id[:12]} failed: {error}") from error
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status and b" 200 " not in status:
            writer.close()
            raise SandboxFailure(f"attach to {container_id[:12]} refused: {status.decode()}")
        return AttachStream(reader, writer)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()


def _update(api: docker.APIClient, container_id: str, resources: Mapping[str, int]) -> None:
    """The API's own update body (docker-py's update_container lacks NanoCpus)."""
    url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/update"
    response = api.post(url, json=dict(resources))
    if not response.ok:
        raise docker.errors.APIError(f"update refused: {response.text}", response)


def _remove(api: docker.APIClient, container_id: str) -> None:
    api.remove_container(container_id, force=True, v=True)
