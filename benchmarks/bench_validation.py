"""Benchmark: one validation job for a generation of K = 8 candidates (torch imported once).

    python benchmarks/bench_validation.py

Target (issue 3): at most 3 s for K = 8 on a 2-core CPU machine. Prints the in-process validation call and the
whole `python -m prefdisco.stages.validate` job (interpreter start and torch import included), side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 3.0


def main() -> int:
    from prefdisco.objectives import LIBRARY, library_source
    from prefdisco.sandbox.runner import SandboxLimits
    from prefdisco.stages.validate import validate_proposals

    proposals = [{"id": f"g1-k{k}", "code": library_source(name)} for k, name in enumerate(LIBRARY[:8])]
    started = time.monotonic()
    records = validate_proposals(proposals, [], 0.1, SandboxLimits())
    call_s = time.monotonic() - started
    assert all(r["valid"] for r in records), [r["error"] for r in records if not r["valid"]]

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "proposals.json"
        path.write_text(json.dumps(proposals))
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "prefdisco.stages.validate", "--proposals", str(path), "--beta", "0.1",
                        "--output", str(Path(folder) / "validation.json")], check=True, capture_output=True)
        job_s = time.monotonic() - started

    print("validation of K = 8 library objectives")
    print(f"  validate_proposals call: {call_s:.2f} s ({call_s / TARGET_S:.2f}x of the {TARGET_S:.0f} s target)")
    print(f"  whole validate job:      {job_s:.2f} s ({job_s / TARGET_S:.2f}x of the {TARGET_S:.0f} s target)")
    print(f"  -> {'PASS' if job_s <= TARGET_S else 'FAIL'} (whole job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
