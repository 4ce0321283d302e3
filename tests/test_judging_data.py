"""Benchmark data: pinned downloads over real HTTP (a loopback file server) and file:// URLs, sha256 checks, local
copies for air-gapped machines, and schema checks that name the file and record."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from loopback import FileServer
from prefdisco.judging import data
from prefdisco.judging.data import DownloadError, PinnedFile, download, provide, sha256_file

FIXTURES = Path(__file__).parent / "fixtures" / "judging"
MT_BENCH = FIXTURES / "mt_bench"
ALPACA_EVAL = FIXTURES / "alpaca_eval"


def test_pins_name_a_fixed_commit_and_revision():
    for pinned in data.MT_BENCH_FILES:
        assert f"/lm-sys/FastChat/{data.FASTCHAT_COMMIT}/fastchat/llm_judge/data/" in pinned.url
        assert len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0
    for pinned in data.ALPACA_EVAL_FILES:
        assert pinned.url.startswith(f"https://huggingface.co/datasets/tatsu-lab/alpaca_eval/resolve/"
                                     f"{data.ALPACA_EVAL_REVISION}/")
    assert len(data.FASTCHAT_COMMIT) == 40 and len(data.ALPACA_EVAL_REVISION) == 40
    # the fixture's judge_prompts.jsonl is the real file: the pinned hash is the real file's
    judge_prompts = next(p for p in data.MT_BENCH_FILES if p.name == "judge_prompts.jsonl")
    assert sha256_file(MT_BENCH / "judge_prompts.jsonl") == judge_prompts.sha256


def test_download_over_http_checks_the_hash(tmp_path):
    expected = sha256_file(MT_BENCH / "judge_prompts.jsonl")
    with FileServer(MT_BENCH) as server:
        got = download(f"{server.url}/judge_prompts.jsonl", tmp_path / "a" / "judge_prompts.jsonl", expected)
        assert got == expected
        assert (tmp_path / "a" / "judge_prompts.jsonl").read_bytes() == (MT_BENCH / "judge_prompts.jsonl").read_bytes()

        with pytest.raises(DownloadError, match=r"question.jsonl: sha256 [0-9a-f]{64} does not match the pinned 0{64}"):
            download(f"{server.url}/question.jsonl", tmp_path / "b" / "question.jsonl", "0" * 64)
        assert list((tmp_path / "b").iterdir()) == []  # nothing half-written is left behind

        with pytest.raises(DownloadError, match="404"):
            download(f"{server.url}/missing.jsonl", tmp_path / "c" / "missing.jsonl", None, retries=2)
        assert server.requests.count("/missing.jsonl") == 1  # a 404 is not retried


def test_download_file_url(tmp_path):
    source = ALPACA_EVAL / "df_gamed.csv"
    got = download(source.resolve().as_uri(), tmp_path / "df_gamed.csv")
    assert got == hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(DownloadError, match="data_dir"):
        download((tmp_path / "nope.csv").as_uri(), tmp_path / "x.csv")


def test_provide_from_a_mirror_downloads_once(tmp_path):
    pins = tuple(PinnedFile(p.name, p.url, sha256_file(MT_BENCH / p.name)) for p in data.MT_BENCH_FILES)
    with FileServer(MT_BENCH) as server:
        manifest = provide("mt_bench", tmp_path / "out", mirror=server.url, files=pins)
        assert sorted(server.requests) == ["/judge_prompts.jsonl", "/question.jsonl", "/reference_answer/gpt-4.jsonl"]
        provide("mt_bench", tmp_path / "out", mirror=server.url, files=pins)
        assert len(server.requests) == 3  # already there, hashes match: no second download
    assert manifest["questions"] == 3 and manifest["judge_prompts"] == 8 and manifest["reference_answers"] == 1
    assert [f["source"] for f in manifest["files"]][0] == f"{server.url}/question.jsonl"
    assert all(f["matches_pinned"] for f in manifest["files"])


def test_provide_with_the_real_pins_rejects_other_bytes(tmp_path):
    with FileServer(MT_BENCH) as server, pytest.raises(DownloadError, match="question.jsonl: sha256"):
        provide("mt_bench", tmp_path, mirror=server.url)  # the fixture's question.jsonl is a 3-question subset


def test_provide_from_local_copies_records_what_differs(tmp_path):
    manifest = provide("mt_bench", tmp_path / "mt", local_dir=MT_BENCH)
    flags = {f["name"]: f["matches_pinned"] for f in manifest["files"]}
    assert flags == {"question.jsonl": False, "judge_prompts.jsonl": True, "reference_answer/gpt-4.jsonl": False}
    assert (tmp_path / "mt" / "reference_answer" / "gpt-4.jsonl").is_file()
    manifest = provide("alpaca_eval", tmp_path / "ae", local_dir=ALPACA_EVAL)
    assert manifest["instructions"] == 4 and all(f["matches_pinned"] is None for f in manifest["files"])
    with pytest.raises(FileNotFoundError, match=r"benchmarks.alpaca_eval.data_dir: .*df_gamed.csv is missing"):
        empty = tmp_path / "empty"
        empty.mkdir()
        shutil.copy(ALPACA_EVAL / "alpaca_eval_gpt4_baseline.json", empty)
        provide("alpaca_eval", tmp_path / "ae2", local_dir=empty)


def test_schema_checks_name_file_and_record(tmp_path):
    folder = tmp_path / "mt"
    shutil.copytree(MT_BENCH, folder)
    lines = (folder / "question.jsonl").read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["category"]
    (folder / "question.jsonl").write_text("\n".join([lines[0], json.dumps(broken), lines[2]]) + "\n")
    with pytest.raises(ValueError, match=r"question.jsonl, record 2: missing key\(s\) \['category'\]"):
        data.validate_mt_bench(folder)
    (folder / "question.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(ValueError, match=r"question.jsonl, line 2: not valid JSON"):
        data.validate_mt_bench(folder)

    folder = tmp_path / "ae"
    shutil.copytree(ALPACA_EVAL, folder)
    (folder / "df_gamed.csv").write_text("model,index,preference\nx,0,0.5\n")
    with pytest.raises(ValueError, match=r"df_gamed.csv: missing column\(s\) \['instruction_difficulty'"):
        data.validate_alpaca_eval(folder)


def test_cli_writes_the_manifest(tmp_path):
    data.main(["--benchmark", "alpaca_eval", "--output-dir", str(tmp_path / "d"), "--local-dir", str(ALPACA_EVAL),
               "--manifest", str(tmp_path / "d" / "manifest.json")])
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["pinned_source"] == f"tatsu-lab/alpaca_eval@{data.ALPACA_EVAL_REVISION}"
    assert {f["name"] for f in manifest["files"]} == {"alpaca_eval_gpt4_baseline.json", "df_gamed.csv"}
