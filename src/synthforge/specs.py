"""Category specs: the data files that generation composes rows from.

A spec (``data/specs/<category>.yaml``) holds only content; Python composes
it. Its keys:

``category``
    The category name (must equal the file's stem).
``system``
    System prompts; one is picked per row.
``vars``
    Named pools. A list is picked from uniformly; ``{range: [a, b]}`` is a
    random integer. ``{{name2}}`` draws a second, different value of ``name``.
``records``
    Named lists of objects whose fields belong together (a file, its language
    and a symbol in it). A scenario's ``use`` picks one object per record and
    its fields become placeholders.
``scenarios``
    Sub-categories: ``name``, ``weight`` (share within the category), ``use``,
    optional ``capabilities`` (tags), and ``turns``. A turn is
    ``{user: [alternatives]}`` or ``{assistant: [alternatives], calls: [...]}``;
    a call is ``{tool, args, result: [alternatives]}`` and is answered by a
    ``tool`` message with the result. Several calls in one turn are parallel.

Placeholders are ``{{name}}`` (single braces stay literal, so code snippets
need no escaping). A string that is exactly one placeholder keeps the value's
type (an integer stays an integer in tool arguments).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .catalog import Catalog

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class SpecError(ValueError):
    """A category spec is malformed; the message names the file and key."""


@dataclass(frozen=True)
class Spec:
    category: str
    path: str
    system: tuple[str, ...]
    vars: dict
    records: dict
    scenarios: tuple[dict, ...]


def load_spec(path: str | Path, catalog: Catalog) -> Spec:
    """Load ``path`` and check it against ``catalog`` (every called tool exists)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    for key in ("category", "system", "scenarios"):
        if key not in doc:
            raise SpecError(f"{path}: missing key {key!r}")
    if doc["category"] != path.stem:
        raise SpecError(f"{path}: category {doc['category']!r} must equal the file name {path.stem!r}")
    spec = Spec(
        category=doc["category"], path=str(path), system=tuple(_strings(doc["system"], f"{path}: system")),
        vars=dict(doc.get("vars") or {}), records=dict(doc.get("records") or {}),
        scenarios=tuple(doc["scenarios"]),
    )
    _check(spec, catalog)
    return spec


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: expected a string or a non-empty list of strings")
    return value


def _check(spec: Spec, catalog: Catalog) -> None:
    names = set()
    for i, sc in enumerate(spec.scenarios):
        where = f"{spec.path}: scenarios[{i}]"
        if not isinstance(sc, dict) or not isinstance(sc.get("name"), str):
            raise SpecError(f"{where}: needs a 'name'")
        where = f"{spec.path}: scenario {sc['name']!r}"
        if sc["name"] in names:
            raise SpecError(f"{where}: name used twice")
        names.add(sc["name"])
        if not isinstance(sc.get("weight", 1), (int, float)) or sc.get("weight", 1) <= 0:
            raise SpecError(f"{where}: weight must be a positive number")
        for rec in sc.get("use", []):
            if rec not in spec.records:
                raise SpecError(f"{where}: uses unknown record {rec!r}")
        turns = sc.get("turns")
        if not isinstance(turns, list) or not turns:
            raise SpecError(f"{where}: needs a non-empty list of turns")
        for t, turn in enumerate(turns):
            _check_turn(turn, f"{where} turn {t}", catalog)
        if "assistant" not in turns[-1]:
            raise SpecError(f"{where}: the last turn must be an assistant turn")


def _check_turn(turn: Any, where: str, catalog: Catalog) -> None:
    if not isinstance(turn, dict) or len({"user", "assistant"} & set(turn)) != 1:
        raise SpecError(f"{where}: a turn is {{user: [...]}} or {{assistant: [...], calls: [...]}}")
    role = "user" if "user" in turn else "assistant"
    _strings(turn[role], f"{where}: {role}")
    for c, call in enumerate(turn.get("calls", [])):
        if not isinstance(call, dict) or "tool" not in call or "result" not in call:
            raise SpecError(f"{where} call {c}: needs 'tool', 'args' and 'result'")
        if call["tool"] not in catalog:
            raise SpecError(f"{where} call {c}: tool {call['tool']!r} is not in catalog {catalog.path}")
        _strings(call["result"], f"{where} call {c}: result")


class Slots(dict):
    """Placeholder values drawn lazily, in order of first use, from one RNG."""

    def __init__(self, spec: Spec, rng: random.Random, records: list[str]):
        super().__init__()
        self.spec, self.rng = spec, rng
        for name in records:
            self.update(rng.choice(spec.records[name]))

    def __missing__(self, name: str) -> Any:
        base, taken = name, set()
        if name not in self.spec.vars:
            base = name.rstrip("0123456789")
            if base not in self.spec.vars and base not in self:
                raise SpecError(f"{self.spec.path}: placeholder {{{{{name}}}}} has no var or record field")
            taken = {v for k, v in self.items() if k.rstrip("0123456789") == base}
        value = self._draw(self.spec.vars.get(base, [self.get(base)]), taken)
        self[name] = value
        return value

    def _draw(self, pool: Any, taken: set) -> Any:
        if isinstance(pool, dict) and "range" in pool:
            lo, hi = pool["range"]
            return self.rng.randint(lo, hi)
        choices = [v for v in pool if v not in taken] or list(pool)
        return self.rng.choice(choices)

    def fill(self, value: Any) -> Any:
        """Fill placeholders in a string, or recursively in lists and dicts."""
        if isinstance(value, str):
            whole = PLACEHOLDER.fullmatch(value.strip())
            if whole:
                return self[whole.group(1)]
            return PLACEHOLDER.sub(lambda m: str(self[m.group(1)]), value)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value
