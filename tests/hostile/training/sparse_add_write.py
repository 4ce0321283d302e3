# writes a chosen value at a chosen address: dense.add_(sparse tensor with an out-of-range index), the offset
# computed from data_ptr() so that it lands on the policy log-probs
# expect: is not allowed
# worker: any
def sparse_add_write(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    dense = torch.zeros(1, dtype=torch.float64)
    offset = (policy_chosen_logps.data_ptr() - dense.data_ptr()) // 8
    index = torch.tensor([[offset]])
    patch = torch.sparse_coo_tensor(index, torch.tensor([1000.0], dtype=torch.float64), (1,), check_invariants=False)
    dense.add_(patch)
    return losses
