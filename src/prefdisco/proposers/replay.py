"""Replay proposer: re-propose a recorded transcript's objectives, generation by generation, with no LLM.

A transcript is a JSON list or JSONL of proposals, each with ``generation``, ``name``, ``thought`` and ``code``
(a previous run's ``archive.jsonl`` or ``gen<g>/proposals.json`` is one). Generation g of the new run replays the
entries recorded for generation g, in their recorded order; generation 0 is never replayed (it is the seed archive).

``paper`` names the bundled transcript: the paper's discovered objectives, one per generation as its discovery
script proposed them, in the order of the paper's Table 1 (the paper does not publish the order in which they
were found), with the code of the objective library. Seven generations replay the paper's discovery with no LLM.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import sha256_text
from ..objectives import function_name, library_source
from ..records import Proposal, proposal

PAPER = "paper"
# Table 1 of Lu et al. (2024), top to bottom, with the full names the paper gives.
PAPER_DISCOVERIES = (
    ("dbaql", "Dynamic Blended Adaptive Quantile Loss"),
    ("aql", "Adaptive Quantile Loss"),
    ("padll", "Performance Adaptive Decay Logistic Loss"),
    ("aqfl", "Adaptive Quantile Feedback Loss"),
    ("cell", "Combined Exponential + Logistic Loss"),
    ("lrml", "Log Ratio Modulated Loss (DiscoPOP)"),
    ("pfl", "Policy Focused Loss"),
)


def paper_transcript() -> list[dict]:
    """The bundled transcript: generation g+1 proposes the paper's g-th discovered objective."""
    entries = []
    for generation, (short, full_name) in enumerate(PAPER_DISCOVERIES, start=1):
        code = library_source(short)
        entries.append({"id": f"paper-{short}", "generation": generation, "name": function_name(code),
                        "thought": f"Replay of {full_name} ({short.upper()}), discovered by GPT-4 in Lu et al. (2024), "
                                   "Table 1.",
                        "code": code, "proposer": {"model": "gpt-4 (paper)"}})
    return entries


def read_transcript(path: str | Path) -> list[dict]:
    if str(path) == PAPER:
        return paper_transcript()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"discovery.proposer.options.transcript: {path} does not exist")
    text = path.read_text()
    try:
        entries = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a JSON list or JSONL of proposals ({error})") from error
    for number, entry in enumerate(entries):
        missing = [key for key in ("generation", "name", "code") if key not in entry]
        if missing:
            raise ValueError(f"{path}: entry {number} lacks {missing}")
    return entries


def propose_replay(transcript: str | Path, generation: int) -> list[Proposal]:
    """The transcript's proposals for ``generation``, as this run's proposal records."""
    entries = [e for e in read_transcript(transcript) if int(e["generation"]) == generation]
    proposals = []
    for k, entry in enumerate(entries):
        record = proposal(
            generation, k, name=entry["name"], thought=entry.get("thought") or "", code=entry["code"],
            genome=entry.get("genome"),
            proposer={"backend": "replay", "model": (entry.get("proposer") or {}).get("model"),
                      "temperature": None, "seed": None, "transcript": str(transcript),
                      "replayed_id": entry.get("id")})
        record["code_hash"] = sha256_text(entry["code"] or "")
        proposals.append(record)
    return proposals
