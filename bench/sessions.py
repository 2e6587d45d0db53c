"""`python -m bench.sessions`: SessionService against the raw engine, in one run.

This machine is shared and noisy, so every figure has a baseline measured in the same
run, interleaved with it where it is a latency, and the report gives ratios:

1. CreateSession on a server with a started spare (`--session-spares 1`; the calls
   paced, so the spare is refilled in between, and each checked afterwards: a session
   whose container was created after the call began found no spare and is left out),
   on a server without (`--session-spares 0`, the cold path), and the raw engine's
   create+start of the same image; the three alternate, whose turn is first rotates.
2. Exec of `true` in a live session (gRPC stub, and the SDK), `docker exec` of `true`
   into a running container of the same image (the Docker API, as the CLI makes it; and
   the CLI), and `true` run on the host (the floor), alternating likewise.
3. N (100) idle sessions at once, usage sampled every 5 s: the server's CPU from
   /proc/<pid>/stat over a window against the same server with none over a window as
   long; each session container's memory from its cgroup against an idle plain container
   of the image; the server's RSS growth per session; then with a WatchSessions stream
   open, some session containers removed (`docker rm -f`, through the API) or killed
   behind the server's back: the time to LOST against the engine's own `die` event
   reaching the bench, and the time until the registry (SQLite under --state-dir),
   GetSession and the engine agree; and one container of ours no session owns, which
   the reconcile (every 30 s) removes.

Whatever happens (a failure, Ctrl-C, SIGTERM) every session is deleted, the servers
(started with `--end-sessions-on-exit 1`) stopped, and what is left of the run's
containers swept.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import re
import sqlite3
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.cleanup import sweep
from bench.guarded import conclude, head, run_guarded
from bench.plan import RESULTS_DIR
from bench.programs import PROGRAMS
from bench.server import ServerProcess
from bench.sessions_engine import Engine, EngineEvents, exec_cli, host_true
from bench.sessions_probe import (
    container_memory,
    metric_total,
    shim_pss,
    tree_cpu_seconds,
    tree_rss,
)
from bench.sessions_report import figures, ratio, render
from bench.stats import Collector, interleaved
from codebeaker.client import Client
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import session_pb2 as spb
from codebeaker.v1 import session_pb2_grpc as spb_grpc

LANGUAGE = "python"
IMAGE = PROGRAMS[LANGUAGE].image
CALL_TIMEOUT = 120.0
CLEANUP_TIMEOUT = 30.0
RECONCILE_INTERVAL = 30.0  # the server's default, left as it is: it is what is measured
METRICS_PORT = re.compile(r'"metrics_port": (\d+)')
SAMPLES_COUNT = "codebeaker_session_memory_bytes_count"
SAMPLES_SUM = "codebeaker_session_memory_bytes_sum"
LIVE_STATES = (spb.SESSION_STATE_READY, spb.SESSION_STATE_BUSY, spb.SESSION_STATE_PAUSED)


def say(text: str) -> None:
    print(f"bench.sessions: {text}", flush=True)


class SessionServer:
    """One server of the run, its stub, and every session the bench made on it."""

    def __init__(self, instance: str, flags: list[str], log: Path, state_dir: Path) -> None:
        self.process = ServerProcess(instance, flags, log)
        self.instance = instance
        self.state_dir = state_dir
        self.names: set[str] = set()
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self.stub: spb_grpc.SessionServiceStub
        self.metrics_port = 0

    def start(self) -> None:
        self.process.start()
        self._channel = grpc.insecure_channel(self.process.address)
        grpc.channel_ready_future(self._channel).result(timeout=30)
        self.stub = spb_grpc.SessionServiceStub(self._channel)
        found = METRICS_PORT.search(self.process.log_path.read_text(errors="replace"))
        self.metrics_port = int(found.group(1)) if found else 0

    def create(
        self,
        labels: dict[str, str] | None = None,
        language: str = LANGUAGE,
        packages: Sequence[str] = (),
    ) -> str:
        asked = [pb.PackageRequest(name=name) for name in packages]
        session = spb.Session(language=language, labels=labels or {}, packages=asked)
        request = spb.CreateSessionRequest(session=session)
        name = str(self.stub.CreateSession(request, timeout=CALL_TIMEOUT).name)
        with self._lock:
            self.names.add(name)
        return name

    def delete(self, name: str, timeout: float = CALL_TIMEOUT) -> None:
        try:
            self.stub.DeleteSession(spb.DeleteSessionRequest(name=name), timeout=timeout)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
        with self._lock:
            self.names.discard(name)

    def delete_all(self, parallel: int = 8, timeout: float = CALL_TIMEOUT) -> int:
        """Deletes every session the bench made here; returns how many failed."""
        with self._lock:
            names = list(self.names)
        failed = 0
        with ThreadPoolExecutor(parallel) as pool:
            for outcome in pool.map(_attempt(lambda n: self.delete(n, timeout)), names):
                failed += not outcome
        return failed

    def exec_true(self, name: str) -> None:
        start = spb.ExecStart(session=name, command=spb.Command(argv=["true"]), close_stdin=True)
        result = None
        for response in self.stub.Exec(iter([spb.ExecRequest(start=start)]), timeout=CALL_TIMEOUT):
            if response.HasField("result"):
                result = response.result
        if result is None or result.status != pb.EXECUTION_STATUS_OK or result.exit_code != 0:
            raise RuntimeError(f"session Exec of true: {result}")

    def state(self, name: str) -> int:
        request = spb.GetSessionRequest(name=name)
        return int(self.stub.GetSession(request, timeout=CALL_TIMEOUT).state)

    def registry_state(self, session_id: str) -> str:
        """The session's state in the server's SQLite registry ('' when no row)."""
        found = list(self.state_dir.rglob("sessions.sqlite3"))
        if not found:
            return ""
        db = sqlite3.connect(found[0], timeout=5)
        try:
            row = db.execute("SELECT state FROM sessions WHERE id = ?", (session_id,)).fetchone()
            return str(row[0]) if row else ""
        finally:
            db.close()

    def metrics(self) -> str:
        if not self.metrics_port:
            return ""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return str(answer.read().decode())

    def close(self) -> None:
        """Deletes the bench's sessions (when the server still answers) and stops it; its
        stop sweeps every container of its instance, sessions included."""
        try:
            if self._channel is not None and self.names:
                self.delete_all(timeout=CLEANUP_TIMEOUT)
        finally:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
            self.process.stop()


def _attempt(call: Callable[[str], None]) -> Callable[[str], bool]:
    def attempt(name: str) -> bool:
        try:
            call(name)
            return True
        except Exception:
            return False

    return attempt


@dataclass
class Run:
    args: argparse.Namespace
    run_id: str
    started: float
    engine: Engine
    instances: list[str] = field(default_factory=list)
    servers: list[SessionServer] = field(default_factory=list)
    phase: str = "start"
    notes: list[str] = field(default_factory=list)
    bench: str = "sessions"  # in the servers' instance names, logs and state folders
    _states: list[tempfile.TemporaryDirectory[str]] = field(default_factory=list)

    def server(self, kind: str, spares: int) -> SessionServer:
        flags = [
            "--languages", LANGUAGE,
            "--hosts-min", "0",  # sessions alone: no reusable hosts beside them
            "--runtime", "runc",
            "--session-spares", str(spares),
            "--session-usage-interval", str(self.args.usage_interval),
            "--max-sessions", str(self.args.sessions + 20),
            "--end-sessions-on-exit", "1",
            "--metrics-address", "127.0.0.1:0",
        ]  # fmt: skip
        return self.start_server(kind, flags)

    def start_server(self, kind: str, flags: list[str]) -> SessionServer:
        """A server of this run with `flags` and a state folder of its own, started."""
        state = tempfile.TemporaryDirectory(prefix=f"cb-bench-{self.bench}-")
        self._states.append(state)
        instance = f"bench-{self.run_id}-{self.bench}-{kind}"
        server = SessionServer(
            instance,
            ["--state-dir", state.name, *flags],
            RESULTS_DIR / f"{self.bench}-{kind}.log",
            Path(state.name),
        )
        self.instances.append(instance)
        self.servers.append(server)
        server.start()
        return server

    def cleanup(self) -> int:
        """Every session deleted, every server stopped, the run's containers swept."""
        for server in self.servers:
            try:
                server.close()
            except Exception as error:
                say(f"stopping {server.instance}: {error}")
        for container in list(self.engine.made):
            with contextlib.suppress(Exception):
                self.engine.remove(container)
        try:
            removed = sweep(self.run_id, self.instances, self.started)
        except Exception as error:
            say(f"cleanup sweep failed: {error}")
            removed = -1
        self.engine.close()
        for state in self._states:
            with contextlib.suppress(OSError):
                state.cleanup()
        return removed


# ---------- 1. CreateSession ----------


def _timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1e3


def wait_for_spare(server: SessionServer, engine: Engine, live: int, timeout: float) -> bool:
    """Until the server's session containers are its live sessions and one more (the
    spare), all running (the agent's hello follows in milliseconds; each create is checked
    after: `create_timed`). A server's reusable hosts are not session containers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = engine.session_containers(server.instance)
        if len(found) == live + 1 and all(c.get("State") == "running" for c in found):
            return True
        time.sleep(0.02)
    return False


def create_timed(
    server: SessionServer, engine: Engine, packages: Sequence[str] = ()
) -> tuple[float, bool]:
    """One CreateSession (Python), timed, then deleted off the clock: its ms, and whether
    its container was made before the call began (it came from a spare)."""
    began = time.time()
    ms = 0.0
    name = ""

    def call() -> None:
        nonlocal name
        name = server.create(packages=packages)

    try:
        ms = _timed(call)
        spare = made_before(server, engine, name, began)
    finally:
        if name:
            server.delete(name)
    return ms, spare


def made_before(server: SessionServer, engine: Engine, name: str, began: float) -> bool:
    """Whether session `name`'s container was made before `began` (time.time()): a spare."""
    container = engine.session_container(server.instance, name.split("/")[1])
    return bool(container) and engine.created(container) < began


def measure_create(run: Run, spare: SessionServer, cold: SessionServer) -> dict[str, Any]:
    args, engine = run.args, run.engine
    collected = {kind: Collector() for kind in ("spare", "cold", "engine")}
    served_cold = 0

    # Spares are kept for the languages sessions were created for: one first.
    spare.delete(spare.create())
    for n in range(args.warmup + args.runs):
        kinds = ["spare", "cold", "engine"]
        kinds = kinds[n % 3 :] + kinds[: n % 3]
        for kind in kinds:
            for server in run.servers:
                server.process.check_alive()
            time.sleep(args.gap)
            recorded = n >= args.warmup
            try:
                # Every kind on a quiet engine: the last spare taken has been replaced.
                if not wait_for_spare(spare, engine, 0, 30.0):
                    raise RuntimeError("no spare came up within 30 s")
                if kind == "spare":
                    ms, from_spare = create_timed(spare, engine)
                    if not from_spare:
                        served_cold += recorded
                        continue
                elif kind == "cold":
                    ms, _ = create_timed(cold, engine)
                else:
                    ms = engine.create_start()
            except Exception as error:
                if recorded:
                    collected[kind].fail(error)
                continue
            if recorded:
                collected[kind].samples.append(ms)
    out: dict[str, Any] = {kind: figures(c) for kind, c in collected.items()}
    out["spare_served_cold"] = served_cold
    engine_p50 = out["engine"].get("p50_ms")
    out["ratios_p50"] = {
        "spare_to_engine": ratio(out["spare"].get("p50_ms"), engine_p50),
        "cold_to_engine": ratio(out["cold"].get("p50_ms"), engine_p50),
    }
    return out


# ---------- 2. Exec ----------


def measure_exec(run: Run, server: SessionServer) -> dict[str, Any]:
    args, engine = run.args, run.engine
    name = server.create()
    container = engine.idle_container()
    client = Client(server.process.address, timeout=CALL_TIMEOUT)
    try:
        session = client.get_session(name)

        def sdk() -> None:
            result = session.exec(["true"])
            if result.exit_code != 0:
                raise RuntimeError(f"SDK exec of true: {result.status}")

        kinds: dict[str, Callable[[], None]] = {
            "session": lambda: server.exec_true(name),
            "sdk": sdk,
            "docker_exec_api": lambda: engine.exec_api(container),
            "docker_exec_cli": lambda: exec_cli(container),
            "host_true": host_true,
        }
        collected = interleaved(
            kinds,
            warmup=args.exec_warmup,
            runs=args.exec_runs,
            gap=args.exec_gap,
            each_round=server.process.check_alive,
        )
    finally:
        client.close()
        engine.remove(container)
        server.delete(name)
    out: dict[str, Any] = {kind: figures(c) for kind, c in collected.items()}
    api = out["docker_exec_api"].get("p50_ms")
    out["ratios_p50"] = {
        "session_to_docker_exec_api": ratio(out["session"].get("p50_ms"), api),
        "session_to_docker_exec_cli": ratio(
            out["session"].get("p50_ms"), out["docker_exec_cli"].get("p50_ms")
        ),
        "session_to_host_true": ratio(out["session"].get("p50_ms"), out["host_true"].get("p50_ms")),
        "sdk_to_docker_exec_api": ratio(out["sdk"].get("p50_ms"), api),
    }
    return out


# ---------- 3. many idle sessions ----------


@dataclass(frozen=True)
class Window:
    seconds: float
    server_cpu_pct: float
    containers_cpu_pct: float | None
    usage_samples: float
    sampled_memory_mean: float | None


def cpu_window(
    server: SessionServer, seconds: float, containers: list[int] | None = None
) -> Window:
    """The server's CPU (and its sessions' containers', from their cgroups) over
    `seconds`, with the usage samples the server counted meanwhile (its metrics)."""
    before_metrics = server.metrics()
    pid = server.process.pid

    def containers_cpu() -> float | None:
        if not containers:
            return None
        readings = [container_memory(p) for p in containers]
        return sum((m.cpu_seconds or 0.0) for m in readings if m is not None)

    began, cpu0, inner0 = time.monotonic(), tree_cpu_seconds(pid), containers_cpu()
    time.sleep(seconds)
    ended, cpu1, inner1 = time.monotonic(), tree_cpu_seconds(pid), containers_cpu()
    after_metrics = server.metrics()
    span = ended - began
    count = metric_total(after_metrics, SAMPLES_COUNT) - metric_total(before_metrics, SAMPLES_COUNT)
    total = metric_total(after_metrics, SAMPLES_SUM) - metric_total(before_metrics, SAMPLES_SUM)
    return Window(
        seconds=round(span, 2),
        server_cpu_pct=round((cpu1 - cpu0) / span * 100, 3),
        containers_cpu_pct=(
            None if inner0 is None or inner1 is None else round((inner1 - inner0) / span * 100, 3)
        ),
        usage_samples=count,
        sampled_memory_mean=total / count if count else None,
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def create_many(
    run: Run, server: SessionServer, count: int, labels: dict[str, str]
) -> tuple[list[str], Collector, float]:
    errors = Collector()
    names: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        try:
            name = server.create(labels)
        except Exception as error:
            with lock:
                errors.fail(error)
            return
        with lock:
            names.append(name)

    began = time.perf_counter()
    pool = ThreadPoolExecutor(run.args.create_parallel)
    try:
        list(pool.map(one, range(count)))
    finally:  # interrupted: the creates not begun yet are not begun at all
        pool.shutdown(wait=True, cancel_futures=True)
    return names, errors, time.perf_counter() - began


def measure_idle(run: Run, server: SessionServer) -> tuple[dict[str, Any], list[str]]:
    args, engine = run.args, run.engine
    if not wait_for_spare(server, engine, 0, 60.0):
        run.notes.append("the spares server was not idle (its spare alone) before the window")
    time.sleep(args.settle)
    say(f"idle: the server with no sessions, {args.window:g} s")
    rss_before = tree_rss(server.process.pid)
    empty = cpu_window(server, args.window)
    plain = [engine.idle_container() for _ in range(args.plain_containers)]
    labels = {"bench": run.run_id}
    say(f"idle: creating {args.sessions} sessions, {args.create_parallel} at a time")
    names, errors, seconds = create_many(run, server, args.sessions, labels)
    ids = [n.split("/")[1] for n in names]
    say(f"idle: {len(names)} created in {seconds:.1f} s; settling {args.settle:g} s")
    wait_for_spare(server, engine, len(names), 60.0)
    time.sleep(args.settle)
    containers = [engine.session_container(server.instance, i) for i in ids]
    pids = [engine.pid(c) for c in containers if c]
    say(f"idle: {len(names)} idle sessions, {args.window:g} s")
    loaded = cpu_window(server, args.window, pids)
    rss_after = tree_rss(server.process.pid)
    readings = [m for m in (container_memory(p) for p in pids) if m is not None]
    plain_readings = [m for m in (container_memory(engine.pid(c)) for c in plain) if m]
    shims = shim_pss(set(containers))
    for container in plain:
        engine.remove(container)
    usage = [float(m.usage_bytes) for m in readings]
    memory: dict[str, Any] = {
        "session_containers_read": len(readings),
        "session_usage_bytes_mean": _mean(usage),
        "session_usage_bytes_min": min(usage, default=None),
        "session_usage_bytes_max": max(usage, default=None),
        "session_anon_bytes_mean": _mean([float(m.anon_bytes) for m in readings]),
        "session_file_bytes_mean": _mean([float(m.file_bytes) for m in readings]),
        "session_shmem_bytes_mean": _mean([float(m.shmem_bytes) for m in readings]),
        "plain_containers": len(plain_readings),
        "plain_usage_bytes_mean": _mean([float(m.usage_bytes) for m in plain_readings]),
        "server_sampled_bytes_mean": loaded.sampled_memory_mean,
        "server_rss_before_bytes": rss_before,
        "server_rss_after_bytes": rss_after,
        "server_rss_growth_per_session_bytes": (
            (rss_after - rss_before) / len(names) if names else None
        ),
        "shim_pss_bytes_mean": _mean([float(v) for v in shims.values()]),
        "shims_found": len(shims),
    }
    memory["session_to_plain_usage"] = ratio(
        memory["session_usage_bytes_mean"], memory["plain_usage_bytes_mean"]
    )
    idle: dict[str, Any] = {
        "sessions_wanted": args.sessions,
        "sessions_live": len(names),
        "create_seconds": round(seconds, 2),
        "create_errors": errors.errors,
        "create_error_messages": errors.messages,
        "usage_interval_s": args.usage_interval,
        "window_s": loaded.seconds,
        "window_no_sessions_s": empty.seconds,
        "server_cpu_pct": loaded.server_cpu_pct,
        "server_cpu_pct_no_sessions": empty.server_cpu_pct,
        "server_cpu_ratio_to_no_sessions": ratio(loaded.server_cpu_pct, empty.server_cpu_pct),
        "containers_cpu_pct": loaded.containers_cpu_pct,
        "usage_samples": loaded.usage_samples,
        "usage_samples_expected": round(len(names) * loaded.seconds / args.usage_interval),
        "memory": memory,
    }
    return idle, names


# ---------- 3b. events and state sync ----------


class Watch:
    """One WatchSessions stream over the bench's sessions (life-cycle events only)."""

    def __init__(self, server: SessionServer, labels: dict[str, str]) -> None:
        request = spb.WatchSessionsRequest(labels=labels, no_usage=True)
        self._call = server.stub.WatchSessions(request)
        self.events: queue.Queue[tuple[float, spb.SessionEvent]] = queue.Queue()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="watch")
        self._thread.start()

    def _follow(self) -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end
            for item in self._call:
                self.events.put((time.perf_counter(), item))

    def wait_for(
        self, name: str, kind: spb.SessionEventType.ValueType, timeout: float
    ) -> tuple[float, spb.SessionEvent]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {spb.SessionEventType.Name(kind)} for {name}")
            received, item = self.events.get(timeout=left)
            if item.session.name == name and item.type == kind:
                return received, item

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(timeout=5)


def _agreed(server: SessionServer, engine: Engine, name: str) -> bool:
    """Registry, GetSession and engine agree that the session is gone: FAILED in both
    views and no container of it left."""
    session_id = name.split("/")[1]
    if server.state(name) != spb.SESSION_STATE_FAILED:
        return False
    if server.registry_state(session_id) != "failed":
        return False
    return not engine.session_container(server.instance, session_id)


def _until(check: Callable[[], bool], timeout: float, every: float = 0.01) -> float | None:
    """perf_counter when `check` first held (None: not within `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(every)
    return None


def measure_events(run: Run, server: SessionServer, names: list[str]) -> dict[str, Any]:
    args, engine = run.args, run.engine
    victims = list(names)
    kinds = ("lost", "engine_die", "lost_after_die", "engine_destroy", "remove_call")
    collected = {kind: Collector() for kind in kinds}
    sync: dict[str, Any] = {"removed_ms": [], "killed_ms": [], "orphan_ms": [], "errors": []}
    sync["reconcile_interval_s"] = RECONCILE_INTERVAL
    trials: list[dict[str, Any]] = []
    watch = Watch(server, {"bench": run.run_id})
    try:
        with EngineEvents(server.instance) as seen:
            # The stream is open once an event comes through it: a pause and a resume.
            probe = victims[-1]
            server.stub.PauseSession(spb.PauseSessionRequest(name=probe), timeout=CALL_TIMEOUT)
            watch.wait_for(probe, spb.SESSION_EVENT_TYPE_STATE_CHANGED, 30.0)
            server.stub.ResumeSession(spb.ResumeSessionRequest(name=probe), timeout=CALL_TIMEOUT)
            watch.wait_for(probe, spb.SESSION_EVENT_TYPE_STATE_CHANGED, 30.0)
            plan = ["removed"] * args.remove_trials + ["killed"] * args.kill_trials
            for how in plan:
                if not victims:
                    break
                name = victims.pop(0)
                server.process.check_alive()
                time.sleep(args.gap)
                trial = _disturb(server, engine, watch, seen, name, how)
                trials.append(trial)
                if "sync_ms" in trial:
                    sync[f"{how}_ms"].append(trial["sync_ms"])
                else:
                    sync["errors"].append(f"{how} {name}: {trial.get('error')}")
                if how == "removed":
                    _collect(collected, trial)
            for _ in range(args.orphan_trials):
                say("sync: a container no session owns, until the reconcile removes it")
                orphan_ms = _orphan(run, server)
                if orphan_ms is None:
                    sync["errors"].append("an orphan container was never removed")
                else:
                    sync["orphan_ms"].append(orphan_ms)
    finally:
        watch.close()
    out: dict[str, Any] = {kind: figures(c) for kind, c in collected.items()}
    out["trials"] = trials
    out["lost_to_engine_die_p50"] = ratio(
        out["lost"].get("p50_ms"), out["engine_die"].get("p50_ms")
    )
    every = [*sync["removed_ms"], *sync["killed_ms"], *sync["orphan_ms"]]
    sync["longest_ms"] = max(every, default=None)
    return {"events": out, "sync": sync}


def _collect(collected: dict[str, Collector], trial: dict[str, Any]) -> None:
    for kind in collected:
        value = trial.get(f"{kind}_ms")
        if value is None:
            collected[kind].fail(f"{trial['how']}: no {kind}: {trial.get('error', '')}")
        else:
            collected[kind].samples.append(value)


def _disturb(
    server: SessionServer,
    engine: Engine,
    watch: Watch,
    seen: EngineEvents,
    name: str,
    how: str,
) -> dict[str, Any]:
    """One session's container removed (`docker rm -f`) or killed behind the server's
    back: when the bench saw the engine's events, the LOST event, and agreement."""
    trial: dict[str, Any] = {"how": how, "session": name}
    container = engine.session_container(server.instance, name.split("/")[1])
    if not container:
        return trial | {"error": "its container was not found"}
    began = time.perf_counter()
    if how == "removed":
        engine.api.remove_container(container, force=True)
    else:
        engine.api.kill(container)
    trial["remove_call_ms"] = (time.perf_counter() - began) * 1e3
    try:
        received, event = watch.wait_for(name, spb.SESSION_EVENT_TYPE_LOST, 10.0)
        trial["lost_ms"] = (received - began) * 1e3
        trial["reason"] = event.reason
    except (TimeoutError, queue.Empty) as error:
        trial["error"] = f"no LOST: {error}"
    for action in ("die", "destroy"):
        found = seen.first(container, action, 5.0)
        if found is not None:
            trial[f"engine_{action}_ms"] = (found.received - began) * 1e3
            if action == "die" and "lost_ms" in trial:
                trial["lost_after_die_ms"] = trial["lost_ms"] - trial["engine_die_ms"]
                # Both clocks are this host's: the server's event time against the engine's.
                published = event.time.ToNanoseconds() / 1e9
                trial["server_publish_after_engine_die_ms"] = (published - found.engine_time) * 1e3
    agreed = _until(lambda: _agreed(server, engine, name), 45.0)
    if agreed is None:
        trial["error"] = trial.get("error", "") + " never agreed within 45 s"
    else:
        trial["sync_ms"] = (agreed - began) * 1e3
    return trial


def _orphan(run: Run, server: SessionServer) -> float | None:
    """ms from a started container of ours that no session owns until it is gone."""
    container = run.engine.orphan(server.instance)
    began = time.perf_counter()

    def gone() -> bool:
        return not any(c["Id"] == container for c in run.engine.containers_of(server.instance))

    ended = _until(gone, RECONCILE_INTERVAL + 15.0, every=0.1)
    run.engine.made.discard(container)
    return None if ended is None else (ended - began) * 1e3


# ---------- the run ----------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions")
    parser.add_argument("--runs", type=int, default=30, help="CreateSession calls of each kind")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds before each create")
    parser.add_argument("--exec-runs", type=int, default=50)
    parser.add_argument("--exec-warmup", type=int, default=3)
    parser.add_argument("--exec-gap", type=float, default=0.05)
    parser.add_argument("--sessions", type=int, default=100, help="idle sessions at once")
    parser.add_argument("--create-parallel", type=int, default=8)
    parser.add_argument("--window", type=float, default=30.0, help="CPU window, seconds")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--usage-interval", type=float, default=5.0)
    parser.add_argument("--plain-containers", type=int, default=3)
    parser.add_argument("--remove-trials", type=int, default=5)
    parser.add_argument("--kill-trials", type=int, default=3)
    parser.add_argument("--orphan-trials", type=int, default=1)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: few of everything (flags still count)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "sessions.json")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(
            runs=5, warmup=2, exec_runs=10, exec_warmup=1, sessions=10, window=10.0,
            settle=3.0, remove_trials=2, kill_trials=1, orphan_trials=0,
        )  # fmt: skip
    return parser.parse_args(argv)


def run_phases(run: Run, document: dict[str, Any]) -> None:
    run.phase = "create"
    spare = run.server("spares", 1)
    cold = run.server("cold", 0)
    say(f"create: {run.args.runs} of each (a spare, cold, the engine), {run.args.gap:g} s apart")
    document["create"] = measure_create(run, spare, cold)
    cold.close()
    run.phase = "exec"
    say(f"exec: {run.args.exec_runs} of each")
    document["exec"] = measure_exec(run, spare)
    run.phase = "idle"
    document["idle"], names = measure_idle(run, spare)
    run.phase = "events"
    if names:
        say("events: removing and killing session containers behind the server's back")
        document |= measure_events(run, spare, names)
    run.phase = "delete"
    began = time.perf_counter()
    failed = spare.delete_all()
    document["idle"]["delete_all_seconds"] = round(time.perf_counter() - began, 2)
    document["idle"]["delete_failures"] = failed


def run_bench(
    args: argparse.Namespace,
    bench: str,
    phases: Callable[[Run, dict[str, Any]], None],
    render: Callable[[dict[str, Any]], str],
    markdown: Callable[[dict[str, Any]], str],
) -> int:
    """A bench run of servers of its own (`bench.cells`, `bench.packages`), start to end:
    `phases` guarded (cleanup whatever happens), the report printed, the document written
    to `args.output` and the Markdown report beside it; the run's exit code."""
    run_id = uuid.uuid4().hex[:10]
    run = Run(args, run_id, time.time(), Engine(IMAGE, run_id), bench=bench)
    document = head(run_id, args)
    name = f"bench.{bench}"
    run_guarded(name, run, document, lambda: phases(run, document))
    code = conclude(name, document, render(document), args.output)
    report = args.output.with_suffix(".md")
    report.write_text(markdown(document))
    print(f"{name}: the report as Markdown: {report}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    run_id = uuid.uuid4().hex[:10]
    run = Run(args, run_id, time.time(), Engine(IMAGE, run_id))
    document = head(run_id, args) | {"image": IMAGE}
    run_guarded("bench.sessions", run, document, lambda: run_phases(run, document))
    return conclude("bench.sessions", document, render(document), args.output)


if __name__ == "__main__":
    raise SystemExit(main())
