"""Facts: small shell readers of a host's state, batched into one round trip where possible.

Like pyinfra's facts: a command that reads, and a parser that turns its output into
plain data (shapes in the docstrings). Each reader here takes many keys at once.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from stackwright.engine.remote import Remote, RemoteError, Result

_SEP = "@@stackwright@@"
_RETRY = "run the same command again; if this repeats, check the host's shell and coreutils"


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
    if not paths:
        return {}
    script = "".join(
        f"echo {_SEP}; p={shlex.quote(p)}; "
        'if [ -f "$p" ]; then stat -c "%a %U %G" "$p"; sha256sum < "$p" | cut -c1-64; '
        "else echo MISSING; fi\n"
        for p in paths
    )
    what = "read file facts"
    facts: dict[str, FileFact | None] = {}
    for path, chunk in _answers(remote, what, _read(remote, what, script), paths):
        lines = chunk.strip().split("\n")
        if lines == ["MISSING"]:
            facts[path] = None
            continue
        fields = lines[0].split() if len(lines) == 2 else []
        digest = lines[1].strip() if len(lines) == 2 else ""
        if len(fields) != 3 or len(digest) != 64 or not fields[0].isdigit():
            raise _malformed(remote, what, path, chunk)
        mode, owner, group = fields
        facts[path] = FileFact(sha256=digest, mode=int(mode, 8), owner=owner, group=group)
    return facts


def installed_packages(remote: Remote, names: Iterable[str]) -> set[str]:
    """The subset of `names` dpkg reports as installed ("ii")."""
    names = list(names)
    if not names:
        return set()
    # dpkg-query exits 1 for names it does not know: that is an answer ("not installed")
    stdout = _read(
        remote,
        "read installed packages",
        "dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' "
        + " ".join(map(shlex.quote, names))
        + " 2>/dev/null; true",
    )
    installed = set()
    for line in stdout.splitlines():
        name, _, status = line.partition("\t")
        if status.startswith("ii"):
            installed.add(name.split(":")[0])
    return installed


@dataclass(frozen=True)
class UnitFact:
    enabled: str  # enabled | disabled | masked | static | not-found ...
    active: str  # active | inactive | failed | activating ...
    condition_failed: bool = False  # started, but skipped by a Condition*= (e.g. chrony in a container)
    pending_restart: bool = False  # a file it reads changed in a run that did not get to restart it


def units(remote: Remote, names: Iterable[str], pending_dir: str | None = None) -> dict[str, UnitFact]:
    """{"nova-compute": UnitFact(enabled="enabled", active="active")} in one round trip.

    With `pending_dir`, also whether a pending-restart marker for the unit is there."""
    names = list(names)
    if not names:
        return {}
    # One `systemctl show` per unit (is-enabled + is-active + show cost four systemctl runs).
    script = "".join(
        f"echo {_SEP}; u={shlex.quote(n)}; "
        "systemctl show -p LoadState,UnitFileState,ActiveState,ConditionResult,ConditionTimestamp "
        '-- "$u" 2>/dev/null; '
        + (f'if [ -e {shlex.quote(pending_dir)}/"$u" ]; then echo pending=yes; fi' if pending_dir else "true")
        + "\n"
        for n in names
    )
    what = "read unit states"
    facts = {}
    for name, chunk in _answers(remote, what, _read(remote, what, script), names):
        values = dict(line.partition("=")[::2] for line in chunk.strip().splitlines())
        if "LoadState" not in values:
            raise _malformed(remote, what, name, chunk)
        # ConditionResult is "no" before the unit was ever started too: count only evaluated ones.
        skipped = values.get("ConditionResult") == "no" and bool(values.get("ConditionTimestamp"))
        found = values.get("LoadState") not in (None, "", "not-found")
        facts[name] = UnitFact(
            enabled=(values.get("UnitFileState") or "static") if found else "not-found",
            active=values.get("ActiveState") or "unknown",
            condition_failed=skipped,
            pending_restart=values.get("pending") == "yes",
        )
    return facts


def existing(remote: Remote, paths: Iterable[str]) -> set[str]:
    """The subset of `paths` that exist."""
    paths = list(paths)
    if not paths:
        return set()
    script = "".join(f"[ -e {shlex.quote(p)} ] && echo {shlex.quote(p)}\n" for p in paths) + "true\n"
    return set(_read(remote, "check which paths exist", script).splitlines()) & set(paths)
