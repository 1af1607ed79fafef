"""Runs ON a host (python3 - '<json>'): oslo.config's validator over the rendered config files.

argv[1] is {"nova": ["/etc/nova/nova.conf", ...], ...}. For each project, the option data is
generated once with `oslo-config-generator --format yaml` from that project's namespaces and the
libraries it uses, as installed on this host (entry points `oslo.config.opts`), and cached under
CACHE keyed by the installed versions. Then `oslo_config.validator` checks each file (its own
rules: unknown options are errors, deprecated names warnings, keystone_authtoken tolerated), and
every option set in a file that its project marks `deprecated_for_removal` is a warning too (the
validator checks names only; the services log these as `Deprecated: Option ... is deprecated for
removal` at every start). Prints `E <file> <message>`, `W <file> <message>`, or
`X <file> <why it could not run>`. A file's lines are kept under CACHE/results, keyed by its bytes,
the option data and argv[2] (this script's own hash): an unchanged file is not validated again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from importlib import metadata
from typing import IO, Any

CACHE = "/var/cache/stackwright/oslo-config"
FORMAT = "3"  # bump to regenerate every host's cached option data
# Distributions whose name is not the project's.
DISTS = {"placement": ("openstack-placement", "placement")}
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
        if ".tests." in entry.name:  # test fixtures (castellan's)
            continue
        if name in DISTS.get(project, (project,)) or name.startswith(LIBRARIES):
            names.append(entry.name)
    return sorted(set(names))


def generate(project: str, path: str) -> None:
    """oslo-config-generator's own code, each namespace loaded on its own: one that cannot be
    imported here is left out instead of (through stevedore) silently dropping others."""
    from oslo_config import generator  # type: ignore[import-not-found]

    wanted = namespaces(project)
    entries = {e.name: e for e in metadata.entry_points(group="oslo.config.opts") if e.name in wanted}

    def loaders(names: list[str]) -> list[tuple[str, Any]]:
        found = []
        for name in names:
            try:
                found.append((name, entries[name].load()))
            except Exception as exc:
                print(f"skipped namespace {name}: {type(exc).__name__}", file=sys.stderr)
        return found

    generator._get_raw_opts_loaders = loaders
    argv = ["--format", "yaml", "--output-file", path]
    for name in wanted:
        argv += ["--namespace", name]
    generator.main(argv)


def versions_key() -> str:
    """The installed versions of every distribution that declares oslo.config options."""
    versions = []
    for entry in metadata.entry_points(group="oslo.config.opts"):
        dist = getattr(entry, "dist", None)
        if dist is not None:
            versions.append(f"{dist.name}={dist.version}")
    return hashlib.sha256("\n".join([FORMAT, *sorted(set(versions))]).encode()).hexdigest()[:16]


def opt_data_path(project: str, versions: str) -> str:
    return os.path.join(CACHE, f"{project}-{versions}.yaml")


def opt_data(project: str, versions: str) -> str:
    """Path of the cached YAML option data for `project`, generating it when missing."""
    path = opt_data_path(project, versions)
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    # This script runs alone on a managed host (no stackwright package there), so it cannot use
    # stackwright.atomic: a temp name of this process's own, then os.replace, does the same here.
    tmp = f"{path}.{os.getpid()}.tmp"
    # A child per project: importing one project's options must not clash with another's.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            generate(project, tmp)
            code = 0
        except BaseException as exc:
            print(f"generator: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0 or not os.path.exists(tmp):
        raise RuntimeError(f"oslo-config-generator failed for {project}")
    os.replace(tmp, path)
    return path


# Projects that register a group's options again under each group named in enabled_backends at
# run time: glance (`fs:file` -> [fs] gets glance_store's), cinder (`ceph` -> [ceph] gets
# backend_defaults', its volume drivers' options).
BACKEND_OPTIONS = {"glance": "glance_store", "cinder": "backend_defaults"}


def dynamic_backends(data: Any, path: str, group: str) -> None:
    """Give the validator the view the project has at run time (BACKEND_OPTIONS)."""
    import configparser

    parser = configparser.RawConfigParser(strict=False)
    parser.read(path)
    backends = parser.get("DEFAULT", "enabled_backends", fallback="")
    options = data.get("options", {})
    for item in backends.split(","):
        name = item.split(":")[0].strip()
        if name and group in options:
            options.setdefault(name, options[group])


def keystoneauth_groups(data: Any, path: str) -> None:
    """A group whose `auth_type` names a keystoneauth plugin gets that plugin's options (and
    auth_type/auth_section) at run time, when the service loads it; some projects' option lists
    carry only part of them (cinder's [nova] lists auth_type but not the password plugin's
    options, its [service_user] the plugin's options but not auth_type). Give the validator the
    run-time view for the groups this file sets auth_type in, and no others: an option of a
    plugin no auth_type loads stays an error, as the service ignores it."""
    import configparser

    from keystoneauth1 import loading

    parser = configparser.RawConfigParser(strict=False)
    parser.read(path)
    options = data.get("options", {})
    for section in parser.sections():
        group = options.get(section)
        plugin = parser.get(section, "auth_type", fallback="")
        if group is None or not plugin:
            continue
        try:
            plugin_options = [o.dest for o in loading.get_plugin_loader(plugin).get_options()]
        except Exception:  # an unknown plugin: the validator reports what it can
            continue
        known = {str(o["name"]).replace("-", "_") for o in group.get("opts", [])}
        loaded = ("auth_type", "auth_section", *plugin_options)
        group["opts"] = [
            *group.get("opts", []),
            *({"name": name, "deprecated_opts": []} for name in loaded if name not in known),
        ]


def deprecated_for_removal(data: Any, path: str) -> list[str]:
    """`section/option is deprecated for removal (reason)` for each such option `path` sets."""
    from oslo_config import cfg

    sections: dict[str, dict[str, Any]] = {}
    cfg.ConfigParser(path, sections).parse()
    found = []
    for section, options in sections.items():
        known = {o["name"]: o for o in data.get("options", {}).get(section, {}).get("opts", [])}
        for option in options:
            opt = known.get(option)
            if opt and opt.get("deprecated_for_removal"):
                reason = " ".join(str(opt.get("deprecated_reason") or "").split())[:160]
                found.append(f"{section}/{option} is deprecated for removal ({reason})")
    return found


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# A file's findings, kept per file: the same bytes checked against the same option data by the
# same script give the same lines, so an unchanged host is not validated again (the validator's
# run is most of a warm doctor's time on a controller).
RESULTS = os.path.join(CACHE, "results")


def result_name(path: str, content: bytes, data: str, script: str) -> tuple[str, str]:
    """(the file's prefix among the results, the result's file name)."""
    prefix = hashlib.sha256(path.encode()).hexdigest()[:16]
    key = hashlib.sha256(b"\0".join([FORMAT.encode(), script.encode(), data.encode(), content])).hexdigest()
    return prefix, f"{prefix}-{key[:32]}"


def cached_result(name: str) -> str | None:
    try:
        with open(os.path.join(RESULTS, name)) as cached:
            return cached.read()
    except OSError:
        return None


def store_result(prefix: str, name: str, text: str) -> None:
    """Keep `text` as the file's one result (an older one of the same file is removed)."""
    os.makedirs(RESULTS, exist_ok=True)
    tmp = os.path.join(RESULTS, f".{name}.{os.getpid()}.tmp")  # see opt_data: no stackwright here
    with open(tmp, "w") as out:
        out.write(text)
    os.replace(tmp, os.path.join(RESULTS, name))
    for old in os.listdir(RESULTS):
        if old.startswith(f"{prefix}-") and old != name:
            os.unlink(os.path.join(RESULTS, old))


def main() -> None:
    files_by_project: dict[str, list[str]] = json.loads(sys.argv[1])
    script = sys.argv[2] if len(sys.argv) > 2 else ""
    versions = versions_key()
    wanted: dict[str, list[tuple[str, str, str]]] = {}  # project -> (path, prefix, result name)
    for project, files in files_by_project.items():
        for path in files:
            try:
                with open(path, "rb") as source:
                    content = source.read()
            except OSError as exc:
                print(f"X {path} unreadable: {exc}")
                continue
            prefix, name = result_name(path, content, opt_data_path(project, versions), script)
            text = cached_result(name)
            if text is None:
                wanted.setdefault(project, []).append((path, prefix, name))
            else:
                sys.stdout.write(text)
    if wanted:
        validate(wanted, versions)
    sys.stdout.flush()


def validate(wanted: dict[str, list[tuple[str, str, str]]], versions: str) -> None:
    import yaml
    from oslo_config import validator

    loaded: dict[Any, Any] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def fast_load(stream: IO[str]) -> Any:
        """The option data: parsed from its JSON copy when the cache has one (several times faster
        than even the C YAML loader on nova's), else with the C loader, which writes that copy."""
        name = getattr(stream, "name", None)
        if name in loaded:
            return loaded[name]
        copy = f"{name}.json" if isinstance(name, str) and name.startswith(CACHE) else None
        if copy and os.path.exists(copy):
            with open(copy) as cached:
                loaded[name] = json.load(cached)
            return loaded[name]
        loaded[name] = yaml.load(stream, Loader=loader)
        if copy:
            tmp = f"{copy}.{os.getpid()}.tmp"
            try:
                with open(tmp, "w") as out:
                    json.dump(loaded[name], out)
                os.replace(tmp, copy)
            except (OSError, TypeError, ValueError):  # no copy then: the YAML is read next time too
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return loaded[name]

    yaml.safe_load = fast_load  # type: ignore[assignment]
    handler = Lines()
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    for project, files in wanted.items():
        try:
            data = opt_data(project, versions)
        except Exception as exc:
            for path, _, _ in files:
                print(f"X {path} option data for {project}: {exc}")
            continue
        for path, prefix, name in files:
            lines: list[str] = []
            with open(data) as stream:
                keystoneauth_groups(fast_load(stream), path)
            if project in BACKEND_OPTIONS:
                with open(data) as stream:
                    dynamic_backends(fast_load(stream), path, BACKEND_OPTIONS[project])
            handler.records = []
            sys.argv = ["oslo-config-validator", "--opt-data", data, "--input-file", path]
            try:
                validator.main()
            except SystemExit:
                pass
            except Exception as exc:
                lines.append(f"X {path} {type(exc).__name__}: {str(exc)[:200]}")
            lines.append(f"O {path} validated")
            with open(data) as stream:
                removal = deprecated_for_removal(fast_load(stream), path)
            lines += [f"W {path} {message}" for message in removal]
            for level, message in dict.fromkeys((r.levelno, r.getMessage()) for r in handler.records):
                if level >= logging.ERROR:
                    lines.append(f"E {path} {message}")
                elif level >= logging.WARNING:
                    lines.append(f"W {path} {message}")
            text = "".join(f"{line}\n" for line in lines)
            sys.stdout.write(text)
            if not any(line.startswith("X ") for line in lines):  # a failure to run is not a finding
                with contextlib.suppress(OSError):  # validated again next time
                    store_result(prefix, name, text)


if __name__ == "__main__":
    main()
