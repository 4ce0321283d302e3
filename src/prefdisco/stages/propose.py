"""Stage: the proposals of one generation.

Generation 0 is the seed archive: the library's baseline objectives, proposed verbatim so they are trained and
evaluated for real like every later candidate. Generations 1..G ask the configured proposer backend, which reads
the archive of the generation before.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields
from pathlib import Path

from ..cli import json_option, setup_logging
from ..families import FAMILY_NAMES, Family, get_family
from ..io import provenance, read_jsonl, sha256_text, write_json
from ..objectives import function_name
from ..options import options_from
from ..records import Proposal, proposal

log = logging.getLogger(__name__)

OPTIONS_KEY = "discovery.proposer.options"
LLM_BACKENDS = ("openai", "transformers")
BACKENDS = ("evolution", "random", "replay", *LLM_BACKENDS)


def seed_proposals(objective_names: list[str], family: Family | None = None) -> list[Proposal]:
    family = family or get_family(None)
    proposals = []
    for k, name in enumerate(objective_names):
        code = family.library_source(name)
        proposals.append(proposal(
            0, k, name=function_name(code), library_name=name, thought=f"Seed archive: the library objective {name}.",
            code=code, genome=family.expression_space.library_genomes.get(name),
            proposer={"backend": "seed", "model": None, "temperature": None, "seed": None}))
    return proposals


def propose(generation: int, archive: list[dict], population: int, backend: str, seed: int, options: dict,
            transcript_dir: Path | None = None, cache_dir: Path | None = None, family: Family | None = None) -> list[dict]:
    """Generation ``generation``'s proposals from ``backend``; LLM backends write one transcript per candidate into
    ``transcript_dir`` and keep their replies in the reply cache under ``cache_dir``. ``family`` (default:
    preference) supplies the evolutionary expression space and the LLM's task description."""
    family = family or get_family(None)
    if backend == "evolution":
        from ..proposers.evolution import EvolutionOptions, propose_evolution

        return propose_evolution(archive, generation, population, seed, options_from(EvolutionOptions, options, OPTIONS_KEY),
                                 family.expression_space)
    if backend == "random":
        # The baseline of the evolutionary search: its expression space and options, without selection.
        from ..proposers.evolution import EvolutionOptions
        from ..proposers.random_search import propose_random

        return propose_random(archive, generation, population, seed, options_from(EvolutionOptions, options, OPTIONS_KEY),
                              family.expression_space)
    if backend == "replay":
        from ..proposers.replay import propose_replay

        if "transcript" not in options:
            raise ValueError("discovery.proposer.options.transcript: the replay backend needs a transcript file "
                             "(or 'paper' for the bundled replay of the paper's discoveries)")
        return propose_replay(options["transcript"], generation)
    if backend in LLM_BACKENDS:
        from ..llm_client import ReplyCache
        from ..proposers.llm import ProtocolOptions, propose_llm

        protocol_keys = {f.name for f in fields(ProtocolOptions)}
        protocol = options_from(ProtocolOptions, {k: v for k, v in options.items() if k in protocol_keys}, OPTIONS_KEY)
        model_options = {k: v for k, v in options.items() if k not in protocol_keys}
        cache = ReplyCache(cache_dir)
        if backend == "openai":
            from ..llm_client import ChatClient, EndpointOptions

            # The paper asks GPT-4 for a JSON object; servers that cannot do JSON mode fall back by themselves.
            chat = ChatClient(options_from(EndpointOptions, {"json_mode": True, **model_options}, OPTIONS_KEY), cache)
        else:
            from ..proposers.local_model import LocalChat, LocalModelOptions

            chat = LocalChat(options_from(LocalModelOptions, model_options, OPTIONS_KEY), cache)
        if transcript_dir is None:
            raise ValueError(f"the {backend} proposer needs a transcript folder")
        return propose_llm(chat, archive, generation, population, seed, protocol, transcript_dir, family.system_prompt)
    raise ValueError(f"discovery.proposer.backend: {backend!r} is not one of {', '.join(BACKENDS)}")


def usage_line(proposals: list[dict]) -> str:
    """Tokens and cost of a generation's proposals, for the log (the archive keeps them per proposal)."""
    usages = [p.get("usage") or {} for p in proposals]
    prompt = sum(u.get("prompt_tokens", 0) for u in usages)
    completion = sum(u.get("completion_tokens", 0) for u in usages)
    cost = sum(u.get("cost_usd", 0.0) for u in usages)
    cached = sum(1 for u in usages if u.get("cached"))
    return (f"proposer usage: {prompt} prompt + {completion} completion tokens, ${cost:.4f}"
            f" ({cached} of {len(proposals)} proposals answered from the reply cache)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generation", type=int, required=True)
    parser.add_argument("--archive", type=Path, default=None, help="archive of the previous generation")
    parser.add_argument("--family", default="preference", choices=FAMILY_NAMES, help="objective family (config key family)")
    parser.add_argument("--seed-objectives", nargs="*", default=[], help="generation 0: library objective names")
    parser.add_argument("--population", type=int, default=0)
    parser.add_argument("--backend", default="evolution")
    parser.add_argument("--backend-options", type=json_option, default={})
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transcripts", type=Path, default=None, help="folder for the LLM conversations (created)")
    parser.add_argument("--cache", type=Path, default=None, help="folder of the LLM reply cache, shared by runs")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()

    family = get_family(args.family)
    if args.generation == 0:
        unknown = [n for n in args.seed_objectives if n not in family.library]
        if unknown:
            parser.error(f"discovery.seed_objectives: unknown {unknown}; the {family.name} library holds "
                         f"{', '.join(family.library)}")
        proposals = seed_proposals(args.seed_objectives, family)
    else:
        if args.archive is None:
            parser.error(f"generation {args.generation} needs --archive (the archive of generation {args.generation - 1})")
        try:
            proposals = propose(args.generation, read_jsonl(args.archive), args.population, args.backend, args.seed,
                                args.backend_options, args.transcripts, args.cache, family)
        except (ValueError, FileNotFoundError) as error:
            parser.error(str(error))
    transcript = args.backend_options.get("transcript") if args.backend == "replay" and args.generation else None
    inputs = provenance(args.archive, transcript)
    for record in proposals:
        record.setdefault("code_hash", sha256_text(record.get("code") or ""))
        record["inputs"] = inputs
    if args.transcripts is not None:
        args.transcripts.mkdir(parents=True, exist_ok=True)
    write_json(args.output, proposals)
    log.info("%s", usage_line(proposals))
    for record in proposals:
        log.info("%s %s: %s", record["id"], record["name"], record["thought"])


if __name__ == "__main__":
    main()
