"""Samples and their summaries: min/median/p95 over runs, failures counted apart.

Every latency figure in the bench is a `Summary`. A run that fails is not a
sample: it is counted, and the first few messages are kept to show why.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MAX_ERROR_MESSAGES = 3


@dataclass(frozen=True)
class Summary:
    samples_ms: tuple[float, ...]
    errors: int = 0
    error_messages: tuple[str, ...] = ()
    note: str = ""

    @property
    def runs(self) -> int:
        return len(self.samples_ms)

    @property
    def ok(self) -> bool:
        return bool(self.samples_ms)

    @property
    def min(self) -> float:
        return min(self.samples_ms)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"runs": self.runs, "errors": self.errors}
        if self.ok:
            out.update(
                min_ms=round(self.min, 3),
                median_ms=round(self.median, 3),
                p95_ms=round(self.p95, 3),
                mean_ms=round(statistics.fmean(self.samples_ms), 3),
                samples_ms=[round(s, 3) for s in self.samples_ms],
            )
        if self.error_messages:
            out["error_messages"] = list(self.error_messages)
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Unavailable:
    """A figure that could not be measured here, and why."""

    reason: str

    def to_json(self) -> dict[str, object]:
        return {"unavailable": self.reason}


Measurement = Summary | Unavailable


class Abort(Exception):
    """Raised by a sample when measuring on makes no sense (e.g. the server died)."""


def percentile(samples: tuple[float, ...] | list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Collector:
    """Accumulates samples and failures; `summary()` freezes them."""

    samples: list[float] = field(default_factory=list)
    errors: int = 0
    messages: list[str] = field(default_factory=list)

    def fail(self, error: BaseException | str) -> None:
        self.errors += 1
        if len(self.messages) < MAX_ERROR_MESSAGES:
            text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            self.messages.append(text[:300])

    def summary(self, note: str = "") -> Summary:
        return Summary(tuple(self.samples), self.errors, tuple(self.messages), note)


def timed(call: Callable[[], None]) -> Callable[[], float]:
    """Wraps a call so that it returns its own wall time in milliseconds."""

    def sample() -> float:
        start = time.perf_counter_ns()
        call()
        return (time.perf_counter_ns() - start) / 1e6

    return sample


def collect(
    sample: Callable[[], float],
    *,
    warmup: int,
    runs: int,
    gap: float = 0.0,
    note: str = "",
) -> Summary:
    """Runs `warmup` unrecorded samples, then `runs` recorded ones, `gap` s apart."""
    for _ in range(warmup):
        # Warm-up failures show up again in the recorded runs.
        try:
            sample()
        except Abort:
            raise
        except Exception:
            pass
        if gap:
            time.sleep(gap)
    collector = Collector()
    for _ in range(runs):
        try:
            collector.samples.append(sample())
        except Abort:
            raise
        except Exception as error:  # a failed run is data, not a crash
            collector.fail(error)
        if gap:
            time.sleep(gap)
    return collector.summary(note)


def interleaved(
    kinds: Mapping[str, Callable[[], object]],
    *,
    warmup: int,
    runs: int,
    gap: float = 0.0,
    each_round: Callable[[], None] | None = None,
    before_each: Callable[[str], None] | None = None,
) -> dict[str, Collector]:
    """Every kind once a round, `gap` s before each call, whose turn is first rotating
    from round to round; `warmup` rounds unrecorded, then `runs` recorded. A failed call
    is counted, not a crash; `each_round` runs before every round (it may raise Abort),
    `before_each` before every call, with its kind, off the clock (it may raise too)."""
    collected = {kind: Collector() for kind in kinds}
    order = list(kinds)
    for n in range(warmup + runs):
        if each_round is not None:
            each_round()
        for kind in order[n % len(order) :] + order[: n % len(order)]:
            if before_each is not None:
                before_each(kind)
            if gap:
                time.sleep(gap)
            began = time.perf_counter()
            try:
                kinds[kind]()
            except Abort:
                raise
            except Exception as error:
                if n >= warmup:
                    collected[kind].fail(error)
                continue
            if n >= warmup:
                collected[kind].samples.append((time.perf_counter() - began) * 1e3)
    return collected
