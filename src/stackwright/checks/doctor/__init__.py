"""doctor: diagnose a deployed cloud, host by host — the seed's troubleshooting section, and beyond.

Each check lives in the module of its area and registers itself (`base.check`); importing this
package registers them all; ORDER is the order the table and the README show them in.
"""

from stackwright.checks.doctor import (  # noqa: F401  (imported to register their checks)
    cells,
    clock,
    connectivity,
    console,
    drift,
    fence,
    front,
    instances,
    libvirt,
    maintenance,
    options,
    services,
    storage,
    tools,
    tunnels,
    virt,
)
from stackwright.checks.doctor.base import CHECKS, Check, Fix, Row

# The seed's two troubleshooting cases first, then from the host outwards.
ORDER = (
    "libvirtd",
    "instances-ownership",
    "service-down",
    "compute-connectivity",
    "clock-skew",
    "tunnel",
    "firewall",
    "listen-address",
    "tls-front",
    "virt-type-kvm",
    "compute-tools",
    "ceph-health",
    "ceph-osd",
    "cinder-volume",
    "ceph-secret",
    "console-proxy",
    "vnc-address",
    "dashboard",
    "cell-mapping",
    "compute-disabled",
    "instance-stuck",
    "config-drift",
    "config-options",
)
_registered = dict(CHECKS)
CHECKS.clear()
CHECKS.update({ident: _registered[ident] for ident in ORDER})
CHECKS.update(_registered)

__all__ = ["CHECKS", "ORDER", "Check", "Fix", "Row"]
