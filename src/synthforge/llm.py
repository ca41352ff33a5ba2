"""OpenAI-compatible chat backend: retries, bounded concurrency, a resumable cache.

Shared by generation (``generate.backend: openai``) and the enhance stage's judge
(``enhance.judge: openai``).
Any server that speaks ``POST {base_url}/chat/completions`` works: LM Studio,
Ollama, vLLM, llama.cpp's server, ``mlx_lm.server``, OpenAI itself.

- The API key is read from the environment variable named by
  ``api_key_env``; it is sent as a bearer token and never logged or written.
- Timeouts, connection errors, 429 and 5xx are retried with exponential
  backoff (honouring ``Retry-After``); 401/403/404 stop the stage (a set-up
  problem); other 4xx answers fail that request only.
- :class:`Cache` is an append-only JSONL file keyed by a hash of everything
  that determines a reply. Each finished request is appended and flushed at
  once, so a killed run loses nothing it already paid for, and a re-run
  makes no request whose answer is cached. A torn last line is ignored.

    client = Client(params, secret=os.environ.get(params.api_key_env))
    text = client.chat([{"role": "user", "content": "hi"}], seed=1)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .params import OpenAIParams

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class BackendError(RuntimeError):
    """A request failed for good (after retries, or a non-retryable answer)."""


class BackendUnreachable(BackendError):
    """The server cannot be reached or refuses us (401/403/404): stop the stage, it is not the row's fault."""

FATAL_STATUS = {401: "the API key was refused", 403: "access is forbidden",
                404: "no such endpoint or model (check base_url and model)"}


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0


def resolve(params: OpenAIParams) -> tuple[str, str]:
    """Base URL and model, with environment overrides (SYNTHFORGE_LLM_BASE_URL / _MODEL)."""
    base = os.environ.get("SYNTHFORGE_LLM_BASE_URL") or params.base_url
    model = os.environ.get("SYNTHFORGE_LLM_MODEL") or params.model
    return base.rstrip("/"), model


class Client:
    """Blocking chat-completions client; thread-safe (one requests.Session per thread)."""

    def __init__(self, params: OpenAIParams, secret: str | None = None, *, sleep=time.sleep):
        import requests

        self.requests, self.params, self.sleep = requests, params, sleep
        self.base_url, self.model = resolve(params)
        self._secret = secret
        self._local = threading.local()
        self.stats = Stats()
        self._lock = threading.Lock()

    def _session(self):
        if not hasattr(self._local, "session"):
            self._local.session = self.requests.Session()
            if self._secret:
                self._local.session.headers["Authorization"] = f"Bearer {self._secret}"
        return self._local.session

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def chat(self, messages: list[dict], *, seed: int | None = None) -> str:
        """The assistant text of one completion (retrying what is worth retrying)."""
        p = self.params
        body = {"model": self.model, "messages": messages, "temperature": p.temperature,
                "max_tokens": p.max_tokens}
        if seed is not None:
            body["seed"] = seed
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(p.max_retries + 1):
            if attempt:
                self._count("retries")
            self._count("requests")
            try:
                response = self._session().post(url, json=body, timeout=p.timeout_s)
            except self.requests.ConnectionError as exc:
                last = f"cannot connect to {url}: {type(exc).__name__}"
                if attempt == p.max_retries:
                    raise BackendUnreachable(f"{last} (is the server running? set generate.openai.base_url)") from None
                self._backoff(attempt, None)
                continue
            except self.requests.Timeout:
                last = f"no answer within {p.timeout_s}s"
                self._backoff(attempt, None)
                continue
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}"
                self._backoff(attempt, response.headers.get("Retry-After"))
                continue
            if response.status_code in FATAL_STATUS:
                raise BackendUnreachable(f"{url}: HTTP {response.status_code}, {FATAL_STATUS[response.status_code]}:"
                                         f" {response.text[:300]}")
            if response.status_code >= 400:
                raise BackendError(f"HTTP {response.status_code}: {response.text[:200]}")
            return _content(response)
        raise BackendError(f"gave up after {p.max_retries + 1} attempts: {last}")

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        if attempt >= self.params.max_retries:
            return
        delay = self.params.backoff_s * 2 ** attempt * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        self.sleep(min(delay, 60.0))


def _content(response) -> str:
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BackendError(f"not a chat-completions answer: {response.text[:200]!r}") from None
    if not isinstance(content, str):
        raise BackendError("the answer has no text content")
    return content


def json_object(text: str) -> Any:
    """The JSON value between the first ``{`` and the last ``}`` of a model's reply (code fences allowed).

    Raises :class:`synthforge.schema.FormatError` saying why there is none.
    """
    from .schema import FormatError

    body = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise FormatError(f"reply holds no JSON object: {text.strip()[:80]!r}")
    try:
        return json.loads(body[start: end + 1])
    except json.JSONDecodeError as exc:
        raise FormatError(f"reply is not valid JSON ({exc.msg} at char {exc.pos})") from None


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Cache:
    """Append-only ``{key, value}`` JSONL; safe against a kill at any point."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, Any] = {}
        if self.path.exists():
            for raw in self.path.read_bytes().splitlines():
                try:
                    entry = json.loads(raw)
                    self.entries[entry["key"]] = entry["value"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill: that request is simply made again
        self._lock = threading.Lock()
        self._file = None

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> Any:
        return self.entries[key]

    def put(self, key: str, value: Any) -> None:
        line = json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
                if self._file.tell() and not self.path.read_bytes().endswith(b"\n"):
                    self._file.write("\n")  # end a torn line before appending
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.entries[key] = value

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def ask_all(client: Client, cache_path: str | Path, prompts: list[list[dict]], keys: list[str], seed_of,
            concurrency: int, label: str, progress: bool = True) -> list[dict]:
    """Each prompt's answer: ``{"reply": text}`` (cached, or asked now and cached), or ``{"error": reason}``.

    Prompts whose key is in the cache at ``cache_path`` are not asked again;
    the client's stats count cache hits and failed requests.
    """
    cache = Cache(cache_path)
    todo = [i for i, k in enumerate(keys) if k not in cache]
    client.stats.cache_hits += len(keys) - len(todo)
    try:
        failures = fetch_all(client, cache, prompts, keys, todo, seed_of, concurrency, label, progress)
        client.stats.failures += len(failures)
    finally:
        cache.close()
    return [cache.get(k) if k in cache else {"error": f"request failed: {failures.get(i, 'no reply')}"}
            for i, k in enumerate(keys)]


def fetch_all(client: Client, cache: Cache, prompts: list[list[dict]], keys: list[str], todo: list[int],
              seed_of, concurrency: int, label: str, progress: bool = True) -> dict[int, str]:
    """Request ``prompts[i]`` for every ``i`` in ``todo`` (bounded concurrency), caching each reply as it lands.

    ``seed_of(i)`` is the request's sampling seed. Returns the requests that
    failed for good, with the reason; those are not cached, so a re-run tries
    them again. An unreachable server stops everything (:class:`BackendUnreachable`).
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    from rich.progress import Progress

    failures = {}

    def one(i: int) -> None:
        try:
            text = client.chat(prompts[i], seed=seed_of(i))
        except BackendUnreachable:
            raise
        except BackendError as exc:
            failures[i] = str(exc)
            return
        cache.put(keys[i], {"reply": text})

    with Progress(disable=not progress, transient=True) as bar, ThreadPoolExecutor(max(1, concurrency)) as pool:
        task = bar.add_task(label, total=len(todo))
        futures = [pool.submit(one, i) for i in todo]
        for future in futures:
            future.add_done_callback(lambda _: bar.advance(task))
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            if future.exception():
                raise future.exception()
    return failures
