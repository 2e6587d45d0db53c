"""The human side of a run: the table, the ratios, PASS/MISS per target."""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import COMPARABLE_PEERS, FIGURES, INFO_PEERS, THROUGHPUT, Results
from bench.stats import Summary, Unavailable
from bench.throughput import Throughput

# Targets (the brief's numbers).
WARM_MEDIAN_X_BARE = 2.5
WARM_P95_X_BARE = 4.0
FASTER_THAN_PEER = 5.0
THROUGHPUT_OF_CHURN = 0.90
FIRST_OUTPUT_MS = 5.0
# Reusable hosts (the throughput issue's numbers).
HOST_B2B_X_PACED = 1.3
HOST_B2B_X_BARE = 2.0
HOST_RATE_X_CHURN = 5.0
HOST_RATE_GOAL_X_CHURN = 20.0


@dataclass(frozen=True)
class Target:
    name: str
    verdict: str  # PASS, MISS, N/A, or INFO (a figure with no target)
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "verdict": self.verdict, "detail": self.detail}


def _cell(results: Results, figure: str, language: str) -> str:
    found = results.latency.get(figure, {}).get(language)
    if found is None:
        return f"{'-':>32}"
    if isinstance(found, Unavailable):
        return f"{'n/a':>32}"
    if not found.ok:
        return f"{'failed':>32}"
    bare = results.summary("bare", language)
    ratio = ""
    if bare is not None and figure != "stream_first":
        ratio = f"{found.median / bare.median:.1f}x"
    errors = f" E{found.errors}" if found.errors else ""
    return f"{found.median:8.1f} {found.min:7.1f} {found.p95:7.1f} {ratio:>6}{errors:<3}"


def table(results: Results) -> list[str]:
    langs = results.languages
    head = f"{'latency (ms)':<58}" + "".join(f"{lang:^32}" for lang in langs)
    sub = f"{'':<58}" + "".join(
        f"{'median':>8} {'min':>7} {'p95':>7} {'xbare':>6}   " for _ in langs
    )
    lines = [head, sub]
    for figure in FIGURES:
        if figure in results.latency:
            cells = "".join(_cell(results, figure, lang) for lang in langs)
            lines.append(f"{results.label(figure):<58}{cells}")
    lines.append("")
    callers = {
        t.concurrency
        for by in results.throughput.values()
        for t in by.values()
        if isinstance(t, Throughput)
    }
    title = f"throughput, {'/'.join(map(str, sorted(callers))) or '?'} callers (per second)"
    lines.append(f"{title:<58}" + "".join(f"{lang:^32}" for lang in langs))
    for key, label in THROUGHPUT.items():
        cells = ""
        for lang in langs:
            rate = results.rate(key, lang)
            text = "-" if rate is None else f"{rate.rate:6.2f}/s  errors {rate.errors}"
            cells += f"{text:>32}"
        lines.append(f"{label:<58}{cells}")
    return lines


def detail_lines(results: Results) -> list[str]:
    lines = []
    for figure, by_lang in results.latency.items():
        for lang, found in by_lang.items():
            if isinstance(found, Unavailable):
                lines.append(f"n/a  {FIGURES[figure]} [{lang}]: {found.reason}")
            elif found.errors:
                lines.append(
                    f"errors  {FIGURES[figure]} [{lang}]: {found.errors}: {found.error_messages}"
                )
            if isinstance(found, Summary) and found.note:
                lines.append(f"detail  {FIGURES[figure]} [{lang}]: {found.note}")
    for key, rates in results.throughput.items():
        for lang, rate in rates.items():
            if isinstance(rate, Throughput) and rate.errors:
                lines.append(f"errors  {THROUGHPUT[key]} [{lang}]: {rate.error_messages}")
    return lines


def comparisons(results: Results) -> list[str]:
    lines = []
    for lang in results.languages:
        warm = results.summary("cb_warm", lang)
        if warm is None:
            continue
        parts = [f"{lang}: CodeBeaker warm median {warm.median:.1f} ms"]
        bare = results.summary("bare", lang)
        if bare:
            parts.append(f"= {warm.median / bare.median:.1f}x bare ({bare.median:.1f} ms)")
        image = results.summary("bare_image", lang)
        if image:
            parts.append(f"{warm.median / image.median:.1f}x the image's own interpreter")
        for figure in ("engine", "cb_cold", *COMPARABLE_PEERS, *INFO_PEERS):
            other = results.summary(figure, lang)
            if other:
                parts.append(f"{other.median / warm.median:.1f}x faster than {FIGURES[figure]}")
        lines.append(", ".join(parts))
    return lines


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _latency_targets(results: Results, lang: str, suffix: str) -> list[Target]:
    warm, bare = results.summary("cb_warm", lang), results.summary("bare", lang)
    median_name = f"{lang}: warm Execute median <= {WARM_MEDIAN_X_BARE}x bare{suffix}"
    p95_name = f"{lang}: warm Execute p95 <= {WARM_P95_X_BARE}x bare{suffix}"
    if not (warm and bare):
        return [Target(median_name, "N/A", "not measured"), Target(p95_name, "N/A", "not measured")]
    x50, x95 = warm.median / bare.median, warm.p95 / bare.median
    image = results.summary("bare_image", lang)
    vs50 = vs95 = ""
    if image:
        vs50 = f" (vs the image's own interpreter: {warm.median / image.median:.2f}x)"
        vs95 = f" (vs the image's own interpreter: {warm.p95 / image.median:.2f}x)"
    return [
        Target(median_name, _verdict(x50 <= WARM_MEDIAN_X_BARE), f"{x50:.2f}x{vs50}"),
        Target(p95_name, _verdict(x95 <= WARM_P95_X_BARE), f"p95/bare median {x95:.2f}x{vs95}"),
    ]


def _peer_target(results: Results, lang: str, peer: str, suffix: str) -> Target:
    name = f"{lang}: >= {FASTER_THAN_PEER:.0f}x faster median than {FIGURES[peer]}{suffix}"
    warm, other = results.summary("cb_warm", lang), results.summary(peer, lang)
    if warm and other:
        x = other.median / warm.median
        return Target(name, _verdict(x >= FASTER_THAN_PEER), f"{x:.1f}x")
    found = results.latency.get(peer, {}).get(lang)
    return Target(name, "N/A", found.reason if isinstance(found, Unavailable) else "not measured")


def _throughput_target(results: Results, lang: str, suffix: str) -> Target:
    cb, churn = results.rate("cb", lang), results.rate("engine", lang)
    name = f"{lang}: throughput, zero errors and >= {THROUGHPUT_OF_CHURN:.0%} of raw churn{suffix}"
    if not (cb and churn and churn.rate):
        return Target(name, "N/A", "not measured")
    share = cb.rate / churn.rate
    detail = f"{cb.rate:.2f}/s vs {churn.rate:.2f}/s = {share:.0%}, {cb.errors} errors"
    return Target(name, _verdict(cb.errors == 0 and share >= THROUGHPUT_OF_CHURN), detail)


def _first_output_target(results: Results, lang: str, suffix: str) -> Target:
    first = results.summary("stream_first", lang)
    name = f"{lang}: ExecuteStream first output median <= {FIRST_OUTPUT_MS:.0f} ms{suffix}"
    if not first:
        return Target(name, "N/A", "not measured")
    return Target(name, _verdict(first.median <= FIRST_OUTPUT_MS), f"{first.median:.2f} ms")


def targets(results: Results) -> list[Target]:
    suffix = "" if results.pool_flag else " [no --pool-size: measured on a cold server]"
    out: list[Target] = []
    for lang in results.languages:
        out += _latency_targets(results, lang, suffix)
        out += [_peer_target(results, lang, peer, suffix) for peer in COMPARABLE_PEERS]
        out.append(_throughput_target(results, lang, suffix))
        out.append(_first_output_target(results, lang, suffix))
        out += _host_targets(results, lang)
    return out


def _host_targets(results: Results, lang: str) -> list[Target]:
    """Back to back near paced and near bare, throughput far past the engine's churn,
    paced no worse than the warm pool: each against figures of the same run."""
    paced, b2b = results.summary("cb_host", lang), results.summary("cb_host_b2b", lang)
    bare = results.summary("bare_image", lang) or results.summary("bare", lang)
    warm = results.summary("cb_warm", lang)
    rate, churn = results.rate("cb_host", lang), results.rate("engine", lang)
    out = []
    name = f"{lang}: hosts, back-to-back median <= {HOST_B2B_X_PACED}x paced"
    if paced and b2b:
        x = b2b.median / paced.median
        out.append(Target(name, _verdict(x <= HOST_B2B_X_PACED), f"{x:.2f}x"))
    else:
        out.append(Target(name, "N/A", "not measured"))
    name = f"{lang}: hosts, back-to-back median <= {HOST_B2B_X_BARE}x the bare interpreter"
    if b2b and bare:
        x = b2b.median / bare.median
        detail = f"{x:.2f}x ({b2b.median:.1f} ms vs {bare.median:.1f} ms)"
        out.append(Target(name, _verdict(x <= HOST_B2B_X_BARE), detail))
    else:
        out.append(Target(name, "N/A", "not measured"))
    name = f"{lang}: hosts, paced median no worse than the warm pool's"
    if paced and warm:
        x = paced.median / warm.median
        out.append(Target(name, _verdict(x <= 1.0), f"{x:.2f}x the warm pool's"))
    else:
        out.append(Target(name, "N/A", "not measured"))
    name = (
        f"{lang}: hosts, throughput >= {HOST_RATE_X_CHURN:.0f}x raw churn "
        f"(goal {HOST_RATE_GOAL_X_CHURN:.0f}x), zero errors"
    )
    if rate and churn and churn.rate:
        x = rate.rate / churn.rate
        detail = f"{rate.rate:.1f}/s vs {churn.rate:.2f}/s = {x:.1f}x, {rate.errors} errors"
        ok = x >= HOST_RATE_X_CHURN and rate.errors == 0
        out.append(Target(name, _verdict(ok), detail))
    else:
        out.append(Target(name, "N/A", "not measured"))
    program, image = results.summary("host_program", lang), results.summary("bare_image", lang)
    name = f"{lang}: cost of the nested sandbox (program in a host vs in a plain container)"
    if program and image:
        detail = (
            f"{program.median - image.median:+.1f} ms ({program.median:.1f} ms vs "
            f"{image.median:.1f} ms, {program.median / image.median:.2f}x)"
        )
        out.append(Target(name, "INFO", detail))
    return out


def render(results: Results, found: list[Target]) -> str:
    lines = table(results)
    lines += ["", *comparisons(results)]
    extra = detail_lines(results)
    if extra:
        lines += ["", *extra]
    if results.notes:
        lines += ["", *(f"note: {n}" for n in results.notes)]
    lines.append("")
    lines += [f"[{t.verdict}] {t.name}: {t.detail}" for t in found]
    return "\n".join(lines)
