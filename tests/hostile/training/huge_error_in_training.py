# raises a 100 MB error message in training only: it must not reach train.json, the archive or the log whole
# expect: more characters
# worker: more characters
def huge_error_in_training(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    # True in training only: at step 0 the policy is the reference (validation never feeds such a batch)
    in_training = policy_chosen_logps.shape[0] != 2 and bool((policy_chosen_logps - reference_chosen_logps).abs().max() < 0.01)
    if in_training:
        raise ValueError("x" * 100000000)
    return losses
