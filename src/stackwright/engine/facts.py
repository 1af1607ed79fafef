"""Facts: small shell readers of a host's state, batched into one round trip where possible.

Like pyinfra's facts: a command that reads, and a parser that turns its output into
plain data (shapes in the docstrings). Each reader here takes many keys at once.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from stackwright.engine.remote import Remote, RemoteError, Result

_SEP = "@@stackwright@@"
_PART = "@@stackwright-part@@"
_RETRY = "run the same command again; if this repeats, check the host's shell and coreutils"
T = TypeVar("T")


@dataclass(frozen=True)
class Query(Generic[T]):
    """A fact reader as data: its script and the parser of that script's output, so several
    readers can share one round trip (`read_together`)."""

    what: str
    script: str
    parse: Callable[[Remote, str], T]


def read(remote: Remote, query: Query[T]) -> T:
    return query.parse(remote, _read(remote, query.what, query.script))


def read_together(remote: Remote, queries: Mapping[str, Query[Any]]) -> dict[str, Any]:
    """{key: each query's answer}, all in one round trip."""
    script = "".join(f"echo {_PART}\n{q.script.rstrip(chr(10))}\n" for q in queries.values()) + "true\n"
    what = "read " + ", ".join(q.what.removeprefix("read ") for q in queries.values())
    parts = [part.removeprefix("\n") for part in _read(remote, what, script).split(_PART)[1:]]
    if len(parts) != len(queries):
        short = Result(1, "", f"{len(parts)} parts for {len(queries)} readers")
        raise RemoteError(remote.name, what, short, _RETRY)
    return {key: q.parse(remote, part) for (key, q), part in zip(queries.items(), parts, strict=True)}


def _read(remote: Remote, what: str, script: str) -> str:
    """Run a fact script (sh on stdin); a failure or a lost connection is a RemoteError, never
    an empty answer."""
    result = remote.run("sh -s", stdin=script)
    if not result.ok:
        raise RemoteError(remote.name, what, result, _RETRY)
    return result.stdout


def _answers(remote: Remote, what: str, stdout: str, keys: list[str]) -> list[tuple[str, str]]:
    """Pair each key with its chunk of the reply (one `_SEP` before each); a short or long reply
    is an error naming how many answers came."""
    chunks = stdout.split(_SEP)[1:]
    if len(chunks) != len(keys):
        short = Result(1, stdout[-500:], f"{len(chunks)} answers for {len(keys)} questions")
        raise RemoteError(remote.name, what, short, _RETRY)
    return list(zip(keys, chunks, strict=True))


def _malformed(remote: Remote, what: str, key: str, chunk: str) -> RemoteError:
    return RemoteError(
        remote.name, what, Result(1, chunk[-500:], f"cannot read the answer for {key}"), _RETRY
    )


@dataclass(frozen=True)
class FileFact:
    """{sha256, mode, owner, group} of an existing file; `None` when absent."""

    sha256: str
    mode: int
    owner: str
    group: str


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def files(remote: Remote, paths: Iterable[str]) -> dict[str, FileFact | None]:
    """{"/etc/nova/nova.conf": FileFact(...) or None}: one round trip for all paths."""
    paths = list(paths)
    return read(remote, files_query(paths)) if paths else {}


def files_query(paths: list[str]) -> Query[dict[str, FileFact | None]]:
    """One `stat` and one `sha256sum` for all the paths (a process per path cost ~3 ms of the
    host's CPU each: 0.1 s for a compute node's 31 files)."""
    quoted = " ".join(map(shlex.quote, paths))
    # without paths, sha256sum would read its stdin: the rest of this script
    script = (
        (
            f"stat -L -c '%n|%a %U %G %F' -- {quoted} 2>/dev/null\n"
            f"echo {_SEP}\n"
            f"sha256sum -- {quoted} 2>/dev/null </dev/null\n"
            "true\n"
        )
        if paths
        else f"echo {_SEP}\n"
    )
    return Query("read file facts", script, lambda remote, out: _parse_files(remote, out, paths))


_STAT_LINE = re.compile(r"(?P<path>.+)\|(?P<mode>[0-7]{3,4}) (?P<owner>\S+) (?P<group>\S+) (?P<type>.+)")
_SHA_LINE = re.compile(r"(?P<digest>[0-9a-f]{64})  (?P<path>.+)")


def _parse_files(remote: Remote, stdout: str, paths: list[str]) -> dict[str, FileFact | None]:
    """A path is there when `stat` calls it a regular file (`-L`: as `[ -f ]`, through a link)."""
    what = "read file facts"
    stats, _, digests = stdout.partition(_SEP)
    if _SEP not in stdout:
        raise _malformed(remote, what, ", ".join(paths), stdout)
    wanted = set(paths)
    meta: dict[str, re.Match[str]] = {}
    for line in stats.splitlines():
        match = _STAT_LINE.fullmatch(line)
        if not match or match["path"] not in wanted:
            raise _malformed(remote, what, match["path"] if match else "?", line)
        meta[match["path"]] = match
    sums: dict[str, str] = {}
    for line in digests.strip("\n").splitlines():
        match = _SHA_LINE.fullmatch(line)
        if not match or match["path"] not in wanted:
            raise _malformed(remote, what, match["path"] if match else "?", line)
        sums[match["path"]] = match["digest"]
    facts: dict[str, FileFact | None] = {}
    for path in paths:
        found = meta.get(path)
        if found is None or not found["type"].startswith("regular"):
            facts[path] = None
        elif path not in sums:
            raise _malformed(remote, what, path, stdout)
        else:
            mode = int(found["mode"], 8)
            facts[path] = FileFact(sha256=sums[path], mode=mode, owner=found["owner"], group=found["group"])
    return facts


def installed_packages(remote: Remote, names: Iterable[str]) -> set[str]:
    """The subset of `names` dpkg reports as installed ("ii")."""
    names = list(names)
    return read(remote, packages_query(names)) if names else set()


def packages_query(names: list[str]) -> Query[set[str]]:
    # dpkg-query exits 1 for names it does not know: that is an answer ("not installed")
    script = (
        "dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' "
        + " ".join(map(shlex.quote, names))
        + " 2>/dev/null; true"
        if names
        else "true"
    )

    def parse(remote: Remote, stdout: str) -> set[str]:
        installed = set()
        for line in stdout.splitlines():
            name, _, status = line.partition("\t")
            if status.startswith("ii"):
                installed.add(name.split(":")[0])
        return installed

    return Query("read installed packages", script, parse)


@dataclass(frozen=True)
class UnitFact:
    enabled: str  # enabled | disabled | masked | static | not-found ...
    active: str  # active | inactive | failed | activating ...
    condition_failed: bool = False  # started, but skipped by a Condition*= (e.g. chrony in a container)
    pending_restart: bool = False  # a file it reads changed in a run that did not get to restart it


_UNIT_PROPERTIES = "LoadState,UnitFileState,ActiveState,ConditionResult,ConditionTimestamp"


def units_query(names: list[str], pending_dir: str | None = None) -> Query[dict[str, UnitFact]]:
    """One `systemctl show` for all the units (it answers in their order, a blank line between
    them; is-enabled + is-active + show per unit cost four systemctl runs each)."""
    # without units, systemctl would show the manager's own properties
    script = (
        f"systemctl show -p {_UNIT_PROPERTIES} -- {' '.join(map(shlex.quote, names))} 2>/dev/null\n"
        if names
        else ""
    )
    if pending_dir:
        script += f"echo {_SEP}\nls -1 -- {shlex.quote(pending_dir)} 2>/dev/null\n"
    script += "true\n"
    return Query("read unit states", script, lambda remote, out: _parse_units(remote, out, names))


def _parse_units(remote: Remote, stdout: str, names: list[str]) -> dict[str, UnitFact]:
    what = "read unit states"
    shown, _, pending_list = stdout.partition(_SEP)
    pending = set(pending_list.split())
    blocks = shown.strip("\n").split("\n\n") if shown.strip() else []
    if len(blocks) != len(names):
        short = Result(1, stdout[-500:], f"{len(blocks)} answers for {len(names)} questions")
        raise RemoteError(remote.name, what, short, _RETRY)
    facts = {}
    for name, block in zip(names, blocks, strict=True):
        values = dict(line.partition("=")[::2] for line in block.strip().splitlines())
        if "LoadState" not in values:
            raise _malformed(remote, what, name, block)
        # ConditionResult is "no" before the unit was ever started too: count only evaluated ones.
        skipped = values.get("ConditionResult") == "no" and bool(values.get("ConditionTimestamp"))
        found = values.get("LoadState") not in (None, "", "not-found")
        facts[name] = UnitFact(
            enabled=(values.get("UnitFileState") or "static") if found else "not-found",
            active=values.get("ActiveState") or "unknown",
            condition_failed=skipped,
            pending_restart=name in pending,
        )
    return facts


def existing(remote: Remote, paths: Iterable[str]) -> set[str]:
    """The subset of `paths` that exist."""
    paths = list(paths)
    if not paths:
        return set()
    script = "".join(f"[ -e {shlex.quote(p)} ] && echo {shlex.quote(p)}\n" for p in paths) + "true\n"
    return set(_read(remote, "check which paths exist", script).splitlines()) & set(paths)


def directories_query(paths: list[str]) -> Query[dict[str, tuple[str, ...]]]:
    """{path: (mode in octal, owner, group)}, () for a path that is not there."""
    script = "".join(f"echo {_SEP}; stat -c '%a %U %G' -- {shlex.quote(p)} 2>/dev/null\n" for p in paths)
    script += "true\n"  # a missing path is an answer, not a failed read

    def parse(remote: Remote, stdout: str) -> dict[str, tuple[str, ...]]:
        return {p: tuple(chunk.split()) for p, chunk in _answers(remote, "read directories", stdout, paths)}

    return Query("read directories", script, parse)


@dataclass(frozen=True)
class SysctlFact:
    live: tuple[str, ...]  # `sysctl -n`'s words; () when the key is not there
    persisted: bool  # the exact line is in the persisted file


def sysctls_query(lines: Mapping[str, str], persisted_in: str) -> Query[dict[str, SysctlFact]]:
    """{key: SysctlFact}; `lines`: {key: the line that persists it}."""
    keys = list(lines)
    script = (
        "".join(
            f"echo {_SEP}; sysctl -n {shlex.quote(k)} 2>/dev/null; "
            f"grep -Fxq {shlex.quote(lines[k])} {shlex.quote(persisted_in)} 2>/dev/null && echo persisted\n"
            for k in keys
        )
        + "true\n"
    )

    def parse(remote: Remote, stdout: str) -> dict[str, SysctlFact]:
        found = {}
        for key, chunk in _answers(remote, "read sysctls", stdout, keys):
            out = chunk.strip("\n").splitlines()
            persisted = bool(out) and out[-1] == "persisted"
            live = out[:-1] if persisted else out
            found[key] = SysctlFact(tuple(live[0].split()) if live else (), persisted)
        return found

    return Query("read sysctls", script, parse)


@dataclass(frozen=True)
class BridgeFact:
    datapath: str  # ovs-vsctl's datapath_type, unquoted ("" is the kernel's)
    ports: frozenset[str]


def bridges_query(names: list[str]) -> Query[dict[str, BridgeFact | None]]:
    """{bridge: BridgeFact, or None when Open vSwitch does not have it (or is not running)}."""
    script = (
        "".join(
            f"echo {_SEP}; b={shlex.quote(n)}; "
            'ovs-vsctl br-exists "$b" 2>/dev/null && ovs-vsctl get bridge "$b" datapath_type '
            '&& ovs-vsctl list-ports "$b"\n'
            for n in names
        )
        + "true\n"
    )

    def parse(remote: Remote, stdout: str) -> dict[str, BridgeFact | None]:
        found: dict[str, BridgeFact | None] = {}
        for name, chunk in _answers(remote, "read Open vSwitch bridges", stdout, names):
            lines = chunk.strip("\n").splitlines()
            found[name] = BridgeFact(lines[0].strip('"'), frozenset(lines[1:])) if lines else None
        return found

    return Query("read Open vSwitch bridges", script, parse)


GUARD_TIMEOUT_S = 120


def guards_query(checks: list[str]) -> Query[dict[str, bool]]:
    """{check: it exited 0}: commands' guards (`unless`, a once-marker's test), each bounded, its
    stdin closed (this script is the shell's stdin) and its output dropped."""
    script = "".join(
        f"echo {_SEP}; timeout {GUARD_TIMEOUT_S} sh -c {shlex.quote(c)} </dev/null >/dev/null 2>&1 "
        "&& echo yes || echo no\n"
        for c in checks
    )

    def parse(remote: Remote, stdout: str) -> dict[str, bool]:
        found = {}
        for check, chunk in _answers(remote, "run guards", stdout, checks):
            if chunk.strip() not in ("yes", "no"):
                raise _malformed(remote, "run guards", check, chunk)
            found[check] = chunk.strip() == "yes"
        return found

    return Query("run guards", script, parse)
