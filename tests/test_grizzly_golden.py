"""Golden tests: the grizzly render of the seed cluster reproduces the seed guide exactly.

The seed (tests/golden/compute-node-guide.md, a copy of the compute-node chapter the
project started from) is parsed, not transcribed: every `{% highlight bash %}` block
before the troubleshooting section is either

- a command block (some line starts with `$ `): its `sed -i 's/OLD/NEW/' FILE` edits,
  `apt-get install` package names and `ovs-vsctl add-br` bridges are checked; or
- a file block: the file it belongs to is the last `/etc/...` path named in the prose
  between the previous block and this one (the interfaces block names none: a block
  holding `iface X inet` lines is /etc/network/interfaces).

A file block's lines are compared with the rendered file section by section: `[x]`
headers for INI files, `iface X` stanzas for /etc/network/interfaces, the whole file
otherwise. Whitespace around the first `=` is normalized; nothing else is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.releases.registry import get_release
from stackwright.secrets import load_passwords
from stackwright.steps import ClusterPlan, File, HostPlan, OvsBridge, Packages
from tests.conftest import AIO, EXAMPLES, SEED

GUIDE = Path(__file__).parent / "golden" / "compute-node-guide.md"
GUIDE_PASSWORDS = EXAMPLES / "seed-guide-passwords.yaml"
GUIDE_HOST = "compute1"
TROUBLESHOOTING = "##故障排除"  # after this heading the blocks are error output, not files

_BLOCK = re.compile(r"\{% highlight bash %\}\n(.*?)\{% endhighlight %\}", re.S)
_ETC_PATH = re.compile(r"/etc/[\w./-]*\w")
_SED = re.compile(r"sed -i 's/((?:[^/\\]|\\.)*)/((?:[^/\\]|\\.)*)/g?' (\S+)")
_INI_HEADER = re.compile(r"^\[([^\]]+)\]$")
_IFACE = re.compile(r"^iface (\S+) inet ")
INTERFACES = "/etc/network/interfaces"


# --- parsing the guide -------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the guide where the block's content starts
    lines: tuple[str, ...]
    path: str | None  # the file a file block belongs to

    @property
    def is_commands(self) -> bool:
        return any(line.lstrip().startswith("$ ") for line in self.lines)

    @property
    def commands(self) -> list[str]:
        return [line.strip()[2:] for line in self.lines if line.strip().startswith("$ ")]


def guide_blocks(text: str) -> list[Block]:
    body = text.split(TROUBLESHOOTING)[0]
    blocks: list[Block] = []
    previous_end = 0
    for match in _BLOCK.finditer(body):
        prose = body[previous_end : match.start()]
        previous_end = match.end()
        lines = tuple(line.rstrip() for line in match.group(1).splitlines())
        paths = _ETC_PATH.findall(prose)
        path = paths[-1] if paths else None
        if path is None and any(_IFACE.match(line.strip()) for line in lines):
            path = INTERFACES
        blocks.append(Block(body.count("\n", 0, match.start(1)) + 1, lines, path))
    return blocks


@functools.cache
def all_blocks() -> tuple[Block, ...]:
    return tuple(guide_blocks(GUIDE.read_text(encoding="utf-8")))


def file_blocks() -> dict[str, Block]:
    blocks: dict[str, Block] = {}
    for block in all_blocks():
        if block.is_commands:
            continue
        assert block.path, f"guide line {block.line}: a file block with no file named before it"
        assert block.path not in blocks, f"guide line {block.line}: {block.path} has two blocks"
        blocks[block.path] = block
    return blocks


def sed_edits() -> list[tuple[str, str, str]]:
    """(file, old, new) for every `sed -i 's/old/new/' file` of the guide, in order."""
    edits: list[tuple[str, str, str]] = []
    for block in all_blocks():
        for command in block.commands:
            match = _SED.search(command)
            if match:
                old, new, path = match.groups()
                edits.append((path, old.replace("\\", ""), new.replace("\\", "")))
    return edits


def guide_packages() -> list[str]:
    names: list[str] = []
    for block in all_blocks():
        for command in block.commands:
            words = command.split()
            if words[:1] == ["apt-get"] and "install" in words:
                names += [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    return names


def guide_bridges() -> list[str]:
    return [c.split()[-1] for b in all_blocks() for c in b.commands if c.startswith("ovs-vsctl add-br ")]


# --- comparing lines, section by section ------------------------------------------------------


def normalize(line: str) -> str:
    """Strip the line; whitespace around the first '=' becomes ' = '."""
    return re.sub(r"\s*=\s*", " = ", line.strip(), count=1)


def is_comment(line: str) -> bool:
    return line.strip().startswith("#")


def sectioned(lines: Iterable[str], kind: str) -> list[tuple[str, str]]:
    """(section, normalized line) for every statement line; comments and blanks skipped.

    kind "ini": `[x]` headers open sections, lines before any header are in DEFAULT.
    kind "interfaces": `iface X ...` opens stanza X until the next `auto`/`iface`/blank.
    kind "text": one section.
    """
    section = "DEFAULT" if kind == "ini" else ""
    out: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.strip()
        if kind == "interfaces" and (not line or line.startswith("auto ")):
            section = ""
        if not line or is_comment(line):
            continue
        if kind == "ini" and (header := _INI_HEADER.match(line)):
            section = header.group(1)
            continue
        if kind == "interfaces" and (stanza := _IFACE.match(line)):
            section = f"iface {stanza.group(1)}"
        out.append((section, normalize(line)))
    return out


def kind_of(file: File) -> str:
    if file.path == INTERFACES:
        return "interfaces"
    return "ini" if file.format == "ini" else "text"


def _key(line: str) -> str:
    return line.split("=", 1)[0].strip() if "=" in line else line.split()[0]


# --- the plans ----------------------------------------------------------------------------------


@functools.cache
def guide_passwords() -> dict[str, str]:
    return dict(load_passwords(GUIDE_PASSWORDS, create=False))


@functools.cache
def grizzly_plan(inventory: Path = SEED) -> ClusterPlan:
    return plan_cluster(load_inventory(inventory), guide_passwords(), release_name="grizzly")


def host_plan(name: str = GUIDE_HOST) -> HostPlan:
    return grizzly_plan().hosts[name]


def rendered(path: str, host: str = GUIDE_HOST) -> File:
    files = host_plan(host).files()
    assert path in files, f"grizzly render of {host} has no {path}; it has: {', '.join(sorted(files))}"
    return files[path]


def ini_value(path: str, section: str, option: str, host: str) -> str:
    file = rendered(path, host)
    values = [
        line.split("=", 1)[1].strip()
        for s, line in sectioned(file.content.splitlines(), kind_of(file))
        if s == section and _key(line) == option
    ]
    assert len(values) == 1, f"{host}:{path} [{section}] {option}: expected one value, found {values}"
    return values[0]


# --- the guide itself is parsed as expected -------------------------------------------------------


def test_the_guide_parses_into_the_seed_files() -> None:
    assert sorted(file_blocks()) == sorted(
        [
            "/etc/libvirt/qemu.conf",
            "/etc/libvirt/libvirtd.conf",
            "/etc/init/libvirt-bin.conf",
            "/etc/default/libvirt-bin",
            "/etc/quantum/plugins/openvswitch/ovs_quantum_plugin.ini",
            "/etc/quantum/quantum.conf",
            "/etc/nova/api-paste.ini",
            "/etc/nova/nova-compute.conf",
            "/etc/nova/nova.conf",
            INTERFACES,
        ]
    )
    assert {path for path, _, _ in sed_edits()} == {"/etc/ntp.conf", "/etc/sysctl.conf"}
    # every config line of the guide's nova.conf block is found (the biggest block)
    assert len(sectioned(file_blocks()["/etc/nova/nova.conf"].lines, "ini")) == 36


# --- golden: file by file ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(file_blocks()))
def test_every_option_line_of_the_guide_block_is_rendered_in_its_section(path: str) -> None:
    block = file_blocks()[path]
    file = rendered(path)
    kind = kind_of(file)
    if any(_INI_HEADER.match(line.strip()) for line in block.lines):
        assert file.format == "ini", f"{path} has [sections]: mark it format='ini'"
    want = sectioned(block.lines, kind)
    have = sectioned(file.content.splitlines(), kind)
    assert want, f"guide line {block.line}: no option lines parsed for {path}"
    problems = []
    for section, line in want:
        if (section, line) in have:
            continue
        same_key = [f"[{s}] {h}" for s, h in have if _key(h) == _key(line)]
        problems.append(f"[{section}] {line!r}: rendered {same_key or 'nothing for this option'}")
    assert not problems, f"{path} (guide line {block.line}) differs:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", sorted(file_blocks()))
def test_every_comment_and_header_line_of_the_guide_block_is_rendered(path: str) -> None:
    block = file_blocks()[path]
    have = {line.strip() for line in rendered(path).content.splitlines()}
    missing = [
        line.strip()
        for line in block.lines
        if (is_comment(line) or _INI_HEADER.match(line.strip())) and line.strip() not in have
    ]
    assert not missing, f"{path} (guide line {block.line}) lacks: {missing}"


@pytest.mark.parametrize(("path", "old", "new"), sed_edits(), ids=[f"{p}:{new}" for p, _, new in sed_edits()])
def test_every_sed_edit_of_the_guide_is_applied(path: str, old: str, new: str) -> None:
    lines = [line.strip() for line in rendered(path).content.splitlines()]
    assert new in lines, f"{path}: no line {new!r} (the guide's sed 's/{old}/{new}/')"
    assert old not in lines, f"{path}: line {old!r} is still there (the guide replaces it with {new!r})"


def test_ntp_follows_the_controller_only() -> None:
    servers = [line for line in rendered("/etc/ntp.conf").content.splitlines() if line.startswith("server ")]
    assert servers == ["server 10.10.10.51"]


def test_the_guide_packages_and_bridges_are_in_the_plan() -> None:
    plan = host_plan()
    assert any(isinstance(step, Packages) for step in plan.steps)
    missing = [name for name in guide_packages() if name not in plan.packages()]
    assert not missing
    bridges = [step.name for step in plan.steps if isinstance(step, OvsBridge)]
    assert bridges == guide_bridges() == ["br-int"]


def test_libvirtd_tcp_without_auth_is_marked_insecure() -> None:
    content = rendered("/etc/libvirt/libvirtd.conf").content
    assert 'auth_tcp = "none"' in content
    assert "INSECURE" in content and "render-only" in content


# --- release selection, flags -----------------------------------------------------------------------


def test_grizzly_is_selected_by_release_name_and_cannot_be_applied() -> None:
    plan = grizzly_plan()
    assert plan.release == "grizzly"
    assert {p.release for p in plan.hosts.values()} == {"grizzly"}
    assert not get_release("grizzly").applicable
    # the inventory itself says epoxy: without release_name no quantum file appears
    epoxy = plan_cluster(load_inventory(SEED), guide_passwords())
    assert epoxy.release == "epoxy"
    assert not any(path.startswith("/etc/quantum/") for p in epoxy.hosts.values() for path in p.files())


@pytest.mark.parametrize("inventory", [SEED, AIO], ids=["seed", "aio"])
def test_each_file_once_per_host_secret_when_it_holds_a_password(inventory: Path) -> None:
    values = set(guide_passwords().values())
    for name, plan in grizzly_plan(inventory).hosts.items():
        paths = [step.path for step in plan.steps if isinstance(step, File)]
        assert len(paths) == len(set(paths)), f"{name}: a file is rendered twice"
        for file in plan.files().values():
            holds = any(value in file.content for value in values)
            assert file.secret == holds, (
                f"{name}:{file.path} secret={file.secret} but holds a password={holds}"
            )
            if file.secret:
                assert file.mode == 0o640 and file.group != "root", f"{name}:{file.path}"
            if any(_INI_HEADER.match(line) for line in file.content.splitlines()):
                assert file.format == "ini", f"{name}:{file.path} has sections: format='ini'"


# --- controller and network node: the guide's key values ----------------------------------------------

OVS_INI = "/etc/quantum/plugins/openvswitch/ovs_quantum_plugin.ini"


def test_metadata_shared_secret_is_the_same_on_both_sides() -> None:
    secret = guide_passwords()["metadata_secret"]
    assert secret == "helloOpenStack"
    nova_side = ini_value(
        "/etc/nova/nova.conf", "DEFAULT", "quantum_metadata_proxy_shared_secret", "controller"
    )
    agent_side = ini_value(
        "/etc/quantum/metadata_agent.ini", "DEFAULT", "metadata_proxy_shared_secret", "network"
    )
    compute_side = ini_value(
        "/etc/nova/nova.conf", "DEFAULT", "quantum_metadata_proxy_shared_secret", GUIDE_HOST
    )
    assert nova_side == agent_side == compute_side == secret


def test_network_node_values() -> None:
    assert ini_value(OVS_INI, "OVS", "local_ip", "network") == "10.20.20.52"
    assert ini_value(OVS_INI, "OVS", "tunnel_bridge", "network") == "br-tun"
    assert ini_value(OVS_INI, "OVS", "tenant_network_type", "network") == "gre"
    metadata = "/etc/quantum/metadata_agent.ini"
    assert ini_value(metadata, "DEFAULT", "nova_metadata_ip", "network") == "10.10.10.51"
    assert ini_value(metadata, "DEFAULT", "nova_metadata_port", "network") == "8775"
    assert ini_value(metadata, "DEFAULT", "auth_url", "network") == "http://10.10.10.51:35357/v2.0"
    assert ini_value(metadata, "DEFAULT", "auth_region", "network") == "RegionOne"
    assert ini_value(metadata, "DEFAULT", "admin_password", "network") == "service_pass"
    assert ini_value("/etc/quantum/quantum.conf", "DEFAULT", "rabbit_host", "network") == "10.10.10.51"
    assert ini_value("/etc/quantum/api-paste.ini", "filter:authtoken", "admin_user", "network") == "quantum"
    interfaces = sectioned(rendered(INTERFACES, "network").content.splitlines(), "interfaces")
    assert ("iface eth1", "address 10.20.20.52") in interfaces
    assert ("iface eth2", "iface eth2 inet manual") in interfaces
    assert ("iface eth2", "up ip link set $IFACE promisc on") in interfaces
    bridges = {s.name: s.ports for s in host_plan("network").steps if isinstance(s, OvsBridge)}
    assert bridges == {"br-int": (), "br-ex": ("eth2",)}
    assert "quantum ALL=NOPASSWD: ALL" in rendered("/etc/sudoers.d/quantum_sudoers", "network").content
    assert {"quantum-l3-agent", "quantum-dhcp-agent", "quantum-metadata-agent"} <= set(
        host_plan("network").packages()
    )


def test_controller_values() -> None:
    c = "controller"
    nova = "/etc/nova/nova.conf"
    assert ini_value(nova, "DEFAULT", "vncserver_proxyclient_address", c) == "10.10.10.51"
    assert ini_value(nova, "DEFAULT", "metadata_host", c) == "10.10.10.51"
    assert ini_value(nova, "DEFAULT", "metadata_listen", c) == "10.10.10.51"
    assert ini_value(nova, "DEFAULT", "metadata_listen_port", c) == "8775"
    assert ini_value(nova, "DEFAULT", "sql_connection", c) == "mysql://novaUser:novaPass@10.10.10.51/nova"
    assert ini_value("/etc/keystone/keystone.conf", "sql", "connection", c) == (
        "mysql://keystoneUser:keystonePass@10.10.10.51/keystone"
    )
    for svc in ("api", "registry"):
        conf = f"/etc/glance/glance-{svc}.conf"
        assert (
            ini_value(conf, "DEFAULT", "sql_connection", c)
            == "mysql://glanceUser:glancePass@10.10.10.51/glance"
        )
        assert ini_value(conf, "paste_deploy", "flavor", c) == "keystone"
        paste = f"/etc/glance/glance-{svc}-paste.ini"
        assert ini_value(paste, "filter:authtoken", "admin_user", c) == "glance"
        assert ini_value(paste, "filter:authtoken", "admin_password", c) == "service_pass"
    assert (
        ini_value("/etc/glance/glance-api-paste.ini", "filter:authtoken", "delay_auth_decision", c) == "true"
    )
    assert (
        ini_value(OVS_INI, "DATABASE", "sql_connection", c)
        == "mysql://quantumUser:quantumPass@10.10.10.51/quantum"
    )
    assert ini_value(OVS_INI, "OVS", "tunnel_id_ranges", c) == "1:1000"
    ovs = sectioned(rendered(OVS_INI, c).content.splitlines(), "ini")
    assert not any(_key(line) == "local_ip" for _, line in ovs), "the quantum server has no tunnel endpoint"
    assert ini_value("/etc/quantum/quantum.conf", "keystone_authtoken", "admin_password", c) == "service_pass"
    assert ini_value("/etc/nova/api-paste.ini", "filter:authtoken", "admin_user", c) == "nova"
    assert "bind-address = 0.0.0.0" in rendered("/etc/mysql/my.cnf", c).content
    ntp = rendered("/etc/ntp.conf", c).content.splitlines()
    assert "server 0.ubuntu.pool.ntp.org" in ntp and "server ntp.ubuntu.com" in ntp
    interfaces = sectioned(rendered(INTERFACES, c).content.splitlines(), "interfaces")
    assert ("iface eth1", "address 192.168.100.51") in interfaces
    assert ("iface eth1", "gateway 192.168.100.1") in interfaces
    assert ("iface eth0", "address 10.10.10.51") in interfaces
    assert "nova-conductor" in host_plan(c).packages()
    assert not any(isinstance(s, OvsBridge) for s in host_plan(c).steps)


def test_all_in_one_and_vxlan_come_from_the_inventory() -> None:
    plan = grizzly_plan(AIO).hosts["aio"]
    files = plan.files()
    assert {"/etc/quantum/metadata_agent.ini", "/etc/nova/nova-compute.conf", "/etc/mysql/my.cnf"} <= set(
        files
    )
    ovs = sectioned(files[OVS_INI].content.splitlines(), "ini")
    assert ("OVS", "local_ip = 10.40.40.11") in ovs
    assert ("OVS", "tenant_network_type = vxlan") in ovs
    ntp = files["/etc/ntp.conf"].content.splitlines()
    assert "server ntp.ubuntu.com" in ntp  # the controller serves time itself
