"""Converge hosts: each host's steps in order, hosts in parallel, cross-host steps when ready.

A host holds `/run/stackwright.lock` while it is being changed; a second apply is refused
with the holder's name, and a lock whose holder process is gone is cleared. A failed step
stops that host only; the others go on.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stackwright.engine import apt, facts
from stackwright.engine.hostrun import HostRun, Outcome
from stackwright.engine.milestones import Milestones
from stackwright.engine.ops import run_step, take_snapshot
from stackwright.engine.remote import LOST, LOST_HINT, STATE_DIR, Remote, RemoteError, Result
from stackwright.engine.stop import StopRequest
from stackwright.planview import step_summary
from stackwright.polling import Deadline, poll
from stackwright.secrets import Masker
from stackwright.steps import AwaitHost, Command, File, HostPlan, Packages, Step, Wait

LOCK = "/run/stackwright.lock"
APT_FRESH_SECONDS = 3600
APT_STAMP = f"{STATE_DIR}/apt-updated"


@dataclass
class HostReport:
    host: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: RemoteError | None = None
    phases: dict[str, float] = field(default_factory=dict)
    reboot_required: bool = False
    upgraded: list[str] = field(default_factory=list)  # `name version` the full-upgrade set up
    # when this host's own converge began and ended (epoch seconds): `apply --parallel` shows in them
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def changed(self) -> int:
        return sum(1 for o in self.outcomes if o.changed)

    @property
    def unchanged(self) -> int:
        return sum(1 for o in self.outcomes if not o.changed)

    @property
    def restarted(self) -> list[str]:
        return [name for o in self.outcomes for name in o.restarted]

    @property
    def ok(self) -> bool:
        return self.error is None


Progress = Callable[[str, str, Outcome | None], None]  # (host, step summary, outcome when done)


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    upgrade: bool = True
    allow_reboot: bool = False
    known_secrets: frozenset[str] = frozenset()  # to recognise old values in secret files on hosts
    parallel: int = 0  # hosts converging at once (`apply --parallel N`); 0: every host


def lock_holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}"


def acquire_lock(remote: Remote) -> None:
    """Create the lock with noclobber; clear it only if its holder (on this machine) is gone."""
    script = f"""set -C
if ( echo {shlex.quote(lock_holder())} > {LOCK} ) 2>/dev/null; then echo acquired; else cat {LOCK}; fi
"""
    for _ in range(2):  # a second try only after clearing a stale lock
        result = remote.run("sh -s", stdin=script)
        if result.stdout.startswith("acquired"):
            return
        holder = result.stdout.strip()
        if not _holder_is_gone(holder):
            break
        remote.run(f"rm -f {LOCK}")
    raise RemoteError(
        remote.name,
        "lock",
        Result(1, "", f"another apply holds {LOCK}: {holder}"),
        "wait for it to finish; if that run is dead on another machine, remove the lock on the host",
    )


def _holder_is_gone(holder: str) -> bool:
    parts = holder.split()
    if len(parts) < 3 or parts[1] != "pid" or parts[0] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def upgrade_summary(upgraded: list[str], shown: int = 6) -> str:
    more = f" and {len(upgraded) - shown} more" if len(upgraded) > shown else ""
    return f"upgraded {len(upgraded)} packages: {', '.join(upgraded[:shown])}{more}"


def release_lock(remote: Remote) -> None:
    remote.run(f"grep -qF {shlex.quote(f'pid {os.getpid()} ')} {LOCK} && rm -f {LOCK}; true")


def prepare_node(remote: Remote, plan: HostPlan, options: Options, report: HostReport) -> None:
    """The guide's first section: apt update when the package lists are older than
    APT_FRESH_SECONDS (like Ansible's cache_valid_time) or packages are missing; full-upgrade
    (unless --no-upgrade) whenever packages are upgradable; then, if the host says it needs a
    reboot, reboot it (--allow-reboot) or report that it needs one."""
    if options.dry_run:
        return
    state = _node_state(remote, plan, options)  # one round trip for all of it
    if state["interrupted"]:
        apt.repair(remote)
        report.outcomes.append(Outcome(_REPAIR, True, "configured what an interrupted run left unpacked"))
        state = _node_state(remote, plan, options)
    missing = set(plan.packages()) - state["installed"]
    stale, upgradable = state["lists"]
    if missing or stale:
        apt.update(remote, APT_STAMP)
    # Fresh lists from an earlier run (an `apply --no-upgrade`, a new package) must not skip the
    # upgrade: it runs whenever apt has something to upgrade.
    report.reboot_required = state["reboot"]
    if options.upgrade and (stale or upgradable):
        report.upgraded = apt.full_upgrade(remote)
        if report.upgraded:
            report.outcomes.append(Outcome(_PREP, True, upgrade_summary(report.upgraded)))
        report.reboot_required = facts.read(remote, apt.REBOOT_REQUIRED)
    if report.reboot_required and options.allow_reboot:
        reboot(remote)
        report.reboot_required = False
        report.outcomes.append(Outcome(_REBOOT, True, "rebooted (the host required it)"))


def _node_state(remote: Remote, plan: HostPlan, options: Options) -> dict[str, Any]:
    """Whether dpkg was interrupted, the plan's packages installed, the package lists' state,
    and whether the host asks for a reboot."""
    return facts.read_together(
        remote,
        {
            "interrupted": apt.needs_repair_query(),
            "installed": facts.packages_query(list(plan.packages())),
            "lists": apt.list_state_query(APT_STAMP, APT_FRESH_SECONDS, count_upgradable=options.upgrade),
            "reboot": apt.REBOOT_REQUIRED,
        },
    )


def reboot(remote: Remote, within_s: float = 300.0) -> None:
    """Reboot (the upgrade asked for it, e.g. a new kernel) and wait, bounded, for SSH to return."""
    boot_id = remote.check("cat /proc/sys/kernel/random/boot_id").stdout.strip()
    remote.check("systemd-run --on-active=1 --quiet systemctl reboot", timeout=30)
    deadline = Deadline(within_s)

    def rebooted() -> bool:
        # Until the host goes down, a reconnect may still reach the old boot (or lose it mid-command).
        if not remote.reconnect(deadline.remaining()):
            return False
        now = remote.run("cat /proc/sys/kernel/random/boot_id")
        return now.ok and now.stdout.strip() not in ("", boot_id)

    if poll(rebooted, within_s=deadline, every_s=0):
        return
    raise RemoteError(
        remote.name,
        "reboot",
        Result(1, "", f"the host did not come back rebooted within {within_s:.0f} s"),
        "check the host's console",
    )


_PREP = Command("node preparation", ("apt-get", "full-upgrade"))
_REBOOT = Command("reboot", ("systemctl", "reboot"))
_REPAIR = Command("repair dpkg", ("dpkg", "--configure", "-a"))
_RESUME = "run the same apply again to finish: it continues from here"
_NO_MASK = Masker(())  # summaries name paths and commands; argv never holds a password


def converge_host(
    remote: Remote,
    plan: HostPlan,
    options: Options,
    progress: Progress,
    steps: Iterable[Step] | None = None,
    report: HostReport | None = None,
    milestones: Milestones | None = None,
    stop: StopRequest | None = None,
) -> HostReport:
    report = report or HostReport(plan.host)
    run = HostRun(
        remote=remote,
        plan=plan,
        dry_run=options.dry_run,
        milestones=milestones,
        known_secrets=options.known_secrets,
    )
    locked = False
    try:
        if not options.dry_run:
            acquire_lock(remote)
            locked = True
        if steps is None:
            report.started_at = time.time()
            apt_setup, steps = split_preparation(plan.steps)
            _run_steps(run, apt_setup, report, options, progress, stop)
            start = time.monotonic()
            progress(plan.host, "node preparation", None)
            prepare_node(remote, plan, options, report)
            report.phases["prepare"] = time.monotonic() - start
        _run_steps(run, list(steps), report, options, progress, stop, snapshot=True)
    except RemoteError as exc:
        if remote.lost:
            # whatever the step made of it (a wait "not ready", a short reply), the cause is this
            exc.result, exc.hint = Result(LOST, exc.result.stdout, remote.lost), LOST_HINT
        report.error = exc
    except Exception:
        if not remote.lost:
            raise
        report.error = RemoteError(plan.host, "converge", Result(LOST, "", remote.lost), LOST_HINT)
    finally:
        if milestones is not None:
            milestones.finish(plan.host)
        if locked and not remote.lost:
            release_lock(remote)  # a lost connection leaves it to the next run (its holder is gone)
        if report.started_at is not None and report.finished_at is None:
            report.finished_at = time.time()
    return report


def split_preparation(steps: Iterable[Step]) -> tuple[list[Step], list[Step]]:
    """(the steps before the host's first Packages step, the rest): the first set up apt and dpkg
    themselves (the package cache, dpkg's path excludes) and run before node preparation's apt."""
    steps = list(steps)
    first = next((i for i, step in enumerate(steps) if isinstance(step, Packages)), 0)
    return steps[:first], steps[first:]


def _run_steps(
    run: HostRun,
    steps: list[Step],
    report: HostReport,
    options: Options,
    progress: Progress,
    stop: StopRequest | None,
    *,
    snapshot: bool = False,
) -> None:
    """With `snapshot`, the facts of all the steps are read first in one round trip (ops.py,
    `take_snapshot`), again after each wait that ran (another host worked meanwhile), and each
    step uses them until one step acts on the host; from then on each step reads its own."""
    host = run.plan.host
    groups = _file_groups(steps)
    if snapshot and steps:
        run.snapshot = take_snapshot(run, steps)
    for index, step in enumerate(steps):
        if index in groups:
            if run.snapshot is not None:
                run.file_facts.update({path: run.snapshot.files[path] for path in groups[index]})
            else:
                run.file_facts.update(facts.files(run.remote, groups[index]))
        summary = step_summary(step, _NO_MASK)
        if stop:
            raise RemoteError(
                host, summary, Result(130, "", f"stopped by {stop.reason} before this step"), _RESUME
            )
        progress(host, summary, None)
        if _wait_deferrable(step, report, options):
            assert isinstance(step, Wait)
            run.deferred_waits.append(step)
            outcome = Outcome(step, False, DEFERRED)
            report.outcomes.append(outcome)
            progress(host, summary, outcome)
            continue
        try:
            outcome = run_step(run, step)
        except RemoteError:
            if stop and isinstance(step, AwaitHost):
                # The awaited host stopped for the signal, not because it failed.
                stopped = Result(130, "", f"stopped by {stop.reason} before this step")
                raise RemoteError(host, summary, stopped, _RESUME) from None
            raise
        report.outcomes.append(outcome)
        report.phases[step.kind] = report.phases.get(step.kind, 0.0) + outcome.seconds
        if outcome.changed and not options.dry_run:
            run.snapshot = None
        elif isinstance(step, AwaitHost | Wait) and run.snapshot is not None and not options.dry_run:
            # Another host worked meanwhile (a deferred wait never gets here): read the facts
            # again, once, for what is left. A guard asked before a compute node registered
            # ("no registered node lacks its cell mapping") is answered differently after.
            run.snapshot = take_snapshot(run, steps[index + 1 :])
        progress(host, summary, outcome)


DEFERRED = "deferred: runs before a command that has to act (nothing on this host changed yet)"


def _wait_deferrable(step: Step, report: HostReport, options: Options) -> bool:
    """A readiness wait on this host's own services guards what this run (re)started. While nothing
    on the host has changed — no package, file, unit or upgrade — every service is as the Service
    steps found it, running, and the wait is put off until a command has to act (`ops.command`
    runs it then and asks the command's guard again): a no-op re-apply spends no round trip on it.
    Waits about other hosts (a compute node's registration) always run."""
    return (
        isinstance(step, Wait)
        and step.about_host is None
        and not options.dry_run
        and not any(o.changed for o in report.outcomes)
    )


def _file_groups(steps: list[Step]) -> dict[int, list[str]]:
    """{index of the first File of a run of consecutive Files: their paths}.

    Nothing else runs between consecutive File steps, so their facts are read in one
    round trip just before the first of them (not earlier: a package may write them).
    """
    groups: dict[int, list[str]] = {}
    start: int | None = None
    for index, step in enumerate(steps):
        if isinstance(step, File):
            if start is None:
                start = index
                groups[start] = []
            groups[start].append(step.path)
        else:
            start = None
    return groups
