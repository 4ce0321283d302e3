"""Classification objectives: the paper's second discovery domain (Section 3, CIFAR-10; Fig. 2).

A proposer writes one function ``(logits (B, C), targets (B,)) -> per-example losses (B,)``; a classifier is trained
with it and its validation accuracy is the fitness. The family definition is :mod:`prefdisco.families.classification`;
this package holds the contract and library (:mod:`.objectives`), the property checks (:mod:`.checks`), the
evolutionary expression space (:mod:`.expressions`), the LLM task description (:mod:`.prompt`), data, models, the
trainer, the scorer, the transfer stage and the Fig. 2 figures. Candidate code runs only in the sandbox child and
the confined objective worker (:mod:`prefdisco.sandbox.worker`), the ones preference objectives run in.
"""
