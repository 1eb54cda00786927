"""YAML for job files, safe against hostile text: the one loader `raypipe run` uses.

`yaml.safe_load` already refuses code-running tags; it still accepts three things that hurt:

- **alias bombs**: ~600 bytes of nested anchors expand to billions of values once anything
  walks them (`raypipe run --check` once used 2.5 GB and died). Here the expanded size is
  measured on the composed node graph (shared nodes counted once per use, memoized, so the
  measure itself is cheap) and a file over `MAX_VALUES` is refused, as is a recursive alias.
- **deep nesting**: the composer recurses once per level; a file nested past `MAX_DEPTH` is
  refused from the event stream, before anything recursive runs.
- **duplicate keys**: YAML says they are an error, PyYAML keeps the last one silently. Here each
  is a problem naming the key and its line (a key a `<<: *merge` brings in may still be
  overridden: that is what merges are for).

`load(text, name)` returns the data, the problems found (duplicate keys), and a map from field
paths (`.steps[0].convert.out`, as `raypipe.config` writes them) to line numbers.
"""

from __future__ import annotations

from typing import Any

from raypipe.errors import RaypipeError

MAX_DEPTH = 50
MAX_VALUES = 100_000


def _loader_class():
    import yaml

    from raypipe.config import short_repr

    class Loader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self.duplicate_problems: list[tuple[int, str]] = []

        def construct_object(self, node, deep=False):
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, AttributeError, OverflowError) as exc:
                # a tagged scalar its constructor cannot read (`!!timestamp 2001-1\ufeff2-14`
                # makes PyYAML fail with AttributeError): one line, like every YAML error
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot read {node.tag.rsplit(':', 1)[-1]} value: {type(exc).__name__}",
                    node.start_mark) from None

        def construct_yaml_int(self, node):
            try:
                return super().construct_yaml_int(node)
            except ValueError:  # Python refuses int() of more than 4300 digits
                raise yaml.constructor.ConstructorError(
                    None, None, f"an integer of {len(str(node.value))} digits is out of range",
                    node.start_mark) from None

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                first_line: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        continue  # SafeLoader reports an unhashable key itself
                    line = key_node.start_mark.line + 1
                    if key in first_line:
                        self.duplicate_problems.append((line, f"duplicate key {short_repr(key)} (first at "
                                                               f"line {first_line[key]})"))
                    else:
                        first_line[key] = line
            return super().construct_mapping(node, deep=deep)

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    return Loader


def _check_depth(text: str, name: str, Loader) -> None:
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise RaypipeError(f"{name}:{event.start_mark.line + 1}: nesting deeper than {MAX_DEPTH}")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _expanded_size(root, name: str) -> int:
    """Values the document holds once every alias is expanded; refuses recursive aliases."""
    import yaml

    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node) -> int:  # recursion depth is bounded by MAX_DEPTH (checked first)
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise RaypipeError(f"{name}:{node.start_mark.line + 1}: an alias refers to a value that "
                               "contains it (a recursive alias)")
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        in_progress.discard(key)
        sizes[key] = min(total, MAX_VALUES + 1)  # saturate: the sum stays a small int
        return sizes[key]

    return size(root)


def _line_map(root) -> dict[str, int]:
    """Field path -> line, for the paths `raypipe.config` names in its problems."""
    import yaml

    lines: dict[str, int] = {"": root.start_mark.line + 1}
    todo = [("", root)]
    while todo:
        path, node = todo.pop()
        if isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                child_path = f"{path}[{i}]"
                lines[child_path] = child.start_mark.line + 1
                todo.append((child_path, child))
        elif isinstance(node, yaml.MappingNode):
            for key_node, child in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                child_path = f"{path}.{key_node.value}"
                lines.setdefault(child_path, key_node.start_mark.line + 1)
                todo.append((child_path, child))
    return lines


def load(text: str, name: str) -> tuple[Any, list[str], dict[str, int]]:
    """(data, problems, lines) of one YAML document; RaypipeError when it cannot be read."""
    import yaml

    Loader = _loader_class()
    try:
        _check_depth(text, name, Loader)
        loader = Loader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return None, [], {}
            if _expanded_size(root, name) > MAX_VALUES:
                raise RaypipeError(f"{name}: aliases expand this file to more than {MAX_VALUES} values "
                                   "(an alias bomb?); write the values out instead")
            data = loader.construct_document(root)
            problems = [f"{name}:{line}: {p}" for line, p in sorted(loader.duplicate_problems)]
            return data, problems, _line_map(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise RaypipeError(f"{name}: not valid YAML: {detail}") from None
