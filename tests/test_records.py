"""The stage contracts in prefdisco.records: ids, the training rule, and proposals that every proposer builds alike."""

from __future__ import annotations

import re

import pytest

from prefdisco import records
from prefdisco.stages.archive import generation_records
from prefdisco.stages.propose import seed_proposals
from prefdisco.proposers.evolution import propose_evolution
from prefdisco.proposers.replay import propose_replay


def test_candidate_ids_round_trip_and_bad_ids_are_named():
    assert records.candidate_id(12, 3) == "g12-k3"
    assert records.parse_candidate_id("g12-k3") == (12, 3)
    for bad in ("g1k2", "g1-k", "paper-lrml", "g1-k2-x"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            records.parse_candidate_id(bad)


def test_experiment_unit_ids_round_trip_and_match_the_unit_wildcard():
    unit_id = records.experiment_unit_id("seed_spread", "dpo", 0.1, 2)
    assert unit_id == "seed_spread/dpo/beta0.1/seed2"
    assert records.parse_experiment_unit_id(unit_id) == ("seed_spread", "dpo", "0.1", "2")
    assert re.fullmatch(records.UNIT_PATTERN, records.experiment_unit(unit_id))
    assert re.fullmatch(records.UNIT_PATTERN, records.candidate_unit(3, 1))
    assert not re.fullmatch(records.UNIT_PATTERN, "gen3/cand1/policy")
    with pytest.raises(ValueError, match="seed_spread/dpo"):
        records.parse_experiment_unit_id("seed_spread/dpo")


@pytest.mark.parametrize(("verdict", "trained"), [
    ({"valid": True, "duplicate_of": None}, True),
    ({"valid": True}, True),
    ({"valid": True, "duplicate_of": "g0-k1"}, False),
    ({"valid": False, "duplicate_of": None}, False),
])
def test_goes_to_training(verdict, trained):
    assert records.goes_to_training(verdict) is trained


def test_every_proposer_writes_the_same_keys_in_the_same_order():
    expected = [k for k in records.PROPOSAL_KEYS if k != "library_name"]
    seed = seed_proposals(["dpo"])[0]
    assert list(seed) == list(records.PROPOSAL_KEYS)
    evolved = propose_evolution([], 1, 1, 0)[0]
    assert list(evolved) == expected
    replayed = propose_replay("paper", 1)[0]
    assert list(replayed) == expected + ["code_hash"]
    for proposal, generation in ((seed, 0), (evolved, 1), (replayed, 1)):
        assert proposal["id"] == records.candidate_id(generation, 0)
        assert proposal["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


def test_archive_statuses_come_from_the_vocabulary():
    proposals = seed_proposals(["dpo", "slic", "ipo"])
    verdicts = [
        {"id": "g0-k0", "valid": True, "error": None, "duplicate_of": None, "fingerprint": "a"},
        {"id": "g0-k1", "valid": True, "error": None, "duplicate_of": "g0-k0", "fingerprint": "a"},
        {"id": "g0-k2", "valid": False, "error": "boom", "duplicate_of": None, "fingerprint": None},
    ]
    trainings = {"g0-k0": {"id": "g0-k0", "status": records.OK, "metrics": {"loss": 0.5}, "wall_seconds": 1.0}}
    evaluations = {"g0-k0": {"id": "g0-k0", "status": records.OK, "fitness": 0.25, "metrics": {"reward": 0.3},
                             "error": None, "wall_seconds": 2.0}}
    archived = generation_records(proposals, verdicts, trainings, evaluations, [])
    assert [r["status"] for r in archived] == [records.OK, records.DUPLICATE, records.INVALID]
    assert all(r["status"] in records.STATUSES for r in archived)
    assert [records.is_evaluated(r) for r in archived] == [True, False, False]
    assert list(archived[0])[:len(records.PROPOSAL_KEYS)] == list(records.PROPOSAL_KEYS)
