def log_ratio_modulated_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # LRML, "DiscoPOP" (Lu et al., 2024): a blend of the logistic (DPO) and exponential losses whose weight is a
    # sigmoid of the scaled log-ratio difference, with temperature tau = 0.05.
    tau = 0.05
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = (pi_logratios - ref_logratios) * self.beta
    log_ratio_modulation = torch.sigmoid(logits / tau)
    logistic_component = -F.logsigmoid(logits)
    exp_component = torch.exp(-logits)
    losses = logistic_component * (1 - log_ratio_modulation) + exp_component * log_ratio_modulation
    return losses
