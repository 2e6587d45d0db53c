"""How `wait(timeout)` spends its time, the same for both clients.

A long wait is a loop of WaitOperation calls, each asking the server to hold
it at most `WAIT_CHUNK` seconds, so no single call outlives a proxy's idle
timeout and the caller's timeout is kept to within one round. Two things are
ridden out instead of failing the wait: a server that answers "not done"
early (one that caps waits, or does not wait at all) gets a growing pause
between rounds rather than a busy loop, and an UNAVAILABLE round (the server
restarting, its queue store briefly away) is retried with backoff for up to
`RECONNECT_WINDOW` seconds of outage.
"""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration

from codebeaker.client.errors import UnavailableError, WaitTimeoutError
from codebeaker.client.types import OperationState

WAIT_CHUNK = 30.0
"""Seconds one WaitOperation asks the server to hold the call, at most."""
WAIT_SLACK = 10.0
"""Seconds a WaitOperation's gRPC deadline allows beyond the wait it asked for."""
RECONNECT_WINDOW = 60.0
"""Seconds of UNAVAILABLE rounds in a row a wait rides out before raising the last one."""
MIN_WAIT = 0.001


class WaitClock:
    """One `wait(timeout)`: what each round asks for, and the pauses between rounds."""

    def __init__(self, name: str, timeout: float | None) -> None:
        if timeout is not None and not timeout >= 0:
            raise ValueError("timeout must be a number of seconds >= 0, or None")
        self._name = name
        self._timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout
        self._pause = 0.0
        self._asked = 0.0
        self._asked_at = 0.0
        self._rounds = 0
        self._outage_since: float | None = None
        self._outage_pause = 0.0

    def next_wait(self, state: OperationState) -> float:
        """Seconds the next WaitOperation asks for; WaitTimeoutError when out of time.

        The first round is always asked (a timeout of 0 still reads the state)."""
        now = time.monotonic()
        remaining = WAIT_CHUNK if self._end is None else self._end - now
        if remaining <= 0 and self._rounds:
            raise WaitTimeoutError(
                f"{self._name} is still {state.value} after {self._timeout:g}s",
                metadata={"operation": self._name, "state": state.value},
            )
        self._rounds += 1
        # Never 0: an unset WaitOperation timeout means "as long as the server allows".
        self._asked, self._asked_at = max(min(remaining, WAIT_CHUNK), MIN_WAIT), now
        return self._asked

    def pause(self) -> float:
        """After a round that answered "not done": seconds to pause before the next
        (0 when the server held the call as asked)."""
        self._outage_since, self._outage_pause = None, 0.0
        held = time.monotonic() - self._asked_at
        if held >= self._asked / 2:
            self._pause = 0.0
            return 0.0
        self._pause = min(max(self._pause * 2, 0.05), 1.0)
        return self._bounded(self._pause)

    def outage(self, error: UnavailableError) -> float:
        """After an UNAVAILABLE round: seconds to pause before retrying; re-raises `error`
        once the outage has lasted `RECONNECT_WINDOW` or the timeout has passed."""
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        if now - self._outage_since >= RECONNECT_WINDOW or (
            self._end is not None and now >= self._end
        ):
            raise error
        self._outage_pause = min(max(self._outage_pause * 2, 0.1), 2.0)
        return self._bounded(self._outage_pause)

    def _bounded(self, pause: float) -> float:
        if self._end is None:
            return pause
        return max(min(pause, self._end - time.monotonic()), 0.0)


def wait_duration(seconds: float) -> Duration:
    """A WaitOperation's timeout, never zero (zero means "no timeout" there)."""
    duration = Duration()
    duration.FromNanoseconds(max(round(seconds * 1_000_000_000), 1_000_000))
    return duration
