"""Profile a stackwright command by its SSH round trips: every `Remote.run` timed, per host.

Run (root, with a converged lab):

    .venv/bin/python benchmarks/roundtrips.py apply INVENTORY --yes --no-upgrade
    .venv/bin/python benchmarks/roundtrips.py doctor INVENTORY

Runs the command in this process (the same code the CLI runs) and prints, after it, each host's
count of round trips and their summed time, then the slowest round trips with the first line of
their command. A no-op apply or a warm doctor waits on SSH replies for most of its run, so this
shows where their time goes (what py-spy shows as time in the gevent hub).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Any

from stackwright.engine import remote

CALLS: list[tuple[str, float, float, str]] = []  # host, started (from t0), seconds, command
T0 = time.monotonic()


def _first_line(command: str, stdin: str | None) -> str:
    text = stdin if command == "sh -s" and stdin else command
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("export ")]
    return (lines[0] if lines else command)[:110]


def _install() -> None:
    original = remote.Remote.run

    def timed_run(self: remote.Remote, command: str, **kwargs: Any) -> remote.Result:
        start = time.monotonic()
        try:
            return original(self, command, **kwargs)
        finally:
            CALLS.append(
                (self.name, start - T0, time.monotonic() - start, _first_line(command, kwargs.get("stdin")))
            )

    remote.Remote.run = timed_run  # type: ignore[method-assign]  # the profile's one hook


def report(wall: float) -> str:
    lines = [f"\nwall {wall:.2f} s, {len(CALLS)} round trips"]
    per_host: dict[str, list[float]] = defaultdict(list)
    for host, _, seconds, _ in CALLS:
        per_host[host].append(seconds)
    for host, times in sorted(per_host.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"  {host:12} {len(times):4} round trips, {sum(times):6.2f} s in them")
    lines.append("slowest:")
    for host, started, seconds, command in sorted(CALLS, key=lambda c: -c[2])[:25]:
        lines.append(f"  {seconds:5.2f} s  at {started:5.2f}  {host:11} {command}")
    return "\n".join(lines)


def main() -> None:
    from stackwright.cli import app

    _install()
    start = time.monotonic()
    try:
        app(sys.argv[1:], standalone_mode=False)
    except SystemExit:
        pass
    finally:
        print(report(time.monotonic() - start), file=sys.stderr)


if __name__ == "__main__":
    main()
