# an 80 GB list
# layer: runtime
# expect: MemoryError: exceeded the
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    big = [0] * 10**10
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits) + 0 * len(big)
