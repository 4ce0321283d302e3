"""The LLM proposers (OpenAI-compatible server, local transformers model) and the chat client under them.

Real HTTP on loopback throughout: a scripted server injects the faults (garbage, 500, 429, a hung reply, JSON mode
refused, nobody listening), and a real llama.cpp server with SmolLM2-135M speaks the real protocol. What is tested
is the protocol, the recording and the error paths, not the quality of a 135M model's losses.
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import ARCHIVE
from prefdisco.io import read_jsonl
from prefdisco.llm_client import ChatClient, EndpointOptions, ReplyCache
from prefdisco.stages.propose import propose
from prefdisco.proposers.llm import ProtocolOptions, ReplyError, parse_reply, propose_llm
from prefdisco.proposers.local_model import LocalChat, LocalModelOptions
from prefdisco.proposers.prompts import build_messages, prompt_hash, select_context
from loopback import ScriptedServer, free_port

GOOD_CODE = (
    "def margin_softplus_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
    "reference_rejected_logps):\n"
    "    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)\n"
    "    return F.softplus(-self.beta * logits)\n"
)
GOOD_REPLY = json.dumps({"thought": "softplus of the negative margin", "name": "margin_softplus_loss", "code": GOOD_CODE})


def client(url: str, cache_dir=None, **overrides) -> ChatClient:
    settings = dict(base_url=url, model="scripted", timeout_seconds=5, max_retries=2, max_retry_seconds=10,
                    backoff_seconds=0.05, json_mode=True, prices={"input": 1.0, "output": 2.0})
    settings.update(overrides)
    return ChatClient(EndpointOptions(**settings), ReplyCache(cache_dir))


def run(chat, tmp_path, population=1, generation=3, **protocol):
    return propose_llm(chat, read_jsonl(ARCHIVE), generation, population, 0, ProtocolOptions(**protocol),
                       tmp_path / "transcripts")


@pytest.fixture
def archive() -> list[dict]:
    return read_jsonl(ARCHIVE)


# ----------------------------------------------------------------------------------------------------------------
# The prompt


def test_prompt_carries_outcomes_and_siblings(archive):
    messages = build_messages(archive, 3, 2, ["sibling_one_loss", "sibling_two_loss"], best_n=20, recent_m=20)
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert "self.beta" in system and '"thought"' in system and "shape (B,)" in system
    assert "Fitness: 0.4240" in user and "Fitness: 0.5120" in user
    invalid = next(r for r in archive if r["status"] == "invalid")
    assert "Error: " + invalid["error"].splitlines()[0] in user
    assert "Error: generation timed out after 600 s" in user  # eval_failed, the last record
    assert "Duplicate of g0-k0" in user
    assert "sibling_one_loss, sibling_two_loss" in user
    assert user.rstrip().endswith("Reply with the JSON object only.")
    assert prompt_hash(messages) == prompt_hash(json.loads(json.dumps(messages)))
    assert prompt_hash(messages) != prompt_hash(build_messages(archive, 3, 2, []))


def test_prompt_context_is_bounded(archive):
    user = build_messages(archive, 3, 0, [], best_n=2, recent_m=1)[1]["content"]
    shown = [line for line in user.splitlines() if line.startswith("Name: ")]
    assert len(shown) == 3  # the 2 best (g2-k0, g1-k0) and the last record (g2-k4)
    assert "(id g2-k0" in user and "(id g1-k0" in user and "(id g2-k4" in user
    assert "10 other record(s)" in user


def test_siblings_are_shown_different_parents(archive):
    import random

    best = [r["id"] for r in select_context(archive, 3, 0)]
    drawn = {tuple(r["id"] for r in select_context(archive, 3, 0, random.Random(k))) for k in range(8)}
    assert len(drawn) > 1 and any(set(d) != set(best) for d in drawn)
    assert all(len(d) == 3 for d in drawn)  # still three evaluated records, drawn without replacement


def test_parse_reply_tolerates_fences_and_names_problems():
    assert parse_reply(f"Here:\n```json\n{GOOD_REPLY}\n```")["name"] == "margin_softplus_loss"
    with pytest.raises(ReplyError, match="not valid JSON"):
        parse_reply("def f(): pass")
    with pytest.raises(ReplyError, match='no non-empty string "code"'):
        parse_reply('{"thought": "t", "name": "n"}')
    with pytest.raises(ReplyError, match="not valid Python"):
        parse_reply(json.dumps({"thought": "", "name": "f", "code": "def f(self, a, b, c, d)\n    return a\n"}))
    # Contract violations are the sandbox's business: the code goes on to validation, whose error is fed back.
    hostile = "import os\ndef f(self, a, b, c, d):\n    return a\n"
    assert parse_reply(json.dumps({"thought": "", "name": "wrong", "code": hostile}))["name"] == "f"


# ----------------------------------------------------------------------------------------------------------------
# Failure paths, injected at the HTTP boundary


def test_corrective_reask_after_garbage(tmp_path):
    with ScriptedServer([(200, "I think a good loss is the hinge loss!", 0.0), (200, GOOD_REPLY, 0.0)]) as server:
        [record] = run(client(server.url), tmp_path)
    assert record["code"] == GOOD_CODE and record["name"] == "margin_softplus_loss" and "error" not in record
    assert record["usage"] == {"prompt_tokens": 200, "completion_tokens": 20, "cost_usd": pytest.approx(2.4e-4),
                               "cached": False}
    assert record["proposer"]["backend"] == "openai" and record["id"] == "g3-k0" and record["genome"] is None
    assert record["parents"] and set(record["parents"]) <= {r["id"] for r in read_jsonl(ARCHIVE)}
    second = server.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "I think a good loss is the hinge loss!"}
    assert "not valid JSON" in second[-1]["content"]
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    transcript = (tmp_path / "transcripts" / "g3-k0.md").read_text()
    assert "hinge loss!" in transcript and "malformed reply" in transcript and "accepted" in transcript


def test_gives_up_after_one_reask(tmp_path):
    with ScriptedServer([(200, "no", 0.0), (200, '{"name": "x"}', 0.0), (200, GOOD_REPLY, 0.0)]) as server:
        [record] = run(client(server.url), tmp_path)
    assert len(server.requests) == 2
    assert record["code"] == "" and record["error"].startswith("malformed reply after one corrective re-ask")
    assert 'no non-empty string "code"' in record["error"]


def test_http_500_then_success_is_retried_and_siblings_are_named(tmp_path):
    other = GOOD_REPLY.replace("margin_softplus_loss", "other_loss")
    with ScriptedServer([(500, "boom", 0.0), (200, GOOD_REPLY, 0.0), (200, other, 0.0)]) as server:
        records = run(client(server.url), tmp_path, population=2)
    assert [r["name"] for r in records] == ["margin_softplus_loss", "other_loss"]
    assert len(server.requests) == 3
    assert "margin_softplus_loss" in server.requests[2]["messages"][1]["content"].split("Already proposed")[1]
    assert "retry 1/2" in (tmp_path / "transcripts" / "g3-k0.md").read_text()


def test_temperatures_are_given_per_candidate(tmp_path):
    with ScriptedServer([(200, GOOD_REPLY, 0.0)] * 3) as server:
        records = run(client(server.url), tmp_path, population=3, temperatures=[0.2, 1.1])
    assert [request["temperature"] for request in server.requests] == [0.2, 1.1, 0.2]
    assert [r["proposer"]["temperature"] for r in records] == [0.2, 1.1, 0.2]


def test_429_bounded_retries_then_error(tmp_path):
    with ScriptedServer([(429, "slow down", 0.0)] * 10) as server:
        [record] = run(client(server.url, max_retries=2), tmp_path)
    assert len(server.requests) == 3
    assert record["code"] == "" and "RateLimitError" in record["error"] and "3 attempt(s)" in record["error"]


def test_json_mode_refused_falls_back(tmp_path):
    with ScriptedServer([(400, "response_format is not supported", 0.0), (200, GOOD_REPLY, 0.0)]) as server:
        [record] = run(client(server.url), tmp_path)
    assert record["code"] == GOOD_CODE
    assert "response_format" in server.requests[0] and "response_format" not in server.requests[1]


def test_server_down_is_recorded_quickly(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens there
    started = time.monotonic()
    records = run(client(url), tmp_path, population=2)
    assert time.monotonic() - started < 5  # the second candidate does not pay a second retry budget
    for record in records:
        assert record["code"] == "" and "APIConnectionError" in record["error"]
        assert record["usage"]["prompt_tokens"] == 0 and record["usage"]["cached"] is False
    assert (tmp_path / "transcripts" / "g3-k1.md").is_file()


def test_hanging_reply_times_out_within_bound(tmp_path):
    with ScriptedServer([(200, GOOD_REPLY, 5.0)] * 5) as server:
        started = time.monotonic()
        [record] = run(client(server.url, timeout_seconds=0.5, max_retries=1, max_retry_seconds=3), tmp_path)
        elapsed = time.monotonic() - started
    assert elapsed < 3.5
    assert record["code"] == "" and "APITimeoutError" in record["error"]


def test_reply_cache_answers_a_rerun_without_calls(tmp_path):
    cache = tmp_path / "cache"
    with ScriptedServer([(200, "garbage", 0.0), (200, GOOD_REPLY, 0.0), (200, GOOD_REPLY, 0.0)]) as server:
        first = run(client(server.url, cache), tmp_path / "a", population=2)
        assert len(server.requests) == 3
        chat = client(server.url, cache)
        second = run(chat, tmp_path / "b", population=2)
        assert len(server.requests) == 3  # nothing asked again
    assert chat.stats["calls"] == 0 and chat.stats["cache_hits"] == 3
    strip = lambda r: {k: v for k, v in r.items() if k not in ("usage", "wall_seconds")}  # noqa: E731
    assert [strip(r) for r in second] == [strip(r) for r in first]
    assert all(r["usage"]["cached"] for r in second) and not any(r["usage"]["cached"] for r in first)
    assert second[0]["usage"]["prompt_tokens"] == first[0]["usage"]["prompt_tokens"] == 200  # the original cost
    assert "cached" in (tmp_path / "b" / "transcripts" / "g3-k0.md").read_text()


def test_backend_options_are_checked_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"discovery.proposer.options: unknown key\(s\) \['modle'\]"):
        propose(1, [], 1, "openai", 0, {"base_url": "http://127.0.0.1:9/v1", "modle": "x"}, tmp_path)
    with pytest.raises(ValueError, match="discovery.proposer.options: .*model"):
        propose(1, [], 1, "openai", 0, {"base_url": "http://127.0.0.1:9/v1"}, tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# Real models


def test_real_llama_server_proposals_are_recorded(llama_url, archive, tmp_path):
    # Replies of 64 tokens: on one llama.cpp thread of a busy 2-core machine a token takes about half a second, and a
    # 256-token reply outlived the client's timeout. A reply cut short is a malformed one, re-asked once and then
    # recorded with its reason: the path under test is the same.
    chat = ChatClient(EndpointOptions(base_url=llama_url, model="smollm2", temperature=0.8, max_tokens=64,
                                      json_mode=True, timeout_seconds=300, max_retries=1, max_retry_seconds=300,
                                      prices={"input": 0.5, "output": 1.5}), ReplyCache(tmp_path / "cache"))
    records = propose_llm(chat, archive, 3, 2, 7, ProtocolOptions(context_best=1, context_recent=1),
                          tmp_path / "transcripts")
    assert [r["id"] for r in records] == ["g3-k0", "g3-k1"]
    for record in records:
        assert record["proposer"] == {"backend": "openai", "model": "smollm2", "temperature": 0.8,
                                      "base_url": llama_url, "seed": 7}
        assert len(record["prompt_hash"]) == 64 and record["genome"] is None
        usage = record["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["cost_usd"] == pytest.approx((usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1e6)
        assert bool(record["code"]) != bool(record.get("error"))  # either a parsed program or the reason there is none
        transcript = (tmp_path / "transcripts" / f"{record['id']}.md").read_text()
        assert "message 0 (system)" in transcript and "reply 0" in transcript
    assert chat.stats["calls"] >= 2 and chat.stats["cache_hits"] == 0


def test_local_transformers_model_proposes_through_its_chat_template(tiny_model_dir, archive, tmp_path):
    options = LocalModelOptions(model=str(tiny_model_dir), temperature=1.0, max_tokens=24, device="cpu")
    cache = ReplyCache(tmp_path / "cache")
    records = propose_llm(LocalChat(options, cache), archive, 3, 2, 0, ProtocolOptions(), tmp_path / "t1")
    for record in records:  # a random 2-layer model writes noise: the protocol must record why there is no code
        assert record["proposer"]["backend"] == "transformers" and record["proposer"]["model"] == str(tiny_model_dir)
        assert record["code"] == "" and record["error"].startswith("malformed reply after one corrective re-ask")
        assert record["usage"]["completion_tokens"] > 0 and record["usage"]["cost_usd"] == 0.0
        transcript = (tmp_path / "t1" / f"{record['id']}.md").read_text()
        assert "message 2 (assistant)" in transcript and "message 3 (user)" in transcript  # the re-ask
    # Sampling is seeded by the request: a fresh model object without the cache replies the same.
    again = propose_llm(LocalChat(options), archive, 3, 2, 0, ProtocolOptions(), tmp_path / "t2")
    assert (tmp_path / "t1" / "g3-k0.md").read_text().split("## reply 0")[1].split("````")[1] == \
        (tmp_path / "t2" / "g3-k0.md").read_text().split("## reply 0")[1].split("````")[1]
    assert [r["usage"]["completion_tokens"] for r in again] == [r["usage"]["completion_tokens"] for r in records]
