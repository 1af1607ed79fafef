"""Benchmark (issue 7): 1 vs 4 compute nodes added in parallel, with host CPU sampled (run as root).

Run: .venv/bin/python benchmarks/scale_out.py [--skip-base] [--keep]

Its own lab and addresses (management 10.150.10.0/24, data 10.160.20.0/24, external
192.168.150.0/24): pctl (controller), pnet (network), pc1..pc12 (compute; pc6..pc12 are
for benchmarks/ansible_peer). It brings the lab up, converges pctl and pnet (`--limit pctl,pnet`),
then times `apply --yes --limit pc1` (one compute node from bare) and
`apply --yes --limit pc2,pc3,pc4,pc5` (four from bare). The apt proxy's cache on disk is shared
with every lab and warm. During each apply it samples /proc/stat once a second: busy and iowait
share of the machine's CPUs.

Each apply uses an inventory that lists only the nodes deployed so far (perf-<stage>.yaml, same
directory, same passwords.yaml): the post-converge discover_hosts step waits until *every*
compute node of the inventory has registered, so nodes not yet deployed would make it time out.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

WORK = Path("/var/lib/stackwright/lab/perf-inventories")
CLI = [sys.executable, "-c", "from stackwright.cli import main; main()"]
HEADER = """# issue 7 performance lab (benchmarks/scale_out.py): its own addresses
release: zed
networks:
  management: {cidr: 10.150.10.0/24}
  data:       {cidr: 10.160.20.0/24}
  external:   {cidr: 192.168.150.0/24, gateway: 192.168.150.1}
tenant_network_type: gre
virt_type: auto
nodes:
"""
NODES = {
    "pctl": "{roles: [controller], management: 10.150.10.11, external: 192.168.150.11}",
    "pnet": "{roles: [network], management: 10.150.10.12, data: 10.160.20.12, external: 192.168.150.12}",
    **{
        f"pc{i}": f"{{roles: [compute], management: 10.150.10.{20 + i}, data: 10.160.20.{20 + i}}}"
        for i in range(1, 13)
    },
}


def inventory(name: str, nodes: list[str]) -> Path:
    """Write perf-<name>.yaml (or perf.yaml for the whole lab) listing `nodes`."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / (f"perf-{name}.yaml" if name else "perf.yaml")
    path.write_text(HEADER + "".join(f"  {n}: {NODES[n]}\n" for n in nodes))
    return path


def run(*args: str, timeout: float = 3600) -> float:
    start = time.monotonic()
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-3000:])
        raise SystemExit(f"`stackwright {' '.join(args)}` failed ({proc.returncode})")
    return seconds


class CpuSampler:
    """Machine CPU use from /proc/stat, sampled every `interval` seconds in a thread."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (busy %, iowait %) per interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _read() -> list[int]:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]

    def _loop(self) -> None:
        last = self._read()
        while not self._stop.wait(self.interval):
            now = self._read()
            delta = [b - a for a, b in zip(last, now, strict=True)]
            last = now
            total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
            idle, iowait = delta[3], delta[4]
            self.samples.append((100.0 * (total - idle - iowait) / total, 100.0 * iowait / total))

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        busy = [b for b, _ in self.samples]
        iowait = [w for _, w in self.samples]
        saturated = sum(1 for b in busy if b >= 90.0) / len(busy)
        return (
            f"busy {sum(busy) / len(busy):.0f}% avg, iowait {sum(iowait) / len(iowait):.0f}% avg, "
            f"{saturated:.0%} of seconds ≥ 90% busy ({os.cpu_count()} CPUs)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-base", action="store_true", help="pctl and pnet are already converged")
    parser.add_argument("--keep", action="store_true", help="leave the lab up (for ansible_peer)")
    args = parser.parse_args()
    whole = inventory("", list(NODES))
    one = inventory("one", ["pctl", "pnet", "pc1"])
    five = inventory("five", ["pctl", "pnet", "pc1", "pc2", "pc3", "pc4", "pc5"])
    figures: dict[str, str] = {}
    try:
        figures["lab up, 9 hosts"] = f"{run('lab', 'up', str(whole)):.1f} s"
        if not args.skip_base:
            seconds = run("apply", str(whole), "--yes", "--limit", "pctl,pnet")
            figures["apply --limit pctl,pnet (controller + network node from bare)"] = f"{seconds:.1f} s"
        with CpuSampler() as cpu1:
            t1 = run("apply", str(one), "--yes", "--limit", "pc1")
        figures["apply --limit pc1 (1 compute node from bare)"] = f"{t1:.1f} s; CPU {cpu1.summary()}"
        with CpuSampler() as cpu4:
            t4 = run("apply", str(five), "--yes", "--limit", "pc2,pc3,pc4,pc5")
        figures["apply --limit pc2,pc3,pc4,pc5 (4 compute nodes from bare, in parallel)"] = (
            f"{t4:.1f} s; CPU {cpu4.summary()}"
        )
        figures["4 computes / 1 compute"] = f"{t4 / t1:.2f}x (target ≤ 2x)"
    finally:
        if not args.keep:
            subprocess.run([*CLI, "lab", "down", str(whole)], capture_output=True, check=False, timeout=600)
    print("| what | figure |\n|---|---|")
    for what, figure in figures.items():
        print(f"| {what} | {figure} |")


if __name__ == "__main__":
    main()
