"""A small OpenAI-compatible server on 127.0.0.1 that misbehaves on purpose.

Each prompt is assigned a behaviour by a stable hash of its text: answer at
once, answer after a 429, after a 500, after a reply slower than the
client's timeout, or always answer with malformed JSON. A valid answer
echoes the outline from the prompt back as the "rewritten" conversation,
so it passes the gate; a ``reply`` function replaces that echo (e.g. a judge). ``delay`` slows every answer (for kill-and-resume).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("ok", "429", "500", "slow", "malformed")


def behaviour(prompt: str) -> str:
    return BEHAVIOURS[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(BEHAVIOURS)]


class FakeLLM:
    def __init__(self, slow_s: float = 1.5, delay: float = 0.0, reply=None):
        self.slow_s, self.delay, self.reply = slow_s, delay, reply  # reply(body) -> text replaces the echo
        self.requests, self.seen, self.auth = 0, {}, set()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.auth.add(self.headers.get("Authorization"))
                status, payload = server.answer(body)
                data = payload.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: dict) -> tuple[int, str]:
        prompt = body["messages"][-1]["content"]
        with self.lock:
            self.requests += 1
            n = self.seen[prompt] = self.seen.get(prompt, 0) + 1
        time.sleep(self.delay)
        kind = behaviour(prompt)
        if kind in ("429", "500") and n == 1:
            return int(kind), json.dumps({"error": {"message": "try again"}})
        if kind == "slow" and n == 1:
            time.sleep(self.slow_s)
        if self.reply is not None:
            return 200, _completion(self.reply(body))
        if kind == "malformed":
            return 200, _completion("Sure! Here is the conversation: {\"messages\": [oops")
        outline = json.loads(prompt.splitlines()[-1])
        for m in outline:
            if m["role"] == "assistant" and m.get("content"):
                m["content"] = "Rewritten: " + m["content"]
        return 200, _completion("```json\n" + json.dumps({"messages": outline[1:]}) + "\n```")


def _completion(text: str) -> str:
    return json.dumps({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
