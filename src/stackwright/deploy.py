"""apply / plan --live / preflight: connect, check, plan with the hosts' facts, converge.

The engine's I/O lives here and in `engine/`; what to do comes from the pure planner.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from stackwright.checks.preflight import CheckLine, Preflight, preflight_host
from stackwright.context import HostFacts
from stackwright.engine.converge import HostReport, Options, Progress, converge_host
from stackwright.engine.hostkeys import HostTrust
from stackwright.engine.milestones import Milestones
from stackwright.engine.remote import (
    LOST,
    LOST_HINT,
    UNREACHABLE_HINT,
    Remote,
    RemoteError,
    Result,
    connect_reachable,
    with_hint,
)
from stackwright.engine.stop import StopRequest
from stackwright.inventory import Inventory, LoadedInventory, select_hosts
from stackwright.planner import plan_cluster
from stackwright.release_table import DEPLOYABLE
from stackwright.releases.base import Release
from stackwright.releases.registry import get_release
from stackwright.secrets import Passwords
from stackwright.steps import ClusterPlan, File, Service, Step, Wait
from stackwright.yamlsource import UserError


@dataclass
class Session:
    loaded: LoadedInventory
    passwords: Passwords
    release: Release
    hosts: list[str]  # the hosts to converge (--limit)
    remotes: dict[str, Remote] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)  # name -> why (other hosts go on)
    preflights: dict[str, Preflight] = field(default_factory=dict)
    plan: ClusterPlan | None = None


def applicable_release(loaded: LoadedInventory, name: str | None) -> Release:
    release = get_release(name or loaded.model.release)
    if not release.applicable:
        raise UserError(
            f"release {release.name} is render only ({release.description}) — use `stackwright plan` or "
            f"`render` to read it, and a deployable release ({', '.join(DEPLOYABLE)}) to deploy"
        )
    return release


def open_session(
    loaded: LoadedInventory,
    passwords: Passwords,
    release_name: str | None,
    limit: str | None,
    trust: HostTrust,
) -> Session:
    release = applicable_release(loaded, release_name)
    session = Session(loaded, passwords, release, select_hosts(loaded, limit, "--limit"))
    # Hosts that run cross-host steps for the limited hosts (discover_hosts on the controller).
    planned = plan_cluster(loaded, passwords, release_name=release.name)
    extra = [runner for runner, waits, _ in planned.after if set(waits) & set(session.hosts)]
    names = list(dict.fromkeys([*session.hosts, *extra]))
    session.remotes, session.unreachable = connect_reachable(loaded.model, names, trust)
    for name, why in session.unreachable.items():
        session.preflights[name] = Preflight(name, [CheckLine("ssh", False, with_hint(why))])
    if not session.remotes:
        raise UserError(
            f"cannot reach any host over SSH: {'; '.join(map(with_hint, session.unreachable.values()))}"
        )
    return session


def run_preflight(session: Session) -> None:
    import gevent

    jobs = {
        name: gevent.spawn(preflight_host, session.remotes[name], session.loaded.model, session.release)
        for name in session.remotes
    }
    # unreachable hosts already hold their failing "ssh" line (open_session)
    gevent.joinall(list(jobs.values()))
    for name, job in jobs.items():
        if job.value is None:
            failed = Preflight(name)
            failed.lines.append(
                CheckLine("preflight", False, f"could not run: {job.exception} — check SSH access")
            )
            session.preflights[name] = failed
            continue
        session.preflights[name] = job.value
    facts: Mapping[str, HostFacts] = {n: p.facts for n, p in session.preflights.items()}
    session.plan = plan_cluster(
        session.loaded, session.passwords, release_name=session.release.name, facts=facts
    )


def converge(
    session: Session, options: Options, progress: Progress, stop: StopRequest | None = None
) -> dict[str, HostReport]:
    """Every limited host in parallel; then cross-host steps whose hosts all converged."""
    import gevent
    import gevent.pool

    assert session.plan is not None
    plan = session.plan
    options = replace(
        options, known_secrets=frozenset([*session.passwords.values(), *session.passwords.history])
    )
    runnable = converge_order(
        session.loaded.model.controller_name,
        [name for name in session.hosts if name in session.remotes and session.preflights[name].ok],
        session.loaded.model.package_cache_host,
        tuple(session.loaded.model.names_with("storage")),
    )
    milestones = Milestones(set(runnable))
    # `--parallel N`: a pool's spawn waits for a free slot, so hosts start in converge_order
    spawn = gevent.pool.Pool(options.parallel).spawn if options.parallel else gevent.spawn
    jobs = {
        name: spawn(
            converge_host,
            session.remotes[name],
            plan.hosts[name],
            options,
            progress,
            milestones=milestones,
            stop=stop,
        )
        for name in runnable
    }
    gevent.joinall(list(jobs.values()))
    reports = {name: _value(name, job, session.remotes[name]) for name, job in jobs.items()}
    for name, why in session.unreachable.items():
        if name in session.hosts:
            hint = "" if " — " in why else UNREACHABLE_HINT
            reports[name] = HostReport(name, error=RemoteError(name, "connect", Result(1, "", why), hint))
    for runner, waits_for, steps in plan.after:
        involved = involved_hosts(runner, waits_for, steps, session.hosts)
        if not involved or runner not in session.remotes:
            continue
        if not all(name in reports and reports[name].ok for name in involved):
            continue
        if runner in session.hosts and not (runner in reports and reports[runner].ok):
            continue
        # waits about hosts this run does not converge (`--limit`) have nothing to wait for
        steps = tuple(s for s in steps if not (isinstance(s, Wait) and s.about_host not in (None, *involved)))
        if runner not in session.hosts:
            steps = files_for_deployed(steps, partial(_written_before, session.remotes[runner]))
        else:  # what the runner's own converge just did is not done twice (a peer's firewall)
            steps = tuple(s for s in steps if s not in plan.hosts[runner].steps)
        if not steps:
            continue
        report = reports.get(runner) or HostReport(runner)
        reports[runner] = converge_host(
            session.remotes[runner],
            plan.hosts[runner],
            options,
            progress,
            steps=steps,
            report=report,
            stop=stop,
        )
    return reports


def involved_hosts(
    runner: str, waits_for: tuple[str, ...], steps: tuple[Step, ...], hosts: list[str]
) -> set[str]:
    """The hosts of this run a cross-host step waits for. A controller that is a compute node too
    waits for its own nova-compute to register before discover_hosts: an all-in-one node has no
    other host to wait for, and a controller beside other compute nodes must not be mapped last."""
    involved = set(waits_for) & set(hosts)
    if runner in hosts and any(isinstance(s, Wait) and s.about_host == runner for s in steps):
        involved.add(runner)
    return involved


def converge_order(
    controller: str, hosts: list[str], package_cache: str | None = None, storage: tuple[str, ...] = ()
) -> list[str]:
    """The controller first, then the package cache's node, then the storage nodes: the other hosts'
    steps wait for their services (AwaitHost), so with fewer slots than hosts (`apply --parallel N`)
    none of them may queue behind a host waiting for it. (Some wait for each other — the controller's
    cinder-volume for the storage nodes' pools, a cache elsewhere for the controller — so N has a
    minimum: `check_parallel`.)"""
    first = [controller, package_cache, *storage]
    return sorted(hosts, key=lambda name: first.index(name) if name in first else len(first))


def check_parallel(inventory: Inventory, hosts: list[str], parallel: int) -> None:
    """(`parallel` 0: every host at once, nothing to check.) `--parallel 1` cannot converge a
    controller and a package cache on another node in one run:
    the controller's apt waits for the cache, the cache node's services wait for the controller.
    Nor can fewer slots than the controller and every storage node hold a run with both: the
    controller's cinder-volume waits for the pools, which wait for every OSD of every storage node."""
    storage = [h for h in inventory.names_with("storage") if h in hosts]
    # a cache node apart from the controller runs alongside them (their apt waits for it)
    cache_node = {inventory.package_cache_host} & set(hosts) - {None}
    together = {inventory.controller_name, *storage, *cache_node}
    if parallel and storage and inventory.controller_name in hosts and parallel < len(together):
        raise UserError(
            f"apply --parallel {parallel}: {inventory.controller_name} (the controller) waits for the "
            f"storage nodes ({', '.join(storage)}) to make Ceph's pools — use --parallel {len(together)} "
            f"or more, or --limit the controller or the storage nodes to a run of their own"
        )
    cache = inventory.package_cache_host
    if (
        parallel == 1
        and cache not in (None, inventory.controller_name)
        and {cache, inventory.controller_name} <= set(hosts)
    ):
        raise UserError(
            f"apply --parallel 1: {inventory.controller_name} (the controller) and {cache} (the package "
            "cache) wait for each other — use --parallel 2 or more, or --limit one of them"
        )


def files_for_deployed(steps: tuple[Step, ...], deployed: Callable[[File], bool]) -> tuple[Step, ...]:
    """A host outside this run (`--limit`) gets a cross-host file only where its own apply wrote
    that file before (else it is not deployed yet, or not with that feature: its own apply writes
    the file whole), and a service that reads only dropped files is not restarted. E.g. compute3,
    still bare, when compute2 joins."""
    kept: list[Step] = []
    dropped: set[str] = set()
    for step in steps:
        if isinstance(step, File) and not deployed(step):
            dropped.add(step.path)
        elif isinstance(step, Service) and step.restart_when and set(step.restart_when) <= dropped:
            continue
        else:
            kept.append(step)
    return tuple(kept)


def _written_before(remote: Remote, file: File) -> bool:
    return remote.run(f"test -e {shlex.quote(file.path)}").ok


def _value(name: str, job: object, remote: Remote) -> HostReport:
    value = getattr(job, "value", None)
    if isinstance(value, HostReport):
        return value
    if remote.lost:
        return HostReport(name, error=RemoteError(name, "converge", Result(LOST, "", remote.lost), LOST_HINT))
    error = getattr(job, "exception", None)
    return HostReport(name, error=RemoteError(name, "converge", Result(1, "", repr(error)), "internal error"))


def default_log_dir() -> Path:
    return Path.home() / ".local" / "state" / "stackwright"


def write_run_log(command: str, text: str, log_dir: Path | None = None) -> Path:
    """The run's (masked) output as `<command>-<time>.log`: 0600 in a 0700 directory — masking is
    one wall, and a value it missed must not be readable by other users either."""
    import time

    from stackwright.atomic import atomic_write

    log_dir = log_dir or default_log_dir()
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_dir.chmod(0o700)
    log = log_dir / f"{command}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    atomic_write(log, text, mode=0o600, keep_previous=False)
    return log
