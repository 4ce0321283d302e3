"""The replay proposer: a recorded transcript (a previous run's archive) re-proposed generation by generation."""

from __future__ import annotations

import json

import pytest

from conftest import ARCHIVE
from prefdisco.io import read_jsonl
from prefdisco.stages.propose import propose
from prefdisco.proposers.replay import propose_replay, read_transcript


def test_replays_an_archives_generation_in_order():
    recorded = [r for r in read_jsonl(ARCHIVE) if r["generation"] == 1]
    proposals = propose_replay(ARCHIVE, 1)
    assert [p["code"] for p in proposals] == [r["code"] for r in recorded]
    assert [p["id"] for p in proposals] == [f"g1-k{k}" for k in range(len(recorded))]
    assert all(p["proposer"]["backend"] == "replay" for p in proposals)
    assert [p["proposer"]["replayed_id"] for p in proposals] == [r["id"] for r in recorded]


def test_generation_without_entries_proposes_nothing():
    assert propose_replay(ARCHIVE, 99) == []


def test_transcript_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        read_transcript(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"generation": 1, "name": "x"}]))
    with pytest.raises(ValueError, match=r"bad.json: entry 0 lacks \['code'\]"):
        read_transcript(bad)
    with pytest.raises(ValueError, match="needs a transcript file"):
        propose(1, [], 2, "replay", 0, {})


def test_bundled_paper_transcript_replays_the_discoveries_one_per_generation():
    from prefdisco.objectives import DISCOVERED_OBJECTIVES, function_name, library_source

    replayed = [propose_replay("paper", g) for g in range(1, 9)]
    assert [len(p) for p in replayed] == [1] * 7 + [0]
    names = [p[0]["name"] for p in replayed[:7]]
    assert sorted(names) == sorted(function_name(library_source(o)) for o in DISCOVERED_OBJECTIVES)
    assert names[0] == function_name(library_source("dbaql")) and names[5] == "log_ratio_modulated_loss"
    assert replayed[5][0]["code"] == library_source("lrml")
    assert "Table 1" in replayed[5][0]["thought"] and replayed[5][0]["proposer"]["backend"] == "replay"
