def policy_focused_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # PFL (Lu et al., 2024): where the policy already prefers the chosen response, a halved logistic loss;
    # elsewhere a doubled hinge loss.
    focus_scale = 2.0
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = (pi_logratios - ref_logratios) * self.beta
    is_correct = policy_chosen_logps > policy_rejected_logps
    logistic_losses = -F.logsigmoid(logits)
    hinge_losses = torch.relu(1 - logits)
    losses = torch.where(is_correct, logistic_losses / focus_scale, hinge_losses * focus_scale)
    return losses
