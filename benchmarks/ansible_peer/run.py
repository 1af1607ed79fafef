"""Peer benchmark (issue 7): the same compute node converged by an Ansible playbook and by
stackwright, fresh and no-op, side by side in one run (run as root).

Run: .venv/bin/python benchmarks/ansible_peer/run.py [--noop-runs 3]

Needs the scale_out lab up with pctl and pnet converged
(`.venv/bin/python benchmarks/scale_out.py --keep`, or `--skip-base --keep` after a manual apply),
and ansible (ansible-core plus the ansible.posix collection, from the `ansible` package on PyPI)
in its own venv, never in the project's dependencies:
    python3 -m venv /var/cache/stackwright/bench-venvs/ansible
    /var/cache/stackwright/bench-venvs/ansible/bin/pip install ansible
Ansible converges pc6 (compute.yml, with the files and scripts stackwright's plan renders for pc6:
render_vars.py); stackwright converges pc7 (`apply --limit pc7`). Both hosts are fresh lab hosts
of the same lab (same proxy cache state). Then both are re-applied --noop-runs times, alternating,
without the upgrade step (`--no-upgrade` / `--skip-tags upgrade`) and with it.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path("/var/lib/stackwright/lab/perf-inventories")
ANSIBLE = Path("/var/cache/stackwright/bench-venvs/ansible/bin/ansible-playbook")
CLI = [sys.executable, "-c", "from stackwright.cli import main; main()"]
KEY = "/var/lib/stackwright/lab/ssh/id_ed25519"
sys.path.insert(0, str(HERE.parent))
from scale_out import inventory  # noqa: E402


def timed(argv: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-3000:])
        raise SystemExit(f"`{' '.join(argv[:6])} ...` failed ({proc.returncode})")
    return seconds, proc.stdout


def main() -> None:
    import os

    parser = argparse.ArgumentParser()
    parser.add_argument("--noop-runs", type=int, default=3)
    parser.add_argument("--ansible-host", default="pc6")
    parser.add_argument("--stackwright-host", default="pc7")
    args = parser.parse_args()
    a_host, s_host = args.ansible_host, args.stackwright_host
    whole = inventory("", ["pctl", "pnet", *[f"pc{i}" for i in range(1, 13)]])
    subprocess.run([*CLI, "lab", "up", str(whole)], check=True, capture_output=True, timeout=600)
    peer = inventory("peer", ["pctl", "pnet", s_host])
    out = WORK / f"ansible-{a_host}"
    subprocess.run([sys.executable, str(HERE / "render_vars.py"), str(whole), a_host, str(out)], check=True)
    index = int(a_host.removeprefix("pc"))
    hosts = WORK / "ansible-hosts.ini"
    hosts.write_text(
        f"[compute]\n{a_host} ansible_host=10.150.10.{20 + index}\n"
        "[controller]\npctl ansible_host=10.150.10.11\n"
        f"[all:vars]\nansible_user=root\nansible_ssh_private_key_file={KEY}\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(HERE / "ansible.cfg")}
    playbook = [str(ANSIBLE), "-i", str(hosts), str(HERE / "compute.yml"), "-e", f"@{out / 'vars.yml'}"]
    figures: dict[str, str] = {}

    ansible_fresh, log = timed(playbook, env)
    (WORK / "ansible-fresh.log").write_text(log)
    figures[f"fresh: ansible-playbook compute.yml on {a_host} (incl. apt full-upgrade, discover_hosts)"] = (
        f"{ansible_fresh:.1f} s"
    )
    sw_fresh, _ = timed([*CLI, "apply", str(peer), "--yes", "--limit", s_host])
    figures[f"fresh: stackwright apply --limit {s_host} (incl. prep/full-upgrade, discover_hosts)"] = (
        f"{sw_fresh:.1f} s = {sw_fresh / ansible_fresh:.2f}x Ansible (target ≤ 1x)"
    )

    def noop(upgrade: bool) -> None:
        a_times: list[float] = []
        s_times: list[float] = []
        for _ in range(args.noop_runs):
            seconds, log = timed(playbook + ([] if upgrade else ["--skip-tags", "upgrade"]), env)
            changed = [int(c) for c in re.findall(r"changed=(\d+)", log)]
            if any(changed):
                (WORK / "ansible-noop.log").write_text(log)
                raise SystemExit(f"the Ansible no-op run changed something: {changed}")
            a_times.append(seconds)
            extra = [] if upgrade else ["--no-upgrade"]
            s_times.append(timed([*CLI, "apply", str(peer), "--yes", "--limit", s_host, *extra])[0])
        how = "with the upgrade step" if upgrade else "--no-upgrade / --skip-tags upgrade"
        a, s = statistics.median(a_times), statistics.median(s_times)
        figures[f"no-op, Ansible ({how}), median of {len(a_times)}"] = (
            f"{a:.2f} s (min {min(a_times):.2f}, max {max(a_times):.2f})"
        )
        figures[f"no-op, stackwright ({how}), median of {len(s_times)}"] = (
            f"{s:.2f} s (min {min(s_times):.2f}, max {max(s_times):.2f}) = {a / s:.1f}x faster (target ≥ 3x)"
        )

    try:
        if args.noop_runs < 1:
            return
        noop(upgrade=False)
        noop(upgrade=True)
    finally:
        show(figures)


def show(figures: dict[str, str]) -> None:
    print("| what | figure |\n|---|---|")
    for what, figure in figures.items():
        print(f"| {what} | {figure} |")


if __name__ == "__main__":
    main()
