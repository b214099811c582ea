"""Class-set text and files: format detection, bounded reading, safe JSON and YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from emoclip.classes.base import ClassSetError, Limits
from emoclip.classes.messages import kb, quote, show_key

_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def format_of(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ClassSetError(
            f"unsupported file type {quote(path.suffix or path.name)}: use .yaml, .yml or .json"
        )
    return fmt


def read_file(path: Path, limits: Limits) -> str:
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise ClassSetError(
                f"{quote(path.name)} is {kb(size)}; the limit is {kb(limits.max_file_bytes)}"
            )
        with path.open("rb") as file:
            raw = file.read(limits.max_file_bytes + 1)  # the file may grow after stat()
    except OSError as error:
        raise ClassSetError(f"cannot read {quote(path.name)}: {error.strerror or error}") from error
    if len(raw) > limits.max_file_bytes:
        raise ClassSetError(f"{quote(path.name)} is over {kb(limits.max_file_bytes)}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ClassSetError(
            f"{quote(path.name)} is not UTF-8 text (bad byte at offset {error.start})"
        ) from None


def load_text(text: str, fmt: str, limits: Limits) -> Any:
    """YAML/JSON text -> plain data. `fmt` is "yaml", "json" or "auto"."""
    if not isinstance(text, str):
        raise TypeError(f"expected the text of a class set (str), got {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_file_bytes:
        raise ClassSetError(
            f"the class set text is {kb(size)}; the limit is {kb(limits.max_file_bytes)}"
        )
    text = text.removeprefix("\ufeff")
    if fmt == "json":
        return _load_json(text)
    if fmt == "auto" and text.lstrip().startswith(("{", "[")):
        try:
            return _load_json(text)
        except ClassSetError as json_error:
            try:  # a YAML flow collection such as {anger: ...} is not JSON
                return _load_yaml(text, limits)
            except ClassSetError:
                raise json_error from None
    return _load_yaml(text, limits)


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except ClassSetError:
        raise
    except json.JSONDecodeError as error:
        raise ClassSetError(
            f"JSON syntax error at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except ValueError:  # e.g. an integer with thousands of digits
        raise ClassSetError("the JSON contains a number too large to read") from None
    except RecursionError:
        raise ClassSetError("the JSON is nested too deeply") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ClassSetError(f"duplicate key {quote(key)} in the JSON")
        data[key] = value
    return data


def _load_yaml(text: str, limits: Limits) -> Any:
    try:
        loader = _YamlLoader(text)
        loader.node_budget = _node_budget(limits)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ClassSetError:
        raise
    except yaml.MarkedYAMLError as error:
        raise ClassSetError(_yaml_message(error)) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        code = ord(error.character) if isinstance(error.character, str) else error.character
        raise ClassSetError(
            f"YAML error at line {line}: the character U+{code:04X} is not allowed in YAML"
        ) from None
    except yaml.YAMLError as error:
        raise ClassSetError(f"YAML error: {error}") from None
    except RecursionError:
        raise ClassSetError("the YAML is nested too deeply") from None
    except (ValueError, OverflowError, TypeError) as error:  # e.g. 2024-02-31 read as a date
        reason = "a number is too long" if "digits" in str(error) else str(error)
        raise ClassSetError(
            f"the YAML contains a value that cannot be read ({reason}); put text in quotes"
        ) from None


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"YAML error{where}: {error.problem or error.context or 'invalid YAML'}"


def _node_budget(limits: Limits) -> int:
    """Most YAML nodes a valid class set can need, with room for the entry-list format."""
    per_class = limits.max_descriptions + limits.max_compound_parts + 8
    return 64 + 2 * limits.max_classes * per_class


class _YamlLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects merge keys, duplicate keys and oversized documents.

    The pure-Python loader is used on purpose: it fails cleanly (RecursionError) on deeply
    nested input, where libyaml's composer can overflow the C stack. Counting composed nodes
    (each alias use counts once) bounds the work; construction then shares aliased objects,
    and `read_data` never walks more than the limits allow, so alias bombs stay cheap.
    """

    node_budget = 10_000
    _nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._nodes += 1
        if self._nodes > self.node_budget:
            mark = self.peek_event().start_mark
            raise ClassSetError(
                f"YAML error at line {mark.line + 1}: the document has more than "
                f"{self.node_budget} values (aliases included), too many for a class set"
            )
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "merge keys (<<) are not supported in class sets",
                    key_node.start_mark,
                )
        super().flatten_mapping(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: PyYAML reports it below
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {show_key(key)}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


class _FlowList(list):
    """A list written in YAML flow style: [a, b]."""


class _FlowDict(dict):
    """A mapping written in YAML flow style: {a: 1, b: 2}."""


class YamlDumper(yaml.SafeDumper):
    """SafeDumper that writes compound parts on one line."""


YamlDumper.add_representer(
    _FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, True)
)
YamlDumper.add_representer(
    _FlowDict, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, True)
)


def yaml_ready(data: dict[str, Any]) -> dict[str, Any]:
    compounds = data.get("compounds")
    if compounds:
        data["compounds"] = {
            name: _FlowList(parts) if isinstance(parts, list) else _FlowDict(parts)
            for name, parts in compounds.items()
        }
    return data
