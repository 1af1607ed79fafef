"""Operations: for each step type, compare the host's facts with the step and act only on a difference.

Each op returns an `Outcome`; with `dry_run` it only says what it would do (that is
`plan --live`). Files are written atomically (content streamed into a temp file
beside the target, mode and owner set, then `mv`), the previous version is kept
under BACKUPS, and every service that reads a changed file gets a pending-restart
marker on the host before the new file is renamed into place, so a run killed between the
write and the restart still restarts it next time.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from stackwright.engine import apt, facts
from stackwright.engine.filewrite import (
    PENDING,
    owner_hint,
    pending_markers,
    secret_changes,
    unified_diff,
    write_script,
)
from stackwright.engine.hostrun import HostRun, Outcome, Snapshot
from stackwright.engine.network_ops import network_config
from stackwright.engine.remote import LOST_HINT, RemoteError, Result
from stackwright.secrets import old_secret_values
from stackwright.steps import (
    AwaitHost,
    Command,
    Directory,
    File,
    Milestone,
    NetworkConfig,
    OvsBridge,
    Packages,
    Service,
    Step,
    Sysctl,
    Wait,
)

SYSCTL_FILE = "/etc/sysctl.d/60-stackwright.conf"
T = TypeVar("T")


def take_snapshot(run: HostRun, steps: list[Step]) -> Snapshot:
    """The facts every later step of these reads, in one round trip (a no-op re-apply of a compute
    node: ~30 round trips fewer)."""
    answers = facts.read_together(
        run.remote,
        {
            "packages": facts.packages_query([n for s in steps if isinstance(s, Packages) for n in s.names]),
            "files": facts.files_query([s.path for s in steps if isinstance(s, File)]),
            "directories": facts.directories_query([s.path for s in steps if isinstance(s, Directory)]),
            "units": facts.units_query([s.name for s in steps if isinstance(s, Service)], PENDING),
            "sysctls": facts.sysctls_query(
                {s.key: _sysctl_line(s) for s in steps if isinstance(s, Sysctl)}, SYSCTL_FILE
            ),
            "bridges": facts.bridges_query([s.name for s in steps if isinstance(s, OvsBridge)]),
            "guards": facts.guards_query([g for s in steps if isinstance(s, Command) for g in _guards(s)]),
        },
    )
    return Snapshot(**answers)


def _fact(
    run: HostRun, known: Callable[[Snapshot], Mapping[str, T]], key: str, query: facts.Query[dict[str, T]]
) -> T:
    """The snapshot's answer for `key` while it holds, else the step's own read (`query`)."""
    if run.snapshot is not None and key in known(run.snapshot):
        return known(run.snapshot)[key]
    return facts.read(run.remote, query)[key]


def run_step(run: HostRun, step: Step) -> Outcome:
    start = time.monotonic()
    op = network_config if isinstance(step, NetworkConfig) else _OPS[type(step)]
    outcome = op(run, step)
    outcome.seconds = time.monotonic() - start
    return outcome


def packages(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, Packages)
    known = run.snapshot
    installed = known.packages if known else facts.installed_packages(run.remote, step.names)
    missing = [n for n in step.names if n not in installed]
    if not missing:
        return Outcome(step, False, f"{len(step.names)} packages installed")
    if run.dry_run:
        return Outcome(step, True, f"would install {len(missing)}: {' '.join(missing)}")
    apt.install(run.remote, missing)
    return Outcome(step, True, f"installed {len(missing)}: {' '.join(missing)}")


def file(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, File)
    fact = (
        run.file_facts.pop(step.path, None)
        if step.path in run.file_facts
        else facts.files(run.remote, [step.path])[step.path]
    )
    want = facts.sha256(step.content)
    content_differs = fact is None or fact.sha256 != want
    meta_differs = fact is not None and (fact.mode, fact.owner, fact.group) != (
        step.mode,
        step.owner,
        step.group,
    )
    if not content_differs and not meta_differs:
        return Outcome(step, False, "unchanged")
    diff, note, seen = "", "", frozenset[str]()
    if content_differs and (step.secret or run.dry_run):
        old = "" if fact is None else run.remote.get(step.path).decode(errors="replace")
        if step.secret:
            # Old values (a rotated or hand-set password) are known to no passwords file: find them
            # in the host's copy so every later output masks them; show only how much changed.
            seen = frozenset(old_secret_values(old, step.content, run.known_secrets))
            note = f" ({secret_changes(old, step.content)})"
        else:
            # only a dry run (plan --live, apply's preview) shows diffs: apply does not fetch the
            # host's copy for one (Debian's default config files run to thousands of lines)
            diff = unified_diff(step.path, old, step.content, new_file=fact is None)
    what = "create" if fact is None else ("update" if content_differs else "fix mode/owner of")
    if run.dry_run:
        return Outcome(step, True, f"would {what}{note}", diff=diff, seen_secrets=seen)
    services = run.services_reading(step.path)
    if content_differs:
        result = run.remote.run("sh -s", stdin=write_script(step, services))
        if not result.ok:
            raise RemoteError(run.remote.name, f"write {step.path}", result, owner_hint(step))
    else:
        script = (
            f"chown {step.owner}:{step.group} {shlex.quote(step.path)} && "
            f"chmod {step.mode:04o} {shlex.quote(step.path)}" + pending_markers(services)
        )
        run.remote.check(script, hint=owner_hint(step))
    run.changed_files.add(step.path)
    done = {"create": "created", "update": "updated"}.get(what, "fixed mode/owner")
    return Outcome(step, True, done + note, diff=diff, seen_secrets=seen)


def directory(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, Directory)
    path = shlex.quote(step.path)
    current = _fact(run, lambda snap: snap.directories, step.path, facts.directories_query([step.path]))
    want = (f"{step.mode:o}", step.owner, step.group)
    if current == want:
        return Outcome(step, False, "unchanged")
    if run.dry_run:
        return Outcome(step, True, "would create" if not current else f"would fix {' '.join(current)}")
    run.remote.check(
        f"mkdir -p {path} && chown {step.owner}:{step.group} {path} && chmod {step.mode:04o} {path}",
        hint=owner_hint(File(step.path, "", owner=step.owner, group=step.group)),
    )
    return Outcome(step, True, "created" if not current else f"fixed (was {' '.join(current)})")


def sysctl(run: HostRun, step: Step) -> Outcome:
    """Live value via `sysctl -w`, persisted as one line in SYSCTL_FILE (read at boot)."""
    assert isinstance(step, Sysctl)
    line = _sysctl_line(step)
    fact = _fact(run, lambda snap: snap.sysctls, step.key, facts.sysctls_query({step.key: line}, SYSCTL_FILE))
    live_ok = fact.live == tuple(step.value.split())
    persisted = fact.persisted
    if live_ok and persisted:
        return Outcome(step, False, "unchanged")
    if run.dry_run:
        return Outcome(
            step, True, "would set" + ("" if live_ok else " live") + ("" if persisted else " and persist")
        )
    key = shlex.quote(step.key)
    script = f"sysctl -q -w {key}={shlex.quote(step.value)}" if not live_ok else "true"
    if not persisted:
        escaped = step.key.replace(".", "\\.")
        script += (
            f" && touch {SYSCTL_FILE} && sed -i '/^{escaped} *=/d' {SYSCTL_FILE}"
            f" && echo {shlex.quote(line)} >> {SYSCTL_FILE}"
        )
    run.remote.check(script, hint="inside containers only net.* keys are writable")
    return Outcome(step, True, "set")


def _sysctl_line(step: Sysctl) -> str:
    return f"{step.key} = {step.value}"


def ovs_bridge(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, OvsBridge)
    name = shlex.quote(step.name)
    fact = _fact(run, lambda snap: snap.bridges, step.name, facts.bridges_query([step.name]))
    exists = fact is not None
    datapath = fact.datapath if fact else ""
    have_ports = fact.ports if fact else frozenset()
    datapath_ok = datapath == step.datapath_type or (step.datapath_type == "system" and datapath == "")
    missing = [p for p in step.ports if p not in have_ports]
    if exists and datapath_ok and not missing:
        return Outcome(step, False, "unchanged")
    if run.dry_run:
        return Outcome(step, True, "would create" if not exists else "would fix datapath/ports")
    command = f"ovs-vsctl --may-exist add-br {name} -- set bridge {name} datapath_type={step.datapath_type}"
    for port in missing:
        command += f" -- --may-exist add-port {name} {shlex.quote(port)}"
    run.remote.check(command, hint="is openvswitch-switch running? (systemctl status openvswitch-switch)")
    return Outcome(step, True, "created" if not exists else "fixed")


def service(run: HostRun, step: Step) -> Outcome:
    """Enable + start; restart only if a file it reads changed (now or in an interrupted run)."""
    assert isinstance(step, Service)
    name = shlex.quote(step.name)
    unit = _fact(run, lambda snap: snap.units, step.name, facts.units_query([step.name], PENDING))
    pending = unit.pending_restart
    actions: list[str] = []
    enabled = unit.enabled in ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
    if step.enabled and not enabled:
        actions.append("enable")
    elif not step.enabled and unit.enabled == "enabled":
        actions.append("disable")
    if step.running and unit.active != "active" and not (unit.active == "inactive" and unit.condition_failed):
        actions.append("start")
    elif step.running and (pending or any(p in run.changed_files for p in step.restart_when)):
        actions.append("restart")
    elif not step.running and unit.active in ("active", "activating"):
        actions.append("stop")
    if not actions:
        if step.running and unit.condition_failed and unit.active == "inactive":
            return Outcome(step, False, "skipped by its unit's conditions on this host (e.g. a container)")
        return Outcome(step, False, "running" if step.running else "stopped")
    if run.dry_run:
        return Outcome(step, True, "would " + " + ".join(actions))
    script = []
    if run.units_need_reload():
        script.append("systemctl daemon-reload")
        run.daemon_reloaded |= run.changed_files
    if "enable" in actions:
        script.append(f"systemctl enable -q {name}")
    if "start" in actions:
        script.append(f"systemctl start {name}")
    if "restart" in actions:
        script.append(f"systemctl restart {name}")
    if "disable" in actions:
        script.append(f"systemctl disable -q {name}")
    if "stop" in actions:
        script.append(f"systemctl stop {name}")
    script.append(f"rm -f {PENDING}/{name}")
    result = run.remote.run(" && ".join(script), timeout=300)
    if not result.ok:
        journal = run.remote.run(f"journalctl -u {name} -n 12 --no-pager -o cat 2>/dev/null").stdout
        raise RemoteError(
            run.remote.name,
            " && ".join(script[:-1]),
            Result(result.rc, result.stdout, journal or result.stderr),
            f"see `journalctl -u {step.name}` on {run.remote.name}",
        )
    restarted = (step.name,) if "restart" in actions else ()
    done = {
        "enable": "enabled",
        "start": "started",
        "restart": "restarted",
        "disable": "disabled",
        "stop": "stopped",
    }
    return Outcome(step, True, " + ".join(done[a] for a in actions), restarted=restarted)


def _marker_check(step: Command) -> str:
    return f"[ -e {shlex.quote(step.once_marker or '')} ]"


def _guards(step: Command) -> list[str]:
    return ([_marker_check(step)] if step.once_marker else []) + ([step.unless] if step.unless else [])


def _probe(run: HostRun, step: Command, check: str, *, fresh: bool = False) -> bool:
    """A guard's answer (the snapshot's while it holds, unless `fresh`); a lost connection is an
    error, not a "no" (a dry run would say "would run")."""
    if not fresh and run.snapshot is not None and check in run.snapshot.guards:
        return run.snapshot.guards[check]
    result = run.remote.run(check, timeout=facts.GUARD_TIMEOUT_S)
    if run.remote.lost:
        raise RemoteError(run.remote.name, step.description, result, LOST_HINT)
    return result.ok


def _not_needed(run: HostRun, step: Command, *, fresh: bool = False) -> bool:
    if not step.unless:
        return False
    return _probe(run, step, step.unless, fresh=fresh)


def command(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, Command)
    if step.once_marker and _probe(run, step, _marker_check(step)):
        return Outcome(step, False, "done before")
    if _not_needed(run, step):
        return Outcome(step, False, "not needed")
    if run.dry_run:
        return Outcome(step, True, "would run")
    if run.deferred_waits:
        waits, run.deferred_waits = run.deferred_waits, []
        for deferred in waits:
            wait(run, deferred)
        if _not_needed(run, step, fresh=True):  # asked again now that what it depends on is ready
            return Outcome(step, False, "not needed")
    script = "set -e\n" + " ".join(map(shlex.quote, step.argv)) + "\n"
    if step.once_marker:
        marker = shlex.quote(step.once_marker)
        script += f'mkdir -p "$(dirname {marker})" && touch {marker}\n'
    result = run.remote.run_durable(script, env=dict(step.env), timeout=1800)
    if not result.ok:
        raise RemoteError(
            run.remote.name, step.description, result, "the command's output above names the cause"
        )
    return Outcome(step, True, "ran")


def wait(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, Wait)
    if run.dry_run:
        return Outcome(step, False, "checked at apply")
    seconds = int(step.timeout_s)
    script = f"""i=0
until sh -c {shlex.quote(step.check)} >/dev/null 2>&1; do
  i=$((i+1)); [ $i -ge {seconds * 4} ] && exit 1; sleep 0.25
done
"""
    result = run.remote.run("sh -s", stdin=script, timeout=seconds + 30)
    if not result.ok:
        raise RemoteError(
            run.remote.name,
            f"wait for {step.description}",
            Result(1, "", f"not ready after {seconds} s"),
            f"check `{step.check}` on the host",
        )
    return Outcome(step, False, "ready")


def milestone(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, Milestone)
    if run.milestones is not None and not run.dry_run:
        run.milestones.reach(run.plan.host, step.name)
    return Outcome(step, False, "reached")


def await_host(run: HostRun, step: Step) -> Outcome:
    assert isinstance(step, AwaitHost)
    if run.milestones is None or run.dry_run:
        return Outcome(step, False, "not waiting (not a cluster run)")
    problem = run.milestones.wait(step.host, step.name, step.timeout_s)
    if problem:
        raise RemoteError(
            run.remote.name,
            f"wait for {step.host}: {step.name}",
            Result(1, "", problem),
            f"fix {step.host} first (see its error above), then apply again",
        )
    return Outcome(step, False, "ready")


_OPS: dict[type, Callable[[HostRun, Step], Outcome]] = {
    Milestone: milestone,
    AwaitHost: await_host,
    Packages: packages,
    File: file,
    Directory: directory,
    Sysctl: sysctl,
    OvsBridge: ovs_bridge,
    Service: service,
    Command: command,
    Wait: wait,
}
