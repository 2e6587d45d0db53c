"""What `python -m bench.cells` prints and writes as Markdown: every figure beside its
baseline from the same run, as a ratio, and PASS/MISS per target. Pure: it renders the
results document alone (tests/unit/test_bench_cells.py)."""

from __future__ import annotations

from typing import Any

from bench.sessions_report import _ms, _p, _row, _table, _verdict, _x, compose, ratio

# The target (a cell's round trip against a one-shot Execute, p50) and its goal.
CELL_X_EXECUTE = 0.2
CELL_GOAL_MS = 5.0
LANGUAGE_NAMES = {"python": "Python", "javascript": "JavaScript"}
ROUND_TRIP_ROWS = (
    ("cell `1+1` (gRPC stub Exec with code)", "cell_stub"),
    ("cell `1+1` (SDK, Session.run_code)", "cell_sdk"),
    ("one-shot Execute (gRPC stub; baseline)", "execute_stub"),
    ("one-shot Execute (SDK, Client.execute)", "execute_sdk"),
    ("Exec of `true` in the same session (gRPC stub)", "exec_true"),
)


def round_trip_ratios(found: dict[str, Any]) -> dict[str, float | None]:
    """Each cell against the Execute of its own client (stub with stub, SDK with SDK)."""
    out: dict[str, float | None] = {}
    for pct in (50, 90):
        for client in ("stub", "sdk"):
            cell, execute = (_p(found.get(f"{k}_{client}"), pct) for k in ("cell", "execute"))
            out[f"cell_{client}_to_execute_{client}_p{pct}"] = ratio(cell, execute)
    out["cell_stub_to_exec_true_p50"] = ratio(
        _p(found.get("cell_stub")), _p(found.get("exec_true"))
    )
    return out


def round_trip_lines(language: str, found: dict[str, Any]) -> tuple[list[str], list[str]]:
    name = LANGUAGE_NAMES.get(language, language)
    if not found:
        return [], [f"[N/A] {name}: the cell against Execute was not measured"]
    program = found.get("execute_program", "")
    lines = _table(
        [f"{name}: `1+1`", "p50 ms", "p90 ms", "min ms", "runs", "/ Execute p50", "/ Execute p90"]
    )
    base50, base90 = _p(found.get("execute_stub")), _p(found.get("execute_stub"), 90)
    for label, key in ROUND_TRIP_ROWS:
        mine = found.get(key)
        lines.append(_row(label, mine, ratio(_p(mine), base50), ratio(_p(mine, 90), base90)))
    kernel = found.get("kernel_start_ms")
    if kernel is not None:
        lines.append(
            f"\nThe session's first cell (it starts the kernel): {_ms(kernel)} ms, "
            f"{_x(ratio(kernel, base50))} Execute's p50. Execute runs `{program.strip()}`."
        )
    cell, exec_true = _p(found.get("cell_stub")), _p(found.get("exec_true"))
    x_execute = ratio(cell, base50)
    sdk = found.get("ratios", {}).get("cell_sdk_to_execute_sdk_p50")
    verdicts = [
        f"[{_verdict(None if x_execute is None else x_execute <= CELL_X_EXECUTE)}] {name} "
        f"cell p50 <= {CELL_X_EXECUTE}x a one-shot Execute: {_x(x_execute)} ({_ms(cell)} ms "
        f"against {_ms(base50)} ms; p90 {_x(ratio(_p(found.get('cell_stub'), 90), base90))}; "
        f"through the SDK {_x(sdk)}, {_ms(_p(found.get('cell_sdk')))} ms against "
        f"{_ms(_p(found.get('execute_sdk')))} ms)",
        f"[{_verdict(None if cell is None else cell <= CELL_GOAL_MS)}] {name} cell p50 <= "
        f"{CELL_GOAL_MS:.0f} ms: {_ms(cell)} ms (gRPC stub; the SDK "
        f"{_ms(_p(found.get('cell_sdk')))} ms; an Exec of `true` in the same session "
        f"{_ms(exec_true)} ms: the cell is {_x(ratio(cell, exec_true))} that)",
    ]
    return lines, verdicts


def import_ratios(found: dict[str, Any]) -> dict[str, float | None]:
    cell, loaded = _p(found.get("cell")), _p(found.get("import_loaded"))
    first, kernel = _p(found.get("import_first")), _p(found.get("kernel_start"))
    return {
        "import_loaded_to_cell_p50": ratio(loaded, cell),
        "import_first_to_import_loaded_p50": ratio(first, loaded),
        "import_first_to_cell_p50": ratio(first, cell),
        "kernel_start_to_cell_p50": ratio(kernel, cell),
    }


def import_lines(found: dict[str, Any]) -> tuple[list[str], list[str]]:
    if not found:
        return [], []
    cell, loaded = _p(found.get("cell")), _p(found.get("import_loaded"))
    lines = _table(
        ["Python: `import numpy`", "p50 ms", "p90 ms", "min ms", "runs", "/ `1+1` cell p50"]
    )
    rows = (
        ("loaded already (2nd and later imports, warm session)", "import_loaded"),
        ("first import, fresh session (its kernel started)", "import_first"),
        ("a fresh session's first cell `1+1` (starts the kernel)", "kernel_start"),
        ("cell `1+1`, warm session (baseline)", "cell"),
    )
    for label, key in rows:
        lines.append(_row(label, found.get(key), ratio(_p(found.get(key)), cell)))
    first = _p(found.get("import_first"))
    verdicts = [
        f"[INFO] `import numpy` once loaded: {_ms(loaded)} ms, {_x(ratio(loaded, cell))} a "
        f"`1+1` cell ({_ms(cell)} ms; an import shows no value, `1+1` sends its repr); the "
        f"first import in a fresh session {_ms(first)} ms ({_x(ratio(first, loaded))} a loaded "
        f"one; the warm session's own first import: {_ms(found.get('warm_first_import_ms'))} "
        "ms)"
    ]
    return lines, verdicts


def render(document: dict[str, Any]) -> str:
    parts = [round_trip_lines(lang, document.get(lang) or {}) for lang in LANGUAGE_NAMES]
    return compose([*parts, import_lines(document.get("imports") or {})], document)


def markdown(document: dict[str, Any]) -> str:
    """The report as a Markdown file: a title saying when and on what, then `render`."""
    return markdown_page("bench.cells", document, render(document))


def markdown_page(bench: str, document: dict[str, Any], rendered: str) -> str:
    """A bench's report as Markdown: a title saying when and on what, then its rendered
    text, its verdicts and notes as list items."""
    machine = document.get("machine") or {}
    title = (
        f"# {bench}, {document.get('started', '?')}\n\n"
        f"{machine.get('cores', '?')} cores, {machine.get('memory_gib', '?')} GiB, Linux "
        f"{machine.get('kernel', '?')}, Docker {machine.get('docker_server_version', '?')}; "
        f"{document.get('server', '')}. Milliseconds; each ratio against a baseline measured "
        "in the same run, interleaved with it.\n"
    )
    body = "\n".join(
        f"- {line}" if line.startswith(("[", "note:")) else line for line in rendered.splitlines()
    )
    return f"{title}\n{body}\n"
