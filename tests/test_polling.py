"""The one bounded polling helper: tries at least once, stops at done or at the deadline, never
sleeps past it (a fake clock: no real waiting)."""

from __future__ import annotations

from stackwright.polling import Deadline, poll


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_stops_as_soon_as_it_is_done() -> None:
    clock = Clock()
    answers = iter([0, 0, 3, 4])
    assert poll(lambda: next(answers), within_s=60, every_s=5, sleep=clock.sleep, clock=clock) == 3
    assert clock.sleeps == [5, 5]


def test_gives_up_at_the_deadline_with_the_last_result_and_sleeps_no_longer() -> None:
    clock = Clock()
    seen: list[str] = []
    result = poll(
        lambda: "not yet",
        within_s=12,
        every_s=5,
        done=lambda r: r == "ok",
        between=seen.append,
        sleep=clock.sleep,
        clock=clock,
    )
    assert result == "not yet" and clock.sleeps == [5, 5, 2] and len(seen) == 3


def test_tries_once_even_with_no_time_left() -> None:
    clock = Clock()
    calls: list[int] = []
    assert poll(lambda: calls.append(1), within_s=0, every_s=1, sleep=clock.sleep, clock=clock) is None
    assert calls == [1] and clock.sleeps == []


def test_a_shared_deadline_tells_the_attempts_what_is_left() -> None:
    clock = Clock()
    deadline = Deadline(10, clock)
    left: list[float] = []

    def attempt() -> bool:
        left.append(deadline.remaining())
        clock.now += 4  # an attempt that takes time itself (a reconnect)
        return False

    assert poll(attempt, within_s=deadline, every_s=1, sleep=clock.sleep, clock=clock) is False
    assert left == [10, 5, 0] and deadline.passed
