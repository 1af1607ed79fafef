"""Config drift: managed files as the plan renders them with the hosts' facts (as `plan --live`)."""

from __future__ import annotations

from stackwright.checks.doctor.base import Context, Row, check, ok
from stackwright.engine.facts import sha256
from stackwright.steps import File


def drifted(planned: dict[str, File], lines: list[str]) -> list[str]:
    """What differs, one phrase per file: `/etc/nova/nova.conf (content)`, `... (missing)`."""
    found = {}
    for line in lines:
        path, _, rest = line.partition(" ")
        found[path] = rest.split()
    problems = []
    for path, file in sorted(planned.items()):
        fact = found.get(path)
        if fact is None:
            continue  # not read (should not happen)
        if fact == ["MISSING"]:
            problems.append(f"{path} (missing)")
            continue
        mode, owner, group, digest = [*fact, "", "", "", ""][:4]
        what = []
        if digest != sha256(file.content):
            what.append("content")
        if mode != f"{file.mode:o}" or (owner, group) != (file.owner, file.group):
            what.append(f"{mode} {owner}:{group}, not {file.mode:o} {file.owner}:{file.group}")
        if what:
            problems.append(f"{path} ({', '.join(what)})")
    return problems


@check("config-drift")
def config_drift(ctx: Context) -> list[Row]:
    """Something behaves unlike the inventory says (an option you set is ignored, a hand edit made
    on one host) and `stackwright plan --live` shows changes: a managed file drifted from the plan.

    Every file stackwright writes on the host is compared (sha256, mode, owner) with the plan
    rendered with that host's preflight facts. Fix: `stackwright plan FILE --live` shows the diff,
    `stackwright apply` puts the files back (the old version is kept under
    /var/lib/stackwright/backups); put wanted changes into the inventory's `overrides:`."""
    rows: list[Row] = []
    for host in ctx.examined():
        if host not in ctx.plan.hosts:
            continue
        planned = ctx.plan.hosts[host].files()
        problems = drifted(planned, ctx.data[host].values("files").get("file", []))
        if problems:
            rows.append(
                Row(
                    "config-drift",
                    host,
                    "fail",
                    f"{len(problems)} managed file(s) differ from the plan: " + "; ".join(problems),
                    f"see the diff: `stackwright plan FILE --live --host {host}`; restore: "
                    f"`stackwright apply FILE --limit {host}` (or move the change into overrides:)",
                )
            )
        else:
            rows.append(ok("config-drift", host, f"{len(planned)} managed files as planned"))
    return rows
