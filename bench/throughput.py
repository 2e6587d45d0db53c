"""Closed-loop throughput: N workers call back-to-back for a fixed window.

Used for both CodeBeaker and the raw engine so the two rates are measured the
same way. Each worker issues calls until the window closes; a call counts when
it finishes inside the measured window. A warm-up before the window lets
whatever was prepared ahead (a full warm pool) drain first, so the rate is the
sustained one, not a burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.stats import Collector


@dataclass(frozen=True)
class Throughput:
    concurrency: int
    window_s: float
    warmup_s: float
    completed: int
    errors: int
    error_messages: tuple[str, ...]
    latency_median_ms: float | None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.completed / self.window_s if self.window_s else 0.0

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "concurrency": self.concurrency,
            "window_s": self.window_s,
            "warmup_s": self.warmup_s,
            "completed": self.completed,
            "errors": self.errors,
            "per_second": round(self.rate, 3),
            "latency_median_ms": (
                None if self.latency_median_ms is None else round(self.latency_median_ms, 3)
            ),
        }
        if self.error_messages:
            out["error_messages"] = list(self.error_messages)
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class _Worker:
    collector: Collector = field(default_factory=Collector)
    completed: int = 0


def run_window(
    call: Callable[[int], object],
    *,
    concurrency: int,
    window: float,
    warmup: float,
    note: str = "",
) -> Throughput:
    """`call(worker_index)` raises on failure (its return value is ignored)."""
    workers = [_Worker() for _ in range(concurrency)]
    begin = time.perf_counter() + 0.05
    window_start = begin + warmup
    window_end = window_start + window
    stop = threading.Event()

    def loop(index: int) -> None:
        me = workers[index]
        while time.perf_counter() < begin:
            time.sleep(0.001)
        while not stop.is_set() and time.perf_counter() < window_end:
            started = time.perf_counter()
            failure: Exception | None = None
            try:
                call(index)
            except Exception as error:  # counted below, the loop goes on
                failure = error
            finished = time.perf_counter()
            if window_start <= finished <= window_end:
                if failure is None:
                    me.completed += 1
                    me.collector.samples.append((finished - started) * 1000)
                else:
                    me.collector.fail(failure)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    merged = Collector()
    for worker in workers:
        merged.samples.extend(worker.collector.samples)
        merged.errors += worker.collector.errors
        merged.messages.extend(worker.collector.messages[: 3 - len(merged.messages)])
    summary = merged.summary()
    return Throughput(
        concurrency=concurrency,
        window_s=window,
        warmup_s=warmup,
        completed=sum(w.completed for w in workers),
        errors=merged.errors,
        error_messages=tuple(merged.messages),
        latency_median_ms=summary.median if summary.ok else None,
        note=note,
    )
