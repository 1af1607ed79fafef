"""Programs nova-compute runs for features users ask for (config drive, image conversion)."""

from __future__ import annotations

import shlex

from stackwright.checks.doctor.base import Context, Row, check, ok
from stackwright.releases.modern.compute import COMPUTE_TOOLS


def tools_script() -> str:
    names = " ".join(shlex.quote(t) for t in COMPUTE_TOOLS)
    return (
        "echo '@@sw:tools'\n"
        f'for t in {names}; do if command -v "$t" >/dev/null 2>&1; then echo "$t=yes"; '
        'else echo "$t=no"; fi; done\n'
    )


@check("compute-tools")
def compute_tools(ctx: Context) -> list[Row]:
    """Booting with `--config-drive true` fails: the instance goes to ERROR with `Build of instance
    ... aborted` and nova-compute.log shows `FileNotFoundError: [Errno 2] No such file or directory:
    'genisoimage'` (a program nova-compute only recommends, missing after a no-recommends install).

    On every compute node, each program nova-compute runs for an API feature must be on the PATH:
    genisoimage (config drives), qemu-img (image conversion, snapshots). Fix: `stackwright apply`
    installs them (they are in the compute role's packages); by hand, `apt-get install` the package
    named in the cause."""
    rows: list[Row] = []
    for host in ctx.examined("compute"):
        found = ctx.data[host].values("tools")
        missing = [name for name in COMPUTE_TOOLS if (found.get(name) or ["no"])[0] != "yes"]
        if not missing:
            rows.append(ok("compute-tools", host, f"{', '.join(COMPUTE_TOOLS)} installed"))
            continue
        what = "; ".join(f"{name} (for {COMPUTE_TOOLS[name][1]})" for name in missing)
        packages = " ".join(COMPUTE_TOOLS[name][0] for name in missing)
        rows.append(
            Row(
                "compute-tools",
                host,
                "fail",
                f"missing on the PATH: {what}",
                f"`stackwright apply FILE --limit {host}` (or `apt-get install --no-install-recommends "
                f"{packages}` on {host})",
            )
        )
    return rows
