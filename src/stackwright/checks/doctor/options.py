"""The rendered config against the release's own option list (oslo.config's validator, on the host)."""

from __future__ import annotations

import hashlib
import json
import shlex
from importlib import resources

from stackwright.checks.doctor.base import Context, Row, check, ok
from stackwright.steps import HostPlan

# The files each project's services read with oslo.config (uwsgi .ini files are not oslo.config's).
PROJECT_FILES = {
    "nova": ("/etc/nova/nova.conf", "/etc/nova/nova-compute.conf"),
    "neutron": (
        "/etc/neutron/neutron.conf",
        "/etc/neutron/plugins/ml2/ml2_conf.ini",
        "/etc/neutron/plugins/ml2/openvswitch_agent.ini",
        "/etc/neutron/l3_agent.ini",
        "/etc/neutron/dhcp_agent.ini",
        "/etc/neutron/metadata_agent.ini",
    ),
    "glance": ("/etc/glance/glance-api.conf",),
    "keystone": ("/etc/keystone/keystone.conf",),
    "placement": ("/etc/placement/placement.conf",),
    "cinder": ("/etc/cinder/cinder.conf",),
}


def validated_files(plan: HostPlan) -> dict[str, list[str]]:
    managed = plan.files()
    found = {project: [p for p in paths if p in managed] for project, paths in PROJECT_FILES.items()}
    return {project: paths for project, paths in found.items() if paths}


def options_script(plan: HostPlan) -> str:
    files = validated_files(plan)
    if not files:
        return ""
    script = resources.files("stackwright.checks.doctor").joinpath("optcheck.py").read_text()
    # the script's hash keys the results it keeps on the host: a changed script validates afresh
    version = hashlib.sha256(script.encode()).hexdigest()[:16]
    return (
        "echo '@@sw:options'\n"
        f"timeout 300 python3 - {shlex.quote(json.dumps(files))} {version} "
        "<<'STACKWRIGHT_OPTCHECK' 2>&1 | tail -n 200\n" + script + "\nSTACKWRIGHT_OPTCHECK\n"
    )


def findings(lines: list[str]) -> dict[str, dict[str, list[str]]]:
    """{"/etc/nova/nova.conf": {"E": ["foo/bar not found"], "W": [...], "X": [...]}}."""
    found: dict[str, dict[str, list[str]]] = {}
    for line in lines:
        level, _, rest = line.partition(" ")
        path, _, message = rest.partition(" ")
        if level in ("E", "W", "X", "O") and path.startswith("/"):
            found.setdefault(path, {}).setdefault(level, []).append(message)
    return found


@check("config-options")
def config_options(ctx: Context) -> list[Row]:
    """A service ignores an option you set (a typo, or an option removed in this release: nothing
    is logged, or only `Deprecated: Option ... is deprecated`), or an override never takes effect.

    oslo.config's own validator runs on the host against every nova, neutron, glance, keystone,
    placement and cinder file stackwright renders, with the option data `oslo-config-generator --format
    yaml` produces from the packages installed there (cached under
    /var/cache/stackwright/oslo-config, as is each file's result until the file, the packages or
    the check change): unknown or removed options fail, deprecated ones warn.
    Fix: correct or drop the option (in the inventory's `overrides:` when it came from there)."""
    rows: list[Row] = []
    for host in ctx.examined():
        if host not in ctx.plan.hosts:
            continue
        files = [p for paths in validated_files(ctx.plan.hosts[host]).values() for p in paths]
        if not files:
            continue
        found = findings(ctx.data[host].lines("options"))
        failed = False
        for path in files:
            result = found.get(path, {})
            if result.get("E"):
                failed = True
                rows.append(
                    Row(
                        "config-options",
                        host,
                        "fail",
                        f"{path}: unknown or removed option(s) for this release: "
                        + "; ".join(result["E"][:5]),
                        "fix the option name or drop it (in overrides: if it came from the inventory); "
                        f"`oslo-config-validator` on {host} lists the same",
                    )
                )
            if result.get("X"):
                failed = True
                rows.append(
                    Row("config-options", host, "warn", f"{path}: not validated: {result['X'][0]}", "")
                )
            if result.get("W"):
                failed = True
                rows.append(
                    Row(
                        "config-options",
                        host,
                        "warn",
                        f"{path}: deprecated option(s): " + "; ".join(result["W"][:5]),
                        "move to the option's new name",
                    )
                )
        missing = [p for p in files if "O" not in found.get(p, {}) and "X" not in found.get(p, {})]
        if missing and not failed:
            failed = True
            output = " ".join(ctx.data[host].lines("options"))[-300:] or "no output"
            rows.append(Row("config-options", host, "warn", f"the validator did not run: {output}", ""))
        if not failed:
            rows.append(ok("config-options", host, f"{len(files)} files valid for this release"))
    return rows
