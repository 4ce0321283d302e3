# mutates the trainer's configuration
# layer: static
# expect: assigning to or deleting attributes ('self.beta')
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    self.beta = 1000.0
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
