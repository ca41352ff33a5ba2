"""The openai backend against real HTTP servers on 127.0.0.1: retries, rejects, cache, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import yaml
from click.testing import CliRunner

from synthforge.cli import main

from conftest import CATALOG, ROOT, SPECS, free_port
from fake_llm import FakeLLM, behaviour

CATEGORIES = {"tool_usage": 12, "powertools": 8}


def params_file(tmp_path, url, **openai):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["generate"].update(backend="openai", categories=CATEGORIES)
    raw["generate"]["openai"] = {"base_url": url, "model": "fake", "timeout_s": 0.5, "backoff_s": 0.01,
                                 "max_retries": 3, "concurrency": 4, "temperature": 0.0, **openai}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def generate_args(tmp_path, params, out="out"):
    d = tmp_path / out
    return ["generate", "--specs", str(SPECS), "--tools", str(CATALOG), "--out", str(d / "rows.jsonl"),
            "--rejected", str(d / "rejected.jsonl"), "--report", str(d / "report.json"),
            "--cache", str(tmp_path / "cache.jsonl"), "--no-track", "--params", str(params)], d


def test_retries_rejects_and_rerun_makes_no_requests(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-a-secret-123")
    with FakeLLM(slow_s=1.0) as server:
        args, out = generate_args(tmp_path, params_file(tmp_path, server.url))
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 0, first.output
        after_first = server.requests
        report = json.loads((out / "report.json").read_text())
        first_rows = (out / "rows.jsonl").read_bytes()
        second = CliRunner().invoke(main, args)
        assert second.exit_code == 0, second.output
        assert server.requests == after_first  # the re-run is served from the cache
        kinds = Counter(behaviour(p) for p in server.seen)
    again = json.loads((out / "report.json").read_text())
    assert again["requests"]["cache_hits"] == again["requested"] and again["requests"]["requests"] == 0
    assert (out / "rows.jsonl").read_bytes() == first_rows
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert report["requested"] == sum(CATEGORIES.values()) == len(rows) + len(rejected)
    # every malformed reply is rejected with its reason; every other prompt recovers from 429/500/timeouts
    assert len(rejected) == kinds["malformed"] > 0
    assert all("JSON" in r["reason"] and r["reply"].startswith("Sure!") for r in rejected)
    assert report["requests"]["retries"] >= kinds["429"] + kinds["500"] + kinds["slow"] > 0
    assert report["requests"]["cache_hits"] == 0
    assert all(r["meta"]["generator"] == "openai" and r["meta"]["prompt_version"] for r in rows)
    assert all(any(m.get("content", "").startswith("Rewritten:") for m in r["messages"]) for r in rows)
    assert server.auth == {"Bearer test-key-not-a-secret-123"}
    for path in [*out.iterdir(), tmp_path / "cache.jsonl"]:
        assert "test-key-not-a-secret-123" not in path.read_text()


def test_killed_run_resumes_to_the_same_rows(tmp_path):
    with FakeLLM(slow_s=0.0, delay=0.15) as server:
        params = params_file(tmp_path, server.url, concurrency=1, timeout_s=5.0)
        args, out = generate_args(tmp_path, params, "resumed")
        cmd = [sys.executable, "-m", "synthforge", *args]
        env = {**os.environ, "SYNTHFORGE_BLAS": "off"}
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cache = tmp_path / "cache.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and (not cache.exists() or len(cache.read_text().splitlines()) < 5):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cached = len(cache.read_text().splitlines())
        assert 5 <= cached < sum(CATEGORIES.values()), "the run was not killed mid-way"
        assert not (out / "rows.jsonl").exists()
        before = server.requests
        resumed = CliRunner().invoke(main, args)
        assert resumed.exit_code == 0, resumed.output
        resumed_requests = server.requests - before
        # an uninterrupted run with its own cache
        (tmp_path / "full").mkdir()
        full_params = params_file(tmp_path / "full", server.url, concurrency=1, timeout_s=5.0)
        full_args, full = generate_args(tmp_path / "full", full_params, "full")
        assert CliRunner().invoke(main, full_args).exit_code == 0
    # only the rows not cached before the kill were requested again (429/500 retries add requests)
    missing = sum(CATEGORIES.values()) - cached
    assert missing <= resumed_requests <= 2 * missing
    assert (out / "rows.jsonl").read_bytes() == (full / "rows.jsonl").read_bytes()
    assert (out / "rejected.jsonl").read_bytes() == (full / "rejected.jsonl").read_bytes()


def test_unreachable_server_fails_with_a_clear_message(tmp_path):
    port = free_port()
    args, _ = generate_args(tmp_path, params_file(tmp_path, f"http://127.0.0.1:{port}/v1", max_retries=1))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert f"cannot connect to http://127.0.0.1:{port}/v1/chat/completions" in result.output
    assert "Traceback" not in result.output


def test_wrong_model_stops_the_stage_instead_of_rejecting_every_row(tmp_path, mlx_server):
    url, posts = mlx_server
    args, out = generate_args(tmp_path, params_file(tmp_path, url, model="no-such-model", concurrency=1))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "HTTP 404, no such endpoint or model" in result.output
    assert not (out / "rows.jsonl").exists()


def test_against_mlx_lm_server_rerun_is_free_and_resume_matches(tmp_path, mlx_server):
    url, posts = mlx_server
    small = {"tool_usage": 4, "powertools": 2}
    raw_params = params_file(tmp_path, url, model="default_model", concurrency=1, max_tokens=24, timeout_s=60.0)
    raw = yaml.safe_load(raw_params.read_text())
    raw["generate"]["categories"] = small
    raw_params.write_text(yaml.safe_dump(raw))
    args, out = generate_args(tmp_path, raw_params)
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert posts() == 6
    report = json.loads((out / "report.json").read_text())
    # a random-weight model cannot write JSON: every reply is rejected, with its reason, and counted
    assert report["requested"] == 6 == report["kept"] + report["rejected"]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert all(r["reason"] and isinstance(r["reply"], str) for r in rejected)
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert posts() == 6  # zero requests on the re-run
    # drop the last three cached replies (as a kill would have), resume, compare with the full run
    cache = tmp_path / "cache.jsonl"
    full_rejected = (out / "rejected.jsonl").read_bytes()
    cache.write_text("".join(cache.read_text().splitlines(keepends=True)[:3]))
    resumed = CliRunner().invoke(main, args)
    assert resumed.exit_code == 0, resumed.output
    assert posts() == 9
    assert (out / "rejected.jsonl").read_bytes() == full_rejected
