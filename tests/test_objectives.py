"""Every library objective against its formula, written out independently from the paper's equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from prefdisco.objectives import LIBRARY, SEED_OBJECTIVES, function_name, library_source
from prefdisco.sandbox.loader import ObjectiveContext, load_objective

TAU = 0.05


def softplus(z):  # -log sigmoid(-z) = log(1 + e^z)
    return torch.log1p(torch.exp(z))


def sigmoid(z):
    return 1 / (1 + torch.exp(-z))


def dpo(rho, beta, **_):
    return softplus(-beta * rho)  # -log sigma(beta rho)


def slic(rho, beta, **_):
    return torch.clamp(1 - beta * rho, min=0)


def ipo(rho, beta, **_):
    return (rho - 1 / (2 * beta)) ** 2


def kto(rho, beta, chosen, rejected, **_):
    z_chosen = chosen.mean().clamp(min=0)
    z_rejected = rejected.mean().clamp(min=0)
    return ((1 - sigmoid(beta * (chosen - z_rejected))) + (1 - sigmoid(beta * (z_chosen - rejected)))) / 2


def lrml(rho, beta, **_):  # Eq. (5) of Lu et al.: (1 - w) f_dpo + w f_exp, w = sigma(beta rho / tau)
    w = sigmoid(beta * rho / TAU)
    return (1 - w) * softplus(-beta * rho) + w * torch.exp(-beta * rho)


def padll(rho, beta, **_):  # delta_pos = 0.9 for rho >= 0, delta_neg = 0.45 for rho < 0
    return torch.where(rho < 0, 0.45, 0.9) * softplus(-beta * rho)


def aql(rho, beta, **_):  # q f_dpo + (1 - q) f_slic, q = sigma(-(beta rho / tau - m2)), m2 = 0.5 + 0.01 (E[sigma(beta rho / tau)] - 0.5)
    m2 = 0.5 + 0.01 * (sigmoid((beta * rho / TAU).mean()) - 0.5)
    q = sigmoid(-(beta * rho / TAU - m2))
    return q * softplus(-beta * rho) + (1 - q) * torch.clamp(1 - beta * rho, min=0)


def aqfl(rho, beta, **_):
    z = beta * rho / TAU
    quantile = z.std() * sigmoid(-z).mean()
    quantile = quantile + 0.05 * (sigmoid(z.mean()) - quantile)
    blend = sigmoid(0.1 * (z - quantile).abs())
    return blend * softplus(-beta * rho) + (1 - blend) * torch.clamp(1 - beta * rho, min=0)


def dbaql(rho, beta, **_):
    blend = sigmoid((beta * rho / TAU).var())
    return blend * softplus(-beta * rho / 0.9) + (1 - blend) * torch.exp(-beta * rho * 0.9)


def cell(rho, beta, **_):
    return 0.5 * torch.exp(-beta * rho) + 0.5 * softplus(-beta * rho)


def pfl(rho, beta, policy_chosen, policy_rejected, **_):
    correct = policy_chosen > policy_rejected
    return torch.where(correct, softplus(-beta * rho) / 2, torch.clamp(1 - beta * rho, min=0) * 2)


FORMULAS = {"dpo": dpo, "slic": slic, "ipo": ipo, "kto": kto, "lrml": lrml, "padll": padll, "aql": aql,
            "aqfl": aqfl, "dbaql": dbaql, "cell": cell, "pfl": pfl}


def batch(seed: int, size: int = 32):
    generator = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (-60 + 20 * torch.randn(size, generator=generator, dtype=torch.float64) for _ in range(4))
    return pc, pr, rc, rr


def test_the_library_is_complete():
    assert set(FORMULAS) == set(LIBRARY)
    assert SEED_OBJECTIVES == ("dpo", "slic", "ipo", "kto")


@pytest.mark.parametrize("name", LIBRARY)
@pytest.mark.parametrize("beta", [0.01, 0.05, 0.1, 0.5])
def test_objective_matches_its_formula(name, beta):
    objective = load_objective(library_source(name))
    for seed in range(3):
        pc, pr, rc, rr = batch(seed)
        losses = objective(ObjectiveContext(beta), pc, pr, rc, rr)
        rho = (pc - pr) - (rc - rr)
        expected = FORMULAS[name](rho, beta, chosen=pc - rc, rejected=pr - rr, policy_chosen=pc, policy_rejected=pr)
        assert losses.shape == (32,)
        torch.testing.assert_close(losses, expected, rtol=1e-9, atol=1e-12)


def test_lrml_equals_trls_discopop_formula_at_the_papers_beta():
    """TRL's loss_type="discopop" (discopop_tau = 0.05) on the same inputs, as TRL computes it."""
    pc, pr, rc, rr = batch(7)
    beta = 0.05
    logits = ((pc - pr) - (rc - rr)) * beta
    modulation = torch.sigmoid(logits / 0.05)
    trl = -F.logsigmoid(logits) * (1 - modulation) + torch.exp(-logits) * modulation
    ours = load_objective(library_source("lrml"))(ObjectiveContext(beta), pc, pr, rc, rr)
    torch.testing.assert_close(ours, trl)


def test_dpo_at_zero_margin_is_log_two():
    pc = pr = rc = rr = torch.zeros(4)
    losses = load_objective(library_source("dpo"))(ObjectiveContext(0.1), pc, pr, rc, rr)
    torch.testing.assert_close(losses, torch.full((4,), math.log(2)))


def test_function_names_are_the_papers():
    assert function_name(library_source("lrml")) == "log_ratio_modulated_loss"
    with pytest.raises(KeyError, match="unknown objective 'dpo2'"):
        library_source("dpo2")
