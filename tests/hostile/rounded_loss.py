# rounding: a graph whose gradient is zero everywhere
# layer: runtime
# expect: identically zero
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return torch.round(torch.sigmoid(-self.beta * logits))
