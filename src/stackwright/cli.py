"""The `stackwright` command. Thin: parse, call the core or the shell, show the result.

Exit codes: 0 ok / converged / healthy, 1 something failed on a host, 2 bad input.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from stackwright.inventory import LoadedInventory, load_inventory, select_hosts
from stackwright.lab.cli import lab_app
from stackwright.yamlsource import UserError, UserErrors

if TYPE_CHECKING:
    from stackwright.smoke.browser import UiReport
    from stackwright.smoke.run import UiCheck, UiTarget

app = typer.Typer(
    name="stackwright",
    help="Deploy a multi-node OpenStack cloud onto Debian servers from one short inventory file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(lab_app, name="lab")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

InventoryArg = Annotated[Path, typer.Argument(help="The inventory YAML file.", show_default=False)]
ReleaseOpt = Annotated[
    str | None, typer.Option("--release", help="Use this release instead of the inventory's.")
]
PasswordsOpt = Annotated[
    Path | None,
    typer.Option("--passwords", help="Passwords file (default: passwords.yaml beside the inventory)."),
]


def user_errors_exit_2(func: F) -> F:
    """Turn user mistakes into one line each on stderr and exit code 2 — never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserErrors as exc:
            for error in exc.errors:
                err.print(f"[red]error:[/red] {escape(str(error))}", markup=True, highlight=False)
            raise typer.Exit(2) from None
        except UserError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _load(path: Path) -> LoadedInventory:
    loaded = load_inventory(path)
    why = loaded.tls.issued_because if loaded.tls else None
    if why not in (None, "new"):  # a renewal (first use says nothing): the next apply serves it
        err.print(
            f"TLS front: certificate issued ({escape(why)}) in {loaded.path.parent / 'tls'}", highlight=False
        )
    return loaded


def _passwords(loaded: LoadedInventory, path: Path | None) -> Any:
    from stackwright.secrets import default_passwords_path, load_passwords

    passwords = load_passwords(path or default_passwords_path(loaded.path))
    for warning in passwords.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    return passwords


def _plan(loaded: LoadedInventory, passwords: Any, release: str | None) -> Any:
    from stackwright.planner import plan_cluster

    return plan_cluster(loaded, passwords, release_name=release)


def _hosts(loaded: LoadedInventory, host: str | None) -> list[str]:
    return select_hosts(loaded, host, "--host")


@app.command()
@user_errors_exit_2
def validate(inventory: InventoryArg, release: ReleaseOpt = None, passwords: PasswordsOpt = None) -> None:
    """Check an inventory: syntax, keys, addresses, roles and overrides.

    Example: stackwright validate examples/seed.yaml
    """
    loaded = _load(inventory)
    _plan(loaded, _passwords(loaded, passwords), release)  # overrides are checked against the render
    model = loaded.model
    out.print(
        f"[green]ok[/green] {inventory}: {len(model.nodes)} nodes, release {release or model.release}, "
        f"controller {model.controller_name}, {model.tenant_network_type} tunnels"
    )


@app.command()
def schema() -> None:
    """Print the inventory's JSON schema (for editors).

    Example: stackwright schema > inventory.schema.json
    """
    from stackwright.inventory import Inventory

    out.out(json.dumps(Inventory.model_json_schema(), indent=2))


@app.command()
@user_errors_exit_2
def plan(
    inventory: InventoryArg,
    host: Annotated[str | None, typer.Option("--host", help="Only these hosts (comma-separated).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Connect and show exact diffs against the hosts as they are.")
    ] = False,
    release: ReleaseOpt = None,
    passwords: PasswordsOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
) -> None:
    """Show what would be installed, written, set and restarted on every host — offline unless --live.

    Example: stackwright plan examples/seed.yaml --host compute1
    """
    from stackwright.planview import plan_json, write_text

    loaded = _load(inventory)
    pw = _passwords(loaded, passwords)
    if live:
        raise typer.Exit(_live_plan(loaded, pw, release, host, as_json, accept_new_host_keys))
    cluster = _plan(loaded, pw, release)
    hosts = _hosts(loaded, host)
    if as_json:
        sys.stdout.write(plan_json(cluster, hosts, pw.masker()) + "\n")
        return
    write_text(
        cluster, hosts, pw.masker(), sys.stdout, color=out.is_terminal and not os.environ.get("NO_COLOR")
    )
    out.print(
        f"\n[bold]{len(hosts)} hosts[/bold], release {cluster.release}; offline plan: every file shown "
        f"as new, secrets shown as ••••. Passwords: {pw.path}"
    )


@app.command()
@user_errors_exit_2
def render(
    inventory: InventoryArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write DIR/<host>/<path> into.")],
    host: Annotated[str | None, typer.Option("--host", help="Only these hosts (comma-separated).")] = None,
    release: ReleaseOpt = None,
    passwords: PasswordsOpt = None,
) -> None:
    """Write every host's files under DIR/<host>/ with their real paths (secret files 0600).

    Example: stackwright render examples/seed.yaml --release grizzly --out /tmp/seed-grizzly
    """
    from stackwright.renderdir import write_rendered

    loaded = _load(inventory)
    cluster = _plan(loaded, _passwords(loaded, passwords), release)
    written = write_rendered(cluster, _hosts(loaded, host), out_dir)
    out.print(f"wrote {written} files under {out_dir}/<host>/ (release {cluster.release})")


@app.command()
@user_errors_exit_2
def graph(
    inventory: InventoryArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="SVG file to write.")] = Path("topology.svg"),
) -> None:
    """Draw nodes, networks, bridges and tunnels as an SVG picture.

    Example: stackwright graph examples/seed.yaml -o topology.svg
    """
    from stackwright.atomic import atomic_write
    from stackwright.graph import topology_svg

    loaded = _load(inventory)
    atomic_write(output, topology_svg(loaded.model), mode=0o644, keep_previous=False)
    out.print(f"wrote {output}")


LimitOpt = Annotated[str | None, typer.Option("--limit", help="Only these hosts (comma-separated).")]
AcceptNewOpt = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-keys",
        help="Record the SSH key of a host seen for the first time, once (see `stackwright trust`); "
        "a changed key is still refused.",
    ),
]


def _trust(loaded: LoadedInventory, accept_new: bool) -> Any:
    from stackwright.engine.hostkeys import HostTrust

    return HostTrust.beside(loaded.path, accept_new=accept_new)


def _show_accepted(trust: Any, console: Console) -> None:
    for line in trust.accepted:
        console.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)


def _live_plan(
    loaded: LoadedInventory, pw: Any, release: str | None, limit: str | None, as_json: bool, accept_new: bool
) -> int:
    from stackwright.applyview import print_live_plan, print_preflight, reports_json
    from stackwright.deploy import converge, open_session, run_preflight
    from stackwright.engine.converge import Options

    trust = _trust(loaded, accept_new)
    session = open_session(loaded, pw, release, limit, trust)
    _show_accepted(trust, err)
    run_preflight(session)
    reports = converge(session, Options(dry_run=True), lambda *_: None)
    mask = pw.masker()
    if as_json:
        sys.stdout.write(reports_json(reports, mask) + "\n")
        return 0 if all(r.ok for r in reports.values()) else 1
    print_preflight(out, session.preflights)
    total = print_live_plan(out, reports, mask)
    out.print(
        f"\n{total} changes planned on {len(reports)} hosts"
        if total
        else "\nno changes: hosts match the plan"
    )
    return 0 if all(r.ok for r in reports.values()) else 1


@app.command()
@user_errors_exit_2
def preflight(
    inventory: InventoryArg,
    limit: LimitOpt = None,
    release: ReleaseOpt = None,
    passwords: PasswordsOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
) -> None:
    """Check hosts before changing them: SSH, Debian release, addresses, clock, KVM (and pick virt_type).

    Example: stackwright preflight examples/seed.yaml
    """
    from stackwright.applyview import print_preflight
    from stackwright.deploy import open_session, run_preflight

    loaded = _load(inventory)
    trust = _trust(loaded, accept_new_host_keys)
    session = open_session(loaded, _passwords(loaded, passwords), release, limit, trust)
    _show_accepted(trust, out)
    run_preflight(session)
    print_preflight(out, session.preflights)
    raise typer.Exit(0 if all(p.ok for p in session.preflights.values()) else 1)


@app.command()
@user_errors_exit_2
def apply(
    inventory: InventoryArg,
    limit: LimitOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before changing hosts.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
    no_upgrade: Annotated[bool, typer.Option("--no-upgrade", help="Skip apt full-upgrade.")] = False,
    allow_reboot: Annotated[
        bool, typer.Option("--allow-reboot", help="Reboot hosts whose upgrade requires it.")
    ] = False,
    rolling: Annotated[
        bool,
        typer.Option(
            "--rolling",
            help="Update a deployed cloud one node at a time: compute nodes drained first, each node "
            "healthy again before the next; stops at the first that is not.",
        ),
    ] = False,
    health_wait: Annotated[
        float,
        typer.Option("--health-wait", min=10, help="With --rolling: seconds a node has to report healthy."),
    ] = 300,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every step, changed or not.")
    ] = False,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            min=0,
            max=1000,
            help="Converge at most N hosts at once (0, the default: all); the controller starts first.",
        ),
    ] = 0,
    release: ReleaseOpt = None,
    passwords: PasswordsOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
) -> None:
    """Converge the hosts to the plan over SSH: show the live plan, ask, apply, summarize.

    Example: stackwright apply examples/seed.yaml --limit compute1 --yes
    """
    import time

    from stackwright.applyview import (
        ProgressView,
        print_live_plan,
        print_preflight,
        print_summary,
        reports_json,
    )
    from stackwright.deploy import check_parallel, converge, open_session, run_preflight, write_run_log
    from stackwright.engine.converge import Options
    from stackwright.engine.stop import StopRequest

    started = time.monotonic()
    loaded = _load(inventory)
    pw = _passwords(loaded, passwords)
    mask = pw.masker()
    console = Console(highlight=False, soft_wrap=True, record=True, stderr=as_json)
    trust = _trust(loaded, accept_new_host_keys)
    check_parallel(loaded.model, select_hosts(loaded, limit, "--limit"), parallel)
    session = open_session(loaded, pw, release, limit, trust)
    _show_accepted(trust, console)
    run_preflight(session)
    print_preflight(console, session.preflights)
    if not yes:
        dry = converge(session, Options(dry_run=True, parallel=parallel), lambda *_: None)
        planned = print_live_plan(console, dry, mask)
        if planned == 0:
            console.print("\nno changes: hosts match the plan")
        if not sys.stdin.isatty():
            # A pipeline cannot answer the question: nothing to do is success, anything else needs --yes.
            failed = [n for n, r in dry.items() if not r.ok]
            failed += [n for n, p in session.preflights.items() if not p.ok and n not in failed]
            if failed:
                console.print(f"[red]not applied:[/red] {', '.join(failed)} failed (above)")
                raise typer.Exit(1)
            if planned == 0:
                raise typer.Exit(0)
            raise UserError(
                f"{planned} changes planned and stdin is not a terminal to confirm them — pass --yes to apply"
            )
        if not typer.confirm("\napply these changes?", default=False):
            raise typer.Exit(1)
    options = Options(upgrade=not no_upgrade, allow_reboot=allow_reboot, parallel=parallel)
    if rolling:
        _apply_rolling(session, options, console, pw, as_json, health_wait, verbose)
    stop = StopRequest()
    stop.install()
    with ProgressView(console, session.hosts, mask, verbose) as view:
        reports = converge(session, options, view, stop)
    for name, report in session.preflights.items():
        if name in session.hosts and not report.ok:
            from stackwright.engine.converge import HostReport
            from stackwright.engine.remote import RemoteError, Result

            failure = "; ".join(line.message for line in report.failures())
            reports[name] = HostReport(name, error=RemoteError(name, "preflight", Result(1, "", failure), ""))
    print_summary(console, reports, mask, time.monotonic() - started)
    if all(r.ok for r in reports.values()):
        from stackwright.cloud import write_clouds_yaml
        from stackwright.tls import client_ca

        clouds = loaded.path.parent / "clouds.yaml"
        write_clouds_yaml(clouds, loaded.model, pw, cacert=client_ca(loaded.model, loaded.path))
        console.print(
            f"admin credentials: {clouds} (OS_CLIENT_CONFIG_FILE={clouds} openstack --os-cloud stackwright)"
        )
    log = write_run_log("apply", mask(console.export_text()))
    console.print(f"log: {log}")
    if as_json:
        sys.stdout.write(reports_json(reports, mask) + "\n")
    raise typer.Exit(0 if all(r.ok for r in reports.values()) else 1)


def _apply_rolling(
    session: Any, options: Any, console: Console, pw: Any, as_json: bool, health_wait: float, verbose: bool
) -> None:
    from stackwright.applyview import ProgressView
    from stackwright.checks.verify import http_getter
    from stackwright.cloud import admin_connection
    from stackwright.deploy import write_run_log
    from stackwright.engine.converge import upgrade_summary
    from stackwright.engine.stop import StopRequest
    from stackwright.rolling import roll
    from stackwright.tls import client_ca

    failed = [n for n, p in session.preflights.items() if not p.ok]
    if failed:
        raise UserError(f"--rolling needs every host ready: preflight failed on {', '.join(failed)} (above)")
    _require_reachable(session.loaded)
    mask = pw.masker()
    stop = StopRequest()
    stop.install()
    with _cloud_api("apply --rolling"), ProgressView(console, session.hosts, mask, verbose) as view:
        report = roll(
            session,
            admin_connection(session.loaded, pw),
            options,
            view,
            lambda m: console.print(f"[dim]{escape(mask(m))}[/dim]"),
            get=http_getter(client_ca(session.loaded.model, session.loaded.path)),
            health_wait_s=health_wait,
            stop=stop,
        )
    for node in report.nodes:
        mark = "[green]✓[/green]" if node.ok else "[red]✗[/red]"
        apis = ", ".join(f"{k} {v:.1f} s" for k, v in node.api_outage_s.items() if v)
        updated = f"; {upgrade_summary(node.upgraded)}" if node.upgraded else "; nothing to upgrade"
        line = f"{node.host}: {node.changed} changed, {node.seconds:.1f} s, {node.note}{updated}"
        console.print(f"{mark} {escape(mask(line))}" + (f"; APIs unanswered: {apis}" if apis else ""))
    if not report.ok:
        console.print(f"[red]stopped at {report.stopped_at}:[/red] {escape(mask(report.reason))}")
        if report.untouched:
            console.print(f"left untouched: {', '.join(report.untouched)}")
    console.print(f"log: {write_run_log('apply', mask(console.export_text()))}")
    if as_json:
        sys.stdout.write(mask(json.dumps(report.as_json(), indent=2)) + "\n")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
@user_errors_exit_2
def trust(
    inventory: InventoryArg,
    limit: LimitOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Record without asking.")] = False,
) -> None:
    """Show each host's SSH host key fingerprint (as `ssh-keygen -l` does) and record it in the
    known_hosts file beside the inventory; apply, plan --live, preflight and doctor trust no other key.

    Compare the fingerprints with the hosts' own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`
    on their console) before you say yes. Example: stackwright trust examples/seed.yaml --limit compute1
    """
    from stackwright.engine.hostkeys import describe, known_hosts_path, record_sightings, survey
    from stackwright.engine.remote import ssh_address

    loaded = _load(inventory)
    path = known_hosts_path(loaded.path)
    names = select_hosts(loaded, limit, "--limit")
    sightings = survey(path, {name: ssh_address(loaded.model, name) for name in names})
    # one line per host, never wrapped or cut: fingerprints are compared character by character
    out.print(f"host keys offered, against {path}:")
    for s in sightings:
        address = s.address if s.port == 22 else f"{s.address}:{s.port}"
        if s.offered is None:
            out.print(f"  {s.name} ({address}): [red]unreachable[/red] {escape(s.error)}", highlight=False)
            continue
        status = {"new": "[yellow]new[/yellow]", "recorded": "[green]recorded[/green]"}.get(s.status, "")
        if s.status == "CHANGED":
            status = f"[red]CHANGED[/red] (recorded: {', '.join(describe(k) for k in s.known)})"
        out.print(f"  {s.name} ({address}): {describe(s.offered)} {status}", highlight=False)
    todo = [s for s in sightings if s.status in ("new", "CHANGED")]
    if not todo:
        out.print("nothing to record")
    elif yes or typer.confirm(f"record these {len(todo)} host keys in {path}?", default=False):
        out.print(f"recorded {record_sightings(path, todo)} host keys in {path}")
    else:
        raise typer.Exit(1)
    raise typer.Exit(1 if any(s.status == "unreachable" for s in sightings) else 0)


@app.command()
@user_errors_exit_2
def verify(
    inventory: InventoryArg,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Also boot a test VM and prove its DHCP lease and metadata.")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the smoke test's resources in place.")] = False,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes/--no-volumes",
            help="With the smoke test and storage nodes: also attach a volume the guest writes and reads "
            "back, and boot a server from a volume (the default).",
        ),
    ] = True,
    ui: Annotated[
        bool,
        typer.Option(
            "--ui",
            help="With the smoke test: log into the dashboard in a headless chromium and read the VM's "
            "console (implies --smoke).",
        ),
    ] = False,
    tempest: Annotated[
        bool,
        typer.Option("--tempest", help="Run OpenStack's Tempest suite (smoke tests; --full for all)."),
    ] = False,
    full: Annotated[bool, typer.Option("--full", help="With --tempest: every test, not only smoke.")] = False,
    regex: Annotated[
        str | None, typer.Option("--regex", help="With --tempest: only tests whose id matches.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=16, help="With --tempest: tests run in parallel.")
    ] = 2,
    wait: Annotated[
        float,
        typer.Option("--wait", help="Seconds to keep re-checking while something is still coming up."),
    ] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results on stdout.")] = False,
    passwords: PasswordsOpt = None,
) -> None:
    """Prove the cloud works: nova services (the smiley faces), neutron agents, hypervisors, endpoints.

    Example: stackwright verify examples/seed.yaml --smoke
    Example: stackwright verify examples/seed.yaml --smoke --ui
    Example: stackwright verify examples/seed.yaml --tempest --concurrency 2
    """
    import dataclasses

    from stackwright.checks.verify import all_ok, http_getter, show_verify
    from stackwright.checks.verify import verify as run_verify
    from stackwright.cloud import admin_connection
    from stackwright.tls import client_ca

    loaded = _load(inventory)
    pw = _passwords(loaded, passwords)
    _require_reachable(loaded)
    smoke = smoke or ui
    console = Console(highlight=False, soft_wrap=True, stderr=as_json)
    cafile = client_ca(loaded.model, loaded.path)
    get = http_getter(cafile)
    lines = _verify_until(
        lambda: run_verify(admin_connection(loaded, pw), loaded.model, get=get), wait, console
    )
    cache_stats = None
    if loaded.model.package_cache_host is not None:
        from stackwright.package_cache import check

        cache_line, cache_stats = check(loaded)
        lines.append(cache_line)
    if loaded.model.names_with("storage"):
        from stackwright import storage_check

        lines += storage_check.check(loaded, pw)
    show_verify(lines, console)
    ok = all_ok(lines)
    result: dict[str, Any] = {
        "ok": ok,
        "checks": [
            {"id": line.id, "ok": line.ok, "message": line.message, "hint": line.hint} for line in lines
        ],
    }
    if cache_stats is not None:
        result["package_cache"] = dataclasses.asdict(cache_stats) | {"hit_rate": cache_stats.hit_rate}
    if smoke and ok:
        from stackwright.smoke.image import build_guest
        from stackwright.smoke.run import run_smoke, show_smoke

        guest = build_guest(progress=lambda m: console.print(f"[dim]{m}[/dim]"))
        report = run_smoke(
            admin_connection(loaded, pw),
            loaded.model,
            guest,
            keep,
            progress=lambda m: console.print(f"[dim]{m}[/dim]"),
            ui_check=_browser_check(loaded, console) if ui else None,
            volumes=volumes,
        )
        show_smoke(report, console)
        ok = report.ok
        result["smoke"] = {k: v for k, v in dataclasses.asdict(report).items() if k != "console_tail"}
        result["ok"] = ok
    elif smoke:
        console.print("[red]smoke test not run:[/red] fix the failing checks above first")
    if tempest and ok:
        from stackwright.deploy import default_log_dir
        from stackwright.tempest.run import run_tempest
        from stackwright.tempest.view import show_tempest

        tempest_report = run_tempest(
            loaded.model,
            pw,
            release=loaded.model.release,
            mode="full" if full else "smoke",
            regex=regex,
            concurrency=concurrency,
            log_dir=default_log_dir(),
            progress=lambda m: console.print(f"[dim]{m}[/dim]"),
            ca_file=cafile,
        )
        show_tempest(tempest_report, console)
        counted = tempest_report.summary
        if regex and not counted.passed + counted.failed + counted.skipped:
            among = "" if full else " among the smoke tests"
            raise UserError(f"no Tempest test matches --regex {regex!r}{among} — check it, or add --full")
        ok = tempest_report.ok
        result["tempest"] = tempest_report.as_json()
        result["ok"] = ok
    elif tempest:
        console.print("[red]Tempest not run:[/red] fix the failing checks above first")
    if as_json:
        sys.stdout.write(pw.masker()(json.dumps(result, indent=2, default=str)) + "\n")
    raise typer.Exit(0 if ok else 1)


def _browser_check(loaded: LoadedInventory, console: Console) -> UiCheck:
    """verify --ui's browser run, its screenshots kept beside the run logs."""
    import time as _time

    from stackwright.dashboard import dashboard_url
    from stackwright.deploy import default_log_dir
    from stackwright.smoke.browser import check_console
    from stackwright.tls import client_ca

    model = loaded.model
    trust = (loaded.tls.spki_sha256 if loaded.tls else None, client_ca(model, loaded.path))

    out_dir = default_log_dir() / f"ui-{_time.strftime('%Y%m%dT%H%M%S')}"

    def check(target: UiTarget) -> UiReport:
        return check_console(
            dashboard_url(model),
            target.username,
            target.password,
            target.server_id,
            target.server_name,
            target.marker,
            out_dir,
            say=lambda m: console.print(f"[dim]{escape(m)}[/dim]"),
            trust=trust,
        )

    return check


def _verify_until(check: Callable[[], Any], wait: float, console: Console) -> Any:
    """Agents report in a few seconds after they start: re-check (bounded) right after an apply."""
    from stackwright.checks.verify import all_ok
    from stackwright.polling import poll

    def not_yet(lines: Any) -> None:
        failing = ", ".join(line.id for line in lines if not line.ok)
        console.print(f"[dim]not yet: {escape(failing)} — checking again in 5 s[/dim]")

    return poll(check, within_s=wait, every_s=5, done=all_ok, between=not_yet)


def _answers(address: str, port: int) -> bool:
    import socket

    try:
        socket.create_connection((address, port), timeout=3).close()
    except OSError:
        return False
    return True


def _require_reachable(loaded: LoadedInventory) -> None:
    """Talk to the controller only if its management address answers (it may be a host that is down)."""
    address = str(loaded.model.controller.management)
    if not _answers(address, 5000):
        raise UserError(
            f"the controller's Keystone at {address}:5000 does not answer — is the cloud deployed "
            "(`stackwright apply`) and the host up?"
        )


@app.command()
@user_errors_exit_2
def doctor(
    inventory: InventoryArg,
    host: Annotated[str | None, typer.Option("--host", help="Only these hosts (comma-separated).")] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the safe fixes, then check again.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results on stdout.")] = False,
    release: ReleaseOpt = None,
    passwords: PasswordsOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
) -> None:
    """Diagnose a deployed cloud: each check names the cause and the fix; --fix applies the safe ones.

    Example: stackwright doctor examples/seed.yaml --host compute1 --fix
    """
    from stackwright.checks.doctor.runner import run_doctor
    from stackwright.checks.doctor.view import report_json, show_report
    from stackwright.deploy import applicable_release

    loaded = _load(inventory)
    pw = _passwords(loaded, passwords)
    mask = pw.masker()
    name = applicable_release(loaded, release).name
    hosts = _hosts(loaded, host)
    console = Console(highlight=False, soft_wrap=True, stderr=as_json)
    trust = _trust(loaded, accept_new_host_keys)
    report, remotes = run_doctor(loaded, pw, release=name, hosts=hosts, trust=trust)
    _show_accepted(trust, console)
    show_report(report, console, mask)
    if fix and not report.ok:
        report = _fix_and_recheck(report, remotes, loaded, pw, name, hosts, console)
    if as_json:
        sys.stdout.write(report_json(report, mask) + "\n")
    raise typer.Exit(0 if report.ok else 1)


HostArg = Annotated[str, typer.Argument(help="A compute node of the inventory.", show_default=False)]


@contextlib.contextmanager
def _cloud_api(what: str) -> Iterator[None]:
    """An API call that failed (timed out, refused, answered an error) mid-way: one line naming it
    and exit 1 (the cloud's failure, not the caller's), never a traceback."""
    from keystoneauth1.exceptions import ClientException
    from openstack.exceptions import SDKException

    try:
        yield
    except (SDKException, ClientException) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        err.print(
            f"[red]error:[/red] {escape(what)} stopped: the cloud's API failed: {escape(first)} — "
            "see the controller's nova-api.log; `stackwright doctor` checks the services",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(1) from None


def _compute_node(loaded: LoadedInventory, host: str) -> str:
    computes = loaded.model.names_with("compute")
    if host not in computes:
        raise UserError(f"{host!r} is not a compute node of {loaded.path} — one of: {', '.join(computes)}")
    return host


@app.command()
@user_errors_exit_2
def drain(
    inventory: InventoryArg,
    host: HostArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results on stdout.")] = False,
    passwords: PasswordsOpt = None,
) -> None:
    """Take a compute node out of service: disable it and live-migrate its instances elsewhere.

    Example: stackwright drain examples/seed.yaml compute1
    """
    from stackwright.cloud import admin_connection
    from stackwright.maintenance import drain as run_drain

    loaded = _load(inventory)
    node = _compute_node(loaded, host)
    pw = _passwords(loaded, passwords)
    _require_reachable(loaded)
    console = Console(highlight=False, soft_wrap=True, stderr=as_json)
    with _cloud_api(f"drain {node}"):
        report = run_drain(
            admin_connection(loaded, pw),
            node,
            progress=lambda m: console.print(f"[dim]{m}[/dim]"),
        )
    _finish_moves(report, console, "drained", as_json)


def _finish_moves(report: Any, console: Console, verb: str, as_json: bool, then: str = "") -> None:
    """Each instance's move, the verdict, `then` (a hint), the JSON; exit 0 when all moved."""
    for moved in report.moved:
        if moved.ok:
            console.print(
                f"[green]✓[/green] {moved.name}: {moved.source} → {moved.target} ({moved.seconds:.1f} s)"
            )
        else:
            console.print(f"[red]✗[/red] {moved.name}: stays on {moved.source} — {moved.error}")
    verdict = verb if report.ok else f"[red]not {verb}[/red]"
    console.print(
        f"{report.host} {verdict}: {sum(m.ok for m in report.moved)} of {len(report.moved)} instances moved"
    )
    if then:
        console.print(then)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
@user_errors_exit_2
def evacuate(
    inventory: InventoryArg,
    host: HostArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results on stdout.")] = False,
    passwords: PasswordsOpt = None,
) -> None:
    """Rebuild a dead compute node's instances on other nodes (its service fenced: forced down).

    Only for a node that is down: one that still answers SSH is refused (drain it instead, or its
    instances would run twice). When the node is repaired, `undrain` puts it back in service.

    Example: stackwright evacuate examples/seed.yaml compute1
    """
    from stackwright.cloud import admin_connection
    from stackwright.maintenance import evacuate as run_evacuate

    loaded = _load(inventory)
    node = _compute_node(loaded, host)
    pw = _passwords(loaded, passwords)
    address = str(loaded.model.nodes[node].management)
    if _answers(address, 22):
        raise UserError(
            f"{node} ({address}) answers SSH: it is not down — `stackwright drain` moves a live node's "
            "instances; evacuate only a node that is off"
        )
    _require_reachable(loaded)
    console = Console(highlight=False, soft_wrap=True, stderr=as_json)
    with _cloud_api(f"evacuate {node}"):
        report = run_evacuate(
            admin_connection(loaded, pw),
            node,
            progress=lambda m: console.print(f"[dim]{m}[/dim]"),
        )
    _finish_moves(
        report,
        console,
        "evacuated",
        as_json,
        then=f"[dim]when {node} is repaired and up: stackwright undrain {inventory} {node}[/dim]",
    )


@app.command()
@user_errors_exit_2
def undrain(inventory: InventoryArg, host: HostArg, passwords: PasswordsOpt = None) -> None:
    """Put a drained or evacuated compute node back in service (nova-compute enabled, not forced down).

    Example: stackwright undrain examples/seed.yaml compute1
    """
    from stackwright.cloud import admin_connection
    from stackwright.maintenance import undrain as run_undrain

    loaded = _load(inventory)
    node = _compute_node(loaded, host)
    pw = _passwords(loaded, passwords)
    _require_reachable(loaded)
    with _cloud_api(f"undrain {node}"):
        changed = run_undrain(admin_connection(loaded, pw), node)
    out.print(f"{node}: nova-compute {'enabled' if changed else 'was enabled already'}")


def _fix_and_recheck(
    report: Any,
    remotes: Any,
    loaded: LoadedInventory,
    pw: Any,
    release: str,
    hosts: list[str],
    console: Console,
) -> Any:
    """Apply the safe fixes; check again (bounded: services take a moment to report in)."""
    from stackwright.checks.doctor.runner import apply_fixes, run_doctor
    from stackwright.checks.doctor.view import show_fixes, show_report
    from stackwright.polling import poll

    fixes = apply_fixes(report.rows, remotes)
    report.fixes = fixes
    show_fixes(report, console, pw.masker())
    if not fixes:
        return report
    applied = {f.fix for f in fixes if f.ok}

    def mended(report: Any) -> bool:
        # Wait only for what a fix should mend: a row whose fix ran and that still fails.
        return not any(r.failed and r.action in applied for r in report.rows)

    again = poll(
        lambda: run_doctor(loaded, pw, release=release, hosts=hosts, remotes=remotes)[0],
        within_s=90,
        every_s=5,
        done=mended,
        between=lambda _: console.print("[dim]not yet passing after the fixes — checking again in 5 s[/dim]"),
    )
    again.fixes = fixes
    console.print("[bold]after the fixes:[/bold]")
    show_report(again, console, pw.masker())
    return again


_ENGINE_COMMANDS = {"apply", "preflight", "verify", "doctor"}  # `trust` needs no gevent: threads


def main() -> None:
    if len(sys.argv) > 1 and (sys.argv[1] in _ENGINE_COMMANDS or "--live" in sys.argv):
        from stackwright.engine import patch

        patch()
    app()


if __name__ == "__main__":
    main()
