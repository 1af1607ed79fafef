"""What one host's run knows while it converges (its plan, connection, what changed), and what
each step did (`Outcome`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stackwright.engine import facts
from stackwright.engine.milestones import Milestones
from stackwright.engine.remote import Remote
from stackwright.steps import HostPlan, Step, Wait

UNIT_DIRS = ("/etc/systemd/system/", "/lib/systemd/system/")


@dataclass
class Outcome:
    step: Step
    changed: bool
    detail: str
    seconds: float = 0.0
    diff: str = ""  # never for a secret file: its `detail` counts the changed lines instead
    restarted: tuple[str, ...] = ()
    seen_secrets: frozenset[str] = frozenset()  # old values read from the host: output masks them


@dataclass
class Snapshot:
    """The facts of every package, file, directory, unit, sysctl and bridge the host's steps manage,
    and the answers of its commands' guards, read in one round trip before the first of them. True
    while nothing on the host has changed: the run drops it at the first step that acts
    (converge.py), and the steps read their own facts again."""

    packages: set[str]  # of the Packages steps' names, those installed
    files: dict[str, facts.FileFact | None]
    directories: dict[str, tuple[str, ...]]
    units: dict[str, facts.UnitFact]
    sysctls: dict[str, facts.SysctlFact]
    bridges: dict[str, facts.BridgeFact | None]
    guards: dict[str, bool]  # commands' guards and once-markers' tests: {check: it passed}


@dataclass
class HostRun:
    """What one host's run knows: its plan, its connection, and what changed so far."""

    remote: Remote
    plan: HostPlan
    dry_run: bool = False
    file_facts: dict[str, facts.FileFact | None] = field(default_factory=dict)
    changed_files: set[str] = field(default_factory=set)
    milestones: Milestones | None = None
    daemon_reloaded: set[str] = field(default_factory=set)  # unit files systemd has re-read
    known_secrets: frozenset[str] = frozenset()  # passwords now and before: to find old ones on hosts
    deferred_waits: list[Wait] = field(default_factory=list)  # run before the next command that acts
    snapshot: Snapshot | None = None

    def units_need_reload(self) -> bool:
        return any(p.startswith(UNIT_DIRS) for p in self.changed_files - self.daemon_reloaded)

    def services_reading(self, path: str) -> list[str]:
        return [s.name for s in self.plan.services() if path in s.restart_when]
