"""Run by test_network_rollback in a child process (the engine needs gevent's monkey patching).

Usage: python rollback_probe.py INVENTORY HOST
Applies a NetworkConfig that takes the management address off its interface and prints the
engine's verdict as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stackwright.engine import patch

patch()

from stackwright.context import host_contexts  # noqa: E402
from stackwright.engine.hostkeys import HostTrust  # noqa: E402
from stackwright.engine.hostrun import HostRun  # noqa: E402
from stackwright.engine.network_ops import network_config  # noqa: E402
from stackwright.engine.remote import RemoteError, connect  # noqa: E402
from stackwright.inventory import load_inventory  # noqa: E402
from stackwright.netconfig import networkd_file, networkd_path  # noqa: E402
from stackwright.steps import File, HostPlan, NetworkConfig  # noqa: E402


def main() -> None:
    path = Path(sys.argv[1])
    inventory = load_inventory(path).model
    host = sys.argv[2]
    context = host_contexts(inventory)[host]
    management = context.interface("management")
    broken = File(networkd_path(management.name), networkd_file(management, address=False))
    step = NetworkConfig(files=(broken,), probe_address=context.management_ip)
    remote = connect(inventory, [host], HostTrust.beside(path))[host]
    run = HostRun(remote=remote, plan=HostPlan(host, context.roles, inventory.release, (step,)))
    try:
        outcome = network_config(run, step)
        print(json.dumps({"raised": False, "detail": outcome.detail}))
    except RemoteError as exc:
        print(json.dumps({"raised": True, "error": exc.result.stderr, "hint": exc.hint}))


if __name__ == "__main__":
    main()
