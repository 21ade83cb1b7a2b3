"""The YAML node tree the config readers walk, and the reader that reports located problems.

PyYAML's node tree keeps a line number for every key; we walk it ourselves instead of
``yaml.safe_load`` so that a mistake deep inside ``groups.year7.rules[1].during`` is reported
as ``config.yaml:57: groups.year7.rules[1].during: unknown schedule 'lunchtime'``. All
problems are collected, not just the first, and come out in the order of the file's lines, so
an admin fixes a file in one pass, top to bottom.
"""

from __future__ import annotations

import difflib
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

Parser = Callable[[Any], Any]


class ConfigError(Exception):
    """One or more problems in a config file; ``str()`` lists them one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class YamlSyntaxError(ConfigError):
    """Text that is not YAML (or not YAML a policy may use): one problem at ``line``."""

    def __init__(self, file: str, line: int, message: str):
        super().__init__([f"{file}:{line}: {message}" if line else f"{file}: {message}"])
        self.file, self.line = file, line


@dataclass(slots=True)
class Node:
    """A YAML value with the line it started on (1-based). A mapping's value is
    ``{key: (key node, value node)}``, a sequence's a list of nodes."""

    value: Any
    line: int


# A problem or warning: the file, the line (0: the file as a whole) and the text to show.
_Finding = tuple[str, int, str]


@dataclass
class Context:
    """Collects problems and warnings while the tree is converted; every check goes through
    ``fail`` or ``warn``. Both come out sorted by line, this file's first (then those of files
    it names, such as the catalogue), whatever order the sections were read in."""

    file: str
    failed: list[_Finding] = field(default_factory=list)
    warned: list[_Finding] = field(default_factory=list)

    def fail(self, node: Node | None, path: str, message: str) -> None:
        self.failed.append(self._finding(node, path, message))

    def warn(self, node: Node | None, path: str, message: str) -> None:
        """Something that works but is probably not what was meant."""
        self.warned.append(self._finding(node, path, message))

    def absorb(self, other: Context | YamlSyntaxError) -> None:
        """The findings of a file read on this one's behalf (the catalogue, its lists)."""
        if isinstance(other, YamlSyntaxError):
            self.failed.append((other.file, other.line, other.problems[0]))
        else:
            self.failed.extend(other.failed)
            self.warned.extend(other.warned)

    @property
    def problems(self) -> list[str]:
        return self._in_order(self.failed)

    @property
    def warnings(self) -> list[str]:
        return self._in_order(self.warned)

    def check(self) -> None:
        """Raise ``ConfigError`` with every problem found, if any."""
        if self.failed:
            raise ConfigError(self.problems)

    def _finding(self, node: Node | None, path: str, message: str) -> _Finding:
        where = f"{self.file}:{node.line}" if node is not None else self.file
        return (self.file, node.line if node is not None else 0, f"{where}: {path}: {message}" if path else f"{where}: {message}")

    def _in_order(self, findings: list[_Finding]) -> list[str]:
        files = {self.file: 0}
        for file, _, _ in findings:
            files.setdefault(file, len(files))
        return [text for file, line, text in sorted(findings, key=lambda f: (files[f[0]], f[1]))]


NESTED_TOO_DEEPLY = "lists and mappings are nested hundreds deep; no config needs that"

# libyaml's parser when PyYAML was built with it (several times faster); same nodes and marks.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _scalar(node: yaml.Node) -> Any:
    """The value of a scalar node as ``yaml.safe_load`` would give it (the composer has
    already resolved its tag: int, bool, timestamp...)."""
    return yaml.constructor.SafeConstructor().construct_object(node)


def to_nodes(node: yaml.Node) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            mapping[str(key)] = (Node(key, key_node.start_mark.line + 1), to_nodes(value_node))
        return Node(mapping, line)
    if isinstance(node, yaml.SequenceNode):
        return Node([to_nodes(item) for item in node.value], line)
    return Node(_scalar(node), line)


def compose_text(text: str, label: str, *, aliases: bool = True) -> Node:
    """The node tree of a YAML document; broken YAML is a ``YamlSyntaxError`` at the line
    where the broken part starts. ``aliases=False`` (documents from the console and the
    API) refuses ``*name`` before anything is expanded: ten nested aliases in a few hundred
    bytes expand to a billion nodes, and the walk below would take the server with it."""
    try:
        if not aliases:
            _refuse_aliases(text, label)
        root = yaml.compose(text, Loader=YAML_LOADER)
        return to_nodes(root) if root is not None else Node({}, 1)
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, label) from None
    except RecursionError:
        raise YamlSyntaxError(label, 0, NESTED_TOO_DEEPLY) from None


def _refuse_aliases(text: str, label: str) -> None:
    if "*" not in text:
        return  # no alias without an asterisk: the common case costs one scan of the text
    for event in yaml.parse(text, Loader=YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise YamlSyntaxError(
                label,
                event.start_mark.line + 1,
                f"YAML aliases (*{event.anchor}) are not accepted in a policy; write the value out in full",
            )


def _syntax_error(error: yaml.MarkedYAMLError, label: str) -> YamlSyntaxError:
    """Where the broken part starts (an unclosed bracket or quote), not where the parser gave
    up, which can be many lines further down; both lines are named when they differ."""
    start, found = error.context_mark, error.problem_mark
    line = (start or found).line + 1 if (start or found) else 0
    message = f"not valid YAML: {error.context + ', ' if error.context else ''}{error.problem}"
    if start and found and found.line != start.line:
        message += f" (line {found.line + 1})"
    return YamlSyntaxError(label, line, message)


def compose_file(path: Path) -> Node:
    """The node tree of a YAML file (OSError when it cannot be read)."""
    return compose_text(path.read_text(encoding="utf-8"), str(path))


def plain(node: Node) -> Any:
    """The Python value of a node, without line bookkeeping."""
    if isinstance(node.value, dict):
        return {k: plain(v) for k, (_, v) in node.value.items()}
    if isinstance(node.value, list):
        return [plain(item) for item in node.value]
    return node.value


def node_at(node: Node | None, *keys: str) -> Node | None:
    """The node at a path of mapping keys, or the deepest one that exists on the way."""
    for key in keys:
        if node is None or not isinstance(node.value, dict) or key not in node.value:
            return node
        node = node.value[key][1]
    return node


def default_of(cls: type, name: str) -> Any:
    """The model's default for field ``name`` of dataclass ``cls``: the only place defaults
    are written is ``model.py``."""
    spec = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    raise TypeError(f"{cls.__name__}.{name} has no default")


class Reader:
    """Reads one mapping of the tree: known keys, typed values, located errors."""

    def __init__(self, ctx: Context, node: Node, path: str):
        self.ctx, self.node, self.path = ctx, node, path
        self.entries: dict[str, tuple[Node, Node]] = node.value if isinstance(node.value, dict) else {}
        if not isinstance(node.value, dict) and node.value is not None:
            ctx.fail(node, path, "expected a mapping of keys to values")
        # Keys asked for, in the order they were first asked (a dict keeps that order).
        self.used: dict[str, None] = {}

    def child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, parse: Parser, default: Any) -> Any:
        self.used[key] = None
        if key not in self.entries:
            return default
        node = self.entries[key][1]
        if node.value is None:
            return default
        try:
            return parse(plain(node))
        except ValueError as error:
            self.ctx.fail(node, self.child_path(key), str(error))
            return default

    def get_list(self, key: str, parse: Parser, note: Callable[[Any], str | None] | None = None) -> tuple[Any, ...]:
        """A list of scalars (a single scalar is accepted as a one-item list). ``note`` gives
        a warning for an item that is valid but probably not what was meant."""
        self.used[key] = None
        if key not in self.entries or self.entries[key][1].value is None:
            return ()
        node = self.entries[key][1]
        items = node.value if isinstance(node.value, list) else [node]
        result = []
        for i, item in enumerate(items):
            try:
                result.append(parse(plain(item)))
            except ValueError as error:
                self.ctx.fail(item, f"{self.child_path(key)}[{i}]", str(error))
                continue
            warning = note(plain(item)) if note is not None else None
            if warning:
                self.ctx.warn(item, f"{self.child_path(key)}[{i}]", warning)
        return tuple(result)

    def fields(self, cls: type, parsers: dict[str, Parser | tuple[str, Parser]]) -> dict[str, Any]:
        """Values for fields of model class ``cls``, keyed by field name, each read with its
        parser from the key of the same name (or the key given as ``(key, parser)``); a field
        left out of the file takes the model's default."""
        values = {}
        for name, spec in parsers.items():
            key, parse = spec if isinstance(spec, tuple) else (name, spec)
            values[name] = self.get(key, parse, default_of(cls, name))
        return values

    def node_of(self, key: str) -> Node | None:
        self.used[key] = None
        entry = self.entries.get(key)
        return entry[1] if entry and entry[1].value is not None else None

    def sub(self, key: str) -> Reader:
        node = self.node_of(key) or Node({}, self.node.line)
        return Reader(self.ctx, node, self.child_path(key))

    def named(self, key: str, what: str) -> list[tuple[str, Node]]:
        """The entries of a mapping of named definitions (``groups``, ``schedules``...)."""
        node = self.node_of(key)
        if node is None:
            return []
        if not isinstance(node.value, dict):
            self.ctx.fail(node, self.child_path(key), f"expected a mapping of {what} names to definitions")
            return []
        return [(name, value) for name, (_, value) in node.value.items()]

    def items(self, key: str) -> list[Node]:
        """The items of a list (none when the key is absent or not a list)."""
        node = self.node_of(key)
        return node.value if node is not None and isinstance(node.value, list) else []

    def finish(self) -> None:
        """Report keys nobody asked for: almost always a typo."""
        for key, (key_node, _) in self.entries.items():
            if key not in self.used:
                hint = difflib.get_close_matches(key, sorted(self.used), n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.ctx.fail(key_node, self.child_path(key), f"unknown key{suggestion}")


def read_flat(reader: Reader, cls: type, parsers: dict[str, Parser | tuple[str, Parser]]) -> Any:
    """A flat section: every key of ``cls`` read by ``parsers``; unknown keys reported."""
    values = reader.fields(cls, parsers)
    reader.finish()
    return cls(**values)
