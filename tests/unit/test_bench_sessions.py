"""The pure parts of `python -m bench.sessions`: what it reads off /proc, cgroups and the
server's metrics, and the report: every figure against its same-run baseline as a ratio,
PASS/MISS per target, and a partial (interrupted) run still rendered."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import sessions_probe as probe
from bench.sessions_engine import engine_time
from bench.sessions_report import figures, ratio, render
from bench.stats import Collector


def test_stat_ticks_counts_fields_after_the_last_parenthesis() -> None:
    # A command name with spaces and a ')' must not shift the fields.
    fields = " ".join(["S", *["0"] * 10, "123", "45", *["0"] * 30])
    assert probe.stat_ticks(f"4242 (odd ) name) {fields}") == 168


def test_process_tree_cpu_and_rss_follow_children(tmp_path: Path) -> None:
    def process(pid: int, ticks: tuple[int, int], rss_kib: int, children: str = "") -> None:
        task = tmp_path / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (task / "children").write_text(children)
        utime, stime = ticks
        rest = " ".join(["S", *["0"] * 10, str(utime), str(stime), "0"])
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (codebeaker) {rest}\n")
        (tmp_path / str(pid) / "status").write_text(f"Name:\tx\nVmRSS:\t {rss_kib} kB\n")

    process(10, (100, 50), 1000, "11 ")
    process(11, (7, 3), 24)
    assert sorted(probe.descendants(10, tmp_path)) == [10, 11]
    assert probe.tree_rss(10, tmp_path) == 1024 * 1024
    ticks = os.sysconf("SC_CLK_TCK")
    assert probe.tree_cpu_seconds(10, tmp_path) == 160 / ticks


def test_memory_stat_reads_both_cgroup_versions() -> None:
    v1 = "cache 1\nrss 2\ntotal_cache 4096\ntotal_rss 8192\ntotal_shmem 512\n"
    assert probe.memory_stat(v1, 1) == (8192, 4096, 512)
    v2 = "anon 100\nfile 200\nkernel 7\nshmem 50\n"
    assert probe.memory_stat(v2, 2) == (100, 200, 50)


def test_shim_container_and_pss() -> None:
    cmdline = b"/usr/bin/containerd-shim-runc-v2\0-namespace\0moby\0-id\0abc123\0-address\0x\0"
    assert probe.shim_container(cmdline) == "abc123"
    assert probe.shim_container(b"/usr/bin/sleep\0-id\0abc\0") == ""
    assert probe.smaps_pss("Rss:  13508 kB\nPss:   3279 kB\n") == 3279 * 1024


def test_metric_total_sums_every_label_set() -> None:
    text = (
        "# HELP codebeaker_session_memory_bytes Memory.\n"
        "codebeaker_session_memory_bytes_count 12.0\n"
        "codebeaker_session_memory_bytes_sum 4.5e6\n"
        'codebeaker_session_execs_total{language="python",status="ok x"} 3.0\n'
        'codebeaker_session_execs_total{language="bash",status="ok"} 2.0\n'
        "codebeaker_session_execs_total_other 100\n"
    )
    assert probe.metric_total(text, "codebeaker_session_memory_bytes_count") == 12.0
    assert probe.metric_total(text, "codebeaker_session_execs_total") == 5.0
    assert probe.metric_total(text, "absent") == 0.0


def test_engine_time_keeps_nanoseconds() -> None:
    assert engine_time("1970-01-01T00:00:01.500000001Z") == 1.500000001
    assert engine_time("1970-01-01T00:01:00Z") == 60.0


def test_figures_and_ratios() -> None:
    collector = Collector(samples=[4.0, 1.0, 3.0, 2.0])
    collector.fail(RuntimeError("boom"))
    found = figures(collector)
    assert found["runs"] == 4 and found["errors"] == 1
    assert found["p50_ms"] == 2.5 and found["min_ms"] == 1.0 and found["max_ms"] == 4.0
    assert found["error_messages"] == ["RuntimeError: boom"]
    assert figures(Collector()) == {"runs": 0, "errors": 0}
    assert ratio(5.0, 200.0) == 0.025
    assert ratio(None, 1.0) is None and ratio(1.0, 0.0) is None


def _f(p50: float, p90: float | None = None, runs: int = 10) -> dict[str, Any]:
    return {"runs": runs, "errors": 0, "p50_ms": p50, "p90_ms": p90 or p50, "min_ms": p50}


def _document() -> dict[str, Any]:
    return {
        "create": {"spare": _f(4.0), "cold": _f(180.0), "engine": _f(200.0)},
        "exec": {
            "session": _f(7.0),
            "sdk": _f(7.5),
            "docker_exec_api": _f(70.0),
            "docker_exec_cli": _f(90.0),
            "host_true": _f(1.0),
        },
        "idle": {
            "sessions_wanted": 100,
            "sessions_live": 100,
            "server_cpu_pct": 2.0,
            "server_cpu_pct_no_sessions": 0.5,
            "memory": {"session_usage_bytes_mean": 1 << 20, "plain_usage_bytes_mean": 1 << 19},
        },
        "events": {"lost": _f(300.0) | {"max_ms": 400.0}, "engine_die": _f(290.0)},
        "sync": {"removed_ms": [310.0], "killed_ms": [450.0], "orphan_ms": [12000.0]},
        "load_average_at_start": [1, 1, 1],
        "load_average_at_end": [1, 1, 1],
    }


def test_render_gives_ratios_and_a_verdict_per_target() -> None:
    text = render(_document())
    assert "| from a started spare (--session-spares 1) | 4.00 |" in text
    assert "0.02x" in text  # 4 ms against the engine's 200 ms
    assert "| session Exec (gRPC stub) | 7.00 | 7.00 | 7.00 | 10 | 0.1x | 0.0778x | 7x |" in text
    verdicts = [line for line in text.splitlines() if line.startswith("[")]
    assert len(verdicts) == 5
    assert all(line.startswith("[PASS]") for line in verdicts), verdicts
    assert "2.0 % (4x the same server with none, 0.5 %)" in text
    assert "(2x)" in text  # an idle session's container against a plain one
    assert "longest 12000.00 ms" in text


def test_render_says_miss_where_a_target_is_missed() -> None:
    document = _document()
    document["create"]["spare"] = _f(25.0)
    document["exec"]["session"] = _f(21.0)
    document["idle"] |= {"server_cpu_pct": 6.0, "sessions_live": 80}
    document["events"]["lost"] = _f(300.0) | {"max_ms": 1200.0}
    document["sync"]["orphan_ms"] = [40000.0]
    verdicts = [line for line in render(document).splitlines() if line.startswith("[")]
    assert [line[:6] for line in verdicts] == ["[MISS]"] * 6
    assert "100 sessions at once: only 80 were created" in verdicts[3]


def test_an_interrupted_run_renders_what_it_measured() -> None:
    text = render({"create": {"spare": _f(4.0)}, "outcome": "interrupted"})
    assert "[PASS] CreateSession" in text
    assert "[N/A] session Exec" in text
    assert "| Exec of `true` |" not in text  # no table for what was not measured
    assert "the run interrupted" in text
