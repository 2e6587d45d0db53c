"""What `python -m bench.packages` prints and writes as Markdown: request-time packages
installed at the request and found in the cache, each beside its baseline from the same
run as a ratio; and the server's own cache metrics against what the bench asked of it.
Pure: it renders the results document alone (tests/unit/test_bench_packages.py)."""

from __future__ import annotations

from typing import Any

from bench.cells_report import LANGUAGE_NAMES, markdown_page
from bench.sessions_probe import metric_total
from bench.sessions_report import _ms, _p, _row, _table, _verdict, _x, compose, ratio

HITS = "codebeaker_package_cache_hits_total"
MISSES = "codebeaker_package_cache_misses_total"
INSTALL_SUM = "codebeaker_package_install_seconds_sum"
INSTALL_COUNT = "codebeaker_package_install_seconds_count"
EXECUTE_ROWS = (
    ("no packages (the pooled hosts; baseline)", "no_packages"),
    ("a set installed already (cache hit, that set's own hosts)", "hit"),
    ("a set not installed yet (install, then run)", "install"),
)
SESSION_ROWS = (
    ("with packages (a set installed already: cold)", "with_packages"),
    ("without (from a started spare; baseline)", "from_spare"),
)


def cache_metrics(
    before: str, after: str, hits: int, misses: int, install_seconds: float | None = None
) -> dict[str, Any]:
    """The server's cache counters and install histogram over a phase (the metrics text
    before and after it), against the hits and misses the bench's requests make, and the
    installs' time against the wall time of the requests that installed (`install_seconds`)."""
    if not before or not after:
        return {"unavailable": "the server's metrics could not be read"}
    names = (HITS, MISSES, INSTALL_SUM, INSTALL_COUNT)
    delta = {name: metric_total(after, name) - metric_total(before, name) for name in names}
    out: dict[str, Any] = {
        "hits": round(delta[HITS]),
        "misses": round(delta[MISSES]),
        "installs": round(delta[INSTALL_COUNT]),
        "install_seconds": round(delta[INSTALL_SUM], 3),
        "expected_hits": hits,
        "expected_misses": misses,
    }
    agree = out["hits"] == hits and out["misses"] == misses and out["installs"] == misses
    if install_seconds is not None:
        out["install_requests_seconds"] = round(install_seconds, 3)
        # The installs happen inside those requests: their sum cannot be larger.
        out["installer_share"] = ratio(delta[INSTALL_SUM], install_seconds)
        agree = agree and delta[INSTALL_SUM] <= install_seconds
    out["agree"] = agree
    return out


def execute_ratios(found: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for pct in (50, 90):
        plain, hit, install = (_p(found.get(k), pct) for k in ("no_packages", "hit", "install"))
        out[f"hit_to_no_packages_p{pct}"] = ratio(hit, plain)
        out[f"install_to_hit_p{pct}"] = ratio(install, hit)
        out[f"install_to_no_packages_p{pct}"] = ratio(install, plain)
    return out


def session_ratios(found: dict[str, Any]) -> dict[str, float | None]:
    return {
        f"with_packages_to_from_spare_p{pct}": ratio(
            _p(found.get("with_packages"), pct), _p(found.get("from_spare"), pct)
        )
        for pct in (50, 90)
    }


def metrics_verdict(label: str, metrics: dict[str, Any]) -> str:
    if not metrics:
        return f"[N/A] {label}: the server's metrics were not read"
    if "unavailable" in metrics:
        return f"[N/A] {label}: {metrics['unavailable']}"
    text = (
        f"[{_verdict(metrics.get('agree'))}] {label}: the server counted {metrics['hits']} "
        f"cache hits ({metrics['expected_hits']} asked), {metrics['misses']} misses "
        f"({metrics['expected_misses']}), {metrics['installs']} installs"
    )
    if "install_requests_seconds" in metrics:
        text += (
            f" taking {metrics['install_seconds']:.2f} s, {_x(metrics.get('installer_share'))} "
            f"the {metrics['install_requests_seconds']:.2f} s of the requests that installed"
        )
    return text


def execute_lines(language: str, found: dict[str, Any]) -> tuple[list[str], list[str]]:
    name = LANGUAGE_NAMES.get(language, language)
    if not found:
        return [], [f"[N/A] {name}: Execute with packages was not measured"]
    head = [f"{name}: `{found.get('program', '').strip()}`", "p50 ms", "p90 ms", "min ms"]
    lines = _table([*head, "runs", "/ no packages p50", "/ hit p50"])
    plain, hit = _p(found.get("no_packages")), _p(found.get("hit"))
    for label, key in EXECUTE_ROWS:
        mine = _p(found.get(key))
        lines.append(_row(label, found.get(key), ratio(mine, plain), ratio(mine, hit)))
    first = found.get("first_install_ms")
    lines.append(
        f"\nThe first install of the run (before the rounds; the set the hits ask for): "
        f"{_ms(first)} ms, {_x(ratio(first, _p(found.get('install'))))} a later one's p50. "
        f"Without packages the program is `{found.get('plain_program', '').strip()}`."
    )
    ratios = found.get("ratios") or execute_ratios(found)
    verdicts = [
        f"[INFO] {name}: a cache hit {_x(ratios.get('hit_to_no_packages_p50'))} an Execute "
        f"without packages ({_ms(hit)} against {_ms(plain)} ms, p50; p90 "
        f"{_x(ratios.get('hit_to_no_packages_p90'))}); an install "
        f"{_x(ratios.get('install_to_hit_p50'))} a hit and "
        f"{_x(ratios.get('install_to_no_packages_p50'))} no packages "
        f"({_ms(_p(found.get('install')))} ms)",
        metrics_verdict(f"{name} cache metrics", found.get("metrics") or {}),
    ]
    fetched = found.get("index_requests_during_hits")
    if fetched:
        verdicts.append(f"[MISS] {name}: the cache hits fetched {fetched} pages from the index")
    return lines, verdicts


def session_lines(found: dict[str, Any]) -> tuple[list[str], list[str]]:
    if not found:
        return [], []
    lines = _table(["CreateSession (Python)", "p50 ms", "p90 ms", "min ms", "runs", "/ spare p50"])
    spare = _p(found.get("from_spare"))
    for label, key in SESSION_ROWS:
        lines.append(_row(label, found.get(key), ratio(_p(found.get(key)), spare)))
    ratios = found.get("ratios") or session_ratios(found)
    text = (
        f"[INFO] a session with packages {_x(ratios.get('with_packages_to_from_spare_p50'))} "
        f"one from a spare ({_ms(_p(found.get('with_packages')))} against {_ms(spare)} ms, p50; "
        f"p90 {_x(ratios.get('with_packages_to_from_spare_p90'))})"
    )
    if found.get("spare_served_cold"):
        text += f"; {found['spare_served_cold']} creates without found no spare ready (left out)"
    verdicts = [text]
    if found.get("packages_from_spare"):
        verdicts.append(
            f"[MISS] {found['packages_from_spare']} sessions with packages came from a spare"
        )
    verdicts.append(metrics_verdict("session cache metrics", found.get("metrics") or {}))
    return lines, verdicts


def render(document: dict[str, Any]) -> str:
    parts = [execute_lines(lang, document.get(lang) or {}) for lang in LANGUAGE_NAMES]
    return compose([*parts, session_lines(document.get("sessions") or {})], document)


def markdown(document: dict[str, Any]) -> str:
    return markdown_page("bench.packages", document, render(document))
