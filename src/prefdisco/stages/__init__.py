"""The stages: the entry points the rules run as ``python -m prefdisco.stages.<stage>``, in DAG order.

Once per run:

- ``reference``: the SFT reference model as a transformers folder, and ``reference.json`` pointing to it.
- ``preferences``: the task's preference pairs and held-out prompts, built from the reference.
- ``reference_logps``: the reference's log-probs of every pair, shared by every candidate's training.

Each generation g of the discovery search:

- ``propose``: generation g's proposals (the seed library at g = 0, then a proposer reading archive(g-1)).
- ``validate``: every proposal checked in the sandbox, fingerprinted, duplicates flagged.
- ``candidates``: the ``objective.json`` a training unit consumes (a candidate, a replica seed, a fixed experiment).
- ``train``: the reference fine-tuned with one objective.
- ``evaluate``: the trained policy (or the reference) scored on held-out prompts: reward, KL, fitness.
- ``archive``: archive(g), every record up to generation g with one status and its one-seed intervals.
- ``cascade``: ``promote`` (which candidates get more seeds) after archive(g); ``final`` (the final archive from
  every seed, and the verdict against the control) after the last generation.

From the finished run:

- ``baselines``: the discovery's best against the search baselines' best, at equal budget.
- ``experiments``: the fixed experiments' table (objective x beta), with intervals over seeds x prompts.
- ``summary``: the ranked table of the archive (CSV and Markdown), opening with the verdict.
- ``figures``: the run's figures (fitness over generations, objective shapes, reward against KL).
- ``run_config``: the config as Snakemake resolved it, for the report.
- ``verify``: every record parses and every input it names still has its sha256.

The paper's figures and benchmarks:

- ``logratios``: the beta-scaled log-ratio differences of the training pairs under a trained policy.
- ``paper_figures``: the paper's held-out figures and tables, from result files only.
- ``exports``: MT-Bench answers in FastChat's layout, AlpacaEval outputs in alpaca_eval's.
- ``paper_manifest``: results/paper/MANIFEST.md, every paper artifact and where it came from.

The domain packages ``judging`` and ``classification`` keep their own stages beside their libraries.

Each stage module is a thin command line around functions that do the work (tests call those). What two stages
share lives in a library module of :mod:`prefdisco` (``intervals``, ``records``, ``models``, ``plotting`` ...):
libraries never import from here, and stages never import one another (tests/test_layout.py checks both).
"""
