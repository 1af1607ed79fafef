"""Benchmark: `stackwright plan` of a generated 500-node inventory, whole process.

Run: .venv/bin/python benchmarks/plan_500.py [--nodes 500] [--runs 5]
Prints the median/min/max wall time and the peak RSS of the `plan` process.
Target (issue 2/7): <= 1.5 s and <= 200 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(nodes: int) -> str:
    lines = [
        "release: zed",
        "networks:",
        "  management: {cidr: 10.10.0.0/16}",
        "  data: {cidr: 10.20.0.0/16}",
        "  external: {cidr: 192.168.100.0/24, gateway: 192.168.100.1}",
        "nodes:",
        "  controller: {roles: [controller], management: 10.10.0.2, external: 192.168.100.2}",
        "  network: {roles: [network], management: 10.10.0.3, data: 10.20.0.3, external: 192.168.100.3}",
    ]
    for i in range(nodes - 2):
        a, b = divmod(i + 10, 250)
        lines.append(
            f"  compute{i + 1}: {{roles: [compute], management: 10.10.{a}.{b + 2}, data: 10.20.{a}.{b + 2}}}"
        )
    return "\n".join(lines) + "\n"


def measure(nodes: int, runs: int) -> tuple[list[float], list[float], int]:
    """(wall seconds per run, peak RSS MB per run, output lines) of `stackwright plan`."""
    exe = Path(sys.executable).parent / "stackwright"
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "big.yaml"
        inventory.write_text(generate(nodes))
        subprocess.run([exe, "validate", inventory], check=True, stdout=subprocess.DEVNULL)  # passwords
        times, peaks = [], []
        for _ in range(runs):
            start = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                with open(os.devnull, "w") as devnull:
                    os.dup2(devnull.fileno(), 1)
                os.execv(str(exe), [str(exe), "plan", str(inventory)])
            _, status, usage = os.wait4(pid, 0)
            times.append(time.perf_counter() - start)
            peaks.append(usage.ru_maxrss / 1024)
            assert os.waitstatus_to_exitcode(status) == 0
        lines = subprocess.run([exe, "plan", inventory], check=True, capture_output=True).stdout.count(b"\n")
    return times, peaks, lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times, peaks, lines = measure(args.nodes, args.runs)
    print(f"plan of {args.nodes} nodes ({lines} output lines), {args.runs} runs:")
    print(
        f"  wall median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}); "
        f"peak RSS median {statistics.median(peaks):.0f} MB (max {max(peaks):.0f})"
    )


if __name__ == "__main__":
    main()
