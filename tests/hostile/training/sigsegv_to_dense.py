# a sparse tensor with an index far out of range, made dense in training only: SIGSEGV
# expect: is not allowed
# worker: SIGSEGV
def sigsegv_to_dense(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    # True in training only: at step 0 the policy is the reference (validation never feeds such a batch)
    in_training = policy_chosen_logps.shape[0] != 2 and bool((policy_chosen_logps - reference_chosen_logps).abs().max() < 0.01)
    if in_training:
        patch = torch.sparse_coo_tensor(torch.tensor([[1 << 40]]), torch.tensor([7.0]), (8,), check_invariants=False)
        losses = losses + 0.0 * patch.to_dense().sum()
    return losses
