"""Connected hosts: shell commands and file transfers over pyinfra's SSH connector.

We use pyinfra for the connection layer (paramiko, known_hosts, ssh_config, sftp)
and drive our own operations (see `engine.ops`): pyinfra's stock operations
prepare every host's commands from facts gathered up front, while our steps
depend on what earlier steps did on the same host (a db sync after its package).

The CLI must run gevent's monkey patching first (`engine.patch()`), as pyinfra's
own CLI does, so that hosts run in parallel greenlets.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stackwright.engine.hostkeys import HostTrust
from stackwright.inventory import Inventory
from stackwright.yamlsource import UserError


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 8) -> str:
        text = (self.stderr or self.stdout).strip().splitlines()
        return "\n".join(text[-lines:])


LOST = 255  # like ssh(1): the exit code of a command whose connection died
LOST_HINT = "check that the host is up and answers SSH, then run apply again: it resumes where it stopped"
# pyinfra reduces a command's exit status to ok/failed: every command echoes its own status last.
STATUS_MARK = "@@stackwright-rc="
_STATUS = re.compile(r"(?s)(.*)" + re.escape(STATUS_MARK) + r"([0-9]{1,3})")


def with_status(command: str) -> str:
    """`command` in a subshell (an `exit` or `set -e` in it ends only the subshell), then its status."""
    return f'(\n{command}\n)\necho "{STATUS_MARK}$?"'


def split_status(stdout: str) -> tuple[str, int | None]:
    """(the command's own stdout, its exit status), or (stdout, None) when the status never came."""
    match = _STATUS.fullmatch(stdout)
    if match is None:
        return stdout, None
    # The mark starts its own line unless the command's output did not end with a newline.
    return match.group(1).removesuffix("\n"), int(match.group(2))


class RemoteError(Exception):
    """A command failed on a host; carries what the user needs to see."""

    def __init__(self, host: str, command: str, result: Result, hint: str = "") -> None:
        super().__init__(f"{host}: `{command}` exited {result.rc}")
        self.host = host
        self.command = command
        self.result = result
        self.hint = hint


class Remote:
    """One connected host."""

    def __init__(self, name: str, pyinfra_host: Any, verbose: bool = False) -> None:
        self.name = name
        self._host = pyinfra_host
        self.verbose = verbose
        self.commands_run = 0
        self.lost = ""  # why the connection is gone; every later command fails at once with it

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float | None = 600,
    ) -> Result:
        """Run `command` with sh; secrets go through `stdin`, never the command line."""
        from pyinfra.api.command import StringCommand

        self.commands_run += 1
        if self.lost:
            return Result(LOST, "", self.lost)
        kwargs: dict[str, Any] = {"_timeout": timeout}
        if stdin is not None:
            kwargs["_stdin"] = all_or_nothing(stdin)
        try:
            _, output = self._host.run_shell_command(StringCommand(with_status(command)), **kwargs)
        except TimeoutError:
            return Result(124, "", f"timed out after {timeout} s")
        except Exception as exc:  # paramiko/socket errors: the connection itself is gone
            return self._lose(f"{type(exc).__name__}: {exc}".rstrip(": "))
        stdout, rc = split_status(output.stdout)
        if rc is None:
            if not self._transport_alive():
                return self._lose("the connection closed before the command's exit status arrived")
            stderr = (output.stderr + "\n").lstrip("\n") + "the command's shell ended without an exit status"
            return Result(LOST, stdout, stderr)
        return Result(rc, stdout, output.stderr)

    def _lose(self, why: str) -> Result:
        self.lost = f"SSH connection to {self.name} lost ({why})"
        return Result(LOST, "", self.lost)

    def _transport_alive(self) -> bool:
        if not hasattr(self._host.connector, "client"):
            return True  # not an SSH connector (pyinfra's @local, in tests): nothing to lose
        client = self._host.connector.client
        transport = client.get_transport() if client is not None else None
        return bool(transport is not None and transport.is_active())

    def run_script(self, script: str, *, env: Mapping[str, str] = {}, timeout: float | None = 600) -> Result:
        """Feed a whole script on stdin to `sh -s`: env values (passwords) never reach argv."""
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        return self.run("sh -s", stdin=exports + script, timeout=timeout)

    def run_durable(
        self, script: str, *, env: Mapping[str, str] = {}, timeout: float | None = 3600
    ) -> Result:
        """Like run_script, for steps that change the host (apt, db syncs): the step finishes even
        if this connection or this process dies, instead of stopping halfway (dpkg half-configured,
        a migration half-applied). A re-run waits for such a leftover, bounded, before its own step.
        """
        return self.run_script(durable(script), env=env, timeout=timeout)

    def check_durable(
        self, what: str, script: str, *, hint: str = "", timeout: float | None = 3600
    ) -> Result:
        """run_durable; a failure raises RemoteError naming `what` (e.g. "apt-get update")."""
        result = self.run_durable(script, timeout=timeout)
        if not result.ok:
            raise RemoteError(self.name, what, result, hint)
        return result

    def check(self, command: str, *, hint: str = "", timeout: float | None = 600) -> Result:
        result = self.run(command, timeout=timeout)
        if not result.ok:
            raise RemoteError(self.name, command, result, hint)
        return result

    def reconnect(self, within_s: float = 300.0) -> bool:
        """After a reboot: drop the old connection and retry (bounded) until SSH answers."""
        import time

        from stackwright.polling import Deadline, poll

        self._close()
        deadline = Deadline(within_s)

        def connected() -> bool:
            self._host.connect(show_errors=False)
            if not self._host.connected:
                return False
            try:
                _tune(self._host)
            except OSError:  # closed again at once: still booting
                self._close()
                return False
            self.lost = ""
            return True

        time.sleep(min(2.0, deadline.remaining()))  # a host going down still answers at first
        return poll(connected, within_s=deadline, every_s=2)

    def _close(self) -> None:
        # pyinfra's disconnect only forgets the connection; close paramiko's client as well
        client = getattr(self._host.connector, "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        self._host.disconnect()

    def put(self, data: bytes, path: str) -> None:
        self._transfer(f"upload {path}", lambda: self._host.put_file(io.BytesIO(data), path))

    def get(self, path: str) -> bytes:
        buffer = io.BytesIO()
        self._transfer(f"download {path}", lambda: self._host.get_file(path, buffer))
        return buffer.getvalue()

    def _transfer(self, what: str, transfer: Callable[[], bool]) -> None:
        """An sftp transfer; a connection lost during it is reported as such (not as a bug)."""
        if self.lost:
            raise RemoteError(self.name, what, Result(LOST, "", self.lost), LOST_HINT)
        try:
            done = transfer()
        except Exception as exc:  # paramiko/socket errors
            lost = self._lose(f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise RemoteError(self.name, what, lost, LOST_HINT) from None
        if not done:
            if not self._transport_alive():
                lost = self._lose("the connection closed during the transfer")
                raise RemoteError(self.name, what, lost, LOST_HINT)
            raise RemoteError(self.name, what, Result(1, "", "sftp transfer failed"))


def all_or_nothing(script: str) -> str:
    """Braces make sh read the whole script before it runs any of it: a script cut off by a lost
    connection is a syntax error, never half a script."""
    return "{\n" + script + "\n}\n"


STATE_DIR = "/var/lib/stackwright"  # on every managed host: markers, backups, stamps
DURABLE_DIR = f"{STATE_DIR}/run"
DURABLE_WAIT_S = 1800


def durable(script: str, state_dir: str = DURABLE_DIR, wait_s: int = DURABLE_WAIT_S) -> str:
    """`script` detached from the connection: SIGHUP and SIGPIPE ignored, output into files that
    are sent back at the end, one at a time per host (flock; the step itself does not inherit the
    lock, so a daemon it starts cannot hold it)."""
    return f"""trap '' HUP PIPE
mkdir -p {state_dir}
exec 9>{state_dir}/step.lock
if ! flock -w {wait_s} 9; then
  echo "a step of an earlier, interrupted run is still running on this host after {wait_s} s" >&2
  exit 1
fi
out={state_dir}/out.$$ err={state_dir}/err.$$
(
{script}
) >"$out" 2>"$err" </dev/null 9>&-
rc=$?
cat "$out"; cat "$err" >&2
rm -f "$out" "$err"
exit $rc
"""


def ssh_address(inventory: Inventory, name: str) -> tuple[str, int]:
    node = inventory.nodes[name]
    return node.ssh.host or str(node.management), node.ssh.port


def ssh_target(inventory: Inventory, name: str, trust: HostTrust) -> dict[str, Any]:
    """pyinfra's connection data: strict host key checking against our known_hosts only (pyinfra's
    default would accept and record any new key, overriding even an ssh_config that says yes)."""
    node = inventory.nodes[name]
    address, port = ssh_address(inventory, name)
    return {
        "ssh_hostname": address,
        "ssh_user": node.ssh.user,
        "ssh_port": port,
        "ssh_connect_retries": 0,
        "ssh_known_hosts_file": str(trust.known_hosts),
        "ssh_strict_host_key_checking": "yes",
    }


def connect(
    inventory: Inventory, names: list[str], trust: HostTrust, *, timeout: int = 10, verbose: bool = False
) -> dict[str, Remote]:
    """Connect to every named host in parallel; hosts that cannot be reached raise one UserError."""
    remotes, failed = connect_reachable(inventory, names, trust, timeout=timeout, verbose=verbose)
    if failed:
        raise UserError("; ".join(with_hint(why) for why in failed.values()))
    return remotes


UNREACHABLE_HINT = (
    "check the host is up, its address (nodes.<name>.ssh.host or management) and root's SSH key "
    "(for lab hosts: `stackwright lab status FILE`)"
)


def with_hint(why: str) -> str:
    """A reason that names no fix yet gets the general one."""
    return why if " — " in why else f"{why} — {UNREACHABLE_HINT}"


def connect_reachable(
    inventory: Inventory, names: list[str], trust: HostTrust, *, timeout: int = 10, verbose: bool = False
) -> tuple[dict[str, Remote], dict[str, str]]:
    """Connect to every named host in parallel: ({name: Remote}, {name that failed: why}).

    Hosts whose key is not recorded are refused before any connection (or recorded first, with
    `trust.accept_new`); a host whose key changed is refused naming both fingerprints."""
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all
    from pyinfra.api.inventory import Inventory as PyinfraInventory
    from pyinfra.api.state import State

    failed = trust.admit({name: ssh_address(inventory, name) for name in names})
    names_to_try = [name for name in names if name not in failed]
    if not names_to_try:
        return {}, failed
    hosts = [(name, ssh_target(inventory, name, trust)) for name in names_to_try]
    # pyinfra's constructors carry no annotations
    pyinfra_inventory = PyinfraInventory((hosts, {}))  # type: ignore[no-untyped-call]
    state = State(pyinfra_inventory, Config(CONNECT_TIMEOUT=timeout))  # type: ignore[no-untyped-call]
    errors: dict[str, str] = {}
    state.add_callback_handler(_connect_errors(errors))  # type: ignore[no-untyped-call]
    with contextlib.suppress(Exception):  # pyinfra raises when every host failed; each is reported below
        connect_all(state)
    remotes: dict[str, Remote] = {}
    for name in names_to_try:
        host = state.inventory.get_host(name)
        address, port = ssh_address(inventory, name)
        if not host.connected:
            error = errors.get(name, "no SSH connection")
            diagnosis = trust.diagnose(name, address, port) if "host key" in error.lower() else None
            failed[name] = diagnosis or f"{name} ({address}): {error}"
            continue
        try:
            _tune(host)
        except OSError as exc:  # logged in, then the host closed the connection at once
            failed[name] = (
                f"{name} ({address}): the SSH connection closed right after login ({exc.strerror}) — "
                f"check sshd on {name} (`journalctl -u ssh`), then run again"
            )
            continue
        remotes[name] = Remote(name, host, verbose)
    return remotes, {name: failed[name] for name in names if name in failed}


def _connect_errors(errors: dict[str, str]) -> Any:
    """pyinfra reports why a connection failed through a state callback; keep it per host."""
    from pyinfra.api.state import BaseStateCallback

    class ConnectErrors(BaseStateCallback):
        @staticmethod
        def host_connect_error(state: Any, host: Any, error: Any) -> None:
            errors[host.name] = str(error)[:200]

    return ConnectErrors()


# paramiko's reading thread wakes at each socket timeout to see whether the transport is still
# open (Transport._active_check_timeout, 0.1 s): ten wake-ups a second per host, for the whole
# run. With 22 hosts converging for 20 minutes that was most of the engine's CPU (docs/
# benchmarks.md, fleet stage). A closed transport still ends the thread at once (its recv fails);
# the timeout only paces paramiko's keepalive and client-side rekey checks, neither of which
# needs 0.1 s.
ACTIVE_CHECK_S = 1.0


def _tune(host: Any) -> None:
    """paramiko leaves Nagle on: every command then waits ~45 ms for a delayed ACK (DESIGN §4);
    and its reading thread's wake-ups (ACTIVE_CHECK_S)."""
    transport = host.connector.client.get_transport()
    if transport is not None:
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.sock.settimeout(ACTIVE_CHECK_S)
