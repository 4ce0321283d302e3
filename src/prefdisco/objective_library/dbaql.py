def dynamic_blended_adaptive_quantile_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # DBAQL (Lu et al., 2024): tempered logistic and exponential losses blended by the batch variance of the
    # scaled log-ratio differences (tau = 0.05).
    tau = 0.05
    temperature = 0.9
    dynamic_blend_rate = 1.0
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = (pi_logratios - ref_logratios) * self.beta
    logits_variability = (logits / tau).var()
    dynamic_blend_coeff = torch.sigmoid(logits_variability) * dynamic_blend_rate
    logistic_loss = -F.logsigmoid(logits / temperature)
    exp_loss = torch.exp(-logits * temperature)
    losses = dynamic_blend_coeff * logistic_loss + (1 - dynamic_blend_coeff) * exp_loss
    return losses
