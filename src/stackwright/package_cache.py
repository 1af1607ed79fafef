"""What the fleet's package cache served: apt-cacher-ng's transfer log, summed on the cache node.

Each transfer is one line `epoch|I|bytes|client|file` (I: bytes fetched from the mirror for that
client's request) or `epoch|O|bytes|client|file` (O: bytes sent to the client). The sum runs on
the host (awk: the log grows with the fleet) and only the totals cross the connection.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from stackwright.checks.verify import VerifyLine
from stackwright.inventory import LoadedInventory
from stackwright.releases.modern.apt_node import CACHE_LOG
from stackwright.yamlsource import UserError

SUMMARY_SCRIPT = f"""echo "state $(systemctl is-active apt-cacher-ng 2>/dev/null)"
awk -F'|' '
  NR == 1 {{ print "since", $1 }}
  $2 == "O" {{ served += $3; files++ }}
  $2 == "I" {{ fetched += $3; by[$4] += $3 }}
  END {{ print "served", files + 0, served + 0; print "fetched", fetched + 0;
        for (c in by) print "client", c, by[c] }}' {CACHE_LOG} 2>/dev/null
"""
_LINE = re.compile(r"(state|since|served|fetched|client) (\S+)(?: (\d+))?")


@dataclass(frozen=True)
class CacheStats:
    active: bool
    since: int | None = None  # epoch of the log's first line
    files_served: int = 0
    bytes_served: int = 0
    bytes_fetched: int = 0  # from the mirror
    fetched_for: dict[str, int] = field(default_factory=dict)  # client address: bytes fetched for it

    @property
    def hit_rate(self) -> float | None:
        """Share of the bytes served that came from the cache, not the mirror."""
        if not self.bytes_served:
            return None
        return max(0.0, 1.0 - self.bytes_fetched / self.bytes_served)


def parse_summary(stdout: str) -> CacheStats:
    active = False
    since: int | None = None
    files = served = fetched = 0
    fetched_for: dict[str, int] = {}
    for line in stdout.splitlines():
        match = _LINE.fullmatch(line.strip())
        if not match:
            continue
        key, first, second = match.groups()
        if key == "state":
            active = first == "active"
        elif key == "since" and first.isdigit():
            since = int(first)
        elif key == "served" and first.isdigit() and second:
            files, served = int(first), int(second)
        elif key == "fetched" and first.isdigit():
            fetched = int(first)
        elif key == "client" and second:
            fetched_for[first] = int(second)
    return CacheStats(active, since, files, served, fetched, fetched_for)


def read_stats(loaded: LoadedInventory) -> CacheStats:
    """The cache node's summary over SSH (host keys as apply trusts them); UserError when the node
    cannot be reached."""
    from stackwright.engine.hostkeys import HostTrust
    from stackwright.engine.remote import connect

    host = loaded.model.package_cache_host
    assert host is not None
    remote = connect(loaded.model, [host], HostTrust.beside(loaded.path))[host]
    return parse_summary(remote.run(SUMMARY_SCRIPT, timeout=60).stdout)


def check(loaded: LoadedInventory) -> tuple[VerifyLine, CacheStats | None]:
    """verify's line for the cache node (a failing one when it cannot be reached) and its figures."""
    host = loaded.model.package_cache_host
    assert host is not None
    try:
        stats = read_stats(loaded)
    except UserError as exc:
        return verify_line(host, None, str(exc)), None
    return verify_line(host, stats), stats


def _megabytes(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 1e6 else f"{count / 1e3:,.0f} kB"


def verify_line(host: str, stats: CacheStats | None, error: str | None = None) -> VerifyLine:
    ident = f"package-cache:{host}"
    fix = f"on {host}: `systemctl status apt-cacher-ng`, `journalctl -u apt-cacher-ng`; apply starts it"
    if stats is None:
        return VerifyLine(ident, False, f"package cache on {host}: cannot read its log: {error}", fix)
    if not stats.active:
        return VerifyLine(ident, False, f"package cache on {host}: apt-cacher-ng is not running", fix)
    if stats.hit_rate is None:
        return VerifyLine(ident, True, f"package cache on {host} runs; it has served nothing yet")
    since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(stats.since)) if stats.since else "its log began"
    return VerifyLine(
        ident,
        True,
        f"package cache on {host}: {stats.hit_rate:.0%} hit rate — {_megabytes(stats.bytes_served)} in "
        f"{stats.files_served:,} files served, {_megabytes(stats.bytes_fetched)} of it from the mirror "
        f"(since {since} UTC)",
    )
