"""The desired state of a host: an ordered list of typed steps (pure data).

A `HostPlan` is what `plan` prints, what `render` writes and what the engine
converges. Steps carry real content; output masks secrets (see `secrets.Masker`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Packages:
    """Debian packages installed without recommends and without starting services."""

    names: tuple[str, ...]
    kind: Literal["packages"] = "packages"


@dataclass(frozen=True)
class File:
    """A whole file written atomically; `secret` marks content that holds passwords."""

    path: str
    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    secret: bool = False
    format: Literal["ini", "text"] = "text"
    kind: Literal["file"] = "file"


@dataclass(frozen=True)
class Directory:
    path: str
    mode: int = 0o755
    owner: str = "root"
    group: str = "root"
    kind: Literal["directory"] = "directory"


@dataclass(frozen=True)
class Sysctl:
    """A kernel parameter set live and persisted under /etc/sysctl.d/."""

    key: str
    value: str
    kind: Literal["sysctl"] = "sysctl"


@dataclass(frozen=True)
class OvsBridge:
    """An Open vSwitch bridge (created with --may-exist) and the ports it must hold."""

    name: str
    datapath_type: Literal["system", "netdev"] = "system"
    ports: tuple[str, ...] = ()
    kind: Literal["ovs_bridge"] = "ovs_bridge"


@dataclass(frozen=True)
class Service:
    """A systemd unit kept enabled and running; restarted when a file it reads changes."""

    name: str
    restart_when: tuple[str, ...] = ()
    enabled: bool = True
    running: bool = True
    kind: Literal["service"] = "service"


@dataclass(frozen=True)
class Command:
    """A one-off command; skipped when `unless` (a shell test on the host) succeeds.

    `secret` marks argv holding passwords (masked in output). `once_marker`, when set,
    is a file the engine creates after success so the command never runs twice.
    Pass passwords through `env` (never argv: argv shows in `ps`).
    """

    description: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    unless: str | None = None
    once_marker: str | None = None
    secret: bool = False
    kind: Literal["command"] = "command"


@dataclass(frozen=True)
class Wait:
    """Block (bounded) until `check` (a shell test on the host) succeeds.

    `about_host`: the wait concerns that host (e.g. "compute2 registered with nova"); a run that
    does not converge that host skips it.
    """

    description: str
    check: str
    timeout_s: float = 60.0
    about_host: str | None = None
    kind: Literal["wait"] = "wait"


@dataclass(frozen=True)
class NetworkConfig:
    """Interface configuration files, applied last and rolled back automatically if the host
    stops answering on `probe_address` afterwards (what `netplan try` does)."""

    files: tuple[File, ...]
    probe_address: str
    kind: Literal["network_config"] = "network_config"


@dataclass(frozen=True)
class Milestone:
    """A point other hosts may wait for (e.g. "nova-conductor started" on the controller)."""

    name: str
    kind: Literal["milestone"] = "milestone"


@dataclass(frozen=True)
class AwaitHost:
    """Wait until `host` passed its milestone `name` in this run (hosts still run in parallel).

    If `host` is not part of the run (`--limit`), it converged before: nothing to wait for.
    """

    host: str
    name: str
    timeout_s: float = 1800.0
    kind: Literal["await_host"] = "await_host"


Step = (
    Packages
    | File
    | Directory
    | Sysctl
    | OvsBridge
    | Service
    | Command
    | Wait
    | NetworkConfig
    | Milestone
    | AwaitHost
)


@dataclass(frozen=True)
class HostPlan:
    """One host's steps, in order. The steps before the first Packages step set up apt and dpkg
    themselves (dpkg's excludes, the package cache's proxy and the wait for it): the engine runs
    them before node preparation's apt update and upgrade."""

    host: str
    roles: tuple[str, ...]
    release: str
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def files(self) -> dict[str, File]:
        files: dict[str, File] = {}
        for step in self.steps:
            if isinstance(step, File):
                files[step.path] = step
            elif isinstance(step, NetworkConfig):
                files.update((f.path, f) for f in step.files)
        return files

    def packages(self) -> tuple[str, ...]:
        names: list[str] = []
        for step in self.steps:
            if isinstance(step, Packages):
                names.extend(n for n in step.names if n not in names)
        return tuple(names)

    def services(self) -> tuple[Service, ...]:
        return tuple(s for s in self.steps if isinstance(s, Service))


# (host that runs them, hosts that must have converged first, the steps)
AfterSteps = tuple[tuple[str, tuple[str, ...], tuple[Step, ...]], ...]


@dataclass(frozen=True)
class ClusterPlan:
    """Every host's plan, plus steps that run on one host after others converged.

    `after` holds (host, waits_for_hosts, steps): e.g. discover_hosts on the
    controller once the compute nodes are up.
    """

    release: str
    hosts: dict[str, HostPlan]
    after: AfterSteps = ()
