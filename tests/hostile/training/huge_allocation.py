# allocates 6.8 GB in training only (the trainer had no memory limit)
# expect: memory limit
# worker: memory limit
def huge_allocation(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    # True in training only: at step 0 the policy is the reference (validation never feeds such a batch)
    in_training = policy_chosen_logps.shape[0] != 2 and bool((policy_chosen_logps - reference_chosen_logps).abs().max() < 0.01)
    if in_training:
        block = torch.ones(1700000000)
        losses = losses + 0.0 * block[0]
    return losses
