"""Run the doctor: connect, gather (hosts in parallel greenlets, the APIs meanwhile), check, fix."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from stackwright.checks.doctor import CHECKS
from stackwright.checks.doctor.base import CloudData, Context, Fix, HostData, Row
from stackwright.checks.doctor.gather import facts_from_preflight, gather_cloud, host_script, run_host_script
from stackwright.checks.preflight import gather as preflight_gather
from stackwright.context import HostFacts
from stackwright.engine.hostkeys import HostTrust
from stackwright.engine.remote import Remote, connect
from stackwright.inventory import LoadedInventory
from stackwright.planner import plan_cluster


@dataclass
class FixResult:
    fix: Fix
    ok: bool
    output: str = ""


@dataclass
class DoctorReport:
    rows: list[Row]
    seconds: float
    fixes: list[FixResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(row.failed for row in self.rows)


def run_checks(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for spec in CHECKS.values():
        try:
            rows += [r for r in spec.func(ctx) if r.host in ctx.hosts]
        except Exception as exc:  # a check's own bug must not hide the others' results
            rows.append(Row(spec.id, "-", "warn", f"the check itself failed: {type(exc).__name__}: {exc}"))
    for host in ctx.hosts:
        data = ctx.data.get(host)
        if data is not None and data.error:
            rows.insert(0, Row("reach", host, "fail", data.error, "check SSH access and that the host is up"))
    return rows


def _examine(
    remote: Remote,
    loaded: LoadedInventory,
    passwords: Mapping[str, str],
    release: str,
    data: HostData,
    main_sent: Callable[[], None] = lambda: None,
) -> HostFacts:
    """Both round trips of one host; fills `data`, returns the facts its plan was made with.
    `main_sent` is called as the second (the long one) is sent."""
    values, skew, failure = preflight_gather(remote)
    data.preflight = values
    data.clock_offset = skew if "time" in values else None
    facts = facts_from_preflight(loaded.model, remote.name, values)
    if "time" not in values:
        data.error = f"commands over SSH do not run on {remote.name}: {failure}"
        return facts
    plan = plan_cluster(loaded, passwords, release_name=release, facts={remote.name: facts})
    script = host_script(loaded.model, remote.name, plan.hosts[remote.name])
    main_sent()
    run_host_script(remote, script, data)
    return facts


def connect_each(
    loaded: LoadedInventory, names: list[str], data: dict[str, HostData], trust: HostTrust
) -> dict[str, Remote]:
    """Connect to every host in parallel; one that does not answer is a failing row, not an abort."""
    import gevent

    jobs = {name: gevent.spawn(connect, loaded.model, [name], trust) for name in names}
    gevent.joinall(list(jobs.values()), timeout=60)
    remotes: dict[str, Remote] = {}
    for name, job in jobs.items():
        if isinstance(job.value, dict) and name in job.value:
            remotes[name] = job.value[name]
        else:
            data[name].error = str(job.exception or "SSH connection timed out")[:300]
    return remotes


def run_doctor(
    loaded: LoadedInventory,
    passwords: Mapping[str, str],
    *,
    release: str,
    hosts: list[str],
    trust: HostTrust | None = None,
    remotes: dict[str, Remote] | None = None,
) -> tuple[DoctorReport, dict[str, Remote]]:
    """`trust`: the host keys to connect with (default: known_hosts beside the inventory)."""
    import gevent

    started = time.monotonic()
    inventory = loaded.model
    # The controller is the clock's reference and holds the cell mappings: always examined.
    names = list(dict.fromkeys([*hosts, inventory.controller_name]))
    data = {name: HostData(name) for name in names}
    if remotes is None:
        remotes = connect_each(loaded, names, data, trust or HostTrust.beside(loaded.path))
    from gevent.event import Event

    pending = {name for name in names if name in remotes}
    all_sent = Event()

    def sent(name: str) -> None:
        pending.discard(name)
        if not pending:
            all_sent.set()

    def examine(name: str) -> HostFacts:
        try:
            return _examine(remotes[name], loaded, passwords, release, data[name], partial(sent, name))
        finally:
            sent(name)

    def ask_apis() -> CloudData:
        # Importing openstacksdk holds the hub for ~0.7 s of CPU: done while the hosts run their
        # long scripts, not while their first replies wait to be read.
        all_sent.wait(timeout=10)
        return gather_cloud(loaded, passwords)

    jobs = {name: gevent.spawn(examine, name) for name in pending}
    if not pending:
        all_sent.set()
    cloud_job = gevent.spawn(ask_apis)
    gevent.joinall([*jobs.values(), cloud_job], timeout=600)
    facts: dict[str, HostFacts] = {}
    for name, job in jobs.items():
        if isinstance(job.value, HostFacts):
            facts[name] = job.value
        elif not data[name].error:
            data[name].error = f"could not be examined: {job.exception!r}"[:300]
    plan = plan_cluster(loaded, passwords, release_name=release, facts=facts)
    cloud = (
        cloud_job.value if isinstance(cloud_job.value, CloudData) else CloudData(error="the APIs timed out")
    )
    ctx = Context(inventory, plan, hosts, data, cloud)
    rows = run_checks(ctx)
    return DoctorReport(rows, time.monotonic() - started), remotes


def apply_fixes(rows: list[Row], remotes: dict[str, Remote]) -> list[FixResult]:
    """Run each distinct safe fix of the failing rows: hosts in parallel, in table order on a host."""
    import gevent

    todo: dict[str, list[Fix]] = {}
    for row in rows:
        if row.failed and row.action is not None and row.action not in todo.get(row.action.host, []):
            todo.setdefault(row.action.host, []).append(row.action)

    def run(host: str, fixes: list[Fix]) -> list[FixResult]:
        results = []
        for fix in fixes:
            remote = remotes.get(host)
            if remote is None:
                results.append(FixResult(fix, False, "not connected to this host"))
                continue
            result = remote.run(fix.command, timeout=180)
            results.append(FixResult(fix, result.ok, result.tail(3)))
        return results

    jobs = [gevent.spawn(run, host, fixes) for host, fixes in todo.items()]
    gevent.joinall(jobs, timeout=600)
    done: list[FixResult] = []
    for job in jobs:
        done += job.value or []
    return done
