"""`stackwright lab ...` commands: parse, call the lab modules, render with Rich.

Exit codes: 0 ok, 1 something failed on a host (or on this machine), 2 bad input (user error).
`lab exec` and `lab ssh` exit with the remote command's code, as ssh does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stackwright.inventory import load_inventory
from stackwright.lab.layout import LabLayout
from stackwright.lab.system import HostCommandError
from stackwright.yamlsource import UserError, UserErrors

lab_app = typer.Typer(help="Throwaway Debian hosts on this machine, with the inventory's addresses.")
console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

FileArg = Annotated[Path, typer.Argument(help="Inventory YAML, e.g. examples/seed.yaml.")]
HostArg = Annotated[str, typer.Argument(help="A node name from the inventory.")]


def _layout(file: Path) -> LabLayout:
    return LabLayout.of(load_inventory(file).model, file)


@contextmanager
def _errors() -> Iterator[None]:
    """User mistakes: one line each, exit 2. Host failures: one line, exit 1. No tracebacks."""
    try:
        yield
    except UserErrors as exc:
        for err in exc.errors:
            console.print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(2) from None
    except UserError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except HostCommandError as exc:
        console.print(f"[red]failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def _with_status(what: str, work: Callable[[Callable[[str], None]], T]) -> T:
    with console.status(what) as status:
        return work(lambda msg: status.update(f"{what}: {msg}"))


@lab_app.command()
def up(
    file: FileArg,
    ensure_packages: Annotated[
        bool, typer.Option("--ensure-packages", help="apt-get install missing tools the lab needs.")
    ] = False,
) -> None:
    """Boot one host per inventory node. Example: stackwright lab up examples/seed.yaml"""
    from stackwright.lab.up import up as do_up

    with _errors():
        layout = _layout(file)
        result = _with_status("lab up", lambda p: do_up(layout, ensure_packages=ensure_packages, progress=p))
    note = f" ({', '.join(result.already_running)} already running)" if result.already_running else ""
    console.print(
        f"[green]lab up:[/] {len(layout.hosts)} host(s) answer SSH after {result.seconds:.1f} s{note}; "
        f"try `ssh {layout.hosts[0].name}` or `stackwright lab status {file}`",
        highlight=False,
    )


@lab_app.command()
def status(file: FileArg) -> None:
    """Per host: running, PIDs, addresses inside, SSH. Example: stackwright lab status seed.yaml"""
    from stackwright.lab.control import status as do_status

    with _errors():
        layout = _layout(file)
        rows = do_status(layout)
    table = Table(title=f"lab {layout.lab_id}")
    for col in ("host", "running", "PID", "addresses", "SSH", "systemd"):
        table.add_column(col)
    for r in rows:
        addrs = " ".join(f"{k}={v}" for k, v in r.addresses.items())
        table.add_row(
            r.name,
            "[green]yes[/]" if r.running else "[red]no[/]",
            str(r.nspawn_pid or r.supervisor_pid or "-"),
            addrs or "-",
            "[green]ok[/]" if r.ssh_ok else "[red]no[/]",
            r.system_state or "-",
        )
    Console().print(table)
    if not all(r.running and r.ssh_ok for r in rows):
        raise typer.Exit(1)


@lab_app.command()
def down(file: FileArg) -> None:
    """Stop hosts and proxy, remove overlays, bridges, veths. Example: stackwright lab down seed.yaml"""
    from stackwright.lab.down import down as do_down
    from stackwright.lab.down import leftovers

    with _errors():
        layout = _layout(file)
        result = _with_status("lab down", lambda p: do_down(layout, progress=p))
        left = leftovers(layout)
    if result.killed:
        console.print(f"[yellow]had to kill PIDs {result.killed} (no clean poweroff in time)[/]")
    if left:
        console.print(f"[red]failed:[/] still there after lab down: {', '.join(left)}")
        raise typer.Exit(1)
    stopped = ", ".join(result.stopped) or "nothing was running"
    restored = f"; {', '.join(result.restored)}" if result.restored else ""
    console.print(f"[green]lab down:[/] {stopped}; nothing left behind{restored}", highlight=False)


@lab_app.command()
def ssh(file: FileArg, host: HostArg) -> None:
    """Interactive root shell in a host. Example: stackwright lab ssh seed.yaml compute1"""
    from stackwright.lab.control import exec_in

    with _errors():
        code = exec_in(_layout(file), host, [], tty=True)
    raise typer.Exit(code)


@lab_app.command()
def reboot(file: FileArg, host: HostArg) -> None:
    """Reboot a host and wait until it is back. Example: stackwright lab reboot seed.yaml network"""
    from stackwright.lab.control import reboot as do_reboot

    with _errors():
        layout = _layout(file)
        seconds = _with_status(f"rebooting {host}", lambda p: do_reboot(layout, host))
    console.print(f"[green]{host} is back[/] with its addresses after {seconds:.1f} s", highlight=False)


@lab_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    file: FileArg,
    host: HostArg,
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
) -> None:
    """Run a command in a host. Example: stackwright lab exec seed.yaml compute1 -- ip -br addr"""
    from stackwright.lab.control import exec_in

    with _errors():
        code = exec_in(_layout(file), host, command)
    raise typer.Exit(code)
