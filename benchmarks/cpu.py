"""Where a benchmark's CPU time goes: the whole machine's busy share, and CPU-seconds per lab host.

`CpuSampler` reads /proc/stat once a second (how busy the machine's CPUs are). `HostCpu` charges
CPU-seconds to each lab host: lab hosts are PID namespaces (systemd-nspawn), started with
`--keep-unit`, so they share this machine's cgroup and cgroup accounting cannot tell them apart.
Instead, at the start and at the end it sums, over every live process of each PID namespace,
utime + stime + cutime + cstime from /proc/PID/stat. A process that exits in between was reaped by
a parent in the same namespace (dpkg by apt, a service by the host's systemd), and the kernel adds
its times, and its reaped children's, to that parent's cutime/cstime, so the end sum holds it;
nothing short-lived is missed, unlike sampling. The engine's own CPU (stackwright and its ssh
clients) is `resource.getrusage(RUSAGE_CHILDREN)` around the run.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
from collections import defaultdict
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
THIS_MACHINE = "this machine"


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


def _namespace_ticks() -> dict[str, int]:
    """Ticks (own + reaped children's) of every live process, summed per lab host name."""
    root_ns = os.readlink("/proc/self/ns/pid")  # the namespace lab hosts are started from
    ticks: dict[str, int] = defaultdict(int)
    names: dict[str, str] = {root_ns: THIS_MACHINE}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = os.readlink(f"{entry.path}/ns/pid")
            # comm may hold spaces and parentheses: the fields start after the last ")"
            fields = Path(f"{entry.path}/stat").read_text().rsplit(")", 1)[1].split()
            if ns not in names:
                names[ns] = Path(f"{entry.path}/root/etc/hostname").read_text().strip() or ns
        except OSError:  # exited while we looked (its parent's cutime has it), or not ours to read
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        ticks[names[ns]] += utime + stime + cutime + cstime
    return ticks


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
        self._start = _namespace_ticks()
        self._engine_start = self._children()
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine = self._children() - self._engine_start
        end = _namespace_ticks()
        self.seconds = {
            name: (ticks - self._start.get(name, 0)) / TICK
            for name, ticks in end.items()
            if name != THIS_MACHINE
        }

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
