# __import__ spelling
# layer: static
# expect: '__import__' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    __import__('os').system('touch /tmp/prefdisco_pwned_dunder_import')
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
