"""Read rendered values back the way their readers do: INI (configparser, then oslo.config's own
rules), `sh` sourcing an env file, SQL string literals, URL user and password."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit


def ini(text: str) -> configparser.ConfigParser:
    """Strict: a section or option that appears twice raises (an injected second [database] would).
    [DEFAULT] is a section like the others (its options are not copied into every section), and
    options before any header count as DEFAULT's, as oslo.config reads them."""
    parser = configparser.ConfigParser(
        interpolation=None, strict=True, delimiters=("=",), default_section="\0"
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError:
        parser = ini("[DEFAULT]\n" + text)
    return parser


def ini_values(text: str) -> dict[str, dict[str, str]]:
    """{section: {option: raw value}}."""
    parser = ini(text)
    return {section: dict(parser[section]) for section in parser.sections()}


def ini_shape(text: str) -> dict[str, list[str]]:
    """{section: [option, ...]}."""
    return {section: sorted(options) for section, options in ini_values(text).items()}


_OSLO_DOLLAR = re.compile(r"\$(\$|\{?[A-Za-z_])")


def oslo_value(raw: str) -> str:
    """What oslo.config makes of a raw value: one pair of matching quotes stripped
    (oslo_config/iniparser.py), then `$$` -> `$`; any other `$` would be a substitution: fail."""
    value = raw.strip()
    if value and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]

    def undo(match: re.Match[str]) -> str:
        assert match.group(1) == "$", f"oslo.config would substitute {match.group(0)!r} in {raw!r}"
        return "$"

    return _OSLO_DOLLAR.sub(undo, value)


def source_env(env_file: Path, names: list[str], scratch: Path) -> dict[str, str]:
    """Source `env_file` with `sh` the way apply does (`set -a; . FILE`) in `scratch`, and read the
    variables back (NUL-separated, so any value survives)."""
    loop = r"""for n in NAMES; do eval "v=\${$n}"; printf '%s\0' "$v"; done"""
    script = 'set -a; . "$1"; set +a; ' + loop.replace("NAMES", " ".join(names))
    proc = subprocess.run(
        ["sh", "-c", script, "sh", str(env_file)],
        cwd=scratch,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    values = proc.stdout.decode().split("\0")[:-1]
    return dict(zip(names, values, strict=True))


_SQL_UNESCAPE = {"\\": "\\", "'": "'", "0": "\0", "n": "\n", "r": "\r", "Z": "\x1a", '"': '"'}


def sql_literals(line: str) -> list[str]:
    """Every single-quoted MariaDB string literal in `line`, unescaped (backslash escapes on)."""
    out: list[str] = []
    i = 0
    while i < len(line):
        if line[i] != "'":
            assert line[i] not in "\\", f"stray backslash outside a literal in {line!r}"
            i += 1
            continue
        i += 1
        value = ""
        while True:
            assert i < len(line), f"unterminated literal in {line!r}"
            ch = line[i]
            if ch == "\\":
                value += _SQL_UNESCAPE.get(line[i + 1], line[i + 1])
                i += 2
            elif ch == "'" and line[i + 1 : i + 2] == "'":
                value += "'"
                i += 2
            elif ch == "'":
                i += 1
                break
            else:
                value += ch
                i += 1
        out.append(value)
    return out


def url_credentials(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    assert parts.username is not None and parts.password is not None, url
    return unquote(parts.username), unquote(parts.password)
