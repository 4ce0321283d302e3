def adaptive_quantile_feedback_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # AQFL (Lu et al., 2024): logistic and hinge losses blended by each example's distance from an adaptive
    # quantile of the batch's scaled log-ratio differences (tau = 0.05).
    tau = 0.05
    quantile_update_rate = 0.05
    distance_scale = 0.1
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = (pi_logratios - ref_logratios) * self.beta
    logits_std = (logits / tau).std()
    adaptive_quantile = logits_std * torch.sigmoid(-logits / tau).mean()
    adaptive_quantile = adaptive_quantile + quantile_update_rate * (torch.sigmoid((logits / tau).mean()) - adaptive_quantile)
    distance_from_quantile = (logits / tau - adaptive_quantile).abs()
    blend_rate = torch.sigmoid(distance_scale * distance_from_quantile)
    logistic_losses = -F.logsigmoid(logits)
    hinge_losses = torch.relu(1 - logits)
    losses = blend_rate * logistic_losses + (1 - blend_rate) * hinge_losses
    return losses
