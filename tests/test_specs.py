"""The spec language: placeholders, alternatives, composed pools, axes, capabilities."""

import random

import pytest
import yaml

from synthforge.generate import compose
from synthforge.specs import SpecError, Slots, load_spec

from conftest import SPECS


def write_spec(folder, body: dict, common: dict | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    if common is not None:
        (folder / "_common.yaml").write_text(yaml.safe_dump(common))
    path = folder / f"{body['category']}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


BASE = {
    "category": "demo",
    "system": ["sys"],
    "vars": {"verb": ["load", "parse"], "noun": ["user", "order", "cart"], "fn": ["{{verb}}_{{noun}}"],
             "line": {"range": [10, 12]}},
    "scenarios": [{"name": "one", "turns": [
        {"user": ["Where is {{fn}} defined?"]},
        {"assistant": ["Looking."], "calls": [{"tool": "read", "args": {"file_path": "src/{{noun}}.rs", "offset": "{{line}}"},
                                               "result": ["ok"]}]},
        {"assistant": ["`{{fn}}` is in src/{{noun}}.rs at line {{line}}."]},
    ]}],
}


def slots(tmp_path, catalog, body=BASE, common=None, seed=0):
    spec = load_spec(write_spec(tmp_path / "specs", body, common), catalog)
    return spec, Slots(spec, random.Random(seed), [])


def test_composed_pools_agree_within_a_row_and_keep_types(tmp_path, catalog):
    spec, s = slots(tmp_path, catalog)
    text = s.fill("{{fn}} lives in src/{{noun}}.rs")
    fn, path = text.split(" lives in ")
    assert fn.split("_", 1)[1] == path[len("src/"):-len(".rs")]  # one noun per row
    assert s.fill("{{line}}") in (10, 11, 12) and isinstance(s.fill("{{line}}"), int)
    assert s.fill("{{noun2}}") != s.fill("{{noun}}")
    noun = s.fill("{{noun}}")
    assert s.fill("{{Noun}}") == noun[0].upper() + noun[1:]  # no Noun pool: the row's noun, capitalised
    fn2 = s.fill("{{fn2}}")  # a second composed value: its parts are drawn again
    assert fn2 == f"{s['verb2']}_{s['noun2']}"


def test_alternatives_nest_and_hold_placeholders(tmp_path, catalog):
    spec, _ = slots(tmp_path, catalog)
    seen = set()
    for seed in range(60):
        s = Slots(spec, random.Random(seed), [])
        seen.add(s.fill("{{Hi|Hello {{noun}}|{{Hey|Yo}} there}}!"))
    assert {"Hi!", "Hey there!", "Yo there!"} <= seen
    assert {x for x in seen if x.startswith("Hello ")} == {"Hello user!", "Hello order!", "Hello cart!"}


def test_code_braces_stay_literal(tmp_path, catalog):
    _, s = slots(tmp_path, catalog)
    code = 'fn main() { let m: HashMap<_, _> = HashMap::new(); println!("{}", x); } style={{color: red}} {{}}'
    assert s.fill(code) == code
    noun = s.fill("{{noun}}")
    assert s.fill("`${{{noun}}.id}`") == f"`${{{noun}.id}}`"  # a JS template around a placeholder
    assert s.fill("{{{{noun}} is fine|{{noun}} is fine}}") == f"{noun} is fine"  # an option opening with a placeholder
    assert s.fill("\n\n{{noun}}") == f"\n\n{noun}"  # whitespace around a lone placeholder is kept


def test_message_texts_are_strings(tmp_path, catalog):
    body = {**BASE, "vars": {**BASE["vars"], "files": [["a.rs", "b.rs"]]},
            "scenarios": [{"name": "n", "turns": [{"user": ["{{line}}"]}, {"assistant": ["{{files}}"]}]}]}
    spec = load_spec(write_spec(tmp_path / "specs", body), catalog)
    with pytest.raises(SpecError, match="scenario 'n': a message text filled to a list"):
        compose(spec, spec.scenarios[0], catalog, random.Random(0), 2)
    body["scenarios"][0]["turns"][1] = {"assistant": ["ok"]}
    spec = load_spec(write_spec(tmp_path / "specs2", body), catalog)
    row = compose(spec, spec.scenarios[0], catalog, random.Random(0), 2)
    assert row["messages"][1]["content"] in ("10", "11", "12")  # an integer placeholder becomes text


def test_unknown_placeholder_and_capability_are_errors(tmp_path, catalog):
    _, s = slots(tmp_path, catalog)
    with pytest.raises(SpecError, match=r"placeholder \{\{nope\}\} has no var"):
        s.fill("{{nope}}")
    bad = {**BASE, "scenarios": [{**BASE["scenarios"][0], "capabilities": ["telepathy"]}]}
    with pytest.raises(SpecError, match="unknown capability 'telepathy'"):
        slots(tmp_path, catalog, bad)


AXES = {"axes": {"expertise": {
    "novice": {"weight": 1, "vars": {"intro": ["I'm new. "]}, "capabilities": ["adaptive_behavior"]},
    "expert": {"weight": 1, "vars": {"intro": ["Terse please. "]}}},
    "tone": {"calm": {"vars": {"outro": [" thanks"]}}}}}


def test_axes_are_drawn_recorded_only_when_used_and_add_capabilities(tmp_path, catalog):
    body = {**BASE, "scenarios": [{**BASE["scenarios"][0], "capabilities": ["tool_orchestration"],
                                   "turns": [{"user": ["{{intro}}Where is {{fn}}?"]}, *BASE["scenarios"][0]["turns"][1:]]}]}
    spec = load_spec(write_spec(tmp_path / "specs", body, AXES), catalog)
    rows = [compose(spec, spec.scenarios[0], catalog, random.Random(i), 2) for i in range(40)]
    by_value = {r["meta"]["variation"]["expertise"] for r in rows}
    assert by_value == {"novice", "expert"}
    for r in rows:
        assert "tone" not in r["meta"]["variation"]  # its var is never used
        user = r["messages"][1]["content"]
        novice = r["meta"]["variation"]["expertise"] == "novice"
        assert user.startswith("I'm new. " if novice else "Terse please. ")
        assert ("adaptive_behavior" in r["meta"]["capabilities"]) == novice
        assert "tool_orchestration" in r["meta"]["capabilities"]


def test_scenarios_can_pin_an_axis(tmp_path, catalog):
    body = {**BASE, "scenarios": [{**BASE["scenarios"][0], "axes": {"expertise": "expert"},
                                   "turns": [{"user": ["{{intro}}Where is {{fn}}?"]}, *BASE["scenarios"][0]["turns"][1:]]}]}
    spec = load_spec(write_spec(tmp_path / "specs", body, AXES), catalog)
    rows = [compose(spec, spec.scenarios[0], catalog, random.Random(i), 2) for i in range(10)]
    assert {r["meta"]["variation"]["expertise"] for r in rows} == {"expert"}
    bad = {**body, "scenarios": [{**body["scenarios"][0], "axes": {"expertise": "guru"}}]}
    with pytest.raises(SpecError, match="pins unknown axis value expertise='guru'"):
        load_spec(write_spec(tmp_path / "bad", bad, AXES), catalog)


def test_shipped_specs_load(catalog):
    for path in sorted(SPECS.glob("[!_]*.yaml")):
        spec = load_spec(path, catalog)
        assert spec.subcategories(), path
