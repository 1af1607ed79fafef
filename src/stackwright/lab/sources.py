"""The Debian mirrors this machine's apt already uses, read at run time.

The lab never names a mirror itself: debootstrap, the hosts' sources and the apt proxy's
allow-list all come from `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.{list,sources}`.

    >>> read_sources()
    [AptSource(uri='http://mirror.example/debian', suites=('bookworm', 'bookworm-updates'),
               components=('main',)), ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stackwright.yamlsource import UserError

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class AptSource:
    """One `deb` line (or one URI of a deb822 paragraph)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    @property
    def host(self) -> str:
        return urlsplit(self.uri).hostname or ""

    @property
    def scheme(self) -> str:
        return urlsplit(self.uri).scheme

    @property
    def origin(self) -> str:
        """scheme://host[:port] (never any user:password part)."""
        parts = urlsplit(self.uri)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"

    @property
    def http_uri(self) -> str:
        """The same mirror as seen from lab hosts: always plain http (the proxy speaks http)."""
        parts = urlsplit(self.uri)
        port = f":{parts.port}" if parts.port else ""
        return f"http://{parts.hostname}{port}{parts.path}".rstrip("/")


def parse_list(text: str) -> list[AptSource]:
    """One-line format: `deb [options] URI SUITE COMPONENT...` (deb-src and comments skipped)."""
    out: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)
        words = line.split()
        if len(words) < 3 or words[0] != "deb":
            continue
        out.append(AptSource(words[1], (words[2],), tuple(words[3:])))
    return out


def parse_deb822(text: str) -> list[AptSource]:
    """deb822 format: paragraphs of `Field: value`; `Enabled: no` paragraphs are skipped."""
    out: list[AptSource] = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in para.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0].isspace() and key:
                fields[key] += " " + raw.strip()
                continue
            if ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        for uri in fields.get("uris", "").split():
            out.append(AptSource(uri, suites, components))
    return out


def read_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every enabled http(s) `deb` source of this machine, in apt's file order."""
    files: list[Path] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        files.append(main)
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    out: list[AptSource] = []
    for path in files:
        text = path.read_text(errors="replace")
        out += parse_deb822(text) if path.suffix == ".sources" else parse_list(text)
    return [s for s in out if s.scheme in ("http", "https") and s.host]


def machine_codename(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


@dataclass(frozen=True)
class Mirrors:
    """The machine's Debian sources, re-targeted at `codename` for lab hosts."""

    archive: AptSource  # the main archive (debootstrap's mirror)
    sources: tuple[AptSource, ...]  # what lab hosts get in their sources.list

    @property
    def hosts(self) -> tuple[str, ...]:
        """Mirror host names the apt proxy may forward to."""
        return tuple(sorted({s.host for s in self.sources}))

    def sources_list(self, *, direct: bool = False) -> str:
        """The hosts' /etc/apt/sources.list (http URIs, fetched through the lab's proxy); `direct`:
        the machine's own URIs, for apt run on this machine (the base image's build)."""
        lines = [
            f"deb {s.uri if direct else s.http_uri} {suite} {' '.join(s.components)}"
            for s in self.sources
            for suite in s.suites
        ]
        return "\n".join(lines) + "\n"


def debian_mirrors(codename: str, sources: list[AptSource], machine: str) -> Mirrors:
    """Pick the machine's sources that carry Debian suites and re-target them at `codename`.

    A source counts when one of its suites is the machine's codename or starts with
    `<codename>-` (bookworm-updates, bookworm-security); other repositories (vendor ones) are
    left out, since they do not carry Debian's packages.
    """
    picked: list[AptSource] = []
    for src in sources:
        suites = tuple(
            codename + s[len(machine) :] for s in src.suites if s == machine or s.startswith(machine + "-")
        )
        if suites:
            picked.append(AptSource(src.uri, suites, src.components or ("main",)))
    archive = next((s for s in picked if codename in s.suites), None)
    if archive is None:
        raise UserError(
            f"no Debian source for '{machine}' in /etc/apt/sources.list or sources.list.d — "
            "add this machine's Debian mirror there (the lab uses the same mirror)"
        )
    return Mirrors(archive=archive, sources=tuple(picked))


def lab_mirrors(codename: str) -> Mirrors:
    return debian_mirrors(codename, read_sources(), machine_codename())
