"""The `stackwright` command. Thin: parse, call the core or the shell, show the result.

Exit codes: 0 ok / converged / healthy, 1 something failed on a host, 2 bad input.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from stackwright.inventory import LoadedInventory, load_inventory
from stackwright.lab.cli import lab_app
from stackwright.yamlsource import UserError, UserErrors

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
                err.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
            raise typer.Exit(2) from None
        except UserError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _load(path: Path) -> LoadedInventory:
    return load_inventory(path)


def _passwords(loaded: LoadedInventory, path: Path | None) -> Any:
    from stackwright.secrets import default_passwords_path, load_passwords

    return load_passwords(path or default_passwords_path(loaded.path))


def _plan(loaded: LoadedInventory, passwords: Any, release: str | None) -> Any:
    from stackwright.planner import plan_cluster

    return plan_cluster(loaded, passwords, release_name=release)


def _hosts(loaded: LoadedInventory, host: str | None) -> list[str]:
    names = list(loaded.model.nodes)
    if host is None:
        return names
    wanted = [h.strip() for h in host.split(",") if h.strip()]
    for name in wanted:
        if name not in names:
            raise UserError(f"--host {name}: no such node — the inventory has {', '.join(names)}")
    return wanted


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
    release: ReleaseOpt = None,
    passwords: PasswordsOpt = None,
) -> None:
    """Show what would be installed, written, set and restarted on every host — offline.

    Example: stackwright plan examples/seed.yaml --host compute1
    """
    from stackwright.planview import plan_json, write_text

    loaded = _load(inventory)
    pw = _passwords(loaded, passwords)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
