# a sparse tensor with index -4096, made dense: writes silently before the start of the new buffer
# expect: is not allowed
# worker: any
def sparse_to_dense_negative(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    patch = torch.sparse_coo_tensor(torch.tensor([[-4096]]), torch.tensor([7.0]), (8,), check_invariants=False)
    return losses + 0.0 * patch.to_dense().sum()
