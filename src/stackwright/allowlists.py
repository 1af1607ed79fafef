"""What every string a user writes may hold: one allow-list per kind, always `re.fullmatch`ed
(`re.match` with `$` lets a trailing newline through: "compute1\\n" would pass).

    Region = Annotated[str, AfterValidator(fullmatching(REGION, "region name", "letters...", "RegionOne"))]

The values that pass are still encoded wherever they are written (sinks.py): the allow-list
keeps nonsense out early with a clear message, the encoding keeps the files right regardless.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

# Keystone region ids: a letter, then letters, digits, '_' and '-' (64 at most).
REGION = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# RFC 1123 hostname label, lowercase (the node becomes the host's name and nova's `host`).
NODE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Linux interface names: 1-15 of these, never "." or "..".
INTERFACE = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9_.-]{1,15}")
# IANA time zone names as tzdata spells them: "UTC", "Europe/Berlin", "America/Argentina/Salta".
TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,31}(?:/[A-Za-z0-9][A-Za-z0-9_+-]{0,31}){0,2}")
SSH_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SSH_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
# Absolute paths of rendered files: no empty, "." or ".." segment.
FILE_PATH = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9_.+@-]+)+")
# A PEM file on the operator's machine, relative to the inventory or absolute.
LOCAL_FILE = re.compile(r"/?(?:[A-Za-z0-9_.+@-]+/)*[A-Za-z0-9_.+@-]+")
# INI section and option names (oslo.config's, and paste's `filter:authtoken`).
SECTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
OPTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# An HTTP proxy a node reaches the Debian mirror through: http://host[:port][/], no credentials
# (they would sit in a world-readable apt configuration) and no path.
HTTP_PROXY = re.compile(rf"http://{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?/?")
# Hand-set passwords: RFC 3986's unreserved characters, the same text in a URL, an INI file, SQL
# and a shell word. 64 at most: Keystone's bcrypt reads 72 bytes.
PASSWORD = re.compile(r"[A-Za-z0-9._~-]{8,64}")
# A cephx key as `ceph-authtool --gen-print-key` prints it: base64 of a 12-byte header and 16 bytes.
CEPHX_KEY = re.compile(r"AQ[A-Za-z0-9+/]{35}[AQgw]==")
# An OSD's device: a block device (/dev/sdb, /dev/disk/by-id/...) or a file bluestore uses whole
# (the lab's); absolute, no "." or ".." segment, nothing a shell or ceph.conf would read as syntax.
OSD_DEVICE = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9_.:+@-]+){2,8}")
MAX_OPTION_VALUE = 4096


def shown(value: object, limit: int = 60) -> str:
    """`value` quoted for a one-line message, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def fullmatching(pattern: re.Pattern[str], what: str, rule: str, example: str) -> Callable[[str], str]:
    """A pydantic validator that accepts only the values `pattern` fullmatches."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{shown(value)} is not a valid {what} ({rule}) — use e.g. {example}")
        return value

    return check


def _ssh_host(value: str) -> str:
    if ":" in value:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise ValueError(f"{shown(value)} is not an IPv6 address — write it like fd00::51") from None
        return value
    if len(value) > 253 or not SSH_HOSTNAME.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not a valid host name or address (letters, digits, '-' and '.') — "
            "use e.g. 10.10.10.53 or compute1.example.org"
        )
    return value


def option_value(value: object) -> object:
    if not isinstance(value, str):
        return value
    if not value.isprintable() or value != value.strip() or len(value) > MAX_OPTION_VALUE:
        raise ValueError(
            f"{shown(value)} cannot be an INI value (a line break, control character, whitespace at "
            f"either end, or over {MAX_OPTION_VALUE} characters) — write it on one line without them"
        )
    return value


SshHost = Annotated[str, AfterValidator(_ssh_host)]
TimeZone = Annotated[
    str,
    AfterValidator(
        fullmatching(
            TIMEZONE, "time zone", "an IANA name: letters, digits, _+- and up to two /", "Europe/Berlin"
        )
    ),
]
Region = Annotated[
    str,
    AfterValidator(
        fullmatching(REGION, "region name", "a letter, then letters, digits, _ and -", "RegionOne")
    ),
]


def _node_name(value: str) -> str:
    if not NODE_NAME.fullmatch(value):
        slug = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-")
        fix = f"use '{slug}'" if slug else "use letters, digits and '-'"
        raise ValueError(
            f"{shown(value)} is not a valid hostname (lowercase letters, digits, inner '-', "
            f"at most 63) — {fix}"
        )
    return value


NodeName = Annotated[str, AfterValidator(_node_name)]
InterfaceName = Annotated[
    str, AfterValidator(fullmatching(INTERFACE, "interface name", "1-15 of letters, digits, '_.-'", "eth1"))
]
SshUser = Annotated[
    str, AfterValidator(fullmatching(SSH_USER, "user name", "letters, digits, '_.-', at most 32", "root"))
]
FilePath = Annotated[
    str,
    AfterValidator(
        fullmatching(
            FILE_PATH, "file path", "absolute; letters, digits, '_.+@-' and '/'", "/etc/nova/nova.conf"
        )
    ),
]
LocalFile = Annotated[
    str,
    AfterValidator(
        fullmatching(LOCAL_FILE, "file name", "letters, digits, '_.+@-' and '/'", "tls/cloud.example.org.pem")
    ),
]
HttpProxy = Annotated[
    str,
    AfterValidator(
        fullmatching(
            HTTP_PROXY,
            "HTTP proxy",
            "http://host:port, without credentials or a path",
            "http://10.10.10.1:3142",
        )
    ),
]
OsdDevice = Annotated[
    str,
    AfterValidator(
        fullmatching(
            OSD_DEVICE, "OSD device", "an absolute path: letters, digits, '_.:+@-' and '/'", "/dev/sdb"
        )
    ),
]
SectionName = Annotated[
    str, AfterValidator(fullmatching(SECTION, "section name", "letters, digits, '_.:-'", "DEFAULT"))
]
OptionName = Annotated[
    str, AfterValidator(fullmatching(OPTION, "option name", "letters, digits, '_.-'", "debug"))
]
