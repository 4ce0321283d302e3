def performance_adaptive_decay_logistic_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # PADLL (Lu et al., 2024): the DPO loss, down-weighted by half where the policy ranks the pair the wrong way.
    base_decay = 0.9
    mismatch_penalty = 0.5
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = pi_logratios - ref_logratios
    mismatches = (logits < 0).float()
    adaptive_decay = base_decay * (1 - mismatches * mismatch_penalty)
    losses = adaptive_decay * -F.logsigmoid(self.beta * logits)
    return losses
