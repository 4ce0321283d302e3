# reads a file outside the sandbox and makes the loss depend on it
# layer: static
# expect: 'open' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    secret = open('/etc/passwd').read()
    return -F.logsigmoid(self.beta * logits) + 0 * len(secret)
