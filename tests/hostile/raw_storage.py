# raw storage access
# layer: static
# expect: '.untyped_storage' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    storage = policy_chosen_logps.untyped_storage()
    return -F.logsigmoid(self.beta * logits)
