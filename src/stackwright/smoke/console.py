"""Reading the smoke guest's console: its fixed `STACKWRIGHT-SMOKE ...` lines (pure)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, replace
from ipaddress import AddressValueError, IPv4Address

from stackwright.smoke.image import MARK

# Searched anywhere in a line: a kernel message may share the line's start.
_LINE = re.compile(re.escape(MARK) + r" ([a-z0-9-]+)(?: ([^\r\n]*))?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# `disk <dev> <serial> wrote <token> read <token>` (serial and tokens: or none)
_DISK = re.compile(r"(vd[a-z]+) (\S+) wrote (\S+) read (\S+)")
SERIAL_CHARS = 20  # virtio-blk's serial field: Nova passes the volume id, cut to this length


def volume_serial(volume_id: str) -> str:
    """The serial a Cinder volume's disk shows in the guest: "0f1e2d3c-4b5a-6978-8796-a5b4..." →
    "0f1e2d3c-4b5a-6978-8"."""
    return volume_id[:SERIAL_CHARS]


@dataclass(frozen=True)
class DiskCheck:
    """A disk the guest wrote a fresh token to and read back past its page cache, e.g.
    DiskCheck(dev="vdb", serial="0f1e2d3c-4b5a-6978-8", wrote="6a6a02bd-...", read="6a6a02bd-...")."""

    dev: str
    serial: str | None
    wrote: str | None  # None: the write failed
    read: str | None  # None: no marker read back
    attached: bool = True  # False after the guest's `disk-gone <dev>`

    @property
    def ok(self) -> bool:
        return self.wrote is not None and self.read == self.wrote


@dataclass(frozen=True)
class ConsoleReport:
    started: bool = False
    kernel: str | None = None
    no_eth0: bool = False
    dhcp_retries: int = 0
    lease: IPv4Address | None = None
    lease_failed: bool = False
    uuid: str | None = None
    uuid_failed: str | None = None  # the guest's reason, e.g. "after 20 tries: wget: ... 404"
    done: bool = False
    disks: tuple[DiskCheck, ...] = ()  # in the order checked; a disk attached again appears again

    def disk_for(self, volume_id: str) -> DiskCheck | None:
        """The latest check of the disk whose serial is this volume's (`volume_serial`)."""
        serial = volume_serial(volume_id)
        return next((d for d in reversed(self.disks) if d.serial == serial), None)

    def summary(self) -> str:
        """One line on where the guest got to, for a message when a wait gives up."""
        if not self.started:
            return "the guest's init has not started (no STACKWRIGHT-SMOKE line yet)"
        if self.no_eth0:
            return "the guest found no eth0 (virtio-net did not come up)"
        if self.lease is None:
            if self.lease_failed:
                return f"the guest got no DHCP lease after {self.dhcp_retries} rounds"
            return f"the guest is still asking for a DHCP lease ({self.dhcp_retries} rounds without answer)"
        if self.uuid is None:
            if self.uuid_failed is not None:
                return f"lease {self.lease}; metadata failed {self.uuid_failed}"
            return f"lease {self.lease}; still fetching the metadata"
        return f"lease {self.lease}; uuid {self.uuid}" + ("; done" if self.done else "")


def _given(word: str) -> str | None:
    return None if word == "none" else word


def parse_console(text: str) -> ConsoleReport:
    """The guest's progress from its console log; a later line wins (a guest may have rebooted)."""
    report = ConsoleReport()
    for match in _LINE.finditer(text):
        word, rest = match.group(1), (match.group(2) or "").strip()
        first = rest.split()[0] if rest else ""
        if word == "start":
            report = ConsoleReport(started=True, kernel=first or None)
            continue
        report = replace(report, started=True)
        if word == "no-eth0":
            report = replace(report, no_eth0=True)
        elif word == "dhcp-retry":
            report = replace(report, dhcp_retries=int(first) if first.isdigit() else report.dhcp_retries + 1)
        elif word == "lease":
            with contextlib.suppress(AddressValueError):
                report = replace(report, lease=IPv4Address(first), lease_failed=False)
        elif word == "lease-failed":
            report = replace(report, lease_failed=True)
        elif word == "uuid" and _UUID.fullmatch(first):
            report = replace(report, uuid=first.lower(), uuid_failed=None)
        elif word == "uuid-failed":
            report = replace(report, uuid_failed=rest)
        elif word == "done":
            report = replace(report, done=True)
        elif word == "disk" and (disk := _DISK.fullmatch(rest)):
            dev, serial, wrote, read = disk.groups()
            check = DiskCheck(dev, _given(serial), _given(wrote), _given(read))
            report = replace(report, disks=(*report.disks, check))
        elif word == "disk-gone" and first:
            gone = tuple(replace(d, attached=False) if d.dev == first else d for d in report.disks)
            report = replace(report, disks=gone)
    return report
