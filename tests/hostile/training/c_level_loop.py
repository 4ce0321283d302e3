# a long C-level computation (one matmul of 6000 x 6000) in training only: SIGALRM cannot interrupt it
# expect: timed out after
# worker: timed out after
def c_level_loop(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    # True in training only: at step 0 the policy is the reference (validation never feeds such a batch)
    in_training = policy_chosen_logps.shape[0] != 2 and bool((policy_chosen_logps - reference_chosen_logps).abs().max() < 0.01)
    if in_training:
        square = torch.ones(6000, 6000)
        for _ in range(1000):
            square = torch.matmul(square, square) / 6000.0
        losses = losses + 0.0 * square.sum()
    return losses
