# changes the global RNG state of the trainer
# layer: static
# expect: 'torch.manual_seed' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    torch.manual_seed(0)
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
