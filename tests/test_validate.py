"""prefdisco.stages.validate: validation records for a batch of proposals, duplicates, and the command line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefdisco.io import read_json, sha256_file, write_json, write_jsonl
from prefdisco.objectives import library_source
from prefdisco.sandbox.runner import SandboxLimits
from prefdisco.stages.validate import main, validate_proposals

DPO = library_source("dpo")
IPO = library_source("ipo")
LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=20)
RECORD_KEYS = {"id", "valid", "error", "checks", "fingerprint", "measurements", "curve", "wall_seconds", "duplicate_of"}


def scaled(code: str, factor: float, constant: float = 0.0) -> str:
    old = "losses = " + code.split("losses = ", 1)[1].splitlines()[0]
    return code.replace(old, f"losses = {factor} * ({old.removeprefix('losses = ')}) + {constant}")


@pytest.fixture(scope="module")
def dpo_fingerprint() -> str:
    [record] = validate_proposals([{"id": "dpo", "code": DPO}], [], 0.1, LIMITS)
    assert record["valid"], record["error"]
    return record["fingerprint"]


def test_proposals_without_code_are_invalid_with_the_proposers_error() -> None:
    proposals = [
        {"id": "g1-0", "code": None, "error": "the model's reply held no code block"},
        {"id": "g1-1", "code": ""},
        {"id": "g1-2", "code": "   \n"},
    ]
    records = validate_proposals(proposals, [], 0.1, LIMITS)
    assert [r["error"] for r in records] == [
        "no code: the model's reply held no code block",
        "no code: the proposal has no code",
        "no code: the proposal has no code",
    ]
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["valid"] is False and record["duplicate_of"] is None
        assert record["checks"]["static_policy"] == "fail"


def test_duplicates_point_at_the_archive_first_then_earlier_proposals(dpo_fingerprint: str) -> None:
    archive = [
        {"id": "g0-slic", "fingerprint": "0" * 64, "status": "evaluated"},
        {"id": "g0-dpo", "fingerprint": dpo_fingerprint, "status": "evaluated"},
        {"id": "g0-dpo-again", "fingerprint": dpo_fingerprint, "status": "evaluated"},
        {"id": "g0-broken", "fingerprint": None, "status": "invalid"},
    ]
    proposals = [
        {"id": "g1-a", "code": scaled(DPO, 3.0)},
        {"id": "g1-b", "code": IPO},
        {"id": "g1-c", "code": "def nope(:"},
        {"id": "g1-d", "code": scaled(IPO, 0.5, 4.0)},
        {"id": "g1-e", "code": None},
        {"id": "g1-f", "code": DPO},
    ]
    records = validate_proposals(proposals, archive, 0.1, LIMITS)
    assert [r["id"] for r in records] == ["g1-a", "g1-b", "g1-c", "g1-d", "g1-e", "g1-f"]
    assert [r["valid"] for r in records] == [True, True, False, True, False, True]
    assert [r["duplicate_of"] for r in records] == ["g0-dpo", None, None, "g1-b", None, "g0-dpo"]
    assert records[2]["error"].startswith("line 1: syntax error")


def test_cli_writes_records_and_logs_one_line_per_candidate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proposals = tmp_path / "proposals.json"
    write_json(proposals, [{"id": "p-dpo", "code": DPO}, {"id": "p-bad", "code": "import os\n"}, {"id": "p-none", "code": None}])
    output = tmp_path / "out" / "validation.json"
    caplog.set_level(logging.INFO, logger="prefdisco.stages.validate")
    assert main(["--proposals", str(proposals), "--beta", "0.1", "--output", str(output), "--cpu-seconds", "5"]) == 0
    records = read_json(output)
    assert [r["id"] for r in records] == ["p-dpo", "p-bad", "p-none"]
    assert [r["valid"] for r in records] == [True, False, False]
    assert all(set(r) == RECORD_KEYS | {"inputs"} for r in records)
    assert all(r["inputs"] == {str(proposals): sha256_file(proposals)} for r in records)  # provenance
    json.loads(output.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    lines = [r.getMessage() for r in caplog.records if r.name == "prefdisco.stages.validate"]
    assert any(line.startswith("p-dpo: valid (fingerprint ") for line in lines)
    assert any(line.startswith("p-bad: invalid [static_policy]: line 1: import of 'os' is not allowed") for line in lines)
    assert any(line.startswith("p-none: invalid [static_policy]: no code: ") for line in lines)
    assert not list(output.parent.glob(".*.tmp"))  # written atomically, no leftovers


def test_cli_reads_the_archive(tmp_path: Path, dpo_fingerprint: str) -> None:
    proposals = tmp_path / "proposals.json"
    archive = tmp_path / "archive.jsonl"
    write_json(proposals, [{"id": "p-dpo", "code": scaled(DPO, 2.0, 1.0)}])
    write_jsonl(archive, [{"id": "g0-dpo", "fingerprint": dpo_fingerprint, "status": "evaluated"}])
    output = tmp_path / "validation.json"
    main(["--proposals", str(proposals), "--archive", str(archive), "--beta", "0.1", "--output", str(output)])
    [record] = read_json(output)
    assert record["duplicate_of"] == "g0-dpo"


def test_cli_refuses_a_missing_archive_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    proposals = tmp_path / "proposals.json"
    write_json(proposals, [])
    missing = tmp_path / "no-such-archive.jsonl"
    with pytest.raises(SystemExit) as exited:
        main(["--proposals", str(proposals), "--archive", str(missing), "--beta", "0.1", "--output", str(tmp_path / "o.json")])
    assert exited.value.code == 2
    assert f"archive file not found: {missing}" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_cli_refuses_proposals_that_are_not_a_list(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    proposals = tmp_path / "proposals.json"
    write_json(proposals, {"id": "p", "code": DPO})
    with pytest.raises(SystemExit):
        main(["--proposals", str(proposals), "--beta", "0.1", "--output", str(tmp_path / "o.json")])
    assert "expected a JSON list of proposal records" in capsys.readouterr().err


def test_module_entry_point_end_to_end(tmp_path: Path) -> None:
    proposals = tmp_path / "proposals.json"
    names = ["dpo", "slic", "ipo", "kto", "lrml", "padll", "aqfl", "cell"]
    write_json(proposals, [{"id": f"g1-{n}", "code": library_source(n)} for n in names])
    output = tmp_path / "validation.json"
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "prefdisco.stages.validate", "--proposals", str(proposals), "--beta", "0.1", "--output", str(output)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    records = read_json(output)
    assert [r["valid"] for r in records] == [True] * len(names)
    assert len(set(r["fingerprint"] for r in records)) == len(names)
    assert sum("valid (fingerprint" in line for line in completed.stderr.splitlines()) == len(names)
    print(f"python -m prefdisco.stages.validate with K=8: {elapsed:.2f} s including interpreter start and torch import")
