"""The pure parts of `python -m bench.packages`: the allow-list and packages it serves, the
cache metrics read against what the bench asked, the ratios and the report (a partial run
still rendered), and `interleaved`'s hook before each call."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bench.packages import FLAVORS, allowlist, package_count
from bench.packages_report import (
    cache_metrics,
    execute_ratios,
    markdown,
    render,
    session_ratios,
)
from bench.sessions_report import figures
from bench.stats import Collector, interleaved
from tests.package_index import PackageIndex


def _f(ms: float, runs: int = 8) -> dict[str, Any]:
    return figures(Collector(samples=[ms] * runs))


def _metrics(hits: float, misses: float, seconds: float, count: float) -> str:
    return (
        "# HELP codebeaker_package_cache_hits_total Requests for a package set ...\n"
        "# TYPE codebeaker_package_cache_hits_total counter\n"
        f'codebeaker_package_cache_hits_total{{language="python"}} {hits}\n'
        'codebeaker_package_cache_hits_created{language="python"} 1.7e9\n'
        f'codebeaker_package_cache_misses_total{{language="python"}} {misses}\n'
        f'codebeaker_package_install_seconds_sum{{language="python",outcome="ok"}} {seconds}\n'
        f'codebeaker_package_install_seconds_count{{language="python",outcome="ok"}} {count}\n'
    )


def _execute(plain: float, hit: float, install: float) -> dict[str, Any]:
    found = {
        "no_packages": _f(plain),
        "hit": _f(hit),
        "install": _f(install),
        "first_install_ms": install * 1.5,
        "program": "import cbbenchN; print(1)\n",
        "plain_program": "print(1)\n",
        "metrics": cache_metrics(_metrics(1, 2, 3.0, 2), _metrics(10, 12, 11.0, 12), 9, 10, 9.5),
    }
    return found | {"ratios": execute_ratios(found)}


def _document() -> dict[str, Any]:
    sessions = {
        "with_packages": _f(150.0, 5),
        "from_spare": _f(5.0, 4),
        "spare_served_cold": 1,
        "metrics": cache_metrics(_metrics(0, 0, 0, 0), _metrics(6, 0, 0, 0), 6, 0),
    }
    return {
        "python": _execute(20.0, 180.0, 1080.0),
        "javascript": _execute(100.0, 250.0, 1500.0),
        "sessions": sessions | {"ratios": session_ratios(sessions)},
        "started": "2026-12-03T00:00:00+00:00",
    }


def test_the_allowlist_names_every_package_served_and_each_has_a_dependency(
    tmp_path: Path,
) -> None:
    counts = {"python": package_count(8, 1), "javascript": package_count(4, 1)}
    allowed = tomllib.loads(allowlist(counts))
    assert allowed["python"] == {f"cbbench{i}": "*" for i in range(10)}
    assert list(allowed["javascript"]) == [f"cbbenchjs{i}" for i in range(6)]
    index = PackageIndex(tmp_path)
    FLAVORS["python"].serve(index, 2)
    FLAVORS["javascript"].serve(index, 2)
    wheels = sorted(p.name for p in (tmp_path / "files").iterdir())
    assert wheels == [f"cbbench{d}{i}-1.0-py3-none-any.whl" for d in ("", "dep") for i in (0, 1)]
    assert len(list((tmp_path / "npm").iterdir())) == 4


def test_cache_metrics_are_deltas_checked_against_what_was_asked() -> None:
    found = cache_metrics(_metrics(1, 2, 3.0, 2), _metrics(10, 12, 11.0, 12), 9, 10, 9.5)
    assert found["hits"] == 9 and found["misses"] == 10 and found["installs"] == 10
    assert found["install_seconds"] == 8.0 and found["installer_share"] == round(8 / 9.5, 4)
    assert found["agree"] is True
    assert cache_metrics(_metrics(1, 2, 3.0, 2), _metrics(10, 12, 11.0, 12), 9, 9)["agree"] is False
    # Installs that took longer than the requests they happened in: not the same installs.
    longer = cache_metrics(_metrics(0, 0, 0, 0), _metrics(0, 1, 5.0, 1), 0, 1, 4.0)
    assert longer["agree"] is False
    assert "unavailable" in cache_metrics("", _metrics(0, 0, 0, 0), 0, 0)


def test_render_gives_each_figure_against_its_baseline() -> None:
    document = _document()
    assert document["python"]["ratios"]["hit_to_no_packages_p50"] == 9.0
    assert document["python"]["ratios"]["install_to_hit_p50"] == 6.0
    text = render(document)
    assert (
        "| a set installed already (cache hit, that set's own hosts) | 180.00 | 180.00 | 180.00 "
        "| 8 | 9x | 1x |" in text
    )
    assert "| with packages (a set installed already: cold) | 150.00 |" in text
    verdicts = [line for line in text.splitlines() if line.startswith("[")]
    assert [line[:6] for line in verdicts] == ["[INFO]", "[PASS]"] * 2 + ["[INFO]", "[PASS]"]
    assert "an install 6x a hit and 54x no packages (1080.00 ms)" in verdicts[0]
    assert "9 cache hits (9 asked), 10 misses (10), 10 installs taking 8.00 s" in verdicts[1]
    assert "30x one from a spare" in verdicts[4] and "1 creates without" in verdicts[4]


def test_an_interrupted_run_renders_what_it_measured() -> None:
    python = _execute(20.0, 180.0, 1080.0) | {"metrics": cache_metrics("", "", 0, 0)}
    document = {"python": python, "outcome": "interrupted"}
    text = markdown(document)
    assert text.startswith("# bench.packages, ")
    assert "- [N/A] Python cache metrics: the server's metrics could not be read" in text
    assert "- [N/A] JavaScript: Execute with packages was not measured" in text
    assert "CreateSession" not in text and "the run interrupted" in text


def test_interleaved_calls_before_each_off_the_clock_with_its_kind() -> None:
    calls: list[str] = []
    kinds = {k: (lambda k=k: calls.append(k)) for k in "ab"}
    found = interleaved(kinds, warmup=0, runs=2, before_each=lambda k: calls.append(f"<{k}"))
    assert calls == ["<a", "a", "<b", "b", "<b", "b", "<a", "a"]
    assert [len(found[k].samples) for k in "ab"] == [2, 2]
