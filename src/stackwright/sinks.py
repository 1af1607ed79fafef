"""Values encoded for the place they are written to, so that they read back as exactly themselves.

One function per sink; templates use them as jinja2 filters (render.py registers them):

    password = {{ pw.nova_password | ini_value }}          oslo.config INI value
    mysql+pymysql://nova:{{ pw.nova_db_password | url_part }}@...   URL user or password
    IDENTIFIED BY {{ password | sql_string }}               MariaDB string literal
    OS_BOOTSTRAP_PASSWORD={{ value | shell_word }}          a word `sh` reads
    SECRET_KEY = {{ pw.horizon_secret_key | python_string }}  a Python string literal

Validation (inventory.py, secrets.py) keeps hostile values out with allow-lists; these functions
are the second wall: whatever reaches them either comes out inert or is refused with
`UnsafeValue`, never written as a line, a section or a command nobody planned. Messages never
quote the value: it may be a password.
"""

from __future__ import annotations

import shlex
from urllib.parse import quote

from stackwright.allowlists import CEPHX_KEY
from stackwright.yamlsource import UserError


class UnsafeValue(UserError):
    """A value that cannot be written inertly where it was going."""


def _printable(value: str, sink: str, key: str) -> None:
    # str.isprintable() is False for every line break Python and INI readers know
    # (\n \r \v \f \x1c-\x1e \x85 \u2028 \u2029) and for every other control character.
    if not value.isprintable():
        raise UnsafeValue(
            f"{key}: the value holds a line break or control character, which {sink} cannot hold — remove it"
        )


def _no_edge_whitespace(value: str, sink: str, key: str) -> None:
    if value != value.strip():
        raise UnsafeValue(f"{key}: the value starts or ends with whitespace, which {sink} drops — remove it")


def ini_line_value(value: str, key: str = "value") -> str:
    """A value as INI syntax, unchanged: for options a user writes (overrides), whose `$name`
    references and quotes mean what oslo.config makes of them. Refuses what would break the line."""
    _printable(value, "an INI file", key)
    _no_edge_whitespace(value, "an INI file", key)
    return value


def ini_value(value: object, key: str = "value") -> str:
    """Data (a password, a region) as an oslo.config value that reads back as exactly itself.

    oslo.config substitutes `$name` (`$$` is a literal `$`), strips surrounding whitespace and
    one pair of matching quotes (oslo_config/iniparser.py): so `$` is doubled, and a value that
    starts and ends with the same quote gets one more pair.
    """
    text = ini_line_value(str(value), key).replace("$", "$$")
    if text and text[0] == text[-1] and text[0] in "\"'":
        text = f'"{text}"'
    return text


def paste_value(value: object, key: str = "value") -> str:
    """A value for a PasteDeploy file (api-paste.ini): its ConfigParser expands `%(name)s`."""
    return ini_line_value(str(value), key).replace("%", "%%")


def url_part(value: object) -> str:
    """The user or password of a URL (`rabbit://user:password@host/`), percent-encoded.

    SQLAlchemy and oslo.messaging unquote both parts; letters, digits and `-._~` stay as they are.
    """
    return quote(str(value), safe="")


_SQL_ESCAPES = {"\\": "\\\\", "'": "\\'"}


def sql_string(value: object, key: str = "value") -> str:
    """A MariaDB string literal, quotes included (backslash escapes on: the script sets sql_mode).
    Line breaks and control characters are refused: the script stays one statement per line."""
    text = str(value)
    _printable(text, "an SQL script line", key)
    return "'" + "".join(_SQL_ESCAPES.get(ch, ch) for ch in text) + "'"


def shell_word(value: object, key: str = "value") -> str:
    """One word `sh` reads back as `value` (no expansion, no command)."""
    text = str(value)
    if "\0" in text:
        raise UnsafeValue(f"{key}: the value holds a NUL character, which no shell word can — remove it")
    return shlex.quote(text)


def env_file(pairs: tuple[tuple[str, str], ...]) -> str:
    """`NAME='value'` lines for `set -a; . FILE`: names are ours, values are quoted."""
    return "".join(f"{name}={shell_word(value, name)}\n" for name, value in pairs)


def single_line(value: object, key: str = "value") -> str:
    """A value read as one line (a password file fed to rabbitmqctl on stdin,
    a comment naming a host)."""
    text = str(value)
    _printable(text, "a one-line file", key)
    return text


def cephx_key(value: object, key: str = "value") -> str:
    """A cephx key in a keyring (`key = ...`) or libvirt's secret: Ceph reads the rest of the line
    as the key and knows no quoting, so only a key's own characters pass (base64)."""
    text = str(value)
    if not CEPHX_KEY.fullmatch(text):
        raise UnsafeValue(
            f"{key}: not a cephx key (base64, as `ceph-authtool --gen-print-key` prints) — fix it"
        )
    return text


def python_string(value: object, key: str = "value") -> str:
    """A Python string literal (Horizon's local_settings.py), quotes included."""
    text = str(value)
    _printable(text, "a Python settings file", key)
    return repr(text)


FILTERS = {
    "python_string": python_string,
    "ini_value": ini_value,
    "paste_value": paste_value,
    "url_part": url_part,
    "sql_string": sql_string,
    "shell_word": shell_word,
    "single_line": single_line,
}
