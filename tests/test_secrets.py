"""Passwords: generated once (0600), kept, never shown."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stackwright.allowlists import CEPHX_KEY
from stackwright.cli import app
from stackwright.secrets import CEPHX_KEYS, MASK, SECRET_NAMES, Masker, load_passwords
from stackwright.yamlsource import UserError
from tests.conftest import AIO, SEED

runner = CliRunner()


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "seed.yaml"
    shutil.copy(SEED, target)
    return target


def test_first_use_creates_0600_passwords_with_strong_values(inventory: Path) -> None:
    result = runner.invoke(app, ["plan", str(inventory)])
    assert result.exit_code == 0, result.output
    path = inventory.parent / "passwords.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = yaml.safe_load(path.read_text())
    assert set(values) == set(SECRET_NAMES)
    assert all(len(v) >= 32 and v.isalnum() for k, v in values.items() if k not in CEPHX_KEYS)
    assert all(CEPHX_KEY.fullmatch(values[k]) for k in CEPHX_KEYS)
    assert len(set(values.values())) == len(values)


def test_existing_values_are_kept_and_missing_ones_added(tmp_path: Path) -> None:
    path = tmp_path / "passwords.yaml"
    path.write_text("nova_password: MyOwnNovaPassword1\n")
    passwords = load_passwords(path)
    assert passwords["nova_password"] == "MyOwnNovaPassword1"
    assert set(passwords) == set(SECRET_NAMES)
    assert load_passwords(path) == passwords
    # the previous version is kept beside it
    assert (tmp_path / "passwords.yaml.prev").read_text() == "nova_password: MyOwnNovaPassword1\n"


def test_a_retired_name_from_an_older_stackwright_is_accepted_and_masked(tmp_path: Path) -> None:
    """An existing cloud's passwords.yaml still holds the libvirt SASL password (live migration
    moved to TLS certificates): it loads, nothing uses it, and it stays masked."""
    path = tmp_path / "passwords.yaml"
    path.write_text("libvirt_sasl_password: OldSaslPassword1\nnova_password: MyOwnNovaPassword1\n")
    passwords = load_passwords(path)
    assert "libvirt_sasl_password" not in passwords and passwords["nova_password"] == "MyOwnNovaPassword1"
    assert passwords.masker()("was OldSaslPassword1") == f"was {MASK}"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("nova_pasword: abcdefgh1\n", "did you mean 'nova_password'"),
        ("nova_password: 123\n", "must be a string"),
        ("nova_password: short\n", "8-64 of letters, digits and -._~"),
        ("nova_password: 'with space 123'\n", "8-64 of letters, digits and -._~"),
        ("nova_password: 'trailing\\'\n", "8-64 of letters, digits and -._~"),
        ("nova_password: 'a;b$(id)cdef'\n", "8-64 of letters, digits and -._~"),
        ("nova_password: '" + "x" * 65 + "'\n", "8-64 of letters, digits and -._~"),
        ("- a\n", "must be a mapping"),
        ("nova_password: [\n", "YAML syntax error"),
    ],
)
def test_bad_passwords_file_is_one_line_user_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "passwords.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_passwords(path)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_masker_hides_longest_first() -> None:
    mask = Masker(["abcdefgh", "abcdefghXYZ"])
    assert mask("url=abcdefghXYZ/ and abcdefgh") == f"url={MASK}/ and {MASK}"


@pytest.mark.parametrize("example", [SEED, AIO])
@pytest.mark.parametrize("release", ["zed", "grizzly"])
def test_no_secret_in_plan_json_or_render_output(tmp_path: Path, example: Path, release: str) -> None:
    inventory = tmp_path / example.name
    shutil.copy(example, inventory)
    outputs = [
        runner.invoke(app, ["plan", str(inventory), "--release", release]),
        runner.invoke(app, ["plan", str(inventory), "--release", release, "--json"]),
        runner.invoke(app, ["render", str(inventory), "--release", release, "--out", str(tmp_path / "out")]),
        runner.invoke(app, ["validate", str(inventory), "--release", release]),
    ]
    values = yaml.safe_load((tmp_path / "passwords.yaml").read_text()).values()
    for result in outputs:
        assert result.exit_code == 0, result.output
        text = result.stdout + result.stderr
        for value in values:
            assert value not in text
    assert MASK in outputs[0].stdout


def test_rendered_secret_files_are_private(tmp_path: Path) -> None:
    inventory = tmp_path / "seed.yaml"
    shutil.copy(SEED, inventory)
    result = runner.invoke(app, ["render", str(inventory), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    from stackwright.inventory import load_inventory
    from stackwright.planner import plan_cluster

    plan = plan_cluster(load_inventory(inventory), load_passwords(tmp_path / "passwords.yaml"))
    for host, host_plan in plan.hosts.items():
        for file in host_plan.files().values():
            written = tmp_path / "out" / host / file.path.lstrip("/")
            assert written.read_text() == file.content
            if file.secret:
                assert stat.S_IMODE(written.stat().st_mode) == 0o600
