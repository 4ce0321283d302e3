# in-place through an alias, which the static policy cannot see
# layer: runtime
# expect: modified its input 'policy_rejected_logps' in place
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    x = policy_rejected_logps
    x -= 1.0
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
