"""What a running lab is made of, on disk, so `down` and `status` work from any later process.

    /var/lib/stackwright/lab/<lab-id>/state.json
    {"inventory": "/src/examples/seed.yaml", "base": "/var/cache/.../base-bookworm-...",
     "proxy_pid": 4242, "hosts": {"compute1": {"supervisor_pid": 4250}}}

Names of bridges, veths, mounts and the nft table follow from the inventory (see layout.py), so
`down` finds them even if this file is lost; the PIDs are what only this file knows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stackwright.atomic import atomic_write


@dataclass
class HostState:
    supervisor_pid: int


@dataclass
class LabState:
    inventory: str = ""
    base: str = ""
    proxy_pid: int | None = None
    hosts: dict[str, HostState] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> LabState:
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        hosts = {name: HostState(**h) for name, h in data.get("hosts", {}).items()}
        return cls(
            inventory=data.get("inventory", ""),
            base=data.get("base", ""),
            proxy_pid=data.get("proxy_pid"),
            hosts=hosts,
        )

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=2) + "\n", mode=0o644)
