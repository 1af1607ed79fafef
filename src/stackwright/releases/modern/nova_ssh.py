"""nova between compute nodes over SSH: a cold migration or a resize to another node copies the
instance's directory with ssh and scp as the nova user (the libvirt driver's remote filesystem).

Every compute node holds the one migration key (made from passwords.yaml's nova_ssh_key), lets it
in from the management network only and for commands only (no forwarding, no pty), and trusts its
peers' host keys as the known_hosts beside the inventory records them: nothing is trusted on first
use. A peer whose key is not recorded yet is named in a comment (`stackwright trust FILE`).
"""

from __future__ import annotations

from collections.abc import Mapping

from stackwright.context import HostContext
from stackwright.sshkeys import migration_keypair
from stackwright.steps import Directory, File, Step

NOVA_HOME = "/var/lib/nova"
NOVA_SSH_DIR = f"{NOVA_HOME}/.ssh"
NOVA_PRIVATE_KEY = f"{NOVA_SSH_DIR}/id_ed25519"
NOVA_AUTHORIZED_KEYS = f"{NOVA_SSH_DIR}/authorized_keys"
NOVA_SSH_CONFIG = f"{NOVA_SSH_DIR}/config"
NOVA_KNOWN_HOSTS = f"{NOVA_SSH_DIR}/known_hosts"


def packages() -> tuple[str, ...]:
    return ("openssh-client",)


def known_hosts(host: HostContext) -> str:
    lines = ["# Managed by stackwright: the compute nodes' host keys, from the inventory's known_hosts."]
    for name in host.compute_names:
        node = host.inventory.nodes[name]
        keys = host.host_keys.get(name, ())
        if not keys:
            lines.append(f"# {name}: no host key recorded yet — run `stackwright trust FILE` for it")
        lines += [f"{node.management},{name} {kind} {blob}" for kind, blob in keys]
    return "\n".join(lines) + "\n"


def steps(host: HostContext, pw: Mapping[str, str]) -> list[Step]:
    private, public = migration_keypair(pw["nova_ssh_key"])
    network = host.management_network
    # root:nova 0640 like every secret: ssh refuses a group-readable key only when the user
    # running it owns the file (OpenSSH's sshkey_perm_ok), and nova cannot change it.
    return [
        Directory(NOVA_SSH_DIR, mode=0o700, owner="nova", group="nova"),
        File(NOVA_PRIVATE_KEY, private, mode=0o640, owner="root", group="nova", secret=True),
        File(
            NOVA_AUTHORIZED_KEYS,
            f'from="{network}",restrict {public}\n',
            mode=0o600,
            owner="nova",
            group="nova",
        ),
        File(
            NOVA_SSH_CONFIG,
            "# Managed by stackwright: nova's SSH to its peers (cold migration, resize).\n"
            "Host *\n"
            "    StrictHostKeyChecking yes\n"
            f"    UserKnownHostsFile {NOVA_KNOWN_HOSTS}\n"
            f"    IdentityFile {NOVA_PRIVATE_KEY}\n"
            "    IdentitiesOnly yes\n"
            "    BatchMode yes\n",
            mode=0o644,
            owner="nova",
            group="nova",
        ),
        File(NOVA_KNOWN_HOSTS, known_hosts(host), mode=0o644, owner="nova", group="nova"),
    ]
