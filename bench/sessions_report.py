"""What `python -m bench.sessions` prints: every figure beside its baseline from the same
run, as a ratio, and PASS/MISS per target. Pure: it renders the results document alone
(tests/unit/test_bench_sessions.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench.stats import Collector, percentile

# The brief's targets.
CREATE_FROM_SPARE_MS = 20.0
EXEC_X_DOCKER_EXEC = 0.2
IDLE_SERVER_CPU_PCT = 5.0
LOST_WITHIN_MS = 1000.0
# Not the brief's numbers: what the design says. A container that died or was removed is
# LOST from the engine's events within a second; one no session owns waits for the next
# reconcile (--session-reconcile-interval), plus a second of slack for the removal.
SYNC_AFTER_DEATH_MS = 1000.0
SYNC_SLACK_MS = 1000.0

MIB = float(1 << 20)


def figures(collector: Collector) -> dict[str, Any]:
    """The summary of one kind of call: p50/p90/min/max in ms, failures apart."""
    samples = collector.samples
    out: dict[str, Any] = {"runs": len(samples), "errors": collector.errors}
    if samples:
        out |= {
            "p50_ms": round(percentile(samples, 50), 3),
            "p90_ms": round(percentile(samples, 90), 3),
            "min_ms": round(min(samples), 3),
            "max_ms": round(max(samples), 3),
            "samples_ms": [round(s, 3) for s in samples],
        }
    if collector.messages:
        out["error_messages"] = collector.messages
    return out


def ratio(mine: float | None, base: float | None) -> float | None:
    if mine is None or not base:
        return None
    return round(mine / base, 4)


def _p(found: dict[str, Any] | None, pct: int = 50) -> float | None:
    value = (found or {}).get(f"p{pct}_ms")
    return None if value is None else float(value)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}x"


def _verdict(ok: bool | None) -> str:
    return "N/A" if ok is None else "PASS" if ok else "MISS"


def _row(label: str, found: dict[str, Any] | None, *ratios: float | None) -> str:
    found = found or {}
    errors = found.get("errors", 0)
    cells = [
        label,
        _ms(_p(found)),
        _ms(_p(found, 90)),
        _ms(found.get("min_ms")),
        str(found.get("runs", 0)) + (f" ({errors} failed)" if errors else ""),
        *(_x(r) for r in ratios),
    ]
    return "| " + " | ".join(cells) + " |"


def _table(head: Sequence[str]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def create_lines(create: dict[str, Any]) -> tuple[list[str], list[str]]:
    engine = _p(create.get("engine"))
    lines = _table(["CreateSession", "p50 ms", "p90 ms", "min ms", "runs", "/ engine p50"])
    lines.append(
        _row(
            "from a started spare (--session-spares 1)",
            create.get("spare"),
            ratio(_p(create.get("spare")), engine),
        )
    )
    lines.append(
        _row("cold (--session-spares 0)", create.get("cold"), ratio(_p(create.get("cold")), engine))
    )
    lines.append(_row("raw engine: create+start, same image (baseline)", create.get("engine"), 1.0))
    spare = _p(create.get("spare"))
    served_cold = create.get("spare_served_cold", 0)
    verdicts = [
        f"[{_verdict(None if spare is None else spare <= CREATE_FROM_SPARE_MS)}] CreateSession "
        f"from a started spare, p50 <= {CREATE_FROM_SPARE_MS:.0f} ms: {_ms(spare)} ms (p90 "
        f"{_ms(_p(create.get('spare'), 90))}), {_x(ratio(spare, engine))} the engine's "
        f"create+start ({_ms(engine)} ms); cold {_ms(_p(create.get('cold')))} ms"
        + (f"; {served_cold} calls found no spare ready (left out)" if served_cold else "")
    ]
    return (lines if create else []), verdicts


def exec_lines(found: dict[str, Any]) -> tuple[list[str], list[str]]:
    api, cli, host = (_p(found.get(k)) for k in ("docker_exec_api", "docker_exec_cli", "host_true"))
    lines = _table(
        [
            "Exec of `true`",
            "p50 ms",
            "p90 ms",
            "min ms",
            "runs",
            "/ docker exec (API)",
            "/ docker exec (CLI)",
            "/ host `true`",
        ]
    )
    rows = [
        ("session Exec (gRPC stub)", "session"),
        ("session Exec (SDK, Session.exec)", "sdk"),
        ("docker exec, Docker API (baseline)", "docker_exec_api"),
        ("docker exec, CLI", "docker_exec_cli"),
        ("`true` run on the host (floor)", "host_true"),
    ]
    for label, key in rows:
        mine = _p(found.get(key))
        lines.append(
            _row(label, found.get(key), ratio(mine, api), ratio(mine, cli), ratio(mine, host))
        )
    session = _p(found.get("session"))
    x_api = ratio(session, api)
    verdicts = [
        f"[{_verdict(None if x_api is None else x_api <= EXEC_X_DOCKER_EXEC)}] session Exec "
        f"p50 <= {EXEC_X_DOCKER_EXEC}x docker exec: {_x(x_api)} ({_ms(session)} ms against "
        f"{_ms(api)} ms through the API; {_x(ratio(session, cli))} the CLI's {_ms(cli)} ms; "
        f"{_x(ratio(session, host))} host `true`, {_ms(host)} ms)"
    ]
    return (lines if found else []), verdicts


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value / MIB:.2f} MiB"


def idle_lines(idle: dict[str, Any]) -> tuple[list[str], list[str]]:
    if not idle:
        return [], []
    wanted, live = idle.get("sessions_wanted", 0), idle.get("sessions_live", 0)
    cpu, base = idle.get("server_cpu_pct"), idle.get("server_cpu_pct_no_sessions")
    memory = idle.get("memory", {})
    per, plain = memory.get("session_usage_bytes_mean"), memory.get("plain_usage_bytes_mean")
    samples, expected = idle.get("usage_samples"), idle.get("usage_samples_expected")
    lines = [
        f"{live} idle sessions (of {wanted} asked; created in {idle.get('create_seconds')} s, "
        f"{idle.get('create_errors', 0)} failed), usage sampled every "
        f"{idle.get('usage_interval_s')} s, over {idle.get('window_s')} s:",
        f"- server CPU: {cpu} % of one core (no sessions, same server, same window length: "
        f"{base} %: {_x(ratio(cpu, base))}); the {live} containers together: "
        f"{idle.get('containers_cpu_pct')} % of one core",
        f"- usage samples taken in the window: {samples} (expected ~{expected})",
        f"- memory of an idle session's container (cgroup usage, mean of {live}): {_mib(per)} "
        f"(min {_mib(memory.get('session_usage_bytes_min'))}, max "
        f"{_mib(memory.get('session_usage_bytes_max'))}; anon "
        f"{_mib(memory.get('session_anon_bytes_mean'))}, "
        f"page cache and tmpfs {_mib(memory.get('session_file_bytes_mean'))}); an idle plain "
        f"container of the same image: {_mib(plain)} ({_x(ratio(per, plain))}); as the server "
        f"sampled it: {_mib(memory.get('server_sampled_bytes_mean'))}",
        f"- the server's RSS: {_mib(memory.get('server_rss_before_bytes'))} with no sessions, "
        f"{_mib(memory.get('server_rss_after_bytes'))} with {live}: "
        f"{_mib(memory.get('server_rss_growth_per_session_bytes'))} a session",
        f"- outside the cgroup, the engine's shim per container (PSS): "
        f"{_mib(memory.get('shim_pss_bytes_mean'))}",
    ]
    verdicts = [
        f"[{_verdict(None if cpu is None else cpu <= IDLE_SERVER_CPU_PCT)}] server CPU with "
        f"{live} idle sessions <= {IDLE_SERVER_CPU_PCT:.0f} % of a core: {cpu} % "
        f"({_x(ratio(cpu, base))} the same server with none, {base} %)",
    ]
    if wanted and live < wanted:
        verdicts.append(f"[MISS] {wanted} sessions at once: only {live} were created")
    return lines, verdicts


def events_lines(events: dict[str, Any], sync: dict[str, Any]) -> tuple[list[str], list[str]]:
    if not events and not sync:
        return [], []
    engine = _p(events.get("engine_die"))
    lines = _table(
        ["after `docker rm -f` began", "p50 ms", "p90 ms", "min ms", "runs", "/ engine's event"]
    )
    lines.append(
        _row(
            "LOST on an open WatchSessions",
            events.get("lost"),
            ratio(_p(events.get("lost")), engine),
        )
    )
    lines.append(
        _row("the engine's `die` event at the bench (baseline)", events.get("engine_die"), 1.0)
    )
    lines.append(
        _row("LOST after the engine's `die` reached the bench", events.get("lost_after_die"), None)
    )
    lines.append(
        _row(
            "the remove call returned",
            events.get("remove_call"),
            ratio(_p(events.get("remove_call")), engine),
        )
    )
    verdicts = []
    lost = events.get("lost") or {}
    worst = lost.get("max_ms")
    ok = None if worst is None else worst < LOST_WITHIN_MS and not lost.get("errors")
    verdicts.append(
        f"[{_verdict(ok)}] LOST within {LOST_WITHIN_MS / 1e3:.0f} s of `docker rm -f`: longest "
        f"{_ms(worst)} ms of {lost.get('runs', 0)} (p50 {_ms(_p(lost))}; the engine's own event "
        f"reached the bench after {_ms(engine)} ms, p50)"
        + (f"; {lost['errors']} never came" if lost.get("errors") else "")
    )
    deaths = [*sync.get("removed_ms", []), *sync.get("killed_ms", [])]
    orphans = sync.get("orphan_ms", [])
    interval = float(sync.get("reconcile_interval_s", 30.0))
    failures = sync.get("errors", [])
    if deaths or orphans or failures:
        longest = max([*deaths, *orphans], default=None)
        ok_deaths = all(d <= SYNC_AFTER_DEATH_MS for d in deaths)
        ok_orphans = all(o <= interval * 1e3 + SYNC_SLACK_MS for o in orphans)
        verdicts.append(
            f"[{_verdict(ok_deaths and ok_orphans and not failures)}] state sync (registry, "
            f"GetSession and the engine agree), longest {_ms(longest)} ms: removed "
            f"{_list(sync.get('removed_ms', []))}, killed {_list(sync.get('killed_ms', []))} "
            f"(expected <= {SYNC_AFTER_DEATH_MS:.0f} ms: the engine's events), a container no "
            f"session owns {_list(orphans)} (expected <= the reconcile interval, {interval:g} s)"
            + (f"; never agreed: {failures}" if failures else "")
        )
    return lines, verdicts


def _list(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "] ms" if values else "—"


def render(document: dict[str, Any]) -> str:
    parts = (
        create_lines(document.get("create") or {}),
        exec_lines(document.get("exec") or {}),
        idle_lines(document.get("idle") or {}),
        events_lines(document.get("events") or {}, document.get("sync") or {}),
    )
    return compose(parts, document)


def compose(parts: Iterable[tuple[list[str], list[str]]], document: dict[str, Any]) -> str:
    """A bench's report from its parts, each (its lines, its verdicts): the lines of every
    part (an empty line after each), then every verdict, then the run's notes."""
    out: list[str] = []
    verdicts: list[str] = []
    for lines, found in parts:
        if lines:
            out += [*lines, ""]
        verdicts += found
    return "\n".join([*out, *verdicts, "", *(f"note: {n}" for n in run_notes(document))])


def run_notes(document: dict[str, Any]) -> list[str]:
    """What the figures were measured beside: the load, other benches, containers not
    ours, the run's own notes, and whether it completed."""
    notes = [
        f"load average (1, 5, 15 min) at start {document.get('load_average_at_start')}, "
        f"at end {document.get('load_average_at_end')}"
    ]
    if document.get("other_bench_processes_at_start"):
        notes.append(f"other bench processes ran: {document['other_bench_processes_at_start']}")
    noise = document.get("other_containers") or {}
    if noise.get("max_seen"):
        notes.append(
            f"containers not ours ran during {noise.get('samples_with_others')} of "
            f"{noise.get('samples')} samples (up to {noise.get('max_seen')}), in: "
            + ", ".join(noise.get("max_by_phase", {}))
        )
    notes += document.get("notes", [])
    if document.get("outcome", "completed") != "completed":
        notes.append(f"the run {document['outcome']}: the figures above are what it measured")
    return notes
