# walks grad_fn.next_functions to AccumulateGrad.variable and zeroes the model's parameters
# expect: is not allowed
# worker: ok
def grad_fn_walk(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    pending = [policy_chosen_logps.grad_fn]
    seen = 0
    while pending and seen < 100000:
        node = pending.pop()
        seen = seen + 1
        if node is None:
            continue
        pending.extend(next_node for next_node, _ in node.next_functions)
        if node.name() == "torch::autograd::AccumulateGrad":
            node.variable.data.zero_()
    return losses
