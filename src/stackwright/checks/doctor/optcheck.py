"""Runs ON a host (python3 - '<json>'): oslo.config's validator over the rendered config files.

argv[1] is {"nova": ["/etc/nova/nova.conf", ...], ...}. For each project, the option data is
generated once with `oslo-config-generator --format yaml` from that project's namespaces and the
libraries it uses, as installed on this host (entry points `oslo.config.opts`), and cached under
CACHE keyed by the installed versions. Then `oslo_config.validator` checks each file (its own
rules: unknown options are errors, deprecated ones warnings, keystone_authtoken tolerated).
Prints `E <file> <message>`, `W <file> <message>`, or `X <file> <why it could not run>`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from importlib import metadata
from typing import IO, Any

CACHE = "/var/cache/stackwright/oslo-config"
LIBRARIES = (
    "oslo-",
    "oslo.",
    "keystonemiddleware",
    "os-vif",
    "os-brick",
    "osprofiler",
    "glance-store",
    "castellan",
)


def dist_name(entry: metadata.EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return (dist.name if dist is not None else "").lower().replace("_", "-")


def namespaces(project: str) -> list[str]:
    names = []
    for entry in metadata.entry_points(group="oslo.config.opts"):
        name = dist_name(entry)
        if name == project or name.startswith(LIBRARIES):
            try:
                entry.load()
            except Exception:  # a library entry point that cannot import here lists no options
                continue
            names.append(entry.name)
    return sorted(set(names))


def opt_data(project: str) -> str:
    """Path of the cached YAML option data for `project`, generating it when missing."""
    versions = []
    for entry in metadata.entry_points(group="oslo.config.opts"):
        dist = getattr(entry, "dist", None)
        if dist is not None:
            versions.append(f"{dist.name}={dist.version}")
    key = hashlib.sha256("\n".join(sorted(set(versions))).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, f"{project}-{key}.yaml")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    argv = ["oslo-config-generator", "--format", "yaml", "--output-file", path + ".tmp"]
    for name in namespaces(project):
        argv += ["--namespace", name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["generator failed"])[-1][:300])
    os.replace(path + ".tmp", path)
    return path


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def main() -> None:
    import yaml
    from oslo_config import validator  # type: ignore[import-not-found]

    loaded: dict[Any, Any] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def fast_load(stream: IO[str]) -> Any:  # the C loader: the same data, ten times faster than safe_load
        name = getattr(stream, "name", None)
        if name not in loaded:
            loaded[name] = yaml.load(stream, Loader=loader)
        return loaded[name]

    yaml.safe_load = fast_load  # type: ignore[assignment]
    handler = Lines()
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    for project, files in json.loads(sys.argv[1]).items():
        try:
            data = opt_data(project)
        except Exception as exc:
            for path in files:
                print(f"X {path} option data for {project}: {exc}")
            continue
        for path in files:
            handler.records = []
            sys.argv = ["oslo-config-validator", "--opt-data", data, "--input-file", path]
            try:
                validator.main()
            except SystemExit:
                pass
            except Exception as exc:
                print(f"X {path} {type(exc).__name__}: {str(exc)[:200]}")
            print(f"O {path} validated")
            for record in handler.records:
                if record.levelno >= logging.ERROR:
                    print(f"E {path} {record.getMessage()}")
                elif record.levelno >= logging.WARNING:
                    print(f"W {path} {record.getMessage()}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
