# in-place on a reference input
# layer: runtime
# expect: modified its input 'reference_rejected_logps' in place
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    reference_rejected_logps.mul_(2.0)
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
