"""Inventory + release + passwords -> ClusterPlan (pure; no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from stackwright.context import HostFacts, host_contexts
from stackwright.inventory import LoadedInventory
from stackwright.overrides import Overrides
from stackwright.release_table import KNOWN_RELEASES
from stackwright.releases.registry import get_release
from stackwright.render import apply_ini_overrides, ini_sections
from stackwright.steps import ClusterPlan, File, HostPlan, Step
from stackwright.yamlsource import UserError, UserErrors


def plan_cluster(
    loaded: LoadedInventory,
    passwords: Mapping[str, str],
    *,
    release_name: str | None = None,
    facts: Mapping[str, HostFacts] | None = None,
) -> ClusterPlan:
    """Every host's HostPlan; raises UserErrors for overrides that no rendered file reads."""
    inventory = loaded.model
    name = release_name or inventory.release
    if name not in KNOWN_RELEASES:
        raise UserError(f"unknown release '{name}' — known releases: {', '.join(KNOWN_RELEASES)}")
    release = get_release(name)
    hosts: dict[str, HostPlan] = {}
    contexts = host_contexts(inventory, facts, loaded.host_keys, loaded.tls, loaded.migration_certs)
    for host_name, host in contexts.items():
        steps = release.host_steps(host, release, passwords)
        hosts[host_name] = HostPlan(host=host_name, roles=host.roles, release=name, steps=tuple(steps))

    _check_overrides(loaded, hosts)
    hosts = {
        name: _with_overrides(plan, inventory.overrides, inventory.nodes[name].overrides)
        for name, plan in hosts.items()
    }
    after = release.cluster_after(inventory, release, passwords, hosts) if release.cluster_after else ()
    return ClusterPlan(release=name, hosts=hosts, after=after)


def _with_overrides(plan: HostPlan, cluster: Overrides, node: Overrides) -> HostPlan:
    if not cluster and not node:
        return plan
    steps: list[Step] = []
    for step in plan.steps:
        if isinstance(step, File) and step.format == "ini" and (step.path in cluster or step.path in node):
            content = apply_ini_overrides(step.content, cluster.get(step.path, {}))
            content = apply_ini_overrides(content, node.get(step.path, {}))
            step = replace(step, content=content)
        steps.append(step)
    return replace(plan, steps=tuple(steps))


def _check_overrides(loaded: LoadedInventory, hosts: Mapping[str, HostPlan]) -> None:
    """Reject overrides of files or sections no host renders (they would silently do nothing)."""
    inventory = loaded.model
    errors: list[UserError] = []
    scopes: list[tuple[tuple[str | int, ...], Overrides, list[HostPlan]]] = [
        (("overrides",), inventory.overrides, list(hosts.values()))
    ]
    for name, node in inventory.nodes.items():
        scopes.append((("nodes", name, "overrides"), node.overrides, [hosts[name]]))
    for loc, overrides, plans in scopes:
        where = ".".join(str(p) for p in loc)
        for path, sections in overrides.items():
            files = [p.files()[path] for p in plans if path in p.files()]
            if not files:
                ini_files = sorted({f.path for p in plans for f in p.files().values() if f.format == "ini"})
                errors.append(
                    loaded.error(
                        f"{where}: no host here gets {path} — override one of the rendered INI files: "
                        f"{', '.join(ini_files)}",
                        (*loc, path),
                    )
                )
                continue
            if any(f.format != "ini" for f in files):
                errors.append(
                    loaded.error(
                        f"{where}: {path} is not an INI file — overrides apply to INI files only",
                        (*loc, path),
                    )
                )
                continue
            known = {s for f in files for s in ini_sections(f.content)}
            for section in sections:
                if section not in known:
                    errors.append(
                        loaded.error(
                            f"{where}.{path}: section [{section}] is not in the rendered file — "
                            f"use one of: {', '.join(sorted(known))}",
                            (*loc, path, section),
                        )
                    )
    if errors:
        raise UserErrors(errors)
