# evaluates a string
# layer: static
# expect: 'eval' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return eval('-F.logsigmoid(self.beta * logits)')
