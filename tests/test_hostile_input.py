"""Property test (issue 15, "Done when"): hostile strings — shell metacharacters, line breaks,
quotes, `\\`, `$`, `%`, `[`, unicode, very long — put into every string field of the inventory,
of passwords.yaml and of the overrides. Each one either fails `validate` with exactly one line
(exit 2, no traceback, no password echoed), or renders inertly: the plan made with the hostile
value reads back, file by file and through each file's own reader, exactly like the plan made
with a plain marker in its place, the marker replaced by the value.

Readers: INI files through configparser (strict: an injected section or option raises) and then
oslo.config's rules (`$$`, a pair of quotes), URLs in them through urllib (user and password
unquoted), env files sourced by `sh` in a scratch directory (nothing else may appear there),
SQL string literals unescaped, JSON parsed, every other file as text.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stackwright.ceph import cluster
from stackwright.cli import app
from stackwright.inventory import Inventory, load_inventory
from stackwright.planner import plan_cluster
from stackwright.secrets import CEPHX_KEYS, KEY_SEEDS, SECRET_NAMES, load_passwords
from stackwright.sinks import UnsafeValue
from stackwright.steps import ClusterPlan, File
from stackwright.tls import FRONT, front_names, store_for
from tests.readback import ini_values, oslo_value, source_env, sql_literals, url_credentials
from tests.test_inventory_fuzz import SEED as FUZZ_SEED

runner = CliRunner()
LINE = re.compile(r"error: \S+?(:\d+)?: .+ — .+")
SEED: dict[str, Any] = copy.deepcopy(FUZZ_SEED)  # the seed topology, with every string field set
SEED.update(release="epoxy", region="RegionOne")
SEED["nodes"]["compute1"].update(interfaces={"data": "eth1"}, ssh={"user": "root", "host": "10.10.10.53"})
# a storage node: its device reaches a shell script and the cephx keys keyrings and libvirt's secret
SEED["nodes"]["storage1"] = {"roles": ["storage"], "management": "10.10.10.54", "osd_devices": ["/dev/sdb"]}
NOVA = "/etc/nova/nova.conf"
TEXT_SECRETS = [name for name in SECRET_NAMES if name not in KEY_SEEDS]
# A cephx key's marker is itself a key (allowlists.CEPHX_KEY): base64 with the marker inside.
PASSWORD_MARKERS = {
    name: f"AQ{f'Mk0pw{index}Mk':A<35}A==" if name in CEPHX_KEYS else f"Mk0pw{index}Mk"
    for index, name in enumerate(TEXT_SECRETS)
}
SECRETS = {**PASSWORD_MARKERS, **{name: "Mk0seedMk" for name in KEY_SEEDS}}

# Where a hostile value goes: field -> (marker rendered in its place, how to put a value there).
Put = Callable[[dict[str, Any], dict[str, Any], str], None]


def _set(*path: str) -> Put:
    def put(inv: dict[str, Any], pw: dict[str, Any], value: str) -> None:
        target = inv
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value

    return put


def _rename_node(inv: dict[str, Any], pw: dict[str, Any], value: str) -> None:
    inv["nodes"] = {(value if k == "compute1" else k): v for k, v in inv["nodes"].items()}


def _override(scope: str, key: str) -> Put:
    def put(inv: dict[str, Any], pw: dict[str, Any], value: str) -> None:
        where = inv if scope == "global" else inv["nodes"]["compute1"]
        path, section, option, setting = NOVA, "DEFAULT" if scope == "global" else "libvirt", "sw_probe", "x1"
        if key == "path":
            path = value
        elif key == "section":
            section = value
        elif key == "option":
            option = value
        else:
            setting = value
        where["overrides"] = {path: {section: {option: setting}}}

    return put


def _password(name: str) -> Put:
    def put(inv: dict[str, Any], pw: dict[str, Any], value: str) -> None:
        pw[name] = value

    return put


def _osd_device(inv: dict[str, Any], pw: dict[str, Any], value: str) -> None:
    inv["nodes"]["storage1"]["osd_devices"] = [value]


def _password_key(inv: dict[str, Any], pw: dict[str, Any], value: str) -> None:
    pw[value] = "Mk0extraMk"


FIELDS: dict[str, tuple[str | None, Put]] = {
    "region": ("Mk0regionMk", _set("region")),
    "timezone": ("Mk0tz/Mk", _set("timezone")),
    "node name": ("mk0node0mk", _rename_node),
    "interface": ("mk0if0", _set("nodes", "compute1", "interfaces", "data")),
    "ssh user": (None, _set("nodes", "compute1", "ssh", "user")),
    "ssh host": (None, _set("nodes", "compute1", "ssh", "host")),
    "release": (None, _set("release")),
    "tenant network type": (None, _set("tenant_network_type")),
    "cidr": (None, _set("networks", "data", "cidr")),
    "gateway": (None, _set("networks", "external", "gateway")),
    "address": (None, _set("nodes", "compute1", "data")),
    "override path": (None, _override("global", "path")),
    "override section": (None, _override("global", "section")),
    "override option": ("mk0opt0", _override("global", "option")),
    "override value": ("Mk0valueMk", _override("global", "value")),
    "node override option": ("mk0opt1", _override("node", "option")),
    "node override value": ("Mk1valueMk", _override("node", "value")),
    "osd device": ("/dev/Mk0osdMk", _osd_device),
    "password key": (None, _password_key),
    **{f"password {name}": (PASSWORD_MARKERS[name], _password(name)) for name in TEXT_SECRETS},
}

ATTACKS = [
    "RegionOne;echo${IFS}INJECTED;id",
    "$(touch CANARY)",
    "`touch CANARY`",
    "x;touch CANARY",
    "x' ; touch CANARY ; '",
    'x" ; touch CANARY ; "',
    "true\n[database]\nconnection = sqlite://",
    "debug = true\n[evil]\nfoo",
    "compute1\n",
    "eth1\n",
    "pass'word\\",
    "trailing\\",
    "a?b&c[d]@e:f/g#h",
    "$my_ip",
    "${state_path}",
    "$$",
    "%(here)s",
    "%",
    "'quoted'",
    '"double"',
    '"',
    "[DEFAULT]",
    "#comment",
    ";comment",
    "=",
    " padded ",
    "",
    "\r",
    "\x85",
    "\u2028",
    "\x00",
    "ünïcödé-€-😀",
    "/etc/nova/nova.conf\n",
    "../../etc/shadow",
    "-oProxyCommand=touch CANARY",
]
SPICE = "\n\r\t $`\\'\"%[]{}();|&<>#=:@/?*~!^,.\x00\x0b\x1c\x85\u2028é€😀"
SAFE = "abcdefghijklmnopqrstuvwxyz0123456789"
hostile = st.one_of(
    st.sampled_from(ATTACKS),
    st.text(alphabet=SPICE + SAFE + "ABC_-", max_size=40),
    st.tuples(
        st.sampled_from(["RegionOne", "compute1", "eth1", "debug", "Mk0okMk12"]),
        st.text(SPICE, min_size=1, max_size=8),
    ).map("".join),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.integers(min_value=100, max_value=20000).map(lambda n: "A" * n + "$\n"),
    # Inside or near the allow-lists, so that many examples get through and render.
    st.text(alphabet=SAFE + "-._~", min_size=1, max_size=70),
    st.text(alphabet=SAFE, min_size=1, max_size=5).flatmap(
        lambda head: st.text(alphabet=SAFE + "ABCXYZ-_.~", max_size=60).map(lambda tail: head + tail)
    ),
    st.text(alphabet=SAFE + "$%'\"[]{}#;:=@/?&!*() ", min_size=1, max_size=40),
)

_tmp = Path(tempfile.mkdtemp(prefix="stackwright-hostile-"))
# One CA and front certificate for every folder: each plan is compared with the baseline's, and a
# folder's own store would issue its own (a changed controller name reissues it in that folder).
_shared_tls = _tmp / "shared-tls"


def _write(inv: dict[str, Any], pw: dict[str, Any], name: str) -> tuple[Path, Path]:
    folder = _tmp / name
    folder.mkdir(exist_ok=True)
    inventory, passwords = folder / "inventory.yaml", folder / "passwords.yaml"
    # escaped, not raw: YAML itself would read a raw U+0085 as a line break
    inventory.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
    passwords.write_text(yaml.safe_dump(pw), encoding="utf-8")
    passwords.chmod(0o600)
    if not _shared_tls.exists():
        store = store_for(_shared_tls / "inventory.yaml")
        store.certificate(FRONT, "192.168.100.51", front_names(Inventory.model_validate(SEED)))
    shutil.rmtree(folder / "tls", ignore_errors=True)
    shutil.copytree(_shared_tls / "tls", folder / "tls")
    return inventory, passwords


def _plan(inventory: Path, passwords: Path) -> ClusterPlan:
    return plan_cluster(load_inventory(inventory), load_passwords(passwords, create=False))


def _substitute(data: Any, marks: dict[str, str]) -> Any:
    if isinstance(data, str):
        for marker, value in marks.items():
            data = data.replace(marker, value)
        return data
    if isinstance(data, dict):
        return {_substitute(k, marks): _substitute(v, marks) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return type(data)(_substitute(v, marks) for v in data)
    return data


def read_file(file: File, raw_options: set[tuple[str, str]], scratch: Path) -> Any:
    """The file as its reader sees it (see the module docstring)."""
    if file.format == "ini":
        out: dict[str, dict[str, Any]] = {}
        for section, options in ini_values(file.content).items():
            out[section] = {}
            for option, raw in options.items():
                if (section, option) in raw_options:
                    out[section][option] = raw  # an override: INI syntax, written as the user wrote it
                    continue
                value: Any = oslo_value(raw)
                if "://" in value and "@" in value:
                    user, password = url_credentials(value)
                    value = ("url", user, password, value.split("@", 1)[1])
                out[section][option] = value
        return out
    if file.path.endswith(".env"):
        env = scratch / "file.env"
        env.write_text(file.content)
        names = re.findall(r"^([A-Z_][A-Z0-9_]*)=", file.content, re.MULTILINE)
        values = source_env(env, names, scratch)
        assert sorted(p.name for p in scratch.iterdir()) == ["file.env"], "sourcing created a file"
        env.unlink()
        return values
    if file.path.endswith(".sql"):
        # mysql(1) ends a statement's line at "\n" only (str.splitlines would split at more)
        return [sql_literals(line) for line in file.content.split("\n") if not line.startswith("--")]
    if file.path.endswith(".json"):
        return json.loads(file.content)
    if file.path.endswith("local_settings.py"):
        return python_settings(file.content)
    return file.content


def python_settings(text: str) -> dict[str, Any]:
    """Horizon's settings as Django sees them: each top-level name's literal value (an expression
    that is no literal, such as a comprehension, as its source: it holds no user value)."""
    values: dict[str, Any] = {}
    for node in ast.parse(text).body:
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name), ast.unparse(node)
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            values[node.targets[0].id] = ast.unparse(node.value)
    return values


# Options whose values are INI syntax written as the user wrote it (overrides), not data.
RAW_OPTIONS = {(s, o) for s in ("DEFAULT", "libvirt") for o in ("sw_probe", "mk0opt0", "mk0opt1")}


# A certificate or key: each folder's CA issues its own (a node's certificate names the node), and
# what is compared here is how the inventory's strings are written, not generated key material.
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+-----END \1-----")


def reading(plan: ClusterPlan, raw_options: set[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    scratch = _tmp / "scratch"
    scratch.mkdir(exist_ok=True)

    def without_pem(file: File) -> File:
        return replace(file, content=PEM_BLOCK.sub(r"<\1>", file.content))

    return [
        (
            host,
            {
                path: read_file(without_pem(file), raw_options, scratch)
                for path, file in host_plan.files().items()
            },
        )
        for host, host_plan in plan.hosts.items()
    ]


@functools.cache
def baseline_reading(field: str) -> list[tuple[str, dict[str, Any]]]:
    """The plan with the field's marker in place of a value (the same for every example)."""
    marker, put = FIELDS[field]
    inv, pw = _inputs()
    if marker is not None:
        put(inv, pw, marker)
    return reading(_plan(*_write(inv, pw, "baseline")), RAW_OPTIONS)


def derived_ids(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    """The Ceph identifiers that follow from the monitors' key (the fsid, the OSDs' and libvirt's
    secret's uuids, ceph.py): a new ceph_mon_key changes them with it, nothing else."""
    model = Inventory.model_validate(SEED)
    old, new = cluster(model, before), cluster(model, after)
    assert old is not None and new is not None
    pairs = [(old.fsid, new.fsid), (old.libvirt_secret_uuid, new.libvirt_secret_uuid)]
    pairs += [(a.uuid, b.uuid) for a, b in zip(old.osds, new.osds, strict=True)]
    return dict(pairs)


def assert_renders_inertly(field: str, value: str) -> None:
    marker, put = FIELDS[field]
    inv, pw = _inputs()
    put(inv, pw, value)
    marks = {marker: value} if marker is not None else {}
    if field == "password ceph_mon_key":
        marks |= derived_ids(dict(SECRETS), pw)
    raw_options = RAW_OPTIONS | {(s, value) for s in ("DEFAULT", "libvirt") if "option" in field}
    got = reading(_plan(*_write(inv, pw, "hostile")), raw_options)
    want = _substitute(baseline_reading(field), marks)
    assert [host for host, _ in got] == [host for host, _ in want]
    for (host, files), (_, want_files) in zip(got, want, strict=True):
        assert sorted(files) == sorted(want_files), host
        for path, content in files.items():
            assert content == want_files[path], (host, path)


PASSWORD_FIELDS = sorted(f for f in FIELDS if f.startswith("password ") and f != "password key")


@st.composite
def hostile_change(draw: st.DrawFn) -> tuple[str, str]:
    """A field (every password counted once, as one field) and a hostile value for it."""
    field = draw(st.sampled_from([*sorted(set(FIELDS) - set(PASSWORD_FIELDS)), "password"]))
    if field == "password":
        field = draw(st.sampled_from(PASSWORD_FIELDS))
    return field, draw(hostile)


def _inputs() -> tuple[dict[str, Any], dict[str, Any]]:
    return copy.deepcopy(SEED), dict(SECRETS)


@settings(
    max_examples=520,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(hostile_change())
def test_hostile_string_fails_validate_in_one_line_or_renders_inertly(change: tuple[str, str]) -> None:
    field, value = change
    inv, pw = _inputs()
    put = FIELDS[field][1]
    if field == "node name":
        assume(value not in inv["nodes"])
    if field == "password key":
        assume(value not in pw)
    changed_inv, changed_pw = copy.deepcopy(inv), dict(pw)
    put(changed_inv, changed_pw, value)
    inventory, passwords = _write(changed_inv, changed_pw, "validate")
    result = runner.invoke(app, ["validate", str(inventory), "--passwords", str(passwords)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        field,
        value,
        result.exception,
    )
    assert "Traceback" not in result.output
    event("refused by validate" if result.exit_code else "rendered")
    if result.exit_code != 0:
        assert result.exit_code == 2, (field, value, result.output)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (field, value, lines)
        assert LINE.fullmatch(lines[0]), (field, value, lines[0])
        if field.startswith("password ") and field != "password key" and len(value) >= 4:
            assert value not in lines[0], "a password was echoed"
        return
    assert_renders_inertly(field, value)


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["region", "timezone", *[f"password {n}" for n in TEXT_SECRETS]]), hostile)
def test_sinks_encode_what_validation_would_refuse(field: str, value: str) -> None:
    """Past validation (set straight into the model and the passwords the planner gets): every
    value still renders inertly, or is refused by its sink without being quoted."""
    loaded = load_inventory(_write(*_inputs(), "direct")[0])
    pw = dict(SECRETS)
    model = loaded.model
    if field in ("region", "timezone"):
        model = model.model_copy(update={field: value})
    else:
        pw[field.removeprefix("password ")] = value
    try:
        plan = plan_cluster(replace(loaded, model=model), pw)
    except UnsafeValue as exc:
        assert len(value) < 4 or value not in str(exc)
        return
    marker = FIELDS[field][0]
    assert marker is not None
    marks = {marker: value} | (derived_ids(dict(SECRETS), pw) if field == "password ceph_mon_key" else {})
    assert reading(plan, RAW_OPTIONS) == _substitute(baseline_reading(field), marks)


@pytest.mark.parametrize("field", sorted(f for f, (marker, _) in FIELDS.items() if marker))
def test_every_rendered_field_takes_a_plain_value(field: str) -> None:
    """The comparison itself works: a marker-like plain value renders for every rendered field."""
    marker, _ = FIELDS[field]
    assert marker is not None
    assert_renders_inertly(field, marker.replace("Mk", "Qz").replace("mk", "qz"))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(KEY_SEEDS)), hostile)
def test_key_seeds_take_any_value_and_are_never_written(name: str, value: str) -> None:
    """A key seed is only hashed: any value gives a working key, and the value itself is in no file."""
    loaded = load_inventory(_write(*_inputs(), "direct")[0])
    plan = plan_cluster(loaded, {**SECRETS, name: value})
    texts = [file.content for host in plan.hosts.values() for file in host.files().values()]
    keys = [text for text in texts if "BEGIN OPENSSH PRIVATE KEY" in text]
    assert keys and all(text == keys[0] for text in keys)
    if len(value) >= 4:
        assert not any(value in text for text in texts)
