"""Interrupt a real `stackwright apply` at chosen steps: kill the process, or cut its SSH connection.

The apply runs with `--verbose`, whose plain progress prints `HOST: STEP …` as each step starts.
When a point's line appears (and, if asked, once the step's process is seen running on the host),
its interruption happens; several points may cut one apply (each host's connection on its own,
one `process` kill last):
- `process`: SIGKILL to the apply (nothing of it can clean up: the worst case);
- `ssh`: the host's sshd process serving the apply's connection to that host is killed, so the
  connection drops in the middle of the step while the apply itself goes on with other hosts.
Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from stackwright.inventory import load_inventory
from stackwright.polling import Deadline, poll
from tests.lab.cli import OUTPUTS, cli_argv
from tests.lab.conftest import SeedLab


@dataclass(frozen=True)
class Point:
    host: str  # the host whose step is interrupted
    step: str  # the start of the step's progress text, e.g. "install "
    how: Literal["process", "ssh"]
    nth: int = 1  # the nth step on that host that matches
    running: str | None = None  # `pgrep -f` pattern: cut only once this runs on the host


@dataclass
class Cut:
    point: Point
    at: str  # the progress line the cut followed
    was_running: str = ""  # the host's process list entry that proved the step was in flight


@dataclass
class Interrupted:
    returncode: int
    stdout: str
    stderr: str
    cut_at: str  # the progress line the (last) cut followed
    was_running: str = ""
    lines: list[str] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)


def _reader(stream: object, sink: list[str], lines: list[str] | None, event: threading.Event) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line)
        if lines is not None:
            lines.append(line)
            event.set()


def _pgrep(lab: SeedLab, host: str, pattern: str, within_s: float) -> str:
    found = poll(
        lambda: lab.exec(
            host, f"pgrep -a -f {pattern!r} | grep -v pgrep | head -n 1", timeout=20
        ).stdout.strip(),
        within_s=within_s,
        every_s=0.2,
    )
    assert found, f"{host}: nothing matching {pattern!r} ran within {within_s:.0f} s"
    return found


def cut_ssh(lab: SeedLab, pid: int, host: str) -> None:
    """Kill the sshd process on `host` that serves process `pid`'s connection to it."""
    address = str(load_inventory(lab.inventory).model.nodes[host].management)
    ours = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dst", f"{address}:22"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ports = [
        line.split()[2].rpartition(":")[2] for line in ours.splitlines() if f"pid={pid}," in line
    ]  # columns: recv-q send-q local peer process
    assert ports, f"apply (pid {pid}) has no SSH connection to {host}: {ours!r}"
    script = (
        f"for port in {' '.join(ports)}; do "
        "ss -Htnp state established sport = :22 dport = :$port | grep -o 'pid=[0-9]*' | cut -d= -f2; "
        "done | sort -u | xargs -r kill -9"
    )
    lab.check(host, script)


def _watch(lab: SeedLab, lines: list[str], point: Point, deadline: Deadline, stop: threading.Event) -> Cut:
    """Wait for the point's nth matching progress line (and its process on the host)."""
    wanted = re.compile(rf"^{re.escape(point.host)}: {re.escape(point.step)}.* …$")
    seen = checked = 0
    while True:
        assert not deadline.passed, f"no step matching {point}"
        ended = stop.is_set()  # read before the last scan: a line printed just before the end counts
        while checked < len(lines):
            line = lines[checked].rstrip("\n")
            checked += 1
            if wanted.match(line):
                seen += 1
                if seen == point.nth:
                    running = _pgrep(lab, point.host, point.running, 120) if point.running else ""
                    return Cut(point, line, running)
        if ended:
            raise AssertionError(f"apply ended before {point}")
        stop.wait(0.2)


def interrupted_apply(lab: SeedLab, args: list[str], *points: Point, within_s: float = 1800) -> Interrupted:
    """Run `apply ARGS` and cut it at each point as it comes (`ssh` cuts first, in any order;
    at most one `process` kill, which ends the run)."""
    assert sum(p.how == "process" for p in points) <= 1 and points
    argv = cli_argv("apply", str(lab.inventory), "--yes", "--json", "--verbose", *args)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    lines: list[str] = []
    event = threading.Event()
    readers = [
        threading.Thread(target=_reader, args=(proc.stdout, out, None, event), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, err, lines, event), daemon=True),
    ]
    for thread in readers:
        thread.start()
    deadline = Deadline(within_s)
    ended = threading.Event()
    cuts: list[Cut] = []
    failures: list[BaseException] = []

    def cut_when_due(point: Point) -> None:
        try:
            cut = _watch(lab, lines, point, deadline, ended)
            if point.how == "process":
                os.kill(proc.pid, signal.SIGKILL)
            else:
                cut_ssh(lab, proc.pid, point.host)
            cuts.append(cut)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    watchers = [threading.Thread(target=cut_when_due, args=(p,), daemon=True) for p in points]
    for thread in watchers:
        thread.start()
    try:
        while proc.poll() is None and not deadline.passed:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for thread in readers:  # every line the run printed, before the watchers are told it ended
            thread.join(timeout=30)
        ended.set()  # a watcher still waiting now fails: its step never came
    for thread in watchers:
        thread.join(timeout=150)
    OUTPUTS.extend(("".join(out), "".join(err)))
    if failures:
        raise AssertionError(f"{failures[0]}:\n{''.join(err)[-3000:]}") from failures[0]
    assert len(cuts) == len(points), f"{len(cuts)} of {len(points)} cuts happened:\n{''.join(err)[-3000:]}"
    last = cuts[-1]
    return Interrupted(proc.returncode, "".join(out), "".join(err), last.at, last.was_running, lines, cuts)
