"""Bounded waits: one helper for every "try again until it works or the time is up".

    answered = poll(lambda: sshd_answers(address), within_s=90, every_s=0.1)
    lines = poll(check, within_s=120, every_s=5, done=all_ok, between=lambda lines: say("not yet"))

`poll` always tries at least once, never sleeps past the deadline and returns the last attempt's
result: the caller says what it waited for when that result is still not done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Deadline:
    """A point in time `seconds` from now (monotonic), for waits whose steps need what is left."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def passed(self) -> bool:
        return self._clock() >= self._end


def poll(
    attempt: Callable[[], T],
    *,
    within_s: float | Deadline,
    every_s: float,
    done: Callable[[T], bool] = bool,
    between: Callable[[T], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call `attempt` until `done(result)` or the time is up; returns the last result.

    `between(result)` runs before each wait (e.g. to say "not yet"); `within_s` may be a Deadline
    shared with the attempts (a reconnect given what is left of the wait)."""
    deadline = within_s if isinstance(within_s, Deadline) else Deadline(within_s, clock)
    while True:
        result = attempt()
        if done(result) or deadline.passed:
            return result
        if between is not None:
            between(result)
        sleep(min(every_s, deadline.remaining()))
