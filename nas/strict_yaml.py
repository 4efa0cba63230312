"""YAML as configs are read: PyYAML's safe loader, but a key given twice in one mapping is an
error naming both lines rather than silently the last value (`budget:` written twice)."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *base` merges; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                line = first_line.get(key)
            except TypeError:  # an unhashable key: the safe loader's own error
                break
            if line is not None:
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found key {key!r} again (first given on line {line})", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """The one YAML document in `text`; `yaml.YAMLError` on bad YAML or a duplicate key."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
