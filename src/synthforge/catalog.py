"""Tool catalogs: JSON-Schema function definitions an agent can call.

A catalog file (``data/tools/*.json``) is ``{"name": ..., "tools": [...]}``
where each tool is an OpenAI function definition
``{"type": "function", "function": {"name", "description", "parameters"}}``.
Generation picks tools from it, validation checks calls against it, and every
example carries the definitions it was rendered with.

    >>> cat = load_catalog("data/tools/coding_agent.json")
    >>> cat.check_arguments("read", {"file_path": "src/main.rs"})
    []
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema


class CatalogError(ValueError):
    """A catalog file is missing or malformed."""


@dataclass(frozen=True)
class Catalog:
    name: str
    tools: tuple[dict, ...]
    path: str = ""
    _validators: dict = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def by_name(self) -> dict[str, dict]:
        return {t["function"]["name"]: t for t in self.tools}

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def get(self, name: str) -> dict:
        try:
            return self.by_name[name]
        except KeyError:
            raise CatalogError(f"{self.path}: no tool named {name!r} (have: {', '.join(self.names)})") from None

    def check_arguments(self, name: str, arguments: Any) -> list[str]:
        """Reasons ``arguments`` break tool ``name``'s schema (empty when valid)."""
        if name not in self.by_name:
            return [f"unknown tool {name!r}"]
        validator = self._validators.get(name)
        if validator is None:
            schema = self.by_name[name]["function"].get("parameters", {"type": "object"})
            validator = jsonschema.Draft202012Validator(schema)
            self._validators[name] = validator
        return [
            f"{name}: {'/'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}"
            for e in validator.iter_errors(arguments)
        ]


def load_catalog(path: str | Path) -> Catalog:
    """Load and check a catalog file; errors name the file and the tool."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    tools = doc.get("tools") if isinstance(doc, dict) else None
    if not isinstance(tools, list) or not tools:
        raise CatalogError(f"{path}: expected {{\"name\": ..., \"tools\": [...]}} with at least one tool")
    seen = set()
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise CatalogError(f"{path}: tools[{i}] is not an OpenAI function definition")
        if fn["name"] in seen:
            raise CatalogError(f"{path}: tools[{i}] repeats the name {fn['name']!r}")
        seen.add(fn["name"])
        try:
            jsonschema.Draft202012Validator.check_schema(fn.get("parameters", {}))
        except jsonschema.SchemaError as exc:
            raise CatalogError(f"{path}: tool {fn['name']!r} has an invalid parameters schema: {exc.message}") from None
    return Catalog(name=str(doc.get("name", path.stem)), tools=tuple(tools), path=str(path))
