def adaptive_quantile_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # AQL (Lu et al., 2024): logistic and hinge losses blended by a sigmoid weight around a moving quantile
    # of the batch (tau = 0.05).
    tau = 0.05
    percentile = 0.5
    moving_quantile_weight = 0.01
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = (pi_logratios - ref_logratios) * self.beta
    moving_quantile = percentile + moving_quantile_weight * (torch.sigmoid((logits / tau).mean()) - percentile)
    quantile_weights = torch.sigmoid(-(logits / tau - moving_quantile))
    logistic_losses = -F.logsigmoid(logits)
    hinge_losses = torch.relu(1 - logits)
    losses = quantile_weights * logistic_losses + (1 - quantile_weights) * hinge_losses
    return losses
