"""Every value is encoded for the place it is written to, whatever validation let through (issue 15,
"Why" 1-3): the planner is fed hostile values directly, past the inventory's and the passwords
file's allow-lists, and every sink must still read them back as exactly themselves."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.render import apply_ini_overrides
from stackwright.sinks import UnsafeValue, ini_value, shell_word, sql_string, url_part
from stackwright.steps import ClusterPlan
from tests.conftest import SEED
from tests.readback import ini, ini_shape, oslo_value, source_env, sql_literals, url_credentials

HOSTILE = [
    "RegionOne;echo${IFS}INJECTED;id",
    "$(touch CANARY)",
    "`touch CANARY`",
    "pass'word\\",
    "trailing\\",
    "a?b&c[d]@e:f/g#h%i",
    "$my_ip",
    "${state_path}",
    "'quoted'",
    '"double"',
    '"',
    "%(here)s",
    "ünïcödé-€",
    "x" * 2000,
]


def hostile_plan(region: str = "RegionOne", password: str | None = None) -> ClusterPlan:
    """The seed's plan with values the model would refuse (set past validation)."""
    loaded = load_inventory(SEED)
    model = loaded.model.model_copy(update={"region": region})
    from stackwright.secrets import SECRET_NAMES

    pw = {name: password or f"Generated{index}x" for index, name in enumerate(SECRET_NAMES)}
    return plan_cluster(replace(loaded, model=model), pw)


@pytest.mark.parametrize("value", HOSTILE)
def test_ini_value_reads_back_as_itself_in_oslo_config(value: str) -> None:
    parser = ini(f"[DEFAULT]\nkey = {ini_value(value)}\n")
    assert oslo_value(parser["DEFAULT"]["key"]) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x85b", "a\u2028b", " lead", "trail "])
def test_ini_value_refuses_what_it_cannot_write(value: str) -> None:
    with pytest.raises(UnsafeValue) as caught:
        ini_value(value, "nova_password")
    assert "nova_password" in str(caught.value) and value.strip() not in str(caught.value)


@pytest.mark.parametrize("value", HOSTILE)
def test_sql_string_reads_back_as_itself(value: str) -> None:
    assert sql_literals(f"ALTER USER 'nova'@'x' IDENTIFIED BY {sql_string(value)};") == ["nova", "x", value]


@pytest.mark.parametrize("value", HOSTILE)
def test_url_part_reads_back_as_itself(value: str) -> None:
    url = f"rabbit://{url_part('open stack')}:{url_part(value)}@10.10.10.51:5672/"
    assert url_credentials(url) == ("open stack", value)


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_word_is_one_inert_word(tmp_path: Path, value: str) -> None:
    env = tmp_path / "env"
    env.write_text(f"V={shell_word(value)}\n")
    assert source_env(env, ["V"], tmp_path) == {"V": value}
    assert not (tmp_path / "CANARY").exists()


def test_region_with_a_command_does_not_run_from_the_bootstrap_env(tmp_path: Path) -> None:
    """Why 1: `region: "RegionOne;echo${IFS}INJECTED;id"` ran as root from keystone-bootstrap.env."""
    region = "RegionOne;touch${IFS}CANARY;id"
    plan = hostile_plan(region=region)
    env = tmp_path / "keystone-bootstrap.env"
    env.write_text(plan.hosts["controller"].files()["/etc/stackwright/keystone-bootstrap.env"].content)
    values = source_env(env, ["OS_BOOTSTRAP_REGION_ID", "OS_BOOTSTRAP_USERNAME"], tmp_path)
    assert values == {"OS_BOOTSTRAP_REGION_ID": region, "OS_BOOTSTRAP_USERNAME": "admin"}
    assert not (tmp_path / "CANARY").exists()


def test_region_with_a_newline_adds_no_section_to_nova_conf() -> None:
    """Why 1: a newline in the region added a [database] section to nova.conf; now it cannot be
    written at all (refused, naming the key) instead of being written as a second line."""
    with pytest.raises(UnsafeValue) as caught:
        hostile_plan(region="RegionOne\n[database]\nconnection = sqlite://")
    assert "line break" in str(caught.value)


@pytest.mark.parametrize("password", HOSTILE[1:])
def test_hand_set_password_reads_back_as_itself_in_every_sink(tmp_path: Path, password: str) -> None:
    """Why 2: `;` and `$(..)` ran from the env file, a trailing `\\` broke the SQL, `?&[` broke
    transport_url, `$my_ip` was expanded by oslo.config."""
    plan = hostile_plan(password=password)
    controller = plan.hosts["controller"].files()
    nova = ini(controller["/etc/nova/nova.conf"].content)
    assert oslo_value(nova["keystone_authtoken"]["password"]) == password
    assert url_credentials(oslo_value(nova["DEFAULT"]["transport_url"]))[1] == password
    assert url_credentials(oslo_value(nova["database"]["connection"])) == ("nova", password)
    sql = controller["/etc/stackwright/openstack-databases.sql"].content
    identified = [sql_literals(line)[-1] for line in sql.splitlines() if "IDENTIFIED BY" in line]
    assert identified and set(identified) == {password}
    env = tmp_path / "env"
    env.write_text(controller["/etc/stackwright/keystone-bootstrap.env"].content)
    assert source_env(env, ["OS_BOOTSTRAP_PASSWORD"], tmp_path) == {"OS_BOOTSTRAP_PASSWORD": password}
    assert not (tmp_path / "CANARY").exists()


def test_override_value_with_a_newline_is_refused_naming_the_key() -> None:
    """Why 3: `"true\\n[database]\\nconnection = ..."` added a second [database] section."""
    with pytest.raises(UnsafeValue) as caught:
        apply_ini_overrides("[DEFAULT]\ndebug = false\n", {"DEFAULT": {"debug": "true\n[database]\nx = 1"}})
    assert "[DEFAULT] debug" in str(caught.value)


@pytest.mark.parametrize("option", ["debug = true\n[evil]\nfoo", "a=b", "[x]", "#c", " lead"])
def test_override_option_name_that_is_not_one_key_is_refused(option: str) -> None:
    """Why 3: an option name `"debug = true\\n[evil]\\nfoo"` created a section no check saw."""
    with pytest.raises(UnsafeValue):
        apply_ini_overrides("[DEFAULT]\ndebug = false\n", {"DEFAULT": {option: "1"}})


def test_override_value_keeps_oslo_syntax_and_the_file_its_shape() -> None:
    text = "[DEFAULT]\ndebug = false\n\n[libvirt]\nvirt_type = kvm\n"
    out = apply_ini_overrides(text, {"libvirt": {"images_type": "$state_path/x [y] ; #z"}})
    assert ini_shape(out) == {"DEFAULT": ["debug"], "libvirt": ["images_type", "virt_type"]}
    assert ini(out)["libvirt"]["images_type"] == "$state_path/x [y] ; #z"


def test_compute_node_wait_quotes_the_node_name_for_sql_and_shell(tmp_path: Path) -> None:
    """The check runs in `sh` with a stand-in `mysql` that records the query it was given."""
    from stackwright.releases.modern.cluster import compute_node_registered

    name = "compute1'; DROP TABLE x; -- $(touch CANARY)"
    fake = tmp_path / "mysql"
    fake.write_text('#!/bin/sh\nfor a; do last=$a; done\nprintf %s "$last" > query\necho 1\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["sh", "-c", compute_node_registered(name)],
        cwd=tmp_path,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0
    assert sql_literals((tmp_path / "query").read_text()) == [name]
    assert not (tmp_path / "CANARY").exists()
