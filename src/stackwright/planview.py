"""Show a ClusterPlan: as text for people, as JSON for pipelines. Secrets always masked.

File contents are written straight to the stream rather than through Rich: a
500-node plan holds hundreds of thousands of lines and Rich's markup pass would
dominate the run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from stackwright.secrets import Masker
from stackwright.steps import (
    AwaitHost,
    ClusterPlan,
    Command,
    Directory,
    File,
    HostPlan,
    Milestone,
    NetworkConfig,
    OvsBridge,
    Packages,
    Service,
    Step,
    Sysctl,
    Wait,
)

_BOLD, _DIM, _GREEN, _CYAN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[32m", "\x1b[36m", "\x1b[0m"


def step_summary(step: Step, mask: Masker) -> str:
    """One line per step, the way `plan` and `apply` name it."""
    match step:
        case Packages(names=names):
            return f"install {len(names)} packages: {' '.join(names)}"
        case File(path=path, mode=mode, owner=owner, group=group):
            return f"write {path} ({mode:04o} {owner}:{group})"
        case Directory(path=path, mode=mode, owner=owner, group=group):
            return f"directory {path} ({mode:04o} {owner}:{group})"
        case Sysctl(key=key, value=value):
            return f"sysctl {key} = {value} (live and persisted)"
        case OvsBridge(name=name, datapath_type=dp, ports=ports):
            extra = f", ports {' '.join(ports)}" if ports else ""
            return f"ovs bridge {name} (datapath {dp}{extra})"
        case Service(name=name, restart_when=paths, enabled=enabled, running=running):
            if not enabled and not running:
                return f"service {name} disabled and stopped"
            when = f"; restart when {', '.join(paths)} change" if paths else ""
            return f"service {name} enabled and running{when}"
        case Command(description=description):
            return f"run: {description}"
        case Wait(description=description, timeout_s=timeout):
            return f"wait for {description} (at most {timeout:g} s)"
        case Milestone(name=name):
            return f"milestone: {name} (other hosts may wait for it)"
        case AwaitHost(host=other, name=name, timeout_s=timeout):
            return f"wait for {other} to reach '{name}' in this run (at most {timeout:g} s)"
        case NetworkConfig(files=files, probe_address=address):
            return (
                f"network configuration ({len(files)} files), last; rolled back unless the host "
                f"still answers on {address}"
            )
    raise TypeError(step)  # pragma: no cover


def write_text(plan: ClusterPlan, hosts: Iterable[str], mask: Masker, out: TextIO, color: bool) -> None:
    b, d, g, c, r = (_BOLD, _DIM, _GREEN, _CYAN, _RESET) if color else ("",) * 5
    for name in hosts:
        host = plan.hosts[name]
        out.write(f"\n{b}── {name} ({', '.join(host.roles)}) · release {host.release} ──{r}\n")
        for step in host.steps:
            out.write(f"{c}•{r} {step_summary(step, mask)}\n")
            if isinstance(step, Command):
                command = mask(" ".join(step.argv)).replace("\n", "\n  {d}$ ")
                out.write(f"{d}  $ {command}{r}\n".replace("{d}", d))
                if step.unless:
                    out.write(f"{d}  (skipped when: {mask(step.unless)}){r}\n")
            files = (
                (step,) if isinstance(step, File) else step.files if isinstance(step, NetworkConfig) else ()
            )
            for file in files:
                if isinstance(step, NetworkConfig):
                    out.write(f"  {c}◦{r} {step_summary(file, mask)}\n")
                out.write(f"{d}  ┌── new file, full content:{r}\n")
                body = mask(file.content)
                out.write("".join(f"{g}  │{r} {line}\n" for line in body.splitlines()))
                out.write(f"{d}  └──{r}\n")
        for runner, waits_for, steps in plan.after:
            if runner == name:
                for step in steps:
                    after = f" (after {', '.join(waits_for)} converged)" if waits_for else ""
                    out.write(f"{c}•{r} {step_summary(step, mask)}{after}\n")


def plan_json(plan: ClusterPlan, hosts: Iterable[str], mask: Masker) -> str:
    data = {
        "release": plan.release,
        "hosts": {name: host_json(plan.hosts[name], mask) for name in hosts},
        "after": [
            {"host": runner, "after_hosts": list(waits), "steps": [step_json(s, mask) for s in steps]}
            for runner, waits, steps in plan.after
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def host_json(host: HostPlan, mask: Masker) -> dict[str, Any]:
    return {
        "roles": list(host.roles),
        "release": host.release,
        "steps": [step_json(step, mask) for step in host.steps],
    }


def step_json(step: Step, mask: Masker) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": step.kind, "summary": step_summary(step, mask)}
    for key, value in vars(step).items():
        if key == "kind":
            continue
        if key == "mode":
            value = f"{value:04o}"
        elif key == "env":
            value = {k: mask(v) if v else v for k, v in value}
        elif key == "files":
            value = [step_json(f, mask) for f in value]
        elif isinstance(value, tuple):
            value = [mask(v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            value = mask(value)
        data[key] = value
    return data
