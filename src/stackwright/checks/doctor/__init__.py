"""doctor: diagnose a deployed cloud, host by host — the seed's troubleshooting section, and beyond.

Each check lives in the module of its area and registers itself (`base.check`); importing this
package registers them all, in the order the table shows them.
"""

from stackwright.checks.doctor import (  # noqa: F401  (imported to register their checks)
    cells,
    clock,
    connectivity,
    drift,
    instances,
    libvirt,
    options,
    services,
    tunnels,
    virt,
)
from stackwright.checks.doctor.base import CHECKS, Check, Fix, Row

__all__ = ["CHECKS", "Check", "Fix", "Row"]
