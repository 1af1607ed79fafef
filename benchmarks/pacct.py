"""Where short-lived processes' CPU-seconds go: the kernel's process accounting (acct(2)) for the
length of a `with` block, summed per command name.

    with ProcessAccounting(Path("/var/lib/stackwright/lab/bench/pacct")) as acct:
        converge_one_compute_node()
    for row in acct.by_command()[:15]: ...

The kernel writes one record (`struct acct_v3`, 64 bytes) for every process that exits while
accounting is on, machine-wide: dpkg and each maintainer script, trigger and helper it runs
(py3compile, mandb, ldconfig, systemctl ...) each get their own line, which neither sampling nor
the per-host totals of cpu.py (children's time folded into their parent) can give. Processes
still running when the block ends (the services a converge starts) write no record: cpu.py's
per-host totals count them. There is no library for reading acct files on PyPI; the format is
the kernel's (include/uapi/linux/acct.h), and Debian's `acct` package (sa, lastcomm) is not needed.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

# struct acct_v3: flag, version, tty, exitcode, uid, gid, pid, ppid, btime, etime (float),
# utime, stime, mem, io, rw, minflt, majflt, swaps (comp_t), comm[16]
RECORD = struct.Struct("=BBHIIIIIIf8H16s")
AHZ = 100  # the units of comp_t times


def comp_t(value: int) -> int:
    """The kernel's 16-bit pseudo-float: 13-bit mantissa, 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * (value >> 13))


@dataclass(frozen=True)
class Record:
    """One exited process: its command name (15 characters at most: maintainer scripts show as
    `nova-compute.po`), PIDs (the machine's), and user + system CPU-s."""

    command: str
    pid: int
    ppid: int
    cpu_s: float


@dataclass(frozen=True)
class CommandCpu:
    command: str
    processes: int
    cpu_s: float


class ProcessAccounting:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[Record] = []

    def _acct(self, path: Path | None) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.acct(str(path).encode() if path else None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"acct({path}): {os.strerror(errno)}")

    def __enter__(self) -> ProcessAccounting:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")
        self.path.chmod(0o600)
        self._acct(self.path)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._acct(None)
        data = self.path.read_bytes()
        self.path.unlink()
        for offset in range(0, len(data) - RECORD.size + 1, RECORD.size):
            fields = RECORD.unpack_from(data, offset)
            if fields[1] & 0x7F != 3:
                raise ValueError(f"process accounting record version {fields[1] & 0x7F}, not 3")
            utime, stime = comp_t(fields[10]), comp_t(fields[11])
            command = fields[18].split(b"\0", 1)[0].decode(errors="replace")
            self.records.append(Record(command, fields[6], fields[7], (utime + stime) / AHZ))

    def by_command(self, records: list[Record] | None = None) -> list[CommandCpu]:
        """CPU-s per command name (each process's own, not its children's), largest first."""
        cpu: dict[str, float] = collections.defaultdict(float)
        count: collections.Counter[str] = collections.Counter()
        for record in self.records if records is None else records:
            cpu[record.command] += record.cpu_s
            count[record.command] += 1
        return sorted((CommandCpu(c, count[c], s) for c, s in cpu.items()), key=lambda r: -r.cpu_s)

    def under(self, command: str) -> list[Record]:
        """The processes named `command` and all their descendants (by parent PID, among the
        processes that exited inside the block)."""
        by_pid = {record.pid: record for record in self.records}

        def inside(record: Record) -> bool:
            seen: set[int] = set()
            while record.command != command:
                parent = by_pid.get(record.ppid)
                if parent is None or parent.pid in seen:
                    return False
                seen.add(parent.pid)
                record = parent
            return True

        return [record for record in self.records if inside(record)]

    @property
    def total_s(self) -> float:
        return sum(record.cpu_s for record in self.records)
