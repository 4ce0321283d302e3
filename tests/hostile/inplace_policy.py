# in-place on an input
# layer: runtime
# expect: modified its input 'policy_chosen_logps' in place
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    policy_chosen_logps.add_(1.0)
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
