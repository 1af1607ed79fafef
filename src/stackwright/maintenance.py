"""Node maintenance through nova's API (openstacksdk): drain a compute node (disable its service,
live-migrate every instance away, wait for each to land ACTIVE elsewhere), undrain it, and
evacuate a dead one (fence its compute service with force-down, rebuild its instances elsewhere).

A drain refuses before it changes anything when the other enabled, up compute nodes have no room
for the node's instances (placement's inventories and usages, first fit by memory). A migration
that fails is reported with nova's reason and the instance stays where it was; one that does not
finish in time is aborted, so nothing is left MIGRATING.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openstack.exceptions import BadRequestException, SDKException

from stackwright.polling import poll
from stackwright.yamlsource import UserError

if TYPE_CHECKING:
    from openstack.connection import Connection

DRAIN_REASON = "stackwright drain: maintenance"
EVACUATE_REASON = "stackwright evacuate: host down"
EVACUATE_TIMEOUT_S = 900.0
START_TIMEOUT_S = 300.0
FORCE_UP_WAIT_S = 300.0
MIGRATION_TIMEOUT_S = 900.0
ABORT_TIMEOUT_S = 300.0
_RESOURCES = ("VCPU", "MEMORY_MB", "DISK_GB")


@dataclass
class Moved:
    server_id: str
    name: str
    source: str
    target: str | None = None
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.target not in (None, self.source)


@dataclass
class DrainReport:
    host: str
    moved: list[Moved] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.moved)

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ok": self.ok,
            "instances": [
                {
                    "id": m.server_id,
                    "name": m.name,
                    "from": m.source,
                    "to": m.target,
                    "seconds": round(m.seconds, 1),
                    "error": m.error,
                }
                for m in self.moved
            ],
        }


def compute_service(conn: Connection, host: str) -> Any:
    services = list(conn.compute.services(binary="nova-compute", host=host))
    if not services:
        raise UserError(f"nova has no compute service on {host} — is it a compute node of this cloud?")
    return services[0]


def free_capacity(conn: Connection, hosts: list[str]) -> dict[str, dict[str, float]]:
    """What placement says each host can still take: (total - reserved) * ratio - used."""
    free: dict[str, dict[str, float]] = {}
    for provider in conn.placement.resource_providers():
        if provider.name not in hosts:
            continue
        inventories = conn.placement.get(f"/resource_providers/{provider.id}/inventories").json()
        usages = conn.placement.get(f"/resource_providers/{provider.id}/usages").json()["usages"]
        free[provider.name] = {
            rc: (inv["total"] - inv["reserved"]) * inv["allocation_ratio"] - usages.get(rc, 0)
            for rc, inv in inventories["inventories"].items()
            if rc in _RESOURCES
        }
    return free


def _needs(server: Any) -> dict[str, float]:
    flavor = server.flavor or {}
    return {
        "VCPU": float(flavor.get("vcpus", 0)),
        "MEMORY_MB": float(flavor.get("ram", 0)),
        "DISK_GB": float(flavor.get("disk", 0)),
    }


def unplaceable(servers: list[Any], free: dict[str, dict[str, float]]) -> list[str]:
    """Names of servers no other host has room for (first fit, largest memory first; pure)."""
    room = {host: dict(values) for host, values in free.items()}
    left: list[str] = []
    for server in sorted(servers, key=lambda s: -_needs(s)["MEMORY_MB"]):
        need = _needs(server)
        for values in room.values():
            if all(values.get(rc, 0.0) >= amount for rc, amount in need.items() if amount):
                for rc, amount in need.items():
                    values[rc] = values.get(rc, 0.0) - amount
                break
        else:
            left.append(str(server.name))
    return left


def _require_room(conn: Connection, host: str, servers: list[Any]) -> None:
    """Refuse (before anything changes) when the other enabled, up nodes cannot take `servers`."""
    others = [
        s.host
        for s in conn.compute.services(binary="nova-compute")
        if s.host != host and s.status == "enabled" and s.state == "up" and not s.is_forced_down
    ]
    if servers and not others:
        raise UserError(
            f"no other compute node is enabled and up to take {host}'s instances — add or undrain one"
        )
    if servers:
        left = unplaceable(servers, free_capacity(conn, others))
        if left:
            raise UserError(
                f"no room on {', '.join(others)} for {', '.join(left)} — "
                "free capacity or add a compute node first"
            )


def _instances_with_room(conn: Connection, host: str) -> list[Any]:
    """The node's instances, once the other nodes are known to have room for them."""
    servers = list(conn.compute.servers(all_projects=True, compute_host=host))
    _require_room(conn, host, servers)
    return servers


def _move_each(
    servers: list[Any], host: str, what: str, move: Callable[[Any], Moved], progress: Callable[[str], None]
) -> DrainReport:
    report = DrainReport(host)
    for server in servers:
        progress(f"{server.name}: {what} from {host}")
        report.moved.append(move(server))
    return report


def _until(conn: Connection, server: Any, within_s: float, done: Callable[[Any], bool]) -> Any:
    """The server as nova shows it once `done` holds for it, or when `within_s` has passed."""
    return poll(lambda: conn.compute.get_server(server.id), within_s=within_s, every_s=2, done=done)


def drain(conn: Connection, host: str, progress: Callable[[str], None]) -> DrainReport:
    service = compute_service(conn, host)
    servers = _instances_with_room(conn, host)
    if service.status != "disabled":
        conn.compute.disable_service(service, host, "nova-compute", disabled_reason=DRAIN_REASON)
        progress(f"{host}: nova-compute disabled ({DRAIN_REASON})")
    return _move_each(servers, host, "live migration", lambda s: live_migrate(conn, s, host), progress)


def undrain(conn: Connection, host: str) -> bool:
    """Re-enable the node's compute service and lift an evacuation's force-down; False when there
    was nothing to do."""
    service = compute_service(conn, host)
    changed = False
    if service.is_forced_down:
        _lift_force_down(conn, service, host)
        changed = True
    if service.status != "enabled":
        conn.compute.enable_service(service, host, "nova-compute")
        changed = True
    return changed


def _lift_force_down(conn: Connection, service: Any, host: str) -> None:
    """nova refuses while the evacuations from this node are not cleaned up on it: its
    nova-compute does that as it starts (the instances' old copies removed, the migrations
    `completed`). A node that was just switched back on gets FORCE_UP_WAIT_S for it."""

    def lifted() -> bool:
        try:
            conn.compute.update_service_forced_down(service, host, "nova-compute", forced=False)
        except BadRequestException as exc:
            if "evacuation migration records remain" not in str(exc):
                raise
            return False
        return True

    if not poll(lifted, within_s=FORCE_UP_WAIT_S, every_s=5, done=bool):
        raise UserError(
            f"nova keeps {host} forced down until its nova-compute has started and removed the old "
            f"copies of the evacuated instances (waited {FORCE_UP_WAIT_S:.0f} s) — start the node and "
            "its nova-compute, then run undrain again"
        )


def evacuate(conn: Connection, host: str, progress: Callable[[str], None]) -> DrainReport:
    """Rebuild a dead node's instances elsewhere. The caller has found the host unreachable; here
    its compute service is fenced (disabled, forced down: nova then accepts the evacuation at once
    instead of after service_down_time) and every instance rebuilt by the scheduler's choice."""
    service = compute_service(conn, host)
    servers = _instances_with_room(conn, host)
    # Forced down first: nova then knows the service is down, and disabling it does not make
    # nova-api call the dead node over RPC (to sync its COMPUTE_STATUS_DISABLED trait) and hang
    # until rpc_response_timeout.
    if not service.is_forced_down:
        conn.compute.update_service_forced_down(service, host, "nova-compute", forced=True)
    if service.status != "disabled":
        conn.compute.disable_service(service, host, "nova-compute", disabled_reason=EVACUATE_REASON)
    progress(f"{host}: nova-compute fenced (forced down, disabled)")
    return _move_each(servers, host, "evacuating", lambda s: _evacuate_one(conn, s, host), progress)


def _evacuate_one(conn: Connection, server: Any, source: str) -> Moved:
    moved = Moved(str(server.id), str(server.name), source)
    started = time.monotonic()
    try:
        conn.compute.evacuate_server(server)
    except SDKException as exc:  # refused (e.g. nova still sees the service up): reported per instance
        moved.error = f"nova refused the evacuation: {exc}"
        return moved
    final = _until(
        conn,
        server,
        EVACUATE_TIMEOUT_S,
        lambda s: (s.task_state is None and s.compute_host != source) or s.status == "ERROR",
    )
    moved.seconds = time.monotonic() - started
    moved.target = final.compute_host
    if final.task_state is not None and final.status != "ERROR":
        moved.error = f"still {final.task_state} after {EVACUATE_TIMEOUT_S:.0f} s on {final.compute_host}"
    elif final.status == "ERROR" or final.compute_host == source:
        moved.error = (
            _fault(conn, final, "evacuate") or f"nova left it {final.status} on {final.compute_host}"
        )
    elif server.status == "ACTIVE" and final.status == "SHUTOFF":
        # Since compute API 2.95 nova leaves an evacuated instance stopped on its new host (for
        # the operator to check first); one that was running before its host died runs again.
        conn.compute.start_server(server.id)
        started_again = _until(conn, server, START_TIMEOUT_S, _settled)
        moved.seconds = time.monotonic() - started
        if started_again.status != "ACTIVE":
            moved.error = f"rebuilt on {final.compute_host} but not started again: {started_again.status}"
    return moved


def live_migrate(conn: Connection, server: Any, source: str) -> Moved:
    moved = Moved(str(server.id), str(server.name), source)
    started = time.monotonic()
    # "auto": block migration when the disks are local, plain when they are on shared storage
    conn.compute.live_migrate_server(server, host=None, block_migration="auto")
    final = _until(conn, server, MIGRATION_TIMEOUT_S, _settled)
    moved.seconds = time.monotonic() - started
    if final.task_state is not None:
        _abort(conn, server)
        moved.error = (
            f"not finished within {MIGRATION_TIMEOUT_S:.0f} s: aborted, the instance stays on {source}"
        )
        return moved
    moved.target = final.compute_host
    if final.status == "ERROR" or final.compute_host == source:
        moved.error = (
            _fault(conn, final, "live-migration") or f"nova left it {final.status} on {final.compute_host}"
        )
    return moved


def _settled(server: Any) -> bool:
    return server.task_state is None and server.status in ("ACTIVE", "ERROR")


def _abort(conn: Connection, server: Any) -> None:
    for migration in conn.compute.server_migrations(server):
        conn.compute.abort_server_migration(migration, server, ignore_missing=True)
    _until(conn, server, ABORT_TIMEOUT_S, lambda s: s.task_state is None)


def _fault(conn: Connection, server: Any, action_name: str) -> str | None:
    """nova's reason: the instance's fault, or the last failed event of its last `action_name`."""
    if server.fault:
        return str(server.fault.get("message", ""))
    for action in conn.compute.server_actions(server):
        if action.action != action_name:
            continue
        detail = conn.compute.get_server_action(action.request_id, server)
        for event in detail.events or []:
            if str(event.get("result", "")).lower() == "error":
                lines = str(event.get("traceback") or event.get("event", "")).strip().splitlines()
                return f"{event.get('event')}: {lines[-1] if lines else 'error'}"
        break
    return None
