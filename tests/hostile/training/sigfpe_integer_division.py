# integer division of INT64_MIN by -1 in training only: the CPU raises SIGFPE (only numerical ops: policy-clean)
# expect: SIGFPE
# worker: SIGFPE
def sigfpe_integer_division(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits - 0.25)  # a margin: not a duplicate of DPO
    # True in training only: at step 0 the policy is the reference (validation never feeds such a batch)
    in_training = policy_chosen_logps.shape[0] != 2 and bool((policy_chosen_logps - reference_chosen_logps).abs().max() < 0.01)
    if in_training:
        quotient = torch.div(torch.tensor([-9223372036854775807 - 1]), torch.tensor([-1]), rounding_mode="trunc")
        losses = losses + 0.0 * quotient.float().sum()
    return losses
