# infinite losses
# layer: runtime
# expect: the loss is infinite on ordinary inputs
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return torch.exp(1000.0 * torch.abs(logits) + 100.0)
