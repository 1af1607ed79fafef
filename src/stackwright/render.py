"""Templates to text, and user overrides laid over INI files.

The overlay is ours because configparser drops comments and reorders keys, and
oslo.config only reads: we keep the rendered file as written and only replace or
add the overridden `option = value` lines inside their section.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from stackwright.overrides import OptionValue
from stackwright.sinks import FILTERS, UnsafeValue, ini_line_value

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_OPTION = re.compile(r"^\s*([^#;\s=][^=]*?)\s*=")


@functools.cache
def environment(templates_dir: Path) -> jinja2.Environment:
    """Config files, not HTML: no autoescape; every value from the inventory or the passwords goes
    through the filter of its sink instead (sinks.py: `| ini_value`, `| url_part`, `| sql_string`...)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env


def render_template(templates_dir: Path, name: str, **context: Any) -> str:
    return environment(templates_dir).get_template(name).render(**context)


def ini_sections(text: str) -> list[str]:
    """Section names in file order; options before any header belong to DEFAULT."""
    names = ["DEFAULT"] if _first_header_after_options(text) else []
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def _first_header_after_options(text: str) -> bool:
    for line in text.splitlines():
        if _SECTION.match(line):
            return False
        if _OPTION.match(line):
            return True
    return False


def format_value(value: OptionValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def apply_ini_overrides(text: str, overrides: Mapping[str, Mapping[str, OptionValue]]) -> str:
    """Set each `section.option` to its value: in place if present, else at the section's end.

    A section absent from the text is appended (validation rejects those earlier,
    so this only happens for callers that opt in). A section, option or value that would not
    stay one header or one `option = value` line is refused (`UnsafeValue` naming it), whatever
    validation let through.
    """
    lines = text.splitlines()
    for section, options in overrides.items():
        for option, value in options.items():
            key = f"[{section}] {option}"
            _check_name(section, _SECTION_NAME, key, "a section name")
            _check_name(option, _OPTION_NAME, key, "an option name")
            lines = _set_option(lines, section, option, ini_line_value(format_value(value), key))
    return "\n".join(lines) + "\n"


# What the INI writer itself can write as one header or one key (inventory.py validates the
# inventory against stricter allow-lists; these are the writer's own limits).
_SECTION_NAME = re.compile(r"[^\[\]\s#;=]+")
_OPTION_NAME = re.compile(r"[^\[\]\s#;=:]+")


def _check_name(name: str, pattern: re.Pattern[str], key: str, what: str) -> None:
    if not pattern.fullmatch(name) or not name.isprintable():
        raise UnsafeValue(f"{key}: not usable as {what} in an INI file — use letters, digits and _ . -")


def _set_option(lines: list[str], section: str, option: str, value: str) -> list[str]:
    current, explicit = "DEFAULT", False  # options before any header belong to DEFAULT
    last_of_section: int | None = None
    for index, line in enumerate(lines):
        header = _SECTION.match(line)
        if header:
            current, explicit = header.group(1), True
            if current == section:
                last_of_section = index
            continue
        opt = _OPTION.match(line)
        if current != section:
            continue
        if opt and opt.group(1).strip() == option:
            return [*lines[:index], f"{option} = {value}", *lines[index + 1 :]]
        if opt or (explicit and line.strip()):
            last_of_section = index
    if last_of_section is None:
        return [*lines, "", f"[{section}]", f"{option} = {value}"]
    at = last_of_section + 1
    return [*lines[:at], f"{option} = {value}", *lines[at:]]
