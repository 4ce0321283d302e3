# an ordinary bug: the message must name the line
# layer: runtime
# expect: the objective raised TypeError at line 6
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits) + 'oops'
