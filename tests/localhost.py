"""A `Remote` on this machine through pyinfra's own `@local` connector: the engine's commands, file
reads and fact parsers run for real with this machine's `sh`, without SSH."""

from __future__ import annotations

from stackwright.engine.remote import Remote


def local_remote(name: str = "local") -> Remote:
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.state import State

    inventory = Inventory((["@local"], {}))  # type: ignore[no-untyped-call]
    state = State(inventory, Config())  # type: ignore[no-untyped-call]
    connect_all(state)
    return Remote(name, state.inventory.get_host("@local"))
