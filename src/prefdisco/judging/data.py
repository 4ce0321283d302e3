"""Stage: the benchmark files, once per run, from pinned sources or from local copies.

MT-Bench: FastChat's question, judge-prompt and GPT-4 reference-answer files, from raw.githubusercontent.com at a
fixed commit, each checked against its sha256. AlpacaEval 2.0: the evaluation set with GPT-4 Turbo's outputs
(``alpaca_eval_gpt4_baseline.json``) and the length-control calibration rows (``df_gamed.csv``), from the Hugging
Face dataset ``tatsu-lab/alpaca_eval`` at a fixed revision, as plain files: not through its dataset script
(``datasets`` >= 4 refuses scripts), and once, rather than on every length-controlled win rate.

With ``--local-dir`` (config ``benchmarks.<name>.data_dir``, for air-gapped clusters) the same relative paths are
copied from a local folder instead; a copy that differs from the pinned upstream file is accepted (a subset, say)
and says so in the manifest. Every file is checked for its schema before anything downstream reads it.

CLI::

    python -m prefdisco.judging.data --benchmark mt_bench --output-dir D [--local-dir L | --mirror URL]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..cli import setup_logging
from ..io import write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedFile:
    name: str  # path inside the benchmark folder (and inside a local copy or a mirror)
    url: str
    sha256: str | None  # of the pinned upstream file; None where it could not be recorded


# FastChat's llm_judge data at a fixed commit; the hashes are those of the files at that commit.
FASTCHAT_COMMIT = "587d5cfa1609a43d192cedb8441cac3c17db105d"
_FASTCHAT = f"https://raw.githubusercontent.com/lm-sys/FastChat/{FASTCHAT_COMMIT}/fastchat/llm_judge/data"
MT_BENCH_FILES = (
    PinnedFile("question.jsonl", f"{_FASTCHAT}/mt_bench/question.jsonl",
               "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7"),
    PinnedFile("judge_prompts.jsonl", f"{_FASTCHAT}/judge_prompts.jsonl",
               "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6"),
    PinnedFile("reference_answer/gpt-4.jsonl", f"{_FASTCHAT}/mt_bench/reference_answer/gpt-4.jsonl",
               "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f"),
)

# The Hugging Face dataset repository at a fixed revision (a commit of tatsu-lab/alpaca_eval). The files' hashes
# were not recorded (no copy was at hand when this was pinned): the manifest records what was downloaded.
ALPACA_EVAL_REVISION = "2edc6fad8be6b14ea7230aabfd08188da6b8b814"
_ALPACA_EVAL = f"https://huggingface.co/datasets/tatsu-lab/alpaca_eval/resolve/{ALPACA_EVAL_REVISION}"
ALPACA_EVAL_FILES = (
    PinnedFile("alpaca_eval_gpt4_baseline.json", f"{_ALPACA_EVAL}/alpaca_eval_gpt4_baseline.json", None),
    PinnedFile("df_gamed.csv", f"{_ALPACA_EVAL}/df_gamed.csv", None),
)

BENCHMARK_FILES = {"mt_bench": MT_BENCH_FILES, "alpaca_eval": ALPACA_EVAL_FILES}
SOURCES = {"mt_bench": f"lm-sys/FastChat@{FASTCHAT_COMMIT}", "alpaca_eval": f"tatsu-lab/alpaca_eval@{ALPACA_EVAL_REVISION}"}

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A pinned file could not be fetched, or what came is not the pinned file."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, destination: str | Path, sha256: str | None = None, timeout: float = 60,
             retries: int = 3) -> str:
    """Fetch ``url`` (http, https or file) to ``destination`` atomically; returns the file's sha256.

    A hash mismatch is an error (the pinned source changed, or a mirror serves something else) and leaves nothing
    behind; connection failures and HTTP 5xx/429 are retried ``retries`` times with backoff.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "prefdisco"})
    token = os.environ.get("HF_TOKEN")
    if token and url.startswith("https://huggingface.co/"):
        request.add_header("Authorization", f"Bearer {token}")
    for attempt in range(retries + 1):
        fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
                for block in iter(lambda: response.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                raise DownloadError(f"{url}: sha256 {got} does not match the pinned {sha256}; "
                                    "the source changed or the mirror serves another file")
            os.replace(tmp, destination)
            return got
        except (urllib.error.URLError, OSError) as error:
            Path(tmp).unlink(missing_ok=True)
            status = getattr(error, "code", None)
            retryable = not url.startswith("file:") and (status is None or status == 429 or status >= 500)
            if not retryable or attempt == retries:
                raise DownloadError(f"{url}: download failed ({error}); for an air-gapped machine, put local "
                                    "copies in a folder and point benchmarks.<name>.data_dir at it") from None
            log.warning("%s: %s; retry %d/%d", url, error, attempt + 1, retries)
            time.sleep(min(2 ** attempt, 10))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    raise AssertionError("unreachable")


def provide(benchmark: str, output_dir: str | Path, local_dir: str | Path | None = None,
            mirror: str | None = None, files: tuple[PinnedFile, ...] | None = None) -> dict:
    """Put the benchmark's files under ``output_dir``: downloaded (pinned URL, or the same path under ``mirror``)
    or copied from ``local_dir``; checked, and described in the returned manifest."""
    if benchmark not in BENCHMARK_FILES:
        raise ValueError(f"benchmark {benchmark!r} is not one of {', '.join(BENCHMARK_FILES)}")
    files = BENCHMARK_FILES[benchmark] if files is None else files
    output_dir = Path(output_dir)
    entries = []
    for pinned in files:
        destination = output_dir / pinned.name
        if local_dir is not None:
            source = Path(local_dir) / pinned.name
            if not source.is_file():
                raise FileNotFoundError(f"benchmarks.{benchmark}.data_dir: {source} is missing (expected the same "
                                        f"layout as the pinned source: {', '.join(f.name for f in files)})")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
            origin = str(source.resolve())
            digest = sha256_file(destination)
            if pinned.sha256 is not None and digest != pinned.sha256:
                log.warning("%s differs from the pinned upstream file (sha256 %s, pinned %s): a local variant",
                            source, digest, pinned.sha256)
        else:
            origin = f"{mirror.rstrip('/')}/{pinned.name}" if mirror else pinned.url
            if destination.is_file() and pinned.sha256 and sha256_file(destination) == pinned.sha256:
                digest = pinned.sha256  # already here: a download happens once
            else:
                log.info("downloading %s", origin)
                digest = download(origin, destination, pinned.sha256)
        entries.append({"name": pinned.name, "source": origin, "sha256": digest, "bytes": destination.stat().st_size,
                        "pinned_sha256": pinned.sha256,
                        "matches_pinned": None if pinned.sha256 is None else digest == pinned.sha256})
    counts = VALIDATORS[benchmark](output_dir)
    return {"benchmark": benchmark, "pinned_source": SOURCES[benchmark],
            "local_dir": None if local_dir is None else str(Path(local_dir).resolve()), "files": entries, **counts}


# --- schema checks: a file in the wrong format fails here, naming the file and line, not deep in a judge ---------


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object")
        rows.append(row)
    return rows


def _require(path: Path, number: int, row: dict, keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{path}, record {number}: missing key(s) {missing}")


def validate_mt_bench(folder: str | Path) -> dict:
    folder = Path(folder)
    questions_path = folder / "question.jsonl"
    questions = _jsonl(questions_path)
    for number, q in enumerate(questions, start=1):
        _require(questions_path, number, q, ("question_id", "category", "turns"))
        if not isinstance(q["turns"], list) or not q["turns"] or not all(isinstance(t, str) for t in q["turns"]):
            raise ValueError(f"{questions_path}, record {number}: 'turns' must be a non-empty list of strings")
    if not questions:
        raise ValueError(f"{questions_path}: no questions")
    prompts_path = folder / "judge_prompts.jsonl"
    prompts = {p.get("name"): p for p in _jsonl(prompts_path)}
    for name in ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"):
        if name not in prompts:
            raise ValueError(f"{prompts_path}: judge prompt {name!r} is missing")
        _require(prompts_path, list(prompts).index(name) + 1, prompts[name],
                 ("system_prompt", "prompt_template", "output_format"))
    references_path = folder / "reference_answer" / "gpt-4.jsonl"
    references = _jsonl(references_path)
    for number, r in enumerate(references, start=1):
        _require(references_path, number, r, ("question_id", "choices"))
    return {"questions": len(questions), "judge_prompts": len(prompts), "reference_answers": len(references)}


ALPACA_EVAL_COLUMNS = ("instruction", "output")
DF_GAMED_COLUMNS = ("index", "instruction_difficulty", "preference", "std_delta_len", "not_gamed_baseline")


def validate_alpaca_eval(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / "alpaca_eval_gpt4_baseline.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty JSON list of records")
    for number, row in enumerate(rows, start=1):
        _require(path, number, row, ALPACA_EVAL_COLUMNS)
    gamed_path = folder / "df_gamed.csv"
    header = pd.read_csv(gamed_path, nrows=0).columns
    missing = [c for c in DF_GAMED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{gamed_path}: missing column(s) {missing} of AlpacaEval's length-control data")
    return {"instructions": len(rows)}


VALIDATORS = {"mt_bench": validate_mt_bench, "alpaca_eval": validate_alpaca_eval}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARK_FILES))
    parser.add_argument("--output-dir", type=Path, required=True)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--local-dir", type=Path, default=None, help="local copies, in the pinned layout")
    source.add_argument("--mirror", default=None, help="a URL serving the pinned files under their names")
    parser.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    manifest = provide(args.benchmark, args.output_dir, args.local_dir, args.mirror)
    write_json(args.manifest, manifest)
    log.info("%s: %s", args.benchmark, {k: v for k, v in manifest.items() if k != "files"})


if __name__ == "__main__":
    main()
