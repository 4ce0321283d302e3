def combined_exp_logistic_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # CELL (Lu et al., 2024): an even mix of the exponential and logistic losses.
    alpha = 0.5
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = pi_logratios - ref_logratios
    exp_losses = torch.exp(-self.beta * logits)
    log_losses = -F.logsigmoid(self.beta * logits)
    losses = alpha * exp_losses + (1 - alpha) * log_losses
    return losses
