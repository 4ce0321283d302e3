"""Benchmarks judged by an LLM: MT-Bench (FastChat's single-answer grading) and AlpacaEval 2.0 (the alpaca_eval
library), with every judge behind an OpenAI-compatible endpoint reached through :mod:`prefdisco.llm_client`.

- :mod:`.data`: the benchmark files, downloaded once from pinned sources or copied from local copies
- :mod:`.answers`: answer generation for a model (MT-Bench's two turns, AlpacaEval's instructions), batched
- :mod:`.mt_bench`: FastChat's judge prompts, the ``[[rating]]`` parser, judging and scores
- :mod:`.alpaca_eval`: the weighted GPT-4 Turbo annotator pointed at any endpoint, win rate and LC win rate
- :mod:`.tables`: AlpacaEval's Table 2 (CSV and Markdown) and the held-out selection from the final archive
"""
