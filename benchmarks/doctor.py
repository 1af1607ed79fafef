"""Benchmark: `stackwright doctor` on the healthy, converged seed cloud (issue 6: <= 10 s).

Run (root, with a converged lab, e.g. after
`STACKWRIGHT_KEEP_LAB=1 .venv/bin/python -m pytest tests/lab/test_cloud.py`):

    .venv/bin/python benchmarks/doctor.py [--inventory PATH] [--runs 5]

Times the whole CLI process (start-up, SSH connections, both round trips per host, the API
calls, the table) for each run; the first run on fresh hosts also generates the cached option
data (`oslo-config-generator`), reported separately as the cold run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = Path("/var/lib/stackwright/lab/test-inventories/seed.yaml")
CACHE = "/var/cache/stackwright/oslo-config"


def run(inventory: Path) -> tuple[float, dict[str, object]]:
    argv = [
        sys.executable,
        "-c",
        "from stackwright.cli import main; main()",
        "doctor",
        str(inventory),
        "--json",
    ]
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    took = time.monotonic() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"doctor failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    data: dict[str, object] = json.loads(proc.stdout)
    return took, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inventory", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help=f"first clear {CACHE} on every host")
    args = parser.parse_args()
    from stackwright.inventory import load_inventory

    hosts = list(load_inventory(args.inventory).model.nodes)
    if args.cold:
        for host in hosts:
            subprocess.run(["ssh", host, f"rm -rf {CACHE}"], check=False, timeout=60)
        took, data = run(args.inventory)
        print(f"cold (option data generated): {took:.2f} s, ok={data['ok']}")
    times = []
    for _ in range(args.runs):
        took, data = run(args.inventory)
        checks = data["checks"]
        assert isinstance(checks, list)
        failing = [c for c in checks if c["status"] != "ok"]
        times.append(took)
        print(
            f"doctor on {len(hosts)} hosts: {took:.2f} s (inside: {data['seconds']} s), "
            f"{len(checks)} results, {len(failing)} not ok"
        )
    print(
        f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
        f"over {len(times)} runs ({', '.join(hosts)})"
    )


if __name__ == "__main__":
    main()
