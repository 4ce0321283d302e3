# a generator, not a function
# layer: static
# expect: 'yield' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    yield -F.logsigmoid(self.beta * logits)
