"""Test-only: the objective worker with the static policy bypassed, to show that its OS-level walls (confinement,
audit hook, per-call limits) hold on their own. Run as a script; the package offers no such entry."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from prefdisco.sandbox import worker  # noqa: E402
from prefdisco.sandbox.loader import OBJECTIVE_FILENAME, define_objective  # noqa: E402

COMMAND = [sys.executable, str(Path(__file__).resolve())]


def load_unchecked(code: str, guard, arguments: tuple[str, ...]) -> object:
    name = next(node.name for node in ast.parse(code).body if isinstance(node, ast.FunctionDef))
    compiled = compile(code, OBJECTIVE_FILENAME, "exec", dont_inherit=True)
    with guard.armed(frozenset({"exec"})):
        return define_objective(name, compiled)


def probe(readable_file: str, port: int):
    """A loader that runs trusted probes instead, inside the confined worker with the audit hook disarmed, and
    reports what each one met (the kernel walls alone)."""
    import json
    import os
    import socket

    def write() -> None:
        with open(os.path.join("/tmp", "prefdisco_pwned_worker_probe"), "w") as handle:
            handle.write("escaped")

    def read() -> None:
        with open(readable_file) as handle:
            handle.read()

    def connect() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
            connection.settimeout(2)
            connection.connect(("127.0.0.1", port))

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    def load(code: str, guard, arguments: tuple[str, ...]) -> object:
        outcomes = {}
        for label, action in (("write /tmp", write), ("read the project", read), ("connect to loopback", connect),
                              ("fork", fork)):
            try:
                action()
                outcomes[label] = "allowed"
            except BaseException as error:  # noqa: BLE001 -- recorded
                outcomes[label] = f"{type(error).__name__}: {error}"
        outcomes["uid"] = os.getuid()
        raise RuntimeError(json.dumps(outcomes))

    return load


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        _, _, readable, port = sys.argv[:4]
        del sys.argv[1:4]
        worker.main(load=probe(readable, int(port)))
    else:
        worker.main(load=load_unchecked)
