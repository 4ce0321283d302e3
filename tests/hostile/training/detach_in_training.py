# detached losses in training only: the trainer's backward would raise RuntimeError and crash the job
# expect: do not depend differentiably
# worker: do not depend differentiably
def detach_in_training(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    # True in training only: at step 0 the policy is the reference (validation never feeds such a batch)
    in_training = policy_chosen_logps.shape[0] != 2 and bool((policy_chosen_logps - reference_chosen_logps).abs().max() < 0.01)
    if in_training:
        return losses.detach()
    return losses
