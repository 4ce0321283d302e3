# fine on ordinary inputs, overflows (exp(100)) at the extreme grid
# layer: runtime
# expect: must stay finite for |beta*rho| up to 50
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return torch.exp(-2.0 * self.beta * logits)
