"""The doctor's building blocks: result rows, safe fixes, the check registry, the gathered data.

A check is one small function `(ctx: Context) -> list[Row]`, registered with `@check("id")`.
Its docstring starts with the symptom it explains, the way an operator sees it (an error
message, a state), then a blank line and how the check decides: `scripts/readme_sections.py`
turns those docstrings into the README's troubleshooting section.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from stackwright.inventory import Inventory
from stackwright.steps import ClusterPlan

Status = Literal["ok", "fail", "warn", "skip"]


@dataclass(frozen=True)
class Fix:
    """A safe repair: one shell command on one host, and what it does in words."""

    host: str
    command: str
    description: str


@dataclass(frozen=True)
class Row:
    id: str
    host: str
    status: Status
    cause: str = ""
    fix: str = ""  # what to do, in words (for every failure)
    action: Fix | None = None  # what `--fix` runs (only for safe fixes)

    @property
    def failed(self) -> bool:
        return self.status == "fail"


@dataclass
class HostData:
    """What one round trip of the doctor's script found on a host (see `gather.py`)."""

    host: str
    sections: dict[str, list[str]] = field(default_factory=dict)
    preflight: dict[str, list[str]] = field(default_factory=dict)
    clock_offset: float | None = None  # host clock minus this machine's, seconds
    error: str = ""  # the host could not be examined

    def lines(self, section: str) -> list[str]:
        return self.sections.get(section, [])

    def values(self, section: str) -> dict[str, list[str]]:
        """`key=value` lines of a section, grouped by key."""
        found: dict[str, list[str]] = {}
        for line in self.lines(section):
            key, sep, value = line.partition("=")
            if sep:
                found.setdefault(key, []).append(value)
        return found

    def value(self, section: str, key: str, default: str = "") -> str:
        return (self.values(section).get(key) or [default])[0]


@dataclass(frozen=True)
class ServiceState:
    """A nova service or neutron agent as the APIs report it."""

    kind: Literal["nova", "agent", "volume"]
    name: str  # binary or agent type
    host: str
    up: bool
    detail: str = ""


@dataclass(frozen=True)
class InstanceState:
    """An instance nova reports MIGRATING or ERROR (the only ones doctor lists)."""

    id: str
    name: str
    host: str
    status: str
    updated_at: str  # ISO 8601, UTC
    fault: str = ""


@dataclass
class CloudData:
    """The APIs' view (openstacksdk); `error` when they could not be asked."""

    services: list[ServiceState] = field(default_factory=list)
    # nova-compute services the operator disabled: host -> the reason nova keeps with it
    disabled: dict[str, str] = field(default_factory=dict)
    instances: list[InstanceState] = field(default_factory=list)  # MIGRATING or ERROR ones
    error: str = ""


@dataclass
class Context:
    inventory: Inventory
    plan: ClusterPlan
    hosts: list[str]  # the hosts examined (--host)
    data: dict[str, HostData]
    cloud: CloudData | None = None

    def examined(self, role: str | None = None) -> list[str]:
        """Examined hosts that answered, optionally only those with `role`."""
        return [
            h
            for h in self.hosts
            if h in self.data
            and not self.data[h].error
            and (role is None or self.inventory.nodes[h].has(role))
        ]


CheckFunc = Callable[[Context], list[Row]]


@dataclass(frozen=True)
class Check:
    id: str
    area: str
    func: CheckFunc

    @property
    def symptom(self) -> str:
        """The docstring's first paragraph: the symptom an operator sees."""
        doc = inspect.getdoc(self.func) or ""
        return " ".join(doc.split("\n\n")[0].split())

    @property
    def explanation(self) -> str:
        doc = inspect.getdoc(self.func) or ""
        parts = doc.split("\n\n", 1)
        return " ".join(parts[1].split()) if len(parts) > 1 else ""


CHECKS: dict[str, Check] = {}


def check(ident: str) -> Callable[[CheckFunc], CheckFunc]:
    """Register a check under `ident` (its area is the module it lives in)."""

    def register(func: CheckFunc) -> CheckFunc:
        if ident in CHECKS:
            raise ValueError(f"doctor check {ident} registered twice")
        area = func.__module__.rsplit(".", 1)[-1]
        CHECKS[ident] = Check(ident, area, func)
        return func

    return register


def ok(ident: str, host: str, note: str = "") -> Row:
    return Row(ident, host, "ok", note)


def tail(lines: list[str], count: int = 3, width: int = 300) -> str:
    """The last `count` lines, each cut to `width`, joined with ' | '."""
    picked = [line.strip()[:width] for line in lines if line.strip()][-count:]
    return " | ".join(picked)
