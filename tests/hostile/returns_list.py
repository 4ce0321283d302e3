# a Python list
# layer: runtime
# expect: returned list
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return [float(v) for v in -F.logsigmoid(self.beta * logits)]
