"""Where a benchmark's CPU time goes: the whole machine's busy share, and CPU-seconds per lab host.

`CpuSampler` reads /proc/stat once a second (how busy the machine's CPUs are). `HostCpu` charges
CPU-seconds to each lab host from the host's own cgroup (lab/cgroups.py: each host runs in a
cgroup named after it), reading cgroup v2's `cpu.stat` at the start and at the end: the kernel
accounts every process of the host there, short-lived and exited ones included. (The first version
summed utime + cutime over a scan of /proc, which is not atomic: a process reaped by a parent
already read during the scan was counted twice — 168 CPU-s for a node that used 92.) The engine's
own CPU (stackwright and its ssh clients) is `resource.getrusage(RUSAGE_CHILDREN)` around the run.
"""

from __future__ import annotations

import resource
import statistics
import threading
import time
from collections import defaultdict

from stackwright.lab.cgroups import host_cgroups
from stackwright.lab.layout import STATE_ROOT, cgroup_name
from stackwright.polling import poll


class CpuSampler:
    """The machine's CPU use from /proc/stat, once a second, in a thread."""

    def __init__(self) -> None:
        self.busy: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _read() -> list[int]:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]

    def _loop(self) -> None:
        last = self._read()
        while not self._stop.wait(1.0):
            now = self._read()
            delta = [b - a for a, b in zip(last, now, strict=True)]
            last = now
            self.busy.append(100.0 * (sum(delta) - delta[3] - delta[4]) / (sum(delta) or 1))

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> str:
        if not self.busy:
            return "no samples"
        saturated = sum(1 for b in self.busy if b >= 90) / len(self.busy)
        return f"CPU busy {statistics.mean(self.busy):.0f}% avg, {saturated:.0%} of seconds ≥ 90%"


def _host_usage() -> dict[str, float]:
    """CPU-seconds each lab host has used since it started: its own cgroup's usage (cgroup v2
    `cpu.stat`, usage_usec), which holds every process of the host, exited ones included."""
    usage: dict[str, float] = defaultdict(float)
    for host_dir in STATE_ROOT.glob("*/hosts/*"):
        for path in host_cgroups(cgroup_name(host_dir)):
            try:
                stat = (path / "cpu.stat").read_text()
            except OSError:  # not running, or a v1 hierarchy (no cpu.stat): the v2 one has it
                continue
            fields = dict(line.split() for line in stat.splitlines() if len(line.split()) == 2)
            usage[host_dir.name] += int(fields.get("usage_usec", 0)) / 1e6
    return usage


SETTLED_SHARE = 0.15  # of one CPU, all lab hosts together; a converged, idle 7-host lab uses ~0.05


def settle(within_s: float = 180.0, window_s: float = 5.0) -> tuple[float, float]:
    """Wait until the lab hosts together use at most SETTLED_SHARE of one CPU over `window_s`:
    services still starting after a converge (a network node's agents) would otherwise compete
    with the next measured run, and a host's CPU-seconds grow with contention. Returns (seconds
    waited, the last window's share); the caller records both, settled or not."""
    started = time.monotonic()

    def window() -> float:
        before = sum(_host_usage().values())
        time.sleep(window_s)
        return (sum(_host_usage().values()) - before) / window_s

    share = poll(window, within_s=within_s, every_s=0.0, done=lambda used: used <= SETTLED_SHARE)
    return time.monotonic() - started, share


class HostCpu:
    """CPU-seconds per lab host (and for the engine) between `__enter__` and `__exit__`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.engine = 0.0

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> HostCpu:
        self._start = _host_usage()
        self._engine_start = self._children()
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine = self._children() - self._engine_start
        end = _host_usage()
        self.seconds = {name: used - self._start.get(name, 0.0) for name, used in end.items()}

    def of(self, hosts: list[str]) -> list[float]:
        return [self.seconds.get(h, 0.0) for h in hosts]

    def summary(self, hosts: list[str], others: list[str]) -> str:
        """ "CPU-s: pc2 150, pc3 148; pctl 20, pnet 3; other lab hosts 12; stackwright + ssh 2.1"."""
        own = ", ".join(f"{h} {_fmt(self.seconds.get(h, 0.0))}" for h in hosts)
        rest = ", ".join(f"{h} {_fmt(self.seconds.get(h, 0.0))}" for h in others)
        idle = sum(s for h, s in self.seconds.items() if h not in hosts and h not in others)
        return f"CPU-s: {own}; {rest}; other lab hosts {_fmt(idle)}; stackwright + ssh {_fmt(self.engine)}"


def _fmt(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"
