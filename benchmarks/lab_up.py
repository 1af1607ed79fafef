"""Benchmark: `stackwright lab up` of examples/seed.yaml's three hosts on a warm cache.

Run (root): .venv/bin/python benchmarks/lab_up.py [--runs 3] [--cold]
Each run: `lab down`, then a timed `lab up` (whole CLI process) until all three hosts answer a
real `ssh HOST true`. Also times `lab reboot` of one host and `lab down`. With --cold, first
times a base image build (debootstrap + settings) into a throwaway directory, as a fresh machine
would do once. Target (issue 3): warm `lab up` of 3 hosts ready for SSH in <= 15 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed.yaml"
LAB = [sys.executable, "-c", "from stackwright.lab.cli import lab_app; lab_app()"]


def lab(*args: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([*LAB, *args], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        sys.exit(f"`lab {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return time.monotonic() - t0


def ssh_all(hosts: list[str]) -> None:
    procs = [subprocess.Popen(["ssh", "-o", "BatchMode=yes", h, "true"]) for h in hosts]
    codes = [p.wait(timeout=60) for p in procs]
    if any(codes):
        sys.exit(f"ssh failed: {dict(zip(hosts, codes, strict=True))}")


def cold_build() -> tuple[float, int]:
    """Seconds and MB of a base image built into a throwaway directory, as a fresh machine does once."""
    sys.path.insert(0, str(ROOT / "src"))
    from stackwright.lab.base import build_into
    from stackwright.lab.layout import BASE_CACHE
    from stackwright.lab.sources import lab_mirrors

    target = BASE_CACHE / f".bench-cold-{time.time_ns()}"
    t0 = time.monotonic()
    try:
        build_into(target, "bookworm", lab_mirrors("bookworm"), lambda _msg: None)
        seconds = time.monotonic() - t0
        size = subprocess.run(["du", "-sm", str(target)], capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return seconds, int(size.stdout.split()[0])


def measure(runs: int, cold: bool) -> tuple[list[float], list[float], list[float], tuple[float, int] | None]:
    """Per run: warm `lab up` until every host answers ssh, `lab reboot compute1`, `lab down`."""
    hosts = ["controller", "network", "compute1"]
    built = cold_build() if cold else None
    lab("up", str(SEED))  # warm every cache (base image, lab key) once
    lab("down", str(SEED))
    ups, reboots, downs = [], [], []
    for _ in range(runs):
        t0 = time.monotonic()
        lab("up", str(SEED))
        ssh_all(hosts)
        ups.append(time.monotonic() - t0)
        reboots.append(lab("reboot", str(SEED), "compute1"))
        downs.append(lab("down", str(SEED)))
    return ups, reboots, downs, built


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a base image build")
    args = parser.parse_args()
    ups, reboots, downs, built = measure(args.runs, args.cold)
    if built:
        print(f"cold base build: {built[0]:.1f} s, {built[1]} MB")
    for up, reboot, down in zip(ups, reboots, downs, strict=True):
        print(f"run: up+ssh {up:.2f} s, reboot compute1 {reboot:.2f} s, down {down:.2f} s")
    print(
        f"warm lab up of 3 hosts until all answer ssh: median {statistics.median(ups):.2f} s, "
        f"min {min(ups):.2f} s, max {max(ups):.2f} s ({args.runs} runs; target <= 15 s)"
    )
    print(f"lab down: median {statistics.median(downs):.2f} s")


if __name__ == "__main__":
    main()
