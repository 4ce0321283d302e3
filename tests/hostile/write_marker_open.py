# writes a marker file outside the sandbox
# layer: static
# expect: 'open' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    open('/tmp/prefdisco_pwned_write_marker_open', 'w').write('pwned')
    return -F.logsigmoid(self.beta * logits)
