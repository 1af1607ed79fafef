"""`apply --rolling`: a deployed cloud's updates, one node at a time, each proven healthy first.

Order (`rolling_order`): the controller, the network nodes, the storage nodes, then the compute
nodes one by one. A compute node is drained first when another compute node can take its instances
(live migration, `maintenance.drain`), converged with the upgrade, waited for — its nova-compute and
agents must report again *after* the update (a newer timestamp than they had when it finished), not
merely still look up (a node the update did not change only has to be up) — then undrained. While
the controller converges, every public API in the catalog is asked every half second; the longest
run of unanswered requests per API is its measured unavailability. The roll stops at the first node
that fails or does not come back healthy and says why; the nodes after it are left untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from stackwright.inventory import Inventory
from stackwright.polling import poll

if TYPE_CHECKING:
    from openstack.connection import Connection

    from stackwright.deploy import Session
    from stackwright.engine.converge import Options, Progress
    from stackwright.engine.stop import StopRequest

HEALTH_WAIT_S = 300.0
WATCH_EVERY_S = 0.5
WATCH_LIMIT_S = 3 * 3600.0  # bounded even if nobody stops it: longer than any node's converge


def rolling_order(inventory: Inventory) -> list[str]:
    controller = inventory.controller_name
    network = [n for n in inventory.names_with("network") if n != controller]
    # one storage node at a time before the compute nodes: its daemons restart in seconds, and Ceph
    # serves from the other replicas meanwhile (with one storage node, volumes' I/O waits for it)
    storage = [n for n in inventory.names_with("storage") if n not in (controller, *network)]
    computes = [n for n in inventory.names_with("compute") if n not in (controller, *network, *storage)]
    return [controller, *network, *storage, *computes]


def longest_outage(samples: list[tuple[float, bool]]) -> float:
    """The longest time an API did not answer: from a failed sample to the next answered one (or
    to the last sample, when it never answered again)."""
    longest, down_since = 0.0, None
    for at, answered in samples:
        if not answered and down_since is None:
            down_since = at
        elif answered and down_since is not None:
            longest, down_since = max(longest, at - down_since), None
    if down_since is not None:
        longest = max(longest, samples[-1][0] - down_since)
    return longest


@dataclass
class NodeResult:
    host: str
    ok: bool
    seconds: float
    changed: int = 0
    note: str = ""
    upgraded: list[str] = field(default_factory=list)  # `name version` this node's update set up
    api_outage_s: dict[str, float] = field(default_factory=dict)


@dataclass
class RollingReport:
    nodes: list[NodeResult] = field(default_factory=list)
    stopped_at: str | None = None
    reason: str = ""
    untouched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stopped_at is None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "stopped_at": self.stopped_at,
            "reason": self.reason,
            "untouched": self.untouched,
            "nodes": [n.__dict__ for n in self.nodes],
        }


class ApiWatch:
    """Every public API of the catalog asked every WATCH_EVERY_S (a greenlet) until `stop()`."""

    def __init__(self, urls: Mapping[str, str], get: Callable[[str], tuple[int | None, str]]) -> None:
        self.urls = dict(urls)
        self.get = get
        self.samples: dict[str, list[tuple[float, bool]]] = {name: [] for name in self.urls}
        self._running = False
        self._job: Any = None

    def _sample(self) -> None:
        for name, url in self.urls.items():
            status, _ = self.get(url)
            answered = status is not None and status < 500
            self.samples[name].append((time.monotonic(), answered))

    def start(self) -> None:
        import gevent

        self._running = True
        # gevent's sleep, given explicitly: the converge runs in greenlets beside this one
        self._job = gevent.spawn(
            poll,
            self._sample,
            within_s=WATCH_LIMIT_S,
            every_s=WATCH_EVERY_S,
            done=lambda _: not self._running,
            sleep=gevent.sleep,
        )

    def stop(self) -> dict[str, float]:
        self._running = False
        if self._job is not None:
            self._job.join(timeout=30)
        return {name: round(longest_outage(s), 1) for name, s in self.samples.items() if s}


def public_urls(conn: Connection) -> dict[str, str]:
    """{service type: public URL} from the catalog."""
    from stackwright.cloud import identity_v3

    identity = identity_v3(conn)
    services = {s.id: s.type for s in identity.services()}
    return {
        services.get(e.service_id, e.service_id): str(e.url) for e in identity.endpoints(interface="public")
    }


def report_times(conn: Connection, inventory: Inventory, host: str) -> dict[str, str | None]:
    """{what reports for `host`: its last report, None when it is not up/alive}: nova-compute's
    `updated_at`, each neutron agent's `last_heartbeat_at` (the agents its roles run)."""
    node = inventory.nodes[host]
    times: dict[str, str | None] = {}
    if node.has("compute"):
        services = [s for s in conn.compute.services(host=host) if s.binary == "nova-compute"]
        up = [s for s in services if s.state == "up"]
        times["nova-compute"] = str(up[0].updated_at) if up else None
    from stackwright.checks.verify import expected_agents

    agents = {a.agent_type: a for a in conn.network.agents(host=host)}
    for kind in (agent_type for agent_type, name in expected_agents(inventory) if name == host):
        agent = agents.get(kind)
        times[kind] = str(agent.last_heartbeat_at) if agent is not None and agent.is_alive else None
    return times


def not_reported(
    now: Mapping[str, str | None], after: Mapping[str, str | None], *, changed: bool = True
) -> str | None:
    """None when everything in `after` (taken once the node's update finished: the processes it
    restarted are the ones running) has reported again since — a newer timestamp than it had then,
    compared as the API gives them, so the operator's clock does not matter; else what has not.
    On a node the update did not change nothing restarted: up (alive) now is enough."""
    waiting = [
        name for name, last in after.items() if now.get(name) is None or (changed and now.get(name) == last)
    ]
    if not waiting:
        return None
    return f"{'not reported since the update' if changed else 'not up'}: {', '.join(waiting)}"


def _reported_again(
    conn: Connection, inventory: Inventory, host: str, after: Mapping[str, str | None], changed: bool
) -> str | None:
    return not_reported(report_times(conn, inventory, host), after, changed=changed)


def roll(
    session: Session,
    conn: Connection,
    options: Options,
    progress: Progress,
    say: Callable[[str], None],
    *,
    get: Callable[[str], tuple[int | None, str]],
    health_wait_s: float = HEALTH_WAIT_S,
    stop: StopRequest | None = None,
) -> RollingReport:
    from stackwright.engine.converge import converge_host
    from stackwright.maintenance import drain, undrain

    assert session.plan is not None
    # As `apply` does: every password, current and earlier, masked in what the steps report.
    options = replace(
        options, known_secrets=frozenset([*session.passwords.values(), *session.passwords.history])
    )
    inventory = session.loaded.model
    order = [h for h in rolling_order(inventory) if h in session.hosts]
    report = RollingReport()
    computes = inventory.names_with("compute")
    for index, host in enumerate(order):
        if stop:
            return _stop(report, order[index:], host, f"stopped by {stop.reason} before this node")
        started = time.monotonic()
        node = inventory.nodes[host]
        drained = False
        if node.has("compute") and len(computes) > 1 and not node.has("controller"):
            say(f"{host}: draining")
            moved = drain(conn, host, say)
            drained = True
            if not moved.ok:
                undrain(conn, host)
                return _stop(report, order[index:], host, "its instances could not all be moved: see above")
        watch = ApiWatch(public_urls(conn), get) if node.has("controller") else None
        if watch is not None:
            watch.start()
        try:
            result = converge_host(
                session.remotes[host], session.plan.hosts[host], options, progress, stop=stop
            )
        finally:
            outage = watch.stop() if watch is not None else {}
        changed = result.changed
        if not result.ok:
            error = result.error
            why = f"{error.command}: {error.result.tail(2)}" if error is not None else "failed"
            report.nodes.append(
                NodeResult(host, False, time.monotonic() - started, changed, why, result.upgraded, outage)
            )
            return _stop(report, order[index + 1 :], host, why + _left_drained(drained, host))
        after = report_times(conn, inventory, host)
        waiting = poll(
            partial(_reported_again, conn, inventory, host, after, changed > 0),
            within_s=health_wait_s,
            every_s=5,
            done=lambda w: w is None,
        )
        if waiting is not None:
            note = f"{waiting} (waited {health_wait_s:.0f} s)"
            report.nodes.append(
                NodeResult(host, False, time.monotonic() - started, changed, note, result.upgraded, outage)
            )
            return _stop(report, order[index + 1 :], host, note + _left_drained(drained, host))
        if drained:
            undrain(conn, host)
        report.nodes.append(
            NodeResult(host, True, time.monotonic() - started, changed, "healthy", result.upgraded, outage)
        )
    return report


def _left_drained(drained: bool, host: str) -> str:
    # a node that failed its update takes no new instances until someone has looked at it
    return f"; {host} stays drained (`stackwright undrain FILE {host}` once it is fixed)" if drained else ""


def _stop(report: RollingReport, rest: list[str], host: str, reason: str) -> RollingReport:
    report.stopped_at, report.reason = host, reason
    report.untouched = [h for h in rest if h != host]
    return report
