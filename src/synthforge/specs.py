"""Category specs: the data files that generation composes rows from.

Specs live in ``data/specs/<agent>/``, one ``<category>.yaml`` per category
plus an optional ``_common.yaml`` whose ``vars``, ``records`` and ``axes``
every category of that agent shares (a category's own keys win). A spec
holds only content; Python composes it. Its keys:

``category``
    The category name (must equal the file's stem).
``system``
    System prompts; one is picked per row.
``vars``
    Named pools. A list is picked from uniformly; ``{range: [a, b]}`` is a
    random integer. A picked string is filled in turn, so pools compose
    (``fn: ["{{verb}}_{{noun}}"]``). ``{{name2}}`` draws a second, different
    value of ``name`` (a composed one with its parts drawn again: ``{{fn2}}``
    is ``{{verb2}}_{{noun2}}``). ``{{Noun}}``, when no pool of that name
    exists, is the row's ``{{noun}}`` capitalised.
``records``
    Named lists of objects whose fields belong together (a file, its language
    and a symbol in it). A scenario's ``use`` picks one object per record and
    its fields become placeholders.
``axes``
    Variation axes (seed report 004): ``{axis: {value: {weight, vars,
    capabilities}}}``. Each row draws one value per axis (a scenario may pin
    one with ``axes: {axis: value}``); that value's vars override the pools,
    and the choice is recorded in ``meta.variation``.
``scenarios``
    ``name``, ``subcategory`` (default: the name; params give counts per
    sub-category), ``weight`` (share among the scenarios of one
    sub-category), ``use``, ``capabilities`` (tags from :data:`CAPABILITIES`)
    and ``turns``. A turn is ``{user: [alternatives]}`` or ``{assistant:
    [alternatives], calls: [...]}``; a call is ``{tool, args, result:
    [alternatives]}`` and is answered by a ``tool`` message with the result.
    Several calls in one turn are parallel.

Text syntax: ``{{name}}`` is a placeholder and ``{{a|b|c}}`` picks one
alternative (alternatives may hold placeholders and nest). Anything else in
double braces, and all single braces, stay literal, so code needs no
escaping. A string that is exactly one placeholder keeps the value's type
(an integer stays an integer in tool arguments).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .catalog import Catalog

NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
PLACEHOLDER = re.compile(r"\{\{" + NAME.pattern + r"\}\}")
COMMON = "_common.yaml"

# Seed report 000's 17 capabilities, in its order.
CAPABILITIES = (
    "planning_decomposition", "proactive_exploration", "tool_orchestration", "code_quality",
    "testing_mindset", "refactoring_patterns", "clarifying_questions", "progress_communication",
    "self_verification", "context_management", "documentation_awareness", "error_recovery",
    "language_expertise", "security_consciousness", "performance_optimization",
    "adaptive_behavior", "uncertainty_handling",
)


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
    axes: dict = field(default_factory=dict)

    def subcategories(self) -> list[str]:
        """Sub-category names in first-seen order."""
        return list(dict.fromkeys(subcategory(s) for s in self.scenarios))


def subcategory(scenario: dict) -> str:
    return scenario.get("subcategory", scenario["name"])


def load_spec(path: str | Path, catalog: Catalog) -> Spec:
    """Load ``path`` (merged over ``_common.yaml`` beside it) and check it against ``catalog``."""
    path = Path(path)
    doc = _read(path)
    for key in ("category", "system", "scenarios"):
        if key not in doc:
            raise SpecError(f"{path}: missing key {key!r}")
    if doc["category"] != path.stem:
        raise SpecError(f"{path}: category {doc['category']!r} must equal the file name {path.stem!r}")
    common = _read(path.parent / COMMON) if (path.parent / COMMON).exists() else {}
    spec = Spec(
        category=doc["category"], path=str(path), system=tuple(_strings(doc["system"], f"{path}: system")),
        vars={**(common.get("vars") or {}), **(doc.get("vars") or {})},
        records={**(common.get("records") or {}), **(doc.get("records") or {})},
        scenarios=tuple(doc["scenarios"]),
        axes={**(common.get("axes") or {}), **(doc.get("axes") or {})},
    )
    _check(spec, catalog)
    return spec


def _read(path: Path) -> dict:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return doc


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: expected a string or a non-empty list of strings")
    return value


def _check(spec: Spec, catalog: Catalog) -> None:
    for key in [*spec.vars, *spec.records]:
        if not isinstance(key, str):
            raise SpecError(f"{spec.path}: vars/records key {key!r} is not a string"
                            " (YAML reads yes/no/on/off/true/false as booleans: quote the name)")
    _check_axes(spec)
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
        _check_capabilities(sc.get("capabilities", []), where)
        for axis, value in (sc.get("axes") or {}).items():
            if value not in spec.axes.get(axis, {}):
                raise SpecError(f"{where}: pins unknown axis value {axis}={value!r}")
        turns = sc.get("turns")
        if not isinstance(turns, list) or not turns:
            raise SpecError(f"{where}: needs a non-empty list of turns")
        for t, turn in enumerate(turns):
            _check_turn(turn, f"{where} turn {t}", catalog)
        if "assistant" not in turns[-1]:
            raise SpecError(f"{where}: the last turn must be an assistant turn")


def _check_axes(spec: Spec) -> None:
    for axis, values in spec.axes.items():
        if not isinstance(values, dict) or not values:
            raise SpecError(f"{spec.path}: axes.{axis}: expected a mapping of values")
        for value, body in values.items():
            body = body or {}
            if not isinstance(body, dict) or set(body) - {"weight", "vars", "capabilities"}:
                raise SpecError(f"{spec.path}: axes.{axis}.{value}: keys are weight, vars, capabilities")
            _check_capabilities(body.get("capabilities", []), f"{spec.path}: axes.{axis}.{value}")


def _check_capabilities(tags: Any, where: str) -> None:
    unknown = [t for t in tags if t not in CAPABILITIES]
    if unknown:
        raise SpecError(f"{where}: unknown capability {unknown[0]!r} (known: {', '.join(CAPABILITIES)})")


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


def draw_axes(spec: Spec, scenario: dict, rng: random.Random) -> dict[str, str]:
    """One value per axis (weighted), with the scenario's pinned values kept."""
    pinned = scenario.get("axes") or {}
    chosen = {}
    for axis, values in spec.axes.items():
        if axis in pinned:
            chosen[axis] = pinned[axis]
            continue
        names = list(values)
        weights = [float((values[v] or {}).get("weight", 1)) for v in names]
        chosen[axis] = rng.choices(names, weights)[0]
    return chosen


class Slots(dict):
    """Placeholder values drawn lazily, in order of first use, from one RNG."""

    def __init__(self, spec: Spec, rng: random.Random, records: list[str], variation: dict[str, str] | None = None):
        super().__init__()
        self.spec, self.rng = spec, rng
        self.pools = dict(spec.vars)
        self.axis_of: dict[str, str] = {}
        for axis, value in (variation or {}).items():
            axis_vars = (spec.axes[axis][value] or {}).get("vars") or {}
            self.pools.update(axis_vars)
            self.axis_of.update(dict.fromkeys(axis_vars, axis))
        self.used_axes: set[str] = set()
        self._raw: set[str] = set()
        for name in records:
            fields = rng.choice(spec.records[name])
            self.update(fields)
            self._raw.update(fields)

    def __missing__(self, name: str) -> Any:
        if name in self.axis_of:
            self.used_axes.add(self.axis_of[name])
        lower = name[:1].lower() + name[1:]
        if name not in self.pools and name[:1].isupper() and (lower in self.pools or lower in self):
            value = str(self.value(lower))  # {{Noun}} is {{noun}} capitalised: one noun per row
            self[name] = value = value[:1].upper() + value[1:]
            return value
        base, taken = name, []
        if name not in self.pools:
            base = name.rstrip("0123456789")
            if base not in self.pools and base not in self:
                raise SpecError(f"{self.spec.path}: placeholder {{{{{name}}}}} has no var or record field")
            taken = [v for k, v in self.items() if k.rstrip("0123456789") == base]
        value = self._draw(self.pools.get(base, [self.value(base)] if base in self else []), taken)
        suffix = name[len(base):]
        if suffix and isinstance(value, str):  # a second composed value draws its parts afresh too
            value = PLACEHOLDER.sub(
                lambda m: f"{{{{{m.group(1)}{suffix}}}}}" if m.group(1) in self.pools else m.group(0), value)
        self[name] = value = self.fill(value)
        return value

    def value(self, name: str) -> Any:
        """A placeholder's value, filled (record fields are filled on first use)."""
        value = self[name]
        if name in self._raw:
            self._raw.discard(name)
            self[name] = value = self.fill(value)
        return value

    def _draw(self, pool: Any, taken: list) -> Any:
        if isinstance(pool, dict) and "range" in pool:
            lo, hi = pool["range"]
            return self.rng.randint(lo, hi)
        if not isinstance(pool, list):
            return pool
        choices = [v for v in pool if v not in taken] or list(pool)
        return self.rng.choice(choices)

    def fill(self, value: Any) -> Any:
        """Fill placeholders and alternatives in a string, or recursively in lists and dicts."""
        if isinstance(value, str):
            whole = PLACEHOLDER.fullmatch(value)
            if whole:
                return self.value(whole.group(1))
            return self._text(value)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value

    def _text(self, text: str) -> str:
        out = []
        for kind, value in _parse(text):
            if kind is LITERAL:
                out.append(value)
            elif kind is VAR:
                out.append(str(self.value(value)))
            elif kind is CHOICE:
                out.append(self._text(self.rng.choice(value)))
            else:  # literal double braces around a template
                out.append("{{" + self._text(value) + "}}")
        return "".join(out)


LITERAL, VAR, CHOICE, BRACED = "literal", "var", "choice", "braced"
BRACES = re.compile(r"\{\{|\}\}")
TOP = re.compile(r"\{\{|\}\}|\|")


@functools.lru_cache(maxsize=None)
def _parse(text: str) -> tuple[tuple[str, Any], ...]:
    """Split a text once into literal, placeholder and alternative segments (cached)."""
    out, i = [], 0
    while (start := text.find("{{", i)) >= 0:
        segment = _segment(text, start)
        while segment[0] == LITERAL and text.startswith("{", start + 2):
            start += 1  # `${{{name}}}`: the first brace is code, not part of the placeholder
            segment = _segment(text, start)
        end = segment[2]
        if end < 0:
            break
        if start > i:
            out.append((LITERAL, text[i:start]))
        out.append(segment[:2])
        i = end + 2
    if i < len(text):
        out.append((LITERAL, text[i:]))
    return tuple(out)


def _segment(text: str, start: int) -> tuple[str, Any, int]:
    """What the ``{{`` at ``start`` opens: (kind, value, index of its ``}}`` or -1)."""
    end = _closing(text, start)
    if end < 0:
        return LITERAL, "", -1
    inner = text[start + 2: end]
    options = _split_top(inner)
    name = NAME.fullmatch(inner)
    if len(options) > 1:
        return CHOICE, tuple(options), end
    if name:
        return VAR, name.group(1), end
    if "{{" in inner:
        return BRACED, inner, end
    return LITERAL, text[start: end + 2], end


def _closing(text: str, start: int) -> int:
    """Index of the ``}}`` that closes the ``{{`` at ``start``, or -1."""
    depth = 0
    for m in BRACES.finditer(text, start):
        depth += 1 if m.group() == "{{" else -1
        if depth == 0:
            return m.start()
    return -1


def _split_top(inner: str) -> list[str]:
    """Split on ``|`` outside nested ``{{ }}``."""
    if "|" not in inner:
        return [inner]
    parts, depth, last = [], 0, 0
    for m in TOP.finditer(inner):
        token = m.group()
        if token == "|":
            if depth == 0:
                parts.append(inner[last: m.start()])
                last = m.end()
        else:
            depth += 1 if token == "{{" else -1
    parts.append(inner[last:])
    return parts
