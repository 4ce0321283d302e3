# torch.save writes files
# layer: static
# expect: 'torch.save' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    torch.save(logits, '/tmp/prefdisco_pwned_torch_save')
    return -F.logsigmoid(self.beta * logits)
