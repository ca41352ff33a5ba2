"""Scoring, repairs and the closed enhance loop on seed-003 style and chat rows."""

import copy
import json
from collections import Counter

import mlflow
import pytest
from click.testing import CliRunner

from synthforge.catalog import load_catalog
from synthforge.cli import main
from synthforge.enhancereport import histogram
from synthforge.io import read_rows as read
from synthforge.repairs import ground_placeholders, repairs_for, single_turn
from synthforge.schema import from_seed003, mlx_row
from synthforge.scoring import Scorer, overall

from conftest import CATALOG, ROOT, write_rows

SYSTEM = "You are a coding agent working in the user's repository. Answer with one tool call."
GOOD_CONTEXT = {
    "sessionMemory": "Ran pytest: 3 of 41 tests fail in tests/test_orders.py, all on Decimal rounding.",
    "toolContext": "Reading the module because the failing tests all call apply_discount, so its rounding is the "
                   "first suspect to confirm.",
    "primaryGoal": "Fix the Decimal rounding failures in the orders tests",
    "subgoal": "Inspect apply_discount in src/billing/invoice.py",
}


def legacy(user, call="read", args=None, context=None, *, more=(), **extra):
    """A seed-003 style row: system, user, assistant tool call (+ optional Result/call pairs)."""
    args = {"file_path": "src/billing/invoice.py"} if args is None else args
    turns = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
             {"role": "assistant", "content": f"tool_call: {call}\narguments: {json.dumps(args)}"}]
    for result, (name, a) in more:
        turns += [{"role": "user", "content": "Result: " + json.dumps(result)},
                  {"role": "assistant", "content": f"tool_call: {name}\narguments: {json.dumps(a)}"}]
    return {"conversations": turns, "label": True, "category": "tool_usage",
            "context": dict(GOOD_CONTEXT if context is None else context), **extra}


def canonical(raw, n=1):
    return from_seed003(raw, row_id=f"legacy-{n:06d}")


@pytest.fixture
def scorer():
    return Scorer(load_catalog(CATALOG))


GOOD_USER = "The orders tests fail on rounding; open src/billing/invoice.py so we can see apply_discount."


def test_a_good_context_row_scores_five_on_the_seeds_five_dimensions(scorer):
    scores = scorer.score(canonical(legacy(GOOD_USER)))
    assert list(scores) == ["session_memory", "tool_context", "goal_coherence", "prompt_naturalness",
                            "response_realism"]
    assert {d: s["score"] for d, s in scores.items()} == dict.fromkeys(scores, 5), scores


@pytest.mark.parametrize("change, dimension, score, reason", [
    ({"sessionMemory": ""}, "session_memory", 1, "empty"),
    ({"sessionMemory": "No previous context."}, "session_memory", 2, "generic"),
    ({"sessionMemory": "The user wants the tests to pass again."}, "session_memory", 3, "short"),
    ({"toolContext": {"tool": "read", "purpose": "read file"}}, "tool_context", 2, "dict"),
    ({"toolContext": "Reads a file."}, "tool_context", 3, "not why"),
    ({"subgoal": GOOD_CONTEXT["primaryGoal"]}, "goal_coherence", 2, "repeats"),
    ({"primaryGoal": "Help the user", "subgoal": "Complete the task"}, "goal_coherence", 2, "generic"),
])
def test_each_context_defect_lowers_its_dimension_with_a_reason(scorer, change, dimension, score, reason):
    scores = scorer.score(canonical(legacy(GOOD_USER, context={**GOOD_CONTEXT, **change})))
    assert scores[dimension]["score"] == score
    assert reason in scores[dimension]["reason"]
    assert all(s["score"] == 5 for d, s in scores.items() if d != dimension)


def test_continuations_placeholders_and_multi_turn_rows_score_low(scorer):
    pasted = scorer.score(canonical(legacy('Result: {"matches": [{"file": "src/billing/invoice.py", "line": 88}]}')))
    assert pasted["prompt_naturalness"]["score"] == 1
    placeholder = scorer.score(canonical(legacy(GOOD_USER, args={"file_path": "path/to/file.py"})))
    assert placeholder["response_realism"] == {"score": 1, "reason": "placeholder argument 'path/to/file.py'"}
    multi = canonical(legacy("Find where discounts are applied.", "grep", {"pattern": "apply_discount"},
                             more=[({"matches": ["src/billing/invoice.py:88"]},
                                    ("read", {"file_path": "src/billing/invoice.py"}))]))
    assert scorer.score(multi)["response_realism"]["score"] == 2
    assert Scorer(load_catalog(CATALOG), single_turn=False).score(multi)["response_realism"]["score"] == 5


def test_a_result_turn_after_a_call_converts_to_that_calls_tool_result():
    row = canonical(legacy("Find where discounts are applied.", "grep", {"pattern": "apply_discount"},
                           more=[({"matches": ["src/billing/invoice.py:88"]},
                                  ("read", {"file_path": "src/billing/invoice.py"}))]))
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert row["messages"][3] == {"role": "tool", "tool_call_id": "call_1",
                                  "content": '{"matches": ["src/billing/invoice.py:88"]}'}
    assert row["messages"][4]["tool_calls"][0]["id"] == "call_2"


def test_repairs_fix_each_defect_from_facts_in_the_row(scorer):
    catalog = load_catalog(CATALOG)
    row = canonical(legacy('Result: {"matches": [{"file": "src/billing/invoice.py", "line": 88}]}',
                           context={"sessionMemory": "", "toolContext": {"tool": "read"},
                                    "primaryGoal": "Fix the Decimal rounding in invoices", "subgoal": "Help the user"},
                           quality_scores={"prompt_naturalness": 1}, _index=4, _line_number=5))
    before = scorer.score(row)
    applied = [fn.__name__ for fn in repairs_for(row) if fn(row, catalog)]
    assert applied == ["fill_session_memory", "fix_goals", "natural_request", "explain_tool_context", "strip_metadata"]
    context = row["meta"]["context"]
    request = row["messages"][1]["content"]
    assert request.startswith("The last step turned up src/billing/invoice.py. Next, please read a file")
    assert "src/billing/invoice.py" in context["subgoal"]  # from the call, replacing the generic one
    assert "src/billing/invoice.py" in context["sessionMemory"]  # from the pasted result
    assert "Fix the Decimal rounding" not in context["sessionMemory"] or "Working on" in context["sessionMemory"]
    assert context["toolContext"].startswith("Calling read on src/billing/invoice.py because")
    assert not {"quality_scores", "_index", "_line_number"} & set(row["meta"])
    after = scorer.score(row)
    assert overall(before) < 2.5 and overall(after) == 5.0, (before, after)
    for repair in repairs_for(row):
        assert not repair(row, catalog), f"{repair.__name__} changed an already repaired row"


def test_placeholders_are_grounded_only_when_the_row_names_one_candidate(scorer):
    catalog = load_catalog(CATALOG)
    quiet = {**GOOD_CONTEXT, "sessionMemory": "Totals on invoices are wrong since Monday.", "subgoal": "Open the module"}
    one = canonical(legacy("Open the invoice module src/billing/invoice.py please.", args={"file_path": "path/to/file.py"},
                           context=quiet))
    assert ground_placeholders(one, catalog)
    assert json.loads(one["messages"][-1]["tool_calls"][0]["function"]["arguments"]) == {"file_path": "src/billing/invoice.py"}
    two = canonical(legacy("Compare src/a.py with src/b.py for me.", args={"file_path": "path/to/file.py"},
                           context={**GOOD_CONTEXT, "sessionMemory": "", "subgoal": "Compare two modules"}))
    assert not ground_placeholders(two, catalog)  # two candidates: a guess would be worse


def test_single_turn_moves_earlier_steps_into_session_memory(scorer):
    catalog = load_catalog(CATALOG)
    row = canonical(legacy("Find where discounts are applied.", "grep", {"pattern": "apply_discount"},
                           context={**GOOD_CONTEXT, "sessionMemory": "N/A"},
                           more=[({"matches": ["src/billing/invoice.py:88"]},
                                  ("read", {"file_path": "src/billing/invoice.py"}))]))
    assert single_turn(row, catalog)
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][-1]["tool_calls"][0]["function"]["name"] == "read"
    memory = row["meta"]["context"]["sessionMemory"]
    assert 'grep(pattern="apply_discount")' in memory and "src/billing/invoice.py:88" in memory
    assert scorer.score(row)["response_realism"]["score"] >= 4


def test_the_final_split_row_shows_the_context_to_the_model():
    row = canonical(legacy(GOOD_USER))
    messages = mlx_row(row)["messages"]
    assert messages[0]["content"].startswith(SYSTEM)
    assert "Session memory: Ran pytest: 3 of 41" in messages[0]["content"]
    assert "Current step: Inspect apply_discount" in messages[0]["content"]
    assert messages[-1]["content"] == GOOD_CONTEXT["toolContext"]
    assert row["messages"][-1]["content"] == ""  # the row itself is not changed


def test_histogram_bins_every_score_once():
    counts = histogram([1.0, 1.2, 2.5, 4.999, 5.0, 3.25])
    assert sum(counts) == 6 and counts[0] == 2 and counts[6] == 1 and counts[-1] == 1 and counts[-2] == 1


# --- the stage through the CLI ------------------------------------------------


def params_file(tmp_path, **enhance):
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["enhance"].update(enhance)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_enhance(tmp_path, rows_path, params, out="out", extra=()):
    d = tmp_path / out
    args = ["enhance", "--input", str(rows_path), "--tools", str(CATALOG),
            "--suite", str(ROOT / "expectations" / "critical.json"), "--out", str(d / "enhanced.jsonl"),
            "--rejected", str(d / "rejected.jsonl"), "--kto", str(d / "kto.jsonl"), "--report", str(d / "report.json"),
            "--plots", str(d / "plots"), "--cache", str(tmp_path / "judge-cache.jsonl"), "--params", str(params),
            *extra]
    result = CliRunner().invoke(main, args)
    return result, d


def test_weak_chat_rows_are_repaired_and_strong_ones_kept(tmp_path, generated_rows):
    rows = copy.deepcopy(generated_rows[:20])
    for row in rows[:5]:  # strip the explanations of every tool-call turn
        for m in row["messages"]:
            if m.get("tool_calls"):
                m["content"] = ""
        row["messages"][-1]["content"] = "Done, the change is in place now."  # short: 3 of 5
    result, d = run_enhance(tmp_path, write_rows(tmp_path / "in.jsonl", rows), params_file(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    out = read(d / "enhanced.jsonl")
    assert "enhance: in 20 = kept 15 + enhanced 5 + rejected 0 (rules-v3)" in result.output
    runs = mlflow.search_runs(experiment_names=["synthforge"], filter_string="tags.`synthforge.stage` = 'enhance'")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["metrics.enhanced"] == 5 and run["params.enhance.min_score"] == "4.0"
    assert run["metrics.enhanced_rows.score_after"] == report["enhanced_rows"]["score_after"]
    assert run["metrics.enhanced_rows.explanation_quality.after"] == 5
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"], "enhance")}
    assert artifacts == {"enhance/scores.png", "enhance/score_hist.csv", "enhance/dimensions.csv"}
    assert report["rows_in"] == 20 == report["kept"] + report["enhanced"] + report["rejected"] == len(out) + report["rejected"]
    enhanced = [r for r in out if r["meta"]["lineage"]["status"] == "enhanced"]
    assert {r["meta"]["id"] for r in enhanced} == {r["meta"]["id"] for r in rows[:5]}
    for row in enhanced:
        lineage = row["meta"]["lineage"]
        assert lineage["repairs"] == ["explain_tool_calls"] and lineage["score_after"] > lineage["score_before"]
        assert all(len(m["content"].split()) >= 4 for m in row["messages"] if m.get("tool_calls"))
    kept = [r for r in out if r["meta"]["lineage"]["status"] == "kept"]
    originals = {r["meta"]["id"]: r for r in rows}
    assert all(r["messages"] == originals[r["meta"]["id"]]["messages"] for r in kept)
    assert len(read(d / "kto.jsonl")) == 2 * len(enhanced)


def test_a_rewrite_that_breaks_the_critical_gate_is_rejected_with_the_reason(tmp_path, generated_rows):
    row = copy.deepcopy(next(r for r in generated_rows if any(m.get("tool_calls") for m in r["messages"])))
    for m in row["messages"]:
        if m.get("tool_calls"):
            m["content"] = ""
    row["messages"][-1]["content"] = "Write to alice.smith@corp-mail.net if it fails."  # short answer, an address
    result, d = run_enhance(tmp_path, write_rows(tmp_path / "in.jsonl", [row]), params_file(tmp_path),
                            extra=["--no-track"])
    assert result.exit_code == 0, result.output
    assert read(d / "enhanced.jsonl") == []
    [rejected] = read(d / "rejected.jsonl")
    assert rejected["reason"].startswith("rewrite fails the critical gate: no_email_addresses")
    assert rejected["rewrite"] is not None and rejected["source"] == row["meta"]["id"]
    assert json.loads((d / "report.json").read_text())["rejected_reasons"] == {"critical_gate": 1}
    assert "alice.smith@corp-mail.net" not in (d / "rejected.jsonl").read_text()  # masked, like gate 1's quarantine


# --- the LLM judge ------------------------------------------------------------------


def judge_params(tmp_path, url, **openai):
    settings = {"base_url": url, "model": "fake", "timeout_s": 20.0, "backoff_s": 0.01, "max_retries": 2,
                "concurrency": 2, "temperature": 0.0, "max_tokens": 48, **openai}
    return params_file(tmp_path, judge="openai", openai=settings)


def rules_judge(body):
    """A fake judge: the rule scorer's verdict on the row in the prompt; prose for rows asking about 'weather'."""
    shown = json.loads(body["messages"][-1]["content"])
    if "weather" in json.dumps(shown["messages"]):
        return "Looks fine to me!"
    row = {"messages": shown["messages"], "meta": {"context": shown.get("context")}}
    return "```json\n" + json.dumps(Scorer(load_catalog(CATALOG)).score(row)) + "\n```"


def legacy_file(tmp_path):
    raws = [legacy(GOOD_USER),
            legacy('Result: {"matches": [{"file": "src/billing/invoice.py", "line": 88}]}',
                   context={**GOOD_CONTEXT, "sessionMemory": "", "toolContext": {"tool": "read"}}),
            legacy("What is the weather in the build logs of src/ci/build.py today?", args={"file_path": "src/ci/build.py"})]
    return write_rows(tmp_path / "legacy.jsonl", [canonical(r, n) for n, r in enumerate(raws, 1)])


def test_llm_judge_scores_the_loop_and_rejects_unusable_replies(tmp_path):
    from fake_llm import FakeLLM

    with FakeLLM(reply=rules_judge) as server:
        params = judge_params(tmp_path, server.url)
        result, d = run_enhance(tmp_path, legacy_file(tmp_path), params, extra=["--no-track"])
        assert result.exit_code == 0, result.output
        asked = server.requests
        again, _ = run_enhance(tmp_path, legacy_file(tmp_path), params, out="again", extra=["--no-track"])
        assert again.exit_code == 0 and server.requests == asked  # every judgement came from the cache
    report = json.loads((d / "report.json").read_text())
    assert (report["rows_in"], report["kept"], report["enhanced"], report["rejected"]) == (3, 1, 1, 1)
    assert report["scorer"] == "openai:fake" and report["rubric"] == "judge-v1"
    [rejected] = read(d / "rejected.jsonl")
    assert rejected["source"] == "legacy-000003"
    assert rejected["reason"] == "judge reply holds no JSON object: 'Looks fine to me!'"
    statuses = {r["meta"]["id"]: r["meta"]["lineage"]["status"] for r in read(d / "enhanced.jsonl")}
    assert statuses == {"legacy-000001": "kept", "legacy-000002": "enhanced"}
    assert (d / "enhanced.jsonl").read_bytes() == (tmp_path / "again" / "enhanced.jsonl").read_bytes()


def test_llm_judge_against_mlx_lm_server_rejects_what_the_tiny_model_says(tmp_path, mlx_server):
    url, posts = mlx_server
    result, d = run_enhance(tmp_path, legacy_file(tmp_path), judge_params(tmp_path, url, model="default_model"),
                            extra=["--no-track"])
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    assert report["rows_in"] == 3 == report["kept"] + report["enhanced"] + report["rejected"]
    assert posts() >= 3  # every row was put to the server
    rejected = read(d / "rejected.jsonl")
    # a random-init model cannot produce the rubric's JSON: each row is rejected with the reason, none is guessed
    assert len(rejected) == 3 and all(r["reason"].startswith("judge reply") for r in rejected), rejected
    assert read(d / "enhanced.jsonl") == []


# --- acceptance: the shipped legacy data -----------------------------------------------

SEED = ROOT / "data" / "seed" / "legacy_tools.jsonl"


def gate(tmp_path, params, inputs, imports, out):
    d = tmp_path / out
    args = ["validate", *[a for i in inputs for a in ("--input", str(i))], *[a for i in imports for a in ("--import", str(i))],
            "--tools", str(CATALOG), "--suite", str(ROOT / "expectations" / "critical.json"),
            "--out", str(d / "valid.jsonl"), "--rejected", str(d / "rejected.jsonl"), "--report", str(d / "report.json"),
            "--params", str(params)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return d, json.loads((d / "report.json").read_text())


def legacy_params(tmp_path):
    import yaml

    path = params_file(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["generate"]["categories"] = {}  # nothing generated: the imported rows are all there is
    raw["validate"].update(min_tool_examples=1, category_tolerance=0.1)  # 15-row categories: one old-catalog row is 7%
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_legacy_data_gains_at_least_1_5_points_traceably_and_deterministically(tmp_path):
    params = legacy_params(tmp_path)
    empty = write_rows(tmp_path / "generated.jsonl", [])
    gated, gate_report = gate(tmp_path, params, [empty], [SEED.parent], "gated")
    lines = SEED.read_text(encoding="utf-8").splitlines()
    quarantined = read(gated / "rejected.jsonl")
    assert gate_report["rows_in"] == len(lines) == gate_report["kept"] + len(quarantined)
    assert all(any(r.startswith("tool_known") for r in q["reasons"]) for q in quarantined)  # the old catalog's tools

    result, d = run_enhance(tmp_path, gated / "valid.jsonl", params, extra=["--no-track"])
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    out, rejected = read(d / "enhanced.jsonl"), read(d / "rejected.jsonl")
    assert report["rows_in"] == gate_report["kept"] == report["kept"] + report["enhanced"] + report["rejected"]
    assert len(out) == report["kept"] + report["enhanced"] and len(rejected) == report["rejected"]

    # the enhanced rows gain >= 1.5 points, recomputed from the rows' own lineage
    enhanced = [r["meta"]["lineage"] for r in out if r["meta"]["lineage"]["status"] == "enhanced"]
    gain = sum(x["score_after"] - x["score_before"] for x in enhanced) / len(enhanced)
    assert len(enhanced) >= 50 and gain >= 1.5 and abs(gain - report["enhanced_rows"]["gain"]) < 1e-3, report

    # every row traces back to its line of the shipped file
    ids = {f"legacy_tools-{n:06d}" for n in range(1, len(lines) + 1)}
    seen = [r["meta"]["lineage"]["source"] for r in out] + [r["source"] for r in rejected] + [
        q["source"].rsplit(":", 1)[1] for q in quarantined]
    assert len(seen) == len(lines)
    for row in out:
        lineno = int(row["meta"]["source"].rsplit(":", 1)[1])
        assert row["meta"]["id"] == row["meta"]["lineage"]["source"] == f"legacy_tools-{lineno:06d}" in ids
        assert not {"label", "quality_scores", "_index", "_line_number"} & set(row["meta"])  # the old dataset's
        original = from_seed003(json.loads(lines[lineno - 1]))
        assert row["messages"][-1]["tool_calls"][0]["function"]["name"] == \
            original["messages"][-1]["tool_calls"][0]["function"]["name"]

    # no accepted rewrite breaks a critical expectation
    _, regate = gate(tmp_path, params, [d / "enhanced.jsonl"], [], "regated")
    assert regate["rejected"] == 0 and regate["kept"] == len(out)

    # the same input gives byte-identical outputs
    again, d2 = run_enhance(tmp_path, gated / "valid.jsonl", params, out="again", extra=["--no-track"])
    assert again.exit_code == 0
    for name in ("enhanced.jsonl", "rejected.jsonl", "kto.jsonl", "report.json"):
        assert (d / name).read_bytes() == (d2 / name).read_bytes(), name

    kto = read(d / "kto.jsonl")
    assert [k["label"] for k in kto] == [False, True] * len(enhanced)
    assert (d / "plots" / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist = (d / "plots" / "score_hist.csv").read_text().splitlines()[1:]
    assert sum(int(line.split(",")[1]) for line in hist) == report["rows_in"]
    assert sum(int(line.split(",")[2]) for line in hist) == len(out)


def repairing_model():
    """A fake rewriter: prose on each prompt's first request, then the rule repairs' rewrite as JSON."""
    from synthforge.repairs import repairs_for

    seen = Counter()

    def reply(body):
        text = body["messages"][-1]["content"]
        seen[text] += 1
        if seen[text] == 1:
            return "Here you go!"
        shown = json.loads(text.split("\n")[1])
        row = {"messages": shown["messages"], "meta": {"context": shown.get("context")}}
        for fn in repairs_for(row):
            fn(row, load_catalog(CATALOG))
        return json.dumps({"messages": row["messages"], "context": row["meta"]["context"]})

    return reply


def test_llm_rewriter_retries_an_unusable_reply_and_records_the_attempt(tmp_path):
    from fake_llm import FakeLLM

    with FakeLLM(reply=repairing_model()) as server:
        params = params_file(tmp_path, rewriter="openai", max_attempts=2,
                             openai={"base_url": server.url, "model": "fake", "timeout_s": 20.0, "backoff_s": 0.01,
                                     "max_retries": 2, "concurrency": 2})
        result, d = run_enhance(tmp_path, legacy_file(tmp_path), params, extra=["--no-track"])
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    assert (report["kept"], report["enhanced"], report["rejected"]) == (2, 1, 0), report
    [lineage] = [r["meta"]["lineage"] for r in read(d / "enhanced.jsonl") if r["meta"]["lineage"]["status"] == "enhanced"]
    assert lineage["attempt"] == 2 and lineage["repairs"] == ["llm:rewrite-v1"] and lineage["score_after"] == 5.0
    assert report["requests"]["rewrite"]["requests"] >= 2


def test_llm_rewriter_against_mlx_lm_server_rejects_unusable_rewrites(tmp_path, mlx_server):
    url, posts = mlx_server
    params = params_file(tmp_path, rewriter="openai", max_attempts=2,
                         openai={"base_url": url, "model": "default_model", "max_tokens": 48, "timeout_s": 60.0})
    result, d = run_enhance(tmp_path, legacy_file(tmp_path), params, extra=["--no-track"])
    assert result.exit_code == 0, result.output
    report = json.loads((d / "report.json").read_text())
    assert report["rows_in"] == 3 == report["kept"] + report["enhanced"] + report["rejected"]
    [rejected] = read(d / "rejected.jsonl")  # the one weak row: two attempts, both unusable
    assert rejected["source"] == "legacy-000002" and rejected["attempts"] == 2
    assert rejected["reason"].startswith("rewrite unusable: ") and posts() == 2
