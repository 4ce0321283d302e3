# format strings walk attributes
# layer: static
# expect: '.format' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    leak = '{0.__class__.__init__.__globals__}'.format(logits)
    return -F.logsigmoid(self.beta * logits) + 0 * len(leak)
