"""YAML with positions: turn flow text into plain data plus a map from data paths to line:column.

PyYAML's composer gives every node a start mark; we build the Python values ourselves from the
node tree so that each value and each mapping key keeps its position, duplicate keys are reported
instead of silently overwritten, and timestamps stay the strings the analyst wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.problems import Path, Problem, format_path

try:  # the libyaml-backed loader is several times faster on large files
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

MAX_FILE_BYTES = 1024 * 1024
#: values one document may expand to; aliases ('*name') repeat whole blocks, so a few hundred
#: bytes of nested aliases can stand for billions of values ("billion laughs")
MAX_VALUES = 250_000
_TAB_HINT = "tab character; YAML indents with spaces only — replace the tab with spaces"
_HINTS = {
    "character '\\t'": _TAB_HINT,
    "tab character": _TAB_HINT,
    # libyaml says "... in this context", pure-Python PyYAML "... here"
    "mapping values are not allowed": (
        "a 'key: value' where YAML expected a plain value — check the indentation of this line "
        "and quote values that contain ': '"
    ),
    "could not find expected ':'": "a key without ':' — check indentation or a missing colon",
}


@dataclass
class Source:
    """The parsed document of one file with its positions (1-based line and column)."""

    file: str
    text: str
    data: Any = None
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    block_indent: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Best position for *path*: the key or value itself, else the nearest enclosing one."""
        probe = tuple(path)
        while True:
            table = self.keys if key else self.values
            if probe in table:
                return table[probe]
            if key and probe in self.values:
                return self.values[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]
            key = False

    def problem(self, path: Path, message: str, *, key: bool = False,
                severity: str = "error") -> Problem:
        line, column = self.position(path, key=key)
        return Problem(self.file, line, column, format_path(path), message, severity)  # type: ignore[arg-type]

    def text_position(self, path: Path, offset: int) -> tuple[int, int]:
        """Line and column of character *offset* inside the string scalar at *path*."""
        line, column = self.position(path)
        if path in self.block_indent:
            first_line, indent = self.block_indent[path]
            before = self.values_text(path)[:offset]
            return (first_line + before.count("\n"), indent + 1 + len(before.rsplit("\n", 1)[-1]))
        before = self.values_text(path)[:offset]
        if "\n" in before:
            return (line + before.count("\n"), len(before.rsplit("\n", 1)[-1]) + 1)
        quoted = self._char_at(line, column) in "\"'"
        return (line, column + offset + (1 if quoted else 0))

    def values_text(self, path: Path) -> str:
        value: Any = self.data
        for part in path:
            value = value[part]
        return value if isinstance(value, str) else ""

    def _char_at(self, line: int, column: int) -> str:
        lines = self.text.splitlines()
        if 0 < line <= len(lines) and 0 < column <= len(lines[line - 1]):
            return lines[line - 1][column - 1]
        return ""


class _TooManyValues(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _Builder:
    def __init__(self, source: Source, problems: list[Problem]):
        self.source = source
        self.problems = problems
        # one constructor per document: SafeConstructor caches every node it built, so a shared
        # one would keep every scalar of every file ever loaded alive
        self.scalars = yaml.constructor.SafeConstructor()
        self.count = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooManyValues(node)
        mark = node.start_mark
        self.source.values[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
            return node.value
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            self._remember_block(node, path)
        try:
            return self.scalars.construct_object(node)
        except Exception:  # a tagged scalar that does not fit its tag: !!int x, !!bool maybe
            tag = node.tag.rsplit(":", 1)[-1]
            self._report(node, path, f"'{node.value}' cannot be read as !!{tag}; remove the tag "
                         "or fix the value")
            return node.value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._report(key_node, path, "YAML merge keys ('<<') are not supported in flows; "
                             "write the keys out")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._report(key_node, path, "a mapping key must be a plain name")
                continue
            try:
                key = self.scalars.construct_object(key_node)
            except Exception:
                key = key_node.value
            if not isinstance(key, str):
                key = str(key_node.value)
            child = (*path, key)
            if key in out:
                first = self.source.keys[child]
                self._report(key_node, child, f"duplicate key '{key}' (first defined at line "
                             f"{first[0]}); YAML keeps only one of them — remove or rename one")
                continue
            self.source.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, child)
        return out

    def _remember_block(self, node: yaml.ScalarNode, path: Path) -> None:
        lines = self.source.text.splitlines()
        first = node.start_mark.line + 1  # 0-based index of the first content line
        while first < len(lines) and not lines[first].strip():
            first += 1
        if first < len(lines):
            indent = len(lines[first]) - len(lines[first].lstrip(" "))
            self.source.block_indent[path] = (first + 1, indent)

    def _report(self, node: yaml.Node, path: Path, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.source.file, mark.line + 1, mark.column + 1,
                                     format_path(path), message))


@dataclass(frozen=True)
class _Level:
    indent: int
    line: int  # 1-based
    dash: bool  # the column of a list's '-', else of a mapping's keys


def _open_levels(lines: list[str], before: int) -> list[_Level]:
    """The indentation levels still open at line index *before*: each block above it that a
    line there could continue, innermost last."""
    stack: list[_Level] = []
    for number, line in enumerate(lines[:before], start=1):
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        indent = len(line) - len(body)
        while stack and stack[-1].indent >= indent:
            stack.pop()
        if body.startswith("- ") or body == "-":
            stack.append(_Level(indent, number, True))
            rest = body[1:].lstrip(" ")
            if rest and not rest.startswith("#"):  # '- id: a': the item's keys are there
                stack.append(_Level(indent + len(body) - len(rest), number, False))
        else:
            stack.append(_Level(indent, number, False))
    return stack


def _indentation(text: str, index: int) -> tuple[int, str] | None:
    """An "indentation: ..." message (and its column) for a YAML error on line *index*
    (0-based) whose indentation continues no block above it; None when the line's indentation
    is one a block above uses (the error is something else then)."""
    lines = text.splitlines()
    if index >= len(lines) or "\t" in lines[index][: len(lines[index]) - len(lines[index]
                                                                          .lstrip())]:
        return None
    body = lines[index].lstrip(" ")
    indent = len(lines[index]) - len(body)
    dash = body.startswith("- ") or body == "-"
    levels = [lvl for lvl in _open_levels(lines, index) if lvl.dash == dash]
    if not body or not levels or any(lvl.indent == indent for lvl in levels):
        return None
    near = min(levels, key=lambda lvl: (abs(lvl.indent - indent), -lvl.indent))
    spaces = f"{indent} space{'s' if indent != 1 else ''}"
    if dash:
        message = (f"indentation: this '-' is indented {spaces}, but the list above has its "
                   f"'-' at {near.indent} (line {near.line}); the items of one list start in "
                   "the same column — move it there, or to a key's column to start a new list")
    else:
        key = body.split(":", 1)[0].strip() if ":" in body else body.split()[0]
        message = (f"indentation: '{key}' is indented {spaces}, but the keys above are at "
                   f"{near.indent} (line {near.line}); the keys of one mapping start in the "
                   "same column — line it up with them, or indent it further to nest it under "
                   "the key above")
    return indent + 1, message


def read_source(file: str, raw: bytes) -> tuple[Source, list[Problem]]:
    """Parse *raw* bytes of *file*; never raises for any input."""
    source = Source(file=file, text="")
    if len(raw) > MAX_FILE_BYTES:
        size = len(raw) / (1024 * 1024)
        return source, [Problem(file, 1, 1, "", f"file is {size:.1f} MB; a flow file may be at "
                                "most 1 MB — split it into several flows or move data to files")]
    if b"\x00" in raw:
        return source, [Problem(file, 1, 1, "", "not a text file (it contains NUL bytes); a flow "
                                "is a UTF-8 YAML text file")]
    try:
        source.text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return source, [Problem(file, line, column, "", f"not valid UTF-8 (byte "
                                f"0x{raw[exc.start]:02x}); save the file as UTF-8")]
    return parse_text(source)


def _empty(source: Source) -> tuple[Source, list[Problem]]:
    return source, [Problem(source.file, 1, 1, "", "empty file; a flow starts with "
                            "'flow: <id>' followed by 'trigger:' and 'steps:'")]


def parse_text(source: Source) -> tuple[Source, list[Problem]]:
    problems: list[Problem] = []
    if not source.text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in source.text.splitlines()
    ):
        return _empty(source)
    try:
        nodes = list(yaml.compose_all(source.text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or str(exc)
        if mark and (found := _indentation(source.text, mark.line)) is not None:
            return source, [Problem(source.file, mark.line + 1, found[0], "", found[1])]
        hint = next((h for k, h in _HINTS.items() if k in what), None)
        if mark and source.text[mark.index:mark.index + 1] == "\t":
            hint = _TAB_HINT  # libyaml's message does not name the character
        message = hint or f"YAML syntax error: {what}"
        if exc.context and hint is None:
            message += f" ({exc.context})"
        return source, [Problem(source.file, line, column, "", message)]
    except yaml.YAMLError as exc:
        return source, [Problem(source.file, 1, 1, "", f"YAML error: {exc}")]
    except RecursionError:
        return source, [Problem(source.file, 1, 1, "", "nesting too deep to be a flow")]
    if not nodes:  # only markers, e.g. a stray byte-order mark or a lone '...'
        return _empty(source)
    if len(nodes) > 1:
        mark = nodes[1].start_mark
        return source, [Problem(source.file, mark.line + 1, mark.column + 1, "",
                                "several YAML documents ('---') in one file; one flow per file")]
    try:
        source.data = _Builder(source, problems).build(nodes[0], ())
    except RecursionError:
        return source, [Problem(source.file, 1, 1, "", "nesting too deep to be a flow")]
    except _TooManyValues as exc:
        mark = exc.node.start_mark
        return source, [Problem(source.file, mark.line + 1, mark.column + 1, "",
                                f"the file holds more than {MAX_VALUES} values once aliases "
                                "('*name') are expanded; a flow is far smaller — write repeated "
                                "blocks out or move data to files")]
    except yaml.YAMLError as exc:  # e.g. a bad !!int scalar
        return source, [Problem(source.file, 1, 1, "", f"YAML error: {exc}")]
    return source, problems
