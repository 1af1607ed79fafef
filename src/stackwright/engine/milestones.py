"""Cross-host ordering inside one run: a host waits for another host's milestone.

Hosts still converge in parallel; only the step that needs another host's service
(nova-compute needs nova-conductor) waits for it, bounded.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


class Milestones:
    def __init__(self, hosts_in_run: set[str]) -> None:
        from gevent.event import Event

        self.hosts_in_run = hosts_in_run
        self._events: defaultdict[tuple[str, str], Any] = defaultdict(Event)
        self._reached: set[tuple[str, str]] = set()
        self._finished: set[str] = set()

    def reach(self, host: str, name: str) -> None:
        self._reached.add((host, name))
        self._events[(host, name)].set()

    def finish(self, host: str) -> None:
        """The host stopped (done or failed): wake whoever waits on a milestone it will never reach."""
        self._finished.add(host)
        for (owner, _), event in list(self._events.items()):
            if owner == host:
                event.set()

    def wait(self, host: str, name: str, timeout_s: float) -> str | None:
        """None when reached (or `host` is not in this run); else why not."""
        if host not in self.hosts_in_run or (host, name) in self._reached:
            return None
        if host in self._finished:
            return f"{host} stopped before reaching '{name}'"
        self._events[(host, name)].wait(timeout=timeout_s)
        if (host, name) in self._reached:
            return None
        if host in self._finished:
            return f"{host} stopped before reaching '{name}'"
        return f"{host} did not reach '{name}' within {timeout_s:g} s"
