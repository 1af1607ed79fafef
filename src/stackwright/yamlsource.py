"""Load YAML while remembering the line of every key, so errors can point at it.

PyYAML's composer already records a start mark on every node; we walk the node
tree once and keep `{path: line}` next to the plain data (ruamel.yaml would do
the same but is several times slower on a 500-node inventory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml is in the PyYAML wheel
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Loc = tuple[str | int, ...]


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return _one_line(f"{where}{self.message}")


def _one_line(text: str) -> str:
    """Escape line breaks and control characters a user's value may carry (e.g. U+0085)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


class UserErrors(Exception):
    """Several independent user mistakes found in one pass (one line each)."""

    def __init__(self, errors: list[UserError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass
class Located:
    """Plain YAML data plus the 1-based line of every mapping key and sequence item."""

    data: Any
    file: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of `loc`, or of its nearest ancestor that has one."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if isinstance(key, list | dict):
                raise UserError(
                    "a mapping key must be a plain value, not a list or mapping",
                    line=key_node.start_mark.line + 1,
                )
            if key in out:
                raise UserError(
                    f"key {key!r} appears twice in the same mapping — keep one of them",
                    line=key_node.start_mark.line + 1,
                )
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*loc, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            items.append(_walk(item, (*loc, index), lines))
        return items
    return _scalar(node)


_constructor = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return _constructor.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return [_scalar(n) for n in node.value]
    if isinstance(node, yaml.MappingNode):
        return {str(_scalar(k)): _scalar(v) for k, v in node.value}
    raise TypeError(node)  # pragma: no cover


def load_located(text: str, file: str) -> Located:
    """Parse one YAML document; syntax errors become a one-line UserError."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if exc.context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            problem += f" ({exc.context.strip()} on line {exc.context_mark.line + 1})"
        raise UserError(
            f"YAML syntax error: {problem} — fix the indentation or quoting on that line",
            file=file,
            line=mark.line + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise UserError(f"YAML syntax error: {exc} — fix the file's syntax", file=file) from None
    if node is None:
        return Located(data=None, file=file)
    lines: dict[Loc, int] = {}
    try:
        data = _walk(node, (), lines)
    except UserError as exc:
        exc.file = file
        raise
    except yaml.YAMLError as exc:
        raise UserError(f"YAML value error: {exc} — fix or quote that value", file=file) from None
    return Located(data=data, file=file, lines=lines)


def read_located(path: Path) -> Located:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"file not found — check the path {path}", file=str(path)) from None
    except IsADirectoryError:
        raise UserError("is a directory — give the inventory's YAML file", file=str(path)) from None
    except UnicodeDecodeError:
        raise UserError("is not UTF-8 text — save the file as UTF-8", file=str(path)) from None
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror} — check permissions", file=str(path)) from None
    return load_located(text, str(path))
