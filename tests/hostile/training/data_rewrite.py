# rewrites the policy log-probs through .data, so that the logged logps/chosen would read 1000
# expect: is not allowed
# worker: ok
def data_rewrite(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    policy_chosen_logps.data.fill_(1000.0)
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    return losses
