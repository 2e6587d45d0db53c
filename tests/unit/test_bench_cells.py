"""The report of `python -m bench.cells`: each cell against the Execute of its own client,
the imports against a `1+1` cell, PASS/MISS per target, and a partial run still rendered."""

from __future__ import annotations

from typing import Any

from bench.cells_report import import_ratios, markdown, render, round_trip_ratios
from bench.sessions_report import figures
from bench.stats import Collector, interleaved


def _f(ms: float, runs: int = 10) -> dict[str, Any]:
    return figures(Collector(samples=[ms] * runs))


def _round_trip(cell: float, execute: float) -> dict[str, Any]:
    found = {
        "cell_stub": _f(cell),
        "cell_sdk": _f(cell + 1),
        "execute_stub": _f(execute),
        "execute_sdk": _f(execute + 2),
        "exec_true": _f(cell / 2),
        "kernel_start_ms": 50.0,
        "execute_program": "print(1+1)\n",
    }
    return found | {"ratios": round_trip_ratios(found)}


def _document() -> dict[str, Any]:
    imports = {
        "import_loaded": _f(3.0),
        "cell": _f(4.0),
        "import_first": _f(60.0, 5),
        "kernel_start": _f(40.0, 5),
        "warm_first_import_ms": 90.0,
    }
    return {
        "python": _round_trip(4.0, 25.0),
        "javascript": _round_trip(4.5, 90.0),
        "imports": imports | {"ratios": import_ratios(imports)},
        "machine": {"cores": 2},
        "started": "2026-12-02T00:00:00+00:00",
    }


def test_ratios_pair_each_cell_with_its_own_clients_execute() -> None:
    found = _document()["python"]["ratios"]
    assert found["cell_stub_to_execute_stub_p50"] == 0.16
    assert found["cell_sdk_to_execute_sdk_p50"] == round(5 / 27, 4)
    imports = _document()["imports"]["ratios"]
    assert imports["import_loaded_to_cell_p50"] == 0.75
    assert imports["import_first_to_import_loaded_p50"] == 20.0


def test_render_gives_ratios_and_a_verdict_per_target() -> None:
    text = render(_document())
    assert "| cell `1+1` (gRPC stub Exec with code) | 4.00 | 4.00 | 4.00 | 10 | 0.16x |" in text
    assert "| first import, fresh session (its kernel started) | 60.00 |" in text
    verdicts = [line for line in text.splitlines() if line.startswith("[")]
    assert [line[:6] for line in verdicts] == ["[PASS]"] * 4 + ["[INFO]"]
    assert "the first import in a fresh session 60.00 ms (20x a loaded one" in verdicts[4]


def test_render_says_miss_where_a_target_is_missed() -> None:
    document = _document() | {"python": _round_trip(7.0, 21.0)}
    verdicts = [line for line in render(document).splitlines() if line.startswith("[")]
    assert [line[:6] for line in verdicts[:2]] == ["[MISS]", "[MISS]"]
    assert "0.333x (7.00 ms against 21.00 ms" in verdicts[0]
    assert "an Exec of `true` in the same session 3.50 ms: the cell is 2x that" in verdicts[1]


def test_an_interrupted_run_renders_what_it_measured() -> None:
    document = {"python": _round_trip(4.0, 25.0), "outcome": "interrupted"}
    text = markdown(document)
    assert text.startswith("# bench.cells, ")
    assert "- [PASS] Python cell p50 <= 0.2x" in text
    assert "- [N/A] JavaScript: the cell against Execute was not measured" in text
    assert "`import numpy`" not in text
    assert "the run interrupted" in text


def test_interleaved_rotates_who_goes_first_and_counts_failures() -> None:
    calls: list[str] = []

    def call(kind: str) -> None:
        calls.append(kind)
        if kind == "b" and len(calls) > 6:
            raise RuntimeError("b failed")

    kinds = {k: (lambda k=k: call(k)) for k in "abc"}
    found = interleaved(kinds, warmup=1, runs=2)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [len(found[k].samples) for k in "abc"] == [2, 1, 2]
    assert found["b"].errors == 1
