"""Property test: generated malformed passwords files all exit 2 with one line, no traceback."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stackwright.cli import app
from stackwright.secrets import CEPHX_KEYS, SECRET_NAMES
from tests.conftest import CEPHX_SAMPLE, SEED

runner = CliRunner()
LINE = re.compile(r"^error: \S+?(:\d+)?: .+ — .+$")
GOOD = {
    name: CEPHX_SAMPLE if name in CEPHX_KEYS else f"Good{name.replace('_', '')}123" for name in SECRET_NAMES
}
bad_value = st.one_of(
    st.integers(),
    st.booleans(),
    st.none().map(lambda _: []),
    st.text(max_size=7),  # too short
    st.text(min_size=8, max_size=20).map(lambda t: t[:4] + " @:/" + t[4:]),  # forbidden characters
    st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2),
)


@st.composite
def malformed(draw: st.DrawFn) -> str:
    values: dict[object, object] = {key: value for key, value in GOOD.items()}
    kind = draw(st.sampled_from(["value", "unknown_key", "not_mapping", "syntax", "binary"]))
    if kind == "value":
        values[draw(st.sampled_from(sorted(SECRET_NAMES)))] = draw(bad_value)
    elif kind == "unknown_key":
        values[
            draw(
                st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20).filter(
                    lambda k: k not in SECRET_NAMES
                )
            )
        ] = "Fine12345678"
    elif kind == "not_mapping":
        return draw(st.sampled_from(["- a\n", "42\n", "just a string\n", "[1, 2]\n"]))
    elif kind == "syntax":
        text = yaml.safe_dump(values, sort_keys=False)
        lines = text.splitlines()
        at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[at] += draw(st.sampled_from([": [", " {", ": :", "\t- x"]))
        return "\n".join(lines) + "\n"
    else:
        return "\x00\x01\x02 binary\n"
    return yaml.safe_dump(values, sort_keys=False)


_tmp = Path(tempfile.mkdtemp(prefix="stackwright-pwfuzz-"))
_inventory = _tmp / "seed.yaml"
_inventory.write_text(SEED.read_text())


@settings(max_examples=220, deadline=None)
@given(malformed())
def test_malformed_passwords_file_exits_2_with_one_line(text: str) -> None:
    path = _tmp / "passwords.yaml"
    path.write_text(text, errors="surrogateescape")
    result = runner.invoke(app, ["plan", str(_inventory), "--passwords", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (text, result.exception)
    assert result.exit_code == 2, (text, result.stdout[-500:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, (text, lines)
    assert LINE.match(lines[0]), (text, lines[0])
    assert "Traceback" not in result.stderr
